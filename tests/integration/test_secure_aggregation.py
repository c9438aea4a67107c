"""Secure aggregation in the engine: exact sums, dropouts, DP, events, what the coordinator sees."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import heliosfl as fl
from heliosfl.secagg import SecureNode

SEED = 4


def secure(**overrides: Any) -> fl.SecureAggregationConfig:
    return fl.SecureAggregationConfig(enabled=True, **overrides)


def config(*, secure_aggregation: fl.SecureAggregationConfig | None = None, **kw: Any) -> fl.Config:
    rounds: dict[str, Any] = {
        "max_rounds": 10,
        "min_nodes_per_round": 3,
        "learning_rate": 0.05,
        "convergence_threshold": 0.0,
    }
    rounds.update(kw.pop("round_overrides", {}))
    return fl.Config(
        round_config=fl.RoundConfig(**rounds),
        seed=SEED,
        secure_aggregation=secure_aggregation or fl.SecureAggregationConfig(),
        **kw,
    )


async def federation(
    cfg: fl.Config,
    nodes: list[fl.NodeData],
    test: fl.NodeData,
    *,
    faults: dict[int, fl.NodeFault] | None = None,
    hidden: tuple[int, ...] = (8,),
) -> tuple[fl.FederatedLearningEngine, fl.Coordinator]:
    engine = fl.FederatedLearningEngine(cfg)
    await engine.register_model("m", "mlp", input_dim=nodes[0].num_features, hidden_layers=hidden)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    for i, data in enumerate(nodes):
        wc = fl.WorkerConfig(node_id=f"n{i:03d}", batch_size=32)
        await engine.create_worker(wc, data=data, fault=(faults or {}).get(i))
        await coordinator.register_node(wc.node_id, len(data))
    return engine, coordinator


def sites(n: int, features: int = 10) -> tuple[list[fl.NodeData], fl.NodeData]:
    return fl.data.synthetic_sites(
        num_sites=n, samples_per_site=40, num_features=features, test_samples=200, seed=1
    )


# ----------------------------------------------------------------------------- the bar
async def test_100_nodes_10k_parameters_10pc_dropouts_match_fedavg_over_survivors():
    nodes, test = fl.data.synthetic_sites(
        num_sites=100, samples_per_site=80, num_features=30, test_samples=200, seed=0
    )
    faults = {i: fl.NodeFault.crash() for i in range(3, 100, 10)}  # 10 nodes drop
    plain_engine, plain = await federation(
        config(round_overrides={"min_nodes_per_round": 50}),
        nodes,
        test,
        faults=faults,
        hidden=(128, 48),
    )
    engine, coordinator = await federation(
        config(secure_aggregation=secure(), round_overrides={"min_nodes_per_round": 50}),
        nodes,
        test,
        faults=faults,
        hidden=(128, 48),
    )
    assert coordinator.params.size == 10_258

    expected = await plain.run_round()
    record = await coordinator.run_round()

    assert record.participating_nodes == expected.participating_nodes
    assert len(record.participating_nodes) == 90
    assert set(record.failed_nodes) == {f"n{i:03d}" for i in range(3, 100, 10)}
    step = 2 * 1.0 / (2**16 - 1)  # one quantisation level of the default settings
    assert np.max(np.abs(coordinator.params - plain.params)) <= step
    assert np.max(np.abs(coordinator.params - plain.params)) > 0  # it was quantised
    await engine.aclose()
    await plain_engine.aclose()


# ----------------------------------------------------------------------------- dropouts
async def test_a_node_lost_after_its_masked_input_still_counts():
    nodes, test = sites(12)
    engine, coordinator = await federation(config(secure_aggregation=secure()), nodes, test)
    _, plain = await federation(config(), nodes, test)

    def drop_after_input(event: fl.events.Event) -> None:
        if isinstance(event, fl.events.NodeFinished) and event.node_id == "n005":
            engine.get_worker("n005").set_online(False)  # gone before the unmask stage

    engine.events.add_listener(drop_after_input)
    record = await coordinator.run_round()
    await plain.run_round()

    assert "n005" in record.participating_nodes
    assert np.max(np.abs(coordinator.params - plain.params)) <= 2 / (2**16 - 1)


async def test_too_few_survivors_fails_the_round_and_leaves_the_model_unchanged():
    nodes, test = sites(10)
    faults = {i: fl.NodeFault.crash() for i in range(5)}
    _, coordinator = await federation(
        config(secure_aggregation=secure(threshold=0.6)), nodes, test, faults=faults
    )
    before = np.array(coordinator.params)

    with pytest.raises(fl.SecureAggregationError, match=r"at least 7 nodes .* Found 5"):
        await coordinator.run_round()

    np.testing.assert_array_equal(coordinator.params, before)
    (attempt,) = await coordinator.get_round_history(include_failed=True)
    assert attempt.status is fl.RoundStatus.FAILED
    assert coordinator.current_round == 0


async def test_offline_nodes_drop_at_key_advertisement():
    nodes, test = sites(8)
    engine, coordinator = await federation(config(secure_aggregation=secure()), nodes, test)
    engine.get_worker("n002").set_online(False)
    record = await coordinator.run_round()
    assert "unreachable" in record.failed_nodes["n002"]
    assert len(record.participating_nodes) == 7


async def test_two_nodes_are_refused_and_a_wrapping_modulus_is_refused_before_training():
    nodes, test = sites(8)
    _, coordinator = await federation(
        config(
            secure_aggregation=secure(quantization_bits=16, modulus_bits=20),
            round_overrides={"min_nodes_per_round": 2},
        ),
        nodes,
        test,
    )
    with pytest.raises(fl.ConfigError, match="modulus_bits"):
        await coordinator.run_round()
    assert coordinator.current_round == 0
    _, pair = await federation(
        config(secure_aggregation=secure(), round_overrides={"min_nodes_per_round": 2}),
        nodes[:2],
        test,
    )
    with pytest.raises(fl.SecureAggregationError, match="at least 3 nodes"):
        await pair.run_round()


async def test_the_manual_loop_is_refused_under_secure_aggregation():
    nodes, test = sites(5)
    engine, coordinator = await federation(config(secure_aggregation=secure()), nodes, test)
    await coordinator.select_nodes_for_round()
    update = await engine.get_worker("n000").train_local_model()
    with pytest.raises(fl.ConfigError, match="secure aggregation"):
        await coordinator.execute_round([update])


# ----------------------------------------------------------------------------- privacy
def private(noise: str, **privacy: Any) -> fl.Config:
    return config(
        secure_aggregation=secure(noise=noise),
        enable_privacy=True,
        privacy_config=fl.DifferentialPrivacyConfig(
            epsilon=20.0, delta=1e-5, reproducible_noise=True, **privacy
        ),
    )


@pytest.mark.parametrize("noise", ["central", "distributed"])
async def test_private_secure_rounds_are_charged_the_same_event(noise):
    nodes, test = sites(12)
    engine, coordinator = await federation(private(noise), nodes, test)
    plain_engine, plain = await federation(
        config(
            enable_privacy=True,
            privacy_config=fl.DifferentialPrivacyConfig(
                epsilon=20.0, delta=1e-5, reproducible_noise=True
            ),
        ),
        nodes,
        test,
    )
    await coordinator.run_round()
    await plain.run_round()

    (entry,) = engine.workspace.privacy_ledger("m")
    (reference,) = plain_engine.workspace.privacy_ledger("m")
    assert entry["event"] == reference["event"]
    assert entry["secure_aggregation"] == noise
    assert engine.privacy_spent("m") == plain_engine.privacy_spent("m")
    if noise == "central":  # same noise draw; differences are clipping room and rounding
        assert np.max(np.abs(coordinator.params - plain.params)) < 1e-2


async def test_secure_aggregation_refuses_adaptive_clipping_and_distributed_laplace():
    with pytest.raises(fl.ConfigError, match="adaptive_clipping"):
        private("central", adaptive_clipping=True)
    with pytest.raises(fl.ConfigError, match=r"secure_aggregation\.noise"):
        private("distributed", mechanism=fl.NoiseMechanism.LAPLACE)


# ----------------------------------------------------------------------------- events
async def test_the_event_stream_is_intact_in_a_secure_round():
    nodes, test = sites(10)
    faults = {2: fl.NodeFault.crash()}
    engine, _ = await federation(
        config(secure_aggregation=secure(), round_overrides={"max_rounds": 2}),
        nodes,
        test,
        faults=faults,
    )
    seen: list[fl.events.Event] = []
    engine.events.add_listener(seen.append)

    result = await engine.train("m")

    assert result.current_round == 2
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "TrainingStarted" and kinds[-1] == "TrainingFinished"
    assert kinds.count("RoundStarted") == 2 and kinds.count("RoundCompleted") == 2
    finished = [e for e in seen if isinstance(e, fl.events.NodeFinished)]
    failed = [e for e in seen if isinstance(e, fl.events.NodeFailed)]
    assert len(finished) == 18 and {e.node_id for e in failed} == {"n002"}


# ----------------------------------------------------------------------- what the coordinator holds
def _arrays(value: Any, depth: int = 0) -> Iterator[npt.NDArray[Any]]:
    if isinstance(value, np.ndarray):
        yield value
    elif depth < 3 and isinstance(value, dict):
        for item in value.values():
            yield from _arrays(item, depth + 1)
    elif depth < 3 and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _arrays(item, depth + 1)
    elif depth < 3 and hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _arrays(getattr(value, name, None), depth + 1)


COORDINATOR_SIDE = ("heliosfl/coordinator.py", "heliosfl/secure_rounds.py", "heliosfl/dispatch.py")


@pytest.mark.parametrize("secure_round", [True, False])
async def test_the_coordinator_never_holds_an_unmasked_update(monkeypatch, secure_round):
    """Trace every coordinator-side frame (all threads) and compare what it held.

    The same instrument on a plain round finds the updates, so it can see them.
    """
    nodes, test = sites(6, features=4)
    private_values: list[npt.NDArray[Any]] = []
    protect = SecureNode.protect
    train_plain = fl.FederatedWorker._train_plain

    def recording(self: SecureNode, model_id: str, spec: Any, delta: Any, *args: Any) -> Any:
        private_values.append(spec.quantizer.encode(delta, np.random.default_rng(0)))
        return protect(self, model_id, spec, delta, *args)

    def plain_recording(self: fl.FederatedWorker, *args: Any) -> Any:
        update = train_plain(self, *args)
        private_values.append(np.array(update.delta))
        return update

    monkeypatch.setattr(SecureNode, "protect", recording)
    monkeypatch.setattr(fl.FederatedWorker, "_train_plain", plain_recording)
    held: list[npt.NDArray[Any]] = []
    armed = threading.Event()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if not armed.is_set():
            return tracer
        name = frame.f_code.co_filename.replace("\\", "/")
        server = "secagg/protocol.py" in name and frame.f_code.co_qualname.startswith(
            "SecAggServer"
        )
        if event == "return" and (server or name.endswith(COORDINATOR_SIDE)):
            for value in [*frame.f_locals.values(), arg]:
                held.extend(a.copy() for a in _arrays(value))
        return tracer

    # before any thread exists: the loop's executor and the backend's lanes are traced too
    threading.settrace(tracer)
    sys.settrace(tracer)
    try:
        cfg = config(secure_aggregation=secure()) if secure_round else config()
        engine, coordinator = await federation(cfg, nodes, test, hidden=(3,))
        armed.set()
        await coordinator.run_round()
    finally:
        armed.clear()
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
    await engine.aclose()

    assert len(private_values) == (12 if secure_round else 6) and len(held) > 50
    leaks = [
        1
        for secret in private_values
        for array in held
        if (array.shape == secret.shape and np.array_equal(array, secret))
        or (array.shape == (secret.size + 1,) and np.array_equal(array[:-1], secret))
    ]
    if secure_round:
        assert leaks == []
    else:
        assert len(leaks) >= 6  # the instrument sees plain updates


async def test_a_stage_gives_up_on_nodes_at_its_timeout():
    from heliosfl.secure_rounds import SecureRounds

    rounds = SecureRounds(config(secure_aggregation=secure(stage_timeout_secs=0.05)), "m")
    release = threading.Event()

    def step(node_id: str) -> str:
        if node_id == "slow":
            release.wait(5)  # a node that does not answer within the stage
        return node_id.upper()

    failures: dict[str, str] = {}
    done = await rounds._stage("advertise", ["a", "slow", "z"], step, failures)
    release.set()

    assert done == {"a": "A"}
    assert failures == {
        "slow": "timeout in secure aggregation stage 'advertise'",
        "z": "timeout in secure aggregation stage 'advertise'",
    }
