"""Simulated node faults: crashes, hangs and slow nodes, drawn from a seeded generator.

A fault is a property of a simulated worker (``engine.create_worker(cfg, data=...,
fault=NodeFault(...))``). Each round the worker draws from its own random stream (separate
from training's, so faults never change what a healthy node computes) whether it crashes,
hangs, or is delayed. A hang waits on the node's stop flag, so the round's timeout ends it
the way it ends a real stuck node's wait.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from heliosfl.errors import ConfigError

__all__ = ["NodeFault", "SimulatedCrash"]


class SimulatedCrash(RuntimeError):
    """Raised inside a node's training when its fault plan says it crashes."""


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"NodeFault.{name}", value, "a probability in [0, 1]")
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFault:
    """How a simulated node misbehaves.

    Parameters
    ----------
    crash_probability : float
        Chance per round that local training raises :class:`SimulatedCrash`.
    hang_probability : float
        Chance per round that the node hangs for ``hang_secs`` before training (until
        the coordinator's timeout stops it).
    hang_secs : float
        How long a hang lasts (> 0; ``inf``: until stopped).
    delay_secs : float
        Extra latency every round (>= 0), e.g. a slow link.
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
        hang = self.hang_secs
        if isinstance(hang, bool) or not isinstance(hang, int | float) or not hang > 0:
            raise ConfigError("NodeFault.hang_secs", hang, "a number > 0 (inf allowed)")
        delay = self.delay_secs
        if (
            isinstance(delay, bool)
            or not isinstance(delay, int | float)
            or not math.isfinite(delay)
            or delay < 0
        ):
            raise ConfigError("NodeFault.delay_secs", delay, "a finite number >= 0")

    @classmethod
    def crash(cls) -> NodeFault:
        """A node that crashes every round."""
        return cls(crash_probability=1.0)

    @classmethod
    def hang(cls, secs: float = math.inf) -> NodeFault:
        """A node that hangs every round."""
        return cls(hang_probability=1.0, hang_secs=secs)

    def apply(self, rng: np.random.Generator, stop: threading.Event) -> None:
        """Act out this round's fault in the node's thread.

        Parameters
        ----------
        rng : numpy.random.Generator
            The node's fault stream for this round.
        stop : threading.Event
            Set by the coordinator when the node's time is up.

        Raises
        ------
        SimulatedCrash
            If the node crashes this round.
        """
        crash, hang = rng.random(2)
        if self.delay_secs > 0:
            stop.wait(self.delay_secs)
        if hang < self.hang_probability:
            stop.wait(None if math.isinf(self.hang_secs) else self.hang_secs)
        if crash < self.crash_probability:
            raise SimulatedCrash("simulated crash during local training")
