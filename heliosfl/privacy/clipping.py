"""Client-level clipping: bound each update's norm so one client's influence is bounded.

The bound is exact in floating point, not merely up to rounding: the result's norm as
computed by :func:`l2_norm` / :func:`l1_norm` (the functions the noisy mean checks with)
never exceeds the clip norm. Those norms are computed after scaling by the largest
magnitude, so they neither overflow for huge entries nor lose precision for tiny ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ConfigError
from heliosfl.validation import check_float

__all__ = ["clip_l1", "clip_l2", "l1_norm", "l2_norm"]

FloatArray = npt.NDArray[np.float64]


def _as_update(update: npt.ArrayLike, name: str = "update") -> FloatArray:
    allowed = "an array of real numbers"
    try:
        raw = np.asarray(update)
        if raw.dtype.kind not in "biuf":  # str, object, complex (the cast would drop i)
            raise ConfigError(name, f"an array of dtype {raw.dtype}", allowed)
        array = np.array(raw, dtype=np.float64)  # always a copy
    except (ValueError, TypeError, OverflowError):
        raise ConfigError(name, f"a {type(update).__name__} of ragged rows", allowed) from None
    if not np.all(np.isfinite(array)):
        raise ConfigError(name, "an array with NaN or infinite entries", "all finite")
    return array


def _scaled_norm(update: FloatArray, power: int) -> tuple[float, float, float]:
    """``(m, r, m * r)``: largest magnitude ``m`` and the norm ``r`` of ``update / m``."""
    magnitudes = np.abs(update).ravel()
    top = float(magnitudes.max()) if magnitudes.size else 0.0
    if top == 0.0:
        return 0.0, 0.0, 0.0
    scaled = magnitudes / top
    inner = float(np.sum(scaled * scaled)) ** 0.5 if power == 2 else float(np.sum(scaled))
    return top, inner, top * inner


def l2_norm(update: npt.ArrayLike) -> float:
    """The Euclidean norm of ``update`` (all entries), safe from overflow and underflow."""
    return _scaled_norm(_as_update(update), 2)[2]


def l1_norm(update: npt.ArrayLike) -> float:
    """The sum of absolute values of ``update``, safe from overflow and underflow."""
    return _scaled_norm(_as_update(update), 1)[2]


def _clip(update: npt.ArrayLike, clip_norm: float, power: int) -> tuple[FloatArray, float]:
    bound = check_float("clip_norm", clip_norm, low=0.0)
    array = _as_update(update)
    top, inner, norm = _scaled_norm(array, power)
    if norm <= bound:
        return array, norm
    # (x / m) * (C / r): neither factor overflows, whatever the magnitudes.
    clipped = (array / top) * (bound / inner)
    measure: Callable[[FloatArray], float] = l2_norm if power == 2 else l1_norm
    step = 0
    while measure(clipped) > bound:  # rounding left it a few ulps above C
        if step < 4:
            clipped = np.nextafter(clipped, 0.0)
        else:  # never seen in practice; shrinks geometrically, reaches 0 by step 56
            clipped = clipped * (1.0 - math.ldexp(1.0, step - 56))
        step += 1
    return clipped, norm


def clip_l2(update: npt.ArrayLike, clip_norm: float) -> tuple[FloatArray, float]:
    """Scale ``update`` down to L2 norm at most ``clip_norm``.

    Computes ``x * C / max(||x||_2, C)``; the direction is kept and an update already
    within the bound is returned unchanged (as a copy).

    Parameters
    ----------
    update : array_like
        Finite parameter delta of any shape.
    clip_norm : float
        ``C``, a finite number > 0.

    Returns
    -------
    clipped : ndarray of float64
        A new array with ``l2_norm(clipped) <= clip_norm``, exactly, for every input.
    norm : float
        ``l2_norm(update)`` before clipping (``inf`` only if it exceeds the float range).

    Raises
    ------
    ConfigError
        For a non-finite entry or a ``clip_norm`` that is not a finite number > 0.

    References
    ----------
    McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language
    Models", ICLR 2018 (flat clipping of the client update).
    """
    return _clip(update, clip_norm, 2)


def clip_l1(update: npt.ArrayLike, clip_norm: float) -> tuple[FloatArray, float]:
    """Scale ``update`` down to L1 norm at most ``clip_norm`` (for the Laplace mechanism).

    Computes ``x * C / max(||x||_1, C)``, like :func:`clip_l2` with the L1 norm, the
    sensitivity the Laplace mechanism's scale is calibrated to.

    Parameters
    ----------
    update : array_like
        Finite parameter delta of any shape.
    clip_norm : float
        ``C``, a finite number > 0.

    Returns
    -------
    clipped : ndarray of float64
        A new array with ``l1_norm(clipped) <= clip_norm``, exactly, for every input.
    norm : float
        ``l1_norm(update)`` before clipping.

    Raises
    ------
    ConfigError
        For a non-finite entry or a ``clip_norm`` that is not a finite number > 0.
    """
    return _clip(update, clip_norm, 1)
