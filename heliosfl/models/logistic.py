"""Binary logistic regression on a flat parameter vector."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from heliosfl.errors import ConfigError
from heliosfl.models.base import FloatArray, IntArray, _NumpyModel, as_generator

__all__ = ["LogisticRegression"]


class LogisticRegression(_NumpyModel):
    """Binary logistic regression, ``p(y = 1 | x) = sigmoid(x . w + b)``.

    Parameter layout (``num_params = input_dim + 1``)::

        params[:input_dim]   w, the weights
        params[input_dim]    b, the bias

    The loss is the mean log-loss, computed stably as
    ``mean(logaddexp(0, z) - y * z)`` with ``z = X @ w + b``.

    Parameters
    ----------
    input_dim : int
        Number of features, ``>= 1``.
    num_classes : int, default 2
        Must be 2; accepted so that every model takes the same keyword arguments.

    Raises
    ------
    ConfigError
        If ``input_dim < 1`` or ``num_classes != 2``.

    Examples
    --------
    >>> model = LogisticRegression(input_dim=3)
    >>> model.num_params
    4
    """

    model_type: ClassVar[str] = "logistic_regression"

    def __init__(self, input_dim: int, *, num_classes: int = 2) -> None:
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, int | np.integer)
            or (num_classes != 2)
        ):
            raise ConfigError(
                "num_classes",
                num_classes,
                "2 for logistic_regression",
                "Use softmax_regression or mlp for more than two classes.",
            )
        super().__init__(input_dim, 2)

    @property
    def num_params(self) -> int:
        """Length of the parameter vector, ``input_dim + 1``."""
        return self._input_dim + 1

    def init_params(self, seed: int | np.random.Generator) -> FloatArray:
        """Draw weights from ``N(0, 0.01^2)`` and set the bias to zero.

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
        params = np.zeros(self.num_params, dtype=np.float64)
        params[: self._input_dim] = rng.normal(0.0, 0.01, size=self._input_dim)
        return params

    def to_spec(self) -> dict[str, object]:
        """Return ``{"model_type", "input_dim", "num_classes"}`` (JSON-able)."""
        return {
            "model_type": self.model_type,
            "input_dim": self._input_dim,
            "num_classes": 2,
        }

    def _logits(self, params: FloatArray, X: FloatArray) -> FloatArray:
        d = self._input_dim
        z: FloatArray = X @ params[:d]
        z += params[d]
        return z

    def _score_weights(self, params: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(W, b)`` with class scores ``X @ W + b``: ``-z`` for class 0, ``z`` for class 1."""
        d = self._input_dim
        W = np.empty((d, 2), dtype=np.float64)
        W[:, 1] = params[:d]
        W[:, 0] = -params[:d]
        b = np.array([-params[d], params[d]], dtype=np.float64)
        return W, b

    def _loss_and_grad(
        self, params: FloatArray, X: FloatArray, y: IntArray
    ) -> tuple[float, FloatArray]:
        n = X.shape[0]
        d = self._input_dim
        z = self._logits(params, X)
        loss = float((np.logaddexp(0.0, z) - y * z).sum()) / n
        # dloss/dz = sigmoid(z) - y, with sigmoid(z) = exp(-logaddexp(0, -z)) (stable).
        dz = np.exp(-np.logaddexp(0.0, -z))
        dz -= y
        dz /= n
        grad = np.empty(self.num_params, dtype=np.float64)
        np.matmul(dz, X, out=grad[:d])
        grad[d] = dz.sum()
        return loss, grad

    def _log_proba(self, params: FloatArray, X: FloatArray) -> FloatArray:
        z = self._logits(params, X)
        logp = np.empty((X.shape[0], 2), dtype=np.float64)
        logp[:, 0] = -np.logaddexp(0.0, z)
        logp[:, 1] = -np.logaddexp(0.0, -z)
        return logp
