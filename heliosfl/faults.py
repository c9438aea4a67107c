"""Simulated node faults: crashes, hangs and slow nodes, drawn from a seeded generator.

A fault is a property of a simulated worker (``engine.create_worker(cfg, data=...,
fault=NodeFault(...))``). Each round the worker draws a :class:`FaultPlan` from its own
random stream (separate from training's, so faults never change what a healthy node
computes): whether it crashes half-way through local training, and how much latency its
answer has. Latency, a hang included, is simulated on the event loop, not by blocking a
thread: many nodes can be slow or hang at once, as on a real network, and a hang ends
when the coordinator's timeout does.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from heliosfl.errors import ConfigError
from heliosfl.validation import check_float

__all__ = ["FaultPlan", "NodeFault", "SimulatedCrash"]


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

    @classmethod
    def crash(cls) -> NodeFault:
        """A node that crashes every round."""
        return cls(crash_probability=1.0)

    @classmethod
    def hang(cls, secs: float = math.inf) -> NodeFault:
        """A node that hangs every round."""
        return cls(hang_probability=1.0, hang_secs=secs)

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
        return FaultPlan(crash=bool(crash < self.crash_probability), latency_secs=latency)


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
