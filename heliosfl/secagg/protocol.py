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

from heliosfl.secagg.client import SecAggClient
from heliosfl.secagg.server import SecAggServer
from heliosfl.secagg.session import Advertisement, RoundSetup

__all__ = ["Advertisement", "RoundSetup", "SecAggClient", "SecAggServer"]
