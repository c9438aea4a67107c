"""Unit tests for heliosfl.privacy mechanisms: clipping, noise, noisy mean, adaptive clipping."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heliosfl.errors import ConfigError
from heliosfl.privacy import (
    AdaptiveClipping,
    clip_l1,
    clip_l2,
    gaussian_noise,
    l1_norm,
    l2_norm,
    laplace_noise,
    noisy_mean,
    noisy_unclipped_fraction,
    split_noise_multiplier,
    update_clip_norm,
)

# ------------------------------------------------------------------------------ clipping


def test_clip_l2_scales_down_and_keeps_direction() -> None:
    update = np.array([3.0, 4.0])
    clipped, norm = clip_l2(update, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(clipped, [0.6, 0.8])
    assert l2_norm(clipped) <= 1.0
    np.testing.assert_array_equal(update, [3.0, 4.0])  # input untouched


def test_clip_l1_scales_down() -> None:
    clipped, norm = clip_l1(np.array([[3.0, -4.0], [0.0, 1.0]]), 2.0)
    assert norm == 8.0
    np.testing.assert_allclose(clipped, [[0.75, -1.0], [0.0, 0.25]])
    assert l1_norm(clipped) <= 2.0


def test_small_updates_are_returned_unchanged_as_copies() -> None:
    update = np.array([0.1, -0.2, 0.0])
    clipped, norm = clip_l2(update, 1.0)
    np.testing.assert_array_equal(clipped, update)
    assert clipped is not update
    assert norm == pytest.approx(np.linalg.norm(update))
    zero, zero_norm = clip_l1(np.zeros(5), 1e-12)
    assert zero_norm == 0.0
    np.testing.assert_array_equal(zero, np.zeros(5))


def test_norms_survive_extreme_magnitudes() -> None:
    assert l2_norm([1e300, 1e300]) == pytest.approx(np.sqrt(2) * 1e300)
    assert l2_norm([3e-320, 4e-320]) == pytest.approx(5e-320, rel=1e-3)
    clipped, norm = clip_l2(np.array([1e308, -1e308]), 1.0)
    assert np.isfinite(norm)
    assert l2_norm(clipped) <= 1.0
    np.testing.assert_allclose(clipped, [2**-0.5, -(2**-0.5)])


@pytest.mark.parametrize("bad", [[1.0, np.nan], [np.inf, 0.0]])
def test_clipping_rejects_non_finite_updates(bad: list[float]) -> None:
    with pytest.raises(ConfigError):
        clip_l2(np.array(bad), 1.0)


@pytest.mark.parametrize("clip_norm", [0.0, -1.0, np.inf, np.nan])
def test_clipping_rejects_bad_bounds(clip_norm: float) -> None:
    with pytest.raises(ConfigError) as info:
        clip_l1(np.ones(3), clip_norm)
    assert info.value.field == "clip_norm"


# --------------------------------------------------------------------------------- noise


def test_gaussian_noise_standard_deviation() -> None:
    z, clip_norm = 1.3, 0.7
    draws = gaussian_noise(200_000, z * clip_norm, np.random.default_rng(0))
    assert abs(draws.mean()) < 0.01
    assert draws.std() == pytest.approx(z * clip_norm, rel=0.01)


def test_laplace_noise_variance() -> None:
    b = 0.9
    draws = laplace_noise((400, 500), b, np.random.default_rng(1))
    assert draws.shape == (400, 500)
    assert draws.var() == pytest.approx(2 * b**2, rel=0.02)


def test_noise_is_reproducible_from_the_generator() -> None:
    a = gaussian_noise(10, 1.0, np.random.default_rng(7))
    b = gaussian_noise(10, 1.0, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_noise_needs_a_generator() -> None:
    with pytest.raises(ConfigError) as info:
        gaussian_noise(3, 1.0, np.random.RandomState(0))
    assert info.value.field == "rng"


# ---------------------------------------------------------------------------- noisy mean


def test_noisy_mean_without_noise_is_the_unit_weight_mean_over_the_fixed_denominator() -> None:
    updates = [np.array([0.3, 0.4]), np.array([-0.6, 0.0]), np.array([0.0, 0.5])]
    rng = np.random.default_rng(0)
    mean = noisy_mean(
        updates, mechanism="gaussian", noise_multiplier=0.0, clip_norm=1.0, denominator=5, rng=rng
    )
    np.testing.assert_allclose(mean, np.sum(updates, axis=0) / 5)


@pytest.mark.parametrize(("mechanism", "factor"), [("gaussian", 1.0), ("laplace", np.sqrt(2))])
def test_noisy_mean_noise_scale(mechanism: str, factor: float) -> None:
    z, clip_norm, m = 2.0, 0.5, 4.0
    mean = noisy_mean(
        [np.zeros(200_000)],
        mechanism=mechanism,
        noise_multiplier=z,
        clip_norm=clip_norm,
        denominator=m,
        rng=np.random.default_rng(3),
    )
    assert mean.std() == pytest.approx(factor * z * clip_norm / m, rel=0.02)


def test_noisy_mean_checks_its_inputs() -> None:
    rng = np.random.default_rng(0)
    common = {"noise_multiplier": 1.0, "clip_norm": 1.0, "denominator": 2.0, "rng": rng}
    with pytest.raises(ConfigError, match="clip_l2"):
        noisy_mean([np.array([3.0, 4.0])], mechanism="gaussian", **common)
    with pytest.raises(ConfigError, match="clip_l1"):
        noisy_mean([np.array([0.6, 0.6])], mechanism="laplace", **common)
    with pytest.raises(ConfigError):
        noisy_mean([np.zeros(2), np.zeros(3)], mechanism="gaussian", **common)
    with pytest.raises(ConfigError):
        noisy_mean([], mechanism="gaussian", **common)
    with pytest.raises(ConfigError) as info:
        noisy_mean(
            [np.zeros(2)],
            mechanism="gaussian",
            noise_multiplier=1.0,
            clip_norm=1.0,
            denominator=0.5,
            rng=rng,
        )
    assert info.value.field == "denominator"


def test_noisy_mean_accepts_its_own_clipping() -> None:
    rng = np.random.default_rng(5)
    raw = [rng.normal(size=50) * scale for scale in (1e-3, 1.0, 1e3)]
    for clip, mechanism in ((clip_l2, "gaussian"), (clip_l1, "laplace")):
        clipped = [clip(u, 0.1)[0] for u in raw]
        out = noisy_mean(
            clipped,
            mechanism=mechanism,
            noise_multiplier=1.0,
            clip_norm=0.1,
            denominator=3,
            rng=rng,
        )
        assert out.shape == (50,)


# --------------------------------------------------------------------- adaptive clipping


def test_update_clip_norm_is_geometric() -> None:
    assert update_clip_norm(2.0, 0.5, target_quantile=0.5, learning_rate=0.2) == 2.0
    grown = update_clip_norm(2.0, 0.1, target_quantile=0.5, learning_rate=0.2)
    assert grown == pytest.approx(2.0 * np.exp(0.2 * 0.4))
    shrunk = update_clip_norm(2.0, 0.9, target_quantile=0.5, learning_rate=0.2)
    assert shrunk == pytest.approx(2.0 * np.exp(-0.2 * 0.4))
    # A wild noise draw is clamped to [0, 1]: the step stays bounded.
    assert update_clip_norm(2.0, 1e6, target_quantile=0.5, learning_rate=0.2) == pytest.approx(
        2.0 * np.exp(-0.1)
    )


def test_noisy_unclipped_fraction() -> None:
    norms = np.array([0.5, 1.0, 1.5, 2.0])
    rng = np.random.default_rng(0)
    exact = noisy_unclipped_fraction(norms, 1.0, count_noise_std=0.0, denominator=5, rng=rng)
    assert exact == pytest.approx(2 / 5)  # norm == C counts as unclipped
    draws = [
        noisy_unclipped_fraction(norms, 1.0, count_noise_std=3.0, denominator=5, rng=rng)
        for _ in range(20_000)
    ]
    assert np.mean(draws) == pytest.approx(0.4, abs=0.01)
    assert np.std(draws) == pytest.approx(3.0 / 5, rel=0.03)
    with pytest.raises(ConfigError):
        noisy_unclipped_fraction([-1.0], 1.0, count_noise_std=1.0, denominator=1, rng=rng)


@pytest.mark.parametrize("target", [0.5, 0.9])
def test_clip_norm_converges_to_the_target_quantile(target: float) -> None:
    norms = np.random.default_rng(11).lognormal(mean=0.0, sigma=1.0, size=201)
    settings = AdaptiveClipping(
        count_noise_multiplier=1.0, target_quantile=target, initial_clip_norm=0.01
    )
    rng = np.random.default_rng(0)
    clip_norm = settings.initial_clip_norm
    for _ in range(400):
        fraction = noisy_unclipped_fraction(
            norms, clip_norm, count_noise_std=0.0, denominator=norms.size, rng=rng
        )
        clip_norm = settings.next_clip_norm(clip_norm, fraction)
    lo, hi = np.quantile(norms, [target - 0.03, target + 0.03])
    assert lo <= clip_norm <= hi


def test_adaptive_clipping_settings() -> None:
    settings = AdaptiveClipping.for_expected_clients(100, target_quantile=0.7)
    assert settings.count_noise_multiplier == 10.0
    assert AdaptiveClipping.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(ConfigError):
        AdaptiveClipping(count_noise_multiplier=1.0, target_quantile=1.0)
    with pytest.raises(ConfigError):
        AdaptiveClipping.from_dict({"count_noise_multiplier": 1.0, "quantile": 0.5})
    z_update = settings.update_noise_multiplier(2.0)
    assert z_update**-2 + 10.0**-2 == pytest.approx(2.0**-2)
    with pytest.raises(ConfigError):
        split_noise_multiplier(2.0, 1.5)
