"""The coordinator's side of a SecAgg+ round (see :mod:`heliosfl.secagg.protocol`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from heliosfl.errors import SecureAggregationError
from heliosfl.secagg.channel import agree
from heliosfl.secagg.prg import mask_vector, ring_sum
from heliosfl.secagg.session import SHARE_BYTES, Advertisement, RoundSetup, commit, reduce_ring
from heliosfl.secagg.shamir import combine_shares, decode_share

__all__ = ["SecAggServer"]

RingVector = npt.NDArray[np.uint64]


class SecAggServer:
    """The coordinator's side: routes messages and unmasks only the sum.

    Parameters
    ----------
    setup : RoundSetup
        The round's agreed parameters.
    """

    def __init__(self, setup: RoundSetup) -> None:
        self.setup = setup
        self._adverts: dict[str, Advertisement] = {}
        self._peers: dict[str, set[str]] = {}
        self._masked: dict[str, RingVector] = {}
        self._survivors: frozenset[str] = frozenset()
        self._dropped: frozenset[str] = frozenset()
        self._unmasking = False
        self._shares: dict[str, dict[int, int]] = {}
        self._answered: set[str] = set()

    def _need(self, count: int, what: str) -> None:
        needed = self.setup.min_survivors
        if count < needed:
            raise SecureAggregationError(
                f"Secure aggregation needs at least {needed} nodes {what}. Found {count}; the "
                "round is abandoned and the model is unchanged."
            )

    def collect_keys(
        self, adverts: Mapping[str, Advertisement]
    ) -> dict[str, dict[str, Advertisement]]:
        """Stage 0: keep the advertisements; return each advertiser's roster of neighbours."""
        setup = self.setup
        publics = [a.c_public for a in adverts.values()] + [a.s_public for a in adverts.values()]
        if len(set(publics)) != len(publics):
            raise SecureAggregationError("Two advertisements reuse a public key (a replay).")
        self._adverts = {u: a for u, a in adverts.items() if u in setup.neighbours}
        self._need(len(self._adverts), "advertising keys")
        return {
            u: {v: self._adverts[v] for v in setup.neighbours[u] if v in self._adverts}
            for u in self._adverts
        }

    def route_shares(
        self, outgoing: Mapping[str, Mapping[str, bytes]]
    ) -> dict[str, dict[str, bytes]]:
        """Stage 1: deliver each sender's ciphertexts; return each recipient's inbox."""
        setup = self.setup
        senders = {u for u in outgoing if u in self._adverts}
        self._need(len(senders), "sharing keys")
        inbox: dict[str, dict[str, bytes]] = {u: {} for u in senders}
        for u in senders:
            for v, sealed in outgoing[u].items():
                if v not in setup.neighbours[u]:
                    raise SecureAggregationError("A node sent shares to a non-neighbour.")
                if v in senders:
                    inbox[v][u] = sealed
        self._peers = {u: set(inbox[u]) for u in senders}
        return inbox

    @property
    def sharers(self) -> frozenset[str]:
        """Nodes that shared keys (may send masked inputs)."""
        return frozenset(self._peers)

    def accept_masked(self, node_id: str, masked: RingVector) -> None:
        """Stage 2: take a masked input.

        Raises
        ------
        SecureAggregationError
            If unmasking has begun (the input is late: its keys may be reconstructed), the
            node did not share keys, sent twice, or the vector is malformed.
        """
        setup = self.setup
        if self._unmasking:
            raise SecureAggregationError(
                "A masked input arrived after unmasking began and is rejected: its sender's "
                "secrets may already have been reconstructed as those of a dropped node."
            )
        if node_id not in self._peers or node_id in self._masked:
            raise SecureAggregationError("A masked input from a node that may not send one.")
        vector = np.asarray(masked)
        limit = np.uint64((1 << setup.modulus_bits) - 1)
        if (
            vector.dtype != np.uint64
            or vector.shape != (setup.vector_length,)
            or (setup.modulus_bits < 64 and bool(np.any(vector > limit)))
        ):
            raise SecureAggregationError("A masked input is not a vector of ring elements.")
        self._masked[node_id] = vector

    def begin_unmask(self) -> tuple[frozenset[str], frozenset[str]]:
        """End stage 2: return (survivors, dropped); later inputs are rejected."""
        self._unmasking = True
        self._survivors = frozenset(self._masked)
        self._dropped = frozenset(self._peers) - self._survivors
        self._need(len(self._survivors), "delivering masked updates")
        return self._survivors, self._dropped

    def accept_unmask(self, node_id: str, revealed: Mapping[str, bytes]) -> None:
        """Stage 3: take a survivor's shares (checked against who survived and who held what)."""
        if node_id not in self._survivors or node_id in self._answered:
            raise SecureAggregationError("Unmasking shares from a node that may not send them.")
        x = self.setup.x_of(node_id)
        for peer, data in revealed.items():
            if peer not in self._peers.get(node_id, ()) or len(data) != 1 + SHARE_BYTES:
                raise SecureAggregationError("An unmasking share is malformed or misrouted.")
            kind = data[:1]
            expected = b"b" if peer in self._survivors else b"s"
            if kind != expected:
                raise SecureAggregationError("An unmasking share is of the wrong kind.")
            self._shares.setdefault(peer, {})[x] = decode_share(data[1:])
        self._answered.add(node_id)

    def finish(self) -> RingVector:
        """Remove the masks and return the ring sum of the survivors' inputs.

        Raises
        ------
        SecureAggregationError
            If some node's secret has fewer than ``share_threshold`` shares, shares are
            inconsistent (tampered), or a rebuilt secret does not match what its node
            committed to or advertised.
        """
        setup = self.setup
        if not self._unmasking or len(self._survivors) < setup.min_survivors:
            raise SecureAggregationError(
                "Unmasking needs begin_unmask() first, with enough survivors."
            )
        bits, length, t = setup.modulus_bits, setup.vector_length, setup.share_threshold
        total = ring_sum([self._masked[u] for u in sorted(self._survivors)], bits, length).copy()
        for u in sorted(self._survivors):
            seed = combine_shares(self._shares.get(u, {}), threshold=t, length=32)
            if commit(setup, u, seed) != self._adverts[u].commitment:
                raise SecureAggregationError(
                    "A rebuilt self-mask seed does not match its commitment: shares were "
                    "tampered with."
                )
            np.subtract(total, mask_vector(seed, length, bits), out=total)
        for v in sorted(self._dropped):
            raw = combine_shares(self._shares.get(v, {}), threshold=t, length=32)
            key = X25519PrivateKey.from_private_bytes(raw)
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            if public != self._adverts[v].s_public:
                raise SecureAggregationError(
                    "A rebuilt mask key does not match the key its node advertised: shares "
                    "were tampered with."
                )
            for u in sorted(self._peers[v] & self._survivors):
                seed = agree(
                    key,
                    self._adverts[u].s_public,
                    purpose="mask",
                    session=setup.session,
                    round_number=setup.round_number,
                    pair=(v, u),
                )
                pairwise = mask_vector(seed, length, bits)
                # u added +PRG(s_uv) if u < v, else -PRG(s_uv): take it back out.
                if u < v:
                    np.subtract(total, pairwise, out=total)
                else:
                    np.add(total, pairwise, out=total)
        return reduce_ring(total, bits)
