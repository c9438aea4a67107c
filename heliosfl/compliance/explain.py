"""Explanations of model decisions: "meaningful information about the logic involved".

GDPR Art. 13(2)(f), 14(2)(g), 15(1)(h) and 22 give a person subject to an automated
decision the right to meaningful information about its logic. :func:`explain_prediction`
says which features pushed one decision up or down, relative to a reference row;
:func:`~heliosfl.compliance.importance.feature_importance` says which features a model
relies on across a data set.

Linear models get exact additive contributions; an MLP gets integrated gradients [1]_, whose
completeness is only approximate (the gap is reported); any other Model gets occlusion, on a
log-probability scale and not additive. :func:`explain_prediction` states each guarantee.

Permutation importance [2]_ [3]_ is model-agnostic and describes the model on the given data,
not the causal effect of a feature in the world. Neither is a substitute for a human review.

References
----------
.. [1] M. Sundararajan, A. Taly and Q. Yan, "Axiomatic Attribution for Deep Networks",
   ICML 2017.
.. [2] L. Breiman, "Random Forests", Machine Learning 45(1), 2001.
.. [3] A. Fisher, C. Rudin and F. Dominici, "All Models are Wrong, but Many are Useful:
   Learning a Variable's Importance by Studying an Entire Class of Prediction Models
   Simultaneously", JMLR 20(177), 2019.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ConfigError
from heliosfl.models import MLP, LogisticRegression, Model, SoftmaxRegression, check_params
from heliosfl.models.base import FloatArray, check_int

__all__ = ["FeatureContribution", "PredictionExplanation", "explain_prediction"]

_LINEAR_METHODS = ("exact_linear", "occlusion")
_MLP_METHODS = ("integrated_gradients", "gradient_x_input", "occlusion")
_MEANING = {
    "exact_linear": "w_i * (x_i - baseline_i): exact shares of the logit that add up to "
    "score - baseline score.",
    "integrated_gradients": "(x_i - baseline_i) times the gradient averaged along the straight "
    "path from the baseline to x: shares of the logit that add up to score - baseline score "
    "only approximately (see the gap).",
    "gradient_x_input": "(x_i - baseline_i) times the gradient at x: a local linearisation of "
    "the logit, not additive in general (see the gap).",
    "occlusion": "log p(class | x) minus the same with feature i alone set to its baseline "
    "value: a log-probability scale, and not additive.",
}
_T = TypeVar("_T")


class _Shown(str):
    """A description that :class:`ConfigError` shows without quotes (never raw values)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _top(items: Sequence[_T], k: int, size: Callable[[_T], float]) -> list[_T]:
    k = check_int("k", k, 1)
    return sorted(items, key=lambda item: -abs(size(item)))[:k]  # stable: ties in order


@dataclass(frozen=True, slots=True)
class FeatureContribution:
    """One feature's share of an explained score.

    Attributes
    ----------
    name : str
        Feature name.
    value, baseline : float
        The feature's value in the explained row and in the reference row.
    contribution : float
        How much the feature raised (> 0) or lowered (< 0) the score, on the scale of
        :attr:`PredictionExplanation.method`.
    """

    name: str
    value: float
    baseline: float
    contribution: float


@dataclass(frozen=True, slots=True)
class PredictionExplanation:
    """Why a model gave one row the score it did for one class.

    Attributes
    ----------
    method : str
        ``"exact_linear"``, ``"integrated_gradients"``, ``"gradient_x_input"`` or
        ``"occlusion"`` (see the module docstring for what each guarantees).
    target_class, predicted_class : int
        The explained class and the model's most probable class.
    probability : float
        ``p(target_class | x)``.
    score, baseline_score : float
        The explained score at ``x`` and at the baseline: the class logit (log-odds for
        logistic regression), or ``log p(target_class | .)`` for occlusion.
    contributions : tuple of FeatureContribution
        One per feature, in feature order.
    completeness_gap : float or None
        ``score - baseline_score - sum(contributions)``: rounding error for exact_linear,
        the approximation error otherwise; None for occlusion.
    """

    method: str
    target_class: int
    predicted_class: int
    probability: float
    score: float
    baseline_score: float
    contributions: tuple[FeatureContribution, ...]
    completeness_gap: float | None

    def top(self, k: int) -> list[FeatureContribution]:
        """Return the ``k`` contributions largest in absolute value, largest first."""
        return _top(self.contributions, k, lambda f: f.contribution)

    def to_text(self, top: int = 10) -> str:
        """Return a plain-text table of the ``top`` largest contributions."""
        c = self.target_class
        scale = "log p" if self.method == "occlusion" else "logit"
        rows = [("feature", "value", "contribution", "effect")]
        for f in self.top(top):
            effect = "raises" if f.contribution > 0 else "lowers" if f.contribution < 0 else "-"
            effect = effect if effect == "-" else f"{effect} the score of class {c}"
            rows.append((f.name, f"{f.value:.4g}", f"{f.contribution:+.4g}", effect))
        head = (
            f"Explanation of the score of class {c} (predicted class {self.predicted_class}, "
            f"p = {self.probability:.3f}): score ({scale}) {self.score:.4g}, baseline "
            f"score {self.baseline_score:.4g}. Method {self.method}: each contribution is "
            f"{_MEANING[self.method]}"
        )
        lines = textwrap.wrap(head, width=88)
        if self.completeness_gap is not None:
            lines.append(
                f"Completeness gap (score - baseline score - sum): {self.completeness_gap:.3g}."
            )
        lines.append(_table(rows))
        if len(rows) - 1 < len(self.contributions):
            lines.append(f"({len(rows) - 1} of {len(self.contributions)} features shown)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict (str, int, float, None and lists only)."""
        out = asdict(self)
        out["contributions"] = [asdict(f) for f in self.contributions]
        return out


def _check_model(model: object) -> Model:
    if not isinstance(model, Model):
        allowed = "an object implementing the heliosfl Model protocol (e.g. LogisticRegression)"
        raise ConfigError("model", _Shown(f"a {type(model).__name__}"), allowed)
    return model


def _floats(
    field: str, value: object, allowed: str, shape_ok: Callable[[tuple[int, ...]], bool]
) -> FloatArray:
    try:
        array = np.array(value, dtype=np.float64)  # a copy: the caller's data is never changed
    except (TypeError, ValueError):
        raise ConfigError(field, _Shown(f"a non-numeric {type(value).__name__}"), allowed) from None
    if not shape_ok(array.shape):
        raise ConfigError(field, _Shown(f"an array of shape {array.shape}"), allowed)
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ConfigError(field, _Shown(f"{bad} NaN or Inf values"), allowed)
    return array


def _check_row(field: str, value: object, d: int) -> FloatArray:
    allowed = f"a 1-D array of {d} finite floats, one row (input_dim={d})"
    return _floats(field, value, allowed, lambda shape: shape == (d,))


def _check_names(names: object, d: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"x{i}" for i in range(d))
    allowed = f"a sequence of {d} distinct str, one per feature"
    if isinstance(names, str | bytes) or not isinstance(names, Sequence | np.ndarray):
        raise ConfigError("feature_names", _Shown(f"a {type(names).__name__}"), allowed)
    found = list(names)
    if len(found) != d:
        raise ConfigError("feature_names", _Shown(f"{len(found)} names"), allowed)
    for item in found:
        if not isinstance(item, str):
            raise ConfigError(
                "feature_names", _Shown(f"an item of type {type(item).__name__}"), allowed
            )
    if len(set(found)) != d:
        duplicate = next(item for item in found if found.count(item) > 1)
        raise ConfigError("feature_names", _Shown(f"duplicate name {duplicate!r}"), allowed)
    return tuple(str(item) for item in found)


def _check_class(value: object, classes: int) -> int:
    allowed = f"an int in [0, {classes})"
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ConfigError("target_class", value, allowed)
    if not 0 <= int(value) < classes:
        raise ConfigError("target_class", value, allowed)
    return int(value)


def _log_proba(model: Model, params: FloatArray, rows: FloatArray, target: int) -> FloatArray:
    proba = model.predict_proba(params, rows)[:, target]
    return np.log(np.maximum(proba, np.finfo(np.float64).tiny))


def explain_prediction(
    model: Model,
    params: npt.ArrayLike,
    x: npt.ArrayLike,
    *,
    feature_names: Sequence[str] | None = None,
    baseline: npt.ArrayLike | None = None,
    target_class: int | None = None,
    method: str = "auto",
    steps: int = 64,
) -> PredictionExplanation:
    """Split one prediction's score into a contribution per feature.

    Parameters
    ----------
    model : Model
        The architecture; gradient methods need a bundled model.
    params : array_like
        Its flat parameter vector.
    x : array_like
        The row to explain, shape ``(input_dim,)``.
    feature_names : sequence of str, optional
        Distinct names, one per feature; default ``"x0", "x1", ...``.
    baseline : array_like, optional
        The reference row, shape ``(input_dim,)``. Default zeros, which for standardised
        features is the mean person: contributions then answer "why this decision rather
        than the one for an average case?".
    target_class : int, optional
        The class whose score is explained; default the predicted class.
    method : str, default "auto"
        ``"auto"`` picks ``"exact_linear"`` for LogisticRegression and SoftmaxRegression,
        ``"integrated_gradients"`` for MLP and ``"occlusion"`` for any other Model.
        ``"gradient_x_input"`` is allowed for MLP, ``"occlusion"`` for every model.
    steps : int, default 64
        Riemann midpoint steps of integrated gradients, ``>= 1``.

    Returns
    -------
    PredictionExplanation
        Scores, contributions in feature order and, except for occlusion, the
        completeness gap ``score - baseline_score - sum(contributions)``.

    Raises
    ------
    ConfigError
        If ``model`` is not a Model, ``params`` has the wrong length, ``x`` or ``baseline``
        is not a finite row of ``input_dim`` values, ``feature_names`` are not distinct
        str of the right number, ``target_class`` is out of range, ``steps < 1``, or
        ``method`` is unknown or not applicable to the model (the message lists what is).

    Notes
    -----
    The score is the class logit: the log-odds ``z = x . w + b`` for logistic regression
    (``-z`` for class 0), ``(x @ W + b)[c]`` for softmax regression and the output-layer
    logit for an MLP. For ``"exact_linear"``, ``baseline_score + sum(contributions)``
    equals the score up to float rounding. For ``"integrated_gradients"`` [1]_ completeness
    holds only approximately (ReLU kinks and the quadrature leave a gap, reported, that
    shrinks with ``steps``). ``"gradient_x_input"`` is exact only for a linear model.
    ``"occlusion"`` uses ``log p(c | x)`` (probabilities clipped at the smallest positive
    float): a different scale from the logit, and the contributions do not add up.

    References
    ----------
    .. [1] M. Sundararajan, A. Taly and Q. Yan, "Axiomatic Attribution for Deep Networks",
       ICML 2017.
    """
    model = _check_model(model)
    flat = check_params(model, params)
    d = model.input_dim
    row = _check_row("x", x, d)
    base = np.zeros(d) if baseline is None else _check_row("baseline", baseline, d)
    names = _check_names(feature_names, d)
    steps = check_int("steps", steps, 1)
    allowed: tuple[str, ...]
    if isinstance(model, LogisticRegression | SoftmaxRegression):
        allowed = _LINEAR_METHODS
    elif isinstance(model, MLP):
        allowed = _MLP_METHODS
    else:
        allowed = ("occlusion",)
    if not isinstance(method, str) or method not in ("auto", *allowed):
        listing = ", ".join(repr(m) for m in ("auto", *allowed))
        raise ConfigError("method", method, f"one of {listing} for a {type(model).__name__}")
    chosen = allowed[0] if method == "auto" else method
    proba = model.predict_proba(flat, row[None, :])[0]
    predicted = int(np.argmax(proba))
    target = predicted if target_class is None else _check_class(target_class, len(proba))
    delta = row - base
    if isinstance(model, LogisticRegression | SoftmaxRegression) and chosen == "exact_linear":
        weights, bias = model._score_weights(flat)
        ends = np.vstack([row, base]) @ weights[:, target] + bias[target]
        contrib = weights[:, target] * delta
    elif isinstance(model, MLP) and chosen != "occlusion":
        ends, grads = model._score_and_input_grad(flat, np.vstack([row, base]), target)
        if chosen == "integrated_gradients":  # Riemann midpoint rule along the straight path
            path = base + ((np.arange(steps) + 0.5) / steps)[:, None] * delta
            grads = model._score_and_input_grad(flat, path, target)[1].mean(axis=0, keepdims=True)
        contrib = grads[0] * delta
    else:  # occlusion: rows 0..d-1 each have one feature set to the baseline, then x, baseline
        rows = np.vstack([np.tile(row, (d, 1)), row, base])
        rows[np.arange(d), np.arange(d)] = base
        logp = _log_proba(model, flat, rows, target)
        ends, contrib = logp[d:], logp[d] - logp[:d]
    score, base_score = float(ends[0]), float(ends[1])
    gap = None if chosen == "occlusion" else score - base_score - float(contrib.sum())
    return PredictionExplanation(
        method=chosen,
        target_class=target,
        predicted_class=predicted,
        probability=float(proba[target]),
        score=score,
        baseline_score=base_score,
        contributions=tuple(
            FeatureContribution(n, float(v), float(b), float(c))
            for n, v, b, c in zip(names, row, base, contrib, strict=True)
        ),
        completeness_gap=gap,
    )
