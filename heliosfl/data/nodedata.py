"""What one simulated node holds: its rows, an optional validation split, and who each row is.

A :class:`NodeData` is immutable: its arrays are validated once and made read-only, and the
methods that "change" it return a new one. ``subject_ids`` name the data subject of every row,
which is what a GDPR erasure needs. The validation helpers of :mod:`heliosfl.data` live here
too; their messages describe arrays (shape, count) and never show values.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ConfigError

__all__ = ["NodeData"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]


class Described(str):
    """A description of a value that :class:`ConfigError` shows without quotes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def check_int(name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(name, value, f"an integer >= {minimum}")
    return int(value)


def check_number(
    name: str, value: object, *, low: float, open_: bool, high: float | None = None
) -> float:
    """Return ``value`` as a float ``>= low`` (``> low`` if ``open_``) and ``< high``."""
    if high is None:
        allowed = f"a finite number {'>' if open_ else '>='} {low:g}"
    else:
        allowed = f"a number in {'(' if open_ else '['}{low:g}, {high:g})"
    number = math.nan  # NaN is never above low
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        number = float(value)
    above = number > low if open_ else number >= low
    if not above or not number < (math.inf if high is None else high):
        raise ConfigError(name, value, allowed)
    return number


def fraction_count(fraction: float, rows: int) -> int:
    """``floor(fraction * rows)``, tolerant of rounding (0.29 * 100 is 29, not 28)."""
    return math.floor(fraction * rows + 1e-9)


def frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Mark ``array`` read-only and return it."""
    array.flags.writeable = False
    return array


def _converted(name: str, value: object, dtype: type, kinds: str, allowed: str) -> Any:
    """``value`` as a read-only array of ``dtype``, copied unless already so (no aliasing)."""
    if (
        isinstance(value, np.ndarray)
        and not value.flags.writeable
        and (value.dtype == dtype or (dtype is np.str_ and value.dtype.kind == "U"))
    ):
        return value
    try:
        raw = np.asarray(value)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, unconvertible items
        raise ConfigError(
            name, Described(f"a {type(value).__name__} of ragged rows"), allowed
        ) from None
    if raw.dtype.kind == "c":  # refuse before any cast drops the imaginary part
        raise ConfigError(name, Described(f"an array of dtype {raw.dtype}"), allowed)
    if raw.size == 0:
        raw = raw.astype(dtype)
    elif dtype is np.str_ and raw.dtype.kind == "O" and all(isinstance(v, str) for v in raw.flat):
        raw = raw.astype(np.str_)
    elif kinds == "biu" and raw.dtype.kind == "f" and np.isfinite(raw).all():
        whole = (np.mod(raw, 1) == 0).all() and (np.abs(raw) < 2.0**53).all()
        if (np.mod(raw, 1) == 0).all() and not whole:
            raise ConfigError(name, Described("a label of 2**53 or more"), allowed)
        raw = raw.astype(np.int64) if whole else raw  # 1.0, not 1.5
    if raw.dtype.kind not in kinds:
        raise ConfigError(name, Described(f"an array of dtype {raw.dtype}"), allowed)
    return frozen(np.array(raw, dtype=raw.dtype if dtype is np.str_ else dtype))


def as_features(name: str, value: object) -> FloatArray:
    """Convert ``value`` to a read-only, finite, 2-D float64 array with >= 1 column."""
    allowed = "a 2-D array of real numbers (rows, features) with at least one feature"
    array: FloatArray = _converted(name, value, np.float64, "biuf", allowed)
    if array.ndim != 2 or array.shape[1] < 1:
        found = Described(f"an array of shape {array.shape}")
        raise ConfigError(name, found, allowed, hint="Reshape one feature with X.reshape(-1, 1).")
    if not np.isfinite(array).all():
        found = Described(f"{np.count_nonzero(~np.isfinite(array))} NaN or infinite value(s)")
        raise ConfigError(name, found, "finite", hint="Impute or drop those rows first.")
    return array


def as_labels(name: str, value: object, rows: int) -> IntArray:
    """Convert ``value`` to a read-only 1-D int64 array of ``rows`` labels, all ``>= 0``."""
    array: IntArray = _vector(name, value, rows, np.int64, "integer class labels >= 0")
    if rows and int(array.min()) < 0:
        found = Described(f"a label of {int(array.min())}")
        raise ConfigError(name, found, "integer class labels >= 0")
    return array


def as_subject_ids(name: str, value: object, rows: int) -> StrArray:
    """Convert ``value`` to a read-only 1-D array of ``rows`` strings."""
    array: StrArray = _vector(name, value, rows, np.str_, "strings (one subject id per row)")
    return array


def _vector(name: str, value: object, rows: int, dtype: type, what: str) -> Any:
    allowed = f"a 1-D array of {rows} {what}"
    array = _converted(name, value, dtype, "U" if dtype is np.str_ else "biu", allowed)
    if array.ndim != 1 or array.shape[0] != rows:
        raise ConfigError(name, Described(f"an array of shape {array.shape}"), allowed)
    return array


@dataclass(frozen=True, slots=True, eq=False)
class NodeData:
    """The rows one simulated node holds: features, labels, subjects, optional validation.

    Parameters
    ----------
    X : array_like of shape (n, d)
        Training features, all finite; stored as read-only float64. Arrays are copied unless
        already read-only with the stored dtype (then kept: slicing one frozen array into
        thousands of nodes is cheap). A node may hold zero training rows.
    y : array_like of shape (n,)
        Class labels, integers ``>= 0``; stored as read-only int64.
    subject_ids : array_like of str, shape (n,), optional
        The data subject (person) of each training row. A subject may own several rows.
    X_val, y_val : array_like, optional
        A validation split held by the node: both or neither, same columns as ``X``.
    subject_ids_val : array_like of str, optional
        Subjects of the validation rows; required exactly when ``subject_ids`` is given and
        there is a validation split, so an erasure can reach every row.

    Raises
    ------
    ConfigError
        If an array has the wrong shape or dtype, holds NaN or Inf, a label is negative,
        lengths disagree, or the validation arrays are incomplete. The error names the field
        (``"X"``, ``"y"``, ``"subject_ids"``, ``"X_val"``, ...) and never shows its values.

    Examples
    --------
    >>> node = NodeData([[0.0, 1.0], [1.0, 0.0]], [0, 1], ["alice", "bob"])
    >>> len(node), node.num_features, node.classes.tolist()
    (2, 2, [0, 1])
    >>> len(node.without_subjects(["alice"]))
    1
    """

    X: FloatArray
    y: IntArray
    subject_ids: StrArray | None = None
    X_val: FloatArray | None = field(default=None, kw_only=True)
    y_val: IntArray | None = field(default=None, kw_only=True)
    subject_ids_val: StrArray | None = field(default=None, kw_only=True)

    if TYPE_CHECKING:  # what callers may pass: array-likes, converted by __post_init__

        def __init__(
            self,
            X: npt.ArrayLike,
            y: npt.ArrayLike,
            subject_ids: npt.ArrayLike | None = None,
            *,
            X_val: npt.ArrayLike | None = None,
            y_val: npt.ArrayLike | None = None,
            subject_ids_val: npt.ArrayLike | None = None,
        ) -> None: ...

    def __post_init__(self) -> None:
        X = as_features("X", self.X)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", as_labels("y", self.y, X.shape[0]))
        if self.subject_ids is not None:
            ids = as_subject_ids("subject_ids", self.subject_ids, X.shape[0])
            object.__setattr__(self, "subject_ids", ids)
        if self.X_val is None or self.y_val is None:
            if any(v is not None for v in (self.X_val, self.y_val, self.subject_ids_val)):
                missing = "y_val" if self.y_val is None else "X_val"
                raise ConfigError(missing, None, "given with the other validation arrays")
            return
        X_val = as_features("X_val", self.X_val)
        if X_val.shape[1] != X.shape[1]:
            found = Described(f"{X_val.shape[1]} columns")
            raise ConfigError("X_val", found, f"{X.shape[1]} columns, like X")
        object.__setattr__(self, "X_val", X_val)
        object.__setattr__(self, "y_val", as_labels("y_val", self.y_val, X_val.shape[0]))
        if (self.subject_ids is None) != (self.subject_ids_val is None):
            found = Described("None" if self.subject_ids_val is None else "an array")
            raise ConfigError("subject_ids_val", found, "given exactly when subject_ids is given")
        if self.subject_ids_val is not None:
            ids_val = as_subject_ids("subject_ids_val", self.subject_ids_val, X_val.shape[0])
            object.__setattr__(self, "subject_ids_val", ids_val)

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"NodeData(num_samples={self.num_samples}, num_features={self.num_features}, "
            f"classes={self.classes.tolist()}, num_val_samples={self.num_val_samples}, "
            f"has_subject_ids={self.subject_ids is not None})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (self.X, self.y, self.subject_ids, self.X_val, self.y_val, self.subject_ids_val),
        )

    @property
    def num_samples(self) -> int:
        """Number of training rows (same as ``len(node)``)."""
        return int(self.X.shape[0])

    @property
    def num_features(self) -> int:
        """Number of feature columns."""
        return int(self.X.shape[1])

    @property
    def num_val_samples(self) -> int:
        """Number of validation rows (0 without a validation split)."""
        return 0 if self.X_val is None else int(self.X_val.shape[0])

    @property
    def has_validation(self) -> bool:
        """Whether the node holds at least one validation row."""
        return self.num_val_samples > 0

    @property
    def classes(self) -> IntArray:
        """Sorted unique labels of the training rows."""
        return np.unique(self.y)

    def without_subjects(self, subject_ids: Iterable[str]) -> NodeData:
        """Return a copy without the rows (training and validation) of these subjects.

        Parameters
        ----------
        subject_ids : iterable of str
            Subjects to remove (a single string is one id); unknown ids are ignored.

        Returns
        -------
        NodeData
            The remaining rows in their order (possibly none); an emptied validation split
            is dropped.

        Raises
        ------
        ConfigError
            If this node has no ``subject_ids``.
        """
        if self.subject_ids is None:
            hint = "Build the node with NodeData(X, y, subject_ids=...)."
            raise ConfigError("subject_ids", None, "set to remove a subject's rows", hint=hint)
        given: object = subject_ids  # the annotation says iterable; callers may not obey
        if not isinstance(given, str | Iterable):
            shown = Described(f"a {type(given).__name__}")
            raise ConfigError("subject_ids", shown, "a subject id (str) or an iterable of them")
        wanted = [subject_ids] if isinstance(subject_ids, str) else list(subject_ids)
        if not all(isinstance(v, str) for v in wanted):
            raise ConfigError("subject_ids", Described("non-str items"), "subject ids (str)")
        remove = np.asarray(wanted, dtype=np.str_)
        train = _pick((self.X, self.y, self.subject_ids), ~np.isin(self.subject_ids, remove))
        val: list[Any] = [None, None, None]
        if self.subject_ids_val is not None:
            keep_val = ~np.isin(self.subject_ids_val, remove)
            if keep_val.any():
                val = _pick((self.X_val, self.y_val, self.subject_ids_val), keep_val)
        return _rebuild(*train, *val)

    def split_validation(self, fraction: float, rng: np.random.Generator) -> NodeData:
        """Move ``floor(fraction * n)`` random training rows into the validation split.

        Parameters
        ----------
        fraction : float
            Share of the training rows to move, in ``[0, 1)``; one training row always stays.
        rng : numpy.random.Generator
            Chooses the rows.

        Returns
        -------
        NodeData
            Validation split: the old one (if any), then the moved rows. Training rows keep
            their order.

        Raises
        ------
        ConfigError
            If ``fraction`` is outside ``[0, 1)`` or ``rng`` is not a ``Generator``.
        """
        fraction = check_number("fraction", fraction, low=0.0, open_=False, high=1.0)
        if not isinstance(rng, np.random.Generator):
            raise ConfigError("rng", rng, "a numpy.random.Generator (np.random.default_rng(seed))")
        rows = self.num_samples
        moved = min(fraction_count(fraction, rows), max(rows - 1, 0))
        if moved == 0:
            return self
        order = rng.permutation(rows)
        arrays = (self.X, self.y, self.subject_ids)
        moved_rows = _pick(arrays, order[:moved])
        old_val = (self.X_val, self.y_val, self.subject_ids_val)
        val = [
            new if new is None or old is None else frozen(np.concatenate([old, new]))
            for old, new in zip(old_val, moved_rows, strict=True)
        ]
        return _rebuild(*_pick(arrays, np.sort(order[moved:])), *val)


def _pick(arrays: Iterable[npt.NDArray[Any] | None], index: npt.NDArray[Any]) -> list[Any]:
    """Read-only ``array[index]`` of each array (``None`` stays ``None``)."""
    return [None if array is None else frozen(array[index]) for array in arrays]


def _rebuild(*fields: Any) -> NodeData:
    """Build a NodeData from its six fields in order (also how it is unpickled)."""
    X, y, ids, X_val, y_val, ids_val = fields
    return NodeData(X, y, ids, X_val=X_val, y_val=y_val, subject_ids_val=ids_val)
