"""SecAgg+: the four stages of one secure round, as a client and a server state machine.

The stages of Bonawitz et al. 2017, over the sparse neighbour graph of Bell et al. 2020:

0. **Advertise keys.** Each client draws two X25519 key pairs (``c`` for share transport,
   ``s`` for pairwise masks) and a self-mask seed ``b``, and sends both public keys and a
   commitment to ``b``.
1. **Share keys.** Each client splits ``b`` and its ``s`` private key into Shamir shares
   (threshold ``t``) for its neighbours, encrypts each neighbour's pair of shares with
   AES-256-GCM under a key agreed with that neighbour's ``c`` key (ids, round and session
   authenticated), and the server routes the ciphertexts.
2. **Masked input.** Each client adds to its quantised input ``PRG(b)`` and, for every
   neighbour ``v`` it exchanged shares with, ``+PRG(s_uv)`` if ``u < v`` else
   ``-PRG(s_uv)`` (``s_uv`` agreed from the ``s`` keys), all modulo ``2**modulus_bits``.
3. **Unmask.** The server names the survivors (masked input received) and the dropped
   (shared keys, no input). Each survivor reveals, per neighbour, the share of ``b`` of a
   survivor or the share of the ``s`` key of a dropped node, never both kinds for one
   peer. The server rebuilds the secrets, removes the self masks of survivors and the
   pairwise masks between dropped nodes and survivors, and obtains the sum of the
   survivors' inputs.

**What the server learns** (honest-but-curious server, honest clients): the sum of the
survivors' inputs and who survived, nothing about one input, as long as fewer than ``t``
of a node's neighbours collude with it and ``t`` exceeds half a neighbourhood (so no
node's ``b`` and ``s`` key are both reconstructed). Masks come from AES-256-CTR, keys from
X25519 + HKDF-SHA256 bound to session, round and pair. **Not covered**: a malicious server
that lies about who dropped to different clients (the consistency round of Bonawitz et
al.'s malicious variant is not implemented); a Sybil server controlling the graph.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from heliosfl.errors import SecureAggregationError
from heliosfl.secagg.channel import agree, generate_keypair, open_sealed, seal
from heliosfl.secagg.config import SecureAggregationConfig
from heliosfl.secagg.graph import default_neighbours, neighbour_graph
from heliosfl.secagg.prg import mask_vector, ring_sum
from heliosfl.secagg.shamir import combine_shares, decode_share, encode_share, split_secret

__all__ = ["Advertisement", "RoundSetup", "SecAggClient", "SecAggServer"]

RingVector = npt.NDArray[np.uint64]
_SHARE_BYTES = 66


def _commit(setup: RoundSetup, node_id: str, seed: bytes) -> bytes:
    digest = hashlib.sha256(b"heliosfl-secagg|commit|")
    for part in (setup.session, str(setup.round_number).encode(), node_id.encode(), seed):
        digest.update(len(part).to_bytes(4, "big") + part)
    return digest.digest()


def _reduce(vector: RingVector, bits: int) -> RingVector:
    """Reduce uint64 values (computed modulo 2**64) modulo ``2**bits``, in place."""
    if bits < 64:
        np.bitwise_and(vector, np.uint64((1 << bits) - 1), out=vector)
    return vector


def _pack(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _unpack(data: bytes, count: int) -> list[bytes]:
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
        threshold = max(1, math.ceil(config.threshold * degree))
        if threshold <= degree / 2:
            threshold = degree // 2 + 1
        return cls(
            session=os.urandom(16),
            round_number=round_number,
            participants=nodes,
            neighbours=graph,
            share_threshold=threshold,
            min_survivors=config.minimum_survivors(n),
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
        self.advertisement = Advertisement(c_public, s_public, _commit(setup, node_id, self._seed))
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
            message = _pack(
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
            source, target, b_share, s_share = _unpack(plain, 4)
            if source != sender.encode() or target != self.node_id.encode():
                raise SecureAggregationError("A share message names other nodes than its route.")
            self._held[sender] = (decode_share(b_share), decode_share(s_share))

    def masked_input(self, values: RingVector) -> RingVector:
        """Stage 2: the input plus its self mask and pairwise masks, in the ring."""
        setup = self.setup
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
        return _reduce(masked, bits)

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
            if peer not in self._peers.get(node_id, ()) or len(data) != 1 + _SHARE_BYTES:
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
        bits, length, t = setup.modulus_bits, setup.vector_length, setup.share_threshold
        total = ring_sum([self._masked[u] for u in sorted(self._survivors)], bits, length).copy()
        for u in sorted(self._survivors):
            seed = combine_shares(self._shares.get(u, {}), threshold=t, length=32)
            if _commit(setup, u, seed) != self._adverts[u].commitment:
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
        return _reduce(total, bits)
