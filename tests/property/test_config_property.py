"""Property tests for heliosfl.config: every valid config survives a JSON round trip."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heliosfl.config import (
    Config,
    DifferentialPrivacyConfig,
    NodeSelectionStrategy,
    NoiseMechanism,
    RoundConfig,
    SelectionKind,
)
from heliosfl.errors import ConfigError
from heliosfl.strategies import FedAvg, FedOpt, FedProx, Strategy

positive_floats = st.floats(
    min_value=0.0, exclude_min=True, allow_nan=False, allow_infinity=False
) | st.integers(min_value=1, max_value=10**6)
non_negative_floats = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
unit_floats = st.floats(min_value=0.0, max_value=1.0, exclude_min=True, allow_nan=False)


@st.composite
def round_configs(draw: st.DrawFn) -> RoundConfig:
    min_nodes = draw(st.integers(min_value=1, max_value=50))
    kind = draw(st.sampled_from(list(SelectionKind)))
    if kind is SelectionKind.ALL:
        selection = NodeSelectionStrategy.all()
    else:
        k = draw(st.integers(min_value=min_nodes, max_value=1000))
        selection = NodeSelectionStrategy(kind=kind, k=k)
    return RoundConfig(
        max_rounds=draw(st.integers(min_value=1, max_value=10**6)),
        min_nodes_per_round=min_nodes,
        selection_strategy=selection,
        node_timeout_secs=draw(positive_floats),
        target_accuracy=draw(st.none() | unit_floats),
        learning_rate=draw(positive_floats),
        convergence_threshold=draw(non_negative_floats),
        max_failed_attempts=draw(st.integers(min_value=1, max_value=100)),
    )


@st.composite
def strategy_objects(draw: st.DrawFn) -> Strategy:
    which = draw(st.sampled_from(["fedavg", "fedprox", "fedopt"]))
    if which == "fedavg":
        return FedAvg()
    if which == "fedprox":
        return FedProx(mu=draw(non_negative_floats))
    beta = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)
    return FedOpt(
        optimizer=draw(st.sampled_from(["adam", "yogi", "adagrad"])),
        server_learning_rate=draw(positive_floats),
        beta1=draw(beta),
        beta2=draw(beta),
        tau=draw(positive_floats),
    )


@st.composite
def privacy_configs(draw: st.DrawFn) -> DifferentialPrivacyConfig:
    return DifferentialPrivacyConfig(
        epsilon=draw(positive_floats),
        delta=draw(st.floats(min_value=0.0, max_value=1.0, exclude_min=True, exclude_max=True)),
        mechanism=draw(st.sampled_from(list(NoiseMechanism))),
    )


@given(round_configs())
def test_round_config_json_round_trip(rc: RoundConfig) -> None:
    text = json.dumps(rc.to_dict(), allow_nan=False)
    assert RoundConfig.from_dict(json.loads(text)) == rc


@given(
    round_config=round_configs(),
    strategy=strategy_objects(),
    privacy=st.none() | privacy_configs(),
    seed=st.integers(min_value=0, max_value=2**63 - 1),
)
@settings(max_examples=50)
def test_config_json_round_trip(
    round_config: RoundConfig,
    strategy: Strategy,
    privacy: DifferentialPrivacyConfig | None,
    seed: int,
) -> None:
    cfg = Config(
        aggregation_strategy=strategy,
        round_config=round_config,
        enable_privacy=privacy is not None,
        privacy_config=privacy,
        seed=seed,
    )
    back = Config.from_dict(json.loads(json.dumps(cfg.to_dict(), allow_nan=False)))
    assert back == cfg
    assert back.strategy == strategy


def _leaf_types(value: Any) -> set[type]:
    if isinstance(value, dict):
        return {t for v in value.values() for t in _leaf_types(v)}
    return {type(value)}


numpy_int_types = st.sampled_from([np.int64, np.uint64, np.intp])


@given(
    round_config=round_configs(),
    strategy=strategy_objects(),
    seed=st.integers(min_value=0, max_value=2**63 - 1),
    int_type=numpy_int_types,
)
@settings(max_examples=50)
def test_configs_built_from_numpy_scalars_hold_builtins_and_round_trip(
    round_config: RoundConfig, strategy: Strategy, seed: int, int_type: type
) -> None:
    # Prepare: the same config, every number a numpy scalar (float64 and the ints are exact).
    rc = round_config
    k = rc.selection_strategy.k
    numpy_rc = RoundConfig(
        max_rounds=int_type(rc.max_rounds),
        min_nodes_per_round=int_type(rc.min_nodes_per_round),
        selection_strategy=NodeSelectionStrategy(
            kind=rc.selection_strategy.kind, k=None if k is None else int_type(k)
        ),
        node_timeout_secs=np.float64(rc.node_timeout_secs),
        target_accuracy=None if rc.target_accuracy is None else np.float64(rc.target_accuracy),
        learning_rate=np.float64(rc.learning_rate),
        convergence_threshold=np.float64(rc.convergence_threshold),
        max_failed_attempts=int_type(rc.max_failed_attempts),
    )
    settings_ = {
        name: np.float64(value) if isinstance(value, float) else value
        for name, value in strategy.to_dict().items()
        if name != "name"
    }
    numpy_strategy = type(strategy)(**settings_)
    # Execute
    cfg = Config(aggregation_strategy=numpy_strategy, round_config=numpy_rc, seed=np.uint64(seed))
    data = cfg.to_dict()
    back = Config.from_dict(json.loads(json.dumps(data, allow_nan=False)))
    # Assert
    assert _leaf_types(data) <= {int, float, str, bool, type(None)}
    assert back == cfg
    assert back.round_config == rc
    assert back.strategy == strategy
    assert type(cfg.seed) is int
    assert type(cfg.round_config.max_rounds) is int
    assert type(cfg.round_config.min_nodes_per_round) is int
    assert type(cfg.round_config.max_failed_attempts) is int
    assert k is None or type(cfg.round_config.selection_strategy.k) is int


@given(
    value=st.floats(max_value=0.0) | st.just(math.nan) | st.just(math.inf),
    field=st.sampled_from(["learning_rate", "node_timeout_secs"]),
)
def test_non_positive_or_non_finite_rates_are_rejected(value: float, field: str) -> None:
    try:
        RoundConfig(**{field: value})
    except ConfigError as err:
        assert err.field == f"round_config.{field}"
        assert f"round_config.{field} must be" in str(err)
    else:
        raise AssertionError(f"{field}={value!r} was accepted")
