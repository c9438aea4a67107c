"""The coordinator's differential-privacy side: plan, budget check, private aggregate, charge.

Check-then-commit: before a round selects anyone, the DP event it would cost is composed
with every event already in the ledger; if the total would exceed the run's epsilon,
:class:`~heliosfl.errors.PrivacyBudgetExhausted` is raised and no node trains. The event of
a committed round is written to the workspace in the same transaction as the round.

What the guarantee covers: the released models (every checkpoint). With privacy on, the
round records carry no per-node losses or metrics and no aggregated training loss (those
would be releases outside the accounting), and nodes are not asked to evaluate models on
their own data; validation figures come only from the coordinator's ``validation_data``.
The record still names the nodes that were sampled: that is operator-side information,
and amplification by sampling (``random(k)``) assumes it stays with the operator.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.config import Config, DifferentialPrivacyConfig
from heliosfl.privacy.aggregate import private_mean
from heliosfl.privacy.budget import PrivacyLedger, PrivacyPlan, plan_run
from heliosfl.privacy.events import SamplingScheme
from heliosfl.privacy.noise import gaussian_noise, laplace_noise
from heliosfl.seeding import Stream, rng_for
from heliosfl.strategies import Strategy

__all__ = ["PrivateRounds"]

FloatArray = npt.NDArray[np.float64]

#: Key of the adaptive clip norm in the checkpointed aggregation state.
CLIP_STATE_KEY = "dp_clip_norm"


class PrivateRounds:
    """Differential privacy for one model's rounds.

    Parameters
    ----------
    config : Config
        The run's configuration (``enable_privacy`` must be on).
    model_id : str
        The model.
    entries : sequence of dict
        The model's privacy ledger as stored in the workspace (empty for a new model).
    """

    def __init__(self, config: Config, model_id: str, entries: Sequence[Mapping[str, Any]]) -> None:
        privacy = config.privacy_config
        assert privacy is not None  # Config guarantees it when enable_privacy  # noqa: S101
        self.config = config
        self.privacy: DifferentialPrivacyConfig = privacy
        self.model_id = model_id
        self.ledger = PrivacyLedger(
            privacy.epsilon, privacy.delta, privacy.accountant, [dict(e) for e in entries]
        )
        self.plan: PrivacyPlan | None = None
        if self.ledger.entries:  # a resumed run keeps the plan it was charged under
            first = self.ledger.entries[0]
            count = first.get("count_noise_multiplier")
            self.plan = PrivacyPlan(
                config=privacy,
                noise_multiplier=float(first["noise_multiplier"]),
                sampling=SamplingScheme(first["sampling"]),
                denominator=int(first["denominator"]),
                count_noise_multiplier=None if count is None else float(count),
                deterministic_subset=bool(first.get("deterministic_subset", False)),
            )
        self._pending: tuple[int, Any, float] | None = None

    def spent(self) -> tuple[float, float]:
        """``(epsilon, delta)`` spent by the committed rounds."""
        return self.ledger.spent(), self.privacy.delta

    def check(self, round_number: int, available: int) -> None:
        """Plan the run if needed and refuse a round that would overspend.

        Raises
        ------
        PrivacyBudgetExhausted
            If the round's event would take the spent epsilon past the budget.
        """
        if self.plan is None:
            self.plan = plan_run(
                self.privacy,
                self.config.round_config.selection_strategy,
                available=available,
                rounds=self.config.round_config.max_rounds,
            )
        event = self.plan.round_event(available)
        epsilon_after = self.ledger.check(event)
        self._pending = (round_number, event, epsilon_after)

    def is_checked(self, round_number: int) -> bool:
        """True if :meth:`check` already admitted this round."""
        return self._pending is not None and self._pending[0] == round_number

    def aggregate(
        self,
        params: FloatArray,
        deltas: Sequence[FloatArray],
        state: Mapping[str, FloatArray],
        strategy: Strategy,
        *,
        round_number: int,
        attempt: int,
    ) -> tuple[FloatArray, dict[str, FloatArray], dict[str, Any]]:
        """The private aggregate of a round, the new strategy state, and its ledger entry.

        The strategy sees the noisy mean as a single update (post-processing: it costs no
        privacy), so FedOpt's server optimisers work unchanged.
        """
        assert self.plan is not None and self.is_checked(round_number)  # noqa: S101
        _, event, epsilon_after = self._pending  # type: ignore[misc]
        clip = float(state.get(CLIP_STATE_KEY, np.array([self.privacy.clip_norm]))[0])
        rng = self._noise_rng(round_number, attempt)
        mean, next_clip = private_mean(deltas, self.plan, clip_norm=clip, rng=rng)
        inner = {k: v for k, v in state.items() if k != CLIP_STATE_KEY}
        new_params, new_state = strategy.aggregate(params, [mean], [1.0], inner)
        new_state = {**new_state, CLIP_STATE_KEY: np.array([next_clip])}
        return new_params, new_state, self._entry(event, epsilon_after, clip, len(deltas))

    def aggregate_sum(
        self,
        params: FloatArray,
        clipped_sum: FloatArray,
        participants: int,
        state: Mapping[str, FloatArray],
        strategy: Strategy,
        *,
        round_number: int,
        attempt: int,
        noise_added: bool,
        secure: bool = True,
    ) -> tuple[FloatArray, dict[str, FloatArray], dict[str, Any]]:
        """The private aggregate of a round from the sum of its clipped updates.

        For a secure round (`secure`), the sum the protocol unmasked: the nodes clipped
        their updates (to the clip norm, with room for rounding) before masking, so
        `clipped_sum` has the sensitivity the event assumes. Otherwise the sum a streamed
        round took (:class:`~heliosfl.accumulate.RoundSum`, updates clipped to this
        round's clip norm as :meth:`aggregate` clips them), whose state then carries the
        clip norm as :meth:`aggregate`'s does. Central noise of scale ``z * C`` is added
        here; with ``noise_added`` (distributed noise) the nodes already added theirs.
        Then the sum is divided by the fixed denominator, as in :meth:`aggregate`, and
        charged with the same event.
        """
        assert self.plan is not None and self.is_checked(round_number)  # noqa: S101
        _, event, epsilon_after = self._pending  # type: ignore[misc]
        clip = float(self.privacy.clip_norm)
        if not secure:  # the clip norm the round's updates were clipped to
            clip = float(state.get(CLIP_STATE_KEY, np.array([clip]))[0])
            state = {k: v for k, v in state.items() if k != CLIP_STATE_KEY}
        total = np.asarray(clipped_sum, dtype=np.float64)
        if not noise_added:
            rng = self._noise_rng(round_number, attempt)
            scale = self.plan.noise_multiplier * clip
            draw = gaussian_noise if self.privacy.mechanism.value == "gaussian" else laplace_noise
            total = total + draw(total.shape, scale, rng)
        mean = total / self.plan.denominator
        new_params, new_state = strategy.aggregate(params, [mean], [1.0], dict(state))
        if not secure:
            new_state = {**new_state, CLIP_STATE_KEY: np.array([clip])}
            return new_params, new_state, self._entry(event, epsilon_after, clip, participants)
        placement = "distributed" if noise_added else "central"
        entry = self._entry(event, epsilon_after, clip, participants, secure_aggregation=placement)
        return new_params, new_state, entry

    def _entry(
        self, event: Any, epsilon_after: float, clip: float, participants: int, **extra: str
    ) -> dict[str, Any]:
        """The ledger entry of a round: its event and the plan it was charged under."""
        assert self.plan is not None  # noqa: S101
        return self.ledger.entry(
            event,
            epsilon_after,
            noise_multiplier=self.plan.noise_multiplier,
            sampling=self.plan.sampling.value,
            denominator=self.plan.denominator,
            count_noise_multiplier=self.plan.count_noise_multiplier,
            deterministic_subset=int(self.plan.deterministic_subset),
            clip_norm=clip,
            participants=participants,
            **extra,
        )

    def _noise_rng(self, round_number: int, attempt: int) -> np.random.Generator:
        """The round's noise stream: OS entropy unless ``reproducible_noise`` (teaching)."""
        if self.privacy.reproducible_noise:
            return rng_for(
                self.config.seed, Stream.NOISE, self.model_id, round_number, attempt=attempt
            )
        return np.random.default_rng(secrets.randbits(128))

    def charge(self, entry: Mapping[str, Any]) -> None:
        """Record a committed round's entry (after the workspace commit)."""
        self.ledger.charge(entry)
        self._pending = None
