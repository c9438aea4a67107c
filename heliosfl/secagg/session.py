"""What the parties of one secure round agree on, and the helpers they share.

See :mod:`heliosfl.secagg.protocol` for the protocol.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heliosfl.errors import SecureAggregationError
from heliosfl.secagg.config import SecureAggregationConfig
from heliosfl.secagg.graph import default_neighbours, neighbour_graph

__all__ = ["Advertisement", "RoundSetup", "commit", "pack", "reduce_ring", "unpack"]

RingVector = npt.NDArray[np.uint64]
SHARE_BYTES = 66


def commit(setup: RoundSetup, node_id: str, seed: bytes) -> bytes:
    """SHA-256 commitment of a node's self-mask seed, bound to session, round and node."""
    digest = hashlib.sha256(b"heliosfl-secagg|commit|")
    for part in (setup.session, str(setup.round_number).encode(), node_id.encode(), seed):
        digest.update(len(part).to_bytes(4, "big") + part)
    return digest.digest()


def reduce_ring(vector: RingVector, bits: int) -> RingVector:
    """Reduce uint64 values (computed modulo 2**64) modulo ``2**bits``, in place."""
    if bits < 64:
        np.bitwise_and(vector, np.uint64((1 << bits) - 1), out=vector)
    return vector


def pack(*parts: bytes) -> bytes:
    """Concatenate byte strings, each prefixed with its 4-byte length."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def unpack(data: bytes, count: int) -> list[bytes]:
    """Split what :func:`pack` joined into `count` non-empty parts, or raise."""
    parts, at = [], 0
    for _ in range(count):
        if at + 4 > len(data):
            raise SecureAggregationError("A share message is malformed (truncated).")
        size = int.from_bytes(data[at : at + 4], "big")
        parts.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    if at != len(data) or any(len(p) == 0 for p in parts):
        raise SecureAggregationError("A share message is malformed.")
    return parts


@dataclass(frozen=True, slots=True)
class RoundSetup:
    """What every party of one secure round agrees on before it starts.

    Attributes
    ----------
    session : bytes
        16 random bytes naming this round's protocol run (bound into every key).
    round_number : int
        The training round.
    participants : tuple of str
        The selected nodes, sorted; a node's Shamir x-coordinate is its index + 1.
    neighbours : Mapping[str, tuple[str, ...]]
        The neighbour graph (symmetric).
    share_threshold : int
        Shares needed to rebuild a node's secrets (more than half a neighbourhood).
    min_survivors : int
        Masked inputs the round needs.
    vector_length : int
        Ring elements per input.
    modulus_bits : int
        The ring is the integers modulo ``2**modulus_bits``.
    """

    session: bytes
    round_number: int
    participants: tuple[str, ...]
    neighbours: Mapping[str, tuple[str, ...]]
    share_threshold: int
    min_survivors: int
    vector_length: int
    modulus_bits: int

    @classmethod
    def create(
        cls,
        participants: Sequence[str],
        config: SecureAggregationConfig,
        *,
        round_number: int,
        vector_length: int,
        rng: np.random.Generator,
    ) -> RoundSetup:
        """Draw the neighbour graph (from `rng`) and a fresh random session.

        Raises
        ------
        SecureAggregationError
            With fewer than 3 participants (a sum of two reveals the other input to
            each of them) or fewer than the threshold allows.
        """
        nodes = tuple(sorted(participants))
        n = len(nodes)
        if n < 3:
            raise SecureAggregationError(
                f"Secure aggregation needs at least 3 nodes in a round. Found {n}; with two, "
                "each would learn the other's update from the sum. Select more nodes."
            )
        k = n - 1 if config.full_graph else (config.neighbours or default_neighbours(n))
        k = min(k, n - 1)
        if k < n - 1 and k % 2:
            k -= 1  # a Harary graph needs an even degree
        graph = neighbour_graph(nodes, k, rng)
        degree = min(len(v) for v in graph.values())
        # the exact ceiling (0.55 * 100 is 55.000000000000007 in floating point)
        threshold = max(degree // 2 + 1, math.ceil(config.threshold * degree - 1e-9))
        return cls(
            session=os.urandom(16),
            round_number=round_number,
            participants=nodes,
            neighbours=graph,
            share_threshold=threshold,
            # each survivor's seed needs `threshold` shares from *other* survivors
            min_survivors=max(config.minimum_survivors(n), threshold + 1),
            vector_length=vector_length,
            modulus_bits=config.modulus_bits,
        )

    def x_of(self, node_id: str) -> int:
        """The node's Shamir x-coordinate."""
        return self.participants.index(node_id) + 1


@dataclass(frozen=True, slots=True)
class Advertisement:
    """Stage 0 message: a client's two public keys and its self-mask commitment."""

    c_public: bytes
    s_public: bytes
    commitment: bytes
