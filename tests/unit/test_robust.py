"""Byzantine-robust aggregation: what each rule tolerates, worked out by hand.

The shared Strategy contract (shapes, purity, order invariance, state, errors) is in
``tests/contract/test_strategies.py``; this file checks the robustness claims.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import heliosfl as fl
from heliosfl.config import AggregationStrategy, Config, RoundConfig
from heliosfl.errors import ConfigError, InsufficientNodes
from heliosfl.robust import CoordinateMedian, Krum, TrimmedMean
from heliosfl.strategies import FedAvg, Strategy, strategy_from_dict, strategy_from_name


def aggregate(strategy: Strategy, deltas: list[np.ndarray], params: Any = None) -> np.ndarray:
    base = np.zeros_like(deltas[0]) if params is None else params
    new, state = strategy.aggregate(base, deltas, [1.0] * len(deltas), {})
    assert state == {}
    return np.asarray(new - base)


def honest_round(
    n_honest: int, dim: int = 8, seed: int = 0, scale: float = 0.1
) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    gradient = np.ones(dim)
    return gradient, [gradient + rng.normal(scale=scale, size=dim) for _ in range(n_honest)]


# ---------------------------------------------------------------------------------------
# Median and trimmed mean
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy",
    [
        pytest.param(CoordinateMedian(), id="CoordinateMedian"),
        pytest.param(TrimmedMean(trim_fraction=0.2), id="TrimmedMean"),
    ],
)
def test_one_huge_outlier_is_resisted_where_fedavg_is_not(strategy: Strategy) -> None:
    # Prepare: four honest deltas in [1, 4] per coordinate and one at 1e6 (node 2).
    honest = [np.array([1.0, -1.0]), np.array([2.0, -2.0]), np.array([3.0, -3.0])]
    honest.append(np.array([4.0, -4.0]))
    deltas = [*honest[:2], np.array([1e6, -1e6]), *honest[2:]]
    # Execute
    robust = aggregate(strategy, deltas)
    average = aggregate(FedAvg(), deltas)
    # Assert
    assert np.all(robust >= np.min(honest, axis=0))
    assert np.all(robust <= np.max(honest, axis=0))
    assert np.all(np.abs(average) > 1e5)


def test_median_hand_computed_odd_and_even() -> None:
    deltas = [np.array([5.0, 0.0]), np.array([1.0, 2.0]), np.array([3.0, -7.0])]
    np.testing.assert_array_equal(aggregate(CoordinateMedian(), deltas), [3.0, 0.0])
    deltas.append(np.array([100.0, 1.0]))  # even n: mean of the two middle values
    np.testing.assert_array_equal(aggregate(CoordinateMedian(), deltas), [4.0, 0.5])


def test_median_server_learning_rate_scales_the_step() -> None:
    params = np.array([1.0, 1.0])
    deltas = [np.array([2.0, -4.0]), np.array([4.0, -2.0]), np.array([6.0, 0.0])]
    new, _ = CoordinateMedian(server_learning_rate=0.5).aggregate(params, deltas, [1] * 3, {})
    np.testing.assert_array_equal(new, [1.0 + 0.5 * 4.0, 1.0 + 0.5 * -2.0])


def test_trimmed_mean_hand_computed() -> None:
    # n = 5, trim 0.2: drop 1 per side in each coordinate, average the middle 3.
    deltas = [np.array([v, -v]) for v in (10.0, 1.0, 2.0, 3.0, -50.0)]
    np.testing.assert_allclose(aggregate(TrimmedMean(trim_fraction=0.2), deltas), [2.0, -2.0])


def test_trimmed_mean_with_no_trim_is_the_unweighted_mean() -> None:
    rng = np.random.default_rng(3)
    deltas = [rng.normal(size=(3, 2)) for _ in range(6)]
    weights = [1.0, 50.0, 2.0, 9.0, 1.0, 7.0]
    new, _ = TrimmedMean(trim_fraction=0.0).aggregate(np.zeros((3, 2)), deltas, weights, {})
    np.testing.assert_allclose(new, np.mean(deltas, axis=0), rtol=1e-14)


@pytest.mark.parametrize(
    ("fraction", "n", "expected"),
    [(0.0, 10, 0), (0.1, 5, 0), (0.2, 5, 1), (0.1, 30, 3), (0.29, 100, 29), (0.49, 3, 1)],
)
def test_trimmed_per_side_is_floor_of_fraction_times_n(
    fraction: float, n: int, expected: int
) -> None:
    assert TrimmedMean(trim_fraction=fraction).trimmed_per_side(n) == expected


@pytest.mark.parametrize(
    "strategy",
    [
        pytest.param(CoordinateMedian(), id="CoordinateMedian"),
        pytest.param(TrimmedMean(trim_fraction=0.2), id="TrimmedMean"),
        pytest.param(Krum(num_byzantine=1, multi=2), id="MultiKrum"),
    ],
)
def test_weights_are_ignored(strategy: Strategy) -> None:
    # A node claiming a huge sample count gains nothing.
    _, deltas = honest_round(5, seed=4)
    deltas[4] = deltas[4] + 100.0
    a, _ = strategy.aggregate(np.zeros(8), deltas, [1.0] * 5, {})
    b, _ = strategy.aggregate(np.zeros(8), deltas, [1.0, 1.0, 1.0, 1.0, 1e9], {})
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------
# Krum
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["far-away", "sign-flip", "huge"])
@pytest.mark.parametrize("f", [1, 2, 3])
def test_krum_picks_an_honest_delta(attack: str, f: int) -> None:
    # Prepare: n = 2f + 3 updates, f of them from colluding attackers spread across the order.
    n = 2 * f + 3
    gradient, honest = honest_round(n - f, seed=f)
    bad = {
        "far-away": gradient + 100.0,
        "sign-flip": -gradient,
        "huge": np.full_like(gradient, 1e300),
    }[attack]
    attackers = set(range(0, n, 2)[:f])
    pool = iter(honest)
    deltas = [bad.copy() if i in attackers else next(pool) for i in range(n)]
    # Execute
    chosen = aggregate(Krum(num_byzantine=f), deltas)
    # Assert: Krum returns one of the honest deltas itself.
    assert any(np.array_equal(chosen, h) for h in honest)


def test_krum_scores_and_multi_krum_hand_computed() -> None:
    # Prepare: 1-D deltas, f = 1, so each score sums the n - f - 2 = 2 nearest squared distances.
    deltas = [np.array([v]) for v in (0.0, 1.0, 3.0, 10.0, 100.0)]
    expected_scores = [
        1 + 9,  # 0: to 1 and 3
        1 + 4,  # 1: to 0 and 3
        4 + 9,  # 3: to 1 and 0
        49 + 81,  # 10: to 3 and 1
        90**2 + 97**2,  # 100: to 10 and 3
    ]
    strategy = Krum(num_byzantine=1)
    # Execute / Assert
    np.testing.assert_allclose(strategy.scores(np.stack(deltas)), expected_scores, rtol=1e-12)
    np.testing.assert_array_equal(aggregate(strategy, deltas), [1.0])
    # Multi-Krum: unweighted mean of the m best (scores 5 and 10, then 13).
    np.testing.assert_array_equal(aggregate(Krum(num_byzantine=1, multi=2), deltas), [0.5])
    np.testing.assert_allclose(
        aggregate(Krum(num_byzantine=1, multi=3), deltas), [4.0 / 3.0], rtol=1e-15
    )


def test_multi_krum_excludes_the_attackers() -> None:
    gradient, honest = honest_round(7, seed=9)
    deltas = [*honest[:3], -5 * gradient, *honest[3:], gradient + 50.0]  # n = 9, f = 2
    new = aggregate(Krum(num_byzantine=2, multi=5), deltas)
    assert np.all(new >= np.min(honest, axis=0))
    assert np.all(new <= np.max(honest, axis=0))


@pytest.mark.parametrize(
    ("strategy", "n", "required"),
    [
        pytest.param(Krum(), 2, 3, id="f0-n2"),
        pytest.param(Krum(num_byzantine=1), 4, 5, id="f1-n4"),
        pytest.param(Krum(num_byzantine=2), 6, 7, id="f2-n6"),
        pytest.param(Krum(num_byzantine=1, multi=5), 5, 6, id="m-above-n-minus-f"),
    ],
)
def test_krum_with_too_few_updates_raises_insufficient_nodes(
    strategy: Krum, n: int, required: int
) -> None:
    _, deltas = honest_round(n)
    with pytest.raises(InsufficientNodes) as info:
        aggregate(strategy, deltas)
    assert info.value.required == required == strategy.required_updates()
    assert info.value.available == n
    assert "Krum" in str(info.value)
    assert pickle.loads(pickle.dumps(info.value)).required == required  # noqa: S301
    aggregate(strategy, honest_round(required)[1])  # one more is enough


def test_krum_ties_are_broken_by_node_order() -> None:
    # Every score is 1: the first node wins, whichever it is.
    deltas = [np.array([-1.0]), np.array([0.0]), np.array([1.0])]
    assert aggregate(Krum(), deltas)[0] == -1.0
    assert aggregate(Krum(), deltas[::-1])[0] == 1.0
    assert all(aggregate(Krum(), deltas)[0] == -1.0 for _ in range(5))
    # Multi-Krum with a tie at the cut keeps the earlier node.
    assert aggregate(Krum(multi=2), deltas)[0] == -0.5


def test_krum_distances_survive_a_large_common_offset() -> None:
    # Gram-trick distances lose precision for large norms; centring at the median keeps the
    # scores equal to the directly computed ones.
    rng = np.random.default_rng(1)
    deltas = 1e4 + rng.normal(scale=1e-3, size=(9, 50))
    direct = ((deltas[:, None, :] - deltas[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(direct, np.inf)
    expected = np.sort(direct, axis=1)[:, : 9 - 2 - 2].sum(axis=1)
    np.testing.assert_allclose(Krum(num_byzantine=2).scores(deltas), expected, rtol=1e-6)


def test_krum_scales_to_many_updates() -> None:
    rng = np.random.default_rng(2)
    deltas = list(rng.normal(size=(300, 2000)))
    deltas[7] = deltas[7] + 1e3
    new = aggregate(Krum(num_byzantine=50, multi=10), deltas)
    assert new.shape == (2000,)
    assert np.all(np.abs(new) < 10)


# ---------------------------------------------------------------------------------------
# Inputs the robust rules refuse
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy",
    [
        pytest.param(CoordinateMedian(), id="CoordinateMedian"),
        pytest.param(TrimmedMean(), id="TrimmedMean"),
        pytest.param(Krum(), id="Krum"),
    ],
)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_updates_raise_config_error(strategy: Strategy, bad: float) -> None:
    deltas = [np.ones(3), np.array([1.0, bad, 1.0]), np.ones(3)]
    with pytest.raises(ConfigError) as info:
        strategy.aggregate(np.zeros(3), deltas, [1.0] * 3, {})
    assert info.value.field == "update values"
    assert "[1]" in str(info.value)


@pytest.mark.parametrize(
    "strategy", [CoordinateMedian(), TrimmedMean(), Krum()], ids=lambda s: type(s).__name__
)
def test_updates_must_have_the_parameters_shape(strategy: Strategy) -> None:
    with pytest.raises(ConfigError) as info:
        strategy.aggregate(np.zeros(4), [np.ones(3)] * 3, [1.0] * 3, {})
    assert info.value.field == "update shape"


MEDIAN = "CoordinateMedian"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: CoordinateMedian(server_learning_rate=0), f"{MEDIAN}.server_learning_rate"),
        (lambda: CoordinateMedian(server_learning_rate="1"), f"{MEDIAN}.server_learning_rate"),
        (lambda: TrimmedMean(trim_fraction=0.5), "TrimmedMean.trim_fraction"),
        (lambda: TrimmedMean(trim_fraction=-0.1), "TrimmedMean.trim_fraction"),
        (lambda: TrimmedMean(trim_fraction=float("nan")), "TrimmedMean.trim_fraction"),
        (lambda: TrimmedMean(trim_fraction=True), "TrimmedMean.trim_fraction"),
        (lambda: Krum(num_byzantine=-1), "Krum.num_byzantine"),
        (lambda: Krum(num_byzantine=1.0), "Krum.num_byzantine"),
        (lambda: Krum(num_byzantine=None), "Krum.num_byzantine"),
        (lambda: Krum(multi=0), "Krum.multi"),
        (lambda: Krum(multi=True), "Krum.multi"),
    ],
)
def test_invalid_settings_name_the_field(make: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field} must be ")
    assert " Found " in str(info.value)


# ---------------------------------------------------------------------------------------
# Names, dicts, configs and the public API
# ---------------------------------------------------------------------------------------

ROBUST = [
    pytest.param(CoordinateMedian(server_learning_rate=0.5), id="CoordinateMedian"),
    pytest.param(TrimmedMean(trim_fraction=0.3), id="TrimmedMean"),
    pytest.param(Krum(num_byzantine=np.int64(2), multi=3), id="MultiKrum"),
]


@pytest.mark.parametrize("strategy", ROBUST)
def test_to_dict_from_dict_round_trip(strategy: Strategy) -> None:
    data = json.loads(json.dumps(strategy.to_dict(), allow_nan=False))
    assert strategy_from_dict(data) == strategy
    assert type(strategy_from_dict(data)) is type(strategy)


@pytest.mark.parametrize("strategy", ROBUST)
def test_config_round_trips_a_robust_strategy(strategy: Strategy) -> None:
    # Krum needs a quorum of at least 2f + 3 (and m + f) updates
    cfg = Config(aggregation_strategy=strategy, round_config=RoundConfig(min_nodes_per_round=20))
    back = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back.strategy == strategy


@pytest.mark.parametrize(
    ("member", "cls"),
    [
        (AggregationStrategy.MEDIAN, CoordinateMedian),
        (AggregationStrategy.TRIMMED_MEAN, TrimmedMean),
        (AggregationStrategy.KRUM, Krum),
    ],
)
def test_names_enum_and_config_select_the_rules(member: AggregationStrategy, cls: type) -> None:
    assert member.value == cls.name
    assert strategy_from_name(member.value) == cls()
    assert strategy_from_name(member.value.upper()) == cls()
    quorum = RoundConfig(min_nodes_per_round=3)
    assert Config(aggregation_strategy=member.value, round_config=quorum).strategy == cls()
    cfg = Config(aggregation_strategy=member, round_config=quorum)
    assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_unknown_name_lists_the_robust_rules() -> None:
    with pytest.raises(ConfigError) as info:
        strategy_from_name("bulyan")
    for name in ("'fedavg'", "'median'", "'trimmed_mean'", "'krum'"):
        assert name in str(info.value)


def test_exported_at_top_level() -> None:
    assert fl.CoordinateMedian is CoordinateMedian
    assert fl.TrimmedMean is TrimmedMean
    assert fl.Krum is Krum


# ---------------------------------------------------------------------------------------
# Property: a minority of arbitrary values cannot leave the honest range
# ---------------------------------------------------------------------------------------

arbitrary = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False)
honest_values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@st.composite
def attacked_round(draw: st.DrawFn, *, n_attackers: Any) -> tuple[np.ndarray, np.ndarray]:
    """(deltas, honest mask): honest and arbitrary rows interleaved in a random node order."""
    n = draw(st.integers(min_value=1, max_value=12))
    a = draw(n_attackers(n))
    dim = draw(st.integers(min_value=1, max_value=4))
    rows = [[draw(arbitrary if i < a else honest_values) for _ in range(dim)] for i in range(n)]
    order = draw(st.permutations(range(n)))
    deltas = np.array([rows[i] for i in order])
    honest = np.array([i >= a for i in order])
    return deltas, honest


def assert_within_honest_range(result: np.ndarray, honest: np.ndarray) -> None:
    lo, hi = honest.min(axis=0), honest.max(axis=0)
    slack = 1e-12 * np.maximum(np.abs(lo), np.abs(hi))  # rounding of the mean of kept values
    assert np.all(result >= lo - slack)
    assert np.all(result <= hi + slack)


@settings(max_examples=200)
@given(attacked_round(n_attackers=lambda n: st.integers(0, (n - 1) // 2)))
def test_median_stays_within_the_honest_range(case: tuple[np.ndarray, np.ndarray]) -> None:
    deltas, honest = case  # fewer than half arbitrary
    result = aggregate(CoordinateMedian(), list(deltas))
    assert_within_honest_range(result, deltas[honest])


@settings(max_examples=200)
@given(
    st.floats(min_value=0.0, max_value=0.49),
    st.data(),
)
def test_trimmed_mean_stays_within_the_honest_range(fraction: float, data: st.DataObject) -> None:
    strategy = TrimmedMean(trim_fraction=fraction)
    deltas, honest = data.draw(
        attacked_round(n_attackers=lambda n: st.integers(0, strategy.trimmed_per_side(n)))
    )
    result = aggregate(strategy, list(deltas))
    assert_within_honest_range(result, deltas[honest])


def test_robust_rules_are_refused_with_privacy_or_secure_aggregation() -> None:
    from heliosfl.config import DifferentialPrivacyConfig
    from heliosfl.secagg import SecureAggregationConfig

    with pytest.raises(ConfigError, match="aggregation_strategy"):
        Config(
            aggregation_strategy=CoordinateMedian(),
            enable_privacy=True,
            privacy_config=DifferentialPrivacyConfig(epsilon=1.0),
        )
    with pytest.raises(ConfigError, match="aggregation_strategy"):
        Config(
            aggregation_strategy=TrimmedMean(),
            secure_aggregation=SecureAggregationConfig(enabled=True),
        )


def test_krum_needs_a_quorum_it_can_work_with() -> None:
    with pytest.raises(ConfigError, match=r"at least 7 for Krum\(num_byzantine=2"):
        Config(aggregation_strategy=Krum(num_byzantine=2), round_config=RoundConfig())
    Config(
        aggregation_strategy=Krum(num_byzantine=2), round_config=RoundConfig(min_nodes_per_round=7)
    )
