"""Shamir secret sharing of byte strings over the prime field GF(2**521 - 1).

A secret of 1 to 64 bytes is read as a big-endian integer ``s < 2**512 < PRIME`` and
becomes the constant term of a polynomial ``f`` of degree ``threshold - 1`` whose other
coefficients are drawn uniformly from the field with :func:`secrets.randbelow`. The share
of the party at ``x`` (``1 <= x < PRIME``) is ``f(x) mod PRIME``.

Guarantees, for shares made by :func:`split_secret` and kept secret by their holders:

- any ``threshold`` shares determine ``f`` and hence the secret (Lagrange interpolation);
- any ``threshold - 1`` shares are uniformly distributed and independent of the secret,
  so they reveal nothing about it, information-theoretically: for every candidate secret
  exactly one polynomial of degree ``threshold - 1`` passes through them;
- :func:`combine_shares` detects modified shares whenever at least ``threshold`` of the
  shares it is given are genuine and at least one is not (the genuine ones fix ``f`` and
  a modified one lies off it). With exactly ``threshold`` shares, or with fewer than
  ``threshold`` genuine ones, a modification cannot be detected. Shares are not
  authenticated here: transport them with :func:`heliosfl.secagg.seal`.

Python integers are immutable, so the coefficients stay in memory until collected.

References
----------
A. Shamir, "How to Share a Secret", Communications of the ACM 22(11), 1979.
K. Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
Learning", ACM CCS 2017.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from heliosfl.errors import ConfigError, SecureAggregationError

__all__ = ["PRIME", "combine_shares", "decode_share", "encode_share", "split_secret"]

PRIME: int = 2**521 - 1
"""The field modulus, the Mersenne prime 2**521 - 1."""

_MAX_SECRET_BYTES = 64
_SHARE_BYTES = 66  # ceil(521 / 8)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Interpolator:
    """The polynomial of degree < t through t points, evaluated in O(t) per point.

    Lagrange form with the barycentric weights ``1 / prod_{m != j} (x_j - x_m)`` computed
    once (t modular inversions); each evaluation uses prefix and suffix products.
    """

    def __init__(self, points: list[tuple[int, int]]) -> None:
        self._xs = [x for x, _ in points]
        weighted = []
        for j, (xj, yj) in enumerate(points):
            denominator = 1
            for m, xm in enumerate(self._xs):
                if m != j:
                    denominator = denominator * (xj - xm) % PRIME
            weighted.append(yj * pow(denominator, -1, PRIME) % PRIME)
        self._weighted = weighted

    def __call__(self, at: int) -> int:
        diffs = [(at - x) % PRIME for x in self._xs]
        suffix = [1] * (len(diffs) + 1)
        for i in range(len(diffs) - 1, -1, -1):
            suffix[i] = suffix[i + 1] * diffs[i] % PRIME
        total, prefix = 0, 1
        for j, weighted in enumerate(self._weighted):
            total = (total + weighted * (prefix * suffix[j + 1] % PRIME)) % PRIME
            prefix = prefix * diffs[j] % PRIME
        return total


def split_secret(secret: bytes, *, threshold: int, xs: Sequence[int]) -> dict[int, int]:
    """Split `secret` into one share per point of `xs`; any `threshold` of them recover it.

    Parameters
    ----------
    secret : bytes
        1 to 64 bytes, read as a big-endian integer (so leading zero bytes are kept only
        through the `length` passed to :func:`combine_shares`).
    threshold : int
        Number of shares needed to reconstruct, ``1 <= threshold <= len(xs)``; fewer
        reveal nothing about the secret.
    xs : Sequence[int]
        Distinct evaluation points in ``[1, PRIME)``, one per share holder.

    Returns
    -------
    dict[int, int]
        ``{x: f(x) mod PRIME}`` for each ``x`` in `xs`, in the order of `xs`.

    Raises
    ------
    ConfigError
        If `secret` is not 1 to 64 bytes (its length is reported, never its bytes), `xs`
        holds a non-int, an out-of-range or a repeated point, or `threshold` is out of
        range.

    References
    ----------
    A. Shamir, "How to Share a Secret", Communications of the ACM 22(11), 1979.
    """
    if not isinstance(secret, bytes) or not 1 <= len(secret) <= _MAX_SECRET_BYTES:
        shown = f"<{len(secret)} bytes>" if isinstance(secret, bytes) else type(secret).__name__
        raise ConfigError("secret", shown, f"bytes of length 1 to {_MAX_SECRET_BYTES}")
    points = list(xs)
    for x in points:
        if not _is_int(x) or not 1 <= x < PRIME:
            raise ConfigError("xs", x, "ints in [1, PRIME) (PRIME = 2**521 - 1)")
    if len(set(points)) != len(points):
        raise ConfigError("xs", points, "distinct evaluation points")
    if not _is_int(threshold) or not 1 <= threshold <= len(points):
        raise ConfigError("threshold", threshold, f"an int in [1, len(xs)] = [1, {len(points)}]")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares: dict[int, int] = {}
    for x in points:
        value = 0
        for coefficient in reversed(coefficients):  # Horner
            value = (value * x + coefficient) % PRIME
        shares[x] = value
    return shares


def combine_shares(shares: Mapping[int, int], *, threshold: int, length: int) -> bytes:
    """Reconstruct the secret from at least `threshold` shares, checking any extra ones.

    The secret is interpolated at 0 from the `threshold` shares with the smallest ``x``;
    every further share must lie on the same polynomial.

    Parameters
    ----------
    shares : Mapping[int, int]
        ``{x: share}`` as made by :func:`split_secret` (possibly a subset).
    threshold : int
        The threshold the secret was split with, ``>= 1``.
    length : int
        Length in bytes of the secret, ``>= 1``; the result is big-endian and
        zero-padded to it.

    Returns
    -------
    bytes
        The secret, `length` bytes.

    Raises
    ------
    ConfigError
        If `threshold` or `length` is not an int ``>= 1``.
    SecureAggregationError
        If fewer than `threshold` shares are given, a point or value is outside the
        field, the extra shares are inconsistent with the others (a share was tampered
        with or belongs to another secret), or the result does not fit in `length` bytes.

    References
    ----------
    A. Shamir, "How to Share a Secret", Communications of the ACM 22(11), 1979.
    """
    if not _is_int(threshold) or threshold < 1:
        raise ConfigError("threshold", threshold, "an int >= 1")
    if not _is_int(length) or length < 1:
        raise ConfigError("length", length, "an int >= 1")
    if len(shares) < threshold:
        raise SecureAggregationError(
            f"Shamir reconstruction needs at least threshold={threshold} shares. "
            f"Found {len(shares)}."
        )
    for x, y in shares.items():
        if not (_is_int(x) and 1 <= x < PRIME and _is_int(y) and 0 <= y < PRIME):
            raise SecureAggregationError(
                f"Shamir shares must have points in [1, PRIME) and values in [0, PRIME). "
                f"Found a share at point {x!r} outside that range."
            )
    ordered = sorted(shares.items())
    polynomial = _Interpolator(ordered[:threshold])
    for x, y in ordered[threshold:]:
        if polynomial(x) != y:
            raise SecureAggregationError(
                f"Shamir shares are inconsistent: the share at point {x} does not lie on the "
                f"polynomial through the {threshold} shares with the smallest points, so at "
                "least one share was tampered with or belongs to another secret."
            )
    value = polynomial(0)
    if value.bit_length() > 8 * length:
        raise SecureAggregationError(
            f"The reconstructed secret must fit in length={length} bytes. Found "
            f"{(value.bit_length() + 7) // 8} bytes: the shares are wrong or tampered with."
        )
    return value.to_bytes(length, "big")


def encode_share(value: int) -> bytes:
    """Encode a share value as 66 big-endian bytes.

    Raises
    ------
    ConfigError
        If `value` is not an int in ``[0, PRIME)``.
    """
    if not _is_int(value) or not 0 <= value < PRIME:
        raise ConfigError("value", "<out of range>", "an int in [0, PRIME) (PRIME = 2**521 - 1)")
    return value.to_bytes(_SHARE_BYTES, "big")


def decode_share(data: bytes) -> int:
    """Decode 66 big-endian bytes made by :func:`encode_share`.

    Raises
    ------
    SecureAggregationError
        If `data` is not 66 bytes or encodes a value ``>= PRIME``.
    """
    if not isinstance(data, bytes | bytearray) or len(data) != _SHARE_BYTES:
        size = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
        raise SecureAggregationError(
            f"An encoded Shamir share must be {_SHARE_BYTES} bytes. Found {size}."
        )
    value = int.from_bytes(data, "big")
    if value >= PRIME:
        raise SecureAggregationError(
            "An encoded Shamir share must hold a value below PRIME = 2**521 - 1. Found a "
            "larger value: the share is corrupt."
        )
    return value
