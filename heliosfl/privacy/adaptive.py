"""Adaptive clipping: the clip norm tracks a quantile of the update norms (Andrew et al. 2021).

Each round the coordinator also releases a noisy count of the participants whose update
norm was within the current clip norm ``C``, as a fraction of the fixed denominator
``m``, and moves ``C`` geometrically toward the target quantile ``gamma``::

    b = (sum_i 1[||u_i|| <= C] + N(0, sigma_b^2)) / m
    C <- C * exp(-eta * (clip(b, 0, 1) - gamma))

Too many updates within the bound (``b > gamma``) shrink ``C``; too few grow it.
Clamping ``b`` to [0, 1] is post-processing (free); it bounds each step by a factor
``exp(eta * max(gamma, 1 - gamma))`` whatever the noise draw.

Accounting (one formulation, used everywhere in heliosfl): the bits are *not* centred.
The count's sensitivity is 1 under add/remove-one, replace-one and swap alike, so its
event is ``GaussianDpEvent(sigma_b)``, never halved, with ``count_noise_multiplier ==
sigma_b == count_noise_std``; :func:`~heliosfl.privacy.round_event` composes it with the
update's event inside the round's sampling wrapper. Both are Gaussian queries on the same
sample, so they cost exactly one Gaussian query with ``z ** -2 = z_update ** -2 +
sigma_b ** -2`` (dp-accounting reduces them that way). The paper centres the bits
(``b - 1/2``), which halves the add/remove sensitivity and gives its split
``z_update = (z ** -2 - (2 sigma_b) ** -2) ** -1/2``; under replace-one, the relation of
``random(k)`` (heliosfl's only amplified selection), centring gains nothing, and without
it one number describes the count. Without centring, the count needs twice the paper's
``sigma_b`` for the same cost under add/remove.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ConfigError
from heliosfl.privacy.noise import gaussian_noise
from heliosfl.validation import check_float, known_fields

__all__ = [
    "AdaptiveClipping",
    "noisy_unclipped_fraction",
    "split_noise_multiplier",
    "update_clip_norm",
]


def update_clip_norm(
    clip_norm: float,
    unclipped_fraction: float,
    *,
    target_quantile: float,
    learning_rate: float,
) -> float:
    """The next clip norm, ``C * exp(-eta * (clip(b, 0, 1) - gamma))``.

    Parameters
    ----------
    clip_norm : float
        Current ``C > 0``.
    unclipped_fraction : float
        ``b``, the noisy fraction of participants with update norm ``<= C``
        (:func:`noisy_unclipped_fraction`); any finite value, clamped to [0, 1].
    target_quantile : float
        ``gamma`` in (0, 1).
    learning_rate : float
        ``eta > 0``.

    Returns
    -------
    float
        The next clip norm (> 0). Post-processing of released values: no privacy cost.

    Raises
    ------
    ConfigError
        For an argument outside its domain.

    References
    ----------
    Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with Adaptive
    Clipping", NeurIPS 2021, Algorithm 1 (geometric update).
    """
    c = check_float("clip_norm", clip_norm, low=0.0)
    b = check_float("unclipped_fraction", unclipped_fraction, low=-math.inf)
    gamma = check_float("target_quantile", target_quantile, low=0.0, high=1.0, high_open=True)
    eta = check_float("learning_rate", learning_rate, low=0.0)
    return c * math.exp(-eta * (min(max(b, 0.0), 1.0) - gamma))


def noisy_unclipped_fraction(
    norms: npt.ArrayLike,
    clip_norm: float,
    *,
    count_noise_std: float,
    denominator: float,
    rng: np.random.Generator,
) -> float:
    """``(#{i : norms[i] <= C} + N(0, count_noise_std**2)) / denominator``.

    Guarantee: a Gaussian query of sensitivity 1 with noise multiplier
    ``count_noise_std``; account for it with ``round_event(...,
    count_noise_multiplier=count_noise_std)``.

    Parameters
    ----------
    norms : array_like
        Participants' update norms before clipping (finite, >= 0); may be empty.
    clip_norm : float
        The round's ``C > 0``.
    count_noise_std : float
        ``sigma_b >= 0`` (0 only for tests). Andrew et al. suggest ``m / 20``.
    denominator : float
        ``m >= 1``, the expected number of participants (the noisy mean's denominator).
    rng : numpy.random.Generator
        The round's noise stream.

    Returns
    -------
    float
        The noisy fraction; may fall outside [0, 1].

    Raises
    ------
    ConfigError
        For negative or non-finite norms, or an argument outside its domain.
    """
    values = np.asarray(norms, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)) or np.any(values < 0.0):
        raise ConfigError("norms", values.tolist(), "finite numbers >= 0")
    c = check_float("clip_norm", clip_norm, low=0.0)
    m = check_float("denominator", denominator, low=1.0, low_open=False)
    count = float(np.count_nonzero(values <= c))
    noise = float(gaussian_noise((), count_noise_std, rng)) if count_noise_std != 0 else 0.0
    return (count + noise) / m


def split_noise_multiplier(total_noise_multiplier: float, count_noise_multiplier: float) -> float:
    """The update query's multiplier so that update and count together cost ``z``.

    Returns ``z_update = (z ** -2 - sigma_b ** -2) ** -1/2`` (the module's uncentred
    formulation; the paper's has ``2 sigma_b``). Exact for add/remove-one events; for
    ``random(k)`` calibrate directly with
    ``calibrate_noise(..., count_noise_multiplier=sigma_b)``.

    Raises
    ------
    ConfigError
        Unless ``0 < z < sigma_b``: the count alone would cost at least ``z``.

    References
    ----------
    Andrew et al., NeurIPS 2021, Theorem 1 (with sensitivity 1 instead of 1/2).
    """
    z = check_float("total_noise_multiplier", total_noise_multiplier, low=0.0)
    sigma_b = check_float("count_noise_multiplier", count_noise_multiplier, low=0.0)
    if sigma_b <= z:
        raise ConfigError(
            "count_noise_multiplier",
            sigma_b,
            f"greater than the total noise multiplier {z:g}",
            "The count query alone would spend the whole budget.",
        )
    return float((z**-2 - sigma_b**-2) ** -0.5)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveClipping:
    """Settings of quantile-based adaptive clipping.

    Parameters
    ----------
    count_noise_multiplier : float
        ``sigma_b > 0``, noise standard deviation on the unclipped count (sensitivity 1).
    target_quantile : float
        ``gamma`` in (0, 1): the quantile of update norms the clip norm tracks.
    learning_rate : float
        ``eta > 0`` of the geometric update.
    initial_clip_norm : float
        The first round's clip norm, > 0.
    """

    count_noise_multiplier: float
    target_quantile: float = 0.5
    learning_rate: float = 0.2
    initial_clip_norm: float = 1.0

    def __post_init__(self) -> None:
        for name in ("count_noise_multiplier", "learning_rate", "initial_clip_norm"):
            object.__setattr__(self, name, check_float(name, getattr(self, name), low=0.0))
        quantile = self.target_quantile
        quantile = check_float("target_quantile", quantile, low=0.0, high=1.0, high_open=True)
        object.__setattr__(self, "target_quantile", quantile)

    @classmethod
    def for_expected_clients(cls, expected_clients: float, **settings: float) -> AdaptiveClipping:
        """Settings with ``sigma_b = expected_clients / 10``.

        Andrew et al. recommend ``sigma_b = m / 20`` for their centred count (sensitivity
        1/2); ``m / 10`` on the uncentred count (sensitivity 1) has the same privacy cost.
        """
        m = check_float("expected_clients", expected_clients, low=1.0, low_open=False)
        return cls(count_noise_multiplier=m / 10.0, **settings)

    def next_clip_norm(self, clip_norm: float, unclipped_fraction: float) -> float:
        """:func:`update_clip_norm` with these settings."""
        return update_clip_norm(
            clip_norm,
            unclipped_fraction,
            target_quantile=self.target_quantile,
            learning_rate=self.learning_rate,
        )

    def update_noise_multiplier(self, total_noise_multiplier: float) -> float:
        """:func:`split_noise_multiplier` with this count noise."""
        return split_noise_multiplier(total_noise_multiplier, self.count_noise_multiplier)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields; :meth:`from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdaptiveClipping:
        """The settings :meth:`to_dict` produced.

        Raises
        ------
        ConfigError
            For unknown keys or invalid values.
        """
        return cls(**known_fields(cls, data, "adaptive_clipping"))
