"""Dashboard: the node grid, the convergence plot and the round table of one model."""

from __future__ import annotations

import ipywidgets as widgets

from heliosfl.coordinator import Coordinator
from heliosfl.engine import FederatedLearningEngine
from heliosfl.ui.cluster import ClusterGrid
from heliosfl.ui.convergence import ConvergencePlot
from heliosfl.ui.history import RoundHistoryTable
from heliosfl.ui.launcher import TrainingLauncher

__all__ = ["Dashboard"]


class Dashboard(widgets.VBox):
    """Everything about one model's training, live.

    Either follow an existing model (``Dashboard(engine, "m")``) or drive one with a
    :class:`TrainingLauncher` (``Dashboard(launcher=TrainingLauncher())``): its views are
    rebuilt for each federation the launcher builds.

    Parameters
    ----------
    engine : FederatedLearningEngine or None
        The engine of an existing model.
    model_id : str or None
        That model.
    launcher : TrainingLauncher or None
        A launcher whose federations the dashboard follows.
    """

    def __init__(
        self,
        engine: FederatedLearningEngine | None = None,
        model_id: str | None = None,
        *,
        launcher: TrainingLauncher | None = None,
    ) -> None:
        self.launcher = launcher
        self.grid: ClusterGrid | None = None
        self.plot: ConvergencePlot | None = None
        self.table: RoundHistoryTable | None = None
        self._views = widgets.VBox([widgets.HTML("<i>Start a run to see it here.</i>")])
        super().__init__([launcher, self._views] if launcher is not None else [self._views])
        self.add_class("heliosfl-dashboard")
        if launcher is not None:
            launcher.on_ready(self.follow)
        if engine is not None and model_id is not None:
            self.follow(engine, engine.get_coordinator(model_id))

    def follow(self, engine: FederatedLearningEngine, coordinator: Coordinator) -> None:
        """Show `coordinator`'s model (closing the views of the previous one)."""
        for view in (self.grid, self.plot, self.table):
            if view is not None:
                view.close()
        self.grid = ClusterGrid(coordinator, engine)
        self.plot = ConvergencePlot(coordinator, engine.events, width_px=560)
        self.table = RoundHistoryTable(coordinator, engine.events)
        self.grid.layout = widgets.Layout(width="360px", flex="0 0 auto")
        self._views.children = [widgets.HBox([self.grid, self.plot]), self.table]

    def flush(self) -> None:
        """Draw every pending update now (tests and notebooks)."""
        for view in (self.grid, self.plot, self.table):
            if view is not None:
                view.flush()
