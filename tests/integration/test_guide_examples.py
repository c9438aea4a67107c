"""Every engine example of the product guide, rendered in Python, run, and its outcome checked.

The guide's examples enable differential privacy (epsilon = 0.1); the quick start is
rendered with it (below) and, to check learning, without it; the other examples train
without it (tests/integration/test_privacy_engine.py covers privacy).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from federation_helpers import add_nodes

import heliosfl as fl


def quickstart_config(**round_overrides: object) -> fl.Config:
    settings: dict[str, object] = {
        "max_rounds": 100,
        "min_nodes_per_round": 10,
        "selection_strategy": fl.NodeSelectionStrategy.all(),
        "node_timeout_secs": 60,
        "target_accuracy": 0.95,
        "learning_rate": 0.01,
        "convergence_threshold": 0.001,
    }
    settings.update(round_overrides)
    return fl.Config(
        aggregation_strategy=fl.AggregationStrategy.FEDAVG,
        round_config=fl.RoundConfig(**settings),  # type: ignore[arg-type]
        enable_privacy=False,
    )


async def test_quick_start_basic_setup(breast_cancer):
    train, test = breast_cancer
    nodes = fl.data.partition(train, num_nodes=10, scheme="iid", seed=0)
    config = quickstart_config(learning_rate=0.3)
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model(
            "my_model", "neural_network", None, input_dim=30, hidden_layers=(32,), num_classes=2
        )
        coordinator = await engine.create_coordinator("my_model", validation_data=test)
        for i in range(10):
            worker_config = fl.WorkerConfig(
                node_id=f"node_{i}", local_epochs=1, batch_size=32, learning_rate=0.01 * 30
            )
            await engine.create_worker(worker_config, data=nodes[i])
            await coordinator.register_node(worker_config.node_id, len(nodes[i]))
        run = await engine.start_training("my_model")
        assert not run.done()  # start_training returns at once; training goes on in a task
        result = await run
    assert result.converged
    assert result.best_accuracy is not None and result.best_accuracy >= 0.95
    assert result.rounds_completed <= 100


async def test_quick_start_initial_params_of_the_wrong_length_are_refused():
    async with fl.FederatedLearningEngine(quickstart_config()) as engine:
        with pytest.raises(fl.ConfigError) as info:
            await engine.register_model(
                "my_model", "neural_network", [0.0] * 1000, input_dim=30, hidden_layers=(32,)
            )
    message = str(info.value)
    assert "1000" in message and "1058" in message
    assert info.value.field == "initial_params"


async def test_quick_start_all_zero_network_parameters_warn():
    async with fl.FederatedLearningEngine(quickstart_config()) as engine:
        with pytest.warns(fl.SymmetricInitWarning):
            await engine.register_model(
                "my_model", "neural_network", [0.0] * 1058, input_dim=30, hidden_layers=(32,)
            )


async def test_quick_start_with_the_guides_privacy_settings(breast_cancer):
    train, test = breast_cancer
    nodes = fl.data.partition(train, num_nodes=10, scheme="iid", seed=0)
    config = fl.Config(
        aggregation_strategy=fl.AggregationStrategy.FEDAVG,
        round_config=fl.RoundConfig(
            max_rounds=100,
            min_nodes_per_round=10,
            selection_strategy=fl.NodeSelectionStrategy.all(),
            node_timeout_secs=60,
            target_accuracy=0.95,
            learning_rate=0.01,
            convergence_threshold=0.001,
        ),
        enable_privacy=True,
        privacy_config=fl.DifferentialPrivacyConfig(
            epsilon=0.1, delta=1e-5, mechanism=fl.NoiseMechanism.GAUSSIAN
        ),
    )
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model(
            "my_model", "neural_network", None, input_dim=30, hidden_layers=(32,), num_classes=2
        )
        coordinator = await engine.create_coordinator("my_model", validation_data=test)
        for i in range(10):
            worker_config = fl.WorkerConfig(
                node_id=f"node_{i}", local_epochs=1, batch_size=32, learning_rate=0.01
            )
            await engine.create_worker(worker_config, data=nodes[i])
            await coordinator.register_node(worker_config.node_id, len(nodes[i]))
        result = await engine.train("my_model")
        spent, delta = engine.privacy_spent("my_model")
    # The noise is calibrated so that all 100 rounds would fit in epsilon = 0.1.
    assert result.rounds_completed >= 1
    assert 0.0 < spent <= 0.1 and delta == 1e-5


async def test_training_loop_manual(breast_cancer, small_nodes):
    _, test = breast_cancer
    config = quickstart_config(learning_rate=0.3, min_nodes_per_round=5)
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("my_model", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("my_model", validation_data=test)
        workers = await add_nodes(engine, coordinator, small_nodes)
        converged_at = None
        for round_index in range(100):
            selected_nodes = await coordinator.select_nodes_for_round()
            updates = []
            for worker in workers:
                if worker.node_id in selected_nodes:
                    updates.append(await worker.train_local_model())
            await coordinator.execute_round(updates)
            if await coordinator.has_converged():
                converged_at = round_index + 1
                break
        history = await coordinator.get_round_history()
    assert converged_at is not None
    assert len(history) == converged_at
    assert history[-1].validation_accuracy >= 0.95
    assert all(len(r.participating_nodes) == 10 for r in history)


async def test_hundred_node_deployment():
    nodes, test = fl.data.synthetic_sites(num_sites=100, samples_per_site=100, seed=0)
    config = quickstart_config(
        max_rounds=3, min_nodes_per_round=80, node_timeout_secs=30, learning_rate=0.05
    )
    async with fl.FederatedLearningEngine(config) as engine:
        model = await engine.register_model(
            "production_model",
            "deep_neural_network",
            input_dim=30,
            hidden_layers=(128, 48),
            num_classes=2,
        )
        assert 9_000 <= model.num_params <= 11_000  # the guide's "large model" of ~10,000
        coordinator = await engine.create_coordinator("production_model", validation_data=test)
        deployed = []
        for i in range(100):
            worker_config = fl.WorkerConfig(
                node_id=f"prod_node_{i:03d}", local_epochs=1, batch_size=32, learning_rate=0.05
            )
            await engine.create_worker(worker_config, data=nodes[i])
            await coordinator.register_node(worker_config.node_id, len(nodes[i]))
            if (i + 1) % 10 == 0:
                deployed.append(i + 1)
        assert deployed == list(range(10, 101, 10))
        listed = await coordinator.list_nodes()
        assert [n.node_id for n in listed] == [f"prod_node_{i:03d}" for i in range(100)]
        result = await engine.train("production_model")
    assert result.rounds_completed == 3
    assert result.stop_reason is fl.StopReason.MAX_ROUNDS


async def test_monitoring_and_health_checks(breast_cancer, small_nodes):
    _, test = breast_cancer
    config = quickstart_config(max_rounds=4, min_nodes_per_round=5, learning_rate=0.3)
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        await add_nodes(engine, coordinator, small_nodes, faults={0: fl.NodeFault.crash()})
        run = await engine.start_training("m")
        await asyncio.sleep(0)
        assert (await coordinator.get_state()).is_training
        await run
        state = await coordinator.get_state()
        nodes = await coordinator.list_nodes()
    assert state.current_round == 4 and state.total_rounds == 4
    assert not state.is_training
    assert state.best_accuracy is not None and 0.5 < state.best_accuracy <= 1.0
    assert state.best_loss is not None and state.best_loss > 0
    active = sum(1 for n in nodes if n.available)
    uptime = active / len(nodes) * 100
    # node_000 crashes every round: after three consecutive failures it is unavailable.
    assert len(nodes) == 10 and active == 9 and uptime == pytest.approx(90.0)
    crashed = next(n for n in nodes if n.node_id == "node_000")
    assert not crashed.available and crashed.failures == 3 and crashed.rounds_participated == 0
    assert "crash" in (crashed.last_error or "")
    assert all(n.rounds_participated == 4 for n in nodes if n.node_id != "node_000")


async def test_failure_recovery(breast_cancer):
    train, test = breast_cancer
    nodes = fl.data.partition(train, num_nodes=100, scheme="iid", seed=0)
    config = quickstart_config(max_rounds=2, min_nodes_per_round=80, learning_rate=0.3)
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        await add_nodes(engine, coordinator, nodes)

        async def handle_node_failure(failed_node_id: str) -> int:
            await coordinator.unregister_node(failed_node_id)
            listed = await coordinator.list_nodes()
            active_count = sum(1 for n in listed if n.available)
            if active_count < 80:
                raise fl.InsufficientNodes(required=80, available=active_count)
            return active_count

        async def recover_failed_node(node_id: str, data: fl.NodeData) -> None:
            worker_config = fl.WorkerConfig(
                node_id=node_id, local_epochs=1, batch_size=32, learning_rate=0.3
            )
            await engine.create_worker(worker_config, data=data)
            await coordinator.register_node(node_id, len(data))

        for i in range(20):
            assert await handle_node_failure(f"node_{i:03d}") == 99 - i
        with pytest.raises(fl.InsufficientNodes) as lost:
            await handle_node_failure("node_020")
        assert lost.value.required == 80 and lost.value.available == 79
        with pytest.raises(fl.InsufficientNodes):
            await coordinator.run_round()  # the coordinator enforces the same quorum
        await recover_failed_node("node_000", nodes[0])
        record = await coordinator.run_round()
    assert "node_000" in record.participating_nodes
    assert len(record.participating_nodes) == 80


async def test_robust_training_with_timeouts(breast_cancer, small_nodes):
    _, test = breast_cancer
    config = quickstart_config(max_rounds=100, min_nodes_per_round=3, learning_rate=0.3)
    faults = {0: fl.NodeFault.hang(), 1: fl.NodeFault.crash()}
    failures: list[str] = []
    completed: list[int] = []
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        workers = await add_nodes(engine, coordinator, small_nodes, faults=faults)
        for round_index in range(5):
            try:
                selected_nodes = await coordinator.select_nodes_for_round()
            except fl.FederatedLearningError as exc:
                failures.append(f"select: {exc}")
                continue
            updates = []
            for worker in workers:
                if worker.node_id in selected_nodes:
                    try:
                        async with asyncio.timeout(0.2):
                            updates.append(await worker.train_local_model())
                    except TimeoutError:
                        failures.append(f"{worker.node_id} timed out")
                    except fl.NodeFailure as exc:
                        failures.append(f"{worker.node_id} failed: {exc.reason}")
            if len(updates) < len(selected_nodes) / 2:
                continue
            try:
                await coordinator.execute_round(updates)
                completed.append(round_index)
            except fl.FederatedLearningError as exc:
                failures.append(f"round {round_index}: {exc}")
        history = await coordinator.get_round_history()
    assert completed == [0, 1, 2, 3, 4]
    # After three consecutive failures a node is marked unavailable and no longer selected.
    assert failures.count("node_000 timed out") == 3
    assert sum("node_001 failed" in f for f in failures) == 3
    for record in history:
        assert len(record.participating_nodes) == 8
    missing = {"node_000": "no update received", "node_001": "no update received"}
    assert [r.failed_nodes for r in history] == [missing] * 3 + [{}] * 2
    assert [len(r.selected_nodes) for r in history] == [10, 10, 10, 8, 8]


async def test_troubleshooting_insufficient_nodes(small_nodes):
    config = quickstart_config(min_nodes_per_round=20)
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m")
        await add_nodes(engine, coordinator, small_nodes)
        with pytest.raises(fl.InsufficientNodes, match="Insufficient nodes") as info:
            await engine.train("m")
    assert info.value.required == 20 and info.value.available == 10
    # The guide's remedy: reduce min_nodes_per_round.
    fixed = quickstart_config(min_nodes_per_round=5, max_rounds=2)
    async with fl.FederatedLearningEngine(fixed) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m")
        await add_nodes(engine, coordinator, small_nodes)
        result = await engine.train("m")
    assert result.rounds_completed == 2


async def test_troubleshooting_convergence_not_reached(breast_cancer, small_nodes):
    _, test = breast_cancer
    config = quickstart_config(max_rounds=3, min_nodes_per_round=5, target_accuracy=0.999)
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        await add_nodes(engine, coordinator, small_nodes)
        with pytest.raises(fl.ConvergenceNotReached) as info:
            await engine.train("m", require_convergence=True)
    assert info.value.rounds == 3 and info.value.target == 0.999
    # The guide's remedies: more rounds, another learning rate, a relaxed threshold.
    relaxed = quickstart_config(
        max_rounds=200, min_nodes_per_round=5, learning_rate=0.3, convergence_threshold=0.01
    )
    async with fl.FederatedLearningEngine(relaxed) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        await add_nodes(engine, coordinator, small_nodes)
        result = await engine.train("m", require_convergence=True)
    assert result.converged


async def test_debugging_tools_round_history_and_node_health(breast_cancer, small_nodes):
    _, test = breast_cancer
    config = quickstart_config(max_rounds=3, min_nodes_per_round=5, learning_rate=0.3)
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        await add_nodes(engine, coordinator, small_nodes)
        await engine.train("m")
        history = await coordinator.get_round_history()
        lines = [
            f"Round {r.round_number}: {len(r.participating_nodes)} nodes, loss: {r.aggregated_loss}"
            for r in history
        ]
        health = [
            f"Node {n.node_id}: available={n.available}, rounds={n.rounds_participated}"
            for n in await coordinator.list_nodes()
        ]
    assert [r.round_number for r in history] == [1, 2, 3]
    assert lines[0].startswith("Round 1: 10 nodes, loss: 0.")
    losses = [r.aggregated_loss for r in history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert health[0] == "Node node_000: available=True, rounds=3"
