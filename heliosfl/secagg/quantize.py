"""Fixed-point quantisation of float updates into the ring ``Z / 2**modulus_bits``.

A coordinate ``x`` is clipped to ``[-r, r]`` (``r`` = `clip_range`), mapped affinely to
``[0, L]`` with ``L = 2**quantization_bits - 1`` levels, and rounded stochastically: up
with probability equal to the fractional part, down otherwise. The expected dequantised
value is therefore exactly the clipped ``x`` (unbiased), and each rounding moves a value
by less than one level, ``step = 2r / L``.

An integer weight ``w`` is folded in by multiplying the level by ``w``, so the ring sum of
the encodings of ``n`` inputs is ``sum_i w_i q_i``. It equals the integer sum, and
:meth:`Quantizer.decode_mean` recovers the weighted mean, only if that sum stays below
``2**modulus_bits``; :meth:`Quantizer.check_capacity` refuses configurations where it
could wrap. Error bound when it does not wrap: per coordinate,
``|decode_mean - weighted mean of clipped inputs| < step`` (a weighted mean of errors
each below one step), up to float64 rounding.

The rounding randomness is not secret and comes from the caller's
``numpy.random.Generator``; secrecy comes from the masks added afterwards.

References
----------
K. Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
Learning", ACM CCS 2017. J. Bell et al., "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead", ACM CCS 2020.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heliosfl.errors import ConfigError

__all__ = ["Quantizer"]

_MAX_WEIGHT = 2**32


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Quantizer:
    """Stochastic fixed-point encoder of float vectors into ``Z / 2**modulus_bits``.

    Parameters
    ----------
    clip_range : float
        ``r``: every coordinate is clipped to ``[-r, r]``; finite and ``> 0``.
    quantization_bits : int
        ``1 <= quantization_bits <= 32``; there are ``L = 2**quantization_bits - 1``
        levels.
    modulus_bits : int
        The ring is ``Z / 2**modulus_bits``, ``quantization_bits < modulus_bits <= 64``.

    Raises
    ------
    ConfigError
        If a field is outside its range (the error names the field).
    """

    clip_range: float
    quantization_bits: int
    modulus_bits: int

    def __post_init__(self) -> None:
        r = self.clip_range
        if not isinstance(r, int | float) or isinstance(r, bool) or not math.isfinite(r):
            raise ConfigError("clip_range", r, "a finite number > 0")
        if r <= 0:
            raise ConfigError("clip_range", r, "a finite number > 0")
        object.__setattr__(self, "clip_range", float(r))
        qb, mb = self.quantization_bits, self.modulus_bits
        if not _is_int(qb) or not 1 <= qb <= 32:
            raise ConfigError("quantization_bits", qb, "an int in [1, 32]")
        if not _is_int(mb) or not qb < mb <= 64:
            raise ConfigError("modulus_bits", mb, f"an int in (quantization_bits={qb}, 64]")

    @property
    def levels(self) -> int:
        """``L = 2**quantization_bits - 1``, the largest level."""
        return int(2**self.quantization_bits - 1)

    @property
    def step(self) -> float:
        """``2 * clip_range / L``, the width of one level in the input's units."""
        return 2.0 * self.clip_range / self.levels

    def encode(
        self, x: ArrayLike, rng: np.random.Generator, *, weight: int = 1
    ) -> NDArray[np.uint64]:
        """Clip, quantise stochastically and weight `x`; values in ``[0, 2**modulus_bits)``.

        Parameters
        ----------
        x : array_like
            Float vector (any shape; the output has the same shape).
        rng : numpy.random.Generator
            Source of the (non-secret) stochastic rounding.
        weight : int, default 1
            Integer weight, ``1 <= weight <= 2**32``, multiplied into every level.

        Returns
        -------
        numpy.ndarray
            ``weight * q mod 2**modulus_bits`` with ``q`` in ``[0, L]`` and
            ``E[q] = (clip(x) + r) / (2r) * L``.

        Raises
        ------
        ConfigError
            If `x` holds a non-finite value, `rng` is not a Generator, `weight` is out of
            range, or ``weight * L >= 2**modulus_bits`` (even one input would wrap).
        """
        values = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            bad = int(np.count_nonzero(~np.isfinite(values)))
            raise ConfigError("x", f"<{bad} non-finite values>", "finite numbers")
        if not isinstance(rng, np.random.Generator):
            raise ConfigError("rng", type(rng).__name__, "a numpy.random.Generator")
        if not _is_int(weight) or not 1 <= weight <= _MAX_WEIGHT:
            raise ConfigError("weight", weight, "an int in [1, 2**32]")
        self.check_capacity(1, weight)
        r, levels = self.clip_range, float(self.levels)
        scaled = (np.clip(values, -r, r) + r) / (2.0 * r) * levels
        np.clip(scaled, 0.0, levels, out=scaled)
        floor = np.floor(scaled)
        up = rng.random(scaled.shape) < (scaled - floor)
        quantized = floor.astype(np.uint64)
        np.add(quantized, up.astype(np.uint64), out=quantized)
        np.multiply(quantized, np.uint64(weight), out=quantized)  # < 2**64: q <= 2**32 - 1
        np.bitwise_and(quantized, np.uint64((1 << self.modulus_bits) - 1), out=quantized)
        return quantized

    def _dequantize_total(self, total: NDArray[Any]) -> NDArray[np.float64]:
        if not isinstance(total, np.ndarray) or total.dtype.kind != "u":
            shown = total.dtype if isinstance(total, np.ndarray) else type(total).__name__
            raise ConfigError("total", shown, "an unsigned int array (a ring sum)")
        return total.astype(np.float64)

    def decode_mean(self, total: NDArray[Any], weight_sum: int) -> NDArray[np.float64]:
        """Weighted mean of the dequantised inputs whose encodings sum to `total`.

        Returns ``(total / weight_sum) / L * 2r - r``: exact in expectation for the
        weighted mean of the clipped inputs and within one `step` of it, provided the ring
        sum did not wrap (:meth:`check_capacity`).

        Raises
        ------
        ConfigError
            If `total` is not an unsigned int array or `weight_sum` is not an int >= 1.
        """
        if not _is_int(weight_sum) or weight_sum < 1:
            raise ConfigError("weight_sum", weight_sum, "an int >= 1")
        r = self.clip_range
        mean_level = self._dequantize_total(total) / float(weight_sum)
        result: NDArray[np.float64] = mean_level / self.levels * (2.0 * r) - r
        return result

    def decode_sum(self, total: NDArray[Any], count: int) -> NDArray[np.float64]:
        """Sum of `count` dequantised unweighted inputs: ``total / L * 2r - count * r``.

        Raises
        ------
        ConfigError
            If `total` is not an unsigned int array or `count` is not an int >= 0.
        """
        if not _is_int(count) or count < 0:
            raise ConfigError("count", count, "an int >= 0")
        r = self.clip_range
        result: NDArray[np.float64] = (
            self._dequantize_total(total) / self.levels * (2.0 * r) - count * r
        )
        return result

    def check_capacity(self, num_clients: int, max_weight: int = 1, *, headroom: int = 0) -> None:
        """Refuse a round whose ring sum could wrap ``2**modulus_bits``.

        The largest possible sum is ``num_clients * max_weight * L + headroom``; it must be
        below ``2**modulus_bits``.

        Parameters
        ----------
        num_clients : int
            Number of inputs summed, ``>= 1``.
        max_weight : int, default 1
            Largest weight any input carries, ``1 <= max_weight <= 2**32``.
        headroom : int, default 0
            Extra integer range to reserve (e.g. for integer noise), ``>= 0``.

        Raises
        ------
        ConfigError
            Field ``secure_aggregation.modulus_bits``, naming the number of clients, the
            weight, the bits needed and the bits available, if the sum could wrap (or an
            argument is out of range).
        """
        if not _is_int(num_clients) or num_clients < 1:
            raise ConfigError("num_clients", num_clients, "an int >= 1")
        if not _is_int(max_weight) or not 1 <= max_weight <= _MAX_WEIGHT:
            raise ConfigError("max_weight", max_weight, "an int in [1, 2**32]")
        if not _is_int(headroom) or headroom < 0:
            raise ConfigError("headroom", headroom, "an int >= 0")
        largest = num_clients * max_weight * self.levels + headroom
        if largest >= 2**self.modulus_bits:
            needed = largest.bit_length()
            raise ConfigError(
                "secure_aggregation.modulus_bits",
                self.modulus_bits,
                f">= {needed} so that {num_clients} clients with weights up to {max_weight} "
                f"at quantization_bits={self.quantization_bits} cannot wrap the ring "
                f"(n * weight * L + headroom = {largest} needs {needed} bits; "
                f"{self.modulus_bits} available)",
                "Raise modulus_bits (at most 64), lower quantization_bits, cap the weights, "
                "or aggregate fewer clients per round.",
            )
