"""Secure aggregation, SecAgg+ (Bell et al. 2020): its protocol and pure primitives.

Synchronous functions of their inputs (and, where rounding or graphs need it, an explicit
``numpy.random.Generator``); secrets come from :mod:`secrets`, :func:`os.urandom` and
OpenSSL through ``cryptography``, never from numpy. The engine runs the protocol in
:mod:`heliosfl.secure_rounds`::

    config    SecureAggregationConfig (Config.secure_aggregation)
    protocol  the four stages (docstring): session.py (RoundSetup, Advertisement),
              client.py (SecAggClient), server.py (SecAggServer)
    node      SecureNode: a node's clients; clip, quantise, weight and mask its update

    channel   X25519 key agreement + HKDF-SHA256; AES-256-GCM sealing of shares
    shamir    Shamir secret sharing over GF(2**521 - 1), tamper check on extra shares
    prg       AES-256-CTR masks from a seed; uint64 arithmetic in Z / 2**b
    quantize  clipping + unbiased stochastic fixed-point encoding into the ring
    graph     k-regular neighbour graphs (random Harary graphs), k = O(log n)

References
----------
K. Bonawitz, V. Ivanov, B. Kreuter, A. Marcedone, H. B. McMahan, S. Patel, D. Ramage,
A. Segal, K. Seth, "Practical Secure Aggregation for Privacy-Preserving Machine
Learning", ACM CCS 2017. J. Bell, K. Bonawitz, A. Gascón, T. Lepoint, M. Raykova, "Secure
Single-Server Aggregation with (Poly)Logarithmic Overhead", ACM CCS 2020.
"""

from __future__ import annotations

from heliosfl.secagg.channel import agree, generate_keypair, open_sealed, seal
from heliosfl.secagg.config import NoisePlacement, SecureAggregationConfig
from heliosfl.secagg.graph import default_neighbours, neighbour_graph
from heliosfl.secagg.node import SecureNode, SecureSpec
from heliosfl.secagg.prg import mask_vector, ring_add, ring_sub, ring_sum
from heliosfl.secagg.protocol import Advertisement, RoundSetup, SecAggClient, SecAggServer
from heliosfl.secagg.quantize import Quantizer
from heliosfl.secagg.shamir import PRIME, combine_shares, decode_share, encode_share, split_secret

__all__ = [
    "PRIME",
    "Advertisement",
    "NoisePlacement",
    "Quantizer",
    "RoundSetup",
    "SecAggClient",
    "SecAggServer",
    "SecureAggregationConfig",
    "SecureNode",
    "SecureSpec",
    "agree",
    "combine_shares",
    "decode_share",
    "default_neighbours",
    "encode_share",
    "generate_keypair",
    "mask_vector",
    "neighbour_graph",
    "open_sealed",
    "ring_add",
    "ring_sub",
    "ring_sum",
    "seal",
    "split_secret",
]
