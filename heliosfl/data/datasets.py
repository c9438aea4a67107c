"""Real datasets that ship inside scikit-learn, split and standardised without test leakage.

Only the sets bundled with scikit-learn are used (no download, so everything works offline):
``"breast_cancer"`` (Wisconsin diagnostic, 569 rows, 30 features, 2 classes) and
``"digits"`` (8x8 handwritten digits, 1,797 rows, 64 features, 10 classes). The split is
stratified and seeded; the :class:`Standardizer` is fitted on the training part only and
then applied to both parts, so nothing about the test rows leaks into training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.data.nodedata import (
    Described,
    FloatArray,
    IntArray,
    NodeData,
    as_features,
    check_int,
    check_number,
    frozen,
)
from heliosfl.errors import ConfigError

__all__ = ["DATASETS", "DatasetInfo", "Standardizer", "load_dataset"]


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """What a bundled dataset holds, for listings and widgets.

    Parameters
    ----------
    name : str
        The name :func:`load_dataset` takes.
    num_samples, num_features, num_classes : int
        Size of the whole set (before the train/test split).
    description : str
        One line on what the rows are.
    """

    name: str
    num_samples: int
    num_features: int
    num_classes: int
    description: str


DATASETS: Mapping[str, DatasetInfo] = MappingProxyType(
    {
        "breast_cancer": DatasetInfo(
            "breast_cancer", 569, 30, 2, "Wisconsin diagnostic breast cancer (benign/malignant)"
        ),
        "digits": DatasetInfo("digits", 1797, 64, 10, "8x8 images of handwritten digits 0-9"),
    }
)
"""The bundled datasets by name (read-only)."""


def _loader(name: str) -> Callable[..., Any]:
    """scikit-learn's bundled loader (imported on first use: it is slow to import)."""
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True, eq=False)
class Standardizer:
    """Per-feature standardisation, ``(X - mean) / scale``.

    Parameters
    ----------
    mean : array_like of shape (d,)
        Per-feature mean of the data it was fitted on.
    scale : array_like of shape (d,)
        Per-feature population standard deviation (``ddof=0``); constant columns get 1 so
        they map to 0 instead of dividing by zero.

    Raises
    ------
    ConfigError
        If ``mean`` and ``scale`` are not finite 1-D arrays of one length, or a scale is not
        positive.

    Examples
    --------
    >>> s = Standardizer.fit([[0.0, 5.0], [2.0, 5.0]])
    >>> s.mean.tolist(), s.scale.tolist()
    ([1.0, 5.0], [1.0, 1.0])
    >>> s.transform([[2.0, 5.0]]).tolist()
    [[1.0, 0.0]]
    """

    mean: FloatArray
    scale: FloatArray

    def __post_init__(self) -> None:
        mean = _vector("mean", self.mean)
        scale = _vector("scale", self.scale)
        if scale.shape != mean.shape:
            found = Described(f"{scale.shape[0]} values for {mean.shape[0]} means")
            raise ConfigError("scale", found, "one value per feature, like mean")
        if not (scale > 0).all():
            raise ConfigError("scale", Described("a value <= 0"), "positive in every column")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)

    @classmethod
    def fit(cls, X: npt.ArrayLike) -> Standardizer:
        """Fit the per-feature mean and scale of ``X``.

        Parameters
        ----------
        X : array_like of shape (n, d)
            Finite data with at least one row: the training part only.

        Returns
        -------
        Standardizer
            The fitted transform.

        Raises
        ------
        ConfigError
            If ``X`` is not a finite 2-D array with at least one row.
        """
        data = as_features("X", X)
        if data.shape[0] == 0:
            raise ConfigError("X", Described("0 rows"), "at least one row to fit on")
        mean = data.mean(axis=0)
        scale = data.std(axis=0)
        # A constant column's std can come out as rounding noise rather than exactly 0.
        tiny = 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)
        scale[scale <= tiny] = 1.0
        return cls(mean, scale)

    @property
    def num_features(self) -> int:
        """Number of columns it was fitted on."""
        return int(self.mean.shape[0])

    def transform(self, X: npt.ArrayLike) -> FloatArray:
        """Return ``(X - mean) / scale`` as a new array.

        Parameters
        ----------
        X : array_like of shape (n, d)
            Finite data with the fitted number of columns.

        Returns
        -------
        numpy.ndarray of shape (n, d)
            Standardised copy (writable; ``X`` is not changed).

        Raises
        ------
        ConfigError
            If ``X`` is not finite and 2-D, or has a different number of columns.
        """
        data = as_features("X", X)
        if data.shape[1] != self.num_features:
            found = Described(f"{data.shape[1]} columns")
            raise ConfigError("X", found, f"{self.num_features} columns, as fitted")
        return (data - self.mean) / self.scale


def load_dataset(
    name: str, *, seed: int = 0, test_fraction: float = 0.2, standardize: bool = True
) -> tuple[NodeData, NodeData]:
    """Load a bundled dataset as a stratified, seeded (train, test) pair.

    Parameters
    ----------
    name : str
        ``"breast_cancer"`` or ``"digits"`` (the keys of :data:`DATASETS`).
    seed : int, default 0
        Seed of the split; the same seed gives the same rows in each part.
    test_fraction : float, default 0.2
        Share of every class that goes to the test part, in ``(0, 1)``; rounded per class,
        with at least one row of every class in each part.
    standardize : bool, default True
        Standardise features with a :class:`Standardizer` fitted on the training part only
        and applied to both parts.

    Returns
    -------
    train, test : NodeData
        Rows in random order, each with ``subject_ids`` such as ``"breast_cancer-000123"``
        (the row's index in the original set), so erasure workflows have ids to work on.

    Raises
    ------
    ConfigError
        If ``name`` is not a bundled dataset, ``seed`` is not an integer ``>= 0``,
        ``test_fraction`` is outside ``(0, 1)`` or ``standardize`` is not a bool.

    Examples
    --------
    >>> train, test = load_dataset("breast_cancer", seed=0)
    >>> train.num_features, len(train) + len(test)
    (30, 569)
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ConfigError("name", name, "one of " + ", ".join(repr(key) for key in DATASETS))
    seed = check_int("seed", seed, minimum=0)
    test_fraction = check_number("test_fraction", test_fraction, low=0.0, open_=True, high=1.0)
    if not isinstance(standardize, bool):
        raise ConfigError("standardize", standardize, "True or False")

    features, labels = _loader(name)(return_X_y=True)
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    digits = np.char.zfill(np.arange(y.shape[0]).astype(np.str_), 6)
    ids = np.char.add(f"{name}-", digits)
    train, test = _stratified_split(y, test_fraction, np.random.default_rng(seed))
    X_train, X_test = X[train], X[test]
    if standardize:
        standardizer = Standardizer.fit(X_train)
        X_train, X_test = standardizer.transform(X_train), standardizer.transform(X_test)
    return (
        NodeData(frozen(X_train), frozen(y[train]), frozen(ids[train])),
        NodeData(frozen(X_test), frozen(y[test]), frozen(ids[test])),
    )


def _vector(name: str, value: object) -> FloatArray:
    """``value`` as a read-only, finite, 1-D float64 copy."""
    raw = np.asarray(value)
    if raw.dtype.kind not in "biuf" or raw.ndim != 1 or not np.isfinite(raw).all():
        found = Described(f"an array of dtype {raw.dtype} and shape {raw.shape}")
        raise ConfigError(name, found, "a finite 1-D array of numbers (one per feature)")
    return frozen(np.array(raw, dtype=np.float64))


def _stratified_split(
    y: IntArray, test_fraction: float, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """Row indices of (train, test): ``round(test_fraction * n_c)`` of each class to test."""
    train_parts, test_parts = [], []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        take = round(test_fraction * rows.shape[0])
        if rows.shape[0] >= 2:
            take = min(max(take, 1), rows.shape[0] - 1)
        test_parts.append(rows[:take])
        train_parts.append(rows[take:])
    train = rng.permutation(np.concatenate(train_parts))
    test = rng.permutation(np.concatenate(test_parts))
    return train.astype(np.int64), test.astype(np.int64)
