"""Noise for the private aggregate, drawn from an explicit generator.

The noisy mean of one DP-FedAvg round is

    (sum_i u_i + noise) / m,    noise ~ N(0, (z C)^2 I)  or  Laplace(0, z C) per coordinate,

over the clipped updates ``u_i`` (``||u_i||_2 <= C`` for Gaussian, ``||u_i||_1 <= C`` for
Laplace), with unit weights and a denominator ``m`` fixed before the run (the expected
number of participants). Unit weights: a sample-count weight would let one client's
contribution exceed ``C``. A fixed ``m``: dividing by the realised count would let one
client change the scale of everyone's contribution. The sum then has sensitivity ``C``
under add/remove-one-client (``2 C`` under replace-one); dividing by the public ``m`` is
post-processing.

Noise comes from numpy's ``Generator`` (PCG64 by default) in double precision. Like
every numpy-based implementation, it is not hardened against floating-point attacks on
the noise's low-order bits (Mironov, CCS 2012); the guarantee is that of the ideal
real-valued mechanism.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ConfigError
from heliosfl.privacy.clipping import l1_norm, l2_norm
from heliosfl.privacy.events import mechanism_name
from heliosfl.validation import check_float

__all__ = ["gaussian_noise", "laplace_noise", "noisy_mean"]

FloatArray = npt.NDArray[np.float64]


def _shape(shape: object) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, int) else shape
    allowed = "an int >= 0 or a tuple of them"
    if isinstance(dims, tuple) and all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0 for d in dims
    ):
        return tuple(int(d) for d in dims)
    raise ConfigError("shape", shape, allowed)


def _generator(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("rng", rng, "a numpy.random.Generator (np.random.default_rng(seed))")
    return rng


def gaussian_noise(
    shape: int | tuple[int, ...], std: float, rng: np.random.Generator
) -> FloatArray:
    """Independent ``N(0, std**2)`` draws of ``shape`` from ``rng``.

    Raises
    ------
    ConfigError
        For ``std`` that is not a finite number >= 0, or ``rng`` not a Generator.
    """
    sigma = check_float("std", std, low=0.0, low_open=False)
    return _generator(rng).normal(0.0, sigma, size=_shape(shape))


def laplace_noise(
    shape: int | tuple[int, ...], scale: float, rng: np.random.Generator
) -> FloatArray:
    """Independent ``Laplace(0, scale)`` draws (variance ``2 scale**2``) of ``shape``.

    Raises
    ------
    ConfigError
        For ``scale`` that is not a finite number >= 0, or ``rng`` not a Generator.
    """
    b = check_float("scale", scale, low=0.0, low_open=False)
    return _generator(rng).laplace(0.0, b, size=_shape(shape))


def noisy_mean(
    clipped_updates: Sequence[npt.ArrayLike],
    *,
    mechanism: str,
    noise_multiplier: float,
    clip_norm: float,
    denominator: float,
    rng: np.random.Generator,
) -> FloatArray:
    """The DP-FedAvg aggregate ``(sum_i u_i + noise) / denominator`` (module docstring).

    Guarantee: with the updates clipped as required, releasing the result is the
    Gaussian (or Laplace) mechanism with noise multiplier ``noise_multiplier`` on a sum
    of sensitivity ``C`` (add/remove-one) and costs what
    :func:`~heliosfl.privacy.round_event` charges. The updates are checked, not trusted.

    Parameters
    ----------
    clipped_updates : sequence of array_like
        At least one update, all of one shape, in a fixed order (node-id order), each
        with norm at most ``clip_norm`` (:func:`clip_l2` / :func:`clip_l1`).
    mechanism : {"gaussian", "laplace"}
        Gaussian noise of standard deviation ``z * C`` per coordinate (L2 bound), or
        Laplace noise of scale ``b = z * C`` (L1 bound; ``z = b / C``).
    noise_multiplier : float
        ``z >= 0``; 0 adds no noise (for tests and non-private baselines only).
    clip_norm : float
        ``C > 0``, the bound the updates were clipped to.
    denominator : float
        ``m >= 1``, fixed before the run: the expected number of participants.
    rng : numpy.random.Generator
        The round's noise stream.

    Returns
    -------
    ndarray of float64
        The noisy mean, of the updates' shape.

    Raises
    ------
    ConfigError
        For no updates, mismatched shapes, non-finite entries, an update above the clip
        norm, or an argument outside its domain.

    References
    ----------
    McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language
    Models", ICLR 2018 (the fixed-denominator estimator).
    """
    mech = mechanism_name(mechanism)
    z = check_float("noise_multiplier", noise_multiplier, low=0.0, low_open=False)
    bound = check_float("clip_norm", clip_norm, low=0.0)
    m = check_float("denominator", denominator, low=1.0, low_open=False)
    generator = _generator(rng)
    arrays = [np.asarray(update, dtype=np.float64) for update in clipped_updates]
    if not arrays:
        raise ConfigError("clipped_updates", [], "at least one update")
    measure = l2_norm if mech == "gaussian" else l1_norm
    kind = "L2" if mech == "gaussian" else "L1"
    for index, array in enumerate(arrays):
        if array.shape != arrays[0].shape:
            raise ConfigError(f"clipped_updates[{index}].shape", array.shape, f"{arrays[0].shape}")
        if not np.all(np.isfinite(array)):
            raise ConfigError(f"clipped_updates[{index}]", "non-finite entries", "all finite")
        norm = measure(array)
        if norm > bound:
            raise ConfigError(
                f"clipped_updates[{index}] {kind} norm",
                norm,
                f"at most clip_norm={bound:g}",
                f"Clip with clip_{kind.lower()} first; unclipped updates void the guarantee.",
            )
    total = arrays[0].copy()
    for array in arrays[1:]:  # in the given order: the same sum on every backend
        total += array
    scale = z * bound
    if scale > 0.0:
        draw = gaussian_noise if mech == "gaussian" else laplace_noise
        total = total + draw(total.shape, scale, generator)
    return total / m
