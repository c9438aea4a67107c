"""Engine behaviour: timeouts, failures, quorum, determinism, cancellation, events, resume."""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np
import pytest
from federation_helpers import add_nodes, round_config

import heliosfl as fl
from heliosfl.events import NodeFailed, RoundCompleted, RoundStarted, TrainingFinished


async def build(
    nodes, *, test=None, faults=None, model="logistic_regression", workspace=None, **rc
) -> tuple[fl.FederatedLearningEngine, fl.Coordinator]:
    seed = rc.pop("seed", 0)
    strategy = rc.pop("strategy", fl.AggregationStrategy.FEDAVG)
    config = fl.Config(aggregation_strategy=strategy, round_config=round_config(**rc), seed=seed)
    engine = fl.FederatedLearningEngine(config, workspace=workspace)
    await engine.register_model("m", model, input_dim=30)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    await add_nodes(engine, coordinator, nodes, faults=faults)
    return engine, coordinator


class SlowModel(fl.models.LogisticRegression):
    """A user model whose every gradient takes ``delay`` seconds (holds no stop flag)."""

    def __init__(self, delay: float) -> None:
        super().__init__(30)
        self.delay = delay

    def loss_and_grad(self, params, X, y):
        time.sleep(self.delay)
        return super().loss_and_grad(params, X, y)


# --------------------------------------------------------------------------- timeouts
async def test_a_hanging_node_costs_the_round_at_most_its_timeout(small_nodes):
    engine, coordinator = await build(
        small_nodes, node_timeout_secs=0.3, faults={4: fl.NodeFault.hang()}
    )
    async with engine:
        started = time.perf_counter()
        record = await coordinator.run_round()
        elapsed = time.perf_counter() - started
    assert elapsed < 0.3 + 0.25, f"round took {elapsed:.3f} s with a 0.3 s timeout"
    assert elapsed >= 0.3
    assert "node_004" not in record.participating_nodes
    assert len(record.participating_nodes) == 9  # the other nodes' updates are used
    assert record.failed_nodes == {"node_004": "timeout: no update within 0.3 s"}
    assert record.timed_out_nodes == ("node_004",)


def _threads_inside(function_name: str) -> int:
    """How many threads are currently executing a function of that name."""
    count = 0
    for frame in sys._current_frames().values():
        while frame is not None:
            if frame.f_code.co_name == function_name:
                count += 1
                break
            frame = frame.f_back
    return count


async def test_a_simulated_hang_occupies_no_thread(small_nodes):
    engine, coordinator = await build(
        small_nodes, node_timeout_secs=0.3, faults={0: fl.NodeFault.hang()}
    )
    async with engine:
        task = asyncio.create_task(coordinator.run_round())
        await asyncio.sleep(0.15)
        assert not task.done()  # the round waits for node_000 until its timeout...
        assert _threads_inside("_train_sync") == 0  # ...but no thread is held by the hang
        record = await task
    assert record.timed_out_nodes == ("node_000",)


class StuckOnMarkedRows(fl.models.LogisticRegression):
    """User code that ignores the stop flag: 0.6 s per batch on rows whose feature 0 is 999."""

    def loss_and_grad(self, params, X, y):
        if X[0, 0] == 999.0:
            time.sleep(0.6)
        return super().loss_and_grad(params, X, y)


async def test_code_that_ignores_its_stop_flag_does_not_hold_up_the_round(small_nodes):
    marked = small_nodes[0].X.copy()
    marked[:, 0] = 999.0
    nodes = [fl.NodeData(marked, small_nodes[0].y), *small_nodes[1:5]]
    config = fl.Config(round_config=round_config(node_timeout_secs=0.2, min_nodes_per_round=1))
    async with fl.FederatedLearningEngine(config) as engine:  # one lane by default
        await engine.register_model("m", StuckOnMarkedRows(30))
        coordinator = await engine.create_coordinator("m")
        await add_nodes(engine, coordinator, nodes)
        started = time.perf_counter()
        record = await coordinator.run_round()
        elapsed = time.perf_counter() - started
    assert record.timed_out_nodes == ("node_000",)
    assert record.participating_nodes == ("node_001", "node_002", "node_003", "node_004")
    assert elapsed < 0.5, f"the stuck node held the round for {elapsed:.2f} s"


async def test_a_user_model_that_is_too_slow_times_out(small_nodes, breast_cancer):
    config = fl.Config(round_config=round_config(node_timeout_secs=0.2, min_nodes_per_round=1))
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", SlowModel(delay=0.5))
        coordinator = await engine.create_coordinator("m")
        await add_nodes(engine, coordinator, small_nodes[:2])
        started = time.perf_counter()
        with pytest.raises(fl.InsufficientNodes) as info:
            await coordinator.run_round()
        # Each node is abandoned after 0.2 s of its own time (plus the watchdog's grace),
        # one after the other on the single lane; unabandoned they would take 2 s.
        assert time.perf_counter() - started < 0.8
        assert info.value.available == 0
        assert engine.get_params("m").tolist() == engine._initial["m"].tolist()


async def test_failed_nodes_are_recorded_and_do_not_stop_the_round(small_nodes):
    faults = {1: fl.NodeFault.crash(), 2: fl.NodeFault.crash()}
    engine, coordinator = await build(small_nodes, faults=faults)
    async with engine:
        record = await coordinator.run_round()
    assert record.participating_nodes == tuple(
        f"node_{i:03d}" for i in range(10) if i not in (1, 2)
    )
    assert set(record.failed_nodes) == {"node_001", "node_002"}
    assert all("SimulatedCrash" in why for why in record.failed_nodes.values())


async def test_too_few_updates_leave_the_model_unchanged_and_raise(small_nodes):
    faults = {i: fl.NodeFault.crash() for i in range(8)}
    engine, coordinator = await build(small_nodes, faults=faults, min_nodes_per_round=3)
    async with engine:
        before = engine.get_params("m")
        with pytest.raises(fl.InsufficientNodes) as info:
            await coordinator.run_round()
        after = engine.get_params("m")
        history = await coordinator.get_round_history(include_failed=True)
        assert await coordinator.get_round_history() == []
        stored = engine.workspace.rounds("m", include_failed=True)
    assert info.value.required == 3 and info.value.available == 2
    np.testing.assert_array_equal(before, after)
    assert coordinator.current_round == 0
    assert [r.status for r in history] == [fl.RoundStatus.FAILED]
    assert stored[0]["status"] == "failed"


async def test_automatic_run_stops_after_repeated_quorum_failures(small_nodes):
    faults = {i: fl.NodeFault(crash_probability=0.9) for i in range(10)}
    engine, coordinator = await build(
        small_nodes, faults=faults, min_nodes_per_round=5, max_failed_attempts=2, max_rounds=50
    )
    async with engine:
        with pytest.raises(fl.InsufficientNodes):
            await engine.train("m")
        state = await coordinator.get_state()
    assert not state.is_training
    assert state.stop_reason is None


# ------------------------------------------------------------------ manual round checks
async def test_execute_round_rejects_bad_updates_with_reasons(small_nodes):
    engine, coordinator = await build(small_nodes[:4], min_nodes_per_round=1)
    async with engine:
        await coordinator.select_nodes_for_round()
        good = await engine.get_worker("node_000").train_local_model()
        nan = await engine.get_worker("node_001").train_local_model()
        nan = fl.ModelUpdate(
            model_id="m",
            node_id=nan.node_id,
            round_number=1,
            delta=np.full_like(nan.delta, np.nan),
            num_samples=nan.num_samples,
            loss=nan.loss,
        )
        short = fl.ModelUpdate(
            model_id="m",
            node_id="node_002",
            round_number=1,
            delta=np.zeros(3),
            num_samples=5,
            loss=0.1,
        )
        stale = fl.ModelUpdate(
            model_id="m",
            node_id="node_003",
            round_number=7,
            delta=np.zeros_like(good.delta),
            num_samples=5,
            loss=0.1,
        )
        record = await coordinator.execute_round([good, good, nan, short, stale])
    assert record.participating_nodes == ("node_000",)
    reasons = record.failed_nodes
    assert "non-finite" in reasons["node_001"]
    assert "shape" in reasons["node_002"]
    assert "stale" in reasons["node_003"]
    assert "node_000" not in reasons  # a duplicate is refused without undoing the first


async def test_manual_calls_are_refused_while_a_run_is_in_progress(small_nodes):
    engine, coordinator = await build(small_nodes, max_rounds=50)
    async with engine:
        run = await engine.start_training("m")
        await asyncio.sleep(0)
        with pytest.raises(fl.ConfigError, match="no training run"):
            await coordinator.select_nodes_for_round()
        with pytest.raises(fl.ConfigError, match="no training run"):
            await engine.start_training("m")
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run


# ------------------------------------------------------------------ determinism
async def _run_once(nodes, test, seed, **rc):
    engine, coordinator = await build(
        nodes,
        test=test,
        seed=seed,
        selection_strategy=fl.NodeSelectionStrategy.random(k=5),
        **rc,
    )
    async with engine:
        await engine.train("m")
        history = await coordinator.get_round_history()
        return engine.get_params("m"), history


async def test_the_same_seed_reproduces_a_run_exactly(small_nodes, breast_cancer):
    _, test = breast_cancer
    params_a, history_a = await _run_once(small_nodes, test, seed=3)
    params_b, history_b = await _run_once(small_nodes, test, seed=3)
    params_c, history_c = await _run_once(small_nodes, test, seed=4)
    np.testing.assert_array_equal(params_a, params_b)
    assert [r.selected_nodes for r in history_a] == [r.selected_nodes for r in history_b]
    assert [r.aggregated_loss for r in history_a] == [r.aggregated_loss for r in history_b]
    assert [r.selected_nodes for r in history_a] != [r.selected_nodes for r in history_c]
    assert not np.array_equal(params_a, params_c)


async def test_results_do_not_depend_on_finishing_order(small_nodes):
    faults = {i: fl.NodeFault(delay_secs=0.01 * (10 - i)) for i in range(10)}
    engine, _ = await build(small_nodes, faults=faults, max_rounds=2)
    async with engine:
        await engine.train("m")
        slow_first = engine.get_params("m")
    engine, _coordinator = await build(small_nodes, max_rounds=2)
    async with engine:
        await engine.train("m")
        plain = engine.get_params("m")
    np.testing.assert_array_equal(slow_first, plain)


# ------------------------------------------------------------------ strategies
@pytest.mark.parametrize(
    "strategy",
    [
        fl.FedAvg(),
        fl.FedProx(mu=0.1),
        fl.FedOpt.adam(server_learning_rate=0.05),
        fl.FedYogi(server_learning_rate=0.05),
        fl.FedAdagrad(server_learning_rate=0.05),
    ],
    ids=lambda s: s.to_dict()["name"] + "-" + str(s.to_dict().get("optimizer", "")),
)
async def test_every_strategy_trains_through_the_engine(strategy, small_nodes, breast_cancer):
    _, test = breast_cancer
    engine, coordinator = await build(small_nodes, test=test, strategy=strategy, max_rounds=8)
    async with engine:
        result = await engine.train("m")
        history = await coordinator.get_round_history()
    assert result.rounds_completed == 8
    assert history[-1].validation_loss < history[0].validation_loss
    assert result.best_accuracy > 0.9


async def test_fedprox_pulls_local_models_toward_the_global_one(small_nodes):
    deltas = {}
    for mu in (0.0, 1.0):
        engine, coordinator = await build(small_nodes, strategy=fl.FedProx(mu=mu))
        async with engine:
            await coordinator.select_nodes_for_round()
            update = await engine.get_worker("node_000").train_local_model()
            deltas[mu] = float(np.linalg.norm(update.delta))
    assert deltas[1.0] < deltas[0.0]


# ------------------------------------------------------------------ selection through the engine
async def test_selection_strategies_pick_as_documented(small_nodes):
    engine, coordinator = await build(
        small_nodes,
        selection_strategy=fl.NodeSelectionStrategy.best_performance(k=4),
        min_nodes_per_round=4,
        max_rounds=4,
    )
    async with engine:
        await engine.train("m")
        history = await coordinator.get_round_history()
    picked = [set(r.selected_nodes) for r in history]
    # never-measured nodes are tried first: the first rounds cover new nodes
    assert picked[0].isdisjoint(picked[1])
    assert len(picked[0] | picked[1] | picked[2]) >= 10 - 2


async def test_most_data_selection_uses_registered_counts(small_nodes):
    engine, coordinator = await build(
        small_nodes,
        selection_strategy=fl.NodeSelectionStrategy.most_data(k=2),
    )
    async with engine:
        await coordinator.register_node("node_007", 10_000)
        await coordinator.register_node("node_003", 5_000)
        selected = await coordinator.select_nodes_for_round()
    assert selected == ["node_003", "node_007"]


# ------------------------------------------------------------------ runs and events
async def test_start_training_returns_at_once_and_the_loop_stays_responsive(small_nodes):
    engine, _coordinator = await build(small_nodes, max_rounds=15)
    async with engine:
        gaps = []

        async def ticker(stop: asyncio.Event) -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        started = time.perf_counter()
        run = await engine.start_training("m")
        assert time.perf_counter() - started < 0.05
        assert not run.done()
        result = await run
        stop.set()
        await tick
    assert result.rounds_completed == 15
    assert max(gaps) < 0.2, f"the event loop was blocked for {max(gaps):.3f} s"


async def test_cancelling_a_run_leaves_the_last_committed_round(small_nodes, tmp_path):
    faults = {i: fl.NodeFault(delay_secs=0.02) for i in range(10)}
    workspace = fl.Workspace(tmp_path / "ws.db")
    engine, coordinator = await build(
        small_nodes, faults=faults, max_rounds=1000, workspace=workspace
    )
    async with engine:
        run = await engine.start_training("m")
        while coordinator.current_round < 2:
            await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        committed = coordinator.current_round
        assert not coordinator.is_training
        assert workspace.last_round("m") == committed
        np.testing.assert_array_equal(
            workspace.latest_checkpoint("m").params, engine.get_params("m")
        )
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending == []
    workspace.close()


async def test_events_reach_fast_and_slow_subscribers(small_nodes):
    engine, _coordinator = await build(small_nodes, max_rounds=3, faults={0: fl.NodeFault.crash()})
    async with engine:
        fast = engine.events.subscribe(model_id="m")
        slow = engine.events.subscribe(maxsize=2)
        await engine.train("m")
        seen = []
        while (event := fast.get_nowait()) is not None:
            seen.append(event)
        slow_seen = []
        while (event := slow.get_nowait()) is not None:
            slow_seen.append(event)
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "TrainingStarted" and kinds[-1] == "TrainingFinished"
    assert kinds.count("RoundStarted") == 3 and kinds.count("RoundCompleted") == 3
    assert kinds.count("NodeFinished") == 27
    assert sum(isinstance(e, NodeFailed) for e in seen) == 3
    assert [e.record.round_number for e in seen if isinstance(e, RoundCompleted)] == [1, 2, 3]
    assert isinstance(seen[1], RoundStarted)
    # the slow subscriber lost progress but not the end of the run
    assert len(slow_seen) == 2 and isinstance(slow_seen[-1], TrainingFinished)
    assert slow.dropped == len(seen) - 2
    assert slow_seen[-1].result.stop_reason is fl.StopReason.MAX_ROUNDS


# ------------------------------------------------------------------ workspace and resume
async def test_resume_after_a_restart_continues_bit_for_bit(small_nodes, breast_cancer, tmp_path):
    _, test = breast_cancer
    path = tmp_path / "experiment.db"
    strategy = fl.FedOpt.adam(server_learning_rate=0.05)  # stateful: moments must survive too
    engine, _ = await build(
        small_nodes,
        test=test,
        max_rounds=6,
        strategy=strategy,
        selection_strategy=fl.NodeSelectionStrategy.random(k=6),
    )
    async with engine:
        await engine.train("m")
        uninterrupted = engine.get_params("m")
        reference = await engine.get_coordinator("m").get_round_history()

    first = fl.Workspace(path)
    engine, _ = await build(
        small_nodes,
        test=test,
        max_rounds=3,
        strategy=strategy,
        workspace=first,
        selection_strategy=fl.NodeSelectionStrategy.random(k=6),
    )
    async with engine:
        await engine.train("m")
    first.close()  # the "kernel" ends

    second = fl.Workspace(path)
    config = fl.Config(
        aggregation_strategy=strategy,
        round_config=round_config(
            max_rounds=6, selection_strategy=fl.NodeSelectionStrategy.random(k=6)
        ),
    )
    async with fl.FederatedLearningEngine(config, workspace=second) as engine:
        coordinator = await engine.resume("m", validation_data=test)
        assert coordinator.current_round == 3
        await add_nodes(engine, coordinator, small_nodes)
        result = await engine.train("m")
        resumed = engine.get_params("m")
        history = await coordinator.get_round_history()
    second.close()
    assert result.rounds_completed == 3 and result.current_round == 6
    np.testing.assert_array_equal(resumed, uninterrupted)
    assert [r.round_number for r in history] == [1, 2, 3, 4, 5, 6]
    assert [r.selected_nodes for r in history] == [r.selected_nodes for r in reference]


async def test_a_persistent_model_cannot_be_registered_twice(small_nodes, tmp_path):
    path = tmp_path / "ws.db"
    with fl.Workspace(path) as workspace:
        engine, _ = await build(small_nodes, workspace=workspace, max_rounds=1)
        async with engine:
            await engine.train("m")
    with fl.Workspace(path) as workspace:
        async with fl.FederatedLearningEngine(workspace=workspace) as engine:
            with pytest.raises(fl.ConfigError, match="resume"):
                await engine.register_model("m", "logistic_regression", input_dim=30)
            assert workspace.last_round("m") == 1  # nothing lost


async def test_resume_of_an_unknown_model_names_the_known_ones(tmp_path):
    with fl.Workspace(tmp_path / "ws.db") as workspace:
        async with fl.FederatedLearningEngine(workspace=workspace) as engine:
            await engine.register_model("known", "logistic_regression", input_dim=4)
        async with fl.FederatedLearningEngine(workspace=workspace) as engine:
            with pytest.raises(fl.ModelNotFound, match="known"):
                await engine.resume("unknown")


# ------------------------------------------------------------------ lifecycle and errors
async def test_closed_engine_refuses_use():
    engine = fl.FederatedLearningEngine()
    await engine.aclose()
    with pytest.raises(fl.ClosedError):
        await engine.register_model("m", "logistic_regression", input_dim=3)


async def test_unknown_model_and_node_errors(small_nodes):
    engine, coordinator = await build(small_nodes[:2])
    async with engine:
        with pytest.raises(fl.ModelNotFound, match="'m'"):
            await engine.start_training("nope")
        with pytest.raises(fl.NodeNotFound):
            await coordinator.unregister_node("ghost")
        with pytest.raises(fl.NodeNotFound):
            engine.get_worker("ghost")
        lonely = await engine.create_worker(fl.WorkerConfig(node_id="lonely"), data=small_nodes[0])
        with pytest.raises(fl.NodeNotFound, match="lonely"):
            await lonely.train_local_model()
        with pytest.raises(fl.ConfigError, match="num_samples"):
            await coordinator.register_node("n", -1)


async def test_a_node_with_mismatched_features_fails_cleanly(small_nodes):
    engine, coordinator = await build(small_nodes[:3], min_nodes_per_round=1)
    async with engine:
        odd = fl.NodeData(np.zeros((5, 4)), np.zeros(5, dtype=int))
        await engine.create_worker(fl.WorkerConfig(node_id="odd"), data=odd)
        await coordinator.register_node("odd", 5)
        record = await coordinator.run_round()
    assert "odd" in record.failed_nodes
    assert "X" in record.failed_nodes["odd"]
    assert len(record.participating_nodes) == 3


async def test_two_models_train_concurrently_on_shared_nodes(small_nodes):
    config = fl.Config(round_config=round_config(max_rounds=4))
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("a", "logistic_regression", input_dim=30)
        await engine.register_model("b", "softmax_regression", input_dim=30, num_classes=2)
        ca = await engine.create_coordinator("a")
        cb = await engine.create_coordinator("b")
        await add_nodes(engine, ca, small_nodes)
        for node in await ca.list_nodes():
            await cb.register_node(node.node_id, node.num_samples)
        ra = await engine.start_training("a")
        rb = await engine.start_training("b")
        results = await asyncio.gather(ra, rb)
        with pytest.raises(fl.ConfigError, match="several models"):
            await engine.get_worker("node_000").train_local_model()
    assert [r.rounds_completed for r in results] == [4, 4]
