"""The widgets, driven as a person would: clicks, awaited tasks, traits."""

from __future__ import annotations

import asyncio

import pytest

import heliosfl as fl
from heliosfl.ui._live import Throttle

pytest.importorskip("ipywidgets")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_draws_at_most_once_per_interval_without_a_loop():
    clock = Clock()
    drawn: list[float] = []
    throttle = Throttle(lambda: drawn.append(clock.now), interval_secs=0.1, clock=clock)
    throttle.poke()
    assert drawn == [0.0]
    throttle.poke()  # no running loop: draws at once rather than never
    assert throttle.draws == 2


async def test_the_throttle_coalesces_pokes_on_the_loop():
    clock = Clock()
    throttle = Throttle(lambda: None, interval_secs=0.05, clock=clock)
    throttle.poke()
    for _ in range(100):
        throttle.poke()
    assert throttle.draws == 1
    clock.now = 1.0
    await asyncio.sleep(0.08)
    assert throttle.draws == 2


async def federation(rounds: int = 3, *, privacy: bool = False):
    nodes, test = fl.data.synthetic_sites(
        num_sites=6, samples_per_site=40, num_features=5, test_samples=100, seed=0
    )
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=rounds, min_nodes_per_round=2, learning_rate=0.3, convergence_threshold=0.0
        ),
        enable_privacy=privacy,
        privacy_config=fl.DifferentialPrivacyConfig(epsilon=50.0, noise_multiplier=1.0)
        if privacy
        else None,
    )
    engine = fl.FederatedLearningEngine(config)
    await engine.register_model("m", "logistic_regression", input_dim=5)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    for i, data in enumerate(nodes):
        await engine.create_worker(fl.WorkerConfig(node_id=f"n{i}"), data=data)
        await coordinator.register_node(f"n{i}", len(data))
    return engine, coordinator


@pytest.mark.parametrize("privacy", [False, True])
async def test_the_convergence_plot_follows_rounds_and_rewinds(privacy):
    engine, coordinator = await federation(privacy=privacy)
    plot = fl.ui.ConvergencePlot(coordinator, engine.events)
    for _ in range(3):
        await coordinator.run_round()
    plot.flush()
    assert plot.rounds == [1, 2, 3]
    assert all(a is not None for a in plot.accuracy)
    assert bytes(plot.image.value).startswith(b"\x89PNG")
    assert "round 3" in plot.caption.value
    assert (plot.epsilon[-1] > 0) is privacy
    await coordinator.rewind(1, {"test": "rewind"})
    plot.flush()
    assert plot.rounds == [1]
    plot.close()
    await coordinator.run_round()
    assert plot.rounds == [1]  # closed: no longer listening


async def test_the_history_table_lists_rounds_newest_first():
    engine, coordinator = await federation()
    table = fl.ui.RoundHistoryTable(coordinator, engine.events)
    for _ in range(3):
        await coordinator.run_round()
    table.flush()
    rows = table.rows()
    assert [r["round"] for r in rows] == [3, 2, 1]
    assert "<table" in table.value and "heliosfl-table" in table.value


def test_the_privacy_widget_calibrates_and_refuses_bad_values():
    widget = fl.ui.PrivacyBudgetWidget(epsilon=2.0, rounds=30, nodes=100)
    assert widget.config is not None and widget.config.epsilon == 2.0
    z = widget.noise_multiplier
    assert z is not None and widget.affordable is not None and widget.affordable >= 30
    assert bytes(widget.curve.value).startswith(b"\x89PNG")
    assert widget.expected is not None and 0.9 < widget.expected < 0.99
    widget.epsilon.value = 8.0
    widget.recompute()
    assert widget.noise_multiplier < z
    widget.sample_size.value = 20
    widget.recompute()
    assert widget.expected is None  # the benchmark used every node
    widget.epsilon.value = -1.0
    widget.recompute()
    assert widget.config is None
    assert "privacy_config.epsilon must be" in widget.error.value


async def test_the_launcher_trains_pauses_and_stops_without_blocking():
    launcher = fl.ui.TrainingLauncher(seed=0)
    launcher.nodes.value = 20
    launcher.rounds.value = 4
    launcher.fault_rate.value = 0.2
    dashboard = fl.ui.Dashboard(launcher=launcher)
    launcher.start.click()
    assert launcher.start.disabled and not launcher.stop.disabled
    await launcher.task
    dashboard.flush()
    assert launcher.error is None
    assert launcher.coordinator is not None and launcher.coordinator.current_round == 4
    assert dashboard.grid is not None and sum(dashboard.grid.counts().values()) == 20
    assert dashboard.plot is not None and dashboard.plot.rounds == [1, 2, 3, 4]
    assert not launcher.start.disabled

    launcher.rounds.value = 50
    launcher.start.click()
    launcher.pause.click()
    for _ in range(200):
        await asyncio.sleep(0.01)
        if "paused" in launcher.status.value:
            break
    assert "paused" in launcher.status.value
    paused_at = launcher.coordinator.current_round
    await asyncio.sleep(0.05)
    assert launcher.coordinator.current_round == paused_at  # nothing runs while paused
    launcher.stop.click()
    with pytest.raises(asyncio.CancelledError):
        await launcher.task
    assert launcher.status.value == "stopped"
    await launcher.engine.aclose()


async def test_the_launcher_shows_the_error_of_its_run():
    launcher = fl.ui.TrainingLauncher(seed=0)
    launcher.nodes.value = 10
    launcher.strategy.value = "median"
    launcher.private.value = True  # a robust rule with privacy is refused by Config
    launcher.start.click()
    with pytest.raises(fl.ConfigError):
        await launcher.task
    assert launcher.error is not None and "aggregation_strategy" in launcher.error
    assert "heliosfl-error" in launcher.error_box.value
    assert not launcher.start.disabled


async def test_a_dashboard_follows_an_existing_model():
    engine, _coordinator = await federation()
    dashboard = fl.ui.Dashboard(engine, "m")
    await engine.train("m")
    dashboard.flush()
    assert dashboard.table is not None and len(dashboard.table.rows()) == 3
    assert dashboard.grid is not None and dashboard.grid.counts()["done"] == 6


def test_widget_assets_are_found_in_the_packaged_copy_too(tmp_path, monkeypatch):
    from heliosfl.ui import _assets

    (tmp_path / "cluster_grid.js").write_text("export default {}")
    monkeypatch.setattr(_assets, "_SOURCE", tmp_path / "missing")
    monkeypatch.setattr(_assets, "_PACKAGED", tmp_path)
    assert _assets.asset("cluster_grid.js") == tmp_path / "cluster_grid.js"
    with pytest.raises(FileNotFoundError):
        _assets.asset("nope.js")


def test_importing_heliosfl_loads_no_widget_library():
    import subprocess
    import sys

    code = (
        "import sys, heliosfl; "
        "print(sorted(m for m in ('ipywidgets', 'matplotlib', 'anywidget', 'IPython', "
        "'traitlets') if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
