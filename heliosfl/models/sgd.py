"""The local-training step of a node: mini-batch SGD with an optional FedProx term.

Pure and synchronous: a function of the model, the data, the starting parameters and an
explicit :class:`numpy.random.Generator`. The caller runs it off the event loop and stops
it between batches through ``stop``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from heliosfl.errors import ConfigError
from heliosfl.models.base import FloatArray, IntArray, Model, _NumpyModel, check_int, check_params

__all__ = ["LocalResult", "TrainingStopped", "local_sgd"]


class TrainingStopped(Exception):
    """Local training was asked to stop (``stop()`` returned True) between two batches.

    Parameters
    ----------
    steps : int
        How many SGD steps had been taken when training stopped.
    """

    def __init__(self, steps: int = 0) -> None:
        self.steps = steps
        super().__init__(f"local training stopped after {steps} steps")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.steps,))


@dataclass(frozen=True, slots=True, eq=False)
class LocalResult:
    """What one node's local training produced.

    Attributes
    ----------
    params : FloatArray
        The locally trained parameters (a new array).
    loss : float
        Mean training loss over the batches of the last epoch, weighted by batch size;
        each batch's loss is taken before its step.
    num_samples : int
        Number of training rows, ``n``.
    steps : int
        Number of SGD steps taken, ``epochs * ceil(n / batch_size)``.
    """

    params: FloatArray
    loss: float
    num_samples: int
    steps: int


def _positive_float(field: str, value: object, *, allow_zero: bool) -> float:
    allowed = "a finite number >= 0" if allow_zero else "a finite number > 0"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(field, value, allowed)
    number = float(value)
    if not math.isfinite(number) or number < 0.0 or (number == 0.0 and not allow_zero):
        raise ConfigError(field, value, allowed)
    return number


def local_sgd(
    model: Model,
    params: FloatArray,
    X: FloatArray,
    y: IntArray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    rng: np.random.Generator,
    prox_mu: float = 0.0,
    anchor: FloatArray | None = None,
    stop: Callable[[], bool] | None = None,
    validated: bool = False,
) -> LocalResult:
    r"""Train ``params`` on ``(X, y)`` with mini-batch SGD and an optional proximal term.

    The algorithm, with ``n`` rows, ``w`` a copy of ``params`` and ``w_0`` the anchor::

        for epoch in 1 .. epochs:
            order = rng.permutation(n)
            for each consecutive slice B of order of length batch_size (the last may be
            shorter):
                if stop is not None and stop(): raise TrainingStopped
                loss_B, g = model.loss_and_grad(w, X[B], y[B])
                w = w - learning_rate * (g + prox_mu * (w - w_0))

    With ``prox_mu = 0`` this is the ``ClientUpdate`` of FedAvg [1]_; with ``prox_mu > 0``
    each step minimises the FedProx local objective
    :math:`F(w) + \frac{\mu}{2}\lVert w - w_0\rVert^2` [2]_.

    Parameters
    ----------
    model : Model
        The architecture.
    params : FloatArray
        Starting parameters; never modified.
    X : FloatArray
        Features, shape ``(n, input_dim)`` with ``n >= 1``.
    y : IntArray
        Labels, shape ``(n,)``.
    epochs : int
        Passes over the data, ``>= 1``.
    batch_size : int
        Rows per step, ``>= 1`` (a batch larger than ``n`` means full-batch steps).
    learning_rate : float
        Step size, finite and ``> 0``.
    rng : numpy.random.Generator
        Source of the per-epoch shuffles; the same generator state gives the same result.
    prox_mu : float, default 0.0
        FedProx coefficient :math:`\mu \ge 0`.
    anchor : FloatArray, optional
        :math:`w_0` of the proximal term; defaults to ``params`` (the global model).
    stop : callable, optional
        Called before every batch; when it returns True, training ends by raising
        :class:`TrainingStopped`.
    validated : bool, default False
        The caller guarantees that ``params`` and ``anchor`` passed ``check_params`` and
        ``(X, y)`` passed the model's ``check_xy``, so they are not checked again (the
        engine validates a node's data once per model, not every round).

    Returns
    -------
    LocalResult
        The trained parameters, the sample-weighted mean loss of the last epoch (each
        batch's loss before its step), ``n`` and the number of steps.

    Raises
    ------
    ConfigError
        If an argument is invalid, ``X`` has no rows, or the loss becomes NaN or Inf (the
        learning rate is too large).
    TrainingStopped
        If ``stop()`` returned True.

    References
    ----------
    .. [1] H. B. McMahan, E. Moore, D. Ramage, S. Hampson and B. Agüera y Arcas,
       "Communication-Efficient Learning of Deep Networks from Decentralized Data",
       AISTATS 2017.
    .. [2] T. Li, A. K. Sahu, M. Zaheer, M. Sanjabi, A. Talwalkar and V. Smith,
       "Federated Optimization in Heterogeneous Networks", MLSys 2020.
    """
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    lr = _positive_float("learning_rate", learning_rate, allow_zero=False)
    mu = _positive_float("prox_mu", prox_mu, allow_zero=True)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            "rng", rng, "a numpy.random.Generator", "Use np.random.default_rng(seed)."
        )
    if validated:  # the caller already checked params, anchor, X and y for this model
        w = np.array(params, dtype=np.float64, copy=True)
        w0 = w.copy() if anchor is None else np.asarray(anchor, dtype=np.float64)
    else:
        w = np.array(check_params(model, params), dtype=np.float64, copy=True)
        w0 = w.copy() if anchor is None else check_params(model, anchor, field="anchor")

    # Built-in models validate X and y once here, not per batch, unless a subclass
    # overrides loss_and_grad (then its override must run).
    if isinstance(model, _NumpyModel) and (type(model).loss_and_grad is _NumpyModel.loss_and_grad):
        X_arr, y_arr = (X, y) if validated else model.check_xy(X, y)
        loss_and_grad = model._loss_and_grad  # validated once here, not per batch
    else:
        X_arr = np.asarray(X, dtype=np.float64)
        y_arr = np.asarray(y, dtype=np.int64)
        loss_and_grad = model.loss_and_grad
    n = X_arr.shape[0] if X_arr.ndim >= 1 else 0
    if n == 0:
        raise ConfigError("X", X, "a non-empty array (at least one row)")

    step = np.empty_like(w)
    steps = 0
    epoch_loss = 0.0
    # Divergence is detected below and reported as a ConfigError, not as numpy warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(epochs):
            order = rng.permutation(n)
            total = 0.0
            for start in range(0, n, batch_size):
                if stop is not None and stop():
                    raise TrainingStopped(steps)
                batch = order[start : start + batch_size]
                loss, grad = loss_and_grad(w, X_arr[batch], y_arr[batch])
                if grad.shape != w.shape:
                    raise ConfigError(
                        "model",
                        model,
                        f"a Model whose loss_and_grad returns a gradient of shape {w.shape}",
                        f"It returned shape {grad.shape}.",
                    )
                if not math.isfinite(loss):
                    _diverged(learning_rate, steps)
                if mu > 0.0:
                    np.subtract(w, w0, out=step)
                    step *= mu
                    step += grad
                else:
                    step[...] = grad
                step *= lr
                w -= step
                total += loss * batch.shape[0]
                steps += 1
            epoch_loss = total / n
    if not np.isfinite(w).all():
        _diverged(learning_rate, steps)
    return LocalResult(params=w, loss=epoch_loss, num_samples=n, steps=steps)


def _diverged(learning_rate: float, steps: int) -> NoReturn:
    raise ConfigError(
        "learning_rate",
        learning_rate,
        "small enough for local training to stay finite",
        f"The loss or the parameters became NaN or Inf within {steps + 1} steps; "
        "lower learning_rate.",
    )
