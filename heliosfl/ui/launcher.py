"""TrainingLauncher: build a simulated federation and run it, without blocking the kernel."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable

import ipywidgets as widgets

import heliosfl as fl
from heliosfl.coordinator import Coordinator
from heliosfl.engine import FederatedLearningEngine
from heliosfl.faults import assign_faults

__all__ = ["TrainingLauncher"]

_STRATEGIES = ["fedavg", "fedprox", "fedopt", "median", "trimmed_mean", "krum"]
_SELECTIONS = {"all nodes": None, "random half": 0.5, "random fifth": 0.2}


class TrainingLauncher(widgets.VBox):
    """Choose a federation, then Start, Pause and Stop its training from buttons.

    Start builds the federation (synthetic sites with 30 features, one per node, a
    seeded mix of crashing, dropping and straggling nodes at the chosen fault rate) and
    runs its rounds in an asyncio task on the kernel's loop: the kernel keeps answering
    other cells. Pause takes effect between rounds; Stop cancels the run (the model stays
    at its last committed round). An error of the run is shown in the widget and kept in
    :attr:`error`, never swallowed.

    Parameters
    ----------
    seed : int
        Seeds the data, the faults and the run.
    privacy : DifferentialPrivacyConfig or None
        Used when the privacy box is ticked (default: epsilon 8, delta 1e-5).
    """

    def __init__(self, *, seed: int = 0, privacy: fl.DifferentialPrivacyConfig | None = None):
        style = {"description_width": "120px"}
        self.seed = seed
        self.privacy = privacy
        self.nodes = widgets.IntSlider(
            value=100, min=10, max=1000, step=10, description="nodes", style=style
        )
        self.rounds = widgets.IntSlider(value=30, min=1, max=200, description="rounds", style=style)
        self.strategy = widgets.Dropdown(
            options=_STRATEGIES, value="fedavg", description="strategy", style=style
        )
        self.selection = widgets.Dropdown(
            options=list(_SELECTIONS), value="all nodes", description="selection", style=style
        )
        self.fault_rate = widgets.FloatSlider(
            value=0.1, min=0.0, max=0.5, step=0.05, description="faulty nodes", style=style
        )
        self.secure = widgets.Checkbox(value=False, description="secure aggregation")
        self.private = widgets.Checkbox(value=False, description="differential privacy")
        self.start = widgets.Button(description="Start", button_style="success", icon="play")
        self.pause = widgets.Button(description="Pause", icon="pause", disabled=True)
        self.stop = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.status = widgets.HTML("ready")
        self.error_box = widgets.HTML()
        super().__init__(
            [
                widgets.HBox(
                    [
                        widgets.VBox([self.nodes, self.rounds, self.fault_rate]),
                        widgets.VBox([self.strategy, self.selection, self.secure, self.private]),
                    ]
                ),
                widgets.HBox([self.start, self.pause, self.stop]),
                self.status,
                self.error_box,
            ]
        )
        self.add_class("heliosfl-launcher")
        self.engine: FederatedLearningEngine | None = None
        self.coordinator: Coordinator | None = None
        self.test: fl.NodeData | None = None
        self.task: asyncio.Task[None] | None = None
        self.error: str | None = None
        self._resume = asyncio.Event()
        self._resume.set()
        self._ready: list[Callable[[FederatedLearningEngine, Coordinator], None]] = []
        self.start.on_click(lambda _b: self.begin())
        self.pause.on_click(lambda _b: self.toggle_pause())
        self.stop.on_click(lambda _b: self.halt())

    def on_ready(self, callback: Callable[[FederatedLearningEngine, Coordinator], None]) -> None:
        """Call `callback(engine, coordinator)` each time a federation is built."""
        self._ready.append(callback)

    def config(self) -> fl.Config:
        """The engine configuration the controls describe."""
        nodes = int(self.nodes.value)
        share = _SELECTIONS[self.selection.value]
        selection = (
            fl.NodeSelectionStrategy.all()
            if share is None
            else fl.NodeSelectionStrategy.random(max(3, round(share * nodes)))
        )
        selected = nodes if share is None else max(3, round(share * nodes))
        strategy: fl.AggregationStrategy | fl.Strategy = fl.AggregationStrategy(self.strategy.value)
        quorum = max(2, selected // 2)
        if self.strategy.value == "krum":
            f = max(1, int(self.fault_rate.value * selected))
            strategy = fl.Krum(num_byzantine=f, multi=max(1, selected // 2))
            quorum = max(quorum, strategy.required_updates())
        private = bool(self.private.value)
        return fl.Config(
            aggregation_strategy=strategy,
            round_config=fl.RoundConfig(
                max_rounds=int(self.rounds.value),
                min_nodes_per_round=quorum,
                selection_strategy=selection,
                learning_rate=0.1,
                convergence_threshold=0.0,
                node_timeout_secs=0.2,
            ),
            enable_privacy=private,
            privacy_config=(self.privacy or fl.DifferentialPrivacyConfig(epsilon=8.0))
            if private
            else None,
            secure_aggregation=fl.SecureAggregationConfig(enabled=bool(self.secure.value)),
            seed=self.seed,
        )

    async def build(self) -> Coordinator:
        """Build the federation the controls describe (a new engine each time)."""
        config = self.config()
        nodes, test = fl.data.synthetic_sites(
            num_sites=int(self.nodes.value),
            samples_per_site=80,
            num_features=30,
            test_samples=500,
            seed=self.seed,
        )
        ids = [f"node_{i:04d}" for i in range(len(nodes))]
        rate = float(self.fault_rate.value)
        mix = {
            fl.NodeFault.crash(): rate / 3,
            fl.NodeFault(dropout_probability=0.5): rate / 3,
            fl.NodeFault(straggler_probability=0.5, straggler_median_secs=30, time_scale=0.01): rate
            / 3,
        }
        faults = assign_faults(ids, mix, seed=self.seed) if rate > 0 else {}
        if self.engine is not None:
            await self.engine.aclose()
        engine = FederatedLearningEngine(config)
        await engine.register_model("model", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("model", validation_data=test)
        for node_id, data in zip(ids, nodes, strict=True):
            await engine.create_worker(
                fl.WorkerConfig(node_id=node_id), data=data, fault=faults.get(node_id)
            )
            await coordinator.register_node(node_id, len(data))
        self.engine, self.coordinator, self.test = engine, coordinator, test
        for callback in self._ready:
            callback(engine, coordinator)
        return coordinator

    def begin(self) -> asyncio.Task[None]:
        """What Start does: build the federation and train it in a task."""
        if self.task is not None and not self.task.done():
            return self.task
        self.error = None
        self.error_box.value = ""
        self._resume.set()
        self.task = asyncio.ensure_future(self._run())
        self._buttons(running=True)
        return self.task

    def toggle_pause(self) -> None:
        """What Pause/Resume does: stop (or go on) between rounds."""
        if self._resume.is_set():
            self._resume.clear()
            self.pause.description, self.pause.icon = "Resume", "play"
            self.status.value = "pausing after this round"
        else:
            self._resume.set()
            self.pause.description, self.pause.icon = "Pause", "pause"

    def halt(self) -> None:
        """What Stop does: cancel the run; the model keeps its last committed round."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _run(self) -> None:
        try:
            self.status.value = "building the federation"
            coordinator = await self.build()
            total = int(self.rounds.value)
            while coordinator.current_round < total:
                if not self._resume.is_set():
                    self.status.value = f"paused after round {coordinator.current_round}"
                    await self._resume.wait()
                try:
                    record = await coordinator.run_round()
                except (fl.InsufficientNodes, fl.SecureAggregationError) as exc:
                    self.status.value = html.escape(f"round failed: {exc}")
                    continue
                accuracy = record.validation_accuracy
                shown = "n/a" if accuracy is None else f"{accuracy:.3f}"
                self.status.value = f"round {record.round_number}/{total} · accuracy {shown}"
            self.status.value += " · done"
        except asyncio.CancelledError:
            self.status.value = "stopped"
            raise
        except Exception as exc:  # shown, and kept: never swallowed
            self.error = f"{type(exc).__name__}: {exc}"
            self.error_box.value = f"<div class='heliosfl-error'>{html.escape(self.error)}</div>"
            self.status.value = "failed"
            raise
        finally:
            self._buttons(running=False)

    def _buttons(self, *, running: bool) -> None:
        with self.hold_sync():
            self.start.disabled = running
            self.pause.disabled = not running
            self.stop.disabled = not running
            if not running:
                self.pause.description, self.pause.icon = "Pause", "pause"
