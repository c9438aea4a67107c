"""ConvergencePlot: loss and accuracy per round, and epsilon spent, drawn live."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

from heliosfl.coordinator import Coordinator
from heliosfl.events import Event, EventBus, ModelRewound, RoundCompleted
from heliosfl.records import RoundRecord, RoundStatus
from heliosfl.ui._live import EventFeed, Throttle

__all__ = ["ConvergencePlot"]

_INK = "#7f7f7f"  # mid grey: readable on light and dark themes


class ConvergencePlot(widgets.VBox):
    """Loss and accuracy per round (left), epsilon spent (right), updated live.

    Drawn with a plain :class:`matplotlib.figure.Figure` (no pyplot, no backend) into a PNG
    shown by an :class:`ipywidgets.Image`, at most ten times a second. While an event
    loop runs (in a notebook), the PNG is rendered in a thread from a copy of the series
    (a draw takes about 100 ms, which would otherwise stall the kernel's loop) and shown
    when ready, newest draw last; :meth:`flush` draws at once. A rewound model (GDPR
    unlearning) drops the rounds it no longer has.

    Parameters
    ----------
    coordinator : Coordinator
        The model's coordinator (its history seeds the plot).
    events : EventBus
        The engine's event bus (``engine.events``).
    width_px : int
        Width of the image.
    """

    def __init__(self, coordinator: Coordinator, events: EventBus, *, width_px: int = 720) -> None:
        self.image = widgets.Image(
            format="png", layout=widgets.Layout(width=f"{width_px}px", flex="0 0 auto")
        )
        self.caption = widgets.HTML()
        super().__init__([self.caption, self.image])
        self.add_class("heliosfl-convergence")
        self.coordinator = coordinator
        self.rounds: list[int] = []
        self.loss: list[float | None] = []
        self.accuracy: list[float | None] = []
        self.epsilon: list[float] = []
        self._throttle = Throttle(self._draw)
        self._asked = 0  # draws asked for; the shown one is the newest that finished
        self._shown = 0
        self._now = False
        self._closed = False
        for record in coordinator.history:
            self._add(record)
        self._feed = EventFeed(events, self._on_event, coordinator.model_id)
        self._throttle.poke()

    def _add(self, record: RoundRecord) -> None:
        if record.status is not RoundStatus.COMPLETED:
            return
        self.rounds.append(record.round_number)
        loss = record.validation_loss if record.validation_loss is not None else None
        self.loss.append(loss if loss is not None else record.aggregated_loss)
        self.accuracy.append(record.validation_accuracy)
        self.epsilon.append(self.coordinator.privacy_spent()[0])

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RoundCompleted):
            self._add(event.record)
        elif isinstance(event, ModelRewound):
            keep = sum(1 for r in self.rounds if r <= event.to_round)
            for series in (self.rounds, self.loss, self.accuracy, self.epsilon):
                del series[keep:]
        else:
            return
        self._throttle.poke()

    @property
    def draws(self) -> int:
        """How many times the plot was drawn (throttled to <= 10 per second)."""
        return self._throttle.draws

    def flush(self) -> None:
        """Draw now (in this thread) if an update is pending."""
        self._now = True
        try:
            self._throttle.flush()
        finally:
            self._now = False

    def figure(self) -> Figure:
        """The current plot as a matplotlib figure (for saving or embedding)."""
        return _figure(self.rounds, self.loss, self.accuracy, self.epsilon)

    def _draw(self) -> None:
        series = (list(self.rounds), list(self.loss), list(self.accuracy), list(self.epsilon))
        self._asked += 1
        number = self._asked
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self._now:
            self._show(number, _render(*series))
            return
        rendering = loop.run_in_executor(None, _render, *series)
        rendering.add_done_callback(lambda done: self._show(number, done.result()))

    def _show(self, number: int, drawn: tuple[bytes, str]) -> None:
        if number < self._shown or self._closed:  # a newer draw is already shown
            return
        self._shown = number
        png, caption = drawn
        with self.hold_sync():
            self.image.value = png
            self.caption.value = caption

    def close(self) -> None:
        """Stop listening and close the widget."""
        self._closed = True
        self._feed.close()
        self._throttle.cancel()
        super().close()


def _figure(
    rounds: list[int], loss: list[float | None], accuracy: list[float | None], epsilon: list[float]
) -> Figure:
    """The plot of these series (a new figure; safe to build in any thread)."""
    private = any(e > 0 for e in epsilon)
    fig = Figure(figsize=(8.0, 3.0), dpi=90)
    fig.patch.set_alpha(0.0)
    axes = fig.subplots(1, 2 if private else 1, squeeze=False)[0]
    left = axes[0]
    _style(left)
    left.set_xlabel("round")
    left.set_ylabel("loss", color="#1f77b4")
    points = [(r, v) for r, v in zip(rounds, loss, strict=True) if v is not None]
    if points:
        left.plot(*zip(*points, strict=True), color="#1f77b4", marker=".", label="loss")
    right = left.twinx()
    _style(right)
    right.set_ylabel("accuracy", color="#2ca02c")
    right.set_ylim(0.0, 1.0)
    points = [(r, v) for r, v in zip(rounds, accuracy, strict=True) if v is not None]
    if points:
        right.plot(*zip(*points, strict=True), color="#2ca02c", marker=".", label="accuracy")
    left.set_title("validation loss and accuracy", color=_INK, fontsize=10)
    if private:
        spent = axes[1]
        _style(spent)
        spent.plot(rounds, epsilon, color="#d62728", marker=".")
        spent.set_xlabel("round")
        spent.set_ylabel("epsilon spent", color="#d62728")
        spent.set_title("privacy budget used", color=_INK, fontsize=10)
    fig.tight_layout()
    return fig


def _render(
    rounds: list[int], loss: list[float | None], accuracy: list[float | None], epsilon: list[float]
) -> tuple[bytes, str]:
    """The PNG of the plot and its caption."""
    buffer = io.BytesIO()
    _figure(rounds, loss, accuracy, epsilon).savefig(buffer, format="png", transparent=True)
    last = rounds[-1] if rounds else 0
    latest = next((a for a in reversed(accuracy) if a is not None), None)
    shown = "n/a" if latest is None else f"{latest:.3f}"
    spent = f" · epsilon {epsilon[-1]:.3g}" if epsilon and epsilon[-1] else ""
    return (
        buffer.getvalue(),
        f"<span class='heliosfl-caption'>round {last} · accuracy {shown}{spent}</span>",
    )


def _style(axes: Any) -> None:
    axes.set_facecolor("none")
    axes.tick_params(colors=_INK)
    for spine in axes.spines.values():
        spine.set_color(_INK)
    axes.xaxis.label.set_color(_INK)
