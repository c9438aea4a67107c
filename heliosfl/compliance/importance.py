"""Global feature importance by permutation: which features a model relies on.

Permutation importance [1]_ [2]_ is model-agnostic and describes the model on the given data,
not the causal effect of a feature in the world. Per-prediction explanations are in
:mod:`heliosfl.compliance.explain`.

References
----------
.. [1] L. Breiman, "Random Forests", Machine Learning 45(1), 2001.
.. [2] A. Fisher, C. Rudin and F. Dominici, "All Models are Wrong, but Many are Useful:
   Learning a Variable's Importance by Studying an Entire Class of Prediction Models
   Simultaneously", JMLR 20(177), 2019.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from heliosfl.compliance.explain import _check_model, _check_names, _floats, _Shown, _table, _top
from heliosfl.errors import ConfigError
from heliosfl.models import Model, check_params
from heliosfl.models.base import FloatArray, IntArray, check_int

__all__ = ["FeatureImportance", "GlobalImportance", "feature_importance"]


@dataclass(frozen=True, slots=True)
class FeatureImportance:
    """Permutation importance of one feature: mean and standard deviation over repeats."""

    name: str
    mean: float
    std: float


@dataclass(frozen=True, slots=True)
class GlobalImportance:
    """Permutation importance of every feature of a model on a data set.

    Attributes
    ----------
    metric : str
        ``"accuracy"`` (importance = drop in accuracy) or ``"loss"`` (importance = rise in
        mean cross-entropy). Either way, larger means the model relies more on the feature.
    baseline_value : float
        The metric on the unpermuted data.
    importances : tuple of FeatureImportance
        One per feature, in feature order.
    repeats : int
        Permutations per feature.
    """

    metric: str
    baseline_value: float
    importances: tuple[FeatureImportance, ...]
    repeats: int

    def top(self, k: int) -> list[FeatureImportance]:
        """Return the ``k`` importances largest in absolute mean, largest first."""
        return _top(self.importances, k, lambda f: f.mean)

    def to_text(self, top: int = 10) -> str:
        """Return a plain-text table of the ``top`` most important features."""
        change = "drop in accuracy" if self.metric == "accuracy" else "rise in mean loss"
        rows = [("feature", "importance", "std")]
        rows += [(f.name, f"{f.mean:+.4g}", f"{f.std:.2g}") for f in self.top(top)]
        lines = [
            *textwrap.wrap(
                f"Permutation importance ({self.repeats} repeats; baseline {self.metric} "
                f"{self.baseline_value:.4g}): the mean {change} when the feature's column is "
                "shuffled. Near zero or negative: the model does not rely on it.",
                width=88,
            ),
            _table(rows),
        ]
        if len(rows) - 1 < len(self.importances):
            lines.append(f"({len(rows) - 1} of {len(self.importances)} features shown)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict (str, int, float and lists only)."""
        out = asdict(self)
        out["importances"] = [asdict(f) for f in self.importances]
        return out


def _check_xy(X: object, y: object, d: int, classes: int) -> tuple[FloatArray, IntArray]:  # noqa: N803
    allowed = f"a non-empty 2-D array of finite floats with input_dim={d} columns"
    X_arr = _floats("X", X, allowed, lambda s: len(s) == 2 and s[0] > 0 and s[1] == d)  # noqa: N806
    n = X_arr.shape[0]
    labels = np.asarray(y)
    allowed = f"a 1-D array of {n} integer labels in [0, {classes}) (one per row of X)"
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ConfigError("y", _Shown(f"an array of shape {labels.shape}"), allowed)
    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels % 1 == 0).all():
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iub":
        raise ConfigError("y", _Shown(f"an array of dtype {labels.dtype}"), allowed)
    if labels.min() < 0 or labels.max() >= classes:
        shown = _Shown(f"labels from {labels.min()} to {labels.max()}")
        raise ConfigError("y", shown, allowed)
    return X_arr, labels.astype(np.int64)


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        allowed = "a numpy.random.Generator, e.g. np.random.default_rng(0)"
        raise ConfigError("rng", _Shown(f"a {type(rng).__name__}"), allowed)
    return rng


def feature_importance(
    model: Model,
    params: npt.ArrayLike,
    X: npt.ArrayLike,  # noqa: N803 - the feature matrix, as everywhere
    y: npt.ArrayLike,
    *,
    feature_names: Sequence[str] | None = None,
    repeats: int = 5,
    rng: np.random.Generator,
    metric: str = "accuracy",
) -> GlobalImportance:
    """Permutation importance of each feature: how much worse the model does without it.

    For each feature ``j`` and each of ``repeats`` rounds, column ``j`` of a copy of ``X`` is
    shuffled with ``rng`` (breaking its link with ``y`` and the other columns) and the model
    is evaluated again [1]_ [2]_. Features are visited in order, so the same seed gives the
    same result. ``X`` itself is never modified.

    Parameters
    ----------
    model : Model
        Any Model; only ``model.evaluate`` is used.
    params : array_like
        Its flat parameter vector.
    X : array_like
        Features, shape ``(n, input_dim)``, ``n >= 1``.
    y : array_like
        Integer labels in ``[0, num_classes)``, shape ``(n,)``.
    feature_names : sequence of str, optional
        Distinct names, one per feature; default ``"x0", "x1", ...``.
    repeats : int, default 5
        Permutations per feature, ``>= 1``.
    rng : numpy.random.Generator
        Source of the permutations.
    metric : {"accuracy", "loss"}, default "accuracy"
        Importance is the drop in accuracy, or the rise in mean cross-entropy.

    Returns
    -------
    GlobalImportance
        Per feature, the mean and (population) standard deviation over repeats; larger
        means the model relies more on the feature. Near zero or negative means it does
        not, on this data; correlated features can share (and hide) importance.

    Raises
    ------
    ConfigError
        If ``model`` is not a Model, ``params`` has the wrong length, ``X`` and ``y`` are
        not a non-empty finite matrix with matching labels, ``feature_names`` are invalid,
        ``repeats < 1``, ``rng`` is not a Generator or ``metric`` is unknown.

    References
    ----------
    .. [1] L. Breiman, "Random Forests", Machine Learning 45(1), 2001.
    .. [2] A. Fisher, C. Rudin and F. Dominici, "All Models are Wrong, but Many are
       Useful", JMLR 20(177), 2019.
    """
    model = _check_model(model)
    flat = check_params(model, params)
    d = model.input_dim
    work, labels = _check_xy(X, y, d, model.num_classes)
    names = _check_names(feature_names, d)
    repeats = check_int("repeats", repeats, 1)
    generator = _check_rng(rng)
    if not isinstance(metric, str) or metric not in ("accuracy", "loss"):
        raise ConfigError("metric", metric, "one of 'accuracy', 'loss'")
    sign = 1.0 if metric == "accuracy" else -1.0
    reference = float(model.evaluate(flat, work, labels)[metric])
    importances = []
    for j, name in enumerate(names):
        column = work[:, j].copy()
        drops = np.empty(repeats)
        for r in range(repeats):
            work[:, j] = column[generator.permutation(column.shape[0])]
            drops[r] = sign * (reference - float(model.evaluate(flat, work, labels)[metric]))
        work[:, j] = column
        importances.append(FeatureImportance(name, float(drops.mean()), float(drops.std())))
    return GlobalImportance(
        metric=metric, baseline_value=reference, importances=tuple(importances), repeats=repeats
    )
