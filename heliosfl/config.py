"""Configuration of a federated training run.

Every config is a frozen, keyword-only dataclass validated on construction: an invalid
value raises :class:`~heliosfl.errors.ConfigError` naming the field, the value and what is
allowed. ``to_dict`` / ``from_dict`` round-trip through JSON. Numbers may be given as numpy
scalars and enum values as strings in any case; configs store builtin ``int`` / ``float``
and enum members, so ``to_dict`` is always JSON-serialisable.

Examples
--------
>>> import heliosfl as fl
>>> cfg = fl.Config(round_config=fl.RoundConfig(max_rounds=50, min_nodes_per_round=5,
...     selection_strategy=fl.NodeSelectionStrategy.random(k=20)))
>>> fl.Config.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from heliosfl.errors import ConfigError
from heliosfl.secagg.config import NoisePlacement, SecureAggregationConfig
from heliosfl.strategies import Strategy, strategy_from_dict, strategy_from_name
from heliosfl.validation import check_float, check_id, check_int, known_fields

__all__ = [
    "AggregationStrategy",
    "Config",
    "DifferentialPrivacyConfig",
    "NodeSelectionStrategy",
    "NoiseMechanism",
    "RoundConfig",
    "SelectionKind",
    "WorkerConfig",
]

_E = TypeVar("_E", bound=StrEnum)


def _enum_member(enum: type[_E], value: object, name: str) -> _E:
    """``value`` as a member of ``enum``; strings are matched case-insensitively."""
    if isinstance(value, str):
        try:
            return enum(value.lower())
        except ValueError:
            pass
    allowed = "one of " + ", ".join(repr(member.value) for member in enum)
    raise ConfigError(name, value, allowed)


def _store_int(config: object, section: str, field: str, *, low: int) -> None:
    """Check ``config.<field>`` is an integer >= ``low`` and store it as a builtin int.

    numpy integers are accepted and converted, so a config only ever holds ``int`` and
    ``to_dict`` stays JSON-serialisable.
    """
    value = check_int(f"{section}.{field}", getattr(config, field), low=low)
    object.__setattr__(config, field, value)


class AggregationStrategy(StrEnum):
    """The guide's aggregation strategies, with their default settings.

    For settings (FedProx ``mu``, FedOpt's optimiser and server learning rate) pass a
    strategy object instead, e.g. ``fl.FedProx(mu=0.01)`` or ``fl.FedOpt.adam()``.
    """

    FEDAVG = "fedavg"
    FEDPROX = "fedprox"
    FEDOPT = "fedopt"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed_mean"
    KRUM = "krum"


class NoiseMechanism(StrEnum):
    """Noise added to the aggregate under differential privacy."""

    GAUSSIAN = "gaussian"
    LAPLACE = "laplace"


class SelectionKind(StrEnum):
    """How the coordinator picks the nodes of a round."""

    ALL = "all"
    RANDOM = "random"
    MOST_DATA = "most_data"
    BEST_PERFORMANCE = "best_performance"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSelectionStrategy:
    """Which registered, available nodes train in a round.

    Build one with the factories: :meth:`all`, :meth:`random`, :meth:`most_data`,
    :meth:`best_performance`.

    Parameters
    ----------
    kind : SelectionKind
        The rule.
    k : int or None
        Nodes per round for the rules that pick ``k`` (must be >= 1); ``None`` for ``all``.
    """

    kind: SelectionKind = SelectionKind.ALL
    k: int | None = None

    def __post_init__(self) -> None:
        kind = _enum_member(SelectionKind, self.kind, "selection_strategy.kind")
        object.__setattr__(self, "kind", kind)
        if kind is SelectionKind.ALL:
            if self.k is not None:
                raise ConfigError("selection_strategy.k", self.k, "None for the 'all' rule")
        else:
            object.__setattr__(self, "k", check_int("selection_strategy.k", self.k, low=1))

    @classmethod
    def all(cls) -> NodeSelectionStrategy:
        """Every available node trains in every round (best for convergence)."""
        return cls(kind=SelectionKind.ALL)

    @classmethod
    def random(cls, k: int) -> NodeSelectionStrategy:
        """``k`` available nodes drawn uniformly without replacement, seeded per round."""
        return cls(kind=SelectionKind.RANDOM, k=k)

    @classmethod
    def most_data(cls, k: int) -> NodeSelectionStrategy:
        """The ``k`` available nodes with the most registered samples (ties by node id)."""
        return cls(kind=SelectionKind.MOST_DATA, k=k)

    @classmethod
    def best_performance(cls, k: int) -> NodeSelectionStrategy:
        """The ``k`` best nodes by last validation accuracy; never-measured nodes first."""
        return cls(kind=SelectionKind.BEST_PERFORMANCE, k=k)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {"kind": self.kind.value, "k": self.k}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeSelectionStrategy:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**known_fields(cls, data, "selection_strategy"))


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundConfig:
    """How rounds are run and when training stops.

    Parameters
    ----------
    max_rounds : int
        Upper bound on committed rounds (>= 1).
    min_nodes_per_round : int
        Quorum: the fewest nodes that must be selectable, and the fewest successful
        updates a round needs to change the model (>= 1).
    selection_strategy : NodeSelectionStrategy
        Which nodes train in a round.
    node_timeout_secs : float
        Each node's budget of its *own* time per round (> 0): local training, from the
        moment a thread starts it, plus the simulated latency of its answer. Waiting for a
        free thread is an artefact of simulating many nodes on few cores and does not
        count, so with one lane a round can take longer than this. A node over budget is
        recorded as timed out and the round goes on without it; a hang costs the round at
        most this long.
    target_accuracy : float or None
        Stop once the validation accuracy reaches this value, in (0, 1].
    learning_rate : float
        The clients' default local SGD learning rate (> 0), used by every worker whose
        :class:`WorkerConfig` leaves ``learning_rate`` unset. FedOpt's *server* learning
        rate is a setting of the strategy object.
    convergence_threshold : float
        Stop once the validation loss (training loss without validation data) changes by
        less than this between consecutive rounds (>= 0; 0 disables the rule).
    max_failed_attempts : int
        Consecutive round attempts without quorum after which an automatic run stops with
        :class:`~heliosfl.errors.InsufficientNodes` (>= 1).
    max_update_norm : float or None
        Updates whose L2 norm exceeds this are rejected before aggregation (> 0; None: no
        absolute limit).
    norm_outlier_factor : float or None
        Updates whose L2 norm exceeds this many times the median norm of the round's
        valid updates are rejected as absurd (> 1; needs 3 updates; None: off; not
        applied with differential privacy, whose clipping already bounds every update).
    """

    max_rounds: int = 100
    min_nodes_per_round: int = 1
    selection_strategy: NodeSelectionStrategy = field(default_factory=NodeSelectionStrategy.all)
    node_timeout_secs: float = 60.0
    target_accuracy: float | None = None
    learning_rate: float = 0.01
    convergence_threshold: float = 0.001
    max_failed_attempts: int = 3
    max_update_norm: float | None = None
    norm_outlier_factor: float | None = 100.0

    def __post_init__(self) -> None:
        _store_int(self, "round_config", "max_rounds", low=1)
        _store_int(self, "round_config", "min_nodes_per_round", low=1)
        if not isinstance(self.selection_strategy, NodeSelectionStrategy):
            raise ConfigError(
                "round_config.selection_strategy",
                self.selection_strategy,
                "a NodeSelectionStrategy, e.g. NodeSelectionStrategy.random(k=50)",
            )
        timeout = check_float("round_config.node_timeout_secs", self.node_timeout_secs, low=0.0)
        object.__setattr__(self, "node_timeout_secs", timeout)
        if self.target_accuracy is not None:
            target = check_float(
                "round_config.target_accuracy", self.target_accuracy, low=0.0, high=1.0
            )
            object.__setattr__(self, "target_accuracy", target)
        lr = check_float("round_config.learning_rate", self.learning_rate, low=0.0)
        object.__setattr__(self, "learning_rate", lr)
        threshold = check_float(
            "round_config.convergence_threshold",
            self.convergence_threshold,
            low=0.0,
            low_open=False,
        )
        object.__setattr__(self, "convergence_threshold", threshold)
        _store_int(self, "round_config", "max_failed_attempts", low=1)
        if self.max_update_norm is not None:
            norm = check_float("round_config.max_update_norm", self.max_update_norm, low=0.0)
            object.__setattr__(self, "max_update_norm", norm)
        if self.norm_outlier_factor is not None:
            factor = check_float(
                "round_config.norm_outlier_factor", self.norm_outlier_factor, low=1.0
            )
            object.__setattr__(self, "norm_outlier_factor", factor)
        k = self.selection_strategy.k
        if k is not None and k < self.min_nodes_per_round:
            raise ConfigError(
                "round_config.selection_strategy.k",
                k,
                f"at least min_nodes_per_round={self.min_nodes_per_round}",
                "A round selecting fewer nodes than the quorum could never succeed.",
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "max_rounds": self.max_rounds,
            "min_nodes_per_round": self.min_nodes_per_round,
            "selection_strategy": self.selection_strategy.to_dict(),
            "node_timeout_secs": self.node_timeout_secs,
            "target_accuracy": self.target_accuracy,
            "learning_rate": self.learning_rate,
            "convergence_threshold": self.convergence_threshold,
            "max_failed_attempts": self.max_failed_attempts,
            "max_update_norm": self.max_update_norm,
            "norm_outlier_factor": self.norm_outlier_factor,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundConfig:
        """Rebuild from :meth:`to_dict` output."""
        values = known_fields(cls, data, "round_config")
        if "selection_strategy" in values:
            values["selection_strategy"] = NodeSelectionStrategy.from_dict(
                values["selection_strategy"]
            )
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    """One node's local-training settings.

    Parameters
    ----------
    node_id : str
        Unique id of the node (1 to 200 characters).
    local_epochs : int
        Passes over the local data per round (>= 1).
    batch_size : int
        Mini-batch size of local SGD (>= 1).
    learning_rate : float or None
        Local SGD step size (> 0); ``None`` uses ``RoundConfig.learning_rate``.
    """

    node_id: str
    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float | None = None

    def __post_init__(self) -> None:
        check_id("worker_config.node_id", self.node_id)
        object.__setattr__(self, "node_id", str(self.node_id))  # e.g. numpy.str_ to str
        _store_int(self, "worker_config", "local_epochs", low=1)
        _store_int(self, "worker_config", "batch_size", low=1)
        if self.learning_rate is not None:
            lr = check_float("worker_config.learning_rate", self.learning_rate, low=0.0)
            object.__setattr__(self, "learning_rate", lr)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "node_id": self.node_id,
            "local_epochs": self.local_epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerConfig:
        """Rebuild from :meth:`to_dict` output."""
        values = known_fields(cls, data, "worker_config")
        if "node_id" not in values:
            raise ConfigError("worker_config.node_id", None, "given (it has no default)")
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class DifferentialPrivacyConfig:
    """The total ``(epsilon, delta)`` privacy budget of one training run of one model.

    DP-FedAvg (McMahan et al. 2018) with client-level differential privacy: the unit of
    privacy is a whole node's data. Each round every participant's update is clipped
    (L2 norm ``clip_norm`` for Gaussian noise, L1 for Laplace), the clipped updates are
    summed with equal weights, noise is added to the sum, and the sum is divided by the
    expected number of participants fixed before the run. The noise multiplier is
    calibrated with dp-accounting so that ``max_rounds`` rounds spend at most
    ``epsilon`` (or fixed with ``noise_multiplier``, and training stops when the budget
    is spent). See :mod:`heliosfl.privacy`.

    Parameters
    ----------
    epsilon : float
        Total privacy loss of the run, > 0.
    delta : float
        Failure probability, in (0, 1).
    mechanism : NoiseMechanism
        Gaussian (the default) or Laplace noise.
    clip_norm : float
        Bound ``C`` on each client's update norm (> 0); the initial bound when
        ``adaptive_clipping`` is on.
    noise_multiplier : float or None
        Fix the noise multiplier ``z`` (> 0) instead of calibrating it; rounds then stop
        when the next one would overspend.
    accountant : {"rdp", "pld"}
        dp-accounting's accountant used for the budget.
    adaptive_clipping : bool
        Adapt ``clip_norm`` toward the ``target_quantile`` of update norms (Andrew et al.
        2021); the noisy count it needs is part of the accounting.
    target_quantile : float
        Quantile of update norms the adaptive clip norm tracks, in (0, 1).
    clip_learning_rate : float
        Step size of the adaptive clip norm's geometric update (> 0).
    reproducible_noise : bool
        Draw the noise from the run's seed instead of the operating system's entropy.
        Only for teaching and tests: anyone who knows the seed can regenerate the noise
        and subtract it, so the guarantee then holds only while the seed stays secret
        and is never reused. Off by default.
    """

    epsilon: float = 1.0
    delta: float = 1e-5
    mechanism: NoiseMechanism = NoiseMechanism.GAUSSIAN
    clip_norm: float = 1.0
    noise_multiplier: float | None = None
    accountant: str = "rdp"
    adaptive_clipping: bool = False
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    reproducible_noise: bool = False

    def __post_init__(self) -> None:
        eps = check_float("privacy_config.epsilon", self.epsilon, low=0.0)
        delta = check_float("privacy_config.delta", self.delta, low=0.0, high=1.0, high_open=True)
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "delta", delta)
        mechanism = _enum_member(NoiseMechanism, self.mechanism, "privacy_config.mechanism")
        object.__setattr__(self, "mechanism", mechanism)
        clip = check_float("privacy_config.clip_norm", self.clip_norm, low=0.0)
        object.__setattr__(self, "clip_norm", clip)
        if self.noise_multiplier is not None:
            z = check_float(
                "privacy_config.noise_multiplier",
                self.noise_multiplier,
                low=1e-3,
                high=1e6,
                low_open=False,
                high_open=False,
            )
            object.__setattr__(self, "noise_multiplier", z)
        if self.accountant not in ("rdp", "pld"):
            raise ConfigError("privacy_config.accountant", self.accountant, "'rdp' or 'pld'")
        if not isinstance(self.adaptive_clipping, bool):
            raise ConfigError(
                "privacy_config.adaptive_clipping", self.adaptive_clipping, "True or False"
            )
        quantile = check_float(
            "privacy_config.target_quantile",
            self.target_quantile,
            low=0.0,
            high=1.0,
            high_open=True,
        )
        object.__setattr__(self, "target_quantile", quantile)
        if not isinstance(self.reproducible_noise, bool):
            raise ConfigError(
                "privacy_config.reproducible_noise", self.reproducible_noise, "True or False"
            )
        rate = check_float("privacy_config.clip_learning_rate", self.clip_learning_rate, low=0.0)
        object.__setattr__(self, "clip_learning_rate", rate)
        if self.adaptive_clipping and mechanism is NoiseMechanism.LAPLACE:
            raise ConfigError(
                "privacy_config.adaptive_clipping",
                True,
                "False with the Laplace mechanism",
                "Adaptive clipping (Andrew et al. 2021) is defined for Gaussian noise.",
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "mechanism": self.mechanism.value,
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
            "accountant": self.accountant,
            "adaptive_clipping": self.adaptive_clipping,
            "target_quantile": self.target_quantile,
            "clip_learning_rate": self.clip_learning_rate,
            "reproducible_noise": self.reproducible_noise,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DifferentialPrivacyConfig:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**known_fields(cls, data, "privacy_config"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything the engine needs to run federated training.

    Parameters
    ----------
    aggregation_strategy : AggregationStrategy or Strategy
        The guide's enum (default settings) or a strategy object such as
        ``fl.FedProx(mu=0.01)``; :attr:`strategy` is the resolved object.
    round_config : RoundConfig
        Rounds, quorum, selection, timeouts and stopping rules.
    enable_privacy : bool
        Client-level differential privacy on the aggregate (requires
        ``privacy_config``; see :class:`DifferentialPrivacyConfig`).
    privacy_config : DifferentialPrivacyConfig or None
        The privacy budget.
    seed : int
        Seeds every random choice of a run (selection, shuffling, initial parameters);
        the same seed gives the same result.
    secure_aggregation : SecureAggregationConfig
        Secure aggregation (off by default): the coordinator sees only the sum of the
        quantised, masked updates.
    """

    aggregation_strategy: AggregationStrategy | Strategy = AggregationStrategy.FEDAVG
    round_config: RoundConfig = field(default_factory=RoundConfig)
    enable_privacy: bool = False
    privacy_config: DifferentialPrivacyConfig | None = None
    seed: int = 0
    secure_aggregation: SecureAggregationConfig = field(default_factory=SecureAggregationConfig)

    def __post_init__(self) -> None:
        strategy: object = self.aggregation_strategy
        if isinstance(strategy, str) and not isinstance(strategy, AggregationStrategy):
            try:
                strategy = AggregationStrategy(strategy.lower())
            except ValueError:
                allowed = "one of " + ", ".join(repr(s.value) for s in AggregationStrategy)
                raise ConfigError(
                    "aggregation_strategy", self.aggregation_strategy, allowed + " or a Strategy"
                ) from None
            object.__setattr__(self, "aggregation_strategy", strategy)
        elif not isinstance(strategy, AggregationStrategy | Strategy):
            raise ConfigError(
                "aggregation_strategy",
                strategy,
                "an AggregationStrategy or a Strategy object such as FedProx(mu=0.01)",
            )
        if not isinstance(self.round_config, RoundConfig):
            raise ConfigError("round_config", self.round_config, "a RoundConfig")
        if not isinstance(self.enable_privacy, bool):
            raise ConfigError("enable_privacy", self.enable_privacy, "True or False")
        if self.privacy_config is not None and not isinstance(
            self.privacy_config, DifferentialPrivacyConfig
        ):
            raise ConfigError(
                "privacy_config", self.privacy_config, "a DifferentialPrivacyConfig or None"
            )
        if self.enable_privacy and self.privacy_config is None:
            raise ConfigError(
                "privacy_config",
                None,
                "a DifferentialPrivacyConfig when enable_privacy is True",
                "Pass privacy_config=DifferentialPrivacyConfig(epsilon=..., delta=...).",
            )
        object.__setattr__(self, "seed", check_int("seed", self.seed, low=0, high=2**63 - 1))
        self._check_secure_aggregation()
        self._check_robust()

    def _check_robust(self) -> None:
        from heliosfl.robust import CoordinateMedian, Krum, TrimmedMean

        strategy = self.strategy
        if not isinstance(strategy, CoordinateMedian | Krum | TrimmedMean):
            return
        if self.enable_privacy or self.secure_aggregation.enabled:
            raise ConfigError(
                "aggregation_strategy",
                strategy.name,
                "FedAvg, FedProx or FedOpt when differential privacy or secure aggregation is "
                "on (robust rules need every individual update; those see only their sum)",
            )
        if isinstance(strategy, Krum):
            needed = strategy.required_updates()
            if self.round_config.min_nodes_per_round < needed:
                raise ConfigError(
                    "round_config.min_nodes_per_round",
                    self.round_config.min_nodes_per_round,
                    f"at least {needed} for Krum(num_byzantine={strategy.num_byzantine}, "
                    f"multi={strategy.multi}) (n >= 2f + 3 and n >= m + f)",
                )

    def _check_secure_aggregation(self) -> None:
        secure = self.secure_aggregation
        if not isinstance(secure, SecureAggregationConfig):
            raise ConfigError("secure_aggregation", secure, "a SecureAggregationConfig")
        privacy = self.privacy_config
        if not (secure.enabled and self.enable_privacy and privacy is not None):
            return
        if privacy.adaptive_clipping:
            raise ConfigError(
                "privacy_config.adaptive_clipping",
                True,
                "False when secure aggregation is on",
                "The coordinator cannot see which updates were clipped; fix clip_norm.",
            )
        if secure.noise is NoisePlacement.DISTRIBUTED and privacy.mechanism != "gaussian":
            raise ConfigError(
                "secure_aggregation.noise",
                "distributed",
                "'central' with Laplace noise (a sum of Laplace shares is not Laplace)",
            )

    @property
    def strategy(self) -> Strategy:
        """The aggregation strategy as an object (the enum resolved to its defaults)."""
        if isinstance(self.aggregation_strategy, AggregationStrategy):
            return strategy_from_name(self.aggregation_strategy.value)
        return self.aggregation_strategy

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; :meth:`from_dict` inverts it."""
        strategy = self.aggregation_strategy
        return {
            "aggregation_strategy": (
                strategy.value if isinstance(strategy, AggregationStrategy) else strategy.to_dict()
            ),
            "round_config": self.round_config.to_dict(),
            "enable_privacy": self.enable_privacy,
            "privacy_config": None
            if self.privacy_config is None
            else self.privacy_config.to_dict(),
            "seed": self.seed,
            "secure_aggregation": self.secure_aggregation.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Rebuild a config from :meth:`to_dict` output (e.g. after ``json.loads``)."""
        values = known_fields(cls, data, "config")
        strategy = values.get("aggregation_strategy", AggregationStrategy.FEDAVG)
        if isinstance(strategy, dict):
            values["aggregation_strategy"] = strategy_from_dict(strategy)
        if isinstance(values.get("round_config"), dict):
            values["round_config"] = RoundConfig.from_dict(values["round_config"])
        if isinstance(values.get("privacy_config"), dict):
            values["privacy_config"] = DifferentialPrivacyConfig.from_dict(values["privacy_config"])
        if isinstance(values.get("secure_aggregation"), dict):
            values["secure_aggregation"] = SecureAggregationConfig.from_dict(
                values["secure_aggregation"]
            )
        return cls(**values)
