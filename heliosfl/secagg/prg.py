"""Pseudorandom masks from a 32-byte seed, and arithmetic in the ring Z / 2**b.

:func:`mask_vector` expands a seed with AES-256 in counter mode: the keystream
``AES_k(0) || AES_k(1) || ...`` (key ``k`` = the seed, 128-bit big-endian counter starting
at zero) is read as little-endian words and reduced to ``modulus_bits`` bits. A vector is
therefore a deterministic function of its seed: two parties holding the same seed derive
the same mask, which is what lets pairwise masks cancel.

Guarantee: if AES-256 is a pseudorandom permutation and the seed is uniformly random and
secret, the mask is computationally indistinguishable from a uniform vector in
``[0, 2**modulus_bits)**length`` (the PRP/PRF switching term is at most ``q**2 / 2**129``
for ``q`` blocks, negligible here). Each seed must mask one vector only: masks from the
same seed are equal, so two vectors masked with one seed reveal their difference. Seeds
from :func:`heliosfl.secagg.agree` are bound to a round for that reason; self-mask seeds
should come from :func:`secrets.token_bytes`.

The ring helpers keep every value in ``numpy.uint64``: numpy's uint64 addition and
subtraction wrap modulo ``2**64``, a multiple of ``2**b``, so one mask at the end reduces
correctly modulo ``2**b``. Nothing is converted to float or to a signed type.

References
----------
K. Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
Learning", ACM CCS 2017. NIST SP 800-38A, "Recommendation for Block Cipher Modes of
Operation", 2001 (CTR mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from heliosfl.errors import ConfigError

__all__ = ["mask_vector", "ring_add", "ring_sub", "ring_sum"]

_SEED_BYTES = 32
_ZERO_COUNTER = bytes(16)

RingArray = NDArray[np.uint64]
RingOperand = NDArray[Any] | int | np.unsignedinteger[Any]


def _check_bits(modulus_bits: int) -> int:
    if isinstance(modulus_bits, bool) or not isinstance(modulus_bits, int):
        raise ConfigError("modulus_bits", modulus_bits, "an int in [1, 64]")
    if not 1 <= modulus_bits <= 64:
        raise ConfigError("modulus_bits", modulus_bits, "an int in [1, 64]")
    return modulus_bits


def _mask_of(modulus_bits: int) -> np.uint64:
    return np.uint64((1 << modulus_bits) - 1)


def mask_vector(seed: bytes, length: int, modulus_bits: int) -> RingArray:
    """Expand `seed` into `length` pseudorandom values uniform in ``[0, 2**modulus_bits)``.

    Parameters
    ----------
    seed : bytes
        32 secret bytes, the AES-256 key; use each seed for one vector only.
    length : int
        Number of values, ``>= 0``.
    modulus_bits : int
        Bits per value, ``1 <= modulus_bits <= 64``. Up to 32 bits each value takes one
        little-endian uint32 of keystream, above that one uint64.

    Returns
    -------
    numpy.ndarray
        Shape ``(length,)``, dtype uint64, a fresh writable array.

    Raises
    ------
    ConfigError
        If `seed` is not 32 bytes (only its length is reported), `length` is negative or
        `modulus_bits` is outside ``[1, 64]``.

    References
    ----------
    NIST SP 800-38A, "Recommendation for Block Cipher Modes of Operation", 2001.
    """
    if not isinstance(seed, bytes) or len(seed) != _SEED_BYTES:
        shown = f"<{len(seed)} bytes>" if isinstance(seed, bytes) else type(seed).__name__
        raise ConfigError("seed", shown, f"exactly {_SEED_BYTES} bytes")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ConfigError("length", length, "an int >= 0")
    bits = _check_bits(modulus_bits)
    word = "<u4" if bits <= 32 else "<u8"
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(_ZERO_COUNTER)).encryptor()
    keystream = encryptor.update(bytes(length * np.dtype(word).itemsize))
    values = np.frombuffer(keystream, dtype=word).astype(np.uint64)  # copies: writable
    if bits < 64:
        np.bitwise_and(values, _mask_of(bits), out=values)
    return values


def _operand(value: RingOperand, name: str, bits: int) -> NDArray[np.uint64]:
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "u":
            raise ConfigError(name, f"<array of dtype {value.dtype}>", "an unsigned int array")
        return value.astype(np.uint64, copy=False)
    if isinstance(value, np.unsignedinteger):
        return np.asarray(value, dtype=np.uint64)
    if isinstance(value, int) and not isinstance(value, bool):
        return np.asarray(value % (1 << bits), dtype=np.uint64)
    raise ConfigError(name, type(value).__name__, "an unsigned int array or an int")


def _ring(op: np.ufunc, a: RingOperand, b: RingOperand, modulus_bits: int) -> RingArray:
    """``op(a, b) mod 2**modulus_bits`` in uint64 (which wraps modulo 2**64, a multiple)."""
    bits = _check_bits(modulus_bits)
    x, y = _operand(a, "a", bits), _operand(b, "b", bits)
    out = np.empty(np.broadcast_shapes(x.shape, y.shape), dtype=np.uint64)
    op(x, y, out=out)
    np.bitwise_and(out, _mask_of(bits), out=out)
    return out


def ring_add(a: RingOperand, b: RingOperand, modulus_bits: int) -> RingArray:
    """``(a + b) mod 2**modulus_bits``, elementwise, in uint64.

    Operands are unsigned integer arrays (broadcast together) or Python ints (taken
    modulo ``2**modulus_bits``, so negative ints are allowed); values of either are read
    modulo ``2**modulus_bits``.

    Raises
    ------
    ConfigError
        If an operand is a signed or float array, or `modulus_bits` is outside [1, 64].
    """
    return _ring(np.add, a, b, modulus_bits)


def ring_sub(a: RingOperand, b: RingOperand, modulus_bits: int) -> RingArray:
    """``(a - b) mod 2**modulus_bits``, elementwise, in uint64 (see :func:`ring_add`).

    Raises
    ------
    ConfigError
        If an operand is a signed or float array, or `modulus_bits` is outside [1, 64].
    """
    return _ring(np.subtract, a, b, modulus_bits)


def ring_sum(vectors: Sequence[NDArray[Any]], modulus_bits: int, length: int) -> RingArray:
    """Sum of `vectors` modulo ``2**modulus_bits``; zeros when `vectors` is empty.

    Parameters
    ----------
    vectors : Sequence[numpy.ndarray]
        Unsigned integer arrays of shape ``(length,)``, summed in the given order (the
        result does not depend on it).
    modulus_bits : int
        The ring is ``Z / 2**modulus_bits``, ``1 <= modulus_bits <= 64``.
    length : int
        Length of every vector, ``>= 0``.

    Returns
    -------
    numpy.ndarray
        Shape ``(length,)``, dtype uint64, values in ``[0, 2**modulus_bits)``.

    Raises
    ------
    ConfigError
        If a vector is not an unsigned integer array of shape ``(length,)``, `length` is
        negative or `modulus_bits` is outside ``[1, 64]``.
    """
    bits = _check_bits(modulus_bits)
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ConfigError("length", length, "an int >= 0")
    total = np.zeros(length, dtype=np.uint64)
    for index, vector in enumerate(vectors):
        if not isinstance(vector, np.ndarray) or vector.shape != (length,):
            shape = vector.shape if isinstance(vector, np.ndarray) else type(vector).__name__
            raise ConfigError(f"vectors[{index}]", shape, f"an array of shape ({length},)")
        np.add(total, _operand(vector, f"vectors[{index}]", bits), out=total)
    np.bitwise_and(total, _mask_of(bits), out=total)
    return total
