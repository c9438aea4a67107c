"""Unit tests for heliosfl.models: the three models, the registry and local SGD."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

import heliosfl.models as models
from heliosfl.errors import ConfigError
from heliosfl.models import (
    MLP,
    MODEL_TYPES,
    LocalResult,
    LogisticRegression,
    Model,
    SoftmaxRegression,
    TrainingStopped,
    check_params,
    local_sgd,
    make_model,
    model_from_spec,
)

ALL_MODELS = [
    pytest.param(LogisticRegression(4), id="logistic"),
    pytest.param(SoftmaxRegression(4, 3), id="softmax"),
    pytest.param(MLP(4, (5,), num_classes=3), id="mlp-relu"),
    pytest.param(MLP(4, (5, 3), num_classes=3, activation="tanh"), id="mlp-tanh-2"),
    pytest.param(MLP(4, (6, 5), num_classes=2, activation="relu"), id="mlp-relu-2"),
]


def numerical_grad(model: Model, params: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    eps = 1e-6
    grad = np.empty_like(params)
    for i in range(params.size):
        up, down = params.copy(), params.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (model.loss_and_grad(up, x, y)[0] - model.loss_and_grad(down, x, y)[0]) / (
            2 * eps
        )
    return grad


def random_batch(model: Model, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = rng.normal(0.0, 0.5, size=model.num_params)
    X = rng.normal(size=(n, model.input_dim))
    y = rng.integers(0, model.num_classes, size=n)
    return params, X, y


def separable(num_classes: int, n: int = 240, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 4.0, size=(num_classes, d))
    y = rng.integers(0, num_classes, size=n)
    X = centers[y] + rng.normal(0.0, 0.3, size=(n, d))
    return X, y


# -- gradients, shapes, layout -------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS)
def test_gradient_matches_central_finite_differences(model: Model) -> None:
    params, X, y = random_batch(model, n=7, seed=1)
    loss, grad = model.loss_and_grad(params, X, y)
    assert isinstance(loss, float)
    assert grad.shape == params.shape
    assert grad.dtype == np.float64
    np.testing.assert_allclose(grad, numerical_grad(model, params, X, y), rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_shapes_and_probabilities(model: Model) -> None:
    params, X, _ = random_batch(model, n=9, seed=2)
    proba = model.predict_proba(params, X)
    assert proba.shape == (9, model.num_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert (proba >= 0).all()
    labels = model.predict(params, X)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    assert isinstance(model, Model)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_evaluate_loss_equals_loss_and_grad(model: Model) -> None:
    params, X, y = random_batch(model, n=11, seed=3)
    metrics = model.evaluate(params, X, y)
    assert set(metrics) == {"loss", "accuracy"}
    assert metrics["loss"] == pytest.approx(model.loss_and_grad(params, X, y)[0], rel=1e-12)
    expected_accuracy = float((model.predict(params, X) == y).mean())
    assert metrics["accuracy"] == pytest.approx(expected_accuracy)


def test_num_params_formulas() -> None:
    assert LogisticRegression(30).num_params == 31
    assert SoftmaxRegression(64, 10).num_params == 65 * 10
    assert MLP(30, (32,), num_classes=2).num_params == 31 * 32 + 33 * 2 == 1058
    assert MLP(8, (16, 4), num_classes=3).num_params == 9 * 16 + 17 * 4 + 5 * 3


def test_logistic_matches_sigmoid_and_layout() -> None:
    model = LogisticRegression(3)
    params = np.array([0.5, -1.0, 2.0, 0.25])
    X = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 0.5]])
    z = X @ params[:3] + params[3]
    p1 = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(model.predict_proba(params, X)[:, 1], p1, rtol=1e-12)
    y = np.array([1, 0])
    expected = -np.mean(y * np.log(p1) + (1 - y) * np.log(1 - p1))
    assert model.loss_and_grad(params, X, y)[0] == pytest.approx(expected, rel=1e-12)


def test_logistic_loss_is_stable_for_huge_logits() -> None:
    model = LogisticRegression(1)
    X = np.array([[1000.0], [-1000.0]])
    loss, grad = model.loss_and_grad(np.array([1.0, 0.0]), X, np.array([0, 1]))
    assert loss == pytest.approx(1000.0)
    assert np.isfinite(grad).all()


def test_softmax_layout_is_row_major_w_then_b() -> None:
    model = SoftmaxRegression(2, 3)
    params = np.arange(9, dtype=float) / 10
    X = np.array([[1.0, -2.0]])
    logits = X @ params[:6].reshape(2, 3) + params[6:]
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(model.predict_proba(params, X), expected, rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_layout_matches_a_manual_forward_pass(activation: str) -> None:
    model = MLP(3, (4, 2), num_classes=3, activation=activation)
    rng = np.random.default_rng(5)
    params = rng.normal(size=model.num_params)
    X = rng.normal(size=(5, 3))
    act = (lambda z: np.maximum(z, 0)) if activation == "relu" else np.tanh
    W1, b1 = params[:12].reshape(3, 4), params[12:16]
    W2, b2 = params[16:24].reshape(4, 2), params[24:26]
    W3, b3 = params[26:32].reshape(2, 3), params[32:35]
    assert model.num_params == 35
    logits = act(act(X @ W1 + b1) @ W2 + b2) @ W3 + b3
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(params, X), expected, rtol=1e-12)


# -- initialisation ------------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS)
def test_init_params_deterministic_for_int_seed(model: Model) -> None:
    first = model.init_params(7)
    assert first.shape == (model.num_params,)
    assert first.dtype == np.float64
    np.testing.assert_array_equal(first, model.init_params(7))
    assert not np.array_equal(first, model.init_params(8))
    np.testing.assert_array_equal(first, model.init_params(np.random.default_rng(7)))


def test_mlp_init_scales_and_zero_biases() -> None:
    model = MLP(400, (300,), num_classes=2)
    params = model.init_params(0)
    W1 = params[: 400 * 300]
    assert W1.std() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    np.testing.assert_array_equal(params[400 * 300 : 400 * 300 + 300], 0.0)
    tanh = MLP(400, (300,), num_classes=2, activation="tanh").init_params(0)
    assert tanh[: 400 * 300].std() == pytest.approx(math.sqrt(2 / 700), rel=0.02)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_init_params_refuses_bad_seeds(seed: object) -> None:
    with pytest.raises(ConfigError, match="seed"):
        LogisticRegression(2).init_params(seed)  # type: ignore[arg-type]


# -- validation ----------------------------------------------------------------------------


def test_wrong_length_message_names_both_lengths() -> None:
    model = make_model("neural_network", input_dim=30, hidden_layers=(32,), num_classes=2)
    with pytest.raises(ConfigError) as info:
        check_params(model, np.zeros(1000), field="initial_params")
    message = str(info.value)
    assert "initial_params" in message
    assert "1058" in message
    assert "1000" in message
    assert "hidden_layers=(32,)" in message
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args  # noqa: S301


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (np.zeros((2, 5)), "shape"),
        (np.array([0.0, np.nan, 0.0, 0.0, 0.0]), "NaN"),
        (np.array([0.0, np.inf, 0.0, 0.0, 0.0]), "NaN or Inf"),
        (["a", "b", "c", "d", "e"], "params"),
    ],
)
def test_bad_params_are_refused(params: object, match: str) -> None:
    model = LogisticRegression(4)
    X, y = np.zeros((1, 4)), np.zeros(1, dtype=np.int64)
    with pytest.raises(ConfigError, match=match):
        model.loss_and_grad(params, X, y)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("x", "y", "field"),
    [
        (np.zeros(4), np.zeros(1, dtype=int), "X"),
        (np.zeros((2, 3)), np.zeros(2, dtype=int), "X"),
        (np.array([[0.0, np.nan, 0.0, 0.0]]), np.zeros(1, dtype=int), "X"),
        (np.zeros((0, 4)), np.zeros(0, dtype=int), "X"),
        (np.zeros((2, 4)), np.zeros(3, dtype=int), "y"),
        (np.zeros((2, 4)), np.array([0, 3]), "y"),
        (np.zeros((2, 4)), np.array([-1, 0]), "y"),
        (np.zeros((2, 4)), np.array([0.5, 1.0]), "y"),
        (np.zeros((2, 4)), np.zeros((2, 1), dtype=int), "y"),
    ],
)
def test_bad_data_is_refused(x: np.ndarray, y: np.ndarray, field: str) -> None:
    model = SoftmaxRegression(4, 3)
    params = model.init_params(0)
    with pytest.raises(ConfigError) as info:
        model.evaluate(params, x, y)
    assert info.value.field == field


def test_integral_float_labels_are_accepted() -> None:
    model = SoftmaxRegression(2, 3)
    X = np.ones((3, 2))
    params = model.init_params(0)
    as_int = model.evaluate(params, X, np.array([0, 1, 2]))
    assert model.evaluate(params, X, np.array([0.0, 1.0, 2.0])) == as_int


def test_evaluate_on_empty_data_raises() -> None:
    model = MLP(3, (4,))
    with pytest.raises(ConfigError, match="at least one row"):
        model.evaluate(model.init_params(0), np.zeros((0, 3)), np.zeros(0, dtype=np.int64))


def test_predict_on_empty_data_returns_empty() -> None:
    model = MLP(3, (4,))
    assert model.predict(model.init_params(0), np.zeros((0, 3))).shape == (0,)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: LogisticRegression(0), "input_dim"),
        (lambda: LogisticRegression(True), "input_dim"),
        (lambda: LogisticRegression(3, num_classes=3), "num_classes"),
        (lambda: SoftmaxRegression(3, 1), "num_classes"),
        (lambda: SoftmaxRegression(2.5, 3), "input_dim"),
        (lambda: MLP(3, ()), "hidden_layers"),
        (lambda: MLP(3, (4, 4, 4)), "hidden_layers"),
        (lambda: MLP(3, 32), "hidden_layers"),
        (lambda: MLP(3, (0,)), "hidden_layers[0]"),
        (lambda: MLP(3, (4, -2)), "hidden_layers[1]"),
        (lambda: MLP(3, (4,), activation="sigmoid"), "activation"),
    ],
)
def test_constructors_validate(build, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field


# -- registry and specs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["mlp", "neural_network", "deep_neural_network", "Neural-Network", " Deep Neural Network"],
)
def test_mlp_aliases(name: str) -> None:
    model = make_model(name, input_dim=30, hidden_layers=(32,), num_classes=2)
    assert model == MLP(30, (32,), num_classes=2)
    assert model.model_type == "mlp"


def test_model_types_table() -> None:
    assert MODEL_TYPES["logistic_regression"] is LogisticRegression
    assert MODEL_TYPES["softmax_regression"] is SoftmaxRegression
    assert {MODEL_TYPES[k] for k in ("mlp", "neural_network", "deep_neural_network")} == {MLP}


def test_unknown_model_type_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        make_model("cnn", input_dim=3)
    assert info.value.field == "model_type"
    for name in MODEL_TYPES:
        assert repr(name) in str(info.value)
    with pytest.raises(ConfigError, match="model_type"):
        make_model(3, input_dim=3)  # type: ignore[arg-type]


def test_missing_and_unexpected_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        make_model("mlp", hidden_layers=(4,))
    assert info.value.field == "input_dim"
    with pytest.raises(ConfigError, match="hidden_size"):
        make_model("logistic_regression", input_dim=3, hidden_size=4)
    with pytest.raises(ConfigError) as info:
        make_model("softmax_regression", input_dim=3)
    assert info.value.field == "num_classes"
    with pytest.raises(ConfigError, match="input_dim"):
        make_model("mlp", input_dim="thirty")


@pytest.mark.parametrize("model", ALL_MODELS)
def test_spec_round_trips_through_json(model: Model) -> None:
    spec = json.loads(json.dumps(model.to_spec()))
    rebuilt = model_from_spec(spec)
    assert rebuilt == model
    assert hash(rebuilt) == hash(model)
    assert rebuilt.num_params == model.num_params
    assert repr(rebuilt) == repr(model)


def test_models_of_different_architectures_differ() -> None:
    assert MLP(3, (4,)) != MLP(3, (5,))
    assert MLP(3, (4,)) != MLP(3, (4,), activation="tanh")
    assert SoftmaxRegression(3, 2) != LogisticRegression(3)


def test_model_from_spec_needs_a_model_type() -> None:
    with pytest.raises(ConfigError, match="model_type"):
        model_from_spec({"input_dim": 3})


def test_exported_members() -> None:
    assert models.__all__ == sorted(models.__all__, key=lambda n: (not n.isupper(), n))
    for name in models.__all__:
        assert hasattr(models, name)


# -- local SGD -------------------------------------------------------------------------------


def sgd(model: Model, params: np.ndarray, x: np.ndarray, y: np.ndarray, **overrides):
    kwargs = {"epochs": 2, "batch_size": 8, "learning_rate": 0.1, "rng": np.random.default_rng(0)}
    kwargs.update(overrides)
    return local_sgd(model, params, x, y, **kwargs)


@pytest.mark.parametrize(
    ("model", "num_classes"),
    [
        (LogisticRegression(4), 2),
        (SoftmaxRegression(4, 3), 3),
        (MLP(4, (16,), num_classes=3), 3),
        (MLP(4, (8, 8), num_classes=3, activation="tanh"), 3),
    ],
)
def test_local_sgd_learns_separable_data(model: Model, num_classes: int) -> None:
    X, y = separable(num_classes)
    before = model.evaluate(model.init_params(0), X, y)
    result = sgd(model, model.init_params(0), X, y, epochs=20, learning_rate=0.05)
    after = model.evaluate(result.params, X, y)
    assert after["accuracy"] >= 0.95
    assert after["loss"] < before["loss"]
    assert isinstance(result, LocalResult)
    assert result.num_samples == 240
    assert result.steps == 20 * 30


def test_local_sgd_is_deterministic_and_leaves_inputs_alone() -> None:
    model = MLP(4, (6,), num_classes=3)
    X, y = separable(3, n=50)
    params = model.init_params(1)
    frozen = (params.copy(), X.copy(), y.copy())
    first = sgd(model, params, X, y, rng=np.random.default_rng(42))
    second = sgd(model, params, X, y, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(first.params, second.params)
    assert first.loss == second.loss
    assert first.params is not params
    for before, now in zip(frozen, (params, X, y), strict=True):
        np.testing.assert_array_equal(before, now)
    other = sgd(model, params, X, y, rng=np.random.default_rng(43))
    assert not np.array_equal(first.params, other.params)


def test_local_sgd_steps_and_sample_weighted_loss() -> None:
    model = SoftmaxRegression(4, 3)
    X, y = separable(3, n=10)
    params = model.init_params(0)
    # A vanishing learning rate keeps the params fixed, so the sample-weighted mean of the
    # batch losses (3 + 3 + 3 + 1 rows) equals the full-data loss.
    result = sgd(model, params, X, y, epochs=3, batch_size=3, learning_rate=1e-300)
    assert result.steps == 3 * 4
    assert result.loss == pytest.approx(model.evaluate(params, X, y)["loss"], rel=1e-12)


def test_proximal_term_pulls_towards_the_anchor() -> None:
    model = LogisticRegression(4)
    X, y = separable(2, n=64)
    start = model.init_params(0)
    anchor = np.full(model.num_params, 0.7)
    lr = 0.1
    plain = sgd(model, start, X, y, learning_rate=lr, anchor=anchor)
    pulled = sgd(model, start, X, y, learning_rate=lr, prox_mu=1 / lr, anchor=anchor)
    assert np.linalg.norm(pulled.params - anchor) < 0.1 * np.linalg.norm(plain.params - anchor)
    # The default anchor is the starting point: a strong mu keeps the result near it.
    near = sgd(model, start, X, y, learning_rate=lr, prox_mu=1 / lr)
    far = sgd(model, start, X, y, learning_rate=lr)
    assert np.linalg.norm(near.params - start) < np.linalg.norm(far.params - start)


def test_stop_is_checked_before_every_batch() -> None:
    model = LogisticRegression(4)
    X, y = separable(2, n=20)
    calls = []

    def stop_after_three() -> bool:
        calls.append(None)
        return len(calls) > 3

    with pytest.raises(TrainingStopped) as info:
        sgd(model, model.init_params(0), X, y, batch_size=4, stop=stop_after_three)
    assert info.value.steps == 3
    assert pickle.loads(pickle.dumps(info.value)).steps == 3  # noqa: S301

    counted = []
    result = sgd(
        model, model.init_params(0), X, y, stop=lambda: counted.append(1) is None and False
    )
    assert len(counted) == result.steps


class _Wrapped:
    """A Model that is not one of the bundled classes (exercises the generic path)."""

    def __init__(self, inner: SoftmaxRegression) -> None:
        self._inner = inner
        self.model_type = "wrapped"
        self.input_dim = inner.input_dim
        self.num_classes = inner.num_classes

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class _Recording(_Wrapped):
    """Records which rows each loss_and_grad call saw (X's first column holds row ids)."""

    def __init__(self, inner: SoftmaxRegression) -> None:
        super().__init__(inner)
        self.batches: list[list[int]] = []

    def loss_and_grad(self, params, x, y):
        self.batches.append(x[:, 0].astype(int).tolist())
        return self._inner.loss_and_grad(params, x, y)


def test_each_epoch_walks_a_fresh_rng_permutation_in_batches() -> None:
    X = np.zeros((7, 2))
    X[:, 0] = np.arange(7)
    y = np.arange(7) % 2
    model = _Recording(SoftmaxRegression(2, 2))
    params = model.init_params(0)
    sgd(
        model,
        params,
        X,
        y,
        epochs=2,
        batch_size=3,
        learning_rate=1e-3,
        rng=np.random.default_rng(9),
    )
    reference = np.random.default_rng(9)
    expected = []
    for _ in range(2):
        order = reference.permutation(7).tolist()
        expected += [order[0:3], order[3:6], order[6:7]]
    assert model.batches == expected


def test_local_sgd_accepts_any_model_protocol_object() -> None:
    inner = SoftmaxRegression(4, 3)
    X, y = separable(3, n=30)
    wrapped = _Wrapped(inner)
    expected = sgd(inner, inner.init_params(0), X, y, rng=np.random.default_rng(3))
    got = sgd(wrapped, inner.init_params(0), X, y, rng=np.random.default_rng(3))
    np.testing.assert_allclose(got.params, expected.params, rtol=1e-12)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"prox_mu": -1.0}, "prox_mu"),
        ({"rng": 0}, "rng"),
        ({"anchor": np.zeros(3)}, "anchor"),
    ],
)
def test_local_sgd_validates_arguments(overrides: dict, field: str) -> None:
    model = LogisticRegression(4)
    X, y = separable(2, n=8)
    with pytest.raises(ConfigError) as info:
        sgd(model, model.init_params(0), X, y, **overrides)
    assert info.value.field == field


def test_local_sgd_refuses_empty_data() -> None:
    model = LogisticRegression(4)
    with pytest.raises(ConfigError) as info:
        sgd(model, model.init_params(0), np.zeros((0, 4)), np.zeros(0, dtype=np.int64))
    assert info.value.field == "X"


def test_divergence_is_reported_against_the_learning_rate() -> None:
    model = MLP(4, (8,), num_classes=3)
    X, y = separable(3, n=32)
    with pytest.raises(ConfigError) as info:
        sgd(model, model.init_params(0), X * 1e3, y, learning_rate=1e12, epochs=5)
    assert info.value.field == "learning_rate"
