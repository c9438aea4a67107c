"""The :class:`Model` protocol and the validation and evaluation every model shares.

A model is a *stateless* description of an architecture: its weights live outside it, in
one flat ``float64`` vector, so that aggregation, clipping, noise and masking all work on
plain vectors. Each model class documents how its vector is laid out.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ConfigError

__all__ = ["FloatArray", "IntArray", "Model", "check_params"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@runtime_checkable
class Model(Protocol):
    """A differentiable classifier whose parameters are one flat ``float64`` vector.

    Labels are ``0 .. num_classes - 1``; ``X`` has ``input_dim`` columns. The bundled
    implementations are :class:`LogisticRegression`, :class:`SoftmaxRegression` and
    :class:`MLP`; any object with these members works with :func:`local_sgd`.
    """

    @property
    def model_type(self) -> str:
        """Canonical registry name of the architecture."""
        ...

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        ...

    @property
    def input_dim(self) -> int:
        """Number of input features."""
        ...

    @property
    def num_params(self) -> int:
        """Length of the flat parameter vector."""
        ...

    def init_params(self, seed: int | np.random.Generator) -> FloatArray:
        """Draw initial parameters (deterministic for an int seed)."""
        ...

    def loss_and_grad(
        self, params: FloatArray, X: FloatArray, y: IntArray
    ) -> tuple[float, FloatArray]:
        """Mean cross-entropy over the rows of ``X`` and its gradient w.r.t. ``params``."""
        ...

    def predict_proba(self, params: FloatArray, X: FloatArray) -> FloatArray:
        """Class probabilities, shape ``(n, num_classes)``."""
        ...

    def predict(self, params: FloatArray, X: FloatArray) -> IntArray:
        """Most probable class of each row."""
        ...

    def evaluate(self, params: FloatArray, X: FloatArray, y: IntArray) -> dict[str, float]:
        """``{"loss": mean cross-entropy, "accuracy": fraction correct}``."""
        ...

    def to_spec(self) -> dict[str, object]:
        """Return a JSON-able description that ``model_from_spec`` rebuilds the model from."""
        ...


class _Found(str):
    """A description shown verbatim (without quotes) in a :class:`ConfigError` message."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def check_int(field: str, value: object, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum``.

    Raises
    ------
    ConfigError
        If ``value`` is not an integer (``bool`` is refused) or is below ``minimum``.
    """
    if isinstance(value, bool | np.bool_):
        raise ConfigError(field, value, f"an int >= {minimum}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(field, value, f"an int >= {minimum}") from None
    if number < minimum:
        raise ConfigError(field, value, f"an int >= {minimum}")
    return int(number)


def describe_architecture(spec: Mapping[str, object]) -> str:
    """Format a model spec as ``"model_type='mlp', input_dim=30, ..."`` for messages."""
    parts = []
    for key, value in spec.items():
        shown = tuple(value) if isinstance(value, list) else value
        parts.append(f"{key}={shown!r}")
    return ", ".join(parts)


def check_params(model: Model, params: object, *, field: str = "params") -> FloatArray:
    """Validate a flat parameter vector for ``model`` and return it as ``float64``.

    Parameters
    ----------
    model : Model
        The architecture the vector is meant for.
    params : array_like
        The candidate vector.
    field : str, default "params"
        Name used in the error message (e.g. ``"initial_params"``).

    Returns
    -------
    FloatArray
        ``params`` as a 1-D ``float64`` array (not copied when it already is one).

    Raises
    ------
    ConfigError
        If ``params`` is not numeric, not 1-D, has the wrong length (the message gives the
        expected and the found length) or holds NaN or Inf.
    """
    expected = model.num_params

    def allowed() -> str:  # built only for a message: to_spec() is not free
        return (
            f"a 1-D vector of {expected} float values for this architecture "
            f"({describe_architecture(model.to_spec())})"
        )

    try:
        raw = np.asarray(params)
        if raw.dtype.kind == "c":  # a cast would silently drop the imaginary part
            raise TypeError
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(field, _Found(f"a {type(params).__name__}"), allowed()) from None
    if array.ndim != 1:
        raise ConfigError(field, _Found(f"an array of shape {array.shape}"), allowed())
    if array.shape[0] != expected:
        raise ConfigError(
            field,
            _Found(f"length {array.shape[0]}"),
            allowed(),
            "Pass None to draw initial parameters from the seed, or use model.init_params(seed).",
        )
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ConfigError(field, _Found(f"{bad} NaN or Inf values"), "finite (no NaN or Inf)")
    return array


def as_generator(seed: int | np.random.Generator) -> np.random.Generator:
    """Return ``seed`` if it is a Generator, else ``np.random.default_rng(seed)``."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_int("seed", seed, 0))


class _NumpyModel(ABC):
    """Shared validation, prediction, evaluation, equality and repr of the bundled models.

    Subclasses implement :meth:`_loss_and_grad` and :meth:`_log_proba` on inputs that are
    already validated; the public methods validate and delegate.
    """

    model_type: ClassVar[str]

    def __init__(self, input_dim: object, num_classes: object) -> None:
        self._input_dim = check_int("input_dim", input_dim, 1)
        self._num_classes = check_int("num_classes", num_classes, 2)

    @property
    def input_dim(self) -> int:
        """Number of input features."""
        return self._input_dim

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self._num_classes

    @property
    @abstractmethod
    def num_params(self) -> int:
        """Length of the flat parameter vector."""

    @abstractmethod
    def init_params(self, seed: int | np.random.Generator) -> FloatArray:
        """Draw initial parameters from ``seed``."""

    @abstractmethod
    def to_spec(self) -> dict[str, object]:
        """Return a JSON-able description of the architecture."""

    @abstractmethod
    def _loss_and_grad(
        self, params: FloatArray, X: FloatArray, y: IntArray
    ) -> tuple[float, FloatArray]:
        """Loss and gradient on validated, non-empty inputs."""

    @abstractmethod
    def _log_proba(self, params: FloatArray, X: FloatArray) -> FloatArray:
        """Log class probabilities, shape ``(n, num_classes)``, on validated inputs."""

    # -- validation -------------------------------------------------------------------

    def check_params(self, params: object, *, field: str = "params") -> FloatArray:
        """Validate a parameter vector; see :func:`check_params`."""
        return check_params(self, params, field=field)

    def check_x(self, X: object) -> FloatArray:
        """Return ``X`` as a 2-D finite ``float64`` array with ``input_dim`` columns.

        Raises
        ------
        ConfigError
            If ``X`` is not numeric, not 2-D, has the wrong number of columns, or holds NaN
            or Inf.
        """
        allowed = f"a 2-D array of finite floats with input_dim={self._input_dim} columns"
        try:
            array = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError("X", X, allowed) from None
        if array.ndim != 2 or array.shape[1] != self._input_dim:
            raise ConfigError("X", _Found(f"an array of shape {array.shape}"), allowed)
        if not np.isfinite(array).all():
            bad = int(np.count_nonzero(~np.isfinite(array)))
            raise ConfigError("X", _Found(f"{bad} NaN or Inf values"), allowed)
        return array

    def check_xy(self, X: object, y: object) -> tuple[FloatArray, IntArray]:
        """Validate a non-empty labelled batch.

        Returns
        -------
        tuple of (FloatArray, IntArray)
            ``X`` as in :meth:`check_x` and ``y`` as 1-D ``int64`` labels.

        Raises
        ------
        ConfigError
            If ``X`` is invalid or empty, or ``y`` is not a 1-D vector of integer labels in
            ``[0, num_classes)`` with one label per row of ``X``.
        """
        X_arr = self.check_x(X)
        if X_arr.shape[0] == 0:
            raise ConfigError("X", _Found("0 rows"), "a non-empty array (at least one row)")
        allowed = (
            f"a 1-D vector of {X_arr.shape[0]} integer labels in [0, {self._num_classes}) "
            "(one per row of X)"
        )
        try:
            y_arr = np.asarray(y)
        except (TypeError, ValueError):
            raise ConfigError(
                "y", _Found(f"a {type(y).__name__} of ragged rows"), allowed
            ) from None
        if y_arr.ndim != 1 or y_arr.shape[0] != X_arr.shape[0]:
            raise ConfigError("y", _Found(f"an array of shape {y_arr.shape}"), allowed)
        if (
            y_arr.dtype.kind == "f"
            and np.isfinite(y_arr).all()
            and (y_arr == np.round(y_arr)).all()
        ):
            y_arr = y_arr.astype(np.int64)
        if y_arr.dtype.kind not in "iub":
            raise ConfigError("y", _Found(f"dtype {y_arr.dtype}"), allowed)
        labels = y_arr.astype(np.int64, copy=False)
        if labels.min() < 0 or labels.max() >= self._num_classes:
            shown = _Found(f"labels from {labels.min()} to {labels.max()}")
            raise ConfigError("y", shown, allowed)
        return X_arr, labels

    # -- the protocol -----------------------------------------------------------------

    def loss_and_grad(
        self, params: FloatArray, X: FloatArray, y: IntArray
    ) -> tuple[float, FloatArray]:
        """Mean cross-entropy over the rows of ``X`` and its gradient.

        Parameters
        ----------
        params : FloatArray
            Flat parameter vector of length :attr:`num_params`.
        X : FloatArray
            Features, shape ``(n, input_dim)``, ``n >= 1``.
        y : IntArray
            Labels in ``[0, num_classes)``, shape ``(n,)``.

        Returns
        -------
        loss : float
            ``-(1/n) * sum_i log p(y_i | x_i)``.
        grad : FloatArray
            Gradient of ``loss`` with respect to ``params``, same shape as ``params``.

        Raises
        ------
        ConfigError
            If ``params``, ``X`` or ``y`` are invalid (see :meth:`check_xy`).
        """
        flat = self.check_params(params)
        X_arr, y_arr = self.check_xy(X, y)
        return self._loss_and_grad(flat, X_arr, y_arr)

    def predict_proba(self, params: FloatArray, X: FloatArray) -> FloatArray:
        """Class probabilities of each row of ``X``; rows sum to 1.

        Returns
        -------
        FloatArray
            Shape ``(n, num_classes)``.

        Raises
        ------
        ConfigError
            If ``params`` or ``X`` are invalid.
        """
        return np.exp(self._log_proba(self.check_params(params), self.check_x(X)))

    def predict(self, params: FloatArray, X: FloatArray) -> IntArray:
        """Most probable class (``0 .. num_classes - 1``) of each row of ``X``.

        Raises
        ------
        ConfigError
            If ``params`` or ``X`` are invalid.
        """
        logp = self._log_proba(self.check_params(params), self.check_x(X))
        labels: IntArray = np.argmax(logp, axis=1).astype(np.int64)
        return labels

    def evaluate(self, params: FloatArray, X: FloatArray, y: IntArray) -> dict[str, float]:
        """Mean cross-entropy and accuracy of ``params`` on ``(X, y)``.

        Returns
        -------
        dict of str to float
            ``{"loss": mean cross-entropy, "accuracy": fraction of rows predicted right}``.

        Raises
        ------
        ConfigError
            If ``X`` is empty or any input is invalid.
        """
        flat = self.check_params(params)
        X_arr, y_arr = self.check_xy(X, y)
        return self._evaluate(flat, X_arr, y_arr)

    def _evaluate(self, params: FloatArray, X: FloatArray, y: IntArray) -> dict[str, float]:
        """:meth:`evaluate` on inputs already validated for this model."""
        logp = self._log_proba(params, X)
        loss = -float(logp[np.arange(y.shape[0]), y].mean())
        accuracy = float((np.argmax(logp, axis=1) == y).mean())
        return {"loss": loss, "accuracy": accuracy}

    # -- value semantics --------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _NumpyModel):
            return NotImplemented
        return type(self) is type(other) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))

    def __repr__(self) -> str:
        spec: dict[str, Any] = dict(self.to_spec())
        spec.pop("model_type", None)
        return f"{type(self).__name__}({describe_architecture(spec)})"
