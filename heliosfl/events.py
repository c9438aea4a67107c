"""The event stream that widgets, the CLI and (later) the audit log follow.

The coordinator publishes events on the event loop; every subscriber has its own bounded
buffer. Publishing never waits: when a subscriber's buffer is full, its oldest
*intermediate* event is dropped (and counted in :attr:`Subscription.dropped`). Final events
(:class:`TrainingFinished`) are never dropped, so a slow subscriber may miss progress but
always learns how a run ended.

Examples
--------
>>> async def follow(engine):                               # doctest: +SKIP
...     async with engine.events.subscribe(model_id="m") as events:
...         async for event in events:
...             print(event)
...             if isinstance(event, TrainingFinished):
...                 break
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import ClassVar

from heliosfl.errors import ClosedError, ConfigError
from heliosfl.records import RoundRecord, TrainingResult

__all__ = [
    "Event",
    "EventBus",
    "ModelRewound",
    "NodeFailed",
    "NodeFinished",
    "NodeRecovered",
    "RoundCompleted",
    "RoundFailed",
    "RoundStarted",
    "Subscription",
    "TrainingFinished",
    "TrainingStarted",
]

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of events: which model, and when (UTC)."""

    final: ClassVar[bool] = False
    model_id: str
    time: datetime = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingStarted(Event):
    """A training run started (``start_round`` is the first round it will run)."""

    start_round: int
    max_rounds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundStarted(Event):
    """A round started with the selected nodes."""

    round_number: int
    selected_nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFinished(Event):
    """A node returned its update (``loss`` is ``None`` under differential privacy)."""

    round_number: int
    node_id: str
    loss: float | None
    num_samples: int
    duration_secs: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFailed(Event):
    """A node failed, timed out, or had its update rejected; ``reason`` says which."""

    round_number: int
    node_id: str
    reason: str
    timed_out: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecovered(Event):
    """An unavailable node answered a health check before ``round_number`` and is back."""

    round_number: int
    node_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundCompleted(Event):
    """A round was committed; ``record`` is its history entry."""

    record: RoundRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundFailed(Event):
    """A round attempt ended without quorum; the model is unchanged."""

    record: RoundRecord
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRewound(Event):
    """The model went back to the checkpoint of ``to_round`` (e.g. to unlearn erased data).

    Rounds ``to_round + 1`` to ``from_round`` are no longer the model's history; a plot of
    the run drops them. Replayed rounds follow as ordinary round events.
    """

    to_round: int
    from_round: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingFinished(Event):
    """A training run ended (never dropped for a slow subscriber)."""

    final: ClassVar[bool] = True
    result: TrainingResult


class Subscription:
    """One subscriber's bounded view of the stream; an async iterator of events.

    Parameters
    ----------
    bus : EventBus
        The bus it reads from.
    maxsize : int
        Buffered events before the oldest intermediate one is dropped.
    model_id : str or None
        Only events of this model (``None``: all).
    """

    def __init__(self, bus: EventBus, maxsize: int, model_id: str | None) -> None:
        self._bus = bus
        self._maxsize = maxsize
        self._model_id = model_id
        self._buffer: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self._closed or (self._model_id is not None and event.model_id != self._model_id):
            return
        if len(self._buffer) >= self._maxsize:
            for i, old in enumerate(self._buffer):
                if not old.final:
                    del self._buffer[i]
                    self.dropped += 1
                    break
        self._buffer.append(event)
        self._ready.set()

    def get_nowait(self) -> Event | None:
        """Return the next buffered event, or ``None`` if there is none."""
        if not self._buffer:
            return None
        return self._buffer.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()

    def close(self) -> None:
        """Stop receiving events; iteration ends once the buffer is drained."""
        self._closed = True
        self._bus._remove(self)
        self._ready.set()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventBus:
    """Publishes events to subscriptions and listeners without ever blocking training.

    ``publish`` must be called from the event loop's thread.
    """

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._closed = False

    def subscribe(self, *, maxsize: int = 1000, model_id: str | None = None) -> Subscription:
        """Open a subscription with a buffer of ``maxsize`` events.

        Parameters
        ----------
        maxsize : int
            Buffer size (>= 1); see the module docstring for what is dropped when full.
        model_id : str or None
            Restrict to one model's events.

        Returns
        -------
        Subscription
            An async iterator; close it (or use ``async with``) when done.

        Raises
        ------
        ConfigError
            If ``maxsize`` is not an integer >= 1.
        ClosedError
            If the bus (its engine) was closed.
        """
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigError("maxsize", maxsize, "an integer >= 1")
        if self._closed:
            raise ClosedError("EventBus (its engine was closed)")
        sub = Subscription(self, maxsize, model_id)
        self._subscriptions.append(sub)
        return sub

    def add_listener(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, synchronously; returns an unsubscribe.

        Listeners must be quick (they run on the event loop); an exception in one is
        logged and does not reach training.
        """
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every subscription and listener."""
        for sub in list(self._subscriptions):
            sub._offer(event)
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                logger.exception("event listener %r raised; ignored", callback)

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def close(self) -> None:
        """Close every subscription (iterators end after draining) and drop listeners."""
        self._closed = True
        for sub in list(self._subscriptions):
            sub.close()
        self._listeners.clear()
