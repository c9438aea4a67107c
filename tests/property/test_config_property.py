"""Property tests for heliosfl.config: every valid config survives a JSON round trip."""

from __future__ import annotations

import json
import math

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
