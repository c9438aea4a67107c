"""Contract suite every aggregation strategy must pass, then strategy-specific maths.

The specific tests follow Flower's ``aggregate_test.py``: Prepare / Execute / Assert, with
the expected values worked out by hand rather than by the code under test.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from heliosfl.errors import ConfigError
from heliosfl.robust import CoordinateMedian, Krum, TrimmedMean
from heliosfl.strategies import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedOpt,
    FedProx,
    FedYogi,
    Strategy,
    strategy_from_dict,
    strategy_from_name,
    weighted_mean,
)

STRATEGIES = [
    pytest.param(FedAvg(), id="FedAvg"),
    pytest.param(FedProx(mu=0.1), id="FedProx"),
    pytest.param(FedAdam(), id="FedAdam"),
    pytest.param(FedYogi(), id="FedYogi"),
    pytest.param(FedAdagrad(), id="FedAdagrad"),
    # The robust rules pass the whole contract: they ignore the weights' values but validate
    # them like FedAvg, and are order-invariant whenever no two deltas tie (Krum breaks exact
    # ties by node order, which random deltas never produce). Krum's f = 1 needs
    # n >= 2f + 3 = 5 updates: make_round's default.
    pytest.param(CoordinateMedian(), id="CoordinateMedian"),
    pytest.param(TrimmedMean(trim_fraction=0.2), id="TrimmedMean"),
    pytest.param(Krum(num_byzantine=1), id="Krum"),
    pytest.param(Krum(num_byzantine=1, multi=3), id="MultiKrum"),
]

# Strategies whose step is the (robust) mean delta itself: no server optimiser state.
MEAN_LIKE = [
    pytest.param(FedAvg(), id="FedAvg"),
    pytest.param(FedProx(mu=0.1), id="FedProx"),
    pytest.param(CoordinateMedian(), id="CoordinateMedian"),
    pytest.param(TrimmedMean(trim_fraction=0.2), id="TrimmedMean"),
    pytest.param(Krum(num_byzantine=1), id="Krum"),
    pytest.param(Krum(num_byzantine=1, multi=3), id="MultiKrum"),
]

SHAPES = [pytest.param((7,), id="flat"), pytest.param((3, 4), id="matrix")]


def make_round(
    shape: tuple[int, ...], seed: int = 0, n_clients: int = 5
) -> tuple[np.ndarray, list[np.ndarray], list[float]]:
    rng = np.random.default_rng(seed)
    params = rng.normal(size=shape)
    deltas = [rng.normal(scale=0.1, size=shape) for _ in range(n_clients)]
    weights = [float(w) for w in rng.integers(1, 100, size=n_clients)]
    return params, deltas, weights


def run_rounds(
    strategy: Strategy, shape: tuple[int, ...], rounds: int, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    params, _, _ = make_round(shape, seed)
    state: dict[str, np.ndarray] = {}
    for r in range(rounds):
        _, deltas, weights = make_round(shape, seed + 1 + r)
        params, state = strategy.aggregate(params, deltas, weights, state)
    return params, state


# ---------------------------------------------------------------------------------------
# Contract: every strategy
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_output_has_params_shape_dtype_and_is_finite(
    strategy: Strategy, shape: tuple[int, ...]
) -> None:
    params, deltas, weights = make_round(shape)
    new, _ = strategy.aggregate(params, deltas, weights, {})
    assert isinstance(new, np.ndarray)
    assert new.shape == params.shape
    assert new.dtype == params.dtype == np.float64
    assert np.all(np.isfinite(new))
    assert not np.array_equal(new, params)  # non-zero deltas move the model


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_inputs_are_not_mutated(strategy: Strategy) -> None:
    params, deltas, weights = make_round((6,))
    _, state = strategy.aggregate(params, deltas, weights, {})
    params_copy = params.copy()
    deltas_copy = [d.copy() for d in deltas]
    weights_copy = list(weights)
    state_copy = {k: v.copy() for k, v in state.items()}

    strategy.aggregate(params, deltas, weights, state)

    np.testing.assert_array_equal(params, params_copy)
    assert len(deltas) == len(deltas_copy)
    for d, d0 in zip(deltas, deltas_copy, strict=True):
        np.testing.assert_array_equal(d, d0)
    assert weights == weights_copy
    assert state.keys() == state_copy.keys()
    for key in state:
        np.testing.assert_array_equal(state[key], state_copy[key])


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("warm", [False, True], ids=["first-step", "warm-state"])
def test_order_invariance(strategy: Strategy, warm: bool) -> None:
    shape = (5,)
    params, deltas, weights = make_round(shape, seed=3, n_clients=6)
    state: dict[str, np.ndarray] = {}
    if warm:
        params, state = run_rounds(strategy, shape, rounds=2, seed=11)

    expected, expected_state = strategy.aggregate(params, deltas, weights, state)

    rng = np.random.default_rng(42)
    for _ in range(5):
        perm = rng.permutation(len(deltas))
        got, got_state = strategy.aggregate(
            params, [deltas[i] for i in perm], [weights[i] for i in perm], state
        )
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
        assert got_state.keys() == expected_state.keys()
        for key in got_state:
            np.testing.assert_allclose(got_state[key], expected_state[key], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("strategy", MEAN_LIKE)
def test_zero_deltas_leave_params_unchanged(strategy: Strategy) -> None:
    params, _, weights = make_round((4, 2))
    deltas = [np.zeros_like(params) for _ in weights]
    new, state = strategy.aggregate(params, deltas, weights, {})
    np.testing.assert_array_equal(new, params)
    assert new is not params
    assert state == {}


@pytest.mark.parametrize("strategy", MEAN_LIKE)
def test_identical_deltas_give_the_weighted_mean(strategy: Strategy) -> None:
    # Every rule that aggregates to a mean-like delta agrees when the clients agree.
    params, deltas, weights = make_round((3, 2))
    same = [deltas[0].copy() for _ in weights]
    new, _ = strategy.aggregate(params, same, weights, {})
    np.testing.assert_allclose(new, params + weighted_mean(same, weights), rtol=1e-12)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_state_is_a_dict_of_arrays_that_can_be_fed_back(strategy: Strategy) -> None:
    shape = (4,)
    params, _, _ = make_round(shape)
    state: dict[str, np.ndarray] = {}
    keys = None
    for r in range(4):
        _, deltas, weights = make_round(shape, seed=100 + r)
        params, state = strategy.aggregate(params, deltas, weights, state)
        assert isinstance(state, dict)
        for key, value in state.items():
            assert isinstance(key, str)
            assert isinstance(value, np.ndarray)
            assert value.shape == shape
            assert np.all(np.isfinite(value))
        if keys is None:
            keys = set(state)
        assert set(state) == keys
        assert np.all(np.isfinite(params))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_resuming_from_a_copied_state_continues_exactly(strategy: Strategy) -> None:
    shape = (5,)
    straight, straight_state = run_rounds(strategy, shape, rounds=3, seed=7)

    # Run one round, "checkpoint" through plain lists (as JSON would), resume for two more.
    params, _, _ = make_round(shape, 7)
    _, deltas, weights = make_round(shape, 8)
    params, state = strategy.aggregate(params, deltas, weights, {})
    saved = json.loads(json.dumps({k: v.tolist() for k, v in state.items()}))
    params = np.array(params.tolist())
    state = {k: np.asarray(v, dtype=np.float64) for k, v in saved.items()}
    for r in (1, 2):
        _, deltas, weights = make_round(shape, 7 + 1 + r)
        params, state = strategy.aggregate(params, deltas, weights, state)

    np.testing.assert_array_equal(params, straight)
    for key in straight_state:
        np.testing.assert_array_equal(state[key], straight_state[key])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic(strategy: Strategy) -> None:
    a, a_state = run_rounds(strategy, (3, 3), rounds=3, seed=5)
    b, b_state = run_rounds(strategy, (3, 3), rounds=3, seed=5)
    np.testing.assert_array_equal(a, b)
    assert a_state.keys() == b_state.keys()
    for key in a_state:
        np.testing.assert_array_equal(a_state[key], b_state[key])


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    ("deltas", "weights", "field"),
    [
        pytest.param([], [], "updates", id="empty"),
        pytest.param([np.ones(3), np.ones(4)], [1.0, 1.0], "update shape", id="shapes"),
        pytest.param([np.ones(3), np.ones(3)], [1.0, -1.0], "weights", id="negative"),
        pytest.param([np.ones(3), np.ones(3)], [0.0, 0.0], "weights", id="zero-sum"),
        pytest.param([np.ones(3)], [1.0, 2.0], "weights", id="count"),
    ],
)
def test_invalid_updates_raise_config_error(
    strategy: Strategy, deltas: list[np.ndarray], weights: list[float], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        strategy.aggregate(np.zeros(3), deltas, weights, {})
    assert info.value.field == field


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_to_dict_round_trips_through_json(strategy: Strategy) -> None:
    data = json.loads(json.dumps(strategy.to_dict(), allow_nan=False))
    assert data["name"] == strategy.name
    back = strategy_from_dict(data)
    assert type(back) is type(strategy)
    assert back == strategy
    assert back.prox_mu == strategy.prox_mu


# ---------------------------------------------------------------------------------------
# weighted_mean
# ---------------------------------------------------------------------------------------


def test_weighted_mean_hand_computed() -> None:
    # Prepare
    deltas = [np.array([1.0, 0.0, -1.0]), np.array([3.0, 3.0, 3.0]), np.array([0.0, 6.0, 0.0])]
    weights = [1, 2, 3]
    # (1*[1,0,-1] + 2*[3,3,3] + 3*[0,6,0]) / 6 = [7, 24, 5] / 6
    expected = np.array([7.0 / 6.0, 4.0, 5.0 / 6.0])
    # Execute
    actual = weighted_mean(deltas, weights)
    # Assert
    np.testing.assert_allclose(actual, expected, rtol=1e-15)
    assert actual.dtype == np.float64


def test_weighted_mean_ignores_zero_weight_updates() -> None:
    actual = weighted_mean([np.array([2.0, 4.0]), np.array([100.0, -100.0])], [5.0, 0.0])
    np.testing.assert_array_equal(actual, np.array([2.0, 4.0]))


@pytest.mark.parametrize(
    ("deltas", "weights", "field"),
    [
        pytest.param([], [], "updates", id="empty"),
        pytest.param([np.ones(2), np.ones(3)], [1, 1], "update shape", id="mismatched-shape"),
        pytest.param([np.ones((2, 2)), np.ones(4)], [1, 1], "update shape", id="same-size"),
        pytest.param([np.ones(2), np.ones(2)], [3, -1], "weights", id="negative"),
        pytest.param([np.ones(2), np.ones(2)], [0, 0], "weights", id="zero-sum"),
        pytest.param([np.ones(2), np.ones(2)], [1, float("nan")], "weights", id="nan"),
        pytest.param([np.ones(2), np.ones(2)], [1, float("inf")], "weights", id="inf"),
        pytest.param([np.ones(2), np.ones(2)], [1], "weights", id="too-few-weights"),
    ],
)
def test_weighted_mean_errors(deltas: list[np.ndarray], weights: list[float], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        weighted_mean(deltas, weights)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field} must be ")


# ---------------------------------------------------------------------------------------
# FedAvg / FedProx
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy", [pytest.param(FedAvg(), id="FedAvg"), pytest.param(FedProx(mu=0.1), id="FedProx")]
)
def test_fedavg_equals_hand_computed_sample_weighted_mean(strategy: Strategy) -> None:
    # Prepare
    params = np.array([1.0, 2.0, 3.0])
    deltas = [np.array([1.0, 0.0, -1.0]), np.array([3.0, 3.0, 3.0]), np.array([0.0, 6.0, 0.0])]
    num_samples = [10, 20, 30]
    # w + (10*d1 + 20*d2 + 30*d3) / 60 = [1, 2, 3] + [70, 240, 50] / 60
    expected = np.array([1.0 + 7.0 / 6.0, 6.0, 3.0 + 5.0 / 6.0])
    # Execute
    actual, state = strategy.aggregate(params, deltas, num_samples, {})
    # Assert
    np.testing.assert_allclose(actual, expected, rtol=1e-15)
    assert state == {}


def test_fedavg_single_client_takes_its_delta() -> None:
    params = np.array([0.5, -0.5])
    delta = np.array([0.25, 1.0])
    new, _ = FedAvg().aggregate(params, [delta], [42], {})
    np.testing.assert_array_equal(new, np.array([0.75, 0.5]))


def test_prox_mu() -> None:
    assert FedProx(mu=0.1).prox_mu == 0.1
    assert FedProx(mu=2).prox_mu == 2.0
    assert isinstance(FedProx(mu=2).prox_mu, float)
    assert FedProx().prox_mu == FedProx().mu
    assert FedAvg().prox_mu == 0.0
    assert FedAdam().prox_mu == 0.0


@pytest.mark.parametrize("mu", [-0.1, float("nan"), float("inf"), True, "0.1", None])
def test_fedprox_rejects_invalid_mu(mu: Any) -> None:
    with pytest.raises(ConfigError) as info:
        FedProx(mu=mu)
    assert info.value.field == "FedProx.mu"


# ---------------------------------------------------------------------------------------
# FedOpt: the docstring's update rule, computed by hand one coordinate at a time
# ---------------------------------------------------------------------------------------

ETA, B1, B2, TAU = 0.1, 0.9, 0.99, 1e-3


def test_fedadam_first_step_matches_docstring_formula() -> None:
    # Prepare
    strategy = FedAdam(server_learning_rate=ETA, beta1=B1, beta2=B2, tau=TAU)
    params = np.array([0.5, -1.0, 2.0])
    deltas = [np.array([0.1, -0.2, 0.0]), np.array([0.4, -0.8, 0.0])]
    weights = [3.0, 1.0]
    d = [(3 * 0.1 + 1 * 0.4) / 4, (3 * -0.2 + 1 * -0.8) / 4, 0.0]  # [0.175, -0.35, 0]
    expected, m_exp, v_exp = [], [], []
    for w, di in zip(params.tolist(), d, strict=True):
        m = B1 * 0.0 + (1 - B1) * di
        v = B2 * TAU**2 + (1 - B2) * di**2
        expected.append(w + ETA * m / (math.sqrt(v) + TAU))
        m_exp.append(m)
        v_exp.append(v)
    # Execute
    new, state = strategy.aggregate(params, deltas, weights, {})
    # Assert
    np.testing.assert_allclose(new, expected, rtol=1e-12)
    np.testing.assert_allclose(state["m"], m_exp, rtol=1e-12)
    np.testing.assert_allclose(state["v"], v_exp, rtol=1e-12)
    # The step moves each coordinate in the direction of the mean delta.
    assert new[0] > params[0]
    assert new[1] < params[1]
    assert new[2] == params[2]


def test_fedadam_second_step_uses_the_moments() -> None:
    strategy = FedAdam(server_learning_rate=ETA, beta1=B1, beta2=B2, tau=TAU)
    params = np.array([1.0])
    d1, d2 = 0.3, -0.1
    p1, state = strategy.aggregate(params, [np.array([d1])], [1], {})
    p2, state = strategy.aggregate(p1, [np.array([d2])], [1], state)

    m1 = (1 - B1) * d1
    v1 = B2 * TAU**2 + (1 - B2) * d1**2
    w1 = 1.0 + ETA * m1 / (math.sqrt(v1) + TAU)
    m2 = B1 * m1 + (1 - B1) * d2
    v2 = B2 * v1 + (1 - B2) * d2**2
    w2 = w1 + ETA * m2 / (math.sqrt(v2) + TAU)
    assert p1[0] == pytest.approx(w1, rel=1e-12)
    assert p2[0] == pytest.approx(w2, rel=1e-12)
    assert state["m"][0] == pytest.approx(m2, rel=1e-12)
    assert state["v"][0] == pytest.approx(v2, rel=1e-12)


def test_fedadagrad_v_grows_monotonically() -> None:
    strategy = FedAdagrad(server_learning_rate=ETA, tau=TAU)
    rng = np.random.default_rng(0)
    params = np.zeros(6)
    state: dict[str, np.ndarray] = {}
    previous_v = np.full(6, TAU**2)
    for _ in range(10):
        delta = rng.normal(size=6)
        params, state = strategy.aggregate(params, [delta], [1.0], state)
        np.testing.assert_allclose(state["v"], previous_v + delta**2, rtol=1e-12)
        assert np.all(state["v"] > previous_v)
        previous_v = state["v"]


def test_fedadagrad_first_step_matches_docstring_formula() -> None:
    strategy = FedAdagrad(server_learning_rate=ETA, beta1=B1, tau=TAU)
    d = 0.5
    new, state = strategy.aggregate(np.array([0.0]), [np.array([d])], [1], {})
    m = (1 - B1) * d
    v = TAU**2 + d**2
    assert new[0] == pytest.approx(ETA * m / (math.sqrt(v) + TAU), rel=1e-12)
    assert state["v"][0] == pytest.approx(v, rel=1e-12)


def test_fedyogi_formula_both_branches() -> None:
    strategy = FedYogi(server_learning_rate=ETA, beta1=B1, beta2=B2, tau=TAU)
    # Step 1: d**2 = 0.25 > v0 = tau**2, so sign(v - d**2) = -1 and v grows.
    d1 = 0.5
    p1, state = strategy.aggregate(np.array([0.0]), [np.array([d1])], [1], {})
    v1 = TAU**2 - (1 - B2) * d1**2 * -1.0
    m1 = (1 - B1) * d1
    assert state["v"][0] == pytest.approx(v1, rel=1e-12)
    assert p1[0] == pytest.approx(ETA * m1 / (math.sqrt(v1) + TAU), rel=1e-12)
    # Step 2: d**2 = 1e-6 < v1, so sign(v - d**2) = +1 and v shrinks.
    d2 = 1e-3
    p2, state = strategy.aggregate(p1, [np.array([d2])], [1], state)
    v2 = v1 - (1 - B2) * d2**2 * 1.0
    m2 = B1 * m1 + (1 - B1) * d2
    assert state["v"][0] == pytest.approx(v2, rel=1e-12)
    assert state["v"][0] < v1
    assert p2[0] == pytest.approx(p1[0] + ETA * m2 / (math.sqrt(v2) + TAU), rel=1e-12)


def test_yogi_v_changes_additively_where_adam_decays() -> None:
    # With a large pseudo-gradient Adam's v is beta2 * v + ..., Yogi's is v + ...
    d = np.array([2.0])
    _, adam = FedAdam(beta2=B2, tau=TAU).aggregate(np.zeros(1), [d], [1], {})
    _, yogi = FedYogi(beta2=B2, tau=TAU).aggregate(np.zeros(1), [d], [1], {})
    assert yogi["v"][0] - adam["v"][0] == pytest.approx((1 - B2) * TAU**2, rel=1e-9)


def test_fedopt_state_of_another_shape_starts_afresh() -> None:
    strategy = FedAdam()
    fresh, fresh_state = strategy.aggregate(np.zeros(3), [np.ones(3)], [1], {})
    stale = {"m": np.ones(5), "v": np.ones(5)}
    new, state = strategy.aggregate(np.zeros(3), [np.ones(3)], [1], stale)
    np.testing.assert_array_equal(new, fresh)
    np.testing.assert_array_equal(state["v"], fresh_state["v"])


def test_fedopt_factories() -> None:
    assert FedAdam() == FedOpt(optimizer="adam") == FedOpt.adam()
    assert FedYogi(tau=0.1) == FedOpt(optimizer="yogi", tau=0.1) == FedOpt.yogi(tau=0.1)
    assert FedAdagrad() == FedOpt(optimizer="adagrad") == FedOpt.adagrad()
    assert FedAdam() != FedYogi()


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        pytest.param({"optimizer": "sgd"}, "FedOpt.optimizer", id="optimizer"),
        pytest.param({"server_learning_rate": 0.0}, "FedOpt.server_learning_rate", id="eta-0"),
        pytest.param({"server_learning_rate": -1}, "FedOpt.server_learning_rate", id="eta-neg"),
        pytest.param(
            {"server_learning_rate": float("nan")}, "FedOpt.server_learning_rate", id="eta-nan"
        ),
        pytest.param({"server_learning_rate": True}, "FedOpt.server_learning_rate", id="eta-bool"),
        pytest.param({"tau": 0.0}, "FedOpt.tau", id="tau-0"),
        pytest.param({"tau": float("inf")}, "FedOpt.tau", id="tau-inf"),
        pytest.param({"beta1": 1.0}, "FedOpt.beta1", id="beta1-1"),
        pytest.param({"beta1": -0.1}, "FedOpt.beta1", id="beta1-neg"),
        pytest.param({"beta2": 1.5}, "FedOpt.beta2", id="beta2-big"),
        pytest.param({"beta2": "0.9"}, "FedOpt.beta2", id="beta2-str"),
    ],
)
def test_fedopt_rejects_invalid_settings(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        FedOpt(**settings)
    assert info.value.field == field


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: FedProx(mu=np.float32(0.1)), id="FedProx.mu-float32"),
        pytest.param(lambda: FedProx(mu=np.int64(2)), id="FedProx.mu-int64"),
        pytest.param(
            lambda: FedOpt(
                server_learning_rate=np.float32(0.1),
                beta1=np.float32(0.5),
                beta2=np.float16(0.25),
                tau=np.int32(1),
            ),
            id="FedOpt-numpy",
        ),
    ],
)
def test_numpy_numbers_are_accepted_and_stored_as_builtin_floats(make: Any) -> None:
    strategy = make()
    data = strategy.to_dict()
    for name, value in data.items():
        if name not in ("name", "optimizer"):
            assert type(value) is float, name
    back = strategy_from_dict(json.loads(json.dumps(data)))
    assert back == strategy
    assert FedProx(mu=np.float32(0.1)).mu == float(np.float32(0.1))


@pytest.mark.parametrize(
    ("make", "field"),
    [
        pytest.param(lambda: FedProx(mu=np.float32("nan")), "FedProx.mu", id="mu-nan32"),
        pytest.param(lambda: FedProx(mu=np.float64(-1.0)), "FedProx.mu", id="mu-neg64"),
        pytest.param(lambda: FedProx(mu=np.bool_(True)), "FedProx.mu", id="mu-np-bool"),
        pytest.param(
            lambda: FedOpt(server_learning_rate=np.float32("inf")),
            "FedOpt.server_learning_rate",
            id="eta-inf32",
        ),
        pytest.param(lambda: FedOpt(beta2=np.float32(1.0)), "FedOpt.beta2", id="beta2-one32"),
        pytest.param(lambda: FedOpt(optimizer=3), "FedOpt.optimizer", id="optimizer-int"),
    ],
)
def test_invalid_numpy_numbers_are_rejected_with_the_message_shape(make: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field} must be ")
    assert " Found " in str(info.value)


@pytest.mark.parametrize("optimizer", ["Adam", "ADAM", "yOgI", "AdaGrad"])
def test_fedopt_optimizer_is_case_insensitive(optimizer: str) -> None:
    strategy = FedOpt(optimizer=optimizer)  # type: ignore[arg-type]
    assert strategy.optimizer == optimizer.lower()
    assert strategy == FedOpt(optimizer=optimizer.lower())  # type: ignore[arg-type]
    assert strategy_from_dict({"name": "fedopt", "optimizer": optimizer}) == strategy


# ---------------------------------------------------------------------------------------
# Names and dicts
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        pytest.param(FedAvg(), {"name": "fedavg"}, id="FedAvg"),
        pytest.param(FedProx(mu=0.1), {"name": "fedprox", "mu": 0.1}, id="FedProx"),
        pytest.param(
            FedOpt.yogi(server_learning_rate=0.5, beta1=0.8, beta2=0.95, tau=0.01),
            {
                "name": "fedopt",
                "optimizer": "yogi",
                "server_learning_rate": 0.5,
                "beta1": 0.8,
                "beta2": 0.95,
                "tau": 0.01,
            },
            id="FedYogi",
        ),
        pytest.param(
            CoordinateMedian(server_learning_rate=0.5),
            {"name": "median", "server_learning_rate": 0.5},
            id="CoordinateMedian",
        ),
        pytest.param(
            TrimmedMean(trim_fraction=0.25),
            {"name": "trimmed_mean", "trim_fraction": 0.25},
            id="TrimmedMean",
        ),
        pytest.param(
            Krum(num_byzantine=2, multi=3),
            {"name": "krum", "num_byzantine": 2, "multi": 3},
            id="MultiKrum",
        ),
    ],
)
def test_to_dict_contents(strategy: Strategy, expected: dict[str, Any]) -> None:
    assert strategy.to_dict() == expected
    assert strategy_from_dict(expected) == strategy


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fedavg", FedAvg()),
        ("FedProx", FedProx()),
        ("FEDOPT", FedOpt()),
        ("median", CoordinateMedian()),
        ("Trimmed_Mean", TrimmedMean()),
        ("KRUM", Krum()),
    ],
)
def test_strategy_from_name(name: str, expected: Strategy) -> None:
    assert strategy_from_name(name) == expected


@pytest.mark.parametrize("name", ["fedsgd", "", "fedadam", "scaffold"])
def test_unknown_name_raises_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        strategy_from_name(name)
    assert info.value.field == "aggregation_strategy"
    assert info.value.value == name
    with pytest.raises(ConfigError) as info:
        strategy_from_dict({"name": name})
    assert info.value.field == "aggregation_strategy.name"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="no-name"),
        pytest.param({"name": "fedavg", "mu": 0.1}, id="unknown-setting"),
        pytest.param({"name": "fedprox", "mu": -1.0}, id="invalid-setting"),
        pytest.param({"name": "fedopt", "optimizer": "rmsprop"}, id="invalid-optimizer"),
    ],
)
def test_strategy_from_dict_rejects_bad_data(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        strategy_from_dict(data)
