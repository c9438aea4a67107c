"""A live grid of the federation's nodes: one small cell per node, coloured by state.

Examples
--------
>>> grid = ClusterGrid.for_model(engine, "m")   # doctest: +SKIP
>>> grid                                         # doctest: +SKIP
>>> await engine.get_coordinator("m").run_round()  # doctest: +SKIP
>>> grid.counts()["done"]                        # doctest: +SKIP
9
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from heliosfl.errors import NodeNotFound
from heliosfl.events import (
    Event,
    EventBus,
    ModelRewound,
    NodeFailed,
    NodeFinished,
    NodeRecovered,
    RoundCompleted,
    RoundFailed,
    RoundStarted,
    TrainingFinished,
)
from heliosfl.records import NodeInfo
from heliosfl.ui._assets import asset
from heliosfl.ui._live import EventFeed, Throttle

if TYPE_CHECKING:
    from heliosfl.coordinator import Coordinator
    from heliosfl.engine import FederatedLearningEngine

__all__ = ["STATES", "ClusterGrid"]

#: The states a cell can show, in legend order.
STATES: tuple[str, ...] = ("idle", "training", "done", "failed", "timed_out", "excluded")

#: Longest error message kept for a tooltip (longer ones are shortened with an ellipsis).
MAX_ERROR_CHARS = 80
#: Grids of up to this many nodes sync per-node figures (tooltips) live; larger ones sync
#: them once a round, while the node states stay live.
LIVE_FIGURES_MAX = 1000


def _number(value: float | None) -> float | None:
    """A JSON-safe float: ``None`` for missing or non-finite values."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _shorten(text: str | None, limit: int = MAX_ERROR_CHARS) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _figures_of(info: NodeInfo) -> dict[str, Any]:
    """The tooltip figures of a registry snapshot."""
    return {
        "loss": _number(info.last_loss),
        "accuracy": _number(info.last_accuracy),
        "samples": int(info.num_samples),
        "rounds": int(info.rounds_participated),
        "failures": int(info.failures),
        "duration": _number(info.last_duration_secs),
        "available": bool(info.available),
        "last_error": _shorten(info.last_error),
    }


class ClusterGrid(anywidget.AnyWidget):
    """One cell per registered node, coloured live by its state in the current round.

    States: ``idle``, ``training`` (selected in the running round), ``done`` (returned
    its update), ``failed``, ``timed_out`` and ``excluded`` (unavailable, so not
    selectable). The grid reads the coordinator's node registry for its cells and
    follows the engine's events of that model; it redraws at most ten times a second and
    stays cheap for a thousand nodes (the browser only changes the classes of the cells
    whose state changed). Above :data:`LIVE_FIGURES_MAX` nodes the per-node figures of
    the tooltips refresh once a round (states stay live), so a 10,000-node grid keeps
    the kernel's event loop free.

    Parameters
    ----------
    coordinator : Coordinator
        The coordinator whose nodes are shown.
    engine : FederatedLearningEngine or None
        The engine whose event bus is followed.
    events : EventBus or None
        The event bus to follow (default: the engine's, else the coordinator's own).
    title : str or None
        Heading above the grid (default ``"Nodes of <model_id>"``).
    **kwargs
        Passed to :class:`anywidget.AnyWidget` (e.g. ``layout``).

    Attributes
    ----------
    nodes : list of str
        Node ids, sorted (synced).
    states : list of str
        The state of each node, aligned with `nodes` (synced).
    figures : list of dict
        Per node, for its tooltip: ``loss``, ``accuracy``, ``samples``, ``rounds``,
        ``failures``, ``duration``, ``available`` and a shortened ``last_error`` (synced).
    round_number : int
        The round shown: the running one, else the last committed (synced).
    title : str
        Heading above the grid (synced).
    """

    _esm = asset("cluster_grid.js")
    _css = asset("cluster_grid.css")

    nodes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    states = traitlets.List(traitlets.Unicode()).tag(sync=True)
    figures: traitlets.List[Any] = traitlets.List().tag(sync=True)  # no per-item checks: 10k dicts
    round_number = traitlets.Int(0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        coordinator: Coordinator,
        engine: FederatedLearningEngine | None = None,
        *,
        events: EventBus | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._coordinator = coordinator
        self._model_id: str = coordinator.model_id  # (`model_id` is the widget comm id)
        self._state: dict[str, str] = {}
        self._figures_due = True
        self._figures: dict[str, dict[str, Any]] = {}
        self._available: dict[str, bool] = {}
        self._round = int(coordinator.current_round)
        self._closed = False
        self._throttle = Throttle(self._push)
        self._read_registry()
        self._push()
        self.title = title if title is not None else f"Nodes of {self._model_id}"
        if events is None:
            # Without an engine, follow the bus the coordinator publishes on (same package).
            events = engine.events if engine is not None else coordinator._events
        self._feed: EventFeed | None = EventFeed(events, self._on_event, self._model_id)

    @classmethod
    def for_model(cls, engine: FederatedLearningEngine, model_id: str) -> ClusterGrid:
        """The grid of `model_id`'s nodes, following `engine`'s events.

        Raises
        ------
        ModelNotFound
            If the model has no coordinator yet.
        """
        return cls(engine.get_coordinator(model_id), engine)

    # ------------------------------------------------------------- python-side views
    def counts(self) -> dict[str, int]:
        """How many nodes are in each state (every state listed, zeros included)."""
        counts = dict.fromkeys(STATES, 0)
        for state in self._state.values():
            counts[state] += 1
        return counts

    def state_of(self, node_id: str) -> str:
        """The current state of `node_id` (as the next redraw will show it).

        Raises
        ------
        NodeNotFound
            If the grid has no cell for `node_id`.
        """
        try:
            return self._state[node_id]
        except KeyError:
            raise NodeNotFound(node_id, f"cluster grid of model {self._model_id!r}") from None

    def refresh(self) -> None:
        """Re-read the node registry (new, removed and re-admitted nodes) and redraw."""
        if self._closed:
            return
        self._read_registry()
        self._throttle.poke()

    def flush(self) -> None:
        """Send a pending redraw now instead of at the end of the throttle interval."""
        if not self._closed:
            self._throttle.flush()

    def close(self) -> None:
        """Stop following events, drop a pending redraw and close the widget."""
        self._closed = True
        if self._feed is not None:
            self._feed.close()
            self._feed = None
        self._throttle.cancel()
        super().close()

    # ------------------------------------------------------------------ internals
    def _read_registry(self) -> None:
        """Sync cells with the registry: figures, availability, added/removed nodes."""
        self._figures_due = True
        infos = self._coordinator.nodes
        known = {info.node_id for info in infos}
        for node_id in [n for n in self._state if n not in known]:
            del self._state[node_id], self._figures[node_id], self._available[node_id]
        for info in infos:
            self._available[info.node_id] = info.available
            self._figures[info.node_id] = _figures_of(info)
            state = self._state.get(info.node_id)
            if state is None or (state in ("idle", "excluded")):
                self._state[info.node_id] = "idle" if info.available else "excluded"

    def _set(self, node_id: str, state: str, **figures: Any) -> None:
        if node_id not in self._state:  # registered since the last read
            self._available[node_id] = True
            self._figures[node_id] = {}
        self._state[node_id] = state
        if figures:  # replace, never mutate: the synced list still holds the old dict
            self._figures[node_id] = {**self._figures[node_id], **figures}

    def _on_event(self, event: Event) -> None:
        if self._closed:
            return
        if isinstance(event, RoundStarted):
            self._read_registry()
            self._round = event.round_number
            selected = set(event.selected_nodes)
            for node_id in self._state:
                if node_id not in selected:
                    self._state[node_id] = "idle" if self._available[node_id] else "excluded"
            for node_id in event.selected_nodes:
                self._set(node_id, "training")
        elif isinstance(event, NodeFinished):
            self._set(
                node_id=event.node_id,
                state="done",
                loss=_number(event.loss),
                samples=event.num_samples,
                duration=_number(event.duration_secs),
            )
        elif isinstance(event, NodeFailed):
            self._set(
                node_id=event.node_id,
                state="timed_out" if event.timed_out else "failed",
                last_error=_shorten(event.reason),
            )
        elif isinstance(event, NodeRecovered):
            self._set(event.node_id, "idle", available=True)
            self._available[event.node_id] = True
        elif isinstance(event, RoundCompleted | RoundFailed):
            if isinstance(event, RoundCompleted):
                self._round = event.record.round_number
            self._read_registry()
        elif isinstance(event, ModelRewound):
            self._round = event.to_round
            self._read_registry()
        elif isinstance(event, TrainingFinished):
            self._read_registry()
        else:
            return
        self._throttle.poke()

    def _push(self) -> None:
        """Copy the Python-side state into the synced traits, in one message."""
        if self._closed:
            return
        order = sorted(self._state)
        states = [self._state[n] for n in order]
        # Figures only feed the hovered cell's tooltip; for a large grid they go once a
        # round (with the registry), not with every redraw: 10,000 dicts cost the kernel
        # about 40 ms to sync, the node states (strings) about 3 ms.
        live = len(order) <= LIVE_FIGURES_MAX
        figures = [self._figures[n] for n in order] if live or self._figures_due else None
        with self.hold_sync():
            if order != self.nodes:
                self.nodes = order
            if states != self.states:
                self.states = states
            if figures is not None and figures != self.figures:
                self.figures = figures
            self._figures_due = False
            if self._round != self.round_number:
                self.round_number = self._round

    def __repr__(self) -> str:  # short, whatever the number of nodes
        shown = ", ".join(f"{k}={v}" for k, v in self.counts().items() if v)
        return f"ClusterGrid(model_id={self._model_id!r}, round={self._round}, {shown})"
