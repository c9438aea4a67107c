"""Unit tests for heliosfl.config: validation, immutability and JSON round trips."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from heliosfl.config import (
    AggregationStrategy,
    Config,
    DifferentialPrivacyConfig,
    NodeSelectionStrategy,
    NoiseMechanism,
    RoundConfig,
    SelectionKind,
    WorkerConfig,
)
from heliosfl.errors import ConfigError
from heliosfl.strategies import FedAvg, FedOpt, FedProx

NAN = float("nan")
INF = float("inf")

POSITIVE = "a finite number in (0, inf)"
NON_NEGATIVE = "a finite number in [0, inf)"
UNIT_INTERVAL = "a finite number in (0, 1]"
OPEN_UNIT_INTERVAL = "a finite number in (0, 1)"
INT_GE_1 = "an integer >= 1"


def assert_config_error(
    make: Callable[[], Any], field: str, value: Any, allowed: str
) -> ConfigError:
    """Construct, expect a ConfigError naming ``field``, ``value`` and ``allowed``."""
    with pytest.raises(ConfigError) as info:
        make()
    err = info.value
    message = str(err)
    assert err.field == field
    assert err.allowed == allowed
    assert message.startswith(f"{field} must be {allowed}. Found ")
    shown = repr(value)
    if len(shown) <= 120:
        assert f"Found {shown}." in message
    if isinstance(value, float) and math.isnan(value):
        assert isinstance(err.value, float)
        assert math.isnan(err.value)
    else:
        assert err.value == value
    return err


# Each case: (id, constructor, field, value, allowed)
INVALID_CASES: list[tuple[str, Callable[[], Any], str, Any, str]] = []


def _case(case_id: str, make: Callable[[], Any], field: str, value: Any, allowed: str) -> None:
    INVALID_CASES.append((case_id, make, field, value, allowed))


# --- RoundConfig.learning_rate: > 0 and finite ---------------------------------------
for _v in (-0.1, 0, 0.0, -0.0, NAN, INF, -INF):
    _case(
        f"round-lr-{_v!r}",
        lambda v=_v: RoundConfig(learning_rate=v),
        "round_config.learning_rate",
        _v,
        POSITIVE,
    )
for _v in (True, False, "0.01", None, [0.01]):
    _case(
        f"round-lr-type-{_v!r}",
        lambda v=_v: RoundConfig(learning_rate=v),
        "round_config.learning_rate",
        _v,
        POSITIVE,
    )

# --- WorkerConfig.learning_rate ---------------------------------------------------------
for _v in (-1.0, 0.0, NAN, INF, True, "fast"):
    _case(
        f"worker-lr-{_v!r}",
        lambda v=_v: WorkerConfig(node_id="n1", learning_rate=v),
        "worker_config.learning_rate",
        _v,
        POSITIVE,
    )

# --- integers >= 1 ------------------------------------------------------------------------
for _name in ("max_rounds", "min_nodes_per_round", "max_failed_attempts"):
    for _v in (0, -1, True, False, 2.0, "3", None):
        _case(
            f"round-{_name}-{_v!r}",
            lambda n=_name, v=_v: RoundConfig(**{n: v}),
            f"round_config.{_name}",
            _v,
            INT_GE_1,
        )

# --- selection k ----------------------------------------------------------------------
for _factory in (
    NodeSelectionStrategy.random,
    NodeSelectionStrategy.most_data,
    NodeSelectionStrategy.best_performance,
):
    for _v in (0, -3, True, 2.5, "2", None):
        _case(
            f"select-{_factory.__name__}-k-{_v!r}",
            lambda f=_factory, v=_v: f(k=v),
            "selection_strategy.k",
            _v,
            INT_GE_1,
        )
_case(
    "select-all-with-k",
    lambda: NodeSelectionStrategy(kind=SelectionKind.ALL, k=3),
    "selection_strategy.k",
    3,
    "None for the 'all' rule",
)
_case(
    "select-unknown-kind",
    lambda: NodeSelectionStrategy(kind="fastest", k=2),
    "selection_strategy.kind",
    "fastest",
    "one of 'all', 'random', 'most_data', 'best_performance'",
)
for _min, _k in ((5, 3), (2, 1), (10, 9)):
    _case(
        f"k-below-quorum-{_min}-{_k}",
        lambda m=_min, k=_k: RoundConfig(
            min_nodes_per_round=m, selection_strategy=NodeSelectionStrategy.random(k=k)
        ),
        "round_config.selection_strategy.k",
        _k,
        f"at least min_nodes_per_round={_min}",
    )
_case(
    "selection-not-a-strategy",
    lambda: RoundConfig(selection_strategy="random"),
    "round_config.selection_strategy",
    "random",
    "a NodeSelectionStrategy, e.g. NodeSelectionStrategy.random(k=50)",
)

# --- target_accuracy in (0, 1] -------------------------------------------------------------
for _v in (0, 0.0, -0.2, 1.5, 1.0000001, NAN, INF, True, "0.9"):
    _case(
        f"target-{_v!r}",
        lambda v=_v: RoundConfig(target_accuracy=v),
        "round_config.target_accuracy",
        _v,
        UNIT_INTERVAL,
    )

# --- timeouts > 0 --------------------------------------------------------------------------
for _v in (0, 0.0, -1.0, NAN, INF, True, "60"):
    _case(
        f"timeout-{_v!r}",
        lambda v=_v: RoundConfig(node_timeout_secs=v),
        "round_config.node_timeout_secs",
        _v,
        POSITIVE,
    )

# --- convergence_threshold >= 0 ------------------------------------------------------------
for _v in (-0.001, -1, NAN, INF, True):
    _case(
        f"threshold-{_v!r}",
        lambda v=_v: RoundConfig(convergence_threshold=v),
        "round_config.convergence_threshold",
        _v,
        NON_NEGATIVE,
    )

# --- WorkerConfig ------------------------------------------------------------------------
for _v in ("", 7, None, "x" * 201):
    _case(
        f"worker-node-id-{_v!r:.12}",
        lambda v=_v: WorkerConfig(node_id=v),
        "worker_config.node_id",
        _v,
        "a string of 1 to 200 characters",
    )
for _name in ("local_epochs", "batch_size"):
    for _v in (0, -2, True, 1.0, "32"):
        _case(
            f"worker-{_name}-{_v!r}",
            lambda n=_name, v=_v: WorkerConfig(node_id="n1", **{n: v}),
            f"worker_config.{_name}",
            _v,
            INT_GE_1,
        )

# --- DifferentialPrivacyConfig ----------------------------------------------------------
for _v in (0, 0.0, -1.0, NAN, INF, True, "1.0"):
    _case(
        f"epsilon-{_v!r}",
        lambda v=_v: DifferentialPrivacyConfig(epsilon=v),
        "privacy_config.epsilon",
        _v,
        POSITIVE,
    )
for _v in (0, 0.0, 1, 1.0, 1.5, -1e-5, NAN, True):
    _case(
        f"delta-{_v!r}",
        lambda v=_v: DifferentialPrivacyConfig(delta=v),
        "privacy_config.delta",
        _v,
        OPEN_UNIT_INTERVAL,
    )
for _v in ("uniform", "poisson", 1, None):
    _case(
        f"mechanism-{_v!r}",
        lambda v=_v: DifferentialPrivacyConfig(mechanism=v),
        "privacy_config.mechanism",
        _v,
        "one of 'gaussian', 'laplace'",
    )

# --- Config --------------------------------------------------------------------------------
_case(
    "privacy-without-config",
    lambda: Config(enable_privacy=True),
    "privacy_config",
    None,
    "a DifferentialPrivacyConfig when enable_privacy is True",
)
for _v in (1, 0, "yes", None):
    _case(
        f"enable-privacy-{_v!r}",
        lambda v=_v: Config(enable_privacy=v),
        "enable_privacy",
        _v,
        "True or False",
    )
_case(
    "strategy-unknown-name",
    lambda: Config(aggregation_strategy="fedsgd"),
    "aggregation_strategy",
    "fedsgd",
    "one of 'fedavg', 'fedprox', 'fedopt', 'median', 'trimmed_mean', 'krum' or a Strategy",
)
_case(
    "strategy-wrong-type",
    lambda: Config(aggregation_strategy=3),
    "aggregation_strategy",
    3,
    "an AggregationStrategy or a Strategy object such as FedProx(mu=0.01)",
)
_case(
    "round-config-dict",
    lambda: Config(round_config={"max_rounds": 3}),
    "round_config",
    {"max_rounds": 3},
    "a RoundConfig",
)
_case(
    "privacy-config-dict",
    lambda: Config(privacy_config={"epsilon": 1.0}),
    "privacy_config",
    {"epsilon": 1.0},
    "a DifferentialPrivacyConfig or None",
)
for _v in (-1, 2**63, True, 1.5, "0"):
    _case(
        f"seed-{_v!r}",
        lambda v=_v: Config(seed=v),
        "seed",
        _v,
        f"an integer in [0, {2**63 - 1}]",
    )
_case(
    "from-dict-unknown-field",
    lambda: Config.from_dict({"seed": 1, "rounds": 3}),
    "config",
    ["rounds"],
    "only fields of Config: aggregation_strategy, enable_privacy, privacy_config, "
    "round_config, secure_aggregation, seed",
)
_case(
    "from-dict-not-a-dict",
    lambda: Config.from_dict([("seed", 1)]),
    "config",
    [("seed", 1)],
    "a dict of Config fields",
)


@pytest.mark.parametrize(
    ("make", "field", "value", "allowed"),
    [pytest.param(*rest, id=case_id) for case_id, *rest in INVALID_CASES],
)
def test_invalid_value_raises_config_error_naming_field_value_and_range(
    make: Callable[[], Any], field: str, value: Any, allowed: str
) -> None:
    assert_config_error(make, field, value, allowed)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"round_config\.learning_rate must be"):
        RoundConfig(learning_rate=-1.0)
    assert issubclass(ConfigError, ValueError)


def test_privacy_without_config_hint_names_the_remedy() -> None:
    err = assert_config_error(
        lambda: Config(enable_privacy=True),
        "privacy_config",
        None,
        "a DifferentialPrivacyConfig when enable_privacy is True",
    )
    assert "privacy_config=DifferentialPrivacyConfig(" in str(err)


def test_k_below_quorum_hint_explains_why() -> None:
    err = assert_config_error(
        lambda: RoundConfig(
            min_nodes_per_round=4, selection_strategy=NodeSelectionStrategy.most_data(k=2)
        ),
        "round_config.selection_strategy.k",
        2,
        "at least min_nodes_per_round=4",
    )
    assert err.hint
    assert err.hint in str(err)


# --- values at the edge of what is allowed ---------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: RoundConfig(target_accuracy=1.0), id="target-1.0"),
        pytest.param(lambda: RoundConfig(target_accuracy=1), id="target-int-1"),
        pytest.param(lambda: RoundConfig(target_accuracy=1e-9), id="target-tiny"),
        pytest.param(lambda: RoundConfig(convergence_threshold=0.0), id="threshold-0"),
        pytest.param(lambda: RoundConfig(node_timeout_secs=1e-3), id="timeout-1ms"),
        pytest.param(lambda: RoundConfig(learning_rate=1e-12), id="lr-tiny"),
        pytest.param(
            lambda: RoundConfig(
                min_nodes_per_round=3, selection_strategy=NodeSelectionStrategy.random(k=3)
            ),
            id="k-equals-quorum",
        ),
        pytest.param(lambda: WorkerConfig(node_id="x" * 200), id="node-id-200"),
        pytest.param(lambda: WorkerConfig(node_id="n", local_epochs=1, batch_size=1), id="ones"),
        pytest.param(lambda: DifferentialPrivacyConfig(delta=0.999999), id="delta-below-1"),
        pytest.param(lambda: DifferentialPrivacyConfig(epsilon=1e-6), id="epsilon-tiny"),
        pytest.param(lambda: Config(seed=2**63 - 1), id="seed-max"),
        pytest.param(lambda: Config(seed=0), id="seed-0"),
    ],
)
def test_boundary_values_are_accepted(make: Callable[[], Any]) -> None:
    make()


def test_numbers_are_normalised_to_float() -> None:
    rc = RoundConfig(learning_rate=1, node_timeout_secs=5, target_accuracy=1)
    assert rc.learning_rate == 1.0
    assert type(rc.learning_rate) is float
    assert type(rc.node_timeout_secs) is float
    assert type(rc.target_accuracy) is float
    dp = DifferentialPrivacyConfig(epsilon=2)
    assert type(dp.epsilon) is float


def _leaf_types(value: Any) -> set[type]:
    """The types of every leaf of a nested ``to_dict`` result."""
    if isinstance(value, dict):
        return {t for v in value.values() for t in _leaf_types(v)}
    if isinstance(value, list):
        return {t for v in value for t in _leaf_types(v)}
    return {type(value)}


def _numpy_built_config() -> Config:
    return Config(
        aggregation_strategy=FedOpt(
            optimizer="yogi",
            server_learning_rate=np.float32(0.5),
            beta1=np.float64(0.8),
            beta2=np.float32(0.25),
            tau=np.float16(0.125),
        ),
        round_config=RoundConfig(
            max_rounds=np.int64(50),
            min_nodes_per_round=np.int32(2),
            selection_strategy=NodeSelectionStrategy.random(k=np.uint8(7)),
            node_timeout_secs=np.float32(2.5),
            target_accuracy=np.float64(0.75),
            learning_rate=np.float32(0.125),
            convergence_threshold=np.float64(0.0),
            max_failed_attempts=np.int16(4),
        ),
        enable_privacy=True,
        privacy_config=DifferentialPrivacyConfig(epsilon=np.float32(1.5), delta=np.float64(1e-6)),
        seed=np.int64(3),
    )


def test_numpy_scalars_are_stored_as_builtin_numbers_and_round_trip_json() -> None:
    cfg = _numpy_built_config()
    rc = cfg.round_config
    for value in (
        rc.max_rounds,
        rc.min_nodes_per_round,
        rc.max_failed_attempts,
        rc.selection_strategy.k,
        cfg.seed,
    ):
        assert type(value) is int
    for value in (rc.node_timeout_secs, rc.learning_rate, rc.target_accuracy, cfg.strategy.tau):
        assert type(value) is float
    data = cfg.to_dict()
    assert _leaf_types(data) <= {int, float, str, bool, type(None)}
    back = Config.from_dict(json.loads(json.dumps(data, allow_nan=False)))
    assert back == cfg
    assert back.to_dict() == data
    assert type(back.seed) is int and back.seed == 3
    assert json.dumps(Config(seed=np.int64(3)).to_dict())


def test_worker_config_numpy_integers_are_stored_as_int() -> None:
    wc = WorkerConfig(
        node_id=np.str_("n1"),
        local_epochs=np.int64(2),
        batch_size=np.int32(16),
        learning_rate=np.float32(0.5),
    )
    assert (type(wc.node_id), type(wc.local_epochs), type(wc.batch_size)) == (str, int, int)
    assert type(wc.learning_rate) is float
    back = WorkerConfig.from_dict(json.loads(json.dumps(wc.to_dict())))
    assert back == wc


def test_enum_strings_are_case_insensitive() -> None:
    assert NodeSelectionStrategy(kind="Most_Data", k=2).kind is SelectionKind.MOST_DATA
    assert NodeSelectionStrategy(kind="ALL").kind is SelectionKind.ALL
    assert DifferentialPrivacyConfig(mechanism="Laplace").mechanism is NoiseMechanism.LAPLACE
    assert DifferentialPrivacyConfig(mechanism="GAUSSIAN").mechanism is NoiseMechanism.GAUSSIAN
    assert_config_error(
        lambda: DifferentialPrivacyConfig(mechanism="Uniform"),
        "privacy_config.mechanism",
        "Uniform",
        "one of 'gaussian', 'laplace'",
    )


def test_strings_are_normalised_to_enums() -> None:
    cfg = Config(aggregation_strategy="FedProx")
    assert cfg.aggregation_strategy is AggregationStrategy.FEDPROX
    assert isinstance(cfg.strategy, FedProx)
    sel = NodeSelectionStrategy(kind="most_data", k=2)
    assert sel.kind is SelectionKind.MOST_DATA
    dp = DifferentialPrivacyConfig(mechanism="laplace")
    assert dp.mechanism is NoiseMechanism.LAPLACE


def test_strategy_property_resolves_enum_and_passes_objects_through() -> None:
    assert Config().strategy == FedAvg()
    assert Config(aggregation_strategy=AggregationStrategy.FEDOPT).strategy == FedOpt()
    prox = FedProx(mu=0.3)
    assert Config(aggregation_strategy=prox).strategy is prox


def test_enum_values_are_lowercase_and_members_uppercase() -> None:
    for enum in (AggregationStrategy, NoiseMechanism, SelectionKind):
        for member in enum:
            assert member.name == member.name.upper()
            assert member.value == member.value.lower()
            assert member == member.value  # StrEnum


# --- immutability --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "field", "value"),
    [
        pytest.param(Config(), "seed", 3, id="Config.seed"),
        pytest.param(Config(), "enable_privacy", True, id="Config.enable_privacy"),
        pytest.param(RoundConfig(), "max_rounds", 5, id="RoundConfig.max_rounds"),
        pytest.param(RoundConfig(), "learning_rate", 0.5, id="RoundConfig.learning_rate"),
        pytest.param(WorkerConfig(node_id="a"), "batch_size", 64, id="WorkerConfig.batch_size"),
        pytest.param(DifferentialPrivacyConfig(), "epsilon", 9.0, id="DP.epsilon"),
        pytest.param(NodeSelectionStrategy.random(k=2), "k", 5, id="Selection.k"),
    ],
)
def test_configs_are_frozen(obj: Any, field: str, value: Any) -> None:
    before = getattr(obj, field)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, value)
    assert getattr(obj, field) == before


def test_configs_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        RoundConfig(10)  # type: ignore[misc]
    with pytest.raises(TypeError):
        WorkerConfig("node-1")  # type: ignore[misc]


# --- JSON round trips --------------------------------------------------------------------

ROUND_TRIP_CONFIGS = [
    pytest.param(Config(), id="default"),
    pytest.param(Config(aggregation_strategy=AggregationStrategy.FEDPROX), id="enum-fedprox"),
    pytest.param(Config(aggregation_strategy="fedopt"), id="str-fedopt"),
    pytest.param(Config(aggregation_strategy=FedAvg()), id="FedAvg()"),
    pytest.param(Config(aggregation_strategy=FedProx(mu=0.1)), id="FedProx(mu=0.1)"),
    pytest.param(Config(aggregation_strategy=FedProx(mu=0)), id="FedProx(mu=0)"),
    pytest.param(Config(aggregation_strategy=FedOpt.adam()), id="FedOpt.adam()"),
    pytest.param(
        Config(
            aggregation_strategy=FedOpt.yogi(
                server_learning_rate=0.05, beta1=0.8, beta2=0.95, tau=1e-2
            )
        ),
        id="FedOpt.yogi(...)",
    ),
    pytest.param(
        Config(aggregation_strategy=FedOpt.adagrad(server_learning_rate=0.3, tau=0.1)),
        id="FedOpt.adagrad(...)",
    ),
    pytest.param(
        Config(round_config=RoundConfig(selection_strategy=NodeSelectionStrategy.all())),
        id="select-all",
    ),
    pytest.param(
        Config(
            round_config=RoundConfig(
                min_nodes_per_round=2, selection_strategy=NodeSelectionStrategy.random(k=7)
            )
        ),
        id="select-random",
    ),
    pytest.param(
        Config(
            round_config=RoundConfig(
                min_nodes_per_round=3, selection_strategy=NodeSelectionStrategy.most_data(k=3)
            )
        ),
        id="select-most-data",
    ),
    pytest.param(
        Config(
            round_config=RoundConfig(selection_strategy=NodeSelectionStrategy.best_performance(k=4))
        ),
        id="select-best-performance",
    ),
    pytest.param(
        Config(
            aggregation_strategy=FedProx(mu=0.01),
            round_config=RoundConfig(
                max_rounds=50,
                min_nodes_per_round=5,
                selection_strategy=NodeSelectionStrategy.random(k=20),
                node_timeout_secs=2.5,
                target_accuracy=0.9,
                learning_rate=0.05,
                convergence_threshold=0.0,
                max_failed_attempts=7,
            ),
            enable_privacy=True,
            privacy_config=DifferentialPrivacyConfig(
                epsilon=3.5, delta=1e-6, mechanism=NoiseMechanism.LAPLACE
            ),
            seed=2**63 - 1,
        ),
        id="everything-set",
    ),
    pytest.param(
        Config(privacy_config=DifferentialPrivacyConfig(), enable_privacy=False),
        id="privacy-config-but-disabled",
    ),
]


@pytest.mark.parametrize("cfg", ROUND_TRIP_CONFIGS)
def test_config_json_round_trip(cfg: Config) -> None:
    text = json.dumps(cfg.to_dict(), allow_nan=False)
    back = Config.from_dict(json.loads(text))
    assert back == cfg
    assert type(back.aggregation_strategy) is type(cfg.aggregation_strategy)
    assert back.strategy == cfg.strategy
    assert back.to_dict() == cfg.to_dict()


def test_config_to_dict_shape() -> None:
    cfg = Config(
        aggregation_strategy=FedProx(mu=0.1),
        round_config=RoundConfig(
            min_nodes_per_round=2, selection_strategy=NodeSelectionStrategy.random(k=3)
        ),
    )
    data = cfg.to_dict()
    assert data["aggregation_strategy"] == {"name": "fedprox", "mu": 0.1}
    assert data["round_config"]["selection_strategy"] == {"kind": "random", "k": 3}
    assert data["enable_privacy"] is False
    assert data["privacy_config"] is None
    assert data["seed"] == 0


@pytest.mark.parametrize(
    "sub",
    [
        pytest.param(RoundConfig(), id="RoundConfig()"),
        pytest.param(
            RoundConfig(target_accuracy=0.75, node_timeout_secs=0.01), id="RoundConfig(target)"
        ),
        pytest.param(WorkerConfig(node_id="hospital-1"), id="WorkerConfig(lr=None)"),
        pytest.param(
            WorkerConfig(node_id="hospital-2", local_epochs=3, batch_size=8, learning_rate=0.2),
            id="WorkerConfig(all)",
        ),
        pytest.param(DifferentialPrivacyConfig(), id="DP()"),
        pytest.param(
            DifferentialPrivacyConfig(epsilon=0.5, delta=1e-7, mechanism="laplace"), id="DP(lap)"
        ),
        pytest.param(NodeSelectionStrategy.all(), id="sel-all"),
        pytest.param(NodeSelectionStrategy.random(k=5), id="sel-random"),
        pytest.param(NodeSelectionStrategy.most_data(k=1), id="sel-most-data"),
        pytest.param(NodeSelectionStrategy.best_performance(k=9), id="sel-best"),
    ],
)
def test_sub_config_json_round_trip(sub: Any) -> None:
    back = type(sub).from_dict(json.loads(json.dumps(sub.to_dict(), allow_nan=False)))
    assert back == sub


def test_from_dict_validates() -> None:
    data = Config().to_dict()
    data["round_config"]["learning_rate"] = -1.0
    assert_config_error(
        lambda: Config.from_dict(data), "round_config.learning_rate", -1.0, POSITIVE
    )


@pytest.mark.parametrize(
    ("load", "mentions"),
    [
        pytest.param(
            lambda: Config.from_dict({"round_config": {"max_round": 5}}),
            "max_round",
            id="round_config-typo",
        ),
        pytest.param(
            lambda: Config.from_dict({"privacy_config": {"epsilon": 1.0, "eps": 2.0}}),
            "eps",
            id="privacy_config-typo",
        ),
        pytest.param(
            lambda: Config.from_dict({"round_config": {"selection_strategy": "random"}}),
            "selection_strategy",
            id="selection-not-a-dict",
        ),
        pytest.param(
            lambda: RoundConfig.from_dict({"max_rounds": 5, "rounds": 2}),
            "rounds",
            id="RoundConfig.from_dict",
        ),
        pytest.param(
            lambda: WorkerConfig.from_dict({"node_id": "a", "epochs": 2}),
            "epochs",
            id="WorkerConfig.from_dict",
        ),
        pytest.param(
            lambda: DifferentialPrivacyConfig.from_dict({"epsilon": 1.0, "sigma": 0.5}),
            "sigma",
            id="DifferentialPrivacyConfig.from_dict",
        ),
    ],
)
def test_from_dict_rejects_unknown_nested_fields_with_config_error(
    load: Callable[[], Any], mentions: str
) -> None:
    with pytest.raises(ConfigError, match=mentions):
        load()


def test_selection_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="size"):
        NodeSelectionStrategy.from_dict({"kind": "random", "k": 3, "size": 4})
