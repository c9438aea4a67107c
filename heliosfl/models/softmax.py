"""Multinomial (softmax) logistic regression on a flat parameter vector."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from heliosfl.models.base import (
    FloatArray,
    IntArray,
    _NumpyModel,
    as_generator,
)

__all__ = ["SoftmaxRegression"]


def log_softmax(logits: FloatArray) -> FloatArray:
    """Row-wise log-softmax, computed in place on ``logits`` and returned."""
    logits -= logits.max(axis=1, keepdims=True)
    logits -= np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return logits


def softmax_cross_entropy(logits: FloatArray, y: IntArray) -> tuple[float, FloatArray]:
    """Mean cross-entropy of ``logits`` (overwritten) and its gradient w.r.t. the logits.

    Returns ``(loss, G)`` with ``G = (softmax(logits) - onehot(y)) / n``.
    """
    n = y.shape[0]
    rows = np.arange(n)
    logp = log_softmax(logits)
    loss = -float(logp[rows, y].sum()) / n
    grad = np.exp(logp, out=logp)
    grad[rows, y] -= 1.0
    grad /= n
    return loss, grad


class SoftmaxRegression(_NumpyModel):
    """Multinomial logistic regression, ``p(y | x) = softmax(x @ W + b)``.

    Parameter layout (``num_params = (input_dim + 1) * num_classes``)::

        params[: d * C]      W, shape (d, C), row-major: W[i, c] = params[i * C + c]
        params[d * C :]      b, shape (C,)

    with ``d = input_dim`` and ``C = num_classes``. The loss is the mean cross-entropy,
    computed with a max-shifted log-softmax.

    Parameters
    ----------
    input_dim : int
        Number of features, ``>= 1``.
    num_classes : int
        Number of classes, ``>= 2``.

    Raises
    ------
    ConfigError
        If ``input_dim < 1`` or ``num_classes < 2``.

    Examples
    --------
    >>> SoftmaxRegression(input_dim=64, num_classes=10).num_params
    650
    """

    model_type: ClassVar[str] = "softmax_regression"

    def __init__(self, input_dim: int, num_classes: int) -> None:
        super().__init__(input_dim, num_classes)

    @property
    def num_params(self) -> int:
        """Length of the parameter vector, ``(input_dim + 1) * num_classes``."""
        return (self._input_dim + 1) * self._num_classes

    def init_params(self, seed: int | np.random.Generator) -> FloatArray:
        """Draw ``W`` from ``N(0, 0.01^2)`` and set ``b`` to zero.

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
        """
        rng = as_generator(seed)
        size = self._input_dim * self._num_classes
        params = np.zeros(self.num_params, dtype=np.float64)
        params[:size] = rng.normal(0.0, 0.01, size=size)
        return params

    def to_spec(self) -> dict[str, object]:
        """Return ``{"model_type", "input_dim", "num_classes"}`` (JSON-able)."""
        return {
            "model_type": self.model_type,
            "input_dim": self._input_dim,
            "num_classes": self._num_classes,
        }

    def _score_weights(self, params: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Copies of ``(W, b)``, shapes ``(d, C)`` and ``(C,)``: the logits are ``X @ W + b``."""
        size = self._input_dim * self._num_classes
        W = params[:size].reshape(self._input_dim, self._num_classes).copy()
        return W, params[size:].copy()

    def _logits(self, params: FloatArray, X: FloatArray) -> FloatArray:
        size = self._input_dim * self._num_classes
        W = params[:size].reshape(self._input_dim, self._num_classes)
        logits: FloatArray = X @ W
        logits += params[size:]
        return logits

    def _loss_and_grad(
        self, params: FloatArray, X: FloatArray, y: IntArray
    ) -> tuple[float, FloatArray]:
        size = self._input_dim * self._num_classes
        loss, G = softmax_cross_entropy(self._logits(params, X), y)
        grad = np.empty(self.num_params, dtype=np.float64)
        np.matmul(X.T, G, out=grad[:size].reshape(self._input_dim, self._num_classes))
        np.sum(G, axis=0, out=grad[size:])
        return loss, grad

    def _log_proba(self, params: FloatArray, X: FloatArray) -> FloatArray:
        return log_softmax(self._logits(params, X))
