"""Cancellation, retries, resume, federated evaluation and bad input at the engine's edges."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from federation_helpers import add_nodes, round_config

import heliosfl as fl
from heliosfl.backends import InlineBackend
from heliosfl.backends import inline as inline_module
from heliosfl.backends.base import CallAbandoned, StopFlag
from heliosfl.events import TrainingFinished, TrainingStarted


async def engine_with(nodes, *, test=None, workspace=None, backend="inline", seed=0, **rc):
    strategy = rc.pop("strategy", fl.AggregationStrategy.FEDAVG)
    config = fl.Config(aggregation_strategy=strategy, round_config=round_config(**rc), seed=seed)
    engine = fl.FederatedLearningEngine(config, workspace=workspace, backend=backend)
    await engine.register_model("m", "logistic_regression", input_dim=30)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    await add_nodes(engine, coordinator, nodes)
    return engine, coordinator


# ------------------------------------------------------------------ cancellation
async def test_cancelling_during_the_commit_keeps_memory_and_workspace_together(small_nodes):
    engine, coordinator = await engine_with(small_nodes, max_rounds=5)
    workspace = engine.workspace
    committing = threading.Event()
    original = workspace.commit_round

    def slow_commit(*args, **kwargs):
        committing.set()
        time.sleep(0.3)
        return original(*args, **kwargs)

    workspace.commit_round = slow_commit  # type: ignore[method-assign]
    async with engine:
        run = await engine.start_training("m")
        while not committing.is_set():
            await asyncio.sleep(0.005)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert coordinator.current_round == workspace.last_round("m") == 1
        np.testing.assert_array_equal(
            engine.get_params("m"), workspace.latest_checkpoint("m").params
        )
        workspace.commit_round = original  # type: ignore[method-assign]
        result = await engine.train("m")  # training goes on from round 2
    assert result.current_round == 5 and result.rounds_completed == 4


async def test_a_run_cancelled_before_it_starts_still_reports_its_end(small_nodes):
    engine, coordinator = await build_and_subscribe(small_nodes)
    async with engine:
        events = engine.events.subscribe(model_id="m")
        run = await engine.start_training("m")
        assert coordinator.is_training  # at once, not when the task first runs
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        seen = []
        while (event := events.get_nowait()) is not None:
            seen.append(event)
    assert not coordinator.is_training
    assert isinstance(seen[0], TrainingStarted)
    assert isinstance(seen[-1], TrainingFinished)
    assert seen[-1].result.stop_reason is fl.StopReason.CANCELLED
    assert sum(isinstance(e, TrainingFinished) for e in seen) == 1


async def build_and_subscribe(nodes):
    return await engine_with(nodes, max_rounds=3)


async def test_no_node_events_arrive_after_a_cancelled_run_has_ended(small_nodes):
    faults = {i: fl.NodeFault(delay_secs=0.05) for i in range(10)}
    config = fl.Config(round_config=round_config(max_rounds=50))
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m")
        await add_nodes(engine, coordinator, small_nodes, faults=faults)
        events = engine.events.subscribe(model_id="m")
        run = await engine.start_training("m")
        await asyncio.sleep(0.02)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        await asyncio.sleep(0.1)
        seen = []
        while (event := events.get_nowait()) is not None:
            seen.append(type(event).__name__)
    assert seen[-1] == "TrainingFinished"


# ------------------------------------------------------------------ retries
async def test_a_retried_round_draws_a_fresh_selection(small_nodes):
    engine, coordinator = await engine_with(
        small_nodes,
        selection_strategy=fl.NodeSelectionStrategy.random(k=5),
        min_nodes_per_round=5,
    )
    async with engine:
        first = await coordinator.select_nodes_for_round()
        with pytest.raises(fl.InsufficientNodes):
            await coordinator.execute_round([])  # no updates: the attempt fails
        second = await coordinator.select_nodes_for_round()
        assert coordinator.current_round == 0
    assert first != second


# ------------------------------------------------------------------ resume
async def test_resume_continues_exactly_with_best_performance_selection(
    small_nodes, breast_cancer, tmp_path
):
    _, test = breast_cancer
    selection = fl.NodeSelectionStrategy.best_performance(k=3)
    engine, coordinator = await engine_with(
        small_nodes, test=test, max_rounds=8, selection_strategy=selection, min_nodes_per_round=3
    )
    async with engine:
        await engine.train("m")
        straight = await coordinator.get_round_history()
        straight_params = engine.get_params("m")

    path = tmp_path / "ws.db"
    with fl.Workspace(path) as workspace:
        engine, _ = await engine_with(
            small_nodes,
            test=test,
            workspace=workspace,
            max_rounds=4,
            selection_strategy=selection,
            min_nodes_per_round=3,
        )
        async with engine:
            await engine.train("m")
    with fl.Workspace(path) as workspace:
        config = fl.Config(
            round_config=round_config(
                max_rounds=8, selection_strategy=selection, min_nodes_per_round=3
            )
        )
        async with fl.FederatedLearningEngine(config, workspace=workspace) as engine:
            coordinator = await engine.resume("m", validation_data=test)
            await add_nodes(engine, coordinator, small_nodes)
            await engine.train("m")
            resumed = await coordinator.get_round_history()
            resumed_params = engine.get_params("m")
    assert [r.selected_nodes for r in resumed] == [r.selected_nodes for r in straight]
    np.testing.assert_array_equal(resumed_params, straight_params)


async def test_resume_refuses_a_different_seed_or_strategy(small_nodes, tmp_path):
    path = tmp_path / "ws.db"
    with fl.Workspace(path) as workspace:
        engine, _ = await engine_with(small_nodes, workspace=workspace, max_rounds=1, seed=1)
        async with engine:
            await engine.train("m")
    with fl.Workspace(path) as workspace:
        other_seed = fl.Config(round_config=round_config(), seed=2)
        async with fl.FederatedLearningEngine(other_seed, workspace=workspace) as engine:
            with pytest.raises(fl.ConfigError, match="seed"):
                await engine.resume("m")
        other_strategy = fl.Config(
            aggregation_strategy=fl.FedProx(mu=0.1), round_config=round_config(), seed=1
        )
        async with fl.FederatedLearningEngine(other_strategy, workspace=workspace) as engine:
            with pytest.raises(fl.ConfigError, match="aggregation_strategy"):
                await engine.resume("m")


# ------------------------------------------------------------------ evaluation
async def test_without_validation_data_the_global_model_is_evaluated_on_the_nodes(small_nodes):
    engine, coordinator = await engine_with(small_nodes, max_rounds=1)
    async with engine:
        record = await coordinator.run_round()
        params = engine.get_params("m")
    model = fl.models.LogisticRegression(30)
    figures = [
        (model.evaluate(params, n.X_val, n.y_val), len(n.y_val))
        for n in small_nodes
        if n.has_validation
    ]
    total = sum(rows for _, rows in figures)
    expected = sum(f["accuracy"] * rows for f, rows in figures) / total
    assert record.validation_accuracy == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ the backend under abuse
async def test_calls_that_ignore_their_flags_cannot_hang_a_round_forever(monkeypatch):
    monkeypatch.setattr(inline_module, "MAX_EXTRA_LANES", 2)
    release = threading.Event()

    def stuck() -> str:
        release.wait(3.0)
        return "late"

    backend = InlineBackend(max_workers=1)  # three threads in all
    calls = [stuck] * 4 + [lambda: "quick"] * 2
    handles = backend.submit_many(
        calls, stops=[StopFlag() for _ in calls], budgets_secs=[0.05] * len(calls)
    )
    try:
        async with asyncio.timeout(1.5):
            outcomes = await asyncio.gather(*(h.result for h in handles), return_exceptions=True)
    finally:
        release.set()
        backend.close()
    assert all(isinstance(o, CallAbandoned) for o in outcomes[:4])
    assert all(o == "quick" or isinstance(o, CallAbandoned) for o in outcomes[4:])


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("loss", "x", "loss must be a finite number"),
        ("loss", float("nan"), "loss must be a finite number"),
        ("metrics", None, "metrics must map names to finite numbers"),
        ("metrics", {"val_accuracy": "x"}, "metrics must map names to finite numbers"),
        ("duration_secs", "x", "duration_secs must be a finite number"),
    ],
)
async def test_malformed_updates_are_rejected_before_anything_changes(
    small_nodes, field, value, reason
):
    engine, coordinator = await engine_with(small_nodes[:2], min_nodes_per_round=1)
    async with engine:
        update = await engine.get_worker("node_000").train_local_model()
        settings = {
            "model_id": "m",
            "node_id": "node_000",
            "round_number": 1,
            "delta": update.delta,
            "num_samples": update.num_samples,
            "loss": update.loss,
            "metrics": update.metrics,
            "duration_secs": update.duration_secs,
        }
        settings[field] = value
        with pytest.raises(fl.InsufficientNodes):
            await coordinator.execute_round([fl.ModelUpdate(**settings)])
        history = await coordinator.get_round_history(include_failed=True)
        assert coordinator.current_round == 0 == engine.workspace.last_round("m")
    assert reason in history[-1].failed_nodes["node_000"]


async def test_execute_round_wants_a_list(small_nodes):
    engine, coordinator = await engine_with(small_nodes[:2])
    async with engine:
        update = await engine.get_worker("node_000").train_local_model()
        for bad in (None, update):
            with pytest.raises(fl.ConfigError, match="updates"):
                await coordinator.execute_round(bad)  # type: ignore[arg-type]


async def test_validation_data_must_fit_the_model(small_nodes):
    config = fl.Config(round_config=round_config())
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        narrow = fl.NodeData(np.zeros((5, 4)), np.zeros(5, dtype=int))
        with pytest.raises(fl.ConfigError, match="validation_data") as info:
            await engine.create_coordinator("m", validation_data=narrow)
        assert "input_dim=30" in str(info.value)
        many = fl.NodeData(np.zeros((3, 30)), np.array([0, 1, 7]))
        with pytest.raises(fl.ConfigError, match="label 7"):
            await engine.create_coordinator("m", validation_data=many)


async def test_initial_params_are_copied():
    async with fl.FederatedLearningEngine() as engine:
        start = np.zeros(31)
        await engine.register_model("m", "logistic_regression", start, input_dim=30)
        start[:] = 5.0
        assert not engine.get_params("m").any()
        assert not engine.workspace.checkpoint("m", 0).params.any()


def test_a_workspace_must_be_a_workspace():
    with pytest.raises(fl.ConfigError, match="workspace"):
        fl.FederatedLearningEngine(workspace="run.db")  # type: ignore[arg-type]


async def test_closing_the_engine_leaves_a_callers_backend_open_and_refuses_new_subscribers():
    backend = InlineBackend()
    engine = fl.FederatedLearningEngine(backend=backend)
    await engine.aclose()
    assert await backend.run(lambda: "still open") == "still open"
    backend.close()
    with pytest.raises(fl.ClosedError):
        engine.events.subscribe()


async def test_train_local_model_with_a_timeout_raises_node_timeout(small_nodes):
    config = fl.Config(round_config=round_config())
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m")
        await add_nodes(engine, coordinator, small_nodes[:2], faults={0: fl.NodeFault.hang()})
        with pytest.raises(fl.NodeTimeout) as info:
            await engine.get_worker("node_000").train_local_model(timeout_secs=0.05)
        assert isinstance(info.value, TimeoutError) and info.value.node_id == "node_000"
        update = await engine.get_worker("node_001").train_local_model(timeout_secs=5)
        assert update.node_id == "node_001"
        with pytest.raises(fl.ConfigError, match="timeout_secs"):
            await engine.get_worker("node_001").train_local_model(timeout_secs=0)
