"""Gradient leakage test: invert a dense layer's gradient exactly, as an attacker would.

For one example through a dense layer ``z = W^T x + b`` the gradient of any loss obeys
``dL/dW[:, j] = x * dL/db[j]``, so every unit ``j`` with ``dL/db[j] != 0`` hands out the
input itself: ``x = dL/dW[:, j] / dL/db[j]`` [1]_ [2]_. A single-example gradient is rank
one, so all these candidates agree; a gradient summed over many examples, clipped and
noised (DP-FedAvg) or securely aggregated, gives candidates that disagree and match no
input. Within a batch, ReLU units that fire for one example only still agree with each
other and give that example away [4]_, so any two agreeing units count as a leak. The label
leaks too: the output bias gradient of a softmax cross-entropy layer for one example is
``p - onehot(y)``, whose only negative entry is at ``y`` [3]_.

A parameter *update* of local SGD on one example (``-lr`` times a sum of such gradients,
even over several steps or with a proximal term) keeps the first layer rank one, so the
same test applies to updates; pass ``update=True`` so the label's sign is read correctly.

References
----------
.. [1] L. T. Phong, Y. Aono, T. Hayashi, L. Wang and S. Moriai, "Privacy-Preserving Deep
   Learning via Additively Homomorphic Encryption", IEEE TIFS 13(5), 2018.
.. [2] J. Geiping, H. Bauermeister, H. Droege and M. Moeller, "Inverting Gradients - How
   easy is it to break privacy in federated learning?", NeurIPS 2020.
.. [3] B. Zhao, K. R. Mopuri and H. Bilen, "iDLG: Improved Deep Leakage from Gradients",
   arXiv:2001.02610, 2020.
.. [4] L. Fowl, J. Geiping, W. Czaja, M. Goldblum and T. Goldstein, "Robbing the Fed:
   Directly Obtaining Private Data in Federated Learning with Modified Models", ICLR 2022.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heliosfl.data.nodedata import Described
from heliosfl.errors import ConfigError
from heliosfl.models.base import FloatArray, Model

__all__ = ["LeakageReport", "gradient_leakage_test", "reconstruct_inputs"]

INVERSION = "dense_layer_inversion"
LABEL_RECOVERY = "idlg_label_recovery"
_NEGLIGIBLE = 1e-12  # a bias gradient below this fraction of the largest one is skipped
_MAX_COMPARED = 256  # candidates (largest bias gradients first) compared with each other/inputs


@dataclass(frozen=True, slots=True)
class LeakageReport:
    """What the gradient-inversion attacks achieved on one gradient or update.

    Attributes
    ----------
    safe : bool
        False when an input is exactly reconstructible: the candidates of two or more units
        agree, the layer gives a single candidate and no ``inputs`` rule it out, or a
        candidate matches a row of ``inputs``.
    attacks : tuple of str
        The attacks run: ``"dense_layer_inversion"`` and, with a model,
        ``"idlg_label_recovery"``.
    reconstructions : int
        Candidate inputs, one per unit with a non-negligible bias gradient.
    matched_inputs : int
        Rows of ``inputs`` that some candidate matches within ``rtol``.
    max_consistency : float
        Largest fraction of candidates agreeing within ``rtol`` with one of them: 1.0 for a
        single-example gradient, about ``1/reconstructions`` for a batch, 0.0 if none.
    evidence : str
        Layer, units, relative spread, matches; never a reconstructed or input value.
    label_recovered : int or None
        The label, when the gradient is consistent with a single example and the output
        bias gradient gives it away.
    """

    safe: bool
    attacks: tuple[str, ...]
    reconstructions: int
    matched_inputs: int
    max_consistency: float
    evidence: str
    label_recovered: int | None = None


def _as_vector(gradient: npt.ArrayLike, model: Model | None) -> FloatArray:
    given: object = model  # callers may pass anything
    if given is not None and not isinstance(given, Model):
        shown = Described(f"a {type(given).__name__}")
        raise ConfigError("model", shown, "a heliosfl model (from make_model) or None")
    try:
        g = np.asarray(gradient, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(
            "gradient", Described("a non-numeric value"), "a numeric vector"
        ) from None
    if g.ndim != 1:
        raise ConfigError("gradient", Described(f"an array of shape {g.shape}"), "a 1-D vector")
    if model is None and g.size < 2:
        allowed = "a vector of at least 2 values (d weights, then 1 bias)"
        raise ConfigError("gradient", Described(f"length {g.size}"), allowed)
    if model is not None and g.size != model.num_params:
        allowed = f"a vector of {model.num_params} values, the parameter count of {model!r}"
        raise ConfigError("gradient", Described(f"length {g.size}"), allowed)
    if not np.isfinite(g).all():
        bad = Described(f"{int(np.count_nonzero(~np.isfinite(g)))} NaN or Inf values")
        raise ConfigError("gradient", bad, "finite (no NaN or Inf)")
    return g


def _first_layer(g: FloatArray, model: Model | None) -> tuple[FloatArray, FloatArray, str]:
    """Weight gradient ``(d, k)``, bias gradient ``(k,)`` and a name of the first layer."""
    if model is None:
        d, k, name = g.size - 1, 1, "dense layer (no model: d weights then 1 bias)"
    else:
        kind = model.model_type
        d = model.input_dim
        if kind == "logistic_regression":
            k = 1
        elif kind == "softmax_regression":
            k = model.num_classes
        elif kind == "mlp":
            k = int(model.hidden_layers[0])  # type: ignore[attr-defined]
        else:
            allowed = "a LogisticRegression, SoftmaxRegression or MLP"
            raise ConfigError("model", Described(f"model_type {kind!r}"), allowed)
        name = f"{kind} first dense layer"
    units = "unit" if k == 1 else "units"
    return g[: d * k].reshape(d, k), g[d * k : d * k + k], f"{name}, {d} inputs x {k} {units}"


def reconstruct_inputs(gradient: npt.ArrayLike, *, model: Model | None = None) -> FloatArray:
    """Candidate inputs ``x_j = dW[:, j] / db[j]`` from the first dense layer's gradient.

    Parameters
    ----------
    gradient : array_like
        A gradient or update laid out as ``model``'s parameters; without a model, ``d``
        weights then one bias (the logistic-regression layout).
    model : Model, optional
        A :class:`LogisticRegression`, :class:`SoftmaxRegression` or :class:`MLP`.

    Returns
    -------
    FloatArray
        Shape ``(k, d)``: one row per unit with a non-negligible bias gradient, largest
        ``|db[j]|`` first. For a single-example gradient each row *is* the input (PHI).

    Raises
    ------
    ConfigError
        If the gradient is not a finite 1-D vector of the model's length, or the model is
        not one of the three above.

    Examples
    --------
    >>> reconstruct_inputs([0.1, 0.2, 0.3, 0.4, 0.5]).tolist()
    [[0.2, 0.4, 0.6, 0.8]]

    References
    ----------
    .. [1] L. T. Phong et al., "Privacy-Preserving Deep Learning via Additively Homomorphic
       Encryption", IEEE TIFS, 2018, section 3.
    """
    weights, bias, _ = _first_layer(_as_vector(gradient, model), model)
    return _candidates(weights, bias)


def _candidates(weights: FloatArray, bias: FloatArray) -> FloatArray:
    scale = float(np.abs(bias).max(initial=0.0))
    units = np.flatnonzero(np.abs(bias) > _NEGLIGIBLE * scale)
    units = units[np.argsort(-np.abs(bias[units]), kind="stable")]
    with np.errstate(over="ignore"):
        candidates: FloatArray = (weights[:, units] / bias[units]).T
    return candidates[np.isfinite(candidates).all(axis=1)]


def _relative_errors(candidates: FloatArray, reference: FloatArray) -> FloatArray:
    scale = max(float(np.abs(reference).max(initial=0.0)), 1e-300)
    errors: FloatArray = np.abs(candidates - reference).max(axis=1) / scale
    return errors


def _label(output_bias: FloatArray, update: bool) -> int | None:
    g = -output_bias if update else output_bias
    if g.size == 1:  # logistic regression: dL/dz = sigmoid(z) - y is negative iff y = 1
        return None if g[0] == 0.0 else int(g[0] < 0.0)
    negative = np.flatnonzero(g < 0.0)
    return int(negative[0]) if negative.size == 1 else None


def _as_inputs(inputs: npt.ArrayLike | None, d: int) -> FloatArray | None:
    if inputs is None:
        return None
    allowed = f"a finite 2-D array with {d} columns (one input per row)"
    try:
        rows = np.asarray(inputs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError("inputs", Described("a non-numeric value"), allowed) from None
    rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
    if rows.ndim != 2 or rows.shape[1] != d or not np.isfinite(rows).all():
        raise ConfigError("inputs", Described(f"an array of shape {rows.shape}"), allowed)
    return rows


def gradient_leakage_test(
    gradient: npt.ArrayLike,
    *,
    model: Model | None = None,
    inputs: npt.ArrayLike | None = None,
    rtol: float = 1e-6,
    update: bool = False,
) -> LeakageReport:
    """Run the exact dense-layer inversion (and label recovery) on a gradient or update.

    Every unit ``j`` of the first dense layer with a non-negligible bias gradient yields a
    candidate input ``x_j = dW[:, j] / db[j]`` (:func:`reconstruct_inputs`). The verdict
    is *unsafe* when

    - two or more candidates agree within ``rtol`` (relative max-norm): the gradient is
      rank one on those units, as one example's gradient is, and the input is recovered
      to rounding error;
    - the layer gives exactly one candidate (a single unit, as in logistic regression or
      the guide's ``[0.1, 0.2, 0.3, 0.4, 0.5]``) and no ``inputs`` are given: any such
      gradient could come from one example, and nothing in it says otherwise;
    - a candidate matches a row of ``inputs`` within ``rtol``.

    Otherwise it is reported *safe*, which means only that these attacks found no exact
    single-example reconstruction (a sum over many examples, clipped and noised or
    securely aggregated, gives disagreeing candidates that match no input). It is not a
    privacy guarantee: other attacks (optimisation-based inversion, membership inference)
    may still learn from the gradient; differential privacy is what bounds that. When the
    gradient is consistent with one example, the label is read from the output bias
    gradient: the index of its only negative entry (softmax), its sign (logistic).

    Parameters
    ----------
    gradient : array_like
        The gradient or update, laid out as ``model``'s parameters; without a model, ``d``
        weights then one bias.
    model : Model, optional
        The :class:`LogisticRegression`, :class:`SoftmaxRegression` or :class:`MLP`.
    inputs : array_like of shape (n, d), optional
        The node's inputs, to check candidates against (the strongest evidence).
    rtol : float, default 1e-6
        Relative tolerance of agreement and of a match, in ``(0, 1)``.
    update : bool, default False
        True when ``gradient`` is a parameter delta (``-lr`` times gradients), which flips
        the sign the label attack reads.

    Returns
    -------
    LeakageReport
        The verdict, attacks run, counts and evidence (no reconstructed values).

    Raises
    ------
    ConfigError
        If the gradient is not a finite 1-D vector of the model's parameter count (the
        message gives both lengths), the model is unsupported, ``inputs`` has the wrong
        shape or is not finite, or ``rtol`` is not in ``(0, 1)``.

    Examples
    --------
    >>> report = gradient_leakage_test([0.1, 0.2, 0.3, 0.4, 0.5])
    >>> report.safe, report.reconstructions
    (False, 1)

    References
    ----------
    .. [1] L. T. Phong et al., "Privacy-Preserving Deep Learning via Additively Homomorphic
       Encryption", IEEE TIFS, 2018.
    .. [2] J. Geiping et al., "Inverting Gradients - How easy is it to break privacy in
       federated learning?", NeurIPS 2020.
    .. [3] B. Zhao et al., "iDLG: Improved Deep Leakage from Gradients", 2020.
    """
    if isinstance(rtol, bool) or not isinstance(rtol, int | float) or not 0 < rtol < 1:
        raise ConfigError("rtol", rtol, "a number in (0, 1)")
    g = _as_vector(gradient, model)
    weights, bias, layer = _first_layer(g, model)
    rows = _as_inputs(inputs, weights.shape[0])
    candidates = _candidates(weights, bias)
    k = candidates.shape[0]
    compared = candidates[:_MAX_COMPARED]
    agree = max((int((_relative_errors(candidates, c) <= rtol).sum()) for c in compared), default=0)
    matches: dict[int, float] = {}  # input row -> smallest max-abs error of a candidate
    nearest = math.inf  # smallest relative error of any candidate to any input
    if rows is not None:
        row_scale = np.maximum(np.abs(rows).max(axis=1, initial=0.0), 1e-300)
        for c in compared:
            errors = np.abs(rows - c).max(axis=1, initial=0.0)
            nearest = min(nearest, float((errors / row_scale).min(initial=math.inf)))
            for i in np.flatnonzero(errors <= rtol * row_scale).tolist():
                matches[i] = min(matches.get(i, math.inf), float(errors[i]))
    single = (k >= 2 and agree == k) or (k == 1 and (rows is None or bool(matches)))
    safe = not (agree >= 2 or (k == 1 and rows is None) or matches)

    text = [f"{INVERSION} on the {layer}: {k} of {bias.size} units give a candidate input"]
    if k == 0:
        text.append("no unit has a non-zero bias gradient, so there is nothing to invert")
    elif k == 1:
        text.append("one candidate cannot show whether the gradient came from one example")
    elif k >= 2:
        spread = float(_relative_errors(candidates, candidates[0]).max())
        verdict = (
            "consistent with a single example: its input is exactly reconstructible"
            if agree == k
            else "a subset of units sees a single example"
            if agree >= 2
            else "not consistent with a single example"
        )
        text.append(f"{agree} of {k} agree within rtol={rtol:g} (spread {spread:.1e}): {verdict}")
    if rows is not None:
        shown = "".join(
            f", row {i} (max abs error {e:.1e})" for i, e in sorted(matches.items())[:5]
        )
        near = f"nearest at relative error {nearest:.1e}" if k else "no candidate"
        text.append(f"{len(matches)} of {rows.shape[0]} inputs matched ({near}){shown}")
    attacks: tuple[str, ...] = (INVERSION,)
    label = None
    if model is not None:
        attacks += (LABEL_RECOVERY,)
        size = 1 if model.model_type == "logistic_regression" else model.num_classes
        label = _label(g[-size:], update) if single else None
        outcome = "label recovered" if label is not None else "no label recovered"
        text.append(f"{LABEL_RECOVERY} on the output bias gradient: {outcome}")
    text.append("verdict: SAFE" if safe else "verdict: UNSAFE")
    consistency = agree / k if k else 0.0
    return LeakageReport(safe, attacks, k, len(matches), consistency, "; ".join(text), label)
