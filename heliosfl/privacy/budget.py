"""A run's privacy plan and its ledger: check-then-commit accounting of the budget.

The plan fixes, before the first round, everything the accountant must know: the
mechanism, the noise multiplier (calibrated so that ``max_rounds`` rounds fit the budget,
or given), the clip norm, how participants are sampled and the fixed denominator of the
noisy mean. The ledger holds the DP event of every committed round; the budget spent is
always recomputed from the whole sequence with dp-accounting, never summed by hand. A
round is checked against the budget before any node trains, and its event is written to
the workspace in the same transaction as the round itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from heliosfl.config import DifferentialPrivacyConfig, NodeSelectionStrategy, SelectionKind
from heliosfl.errors import ConfigError, PrivacyBudgetExhausted
from heliosfl.privacy.accountant import calibrate_noise, epsilon_of
from heliosfl.privacy.adaptive import AdaptiveClipping
from heliosfl.privacy.events import SamplingScheme, event_from_dict, event_to_dict, round_event

__all__ = ["ADAPTIVE_COUNT_SHARE", "PrivacyLedger", "PrivacyPlan", "plan_run"]

#: Share of the privacy (in units of noise multiplier**-2) that adaptive clipping's
#: clipped-count query takes; the update query gets the rest. Andrew et al. (2021) use a
#: count noise of m/20 for m clients per round, a similar share for hundreds of clients.
ADAPTIVE_COUNT_SHARE = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacyPlan:
    """Everything a DP round needs, fixed before the run.

    Attributes
    ----------
    config : DifferentialPrivacyConfig
        The budget and mechanism.
    noise_multiplier : float
        ``z``: Gaussian noise of standard deviation ``z * C`` on the sum (Laplace: scale
        ``z * C``). With adaptive clipping, the update query's share of the calibrated
        multiplier.
    sampling : SamplingScheme
        ``without_replacement`` for ``random(k)``; ``none`` otherwise.
    denominator : int
        The expected number of participants; the noisy sum is divided by it.
    count_noise_multiplier : float or None
        Standard deviation of the noise on the adaptive-clipping count (sensitivity 1).
    deterministic_subset : bool
        ``most_data(k)`` with fewer than all nodes: the sum's sensitivity is ``2C``.
    """

    config: DifferentialPrivacyConfig
    noise_multiplier: float
    sampling: SamplingScheme
    denominator: int
    count_noise_multiplier: float | None = None
    deterministic_subset: bool = False

    def round_event(self, population: int) -> Any:
        """The DP event of one round with ``population`` available nodes (the current ones).

        ``random(k)`` samples ``min(k, population)`` of them without replacement.
        """
        if self.sampling is SamplingScheme.WITHOUT_REPLACEMENT:
            population = max(population, 1)
            return round_event(
                self.noise_multiplier,
                mechanism=self.config.mechanism.value,
                sampling=self.sampling,
                population=population,
                sample_size=min(self.denominator, population),
                count_noise_multiplier=self.count_noise_multiplier,
            )
        return round_event(
            self.noise_multiplier,
            mechanism=self.config.mechanism.value,
            sampling=SamplingScheme.NONE,
            count_noise_multiplier=self.count_noise_multiplier,
            deterministic_subset=self.deterministic_subset,
        )


def plan_run(
    config: DifferentialPrivacyConfig,
    selection: NodeSelectionStrategy,
    *,
    available: int,
    rounds: int,
) -> PrivacyPlan:
    """Plan a DP run: sampling, denominator and the noise multiplier.

    Parameters
    ----------
    config : DifferentialPrivacyConfig
        Budget, mechanism, clip norm, optional fixed noise multiplier.
    selection : NodeSelectionStrategy
        ``random(k)`` is sampling without replacement of ``k`` of the available nodes
        (amplification applies); ``all()`` and ``most_data(k)`` are not random and get
        none. ``best_performance(k)`` depends on private validation results and is refused.
    available : int
        Nodes available when the run starts.
    rounds : int
        Rounds the budget must cover (``max_rounds``).

    Notes
    -----
    Calibration assumes the nodes available now stay available. Each round is charged
    with the event of the nodes available then, so if nodes leave, ``random(k)``'s
    sampling rate rises, rounds cost more, and the budget may run out before
    ``max_rounds`` -- a round is then refused, never overspent.

    Raises
    ------
    ConfigError
        For ``best_performance(k)``, or when no node is available.
    """
    if selection.kind is SelectionKind.BEST_PERFORMANCE:
        raise ConfigError(
            "round_config.selection_strategy",
            "best_performance",
            "all(), random(k) or most_data(k) with differential privacy",
            "best_performance picks nodes by their private validation results, which the "
            "privacy accounting does not cover.",
        )
    if available < 1:
        raise ConfigError("available nodes", available, "at least 1 to plan a private run")
    k = selection.k
    if selection.kind is SelectionKind.RANDOM and k is not None:
        # Always charged as sampling without replacement (replace-one, z/2), even while
        # k >= the nodes available: nodes may join later, and a ledger must not mix
        # neighbouring relations. With k >= n the event is sampling with rate 1.
        sampling, denominator = SamplingScheme.WITHOUT_REPLACEMENT, k
    else:
        sampling = SamplingScheme.NONE
        denominator = available if k is None else k
    # most_data(k): adding one node can push another out of the top k, so the sum's
    # sensitivity is 2C even under add/remove-one -- at any time, since nodes may join.
    deterministic = selection.kind is SelectionKind.MOST_DATA
    wor = sampling is SamplingScheme.WITHOUT_REPLACEMENT
    settings: dict[str, Any] = {
        "epsilon": config.epsilon,
        "delta": config.delta,
        "rounds": rounds,
        "sampling_rate": denominator / max(available, denominator) if wor else 1.0,
        "sampling": sampling.value,
        "accountant": config.accountant,
        "mechanism": config.mechanism.value,
        "population": max(available, denominator),
        "deterministic_subset": deterministic,
    }
    count_noise = None
    if config.adaptive_clipping:
        # The clipped-count query (sensitivity 1) gets noise m/10 (Andrew et al.'s m/20 on
        # their centred count), and never less than the share ADAPTIVE_COUNT_SHARE of the
        # run's privacy, so that few participants do not let the count eat the budget.
        total = config.noise_multiplier or calibrate_noise(**settings)
        paper = AdaptiveClipping.for_expected_clients(denominator).count_noise_multiplier
        count_noise = max(paper, total / math.sqrt(ADAPTIVE_COUNT_SHARE))
    z = config.noise_multiplier
    if z is None:
        z = calibrate_noise(**settings, count_noise_multiplier=count_noise)
    return PrivacyPlan(
        config=config,
        noise_multiplier=float(z),
        sampling=sampling,
        denominator=denominator,
        count_noise_multiplier=count_noise,
        deterministic_subset=deterministic,
    )


@dataclass(slots=True)
class PrivacyLedger:
    """The DP events of a model's committed rounds, and its budget.

    Parameters
    ----------
    epsilon, delta : float
        The run's total budget.
    accountant : str
        ``"rdp"`` or ``"pld"``.
    entries : sequence of dict
        Stored entries (:meth:`entry` output) of committed rounds, in round order.
    """

    epsilon: float
    delta: float
    accountant: str = "rdp"
    entries: list[dict[str, Any]] = field(default_factory=list)

    def _events(self) -> list[Any]:
        return [event_from_dict(e["event"]) for e in self.entries]

    def spent(self) -> float:
        """Epsilon spent so far (at the run's delta); 0 before the first round."""
        if not self.entries:
            return 0.0
        return float(epsilon_of(self._events(), self.delta, accountant=self.accountant))

    def check(self, event: Any) -> float:
        """Epsilon after one more round with ``event``; refuse if it exceeds the budget.

        Raises
        ------
        PrivacyBudgetExhausted
            With the epsilon spent, what this round would bring it to, and the budget.
        """
        after = float(epsilon_of([*self._events(), event], self.delta, accountant=self.accountant))
        if after > self.epsilon or math.isnan(after):
            raise PrivacyBudgetExhausted(self.spent(), after, self.epsilon, self.delta)
        return after

    def entry(
        self, event: Any, epsilon_after: float, **facts: float | int | str | None
    ) -> dict[str, Any]:
        """The JSON entry that charges ``event`` (written with the round's commit)."""
        return {
            "event": event_to_dict(event),
            "epsilon": epsilon_after,
            "delta": self.delta,
            **facts,
        }

    def charge(self, entry: Mapping[str, Any]) -> None:
        """Record a committed entry in memory (after the workspace commit)."""
        self.entries.append(dict(entry))
