"""ClusterGrid: node states from a real federation, throttling, scale, assets (no browser)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import pytest

pytest.importorskip("anywidget")

import heliosfl as fl
from heliosfl.events import (
    Event,
    NodeFailed,
    NodeFinished,
    NodeRecovered,
    RoundCompleted,
    RoundStarted,
)
from heliosfl.records import RoundRecord
from heliosfl.ui._assets import asset
from heliosfl.ui._live import Throttle
from heliosfl.ui.cluster import STATES, ClusterGrid


@pytest.fixture(scope="module")
def sites() -> list[fl.NodeData]:
    train, _ = fl.data.load_dataset("breast_cancer", seed=0)
    return fl.data.partition(train, num_nodes=6, scheme="iid", seed=0)


async def federation(
    sites: list[fl.NodeData],
    *,
    faults: dict[int, fl.NodeFault] | None = None,
    node_timeout: float = 30.0,
) -> tuple[fl.FederatedLearningEngine, fl.Coordinator]:
    """A real engine with one worker per site (``node_000``, ...) under model ``m``."""
    rc = fl.RoundConfig(
        max_rounds=5,
        min_nodes_per_round=2,
        learning_rate=0.3,
        convergence_threshold=0.0,
        node_timeout_secs=node_timeout,
    )
    engine = fl.FederatedLearningEngine(fl.Config(round_config=rc, seed=0))
    await engine.register_model("m", "logistic_regression", input_dim=30)
    coordinator = await engine.create_coordinator("m")
    for i, data in enumerate(sites):
        wc = fl.WorkerConfig(node_id=f"node_{i:03d}")
        await engine.create_worker(wc, data=data, fault=(faults or {}).get(i))
        await coordinator.register_node(wc.node_id, len(data))
    return engine, coordinator


async def bare_coordinator(num_nodes: int) -> tuple[fl.FederatedLearningEngine, fl.Coordinator]:
    """A coordinator with `num_nodes` registered nodes and no workers (events are synthetic)."""
    engine = fl.FederatedLearningEngine(fl.Config(seed=0))
    await engine.register_model("m", "logistic_regression", input_dim=30)
    coordinator = await engine.create_coordinator("m")
    for i in range(num_nodes):
        await coordinator.register_node(f"n{i:04d}", 10 + i)
    return engine, coordinator


def by_node(grid: ClusterGrid) -> dict[str, str]:
    """The synced states keyed by node id (what the browser shows)."""
    assert len(grid.states) == len(grid.nodes) == len(grid.figures)
    return dict(zip(grid.nodes, grid.states, strict=True))


# ------------------------------------------------------------------ a real federation
async def test_a_round_colours_done_failed_and_timed_out_nodes(sites):
    engine, coordinator = await federation(
        sites, faults={1: fl.NodeFault.crash(), 2: fl.NodeFault.hang()}, node_timeout=0.3
    )
    async with engine:
        grid = ClusterGrid.for_model(engine, "m")
        try:
            assert grid.nodes == [f"node_{i:03d}" for i in range(6)]
            assert grid.states == ["idle"] * 6
            assert grid.round_number == 0
            assert grid.title == "Nodes of m"
            assert [f["samples"] for f in grid.figures] == [len(s) for s in sites]

            seen: dict[str, list[str]] = {}

            def during_round(event: Event) -> None:  # runs after the grid's own listener
                if isinstance(event, RoundStarted | NodeFinished):
                    grid.flush()
                    seen.setdefault(type(event).__name__, list(grid.states))

            engine.events.add_listener(during_round)
            record = await coordinator.run_round()
            grid.flush()
        finally:
            grid.close()

    assert seen["RoundStarted"] == ["training"] * 6
    assert "done" in seen["NodeFinished"] and "training" in seen["NodeFinished"]
    assert by_node(grid) == {
        "node_000": "done",
        "node_001": "failed",
        "node_002": "timed_out",
        "node_003": "done",
        "node_004": "done",
        "node_005": "done",
    }
    assert grid.counts() == {
        "idle": 0,
        "training": 0,
        "done": 4,
        "failed": 1,
        "timed_out": 1,
        "excluded": 0,
    }
    assert grid.state_of("node_002") == "timed_out"
    assert grid.round_number == record.round_number == 1
    figures = dict(zip(grid.nodes, grid.figures, strict=True))
    for node_id in record.participating_nodes:
        assert isinstance(figures[node_id]["loss"], float)
        assert figures[node_id]["rounds"] == 1
        assert figures[node_id]["last_error"] is None
    assert figures["node_001"]["loss"] is None
    assert figures["node_001"]["failures"] == 1
    assert figures["node_001"]["last_error"]
    assert figures["node_002"]["last_error"].startswith("timeout")
    assert all(len(f["last_error"] or "") <= 80 for f in grid.figures)
    with pytest.raises(fl.NodeNotFound):
        grid.state_of("node_999")


async def test_an_unavailable_node_is_excluded_from_the_next_round(sites):
    engine, coordinator = await federation(sites[:4], faults={0: fl.NodeFault.crash()})
    async with engine:
        grid = ClusterGrid(coordinator, engine)
        try:
            for _ in range(3):  # three failures in a row make node_000 unavailable
                await coordinator.run_round()
            grid.flush()
            assert grid.state_of("node_000") == "failed"
            assert not coordinator.nodes[0].available
            record = await coordinator.run_round()
            grid.flush()
        finally:
            grid.close()
    assert "node_000" not in record.selected_nodes
    assert by_node(grid) == {
        "node_000": "excluded",
        "node_001": "done",
        "node_002": "done",
        "node_003": "done",
    }
    assert grid.figures[0]["available"] is False
    assert grid.figures[0]["failures"] == 3
    assert grid.round_number == 4


# ------------------------------------------------------------------ synthetic events
async def test_events_drive_each_state_change():
    engine, coordinator = await bare_coordinator(5)
    async with engine:
        grid = ClusterGrid(coordinator, events=engine.events, title="Hospitals")
        publish = engine.events.publish
        publish(RoundStarted(model_id="m", round_number=1, selected_nodes=("n0001", "n0003")))
        grid.flush()
        assert grid.states == ["idle", "training", "idle", "training", "idle"]
        assert grid.round_number == 1
        publish(
            NodeFinished(
                model_id="m",
                round_number=1,
                node_id="n0001",
                loss=0.25,
                num_samples=11,
                duration_secs=0.5,
            )
        )
        publish(
            NodeFailed(
                model_id="m", round_number=1, node_id="n0003", reason="x" * 500, timed_out=True
            )
        )
        publish(NodeFailed(model_id="other", round_number=1, node_id="n0000", reason="not ours"))
        grid.flush()
        assert grid.states == ["idle", "done", "idle", "timed_out", "idle"]
        assert grid.figures[1]["loss"] == 0.25
        assert grid.figures[1]["duration"] == 0.5
        assert len(grid.figures[3]["last_error"]) == 80
        assert grid.figures[3]["last_error"].endswith("…")
        publish(NodeRecovered(model_id="m", round_number=2, node_id="n0003"))
        grid.flush()
        assert grid.state_of("n0003") == "idle"
        assert grid.title == "Hospitals"
        grid.close()


async def test_new_registrations_appear_at_the_next_round():
    engine, coordinator = await bare_coordinator(2)
    async with engine:
        grid = ClusterGrid(coordinator, engine)
        await coordinator.register_node("a-new-one", 5)
        engine.events.publish(
            RoundStarted(model_id="m", round_number=1, selected_nodes=("a-new-one", "n0000"))
        )
        grid.flush()
        assert grid.nodes == ["a-new-one", "n0000", "n0001"]  # sorted
        assert grid.states == ["training", "training", "idle"]
        assert grid.figures[0]["samples"] == 5
        grid.close()


# ------------------------------------------------------------------ throttle and sync
async def test_a_burst_of_events_is_coalesced_into_a_couple_of_syncs():
    engine, coordinator = await bare_coordinator(150)
    async with engine:
        grid = ClusterGrid(coordinator, engine)
        now = [1000.0]
        grid._throttle = Throttle(grid._push, clock=lambda: now[0])  # time stands still
        changes: list[object] = []
        grid.observe(changes.append, names="states")
        messages = []
        send_state = grid.send_state
        grid.send_state = lambda key=None: (messages.append(key), send_state(key))[1]

        selected = tuple(grid.nodes)
        engine.events.publish(RoundStarted(model_id="m", round_number=1, selected_nodes=selected))
        for node_id in selected[:99]:
            engine.events.publish(
                NodeFinished(
                    model_id="m",
                    round_number=1,
                    node_id=node_id,
                    loss=0.5,
                    num_samples=10,
                    duration_secs=0.01,
                )
            )
        assert grid._throttle.draws == 1  # the first event drew at once, the rest wait
        assert len(changes) == 1
        now[0] += 0.2
        await asyncio.sleep(0.15)  # the scheduled redraw goes out by itself
        assert grid._throttle.draws == 2
        assert len(changes) == 2
        assert grid.counts()["done"] == 99
        assert grid.states.count("done") == 99
        assert len(messages) == 2  # hold_sync: one message per redraw, all traits in it
        grid.flush()  # nothing pending: no extra sync
        assert grid._throttle.draws == 2
        grid.close()


async def test_flush_sends_the_pending_update_at_once():
    engine, coordinator = await bare_coordinator(3)
    async with engine:
        grid = ClusterGrid(coordinator, engine)
        publish = engine.events.publish
        publish(RoundStarted(model_id="m", round_number=1, selected_nodes=("n0000",)))
        publish(NodeFailed(model_id="m", round_number=1, node_id="n0000", reason="boom"))
        assert grid.state_of("n0000") == "failed"  # Python side knows at once...
        assert grid.states[0] == "training"  # ...the synced trait waits for the throttle
        grid.flush()
        assert grid.states[0] == "failed"
        grid.close()


async def test_a_thousand_nodes_build_and_update_well_under_a_second():
    engine, coordinator = await bare_coordinator(1000)
    async with engine:
        started = time.perf_counter()
        grid = ClusterGrid(coordinator, engine)
        selected = tuple(grid.nodes)
        publish = engine.events.publish
        publish(RoundStarted(model_id="m", round_number=1, selected_nodes=selected))
        for i, node_id in enumerate(selected):
            if i % 10 == 0:
                publish(NodeFailed(model_id="m", round_number=1, node_id=node_id, reason="crash"))
            else:
                publish(
                    NodeFinished(
                        model_id="m",
                        round_number=1,
                        node_id=node_id,
                        loss=0.1,
                        num_samples=10,
                        duration_secs=0.01,
                    )
                )
        publish(RoundCompleted(model_id="m", record=RoundRecord(round_number=1)))
        grid.flush()
        elapsed = time.perf_counter() - started
        grid.close()
    assert len(grid.nodes) == 1000
    assert grid.counts()["done"] == 900
    assert grid.counts()["failed"] == 100
    assert grid.states.count("failed") == 100
    assert grid.round_number == 1
    assert elapsed < 1.0, f"1,000 nodes took {elapsed:.3f} s"


# ------------------------------------------------------------------ lifecycle
async def test_close_stops_updates_and_unsubscribes():
    engine, coordinator = await bare_coordinator(3)
    async with engine:
        grid = ClusterGrid(coordinator, engine)
        listeners = len(engine.events._listeners)
        grid.close()
        assert len(engine.events._listeners) == listeners - 1
        engine.events.publish(
            RoundStarted(model_id="m", round_number=1, selected_nodes=("n0000", "n0001"))
        )
        grid.flush()
        grid.refresh()
        assert grid.states == ["idle"] * 3
        assert grid.counts()["training"] == 0
        assert grid.round_number == 0
        grid.close()  # closing twice is harmless


async def test_without_an_engine_the_grid_follows_the_coordinators_bus(sites):
    engine, coordinator = await federation(sites[:3])
    async with engine:
        grid = ClusterGrid(coordinator)
        await coordinator.run_round()
        grid.flush()
        assert grid.states == ["done"] * 3
        assert "done=3" in repr(grid)
        grid.close()


# ------------------------------------------------------------------ front-end assets
def test_the_front_end_assets_exist_and_are_plain_modules():
    js = asset("cluster_grid.js").read_text(encoding="utf-8")
    css = asset("cluster_grid.css").read_text(encoding="utf-8")
    assert "export default { render }" in js
    assert not re.search(r"^\s*import\s", js, re.MULTILINE)  # no npm imports, no bundler
    assert "model.off(" in js  # the cleanup removes the listeners
    for state in STATES:
        assert f'"{state}"' in js
        assert f".heliosfl-state-{state}" in css
    classes = set(re.findall(r"\.([A-Za-z_][\w-]*)", css))
    assert classes and all(c.startswith("heliosfl-") for c in classes), classes
    assert "var(--jp-layout-color1" in css and "var(--jp-ui-font-color1" in css
    assert "export default" in str(ClusterGrid._esm) or ClusterGrid._esm == asset("cluster_grid.js")


def test_cluster_grid_is_exported_lazily():
    import heliosfl.ui as ui

    assert ui.ClusterGrid is ClusterGrid
    code = "import sys, heliosfl.ui; assert 'anywidget' not in sys.modules, 'eager import'"
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - our own code
