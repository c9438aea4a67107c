"""Simulated node faults, drawn from a seeded generator: the failures a federation meets.

A fault is a property of a simulated worker (``engine.create_worker(cfg, data=...,
fault=NodeFault(...))``; :func:`assign_faults` spreads a mix over a group). Each round the
worker draws a :class:`FaultPlan` from its own random stream (separate from training's, so
faults never change what a healthy node computes):

* **crash** half-way through local training; **dropout** (no answer at all);
* **latency**: a fixed delay, a **hang** (until the timeout), or a **straggler** delay
  drawn from a log-normal distribution; ``time_scale`` shrinks every simulated delay so a
  30 s timeout can be shown in 0.3 s;
* **network partition**: unreachable during given rounds; **flapping**: unreachable every
  other ``flap_period_rounds`` rounds;
* **garbage**: a malformed update (NaN, Inf, wrong shape, absurd norm);
* **attack**: a hostile update every round (sign flip, scaling, random direction).

Latency, a hang included, is simulated on the event loop, not by blocking a thread: many
nodes can be slow or hang at once, as on a real network, and a hang ends when the
coordinator's timeout does.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ConfigError
from heliosfl.validation import check_float, check_int

__all__ = ["ATTACKS", "GARBAGE", "FaultPlan", "NodeFault", "SimulatedCrash", "assign_faults"]

#: Malformed updates a faulty node can return.
GARBAGE = ("nan", "inf", "wrong_shape", "huge")
#: Hostile updates: the honest delta negated (times ``attack_scale``), scaled by it, or
#: replaced by a random direction of ``attack_scale`` times its norm.
ATTACKS = ("sign_flip", "scale", "random")


class SimulatedCrash(RuntimeError):
    """Raised inside a node's training when its fault plan says it crashes."""


def _probability(name: str, value: Any) -> float:
    return check_float(f"NodeFault.{name}", value, low=0.0, high=1.0, low_open=False)


def _hang_secs(value: Any) -> float:
    """``value`` as a float > 0, where ``inf`` (a hang until the timeout) is allowed."""
    if not isinstance(value, bool) and isinstance(value, numbers.Real) and value == math.inf:
        return math.inf
    try:
        return check_float("NodeFault.hang_secs", value, low=0.0)
    except ConfigError:
        raise ConfigError(
            "NodeFault.hang_secs", value, "a number > 0 (finite, or math.inf for no end)"
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFault:
    """How a simulated node misbehaves.

    Parameters
    ----------
    crash_probability : float
        Chance per round that local training raises :class:`SimulatedCrash`.
    hang_probability : float
        Chance per round that the node's answer is held back ``hang_secs`` (by default
        forever, so the coordinator's timeout gives up on it).
    hang_secs : float
        How long a hang lasts (> 0; ``inf``: until stopped).
    delay_secs : float
        Extra latency every round (finite, >= 0), e.g. a slow link.
    dropout_probability : float
        Chance per round that the node does not answer at all.
    straggler_probability : float
        Chance per round of an extra log-normal delay, median ``straggler_median_secs``
        and log-scale ``straggler_sigma``.
    straggler_median_secs, straggler_sigma : float
        The straggler delay's distribution (> 0 and >= 0).
    time_scale : float
        Multiplies every simulated delay (> 0), e.g. 0.01 to play 30 s as 0.3 s.
    offline_rounds : tuple of (int, int)
        Network partitions: unreachable in rounds ``start <= r < end``.
    flap_period_rounds : int or None
        Flapping: reachable for this many rounds, then unreachable as long, and so on.
    garbage_probability : float
        Chance per round of a malformed update, of kind `garbage` (see :data:`GARBAGE`).
    garbage : str
        ``"nan"``, ``"inf"``, ``"wrong_shape"`` or ``"huge"``.
    attack : str or None
        A hostile node (see :data:`ATTACKS`): every round it trains, then corrupts its
        update.
    attack_scale : float
        The attack's factor (> 0).

    Numbers may be any real (numpy scalars included); they are stored as ``float``.

    Raises
    ------
    ConfigError
        For a probability outside [0, 1], a ``hang_secs`` that is not > 0 (or ``inf``), a
        negative or non-finite ``delay_secs``, or a value that is not a real number.
    """

    crash_probability: float = 0.0
    hang_probability: float = 0.0
    hang_secs: float = math.inf
    delay_secs: float = 0.0
    dropout_probability: float = 0.0
    straggler_probability: float = 0.0
    straggler_median_secs: float = 1.0
    straggler_sigma: float = 1.0
    time_scale: float = 1.0
    offline_rounds: tuple[tuple[int, int], ...] = ()
    flap_period_rounds: int | None = None
    garbage_probability: float = 0.0
    garbage: str = "nan"
    attack: str | None = None
    attack_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "crash_probability", _probability("crash_probability", self.crash_probability)
        )
        object.__setattr__(
            self, "hang_probability", _probability("hang_probability", self.hang_probability)
        )
        object.__setattr__(self, "hang_secs", _hang_secs(self.hang_secs))
        delay = check_float("NodeFault.delay_secs", self.delay_secs, low=0.0, low_open=False)
        object.__setattr__(self, "delay_secs", delay)
        for name in ("dropout_probability", "straggler_probability", "garbage_probability"):
            object.__setattr__(self, name, _probability(name, getattr(self, name)))
        for name in ("straggler_median_secs", "time_scale", "attack_scale"):
            object.__setattr__(
                self, name, check_float(f"NodeFault.{name}", getattr(self, name), low=0.0)
            )
        sigma = check_float(
            "NodeFault.straggler_sigma", self.straggler_sigma, low=0.0, low_open=False
        )
        object.__setattr__(self, "straggler_sigma", sigma)
        object.__setattr__(self, "offline_rounds", _windows(self.offline_rounds))
        if self.flap_period_rounds is not None:
            period = check_int("NodeFault.flap_period_rounds", self.flap_period_rounds, low=1)
            object.__setattr__(self, "flap_period_rounds", period)
        if self.garbage not in GARBAGE:
            raise ConfigError("NodeFault.garbage", self.garbage, f"one of {', '.join(GARBAGE)}")
        if self.attack is not None and self.attack not in ATTACKS:
            raise ConfigError(
                "NodeFault.attack", self.attack, f"None or one of {', '.join(ATTACKS)}"
            )

    @classmethod
    def crash(cls) -> NodeFault:
        """A node that crashes every round."""
        return cls(crash_probability=1.0)

    @classmethod
    def hang(cls, secs: float = math.inf) -> NodeFault:
        """A node that hangs every round."""
        return cls(hang_probability=1.0, hang_secs=secs)

    @classmethod
    def partition(cls, start_round: int, end_round: int) -> NodeFault:
        """A node cut off by a network partition in rounds ``start_round <= r < end_round``."""
        return cls(offline_rounds=((start_round, end_round),))

    @classmethod
    def flapping(cls, period_rounds: int = 2) -> NodeFault:
        """A node reachable for `period_rounds` rounds, then not, alternately."""
        return cls(flap_period_rounds=period_rounds)

    @classmethod
    def hostile(cls, attack: str, scale: float = 1.0) -> NodeFault:
        """A node that sends a hostile update every round (see :data:`ATTACKS`)."""
        return cls(attack=attack, attack_scale=scale)

    def unreachable(self, round_number: int) -> str | None:
        """Why the node is cut off in `round_number` (a partition, flapping), or None."""
        if any(start <= round_number < end for start, end in self.offline_rounds):
            return "unreachable (network partition)"
        period = self.flap_period_rounds
        if period is not None and ((round_number - 1) // period) % 2 == 1:
            return "unreachable (flapping link)"
        return None

    def answers_probe(self, rng: np.random.Generator, round_number: int) -> bool:
        """Whether the node answers a health check before `round_number` (one fault draw)."""
        if self.unreachable(round_number):
            return False
        crash, hang, dropout = rng.random(3)
        return not (
            crash < self.crash_probability
            or hang < self.hang_probability
            or dropout < self.dropout_probability
        )

    def plan(self, rng: np.random.Generator) -> FaultPlan:
        """Draw this round's plan from the node's fault stream.

        Parameters
        ----------
        rng : numpy.random.Generator
            The node's fault stream for this round.

        Returns
        -------
        FaultPlan
            Whether the node crashes, and the latency of its answer (``inf`` for a hang
            that lasts until the timeout).
        """
        crash, hang = rng.random(2)
        latency = self.delay_secs
        if hang < self.hang_probability:
            latency += self.hang_secs
        # Draws for the later kinds of fault come after, so older plans are unchanged.
        dropout, straggle, garbage = rng.random(3)
        if straggle < self.straggler_probability:
            latency += float(
                rng.lognormal(math.log(self.straggler_median_secs), self.straggler_sigma)
            )
        return FaultPlan(
            crash=bool(crash < self.crash_probability),
            latency_secs=latency * self.time_scale,
            dropout=bool(dropout < self.dropout_probability),
            garbage=self.garbage if garbage < self.garbage_probability else None,
            attack=self.attack,
            attack_scale=self.attack_scale,
        )


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What a node does wrong in one round.

    Attributes
    ----------
    crash : bool
        Local training raises :class:`SimulatedCrash` half-way through its mini-batches.
    latency_secs : float
        Time added to the node's answer (>= 0; ``inf``: it never answers).
    """

    crash: bool = False
    latency_secs: float = 0.0
    dropout: bool = False
    garbage: str | None = None
    attack: str | None = None
    attack_scale: float = 1.0

    def corrupt(
        self, delta: npt.NDArray[np.float64], rng: np.random.Generator
    ) -> npt.NDArray[np.float64]:
        """The update this plan makes the node send instead of its honest `delta`."""
        if self.attack == "sign_flip":
            delta = -self.attack_scale * delta
        elif self.attack == "scale":
            delta = self.attack_scale * delta
        elif self.attack == "random":
            direction = rng.standard_normal(delta.shape)
            norm = float(np.linalg.norm(delta)) or 1.0
            delta = direction * (self.attack_scale * norm / float(np.linalg.norm(direction)))
        if self.garbage == "nan":
            delta = np.full_like(delta, np.nan)
        elif self.garbage == "inf":
            delta = np.full_like(delta, np.inf)
        elif self.garbage == "wrong_shape":
            delta = np.zeros(delta.size + 1)
        elif self.garbage == "huge":
            delta = np.full_like(delta, 1e12)
        return delta


def _windows(value: Any) -> tuple[tuple[int, int], ...]:
    allowed = "a tuple of (start_round, end_round) pairs with 1 <= start < end"
    try:
        pairs = tuple((int(a), int(b)) for a, b in value)
    except (TypeError, ValueError):
        raise ConfigError("NodeFault.offline_rounds", value, allowed) from None
    if any(not 1 <= a < b for a, b in pairs):
        raise ConfigError("NodeFault.offline_rounds", value, allowed)
    return pairs


def assign_faults(
    node_ids: Sequence[str], mix: Mapping[NodeFault, float], *, seed: int
) -> dict[str, NodeFault]:
    """Give a seeded random share of a group each kind of fault.

    Parameters
    ----------
    node_ids : sequence of str
        The group.
    mix : Mapping[NodeFault, float]
        Each fault and the fraction of the group that gets it (fractions sum to <= 1;
        the rest stay healthy).
    seed : int
        Which nodes get which fault.

    Returns
    -------
    dict of str to NodeFault
        Node id to its fault, for the faulty nodes only.

    Examples
    --------
    >>> faults = assign_faults([f"n{i}" for i in range(10)], {NodeFault.crash(): 0.2}, seed=0)
    >>> len(faults)
    2
    """
    fractions = [
        check_float("mix fraction", f, low=0.0, low_open=False, high=1.0) for f in mix.values()
    ]
    if sum(fractions) > 1.0 + 1e-12:
        raise ConfigError(
            "mix", f"fractions summing to {sum(fractions):g}", "fractions summing to <= 1"
        )
    order = list(node_ids)
    np.random.default_rng(seed).shuffle(order)
    # Largest remainders: the counts add up to round(sum of fractions x n).
    exact = [f * len(order) for f in fractions]
    counts = [math.floor(x + 1e-9) for x in exact]
    short = round(sum(exact)) - sum(counts)
    by_remainder = sorted(range(len(exact)), key=lambda i: -(exact[i] - counts[i]))
    for i in by_remainder[: max(short, 0)]:
        counts[i] += 1
    out: dict[str, NodeFault] = {}
    start = 0
    for fault, count in zip(mix, counts, strict=True):
        for node_id in order[start : start + count]:
            out[node_id] = fault
        start += count
    return out
