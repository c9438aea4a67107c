"""The inverse questions about a run: the noise for a target, the rounds left, a curve.

Each answer is built from :func:`~heliosfl.privacy.composition.compute_epsilon`, which
uses the same event (:func:`~heliosfl.privacy.round_event`) and the same composition as
the ledger, so what is promised here is what the ledger later charges, to the last bit.
The searches only ever return a point whose epsilon was computed and found within the
target. ``compute_epsilon`` and ``epsilon_of`` are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from heliosfl.errors import ConfigError
from heliosfl.privacy import _search
from heliosfl.privacy.composition import compute_epsilon, epsilon_of
from heliosfl.privacy.events import SamplingScheme
from heliosfl.validation import check_float, check_int

__all__ = [
    "MAX_NOISE_MULTIPLIER",
    "MAX_ROUNDS",
    "MIN_NOISE_MULTIPLIER",
    "calibrate_noise",
    "compute_epsilon",
    "epsilon_curve",
    "epsilon_of",
    "rounds_affordable",
]

#: :func:`calibrate_noise` searches noise multipliers in ``[MIN, MAX]``.
MIN_NOISE_MULTIPLIER = 1e-3
MAX_NOISE_MULTIPLIER = 1e6
#: :func:`rounds_affordable` answers at most this many rounds.
MAX_ROUNDS = 1_000_000


def calibrate_noise(
    *,
    epsilon: float,
    delta: float,
    rounds: int,
    sampling_rate: float = 1.0,
    sampling: SamplingScheme | str = "poisson",
    accountant: str = "rdp",
    mechanism: str = "gaussian",
    population: int | None = None,
    count_noise_multiplier: float | None = None,
    deterministic_subset: bool = False,
    tolerance: float = 1e-4,
) -> float:
    """The smallest noise multiplier whose ``rounds`` rounds fit in ``(epsilon, delta)``.

    Guarantee: the returned ``z`` satisfies ``compute_epsilon(noise_multiplier=z, ...) <=
    epsilon`` with the same arguments; that value was computed, never interpolated. It
    is tight to ``tolerance``: some ``z'`` in ``[z * (1 - tolerance), z)`` was computed
    to exceed ``epsilon``, so where epsilon is monotone in ``z`` the smallest feasible
    multiplier lies within ``tolerance`` (relative) below the result. (dp-accounting's
    sampling-without-replacement bound is numerically non-monotone in ``z`` at about the
    1e-3 level for large ``z``; there the tightness is only approximate, the guarantee
    is not affected.) Search: Newton-like bracketing by factors of 2 to 64, then
    safeguarded regula falsi on ``log epsilon`` against ``log z``; typically 6-10
    accountant evaluations.

    Parameters
    ----------
    epsilon, delta : float
        The run's total budget, ``epsilon > 0`` and ``delta`` in (0, 1).
    rounds : int
        Rounds the budget must cover, >= 1.
    sampling_rate, sampling, accountant, mechanism, population, deterministic_subset
        As in :func:`compute_epsilon`.
    count_noise_multiplier : float, optional
        Adaptive clipping's count noise ``sigma_b``, held fixed: the result is then the
        update query's multiplier, with the count query's cost included.
    tolerance : float
        Relative tightness in (0, 0.1].

    Returns
    -------
    float
        ``z`` in ``[MIN_NOISE_MULTIPLIER, MAX_NOISE_MULTIPLIER]``; ``MIN_NOISE_MULTIPLIER``
        itself when even that fits (the target then offers essentially no privacy).

    Raises
    ------
    ConfigError
        For arguments outside their domain, or when even ``MAX_NOISE_MULTIPLIER`` spends
        more than ``epsilon`` (the message gives the least epsilon reachable).

    References
    ----------
    The invariant is Opacus's ``test_get_noise_multiplier_overshoot``.
    """
    target = check_float("epsilon", epsilon, low=0.0)
    count = check_int("rounds", rounds, low=1)
    tol = check_float("tolerance", tolerance, low=0.0, high=0.1)

    def gap_at(x: float) -> float:
        return _search.gap(
            compute_epsilon(
                noise_multiplier=math.exp(x),
                rounds=count,
                delta=delta,
                sampling_rate=sampling_rate,
                sampling=sampling,
                accountant=accountant,
                mechanism=mechanism,
                population=population,
                count_noise_multiplier=count_noise_multiplier,
                deterministic_subset=deterministic_subset,
            ),
            target,
        )

    x_max = math.log(MAX_NOISE_MULTIPLIER)
    bad, good = _search.bracket(gap_at, 0.0, x_min=math.log(MIN_NOISE_MULTIPLIER), x_max=x_max)
    if good is None:
        least = target * math.exp(gap_at(x_max))
        hint = "Increase epsilon or delta, or reduce the rounds"
        if count_noise_multiplier is not None:
            hint += ", or raise count_noise_multiplier (the count query alone costs too much)"
        raise ConfigError(
            "epsilon",
            target,
            f"at least {least:.4g} for {count} rounds with these settings",
            f"Even a noise multiplier of {MAX_NOISE_MULTIPLIER:g} spends more. {hint}.",
        )
    if bad is not None:
        width = -math.log1p(-tol)
        good = _search.refine(
            gap_at, bad, good, close=lambda xb, xg: xg - xb <= width, nudge=0.45 * width
        )
    return math.exp(good[0])


def rounds_affordable(
    *,
    noise_multiplier: float,
    epsilon: float,
    delta: float,
    sampling_rate: float = 1.0,
    sampling: SamplingScheme | str = "poisson",
    accountant: str = "rdp",
    mechanism: str = "gaussian",
    population: int | None = None,
    count_noise_multiplier: float | None = None,
    deterministic_subset: bool = False,
    max_rounds: int = MAX_ROUNDS,
) -> int:
    """The largest ``r <= max_rounds`` whose ``r`` rounds fit in ``(epsilon, delta)``.

    Guarantee: ``compute_epsilon(rounds=r) <= epsilon < compute_epsilon(rounds=r + 1)``
    with the same arguments, both computed (unless ``r`` is 0 or ``max_rounds``).

    Parameters
    ----------
    noise_multiplier : float
        ``z > 0``.
    epsilon, delta : float
        The budget.
    sampling_rate, sampling, accountant, mechanism, population
        As in :func:`compute_epsilon`.
    count_noise_multiplier, deterministic_subset
        As in :func:`compute_epsilon`.
    max_rounds : int
        Search cap, >= 1; returned as is when ``max_rounds`` rounds fit (the true answer
        may then be larger).

    Returns
    -------
    int
        0 if even one round spends more than ``epsilon``.

    Raises
    ------
    ConfigError
        For arguments outside their domain.
    """
    target = check_float("epsilon", epsilon, low=0.0)
    cap = check_int("max_rounds", max_rounds, low=1)

    def gap_at(x: float) -> float:
        return _search.gap(
            compute_epsilon(
                noise_multiplier=noise_multiplier,
                rounds=round(math.exp(x)),
                delta=delta,
                sampling_rate=sampling_rate,
                sampling=sampling,
                accountant=accountant,
                mechanism=mechanism,
                population=population,
                count_noise_multiplier=count_noise_multiplier,
                deterministic_subset=deterministic_subset,
            ),
            target,
        )

    def snap(x: float, x_bad: float, x_good: float) -> float:
        low, high = sorted((round(math.exp(x_bad)), round(math.exp(x_good))))
        return math.log(min(max(round(math.exp(x)), low + 1), high - 1))

    first, last = (0.0, gap_at(0.0)), (math.log(cap), gap_at(math.log(cap)))
    if first[1] > 0.0:
        return 0
    if last[1] <= 0.0:
        return cap
    point = _search.refine(
        gap_at,
        last,
        first,
        close=lambda xb, xg: abs(round(math.exp(xb)) - round(math.exp(xg))) <= 1,
        snap=snap,
    )
    return round(math.exp(point[0]))


def epsilon_curve(
    noise_multiplier: float,
    rounds_list: Sequence[int],
    delta: float,
    *,
    sampling_rate: float = 1.0,
    sampling: SamplingScheme | str = "poisson",
    accountant: str = "rdp",
    mechanism: str = "gaussian",
    population: int | None = None,
    count_noise_multiplier: float | None = None,
    deterministic_subset: bool = False,
) -> list[float]:
    """``compute_epsilon`` at each of ``rounds_list`` (for plots and what-if widgets).

    Each point is exactly what :func:`compute_epsilon` (and so the ledger) reports. A
    point costs one accountant evaluation: dp-accounting recomputes an event's RDP or
    PLD on every ``compose``, so incremental composition would not be cheaper; about
    0.5 ms per point without sampling, 20-200 ms with it.

    Raises
    ------
    ConfigError
        For arguments outside their domain.
    """
    if isinstance(rounds_list, str | bytes) or not isinstance(rounds_list, Sequence):
        raise ConfigError("rounds_list", rounds_list, "a list of round counts (ints >= 1)")
    return [
        compute_epsilon(
            noise_multiplier=noise_multiplier,
            rounds=r,
            delta=delta,
            sampling_rate=sampling_rate,
            sampling=sampling,
            accountant=accountant,
            mechanism=mechanism,
            population=population,
            count_noise_multiplier=count_noise_multiplier,
            deterministic_subset=deterministic_subset,
        )
        for r in rounds_list
    ]
