"""Property tests for heliosfl.privacy: the invariants the guarantee rests on.

- the clipping bound holds for every finite update, whatever its magnitude;
- calibrated noise never overshoots the target epsilon, and is tight to its tolerance
  (Opacus's ``test_get_noise_multiplier_overshoot``);
- epsilon is monotone: down in the noise multiplier, up in rounds and sampling rate;
- the affordable number of rounds sits exactly on the budget's boundary;
- every round event survives the ledger's JSON round trip.

Sampled (Poisson) events cost tens of milliseconds per accountant evaluation, so their
properties draw fewer examples than the unsampled ones.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from heliosfl.privacy import (
    calibrate_noise,
    clip_l1,
    clip_l2,
    compute_epsilon,
    event_from_dict,
    event_to_dict,
    l1_norm,
    l2_norm,
    round_event,
    rounds_affordable,
)

FAST = settings(max_examples=40, deadline=None)
SAMPLED = settings(max_examples=8, deadline=None)

finite = st.floats(allow_nan=False, allow_infinity=False)
updates = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12),
    elements=finite | st.sampled_from([0.0, 5e-324, -1e308, 1e308]),
)
clip_norms = st.floats(min_value=5e-324, max_value=1e300, allow_nan=False)
targets = st.floats(min_value=0.1, max_value=20.0)
deltas = st.sampled_from([1e-7, 1e-6, 1e-5, 1e-4, 1e-3]) | st.floats(1e-7, 1e-3)
rounds = st.integers(min_value=1, max_value=500)
rates = st.floats(min_value=0.005, max_value=0.3)
unsampled = st.sampled_from(
    [
        {"mechanism": "gaussian"},
        {"mechanism": "laplace"},
        {"mechanism": "gaussian", "sampling": "none", "deterministic_subset": True},
        {"mechanism": "gaussian", "count_noise_multiplier": 5000.0},
    ]
)


# ------------------------------------------------------------------------------ clipping


@settings(max_examples=300, deadline=None)
@given(update=updates, clip_norm=clip_norms)
def test_clip_l2_bound_always_holds(update: np.ndarray, clip_norm: float) -> None:
    clipped, norm = clip_l2(update, clip_norm)
    assert clipped.shape == update.shape
    assert l2_norm(clipped) <= clip_norm
    if norm <= clip_norm:
        np.testing.assert_array_equal(clipped, update)
    elif clip_norm > 1e-140 and norm < 1e140:  # where numpy's own norm neither under- nor overflows
        assert np.linalg.norm(clipped) <= clip_norm * (1 + 1e-12)


@settings(max_examples=300, deadline=None)
@given(update=updates, clip_norm=clip_norms)
def test_clip_l1_bound_always_holds(update: np.ndarray, clip_norm: float) -> None:
    clipped, norm = clip_l1(update, clip_norm)
    assert l1_norm(clipped) <= clip_norm
    if norm <= clip_norm:
        np.testing.assert_array_equal(clipped, update)
    else:  # same direction: clipping only scales
        assert np.all(np.sign(clipped) * np.sign(update) >= 0)


# --------------------------------------------------------------------------- calibration


def _check_calibration(target: float, delta: float, r: int, extra: dict[str, Any]) -> None:
    tolerance = 1e-4
    z = calibrate_noise(epsilon=target, delta=delta, rounds=r, tolerance=tolerance, **extra)
    spent = compute_epsilon(noise_multiplier=z, rounds=r, delta=delta, **extra)
    assert spent <= target  # never overshoots
    below = compute_epsilon(
        noise_multiplier=z * (1 - 2 * tolerance), rounds=r, delta=delta, **extra
    )
    assert below > target  # and is tight


@FAST
@given(target=targets, delta=deltas, r=rounds, extra=unsampled)
def test_calibration_never_overshoots_unsampled(
    target: float, delta: float, r: int, extra: dict[str, Any]
) -> None:
    _check_calibration(target, delta, r, extra)


@SAMPLED
@given(target=targets, delta=deltas, r=rounds, q=rates)
def test_calibration_never_overshoots_poisson(
    target: float, delta: float, r: int, q: float
) -> None:
    _check_calibration(target, delta, r, {"sampling_rate": q, "sampling": "poisson"})


# ---------------------------------------------------------------------------- monotonicity

noise_multipliers = st.floats(min_value=0.3, max_value=50.0)
factors = st.floats(min_value=1.01, max_value=4.0)


@FAST
@given(z=noise_multipliers, f=factors, r=rounds, extra_r=rounds, delta=deltas, base=unsampled)
def test_epsilon_monotone_unsampled(
    z: float, f: float, r: int, extra_r: int, delta: float, base: dict[str, Any]
) -> None:
    eps = compute_epsilon(noise_multiplier=z, rounds=r, delta=delta, **base)
    assert compute_epsilon(noise_multiplier=z * f, rounds=r, delta=delta, **base) <= eps
    assert compute_epsilon(noise_multiplier=z, rounds=r + extra_r, delta=delta, **base) >= eps


@SAMPLED
@given(z=noise_multipliers, f=factors, r=rounds, q=rates, delta=deltas)
def test_epsilon_monotone_poisson(z: float, f: float, r: int, q: float, delta: float) -> None:
    def eps(**change: Any) -> float:
        args = {"noise_multiplier": z, "rounds": r, "sampling_rate": q, **change}
        return compute_epsilon(delta=delta, sampling="poisson", **args)

    base = eps()
    assert eps(noise_multiplier=z * f) <= base
    assert eps(rounds=r + 1) >= base
    assert eps(sampling_rate=min(1.0, q * f)) >= base


# ----------------------------------------------------------------------- rounds affordable


@FAST
@given(z=noise_multipliers, target=targets, delta=deltas, base=unsampled)
def test_rounds_affordable_sits_on_the_boundary(
    z: float, target: float, delta: float, base: dict[str, Any]
) -> None:
    r = rounds_affordable(noise_multiplier=z, epsilon=target, delta=delta, max_rounds=10**5, **base)

    def eps(n: int) -> float:
        return compute_epsilon(noise_multiplier=z, rounds=n, delta=delta, **base)

    if r == 0:
        assert eps(1) > target
    elif r < 10**5:
        assert eps(r) <= target < eps(r + 1)
    else:
        assert eps(r) <= target


# --------------------------------------------------------------------------- event ledger


@st.composite
def events(draw: st.DrawFn) -> Any:
    z = draw(st.floats(min_value=1e-3, max_value=1e6))
    count = draw(st.none() | st.floats(min_value=1e-3, max_value=1e6))
    mechanism = draw(st.sampled_from(["gaussian", "laplace"]))
    scheme = draw(st.sampled_from(["none", "poisson", "without_replacement"]))
    if scheme == "poisson":
        q = draw(st.floats(min_value=1e-9, max_value=1.0))
        return round_event(
            z, mechanism=mechanism, sampling=scheme, sampling_rate=q, count_noise_multiplier=count
        )
    if scheme == "without_replacement":
        n = draw(st.integers(min_value=1, max_value=10**6))
        k = draw(st.integers(min_value=1, max_value=n))
        return round_event(
            z,
            mechanism=mechanism,
            sampling=scheme,
            population=n,
            sample_size=k,
            count_noise_multiplier=count,
        )
    subset = draw(st.booleans())
    return round_event(
        z, mechanism=mechanism, count_noise_multiplier=count, deterministic_subset=subset
    )


@settings(max_examples=200, deadline=None)
@given(event=events())
def test_event_json_round_trip(event: Any) -> None:
    assert event_from_dict(json.loads(json.dumps(event_to_dict(event)))) == event
