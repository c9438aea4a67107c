"""The DP event of one DP-FedAvg round, and its JSON form for the privacy ledger.

A round clips every participant's update to norm ``C`` (L2 for Gaussian noise, L1 for
Laplace), sums the clipped updates with unit weights, adds noise of scale ``z * C`` and
divides by a fixed denominator. Under the add/remove-one-client relation the sum's
sensitivity is ``C``; when one client can *displace* another (replace-one, or a fixed-size
subset) it is ``2 C``. dp-accounting's noise multipliers are relative to sensitivity 1, so
this module halves ``z`` exactly where the sensitivity doubles (Gaussian shown; ``q`` is
the sampling rate):

- no sampling (``all()``): ``Gaussian(z)``, add/remove-one;
- Poisson sampling: ``PoissonSampled(q, Gaussian(z))``, add/remove-one;
- ``k`` of ``n`` without replacement (``random(k)``):
  ``SampledWithoutReplacement(n, k, Gaussian(z / 2))``, replace-one;
- a deterministic, data-dependent subset (``most_data(k)`` with ``k < n``):
  ``Gaussian(z / 2)``, add/remove-one.

dp-accounting's :class:`~dp_accounting.rdp.RdpAccountant` (``_maybe_compose``, v0.6)
computes ``PoissonSampled`` with the Poisson-subsampled Gaussian RDP (Mironov, Talwar,
Zhang 2019), allowed only under ``ADD_OR_REMOVE_ONE``; ``SampledWithoutReplacement`` with
Theorem 27 of Wang, Balle, Kasiviswanathan (2019) at ``q = k / n``, allowed only under
``REPLACE_ONE``, and the inner multiplier is used as given, relative to sensitivity 1, so
the caller must supply ``z / 2`` for a sum whose replace-one sensitivity is ``2 C``. Inside
either wrapper a ``ComposedDpEvent`` of Gaussians is reduced to one Gaussian with
``z_eff ** -2 = sum(z_i ** -2)``. ``LaplaceDpEvent(b / C)`` is composed with the exact
Laplace RDP (Mironov 2017, Prop. 6); no subsampled Laplace exists there, so Laplace rounds
get **no amplification** and are always add/remove events: Poisson sampling is ignored (a
valid upper bound), fixed-size sampling counts as a possible swap (``z / 2``).

Adaptive clipping adds one Gaussian query per round: the count of participants whose
update norm was at most ``C``, plus ``N(0, sigma_b ** 2)``. Its sensitivity is 1 under
add/remove, replace-one and swap alike (each bit is 0 or 1), so its multiplier is
``sigma_b`` in every case above, never halved (see :mod:`heliosfl.privacy.adaptive`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import dp_accounting

from heliosfl.errors import ConfigError
from heliosfl.validation import check_float, check_int

__all__ = [
    "MECHANISMS",
    "SamplingScheme",
    "event_from_dict",
    "event_to_dict",
    "mechanism_name",
    "neighboring_relation",
    "round_event",
    "sampling_scheme",
]

#: Noise mechanisms :func:`round_event` knows.
MECHANISMS = ("gaussian", "laplace")


class SamplingScheme(StrEnum):
    """How the participants of a round are drawn from the population of clients."""

    NONE = "none"
    POISSON = "poisson"
    WITHOUT_REPLACEMENT = "without_replacement"


def mechanism_name(mechanism: object) -> str:
    """``mechanism`` as one of :data:`MECHANISMS` (enum members and any case accepted)."""
    name = mechanism.lower() if isinstance(mechanism, str) else None
    if name not in MECHANISMS:
        raise ConfigError("mechanism", mechanism, "'gaussian' or 'laplace'")
    return name


def sampling_scheme(sampling: object) -> SamplingScheme:
    """``sampling`` as a :class:`SamplingScheme` (strings in any case accepted)."""
    if isinstance(sampling, str):
        try:
            return SamplingScheme(sampling.lower())
        except ValueError:
            pass
    allowed = "one of " + ", ".join(repr(s.value) for s in SamplingScheme)
    raise ConfigError("sampling", sampling, allowed)


def round_event(
    noise_multiplier: float,
    *,
    mechanism: str = "gaussian",
    sampling: SamplingScheme | str = "none",
    sampling_rate: float = 1.0,
    population: int | None = None,
    sample_size: int | None = None,
    count_noise_multiplier: float | None = None,
    deterministic_subset: bool = False,
) -> dp_accounting.DpEvent:
    """The dp-accounting event of one DP-FedAvg round (see the module docstring).

    Parameters
    ----------
    noise_multiplier : float
        ``z > 0``: noise of standard deviation (Gaussian) or scale (Laplace) ``z * C`` is
        added to the unit-weight sum of updates clipped to norm ``C``.
    mechanism : {"gaussian", "laplace"}
        L2 clipping with Gaussian noise, or L1 clipping with Laplace noise.
    sampling : SamplingScheme or str
        ``"none"``, ``"poisson"`` (each client independently with ``sampling_rate``) or
        ``"without_replacement"`` (``sample_size`` of ``population`` uniformly).
    sampling_rate : float
        Poisson rate ``q`` in (0, 1]; ``1.0`` is no sampling. Must stay 1.0 otherwise.
    population, sample_size : int, optional
        ``n >= k >= 1``; required for, and only for, ``"without_replacement"``. ``k = n``
        keeps the replace-one event so a ledger never mixes relations.
    count_noise_multiplier : float, optional
        ``sigma_b > 0``, standard deviation of the noise on the adaptive-clipping count
        (sensitivity 1); adds ``GaussianDpEvent(sigma_b)`` inside the same wrapper.
    deterministic_subset : bool
        True when a deterministic, data-dependent rule picks fewer than all clients
        (``most_data(k)``, ``best_performance(k)`` with ``k < n``): a new client can
        displace another, so the update's sensitivity is ``2 C`` (multiplier ``z / 2``).
        Only with ``sampling="none"``.

    Returns
    -------
    dp_accounting.DpEvent
        Use with :func:`neighboring_relation` for the accountant's relation.

    Raises
    ------
    ConfigError
        For a multiplier that is not a finite number > 0, an unknown mechanism or scheme,
        a rate outside (0, 1], or population/sample-size arguments that do not fit.

    References
    ----------
    McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language
    Models", ICLR 2018. Wang, Balle, Kasiviswanathan, "Subsampled Rényi Differential
    Privacy and Analytical Moments Accountant", AISTATS 2019. Andrew, Thakkar, McMahan,
    Ramaswamy, "Differentially Private Learning with Adaptive Clipping", NeurIPS 2021.
    """
    # The accountants' domain: beyond it dp-accounting overflows (1e300) or allocates
    # without bound (PLD at 1e-6); calibrate_noise searches the same interval.
    z = check_float(
        "noise_multiplier", noise_multiplier, low=1e-3, high=1e6, low_open=False, high_open=False
    )
    mech = mechanism_name(mechanism)
    scheme = sampling_scheme(sampling)
    q = check_float("sampling_rate", sampling_rate, low=0.0, high=1.0)
    count = None
    if count_noise_multiplier is not None:
        count = check_float("count_noise_multiplier", count_noise_multiplier, low=0.0)
    if not isinstance(deterministic_subset, bool):
        raise ConfigError("deterministic_subset", deterministic_subset, "True or False")
    if deterministic_subset and scheme is not SamplingScheme.NONE:
        raise ConfigError("deterministic_subset", True, "False unless sampling='none'")
    wor = scheme is SamplingScheme.WITHOUT_REPLACEMENT
    if scheme is not SamplingScheme.POISSON and q != 1.0:
        raise ConfigError("sampling_rate", sampling_rate, "1.0 unless sampling='poisson'")
    if not wor and (population is not None or sample_size is not None):
        raise ConfigError("population", population, "None unless sampling='without_replacement'")
    n = k = 0
    if wor:
        if population is None or sample_size is None:
            raise ConfigError(
                "population",
                population,
                "an integer >= sample_size >= 1",
                "sampling='without_replacement' needs population and sample_size.",
            )
        n = check_int("population", population, low=1)
        k = check_int("sample_size", sample_size, low=1, high=n)
    swap = wor or deterministic_subset
    update_z = z / 2.0 if swap else z
    update: Any = (
        dp_accounting.GaussianDpEvent(update_z)
        if mech == "gaussian"
        else dp_accounting.LaplaceDpEvent(update_z)
    )
    inner = update
    if count is not None:
        inner = dp_accounting.ComposedDpEvent([update, dp_accounting.GaussianDpEvent(count)])
    if wor and mech == "gaussian":
        return dp_accounting.SampledWithoutReplacementDpEvent(n, k, inner)
    if scheme is SamplingScheme.POISSON and mech == "gaussian" and q < 1.0:
        return dp_accounting.PoissonSampledDpEvent(q, inner)
    return inner  # no sampling, Poisson at rate 1, or Laplace (no amplification)


def neighboring_relation(event: dp_accounting.DpEvent) -> dp_accounting.NeighboringRelation:
    """``REPLACE_ONE`` if ``event`` holds a sampling-without-replacement event.

    Otherwise ``ADD_OR_REMOVE_ONE``: the relation every other round event is stated in.
    """
    relation = dp_accounting.NeighboringRelation
    inner = getattr(event, "event", None)
    if isinstance(event, dp_accounting.SampledWithoutReplacementDpEvent):
        return relation.REPLACE_ONE
    if isinstance(event, dp_accounting.ComposedDpEvent):
        if any(neighboring_relation(e) is relation.REPLACE_ONE for e in event.events):
            return relation.REPLACE_ONE
    elif inner is not None:
        return neighboring_relation(inner)
    return relation.ADD_OR_REMOVE_ONE


def event_to_dict(event: dp_accounting.DpEvent) -> dict[str, Any]:
    """A JSON-serialisable dict of a round event; :func:`event_from_dict` inverts it exactly.

    Supported: Gaussian, Laplace, Composed, SelfComposed, PoissonSampled,
    SampledWithoutReplacement and NoOp events. Floats stay floats, so
    ``event_from_dict(json.loads(json.dumps(event_to_dict(e)))) == e``.

    Raises
    ------
    ConfigError
        For any other event type.
    """
    if isinstance(event, dp_accounting.GaussianDpEvent | dp_accounting.LaplaceDpEvent):
        kind = "gaussian" if isinstance(event, dp_accounting.GaussianDpEvent) else "laplace"
        return {"type": kind, "noise_multiplier": float(event.noise_multiplier)}
    if isinstance(event, dp_accounting.PoissonSampledDpEvent):
        return {
            "type": "poisson_sampled",
            "sampling_probability": float(event.sampling_probability),
            "event": event_to_dict(event.event),
        }
    if isinstance(event, dp_accounting.SampledWithoutReplacementDpEvent):
        return {
            "type": "sampled_without_replacement",
            "source_dataset_size": int(event.source_dataset_size),
            "sample_size": int(event.sample_size),
            "event": event_to_dict(event.event),
        }
    if isinstance(event, dp_accounting.ComposedDpEvent):
        return {"type": "composed", "events": [event_to_dict(e) for e in event.events]}
    if isinstance(event, dp_accounting.SelfComposedDpEvent):
        return {
            "type": "self_composed",
            "count": int(event.count),
            "event": event_to_dict(event.event),
        }
    if isinstance(event, dp_accounting.NoOpDpEvent):
        return {"type": "no_op"}
    raise ConfigError("event", event, "a round event made by heliosfl.privacy.round_event")


_FIELDS = {
    "gaussian": {"noise_multiplier"},
    "laplace": {"noise_multiplier"},
    "poisson_sampled": {"sampling_probability", "event"},
    "sampled_without_replacement": {"source_dataset_size", "sample_size", "event"},
    "composed": {"events"},
    "self_composed": {"count", "event"},
    "no_op": set(),
}


def _real(data: Mapping[str, Any], key: str, *, high: float = math.inf) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"event.{key}", value, "a number")
    return check_float(f"event.{key}", value, low=0.0, high=high)


def event_from_dict(data: Mapping[str, Any]) -> dp_accounting.DpEvent:
    """The event that :func:`event_to_dict` turned into ``data``.

    Raises
    ------
    ConfigError
        If ``data`` is not a dict of that form (unknown type, missing or extra keys,
        values of the wrong kind or out of range).
    """
    kind = data.get("type") if isinstance(data, Mapping) else None
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ConfigError("event", data, "a dict made by event_to_dict")
    keys = set(data) - {"type"}
    if keys != _FIELDS[kind]:
        raise ConfigError("event", data, f"a {kind!r} event with keys {sorted(_FIELDS[kind])}")
    if kind in ("gaussian", "laplace"):
        cls = dp_accounting.GaussianDpEvent if kind == "gaussian" else dp_accounting.LaplaceDpEvent
        return cls(_real(data, "noise_multiplier"))
    if kind == "poisson_sampled":
        q = _real(data, "sampling_probability", high=1.0)
        return dp_accounting.PoissonSampledDpEvent(q, event_from_dict(data["event"]))
    if kind == "sampled_without_replacement":
        n = check_int("event.source_dataset_size", data["source_dataset_size"], low=1)
        k = check_int("event.sample_size", data["sample_size"], low=1, high=n)
        return dp_accounting.SampledWithoutReplacementDpEvent(n, k, event_from_dict(data["event"]))
    if kind == "composed":
        events = data["events"]
        if not isinstance(events, list):
            raise ConfigError("event.events", events, "a list of event dicts")
        return dp_accounting.ComposedDpEvent([event_from_dict(e) for e in events])
    if kind == "self_composed":
        count = check_int("event.count", data["count"], low=0)
        return dp_accounting.SelfComposedDpEvent(event_from_dict(data["event"]), count)
    return dp_accounting.NoOpDpEvent()
