"""A multi-layer perceptron (one or two hidden layers) on a flat parameter vector."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from heliosfl.errors import ConfigError
from heliosfl.models.base import (
    FloatArray,
    IntArray,
    _Found,
    _NumpyModel,
    as_generator,
    check_int,
)
from heliosfl.models.softmax import log_softmax, softmax_cross_entropy

__all__ = ["MLP"]

#: Largest parameter vector an MLP may have (2**31 float64 values are 16 GiB).
_MAX_PARAMS = 2**31
_ACTIVATIONS = ("relu", "tanh")


class MLP(_NumpyModel):
    """A fully connected network with a softmax output and cross-entropy loss.

    ``h_0 = X``, ``h_k = act(h_{k-1} @ W_k + b_k)`` for each hidden layer, and
    ``p(y | x) = softmax(h_L @ W_out + b_out)``.

    Parameter layout, with layer sizes ``n_0 = input_dim, n_1, [n_2,] n_out = num_classes``::

        W1 (n_0 x n_1, row-major), b1 (n_1),
        W2 (n_1 x n_2, row-major), b2 (n_2),
        [W3 (n_2 x n_out, row-major), b3 (n_out)]

    so ``num_params = sum_k (n_{k-1} + 1) * n_k``. For example ``MLP(30, (32,))`` has
    ``31 * 32 + 33 * 2 = 1058`` parameters.

    Parameters
    ----------
    input_dim : int
        Number of features, ``>= 1``.
    hidden_layers : sequence of int, default (32,)
        Widths of the one or two hidden layers, each ``>= 1``.
    num_classes : int, default 2
        Number of classes, ``>= 2``.
    activation : {"relu", "tanh"}, default "relu"
        Hidden-layer non-linearity.

    Raises
    ------
    ConfigError
        If any size is out of range, ``hidden_layers`` does not have one or two entries, or
        ``activation`` is unknown.

    Examples
    --------
    >>> MLP(input_dim=30, hidden_layers=(32,), num_classes=2).num_params
    1058
    """

    model_type: ClassVar[str] = "mlp"

    def __init__(
        self,
        input_dim: int,
        hidden_layers: Sequence[int] = (32,),
        *,
        num_classes: int = 2,
        activation: str = "relu",
    ) -> None:
        super().__init__(input_dim, num_classes)
        allowed = "a sequence of one or two ints >= 1, e.g. (32,) or (64, 32)"
        if isinstance(hidden_layers, int | str | bytes) or not isinstance(hidden_layers, Sequence):
            raise ConfigError("hidden_layers", hidden_layers, allowed)
        if len(hidden_layers) not in (1, 2):
            raise ConfigError("hidden_layers", hidden_layers, allowed)
        self._hidden_layers = tuple(
            check_int(f"hidden_layers[{i}]", width, 1) for i, width in enumerate(hidden_layers)
        )
        if activation not in _ACTIVATIONS:
            raise ConfigError("activation", activation, "one of 'relu', 'tanh'")
        self._activation = str(activation)
        sizes = (self._input_dim, *self._hidden_layers, self._num_classes)
        # (weights start, weights stop = bias start, bias stop, fan_in, fan_out) per layer.
        self._layout: list[tuple[int, int, int, int, int]] = []
        offset = 0
        for fan_in, fan_out in itertools.pairwise(sizes):
            w_stop = offset + fan_in * fan_out
            self._layout.append((offset, w_stop, w_stop + fan_out, fan_in, fan_out))
            offset = w_stop + fan_out
        if offset > _MAX_PARAMS:
            raise ConfigError(
                "input_dim and hidden_layers",
                _Found(f"{offset} parameters"),
                f"an architecture of at most {_MAX_PARAMS} parameters",
            )
        self._num_params = offset

    @property
    def hidden_layers(self) -> tuple[int, ...]:
        """Widths of the hidden layers."""
        return self._hidden_layers

    @property
    def activation(self) -> str:
        """Hidden-layer non-linearity, ``"relu"`` or ``"tanh"``."""
        return self._activation

    @property
    def num_params(self) -> int:
        """Length of the parameter vector, ``sum_k (n_{k-1} + 1) * n_k``."""
        return self._num_params

    def init_params(self, seed: int | np.random.Generator) -> FloatArray:
        """Draw every weight matrix from a normal distribution and set biases to zero.

        He initialisation (std ``sqrt(2 / fan_in)``) for ``relu``, Glorot (std
        ``sqrt(2 / (fan_in + fan_out))``) for ``tanh``, applied to every layer.

        Parameters
        ----------
        seed : int or numpy.random.Generator
            An int gives the same vector every time.

        Returns
        -------
        FloatArray
            Shape ``(num_params,)``.

        Raises
        ------
        ConfigError
            If ``seed`` is neither a Generator nor an int ``>= 0``.

        References
        ----------
        .. [1] K. He et al., "Delving Deep into Rectifiers", ICCV 2015.
        .. [2] X. Glorot and Y. Bengio, "Understanding the difficulty of training deep
           feedforward neural networks", AISTATS 2010.
        """
        rng = as_generator(seed)
        params = np.zeros(self._num_params, dtype=np.float64)
        for w_start, w_stop, _, fan_in, fan_out in self._layout:
            if self._activation == "relu":
                std = np.sqrt(2.0 / fan_in)
            else:
                std = np.sqrt(2.0 / (fan_in + fan_out))
            params[w_start:w_stop] = rng.normal(0.0, std, size=w_stop - w_start)
        return params

    def to_spec(self) -> dict[str, object]:
        """Return ``{"model_type", "input_dim", "hidden_layers", "num_classes", "activation"}``."""
        return {
            "model_type": self.model_type,
            "input_dim": self._input_dim,
            "hidden_layers": list(self._hidden_layers),
            "num_classes": self._num_classes,
            "activation": self._activation,
        }

    def _unpack(self, flat: FloatArray) -> list[tuple[FloatArray, FloatArray]]:
        """Return views ``(W, b)`` of each layer into ``flat`` (no copies)."""
        return [
            (flat[w0:w1].reshape(fan_in, fan_out), flat[w1:b1])
            for w0, w1, b1, fan_in, fan_out in self._layout
        ]

    def _hidden(
        self, layers: list[tuple[FloatArray, FloatArray]], X: FloatArray
    ) -> list[FloatArray]:
        """Activations ``[X, h_1, ..., h_L]`` of the input and each hidden layer."""
        acts = [X]
        for W, b in layers[:-1]:
            z: FloatArray = acts[-1] @ W
            z += b
            if self._activation == "relu":
                np.maximum(z, 0.0, out=z)
            else:
                np.tanh(z, out=z)
            acts.append(z)
        return acts

    def _loss_and_grad(
        self, params: FloatArray, X: FloatArray, y: IntArray
    ) -> tuple[float, FloatArray]:
        layers = self._unpack(params)
        acts = self._hidden(layers, X)
        W_out, b_out = layers[-1]
        logits: FloatArray = acts[-1] @ W_out
        logits += b_out
        loss, G = softmax_cross_entropy(logits, y)  # G = dloss/dlogits
        grad = np.empty(self._num_params, dtype=np.float64)
        grads = self._unpack(grad)
        for k in range(len(layers) - 1, -1, -1):
            gW, gb = grads[k]
            np.matmul(acts[k].T, G, out=gW)
            np.sum(G, axis=0, out=gb)
            if k == 0:
                break
            G = G @ layers[k][0].T  # dloss/dh_k
            h = acts[k]
            if self._activation == "relu":
                G *= h > 0.0
            else:
                G *= 1.0 - h * h
        return loss, grad

    def _score_and_input_grad(
        self, params: FloatArray, X: FloatArray, target: int
    ) -> tuple[FloatArray, FloatArray]:
        """Logit of class ``target`` for each row of ``X`` and its gradient w.r.t. the row.

        Returns ``(scores, grads)`` with shapes ``(n,)`` and ``(n, input_dim)``. For ReLU the
        derivative at exactly 0 is taken as 0, as in :meth:`_loss_and_grad`.
        """
        layers = self._unpack(params)
        acts = self._hidden(layers, X)
        W_out, b_out = layers[-1]
        scores: FloatArray = acts[-1] @ W_out[:, target]
        scores += b_out[target]
        G: FloatArray = np.tile(W_out[:, target], (X.shape[0], 1))  # dscore/dh_L
        for k in range(len(layers) - 1, 0, -1):
            h = acts[k]
            if self._activation == "relu":
                G *= h > 0.0
            else:
                G *= 1.0 - h * h
            G = G @ layers[k - 1][0].T  # dscore/dh_{k-1}
        return scores, G

    def _log_proba(self, params: FloatArray, X: FloatArray) -> FloatArray:
        layers = self._unpack(params)
        acts = self._hidden(layers, X)
        W_out, b_out = layers[-1]
        logits: FloatArray = acts[-1] @ W_out
        logits += b_out
        return log_softmax(logits)
