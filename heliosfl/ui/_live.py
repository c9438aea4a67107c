"""Live updates for widgets: a throttle, and a model-filtered feed of engine events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from heliosfl.events import Event, EventBus

__all__ = ["EventFeed", "Throttle"]

#: At most this many redraws a second (STYLE: widgets throttle to <= 10 updates/s).
MAX_UPDATES_PER_SEC = 10.0


class Throttle:
    """Coalesce requests to redraw into at most one call per `interval_secs`.

    ``poke()`` marks the view dirty. The first poke draws at once; later ones within the
    interval are merged into one draw at the end of it (scheduled on the running event
    loop; without a loop, e.g. in a plain script, they draw at once). ``flush()`` draws now
    if anything is pending.

    Parameters
    ----------
    draw : callable
        Redraws the view.
    interval_secs : float
        Minimum time between draws (default 0.1 s: 10 per second).
    clock : callable
        Monotonic clock (tests inject one).
    """

    def __init__(
        self,
        draw: Callable[[], None],
        interval_secs: float = 1.0 / MAX_UPDATES_PER_SEC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._draw = draw
        self.interval_secs = interval_secs
        self._clock = clock
        self._last = -float("inf")
        self._pending = False
        self._handle: asyncio.TimerHandle | None = None
        #: How many times the view was drawn.
        self.draws = 0

    def poke(self) -> None:
        """Ask for a redraw (merged with others within the interval)."""
        self._pending = True
        if self._handle is not None:
            return
        wait = self._last + self.interval_secs - self._clock()
        if wait <= 0:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._handle = loop.call_later(wait, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.flush()

    def flush(self) -> None:
        """Draw now if a redraw is pending."""
        if not self._pending:
            return
        self._pending = False
        self._last = self._clock()
        self.draws += 1
        self._draw()

    def cancel(self) -> None:
        """Drop a scheduled draw."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class EventFeed:
    """Calls `on_event` for each event of one model (or all), until :meth:`close`.

    Parameters
    ----------
    events : EventBus
        The engine's event bus.
    on_event : callable
        Called on the event loop for every matching event.
    model_id : str or None
        Only events of this model (``None``: all).
    """

    def __init__(
        self, events: EventBus, on_event: Callable[[Event], None], model_id: str | None = None
    ) -> None:
        self._events = events
        self._on_event = on_event
        self.model_id = model_id
        self._remove = events.add_listener(self._listen)
        self._open = True

    def _listen(self, event: Event) -> None:
        if self._open and (self.model_id is None or event.model_id == self.model_id):
            self._on_event(event)

    def close(self) -> None:
        """Stop listening."""
        if self._open:
            self._open = False
            self._remove()
