"""A node's side of a SecAgg+ round (see :mod:`heliosfl.secagg.protocol`)."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from heliosfl.errors import SecureAggregationError
from heliosfl.secagg.channel import agree, generate_keypair, open_sealed, seal
from heliosfl.secagg.prg import mask_vector
from heliosfl.secagg.session import Advertisement, RoundSetup, commit, pack, reduce_ring, unpack
from heliosfl.secagg.shamir import decode_share, encode_share, split_secret

__all__ = ["SecAggClient"]

RingVector = npt.NDArray[np.uint64]


class SecAggClient:
    """One node's side of a secure round (its secrets never leave it in clear).

    Parameters
    ----------
    node_id : str
        The node.
    setup : RoundSetup
        The round's agreed parameters.
    """

    def __init__(self, node_id: str, setup: RoundSetup) -> None:
        if node_id not in setup.neighbours:
            raise SecureAggregationError("The node is not a participant of this round.")
        self.node_id = node_id
        self.setup = setup
        self._c_key, c_public = generate_keypair()
        self._s_key, s_public = generate_keypair()
        self._seed = os.urandom(32)
        self.advertisement = Advertisement(c_public, s_public, commit(setup, node_id, self._seed))
        self._roster: dict[str, Advertisement] = {}
        self._transport: dict[str, bytes] = {}  # share-transport keys, one per peer
        self._held: dict[str, tuple[int, int]] = {}
        self._revealed: dict[str, str] = {}
        self._masked = False

    def _pair_key(self, peer: str, purpose: str, public: bytes, private: X25519PrivateKey) -> bytes:
        setup = self.setup
        return agree(
            private,
            public,
            purpose=purpose,
            session=setup.session,
            round_number=setup.round_number,
            pair=(self.node_id, peer),
        )

    def share_keys(self, roster: Mapping[str, Advertisement]) -> dict[str, bytes]:
        """Stage 1: encrypted shares of ``b`` and the ``s`` key for each advertised neighbour.

        Raises
        ------
        SecureAggregationError
            If fewer than ``share_threshold`` neighbours advertised keys.
        """
        setup = self.setup
        peers = [v for v in setup.neighbours[self.node_id] if v in roster]
        if len(peers) < setup.share_threshold:
            raise SecureAggregationError(
                f"A node needs {setup.share_threshold} neighbours with keys to share its "
                f"secrets. Found {len(peers)}."
            )
        self._roster = {v: roster[v] for v in peers}
        xs = [setup.x_of(v) for v in peers]
        s_private = self._s_key.private_bytes_raw()
        b_shares = split_secret(self._seed, threshold=setup.share_threshold, xs=xs)
        s_shares = split_secret(s_private, threshold=setup.share_threshold, xs=xs)
        out = {}
        for v, x in zip(peers, xs, strict=True):
            # one key per pair serves both directions (the direction is authenticated)
            key = self._transport[v] = self._pair_key(v, "shares", roster[v].c_public, self._c_key)
            message = pack(
                self.node_id.encode(),
                v.encode(),
                encode_share(b_shares[x]),
                encode_share(s_shares[x]),
            )
            out[v] = seal(
                key,
                message,
                sender=self.node_id,
                recipient=v,
                session=setup.session,
                round_number=setup.round_number,
            )
        return out

    def receive_shares(self, inbox: Mapping[str, bytes]) -> None:
        """Stage 1 (receiving): decrypt and keep the shares neighbours made for this node.

        Raises
        ------
        SecureAggregationError
            For a ciphertext from a non-neighbour, or one that fails authentication.
        """
        for sender, sealed in inbox.items():
            advert = self._roster.get(sender)
            if advert is None:
                raise SecureAggregationError("Shares arrived from a node that is not a neighbour.")
            key = self._transport.get(sender) or self._pair_key(
                sender, "shares", advert.c_public, self._c_key
            )
            plain = open_sealed(
                key,
                sealed,
                sender=sender,
                recipient=self.node_id,
                session=self.setup.session,
                round_number=self.setup.round_number,
            )
            source, target, b_share, s_share = unpack(plain, 4)
            if source != sender.encode() or target != self.node_id.encode():
                raise SecureAggregationError("A share message names other nodes than its route.")
            self._held[sender] = (decode_share(b_share), decode_share(s_share))

    def masked_input(self, values: RingVector) -> RingVector:
        """Stage 2: the input plus its self mask and pairwise masks, in the ring."""
        setup = self.setup
        if self._masked:  # the same masks on two inputs would reveal their difference
            raise SecureAggregationError("A node masks one input per round, not two.")
        vector = np.asarray(values)
        if vector.dtype != np.uint64 or vector.shape != (setup.vector_length,):
            raise SecureAggregationError(
                f"A masked input must be {setup.vector_length} uint64 ring elements. Found "
                f"shape {vector.shape}, dtype {vector.dtype}."
            )
        bits, length = setup.modulus_bits, setup.vector_length
        # uint64 arithmetic wraps modulo 2**64, a multiple of the modulus: accumulate in
        # place and reduce once at the end.
        masked = np.add(vector, mask_vector(self._seed, length, bits), dtype=np.uint64)
        for peer in sorted(self._held):
            seed = self._pair_key(peer, "mask", self._roster[peer].s_public, self._s_key)
            pairwise = mask_vector(seed, length, bits)
            if self.node_id < peer:
                np.add(masked, pairwise, out=masked)
            else:
                np.subtract(masked, pairwise, out=masked)
        self._masked = True
        return reduce_ring(masked, bits)

    def unmask(self, survivors: Collection[str], dropped: Collection[str]) -> dict[str, bytes]:
        """Stage 3: per peer, its ``b`` share if it survived, its ``s`` share if it dropped.

        A peer's kind of share, once revealed, never changes: asked for the other kind
        (e.g. by a server claiming a survivor dropped), the client refuses.

        Returns
        -------
        dict of str to bytes
            Peer id to ``b"b" + share`` or ``b"s" + share``.

        Raises
        ------
        SecureAggregationError
            If this node sent no masked input or is not named a survivor, a peer is named
            both, or the server asks for the other kind of share of a peer.
        """
        if not self._masked or self.node_id not in survivors:
            raise SecureAggregationError("Only a node whose masked input was used unmasks.")
        out = {}
        for peer, (b_share, s_share) in sorted(self._held.items()):
            alive, gone = peer in survivors, peer in dropped
            if alive and gone:
                raise SecureAggregationError("A peer cannot be both a survivor and dropped.")
            if not (alive or gone):
                continue
            kind = "b" if alive else "s"
            if self._revealed.setdefault(peer, kind) != kind:
                raise SecureAggregationError(
                    "A node reveals at most one kind of share per peer; the other was asked."
                )
            out[peer] = kind.encode() + encode_share(b_share if alive else s_share)
        return out
