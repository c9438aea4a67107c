"""Client-level differential privacy for DP-FedAvg: clipping, noise, accounting.

Pure, synchronous functions of their inputs and an explicit ``numpy.random.Generator``;
accounting is Google's dp-accounting (RDP and PLD). A round clips every update
(:func:`clip_l2`, :func:`clip_l1`), sums them with unit weights, adds noise and divides
by a fixed denominator (:func:`noisy_mean`); its cost is the event of
:func:`round_event`, composed by :func:`epsilon_of`. :func:`compute_epsilon`,
:func:`calibrate_noise`, :func:`rounds_affordable` and :func:`epsilon_curve` answer the
projection questions with the same computation the ledger uses. Adaptive clipping
(Andrew et al. 2021) is in :mod:`heliosfl.privacy.adaptive`.

References
----------
McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language
Models", ICLR 2018. Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning
with Adaptive Clipping", NeurIPS 2021. Mironov, "Rényi Differential Privacy", CSF 2017.
"""

from __future__ import annotations

from heliosfl.privacy.accountant import (
    calibrate_noise,
    compute_epsilon,
    epsilon_curve,
    rounds_affordable,
)
from heliosfl.privacy.adaptive import (
    AdaptiveClipping,
    noisy_unclipped_fraction,
    split_noise_multiplier,
    update_clip_norm,
)
from heliosfl.privacy.aggregate import private_mean
from heliosfl.privacy.budget import PrivacyLedger, PrivacyPlan, plan_run
from heliosfl.privacy.clipping import clip_l1, clip_l2, l1_norm, l2_norm
from heliosfl.privacy.composition import epsilon_of
from heliosfl.privacy.events import (
    SamplingScheme,
    event_from_dict,
    event_to_dict,
    neighboring_relation,
    round_event,
)
from heliosfl.privacy.noise import gaussian_noise, laplace_noise, noisy_mean

__all__ = [
    "AdaptiveClipping",
    "PrivacyLedger",
    "PrivacyPlan",
    "SamplingScheme",
    "calibrate_noise",
    "clip_l1",
    "clip_l2",
    "compute_epsilon",
    "epsilon_curve",
    "epsilon_of",
    "event_from_dict",
    "event_to_dict",
    "gaussian_noise",
    "l1_norm",
    "l2_norm",
    "laplace_noise",
    "neighboring_relation",
    "noisy_mean",
    "noisy_unclipped_fraction",
    "plan_run",
    "private_mean",
    "round_event",
    "rounds_affordable",
    "split_noise_multiplier",
    "update_clip_norm",
]
