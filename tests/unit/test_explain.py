"""Unit tests for heliosfl.compliance.explain: per-decision explanations and importance."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import heliosfl.compliance.explain as explain_module
from heliosfl.compliance.explain import PredictionExplanation, explain_prediction
from heliosfl.compliance.importance import GlobalImportance, feature_importance
from heliosfl.errors import ConfigError
from heliosfl.models import LogisticRegression, Model, SoftmaxRegression, make_model

NAMES = ("age", "bmi", "glucose", "blood_pressure")


class Wrapped:
    """A user-defined model: the Model protocol by delegation, with no gradients exposed."""

    def __init__(self, inner: Model) -> None:
        self._inner = inner

    @property
    def model_type(self) -> str:
        return "wrapped"

    @property
    def num_classes(self) -> int:
        return self._inner.num_classes

    @property
    def input_dim(self) -> int:
        return self._inner.input_dim

    @property
    def num_params(self) -> int:
        return self._inner.num_params

    def init_params(self, seed: Any) -> np.ndarray:
        return self._inner.init_params(seed)

    def loss_and_grad(self, params: Any, X: Any, y: Any) -> tuple[float, np.ndarray]:
        return self._inner.loss_and_grad(params, X, y)

    def predict_proba(self, params: Any, X: Any) -> np.ndarray:
        return self._inner.predict_proba(params, X)

    def predict(self, params: Any, X: Any) -> np.ndarray:
        return self._inner.predict(params, X)

    def evaluate(self, params: Any, X: Any, y: Any) -> dict[str, float]:
        return self._inner.evaluate(params, X, y)

    def to_spec(self) -> dict[str, object]:
        return {"model_type": "wrapped"}


def logistic(seed: int = 0) -> tuple[LogisticRegression, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return LogisticRegression(4), rng.normal(0.0, 1.0, size=5), rng.normal(size=4)


def mlp(activation: str, seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    model = make_model(
        "mlp", input_dim=4, hidden_layers=(8, 6), num_classes=3, activation=activation
    )
    rng = np.random.default_rng(seed)
    params = model.init_params(rng)
    params += rng.normal(0.0, 0.1, size=params.size)  # non-zero biases
    return model, params, rng.normal(size=4)


def forward_logits(model: Any, params: np.ndarray, X: np.ndarray) -> np.ndarray:
    """An independent forward pass of an MLP, for checking the explained scores."""
    layers = model._unpack(params)
    h = X
    for W, b in layers[:-1]:
        h = np.maximum(h @ W + b, 0.0) if model.activation == "relu" else np.tanh(h @ W + b)
    W, b = layers[-1]
    return h @ W + b


def informative_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y depends on column 0 only; the hand-set logistic model uses only column 0."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    return X, y, np.array([4.0, 0.0, 0.0, 0.0])


# -- exact linear -----------------------------------------------------------------------


def test_logistic_contributions_add_up_to_the_log_odds() -> None:
    model, params, x = logistic()
    baseline = np.array([0.5, -1.0, 0.0, 2.0])
    e = explain_prediction(model, params, x, baseline=baseline, target_class=1)
    z = float(x @ params[:4] + params[4])
    assert e.method == "exact_linear"
    assert e.score == pytest.approx(z, abs=1e-12)
    assert e.baseline_score + sum(c.contribution for c in e.contributions) == pytest.approx(
        z, abs=1e-12
    )
    assert abs(e.completeness_gap) < 1e-12
    expected = params[:4] * (x - baseline)
    np.testing.assert_allclose([c.contribution for c in e.contributions], expected, atol=1e-15)
    assert [c.baseline for c in e.contributions] == baseline.tolist()


def test_logistic_class_zero_negates_score_and_contributions() -> None:
    model, params, x = logistic()
    one = explain_prediction(model, params, x, target_class=1)
    zero = explain_prediction(model, params, x, target_class=0)
    assert zero.score == -one.score
    assert zero.baseline_score == -one.baseline_score == pytest.approx(-params[4])
    assert [c.contribution for c in zero.contributions] == [
        -c.contribution for c in one.contributions
    ]
    assert zero.probability == pytest.approx(1.0 - one.probability)


@pytest.mark.parametrize("target", [0, 1, 2])
def test_softmax_contributions_add_up_to_each_class_logit(target: int) -> None:
    model = SoftmaxRegression(4, 3)
    rng = np.random.default_rng(1)
    params, x, baseline = rng.normal(size=15), rng.normal(size=4), rng.normal(size=4)
    e = explain_prediction(model, params, x, baseline=baseline, target_class=target)
    W, b = params[:12].reshape(4, 3), params[12:]
    logit = float(x @ W[:, target] + b[target])
    assert e.target_class == target
    assert e.score == pytest.approx(logit, abs=1e-12)
    assert e.baseline_score + sum(c.contribution for c in e.contributions) == pytest.approx(
        logit, abs=1e-12
    )
    proba = model.predict_proba(params, x[None])[0]
    assert e.predicted_class == int(np.argmax(proba))
    assert e.probability == pytest.approx(proba[target])


def test_default_target_is_predicted_class_and_default_names() -> None:
    model, params, x = logistic()
    e = explain_prediction(model, params, x)
    assert e.target_class == e.predicted_class == int(model.predict(params, x[None])[0])
    assert [c.name for c in e.contributions] == ["x0", "x1", "x2", "x3"]
    assert [c.value for c in e.contributions] == x.tolist()
    assert all(c.baseline == 0.0 for c in e.contributions)


# -- MLP: gradients, integrated gradients ----------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_input_gradient_matches_finite_differences(activation: str) -> None:
    model, params, x = mlp(activation)
    rows = np.vstack([x, -x])
    scores, grads = model._score_and_input_grad(params, rows, 2)
    np.testing.assert_allclose(scores, forward_logits(model, params, rows)[:, 2], rtol=1e-12)
    eps = 1e-6
    for i in range(4):
        step = np.zeros(4)
        step[i] = eps
        up = model._score_and_input_grad(params, rows + step, 2)[0]
        down = model._score_and_input_grad(params, rows - step, 2)[0]
        np.testing.assert_allclose(grads[:, i], (up - down) / (2 * eps), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_integrated_gradients_completeness_gap_is_small(activation: str) -> None:
    model, params, x = mlp(activation)
    for target in range(3):
        e = explain_prediction(model, params, x, target_class=target, steps=256)
        assert e.method == "integrated_gradients"
        change = e.score - e.baseline_score
        assert e.completeness_gap == pytest.approx(
            change - sum(c.contribution for c in e.contributions), abs=1e-12
        )
        assert abs(e.completeness_gap) < 1e-2 * max(abs(change), 1e-3)


def test_integrated_gradients_gap_shrinks_with_steps() -> None:
    model, params, x = mlp("tanh")
    coarse = explain_prediction(model, params, 3 * x, steps=2)
    fine = explain_prediction(model, params, 3 * x, steps=512)
    assert abs(fine.completeness_gap) < abs(coarse.completeness_gap)


def test_mlp_score_is_the_class_logit() -> None:
    model, params, x = mlp("relu")
    e = explain_prediction(model, params, x, target_class=1)
    logits = forward_logits(model, params, np.vstack([x, np.zeros(4)]))
    assert e.score == pytest.approx(logits[0, 1], abs=1e-12)
    assert e.baseline_score == pytest.approx(logits[1, 1], abs=1e-12)
    log_proba = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(log_proba[0], np.log(model.predict_proba(params, x[None])[0]))


def test_gradient_x_input_is_gradient_at_x_times_displacement() -> None:
    model, params, x = mlp("tanh")
    baseline = np.full(4, 0.25)
    e = explain_prediction(
        model, params, x, baseline=baseline, target_class=0, method="gradient_x_input"
    )
    _, grads = model._score_and_input_grad(params, x[None], 0)
    expected = grads[0] * (x - baseline)
    assert e.method == "gradient_x_input"
    np.testing.assert_allclose([c.contribution for c in e.contributions], expected)
    assert e.completeness_gap == pytest.approx(
        e.score - e.baseline_score - expected.sum(), abs=1e-12
    )


# -- occlusion ---------------------------------------------------------------------------


def test_occlusion_for_a_user_model() -> None:
    inner, params, x = logistic()
    baseline = np.array([1.0, 0.0, -1.0, 0.5])
    e = explain_prediction(Wrapped(inner), params, x, baseline=baseline, feature_names=NAMES)
    assert e.method == "occlusion"
    assert e.completeness_gap is None
    c = e.target_class
    logp = np.log(inner.predict_proba(params, x[None])[0, c])
    assert e.score == pytest.approx(logp, abs=1e-12)
    assert e.baseline_score == pytest.approx(
        np.log(inner.predict_proba(params, baseline[None])[0, c]), abs=1e-12
    )
    for i, contribution in enumerate(e.contributions):
        occluded = x.copy()
        occluded[i] = baseline[i]
        drop = logp - np.log(inner.predict_proba(params, occluded[None])[0, c])
        assert contribution.name == NAMES[i]
        assert contribution.contribution == pytest.approx(drop, abs=1e-12)


def test_occlusion_is_allowed_for_builtin_models() -> None:
    model, params, x = mlp("relu")
    e = explain_prediction(model, params, x, method="occlusion")
    assert e.method == "occlusion"
    assert e.completeness_gap is None


@pytest.mark.parametrize(
    ("model_kind", "method"),
    [
        ("wrapped", "exact_linear"),
        ("wrapped", "integrated_gradients"),
        ("logistic", "integrated_gradients"),
        ("mlp", "exact_linear"),
        ("mlp", "shap"),
        ("mlp", None),
    ],
)
def test_inapplicable_or_unknown_method_is_refused(model_kind: str, method: Any) -> None:
    model: Any
    if model_kind == "mlp":
        model, params, x = mlp("relu")
    else:
        model, params, x = logistic()
        model = Wrapped(model) if model_kind == "wrapped" else model
    with pytest.raises(ConfigError) as info:
        explain_prediction(model, params, x, method=method)
    assert info.value.field == "method"
    assert str(info.value).startswith("method must be one of 'auto'")
    assert "occlusion" in str(info.value)


# -- presentation ------------------------------------------------------------------------


def test_top_sorts_by_absolute_contribution() -> None:
    model = LogisticRegression(4)
    params = np.array([0.1, -3.0, 2.0, 0.0, 0.0])
    e = explain_prediction(model, params, np.ones(4), feature_names=NAMES, target_class=1)
    assert [c.name for c in e.top(2)] == ["bmi", "glucose"]
    assert [c.name for c in e.top(10)] == ["bmi", "glucose", "age", "blood_pressure"]
    with pytest.raises(ConfigError, match=r"^k must be"):
        e.top(0)


def test_to_text_names_features_and_direction() -> None:
    model = LogisticRegression(4)
    params = np.array([0.1, -3.0, 2.0, 0.0, 0.0])
    e = explain_prediction(model, params, np.ones(4), feature_names=NAMES, target_class=1)
    text = e.to_text()
    assert str(e) == text
    for word in ("age", "bmi", "glucose", "exact_linear", "feature", "contribution", "effect"):
        assert word in text
    assert "raises the score of class 1" in text
    assert "lowers the score of class 1" in text
    short = e.to_text(top=2)
    assert "age" not in short
    assert "(2 of 4 features shown)" in short


def test_to_dict_is_json_serialisable() -> None:
    for model, params, x in (logistic(), mlp("relu")):
        e = explain_prediction(model, params, x)
        data = json.loads(json.dumps(e.to_dict()))
        assert data["method"] == e.method
        assert len(data["contributions"]) == 4
        assert data["contributions"][0] == {
            "name": "x0",
            "value": x[0],
            "baseline": 0.0,
            "contribution": e.contributions[0].contribution,
        }
    occlusion = explain_prediction(Wrapped(logistic()[0]), *logistic()[1:])
    assert json.loads(json.dumps(occlusion.to_dict()))["completeness_gap"] is None


def test_explanation_is_frozen() -> None:
    e = explain_prediction(*logistic())
    assert isinstance(e, PredictionExplanation)
    with pytest.raises(AttributeError):
        e.score = 0.0  # type: ignore[misc]


# -- permutation importance ------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_permutation_importance_finds_the_informative_feature(metric: str) -> None:
    X, y, params = informative_data()
    model = LogisticRegression(3)
    result = feature_importance(
        model, params, X, y, rng=np.random.default_rng(0), metric=metric, repeats=3
    )
    assert result.metric == metric
    assert result.repeats == 3
    assert result.baseline_value == pytest.approx(model.evaluate(params, X, y)[metric])
    assert [f.name for f in result.importances] == ["x0", "x1", "x2"]
    assert result.top(1)[0].name == "x0"
    assert result.importances[0].mean > 0.2
    assert result.importances[1].mean == result.importances[2].mean == 0.0  # unused columns


def test_permutation_importance_is_deterministic_and_leaves_x_unchanged() -> None:
    X, y, params = informative_data()
    before = X.copy()
    runs = [
        feature_importance(LogisticRegression(3), params, X, y, rng=np.random.default_rng(7))
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    np.testing.assert_array_equal(X, before)


def test_permutation_importance_works_for_a_user_model_with_names() -> None:
    X, y, params = informative_data()
    result = feature_importance(
        Wrapped(LogisticRegression(3)),
        params,
        X,
        y,
        feature_names=["signal", "noise_a", "noise_b"],
        rng=np.random.default_rng(1),
    )
    assert isinstance(result, GlobalImportance)
    assert result.top(1)[0].name == "signal"
    text = str(result)
    assert result.to_text() == text
    assert "signal" in text and "noise_b" in text and "drop in accuracy" in text
    data = json.loads(json.dumps(result.to_dict()))
    assert [f["name"] for f in data["importances"]] == ["signal", "noise_a", "noise_b"]
    assert data["repeats"] == 5


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("x", {"x": np.ones(3)}),
        ("x", {"x": np.ones((1, 4))}),
        ("x", {"x": np.array([1.0, np.nan, 2.0, 3.0])}),
        ("x", {"x": ["a", "b", "c", "d"]}),
        ("baseline", {"baseline": np.zeros(5)}),
        ("baseline", {"baseline": np.array([np.inf, 0.0, 0.0, 0.0])}),
        ("feature_names", {"feature_names": ["a", "b", "c"]}),
        ("feature_names", {"feature_names": ["a", "b", "c", "a"]}),
        ("feature_names", {"feature_names": ["a", "b", "c", 4]}),
        ("feature_names", {"feature_names": "abcd"}),
        ("target_class", {"target_class": 2}),
        ("target_class", {"target_class": -1}),
        ("target_class", {"target_class": True}),
        ("params", {"params": np.zeros(4)}),
        ("steps", {"steps": 0}),
        ("model", {"model": object()}),
    ],
)
def test_explain_prediction_refuses_bad_input(field: str, kwargs: dict[str, Any]) -> None:
    model, params, x = logistic()
    arguments: dict[str, Any] = {"model": model, "params": params, "x": x, **kwargs}
    with pytest.raises(ConfigError) as info:
        explain_prediction(arguments.pop("model"), arguments.pop("params"), **arguments)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field} must be ")


def test_error_messages_describe_arrays_without_raw_values() -> None:
    model, params, _ = logistic()
    with pytest.raises(ConfigError) as info:
        explain_prediction(model, params, np.array([123.456, np.nan, 2.0, 3.0]))
    assert "123.456" not in str(info.value)
    assert "1 NaN or Inf values" in str(info.value)
    with pytest.raises(ConfigError) as info:
        explain_prediction(model, params, np.array([[123.456, 1.0, 2.0, 3.0]]))
    assert "123.456" not in str(info.value)
    assert "shape (1, 4)" in str(info.value)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("X", {"X": np.ones((10, 2))}),
        ("X", {"X": np.ones((0, 3))}),
        ("X", {"X": np.full((10, 3), np.nan)}),
        ("y", {"y": np.zeros(9, dtype=int)}),
        ("y", {"y": np.full(10, 2)}),
        ("y", {"y": np.full(10, 0.5)}),
        ("repeats", {"repeats": 0}),
        ("rng", {"rng": 0}),
        ("metric", {"metric": "auc"}),
        ("feature_names", {"feature_names": ["a", "b"]}),
        ("params", {"params": np.zeros(3)}),
    ],
)
def test_feature_importance_refuses_bad_input(field: str, kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "params": np.zeros(4),
        "X": np.ones((10, 3)),
        "y": np.zeros(10, dtype=int),
        "rng": np.random.default_rng(0),
        **kwargs,
    }
    with pytest.raises(ConfigError) as info:
        feature_importance(
            LogisticRegression(3),
            arguments.pop("params"),
            arguments.pop("X"),
            arguments.pop("y"),
            **arguments,
        )
    assert info.value.field == field
    assert str(info.value).startswith(f"{field} must be ")


# -- module hygiene ----------------------------------------------------------------------------


def test_module_is_pure_and_exports_a_sorted_all() -> None:
    tree = ast.parse(Path(explain_module.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] == "asyncio" for name in imported)
    forbidden = ("heliosfl.engine", "heliosfl.coordinator", "heliosfl.ui")
    assert not any(name.startswith(forbidden) for name in imported)
    assert explain_module.__all__ == sorted(explain_module.__all__)
    assert all(hasattr(explain_module, name) for name in explain_module.__all__)
