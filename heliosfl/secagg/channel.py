"""Pairwise key agreement (X25519 + HKDF-SHA256) and authenticated transport (AES-256-GCM).

:func:`agree` gives two nodes the same 32-byte key from one's private key and the other's
public key. The key is HKDF-SHA256 of the X25519 shared secret with the session as salt
and, as info, the purpose, the round and the two node ids (sorted), each length-prefixed,
so keys for different purposes, rounds, sessions or pairs are independent.
:func:`seal` and :func:`open_sealed` encrypt one message with such a key under a fresh
random 96-bit nonce, authenticating session, round, sender and recipient.

Guarantees, assuming X25519 is a secure key exchange (gap Diffie-Hellman in Curve25519),
HKDF-SHA256 a secure KDF and AES-256-GCM a secure AEAD: against an adversary who sees the
public keys and all sealed messages but holds neither private key, the key is
pseudorandom, and a sealed message stays confidential and cannot be modified, replayed
into another session, round or direction, or forged without detection. Public keys are
not authenticated here: the coordinator must relay them faithfully (SecAgg's semi-honest
server) or they must be signed. Random nonces are safe for up to about ``2**32`` messages
per key; a key serves one pair, purpose and round. A private key whose secret may be
revealed (SecAgg reconstructs the mask key of a dropped node) must not also protect
channels: use one key pair per purpose, as Bonawitz et al. do (``c`` and ``s`` keys).

References
----------
D. J. Bernstein, "Curve25519: new Diffie-Hellman speed records", PKC 2006; RFC 7748.
H. Krawczyk, P. Eronen, "HMAC-based Extract-and-Expand Key Derivation Function (HKDF)",
RFC 5869. NIST SP 800-38D (GCM). K. Bonawitz et al., "Practical Secure Aggregation for
Privacy-Preserving Machine Learning", ACM CCS 2017.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from heliosfl.errors import ConfigError, SecureAggregationError

__all__ = ["agree", "generate_keypair", "open_sealed", "seal"]

_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KDF_LABEL = b"heliosfl-secagg|"
_SEAL_LABEL = b"heliosfl-secagg-seal|"


def _fields(*parts: bytes) -> bytes:
    """Each part prefixed with its length as 4 big-endian bytes: parses unambiguously."""
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def _round_bytes(round_number: int) -> bytes:
    if isinstance(round_number, bool) or not isinstance(round_number, int):
        raise ConfigError("round_number", round_number, "an int in [0, 2**64)")
    if not 0 <= round_number < 2**64:
        raise ConfigError("round_number", round_number, "an int in [0, 2**64)")
    return round_number.to_bytes(8, "big")


def _check_session(session: bytes) -> bytes:
    if not isinstance(session, bytes) or not session:
        raise ConfigError("session", type(session).__name__, "non-empty bytes")
    return session


def _check_id(name: str, value: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ConfigError(name, value, "a non-empty str")
    return value.encode("utf-8")


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) != _KEY_BYTES:
        shown = f"<{len(key)} bytes>" if isinstance(key, bytes) else type(key).__name__
        raise ConfigError("key", shown, f"exactly {_KEY_BYTES} bytes")
    return key


def generate_keypair() -> tuple[X25519PrivateKey, bytes]:
    """A fresh X25519 key pair: the private key object and the 32-byte raw public key.

    The private key comes from the operating system's CSPRNG (via OpenSSL).
    """
    private_key = X25519PrivateKey.generate()
    return private_key, private_key.public_key().public_bytes_raw()


def agree(
    private_key: X25519PrivateKey,
    peer_public: bytes,
    *,
    purpose: str,
    session: bytes,
    round_number: int,
    pair: tuple[str, str],
) -> bytes:
    """Derive the 32-byte key two nodes share for `purpose` in one round of one session.

    Both sides call it with their own private key and the other's public key and the same
    `purpose`, `session`, `round_number` and `pair` (in either order) and get the same
    key.

    Parameters
    ----------
    private_key : X25519PrivateKey
        This node's private key.
    peer_public : bytes
        The peer's 32-byte raw public key.
    purpose : str
        Non-empty label separating uses, e.g. ``"mask"`` or ``"share"``.
    session : bytes
        Non-empty identifier of the run (e.g. 16 random bytes); the HKDF salt.
    round_number : int
        In ``[0, 2**64)``.
    pair : tuple[str, str]
        The two distinct node ids; sorted before use.

    Returns
    -------
    bytes
        ``HKDF-SHA256(ikm=X25519(private_key, peer_public), salt=session,
        info=b"heliosfl-secagg|" + lp(purpose) + lp(round) + lp(id_lo) + lp(id_hi))``,
        32 bytes, where ``lp`` prefixes a field with its 4-byte big-endian length.

    Raises
    ------
    ConfigError
        If an argument has the wrong type or is empty, or the ids of `pair` are equal.
    SecureAggregationError
        If `peer_public` is not a valid X25519 public key or yields the all-zero shared
        secret (a low-order point).

    References
    ----------
    RFC 7748 (X25519); RFC 5869 (HKDF).
    """
    if not isinstance(private_key, X25519PrivateKey):
        raise ConfigError("private_key", type(private_key).__name__, "an X25519PrivateKey")
    if not isinstance(purpose, str) or not purpose:
        raise ConfigError("purpose", purpose, "a non-empty str")
    salt = _check_session(session)
    round_bytes = _round_bytes(round_number)
    if not (
        isinstance(pair, tuple)
        and len(pair) == 2
        and all(isinstance(node, str) and node for node in pair)
        and pair[0] != pair[1]
    ):
        raise ConfigError("pair", pair, "a tuple of two distinct non-empty node ids (str)")
    low, high = sorted(pair)
    if not isinstance(peer_public, bytes) or len(peer_public) != _KEY_BYTES:
        size = len(peer_public) if isinstance(peer_public, bytes) else type(peer_public).__name__
        raise SecureAggregationError(
            f"The public key of the peer in {pair!r} must be {_KEY_BYTES} bytes. Found {size}."
        )
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        shared = bytes(_KEY_BYTES)  # OpenSSL refuses low-order points itself
    if hmac.compare_digest(shared, bytes(_KEY_BYTES)):
        raise SecureAggregationError(
            f"The public key of the peer in {pair!r} must be a valid X25519 key. Found a "
            "key giving no shared secret (a low-order point); refusing it."
        )
    ids = (low.encode("utf-8"), high.encode("utf-8"))
    info = _KDF_LABEL + _fields(purpose.encode("utf-8"), round_bytes, *ids)
    return HKDF(hashes.SHA256(), _KEY_BYTES, salt=salt, info=info).derive(shared)


def _associated_data(session: bytes, round_number: int, sender: str, recipient: str) -> bytes:
    return _SEAL_LABEL + _fields(
        _check_session(session),
        _round_bytes(round_number),
        _check_id("sender", sender),
        _check_id("recipient", recipient),
    )


def seal(
    key: bytes,
    plaintext: bytes,
    *,
    sender: str,
    recipient: str,
    session: bytes,
    round_number: int,
) -> bytes:
    """Encrypt and authenticate `plaintext` from `sender` to `recipient`.

    Returns
    -------
    bytes
        ``nonce (12 random bytes from os.urandom) || AES-256-GCM ciphertext || tag (16)``,
        with associated data binding `session`, `round_number`, `sender` and `recipient`.

    Raises
    ------
    ConfigError
        If `key` is not 32 bytes (only its length is reported), `plaintext` is not bytes,
        or an id, the session or the round is invalid.

    References
    ----------
    NIST SP 800-38D, "Galois/Counter Mode (GCM) and GMAC", 2007.
    """
    aead = AESGCM(_check_key(key))
    if not isinstance(plaintext, bytes):
        raise ConfigError("plaintext", type(plaintext).__name__, "bytes")
    aad = _associated_data(session, round_number, sender, recipient)
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + aead.encrypt(nonce, plaintext, aad)


def open_sealed(
    key: bytes,
    sealed: bytes,
    *,
    sender: str,
    recipient: str,
    session: bytes,
    round_number: int,
) -> bytes:
    """Decrypt a message made by :func:`seal`, checking who sent it, to whom and when.

    Raises
    ------
    ConfigError
        If `key` is not 32 bytes or an id, the session or the round is invalid.
    SecureAggregationError
        If `sealed` is too short, was modified, or was sealed under another key, session,
        round, sender or recipient.

    References
    ----------
    NIST SP 800-38D, "Galois/Counter Mode (GCM) and GMAC", 2007.
    """
    aead = AESGCM(_check_key(key))
    aad = _associated_data(session, round_number, sender, recipient)
    if not isinstance(sealed, bytes) or len(sealed) < _NONCE_BYTES + _TAG_BYTES:
        raise SecureAggregationError(
            f"The sealed message from {sender!r} to {recipient!r} cannot be authenticated: "
            f"it must be at least {_NONCE_BYTES + _TAG_BYTES} bytes."
        )
    try:
        return aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad)
    except InvalidTag:
        raise SecureAggregationError(
            f"The sealed message from {sender!r} to {recipient!r} (round {round_number}) "
            "cannot be authenticated: it was modified, or sealed under another key, "
            "session, round, sender or recipient."
        ) from None
