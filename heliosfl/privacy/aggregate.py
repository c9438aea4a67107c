"""The private aggregate of one round: clip every update, sum, add noise, fix the scale."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from heliosfl.config import NoiseMechanism
from heliosfl.privacy.adaptive import noisy_unclipped_fraction, update_clip_norm
from heliosfl.privacy.budget import PrivacyPlan
from heliosfl.privacy.clipping import clip_l1, clip_l2
from heliosfl.privacy.noise import noisy_mean

__all__ = ["private_mean"]

FloatArray = npt.NDArray[np.float64]


def private_mean(
    deltas: Sequence[FloatArray],
    plan: PrivacyPlan,
    *,
    clip_norm: float,
    rng: np.random.Generator,
) -> tuple[FloatArray, float]:
    """The noisy mean update of one DP-FedAvg round, and the next round's clip norm.

    Every delta is clipped to ``clip_norm`` (L2 for Gaussian noise, L1 for Laplace); the
    clipped deltas are summed with equal weights (sample counts are deliberately not used:
    a weight would let one node's contribution exceed the clip norm and break the
    sensitivity bound); noise of scale ``plan.noise_multiplier * clip_norm`` is added to
    the sum; the result is divided by ``plan.denominator``, the expected number of
    participants fixed before the run, so no single node changes the scale. With adaptive
    clipping, the fraction of nodes whose update norm was within the clip norm is
    released with Gaussian noise of standard deviation ``plan.count_noise_multiplier``
    and moves the clip norm geometrically toward the target quantile (Andrew et al. 2021).

    Parameters
    ----------
    deltas : sequence of ndarray
        The participants' updates, in node-id order.
    plan : PrivacyPlan
        Mechanism, noise multiplier, denominator.
    clip_norm : float
        This round's clip norm ``C``.
    rng : numpy.random.Generator
        The round's noise stream.

    Returns
    -------
    tuple of (ndarray, float)
        The noisy mean update, and the clip norm for the next round (unchanged without
        adaptive clipping).

    References
    ----------
    McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language
    Models", ICLR 2018. Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private
    Learning with Adaptive Clipping", NeurIPS 2021.
    """
    laplace = plan.config.mechanism is NoiseMechanism.LAPLACE
    clip = clip_l1 if laplace else clip_l2
    clipped, norms = [], []
    for delta in deltas:
        bounded, norm = clip(delta, clip_norm)
        clipped.append(bounded)
        norms.append(norm)
    mean = noisy_mean(
        clipped,
        mechanism=plan.config.mechanism.value,
        noise_multiplier=plan.noise_multiplier,
        clip_norm=clip_norm,
        denominator=plan.denominator,
        rng=rng,
    )
    next_clip = clip_norm
    if plan.count_noise_multiplier is not None:
        fraction = noisy_unclipped_fraction(
            np.asarray(norms),
            clip_norm,
            count_noise_std=plan.count_noise_multiplier,
            denominator=plan.denominator,
            rng=rng,
        )
        next_clip = update_clip_norm(
            clip_norm,
            fraction,
            target_quantile=plan.config.target_quantile,
            learning_rate=plan.config.clip_learning_rate,
        )
    return mean, float(next_clip)
