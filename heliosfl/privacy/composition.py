"""Epsilon of a sequence of round events, composed by a fresh dp-accounting accountant.

Every epsilon heliosfl reports comes from here: dp-accounting's ``RdpAccountant`` or
``PLDAccountant`` composing the events of :func:`~heliosfl.privacy.round_event`; nothing
is summed by hand. Composition is commutative, so equal events are grouped (in order of
first appearance) and each group is composed as one ``compose(event, count)``. Hence
``epsilon_of([e] * r)`` and ``compute_epsilon(..., rounds=r)`` are the same computation,
bit for bit: the ledger and the calibration never disagree by a rounding error at the
last round. It also bounds the cost: dp-accounting recomputes an event's RDP or PLD on
every ``compose`` (20-250 ms for sampled events), so a ledger costs one computation per
*distinct* event, not per round. Results are memoised by the exact JSON form of the
events (floats are written with ``repr``, which round-trips exactly).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence

import dp_accounting
from dp_accounting import pld, rdp

from heliosfl.errors import ConfigError
from heliosfl.privacy.events import (
    SamplingScheme,
    event_from_dict,
    event_to_dict,
    neighboring_relation,
    round_event,
    sampling_scheme,
)
from heliosfl.validation import check_float, check_int

__all__ = [
    "ACCOUNTANTS",
    "accountant_name",
    "compute_epsilon",
    "epsilon_of",
    "epsilon_of_runs",
    "event_key",
    "round_event_for",
]

#: Accountants :func:`epsilon_of` can use.
ACCOUNTANTS = ("pld", "rdp")

Runs = tuple[tuple[str, int], ...]


def accountant_name(accountant: object) -> str:
    """``accountant`` as one of :data:`ACCOUNTANTS` (any case)."""
    name = accountant.lower() if isinstance(accountant, str) else None
    if name not in ACCOUNTANTS:
        raise ConfigError("accountant", accountant, "'rdp' or 'pld'")
    return name


def _for_pld(event: dp_accounting.DpEvent) -> dp_accounting.DpEvent:
    """Poisson-sampled composed Gaussians as the one equivalent Gaussian PLD supports.

    Gaussian queries ``sigma_i`` on the same sample are one Gaussian query with
    ``sigma ** -2 = sum(sigma_i ** -2)`` (Mironov, Talwar, Zhang 2019, section 3), the
    reduction dp-accounting's RDP accountant applies itself.
    """
    inner = getattr(event, "event", None)
    if isinstance(event, dp_accounting.PoissonSampledDpEvent) and isinstance(
        inner, dp_accounting.ComposedDpEvent
    ):
        parts = inner.events
        if all(isinstance(e, dp_accounting.GaussianDpEvent) for e in parts):
            sigma = math.fsum(e.noise_multiplier**-2 for e in parts) ** -0.5
            return dp_accounting.PoissonSampledDpEvent(
                event.sampling_probability, dp_accounting.GaussianDpEvent(sigma)
            )
    return event


def event_key(event: dp_accounting.DpEvent) -> str:
    """The canonical JSON text of ``event`` (the memo key of :func:`epsilon_of_runs`)."""
    return json.dumps(event_to_dict(event), sort_keys=True)


@functools.lru_cache(maxsize=2048)
def epsilon_of_runs(runs: Runs, delta: float, name: str) -> float:
    """Epsilon of ``runs``: distinct ``(event_key, count)`` pairs of one relation, composed.

    The single place where an accountant is built and queried; callers validate first.
    """
    events = [(event_from_dict(json.loads(key)), count) for key, count in runs]
    relation = neighboring_relation(events[0][0])
    if name == "rdp":
        accountant = rdp.RdpAccountant(neighboring_relation=relation)
    else:
        accountant = pld.PLDAccountant(neighboring_relation=relation)
    for event, count in events:
        event = _for_pld(event) if name == "pld" else event
        if not accountant.supports(event):
            raise ConfigError(
                "accountant",
                name,
                "'rdp' for these events",
                f"dp-accounting's {name.upper()} accountant cannot compose "
                f"{type(event).__name__} under {relation.name} (PLD has no sampling "
                "without replacement); use accountant='rdp'.",
            )
        accountant.compose(event, count)
    return float(accountant.get_epsilon(delta))


def _runs(events: Sequence[dp_accounting.DpEvent]) -> Runs:
    counts: dict[str, int] = {}  # insertion order: first appearance
    for event in events:
        key = event_key(event)
        counts[key] = counts.get(key, 0) + 1
    return tuple(counts.items())


def epsilon_of(
    events: Sequence[dp_accounting.DpEvent], delta: float, *, accountant: str = "rdp"
) -> float:
    """Epsilon at ``delta`` of composing ``events`` in a fresh dp-accounting accountant.

    Parameters
    ----------
    events : sequence of dp_accounting.DpEvent
        Round events (:func:`~heliosfl.privacy.round_event`), in round order.
    delta : float
        Target delta in (0, 1).
    accountant : {"rdp", "pld"}
        ``RdpAccountant`` (default orders) or ``PLDAccountant`` (value discretisation
        1e-4, pessimistic), with the events' neighbouring relation.

    Returns
    -------
    float
        The accountant's ``get_epsilon(delta)``: an upper bound on the privacy loss of
        the sequence, under adaptive composition. 0.0 for no events.

    Raises
    ------
    ConfigError
        For a bad ``delta`` or accountant, events under different neighbouring relations
        (no accountant composes those), or events the accountant does not support.
    """
    delta = check_float("delta", delta, low=0.0, high=1.0, high_open=True)
    name = accountant_name(accountant)
    events = list(events)
    if not events:
        return 0.0
    relations = {neighboring_relation(e) for e in events}
    if len(relations) > 1:
        raise ConfigError(
            "events",
            sorted(r.name for r in relations),
            "events under one neighbouring relation",
            "Sampling without replacement is accounted under REPLACE_ONE, every other "
            "round under ADD_OR_REMOVE_ONE; keep one selection scheme for a whole run.",
        )
    return epsilon_of_runs(_runs(events), delta, name)


def round_event_for(
    noise_multiplier: float,
    *,
    sampling_rate: float,
    sampling: SamplingScheme | str,
    mechanism: str,
    population: int | None,
    count_noise_multiplier: float | None,
    deterministic_subset: bool,
) -> dp_accounting.DpEvent:
    """The round event for :func:`compute_epsilon`'s arguments (``population`` only for WOR).

    Raises
    ------
    ConfigError
        For arguments outside their domain.
    """
    scheme = sampling_scheme(sampling)
    q = check_float("sampling_rate", sampling_rate, low=0.0, high=1.0)
    if scheme is not SamplingScheme.WITHOUT_REPLACEMENT:
        return round_event(
            noise_multiplier,
            mechanism=mechanism,
            sampling=scheme,
            sampling_rate=q,
            count_noise_multiplier=count_noise_multiplier,
            deterministic_subset=deterministic_subset,
        )
    if population is None:
        raise ConfigError(
            "population",
            population,
            "an integer >= 1 with sampling='without_replacement'",
            "The sample size is round(sampling_rate * population).",
        )
    n = check_int("population", population, low=1)
    k = round(q * n)
    if k < 1:
        raise ConfigError("sampling_rate", q, f"at least 1/population = {1 / n:g}")
    return round_event(
        noise_multiplier,
        mechanism=mechanism,
        sampling=scheme,
        population=n,
        sample_size=k,
        count_noise_multiplier=count_noise_multiplier,
        deterministic_subset=deterministic_subset,
    )


def compute_epsilon(
    *,
    noise_multiplier: float,
    rounds: int,
    delta: float,
    sampling_rate: float = 1.0,
    sampling: SamplingScheme | str = "poisson",
    accountant: str = "rdp",
    mechanism: str = "gaussian",
    population: int | None = None,
    count_noise_multiplier: float | None = None,
    deterministic_subset: bool = False,
) -> float:
    """Epsilon at ``delta`` after ``rounds`` identical rounds.

    Parameters
    ----------
    noise_multiplier : float
        ``z > 0`` (Laplace: ``b / C``).
    rounds : int
        Rounds composed, >= 0.
    delta : float
        Target delta in (0, 1).
    sampling_rate : float
        Fraction of clients per round, in (0, 1]. With ``"poisson"`` it is the Poisson
        rate (1.0 is no sampling); with ``"without_replacement"`` the sample size is
        ``round(sampling_rate * population)``; with ``"none"`` it must be 1.0.
    sampling : {"poisson", "without_replacement", "none"}
        The sampling scheme (see :func:`~heliosfl.privacy.round_event`).
    accountant : {"rdp", "pld"}
        dp-accounting accountant; PLD does not support ``"without_replacement"``.
    mechanism : {"gaussian", "laplace"}
        Laplace rounds get no amplification by sampling.
    population : int, optional
        Number of clients; required for, and only used by, ``"without_replacement"``.
    count_noise_multiplier : float, optional
        Adaptive clipping's count noise ``sigma_b``, composed into every round.
    deterministic_subset : bool
        See :func:`~heliosfl.privacy.round_event`.

    Returns
    -------
    float
        ``epsilon_of([round_event(...)] * rounds, delta)``, computed as one composition.

    Raises
    ------
    ConfigError
        For any argument outside its domain.
    """
    event = round_event_for(
        noise_multiplier,
        sampling_rate=sampling_rate,
        sampling=sampling,
        mechanism=mechanism,
        population=population,
        count_noise_multiplier=count_noise_multiplier,
        deterministic_subset=deterministic_subset,
    )
    count = check_int("rounds", rounds, low=0)
    delta = check_float("delta", delta, low=0.0, high=1.0, high_open=True)
    name = accountant_name(accountant)
    if count == 0:
        return 0.0
    return epsilon_of_runs(((event_key(event), count),), delta, name)
