"""Unit tests for heliosfl.compliance.leakage: the exact dense-layer inversion attack."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from heliosfl.compliance.leakage import (
    LeakageReport,
    gradient_leakage_test,
    reconstruct_inputs,
)
from heliosfl.errors import ConfigError
from heliosfl.models import MLP, LogisticRegression, Model, SoftmaxRegression

MODELS = [
    pytest.param(LogisticRegression(6), id="logistic"),
    pytest.param(SoftmaxRegression(6, 4), id="softmax"),
    pytest.param(MLP(6, (16,), num_classes=3), id="mlp-relu"),
    pytest.param(MLP(6, (8, 5), num_classes=3, activation="tanh"), id="mlp-tanh-2"),
]
MULTI_OUTPUT = MODELS[1:]


def data(model: Model, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = model.init_params(seed) + rng.normal(0.0, 0.1, size=model.num_params)
    X = rng.normal(size=(n, model.input_dim))
    y = rng.integers(0, model.num_classes, size=n)
    return params, X, y


def one_gradient(model: Model, params: np.ndarray, x: np.ndarray, label: int) -> np.ndarray:
    return model.loss_and_grad(params, x[None, :], np.array([label]))[1]


def dp_aggregate(model: Model, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """DP-FedAvg of n single-example gradients: clip to C=1, sum, add N(0, (zC)^2), / n."""
    params, X, y = data(model, n, seed)
    rng = np.random.default_rng(seed + 1)
    clip_norm, z = 1.0, 1.0
    total = np.zeros(model.num_params)
    for x, label in zip(X, y, strict=True):
        g = one_gradient(model, params, x, int(label))
        total += g * min(1.0, clip_norm / np.linalg.norm(g))
    noisy = (total + rng.normal(0.0, z * clip_norm, size=total.shape)) / n
    return noisy, X


# -- the guide's example --------------------------------------------------------------------


def test_guide_example_is_unsafe_and_inverts_exactly() -> None:
    gradient = [0.1, 0.2, 0.3, 0.4, 0.5]
    report = gradient_leakage_test(gradient)
    assert not report.safe
    assert report.attacks == ("dense_layer_inversion",)
    assert report.reconstructions == 1
    assert report.label_recovered is None
    candidates = reconstruct_inputs(gradient)
    assert candidates.shape == (1, 4)
    np.testing.assert_array_equal(candidates[0], [0.2, 0.4, 0.6, 0.8])
    assert "UNSAFE" in report.evidence


def test_guide_example_matches_the_input_it_came_from() -> None:
    report = gradient_leakage_test([0.1, 0.2, 0.3, 0.4, 0.5], inputs=[[0.2, 0.4, 0.6, 0.8]])
    assert not report.safe and report.matched_inputs == 1
    assert "row 0" in report.evidence


# -- single-example gradients: exact reconstruction -----------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_single_example_gradient_is_inverted_to_1e_9(model: Model) -> None:
    params, X, y = data(model, 8)
    g = one_gradient(model, params, X[3], int(y[3]))
    candidates = reconstruct_inputs(g, model=model)
    assert candidates.shape[0] >= 1
    assert np.abs(candidates - X[3]).max() <= 1e-9
    report = gradient_leakage_test(g, model=model)
    assert not report.safe
    assert report.max_consistency == 1.0
    assert report.attacks == ("dense_layer_inversion", "idlg_label_recovery")
    assert report.label_recovered == int(y[3])


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, 5, elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
    label=st.integers(0, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_inversion_recovers_any_single_example(x: np.ndarray, label: int, seed: int) -> None:
    model = SoftmaxRegression(5, 3)
    params = np.random.default_rng(seed).normal(0.0, 0.3, size=model.num_params)
    g = one_gradient(model, params, x, label)
    candidates = reconstruct_inputs(g, model=model)
    assume(candidates.shape[0] >= 2)  # saturated softmax can zero a class's gradient
    # The attacker reads x from the best-conditioned unit (the largest bias gradient);
    # a nearly saturated class divides by a tiny bias gradient and loses digits.
    errors = np.abs(candidates - x).max(axis=1)
    assert errors.min() <= 1e-9 * max(1.0, float(np.abs(x).max()))
    report = gradient_leakage_test(g, model=model)
    assert not report.safe
    if g[-3:][label] < 0.0:  # p_y rounded to exactly 1 leaves nothing to read
        assert report.label_recovered == label


@pytest.mark.parametrize("model", MODELS)
def test_single_example_gradient_matches_its_input_row(model: Model) -> None:
    params, X, y = data(model, 20, seed=1)
    report = gradient_leakage_test(
        one_gradient(model, params, X[7], int(y[7])), model=model, inputs=X
    )
    assert not report.safe
    assert report.matched_inputs == 1
    assert "row 7 " in report.evidence


@pytest.mark.parametrize("model", MULTI_OUTPUT)
@pytest.mark.parametrize("label", [0, 2])
def test_label_recovery_reads_the_only_negative_output_bias_entry(model: Model, label: int) -> None:
    params, X, _ = data(model, 1, seed=2)
    report = gradient_leakage_test(one_gradient(model, params, X[0], label), model=model)
    assert report.label_recovered == label


@pytest.mark.parametrize("model", MODELS)
def test_an_sgd_update_leaks_like_the_gradient(model: Model) -> None:
    params, X, y = data(model, 4, seed=3)
    learning_rate = 0.05
    w = params.copy()
    for _ in range(5):  # five local steps on one example: the first layer stays rank one
        w = w - learning_rate * one_gradient(model, w, X[0], int(y[0]))
    delta = w - params
    candidates = reconstruct_inputs(delta, model=model)
    assert np.abs(candidates - X[0]).max() <= 1e-9
    report = gradient_leakage_test(delta, model=model, inputs=X, update=True)
    assert not report.safe and report.matched_inputs == 1
    assert report.label_recovered == int(y[0])


# -- aggregates are safe --------------------------------------------------------------------


@pytest.mark.parametrize("model", MULTI_OUTPUT)
def test_batch_gradient_candidates_disagree(model: Model) -> None:
    params, X, y = data(model, 32, seed=4)
    _, g = model.loss_and_grad(params, X, y)
    report = gradient_leakage_test(g, model=model, inputs=X)
    assert report.safe
    assert report.matched_inputs == 0
    assert report.max_consistency < 1.0
    assert report.label_recovered is None
    assert "not consistent with a single example" in report.evidence


@pytest.mark.parametrize("model", MODELS)
def test_dp_fedavg_aggregate_of_100_nodes_is_safe(model: Model) -> None:
    aggregate, X = dp_aggregate(model, 100, seed=5)
    report = gradient_leakage_test(aggregate, model=model, inputs=X)
    assert report.safe
    assert report.matched_inputs == 0
    assert report.label_recovered is None
    candidates = reconstruct_inputs(aggregate, model=model)
    scale = np.abs(X).max(axis=1)
    for c in candidates:
        assert (np.abs(X - c).max(axis=1) > 1e-6 * scale).all()


@pytest.mark.parametrize("model", MULTI_OUTPUT)
def test_dp_aggregate_is_safe_without_inputs_for_multi_output_layers(model: Model) -> None:
    aggregate, _ = dp_aggregate(model, 100, seed=6)
    assert gradient_leakage_test(aggregate, model=model).safe


@pytest.mark.parametrize("model", MULTI_OUTPUT)
def test_securely_aggregated_sum_of_100_single_example_gradients_is_safe(model: Model) -> None:
    params, X, y = data(model, 100, seed=7)
    total = sum(one_gradient(model, params, x, int(t)) for x, t in zip(X, y, strict=True))
    report = gradient_leakage_test(total, model=model, inputs=X)
    assert report.safe and report.matched_inputs == 0


def test_single_unit_layer_without_inputs_is_judged_unsafe() -> None:
    # One unit cannot tell a batch from one example; without inputs the test errs unsafe.
    model = LogisticRegression(6)
    aggregate, _ = dp_aggregate(model, 100, seed=8)
    report = gradient_leakage_test(aggregate, model=model)
    assert not report.safe
    assert "one candidate" in report.evidence


def test_relu_units_that_see_one_example_of_a_batch_leak_it() -> None:
    # Robbing-the-Fed style binning: units 0, 1 fire only for x_a, units 2, 3 only for x_b.
    model = MLP(3, (4,), num_classes=2)
    params = np.zeros(model.num_params)
    W1 = np.zeros((3, 4))
    W1[0] = [1.0, 2.0, -1.0, -3.0]
    params[:12] = W1.ravel()
    params[16:] = np.random.default_rng(0).normal(size=10)
    X = np.array([[1.0, 0.5, 0.2], [-1.0, 0.3, 0.1]])
    _, g = model.loss_and_grad(params, X, np.array([0, 1]))
    report = gradient_leakage_test(g, model=model, inputs=X)
    assert not report.safe
    assert report.matched_inputs == 2
    assert report.max_consistency == 0.5
    assert "a subset of units sees a single example" in report.evidence


def test_zero_gradient_has_nothing_to_invert() -> None:
    model = SoftmaxRegression(3, 3)
    report = gradient_leakage_test(np.zeros(model.num_params), model=model)
    assert report.safe and report.reconstructions == 0 and report.max_consistency == 0.0
    assert "nothing to invert" in report.evidence


# -- the report never holds the data --------------------------------------------------------


def test_evidence_holds_no_input_or_reconstructed_value() -> None:
    model = SoftmaxRegression(4, 3)
    x = np.array([0.123456789, -7.654321, 3.14159265, 42.4242])
    g = one_gradient(model, model.init_params(0), x, 1)
    report = gradient_leakage_test(g, model=model, inputs=x[None, :])
    assert not report.safe
    for value in x:
        for shown in (f"{value}", f"{value:.3f}", f"{value:.2e}", f"{value:g}"):
            assert shown not in report.evidence


def test_report_is_a_frozen_picklable_value() -> None:
    report = gradient_leakage_test([0.1, 0.2, 0.3, 0.4, 0.5])
    assert isinstance(report, LeakageReport)
    assert pickle.loads(pickle.dumps(report)) == report  # noqa: S301 (our own bytes)
    with pytest.raises(AttributeError):
        report.safe = True  # type: ignore[misc]


# -- validation -----------------------------------------------------------------------------


def test_wrong_length_names_both_lengths() -> None:
    model = SoftmaxRegression(4, 3)
    with pytest.raises(ConfigError, match=r"15 values.*Found length 7") as info:
        gradient_leakage_test(np.ones(7), model=model)
    assert info.value.field == "gradient"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gradient_is_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match="1 NaN or Inf"):
        gradient_leakage_test([0.1, bad, 0.3])


@pytest.mark.parametrize(
    ("gradient", "kwargs"),
    [
        ([0.5], {}),
        ([[0.1, 0.2], [0.3, 0.4]], {}),
        (["a", "b"], {}),
        ([0.1, 0.2, 0.3], {"rtol": 0.0}),
        ([0.1, 0.2, 0.3], {"rtol": True}),
        ([0.1, 0.2, 0.3], {"inputs": [[1.0, 2.0, 3.0]]}),
        ([0.1, 0.2, 0.3], {"inputs": [[1.0, np.nan]]}),
    ],
)
def test_invalid_arguments_raise_config_error(gradient: object, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        gradient_leakage_test(gradient, **kwargs)  # type: ignore[arg-type]


def test_unsupported_model_is_refused() -> None:
    class Other(LogisticRegression):
        model_type = "other"

    with pytest.raises(ConfigError, match="model"):
        gradient_leakage_test(np.ones(4), model=Other(3))
