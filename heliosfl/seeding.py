"""Deterministic random streams, keyed by what they are for.

Every random choice of a run comes from ``SeedSequence(seed, spawn_key=...)`` keyed by its
purpose, the model, the round and the node. A stream therefore does not depend on the
order nodes finish in, on the backend, or on how many rounds ran before a restart: the
same seed gives the same run, and a resumed run continues it exactly.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

import numpy as np

__all__ = ["Stream", "rng_for", "stable_key"]


class Stream(IntEnum):
    """What a random stream is used for."""

    INIT = 0
    SELECTION = 1
    TRAINING = 2
    FAULTS = 3
    NOISE = 4
    SECAGG = 5
    PROBES = 6


def stable_key(text: str) -> int:
    """Return a 64-bit integer derived from ``text`` (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def rng_for(
    seed: int,
    stream: Stream,
    model_id: str,
    round_number: int = 0,
    node_id: str = "",
    attempt: int = 0,
) -> np.random.Generator:
    """Return the generator for one purpose, model, round, node and attempt.

    Parameters
    ----------
    seed : int
        The run's seed (``Config.seed``).
    stream : Stream
        The purpose.
    model_id : str
        The model.
    round_number : int
        The round (0 for initial parameters).
    node_id : str
        The node (empty for coordinator-side streams).
    attempt : int
        Which attempt at the round (a round without quorum is retried with fresh
        selection and fault draws; the attempt count is kept in the history, so a resumed
        run draws the same).

    Returns
    -------
    numpy.random.Generator
        A PCG64 generator independent of every other key.
    """
    key = (int(stream), stable_key(model_id), round_number, stable_key(node_id), attempt)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
