"""Unit tests for heliosfl.privacy accounting: events, ledger form, epsilon, the inverses.

The reference for every epsilon is dp-accounting itself, driven directly in the test with
the event the module docstring of ``heliosfl.privacy.events`` prescribes.
"""

from __future__ import annotations

import json
import math

import dp_accounting
import pytest
from dp_accounting import pld, rdp

import heliosfl.privacy as privacy
from heliosfl.errors import ConfigError
from heliosfl.privacy import (
    SamplingScheme,
    calibrate_noise,
    compute_epsilon,
    epsilon_curve,
    epsilon_of,
    event_from_dict,
    event_to_dict,
    neighboring_relation,
    round_event,
    rounds_affordable,
)

ADD_REMOVE = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
REPLACE = dp_accounting.NeighboringRelation.REPLACE_ONE
POPULATION = 200


def reference_epsilon(
    z: float, q: float, rounds: int, delta: float, scheme: str, *, one_by_one: bool = False
) -> float:
    """dp-accounting's own epsilon for ``rounds`` rounds of the prescribed event."""
    gaussian = dp_accounting.GaussianDpEvent
    relation = ADD_REMOVE
    if scheme == "none":
        event = gaussian(z)
    elif scheme == "poisson":
        event = dp_accounting.PoissonSampledDpEvent(q, gaussian(z))
    elif scheme == "laplace":
        event = dp_accounting.LaplaceDpEvent(z)
    else:  # replace-one sensitivity of the sum is 2C: multiplier z / 2
        k = round(q * POPULATION)
        event = dp_accounting.SampledWithoutReplacementDpEvent(POPULATION, k, gaussian(z / 2))
        relation = REPLACE
    accountant = rdp.RdpAccountant(neighboring_relation=relation)
    if one_by_one:
        for _ in range(rounds):
            accountant.compose(event)
    else:
        accountant.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    return float(accountant.get_epsilon(delta))


def heliosfl_event(z: float, q: float, scheme: str) -> dp_accounting.DpEvent:
    if scheme == "none":
        return round_event(z)
    if scheme == "laplace":
        return round_event(z, mechanism="laplace")
    if scheme == "poisson":
        return round_event(z, sampling="poisson", sampling_rate=q)
    return round_event(
        z, sampling="without_replacement", population=POPULATION, sample_size=round(q * POPULATION)
    )


# ---------------------------------------------------------------- events and relations


def test_round_event_shapes() -> None:
    g = dp_accounting.GaussianDpEvent
    assert round_event(1.5) == g(1.5)
    assert round_event(1.5, sampling="poisson", sampling_rate=0.1) == (
        dp_accounting.PoissonSampledDpEvent(0.1, g(1.5))
    )
    assert round_event(1.5, sampling="poisson", sampling_rate=1.0) == g(1.5)
    assert round_event(
        1.5, sampling=SamplingScheme.WITHOUT_REPLACEMENT, population=50, sample_size=5
    ) == dp_accounting.SampledWithoutReplacementDpEvent(50, 5, g(0.75))
    assert round_event(1.5, deterministic_subset=True) == g(0.75)
    assert round_event(2.0, count_noise_multiplier=5.0, sampling="poisson", sampling_rate=0.2) == (
        dp_accounting.PoissonSampledDpEvent(0.2, dp_accounting.ComposedDpEvent([g(2.0), g(5.0)]))
    )
    # The count's sensitivity stays 1 under replace-one: only the update is halved.
    wor = round_event(
        2.0, sampling="without_replacement", population=9, sample_size=3, count_noise_multiplier=5.0
    )
    assert wor.event == dp_accounting.ComposedDpEvent([g(1.0), g(5.0)])


def test_laplace_gets_no_amplification() -> None:
    lap = dp_accounting.LaplaceDpEvent
    assert round_event(4.0, mechanism="laplace") == lap(4.0)
    assert round_event(4.0, mechanism="LAPLACE", sampling="poisson", sampling_rate=0.1) == lap(4.0)
    fixed_size = round_event(
        4.0, mechanism="laplace", sampling="without_replacement", population=10, sample_size=3
    )
    assert fixed_size == lap(2.0)  # a sampled client can displace another: L1 sensitivity 2C
    assert neighboring_relation(fixed_size) is ADD_REMOVE


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"noise_multiplier": math.inf}, "noise_multiplier"),
        ({"noise_multiplier": True}, "noise_multiplier"),
        ({"mechanism": "exponential"}, "mechanism"),
        ({"sampling": "stratified"}, "sampling"),
        ({"sampling": "poisson", "sampling_rate": 0.0}, "sampling_rate"),
        ({"sampling": "poisson", "sampling_rate": 1.5}, "sampling_rate"),
        ({"sampling_rate": 0.5}, "sampling_rate"),
        ({"sampling": "without_replacement", "population": 5}, "population"),
        ({"sampling": "without_replacement", "population": 5, "sample_size": 6}, "sample_size"),
        ({"sampling": "without_replacement", "population": 5, "sample_size": 0}, "sample_size"),
        ({"population": 5}, "population"),
        ({"count_noise_multiplier": -1.0}, "count_noise_multiplier"),
        (
            {"sampling": "poisson", "sampling_rate": 0.5, "deterministic_subset": True},
            "deterministic_subset",
        ),
    ],
)
def test_round_event_rejects(kwargs: dict[str, object], field: str) -> None:
    args = {"noise_multiplier": 1.0, **kwargs}
    z = args.pop("noise_multiplier")
    with pytest.raises(ConfigError) as info:
        round_event(z, **args)
    assert info.value.field == field


def test_neighboring_relation() -> None:
    assert neighboring_relation(round_event(1.0)) is ADD_REMOVE
    assert (
        neighboring_relation(round_event(1.0, sampling="poisson", sampling_rate=0.3)) is ADD_REMOVE
    )
    wor = round_event(1.0, sampling="without_replacement", population=4, sample_size=4)
    assert neighboring_relation(wor) is REPLACE  # k == n keeps the replace-one event
    assert neighboring_relation(dp_accounting.ComposedDpEvent([round_event(1.0), wor])) is REPLACE


@pytest.mark.parametrize(
    "event",
    [
        round_event(0.1),
        round_event(1 / 3, mechanism="laplace"),
        round_event(2.5, sampling="poisson", sampling_rate=0.123456789, count_noise_multiplier=7.0),
        round_event(3.0, sampling="without_replacement", population=1000, sample_size=17),
        dp_accounting.SelfComposedDpEvent(round_event(1.1), 40),
        dp_accounting.NoOpDpEvent(),
    ],
)
def test_event_dict_round_trip_is_exact(event: dp_accounting.DpEvent) -> None:
    data = json.loads(json.dumps(event_to_dict(event)))
    assert event_from_dict(data) == event
    assert event_to_dict(event_from_dict(data)) == event_to_dict(event)


@pytest.mark.parametrize(
    "data",
    [
        {"type": "gaussian"},
        {"type": "gaussian", "noise_multiplier": "1.0"},
        {"type": "gaussian", "noise_multiplier": -1.0},
        {"type": "gaussian", "noise_multiplier": 1.0, "extra": 1},
        {"type": "poisson_sampled", "sampling_probability": 2.0, "event": {"type": "no_op"}},
        {
            "type": "sampled_without_replacement",
            "source_dataset_size": 3,
            "sample_size": 4,
            "event": {"type": "no_op"},
        },
        {"type": "composed", "events": {"type": "no_op"}},
        {"type": "zcdp", "rho": 1.0},
        ["gaussian", 1.0],
    ],
)
def test_event_from_dict_rejects(data: object) -> None:
    with pytest.raises(ConfigError):
        event_from_dict(data)


def test_event_to_dict_rejects_foreign_events() -> None:
    with pytest.raises(ConfigError):
        event_to_dict(dp_accounting.ZCDpEvent(rho=0.1))


# ------------------------------------------------------ epsilon equals dp-accounting's


@pytest.mark.parametrize("scheme", ["none", "laplace"])
@pytest.mark.parametrize("z", [0.7, 2.0, 11.0])
@pytest.mark.parametrize("rounds", [1, 37, 400])
@pytest.mark.parametrize("delta", [1e-7, 1e-5, 1e-3])
def test_epsilon_matches_dp_accounting_unsampled(
    scheme: str, z: float, rounds: int, delta: float
) -> None:
    expected = reference_epsilon(z, 1.0, rounds, delta, scheme, one_by_one=True)
    event = heliosfl_event(z, 1.0, scheme)
    assert epsilon_of([event] * rounds, delta) == pytest.approx(expected, rel=1e-6)
    mechanism = "laplace" if scheme == "laplace" else "gaussian"
    got = compute_epsilon(noise_multiplier=z, rounds=rounds, delta=delta, mechanism=mechanism)
    assert got == pytest.approx(expected, rel=1e-6)


SAMPLED_GRID = [
    ("poisson", 0.8, 0.05, 1, 1e-5),
    ("poisson", 0.8, 0.3, 250, 1e-7),
    ("poisson", 4.0, 0.05, 250, 1e-3),
    ("poisson", 4.0, 0.3, 1, 1e-5),
    ("poisson", 1.5, 0.01, 1000, 1e-5),
    ("without_replacement", 0.8, 0.05, 250, 1e-5),
    ("without_replacement", 4.0, 0.3, 1, 1e-7),
    ("without_replacement", 1.5, 0.5, 40, 1e-3),
]


@pytest.mark.parametrize(("scheme", "z", "q", "rounds", "delta"), SAMPLED_GRID)
def test_epsilon_matches_dp_accounting_sampled(
    scheme: str, z: float, q: float, rounds: int, delta: float
) -> None:
    expected = reference_epsilon(z, q, rounds, delta, scheme)
    assert epsilon_of([heliosfl_event(z, q, scheme)] * rounds, delta) == pytest.approx(
        expected, rel=1e-6
    )
    got = compute_epsilon(
        noise_multiplier=z,
        rounds=rounds,
        delta=delta,
        sampling_rate=q,
        sampling=scheme,
        population=POPULATION,
    )
    assert got == pytest.approx(expected, rel=1e-6)


def test_ledger_and_projection_agree_bit_for_bit() -> None:
    event = round_event(1.3, sampling="poisson", sampling_rate=0.1)
    projected = compute_epsilon(noise_multiplier=1.3, rounds=60, delta=1e-5, sampling_rate=0.1)
    assert epsilon_of([event] * 60, 1e-5) == projected  # exact: no rounding drift


def test_mixed_sequence_matches_sequential_composition() -> None:
    a, b = round_event(1.0), round_event(3.0)
    accountant = rdp.RdpAccountant()
    for event in [a, a, b, a]:
        accountant.compose(event)
    assert epsilon_of([a, a, b, a], 1e-6) == pytest.approx(accountant.get_epsilon(1e-6), rel=1e-12)


def test_epsilon_of_edge_cases() -> None:
    assert epsilon_of([], 1e-5) == 0.0
    assert compute_epsilon(noise_multiplier=1.0, rounds=0, delta=1e-5) == 0.0
    wor = heliosfl_event(1.0, 0.1, "without_replacement")
    with pytest.raises(ConfigError, match="one neighbouring relation"):
        epsilon_of([round_event(1.0), wor], 1e-5)
    with pytest.raises(ConfigError) as info:
        epsilon_of([round_event(1.0)], 0.0)
    assert info.value.field == "delta"
    with pytest.raises(ConfigError):
        epsilon_of([round_event(1.0)], 1e-5, accountant="moments")


def test_pld_runs_and_is_not_looser_than_rdp() -> None:
    settings = {"noise_multiplier": 1.0, "rounds": 100, "delta": 1e-5, "sampling_rate": 0.1}
    rdp_epsilon = compute_epsilon(**settings)
    pld_epsilon = compute_epsilon(**settings, accountant="pld")
    assert 0.0 < pld_epsilon <= rdp_epsilon * 1.01
    reference = pld.PLDAccountant()
    reference.compose(
        dp_accounting.PoissonSampledDpEvent(0.1, dp_accounting.GaussianDpEvent(1.0)), 100
    )
    assert pld_epsilon == pytest.approx(reference.get_epsilon(1e-5), rel=1e-6)
    laplace = compute_epsilon(
        noise_multiplier=5.0, rounds=10, delta=1e-5, mechanism="laplace", accountant="PLD"
    )
    assert (
        0.0
        < laplace
        <= compute_epsilon(noise_multiplier=5.0, rounds=10, delta=1e-5, mechanism="laplace") * 1.01
    )


def test_pld_refuses_sampling_without_replacement() -> None:
    with pytest.raises(ConfigError, match="accountant='rdp'"):
        compute_epsilon(
            noise_multiplier=1.0,
            rounds=3,
            delta=1e-5,
            sampling_rate=0.1,
            sampling="without_replacement",
            population=100,
            accountant="pld",
        )


def test_without_replacement_uses_replace_one_and_needs_population() -> None:
    event = heliosfl_event(2.0, 0.1, "without_replacement")
    assert neighboring_relation(event) is REPLACE
    with pytest.raises(ConfigError) as info:
        compute_epsilon(
            noise_multiplier=1.0,
            rounds=3,
            delta=1e-5,
            sampling_rate=0.1,
            sampling="without_replacement",
        )
    assert info.value.field == "population"
    with pytest.raises(ConfigError):
        compute_epsilon(
            noise_multiplier=1.0,
            rounds=3,
            delta=1e-5,
            sampling_rate=0.001,
            sampling="without_replacement",
            population=100,
        )


# -------------------------------------------------------------------- adaptive clipping


@pytest.mark.parametrize(("sampling", "q"), [("none", 1.0), ("poisson", 0.05), ("poisson", 0.5)])
@pytest.mark.parametrize(("z_update", "sigma_b"), [(1.0, 3.0), (5.0, 10.0)])
def test_count_query_costs_one_combined_gaussian(
    sampling: str, q: float, z_update: float, sigma_b: float
) -> None:
    combined = (z_update**-2 + sigma_b**-2) ** -0.5
    kwargs = {"rounds": 30, "delta": 1e-5, "sampling_rate": q, "sampling": sampling}
    both = compute_epsilon(noise_multiplier=z_update, count_noise_multiplier=sigma_b, **kwargs)
    single = compute_epsilon(noise_multiplier=combined, **kwargs)
    assert both == pytest.approx(single, rel=1e-9)
    assert privacy.split_noise_multiplier(combined, sigma_b) == pytest.approx(z_update, rel=1e-12)


def test_calibration_with_count_noise_includes_its_cost() -> None:
    z = calibrate_noise(epsilon=2.0, delta=1e-5, rounds=50, count_noise_multiplier=40.0)
    plain = calibrate_noise(epsilon=2.0, delta=1e-5, rounds=50)
    assert z > plain
    spent = compute_epsilon(noise_multiplier=z, rounds=50, delta=1e-5, count_noise_multiplier=40.0)
    assert spent <= 2.0
    with pytest.raises(ConfigError, match="count_noise_multiplier"):
        calibrate_noise(epsilon=0.5, delta=1e-5, rounds=50, count_noise_multiplier=1.0)


# ---------------------------------------------------------------------- the inverses


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"mechanism": "laplace"},
        {"sampling_rate": 0.1},
        {"sampling_rate": 0.1, "sampling": "without_replacement", "population": 100},
        {"deterministic_subset": True, "sampling": "none"},
    ],
)
def test_calibrate_noise_fits_and_is_tight(settings: dict[str, object]) -> None:
    tolerance = 1e-4
    z = calibrate_noise(epsilon=2.0, delta=1e-5, rounds=40, tolerance=tolerance, **settings)
    spent = compute_epsilon(noise_multiplier=z, rounds=40, delta=1e-5, **settings)
    below = compute_epsilon(
        noise_multiplier=z * (1 - 2 * tolerance), rounds=40, delta=1e-5, **settings
    )
    assert spent <= 2.0 < below


def test_guide_example_calibrates_honestly() -> None:
    z = calibrate_noise(epsilon=0.1, delta=1e-5, rounds=100)
    assert z > 100  # all nodes, no amplification: a lot of noise, and it fits
    assert compute_epsilon(noise_multiplier=z, rounds=100, delta=1e-5) <= 0.1


def test_calibrate_noise_refuses_impossible_targets() -> None:
    with pytest.raises(ConfigError, match="Increase epsilon") as info:
        calibrate_noise(epsilon=1e-9, delta=1e-5, rounds=10**6)
    assert info.value.field == "epsilon"
    with pytest.raises(ConfigError):
        calibrate_noise(epsilon=-1.0, delta=1e-5, rounds=10)
    with pytest.raises(ConfigError):
        calibrate_noise(epsilon=1.0, delta=1e-5, rounds=0)


def test_huge_target_returns_the_floor() -> None:
    z = calibrate_noise(epsilon=1e12, delta=1e-5, rounds=1)
    assert z == pytest.approx(1e-3)
    assert compute_epsilon(noise_multiplier=z, rounds=1, delta=1e-5) <= 1e12


@pytest.mark.parametrize(
    "settings",
    [
        {"noise_multiplier": 1.0},
        {"noise_multiplier": 3.0, "mechanism": "laplace"},
        {"noise_multiplier": 0.9, "sampling_rate": 0.05},
    ],
)
def test_rounds_affordable_boundary_is_exact(settings: dict[str, object]) -> None:
    r = rounds_affordable(epsilon=8.0, delta=1e-5, **settings)
    assert r >= 1
    assert compute_epsilon(rounds=r, delta=1e-5, **settings) <= 8.0
    assert compute_epsilon(rounds=r + 1, delta=1e-5, **settings) > 8.0


def test_rounds_affordable_limits() -> None:
    assert rounds_affordable(noise_multiplier=0.1, epsilon=0.5, delta=1e-5) == 0
    assert rounds_affordable(noise_multiplier=1e4, epsilon=10.0, delta=1e-5, max_rounds=500) == 500


def test_epsilon_curve_matches_compute_epsilon() -> None:
    rounds = [1, 5, 25, 125]
    curve = epsilon_curve(2.0, rounds, 1e-5, mechanism="laplace")
    assert curve == [
        compute_epsilon(noise_multiplier=2.0, rounds=r, delta=1e-5, mechanism="laplace")
        for r in rounds
    ]
    assert curve == sorted(curve)


def test_exported_members() -> None:
    assert privacy.__all__ == sorted(privacy.__all__)
    for name in privacy.__all__:
        assert getattr(privacy, name) is not None
