"""Unit tests for heliosfl.events: ordering, bounded buffers, finals, filters, listeners."""

from __future__ import annotations

import asyncio
import logging

import pytest

from heliosfl.errors import ConfigError
from heliosfl.events import (
    Event,
    EventBus,
    NodeFailed,
    NodeFinished,
    RoundCompleted,
    RoundStarted,
    Subscription,
    TrainingFinished,
    TrainingStarted,
)
from heliosfl.records import RoundRecord, StopReason, TrainingResult


def progress(round_number: int, model_id: str = "m") -> RoundStarted:
    return RoundStarted(model_id=model_id, round_number=round_number, selected_nodes=("a", "b"))


def finished(model_id: str = "m", rounds: int = 3) -> TrainingFinished:
    result = TrainingResult(
        model_id=model_id,
        stop_reason=StopReason.MAX_ROUNDS,
        rounds_completed=rounds,
        current_round=rounds,
        final_accuracy=0.875,
        final_loss=0.31,
        best_accuracy=0.9,
        best_loss=0.29,
        duration_secs=1.25,
    )
    return TrainingFinished(model_id=model_id, result=result)


def a_run(model_id: str = "m") -> list[Event]:
    """A realistic sequence of events of one two-round run."""
    record = RoundRecord(round_number=1, selected_nodes=("a", "b"), participating_nodes=("a",))
    return [
        TrainingStarted(model_id=model_id, start_round=1, max_rounds=2),
        RoundStarted(model_id=model_id, round_number=1, selected_nodes=("a", "b")),
        NodeFinished(
            model_id=model_id,
            round_number=1,
            node_id="a",
            loss=0.5,
            num_samples=10,
            duration_secs=0.01,
        ),
        NodeFailed(
            model_id=model_id, round_number=1, node_id="b", reason="timeout", timed_out=True
        ),
        RoundCompleted(model_id=model_id, record=record),
        finished(model_id, rounds=1),
    ]


def drain(sub: Subscription) -> list[Event]:
    events = []
    while (event := sub.get_nowait()) is not None:
        events.append(event)
    return events


async def collect(sub: Subscription) -> list[Event]:
    async with asyncio.timeout(2):
        return [event async for event in sub]


def test_final_flags() -> None:
    assert TrainingFinished.final is True
    assert finished().final is True
    for event in a_run()[:-1]:
        assert event.final is False


async def test_subscriber_receives_events_in_order() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    events = a_run()
    for event in events:
        bus.publish(event)
    sub.close()
    received = await collect(sub)
    assert received == events
    assert all(a is b for a, b in zip(received, events, strict=True))
    assert sub.dropped == 0


async def test_concurrent_consumer_sees_events_as_published() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    received: list[Event] = []

    async def consume() -> None:
        async for event in sub:
            received.append(event)
            if isinstance(event, TrainingFinished):
                break

    task = asyncio.create_task(consume())
    events = a_run()
    for i, event in enumerate(events):
        bus.publish(event)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert received == events[: i + 1]
    async with asyncio.timeout(2):
        await task
    assert received == events


async def test_full_buffer_drops_oldest_intermediate_and_counts() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    events = [progress(i) for i in range(1, 6)]
    for event in events:
        bus.publish(event)
    assert sub.dropped == 2
    sub.close()
    assert await collect(sub) == events[2:]


async def test_final_event_is_never_dropped() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    before = [progress(i) for i in (1, 2, 3)]  # fills the buffer
    final = finished()
    after = [progress(i) for i in range(4, 11)]  # more keep coming
    for event in [*before, final, *after]:
        bus.publish(event)
    # 11 published, 3 buffered: the 8 oldest intermediate events were dropped.
    assert sub.dropped == 8
    sub.close()
    received = await collect(sub)
    assert received == [final, after[-2], after[-1]]


async def test_final_event_kept_when_buffer_holds_only_finals() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=1)
    finals = [finished("a"), finished("b"), finished("c")]
    for event in finals:
        bus.publish(event)
    bus.publish(progress(1, "d"))
    bus.publish(progress(2, "d"))
    sub.close()
    received = await collect(sub)
    # Finals are kept beyond maxsize; the newer intermediate event replaced the older.
    assert received[:3] == finals
    assert len(received) == 4
    assert isinstance(received[3], RoundStarted)
    assert received[3].round_number == 2
    assert sub.dropped == 1


async def test_slow_subscriber_does_not_affect_others() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=2)
    fast = bus.subscribe(maxsize=100)
    events = [progress(i) for i in range(1, 21)]
    for event in events:
        bus.publish(event)
    assert slow.dropped == 18
    assert fast.dropped == 0
    assert drain(fast) == events
    assert drain(slow) == events[-2:]


async def test_model_id_filter() -> None:
    bus = EventBus()
    only_a = bus.subscribe(model_id="a", maxsize=2)
    everything = bus.subscribe()
    events = [progress(1, "a"), progress(1, "b"), progress(2, "b"), progress(2, "a"), finished("b")]
    for event in events:
        bus.publish(event)
    assert drain(only_a) == [events[0], events[3]]
    assert only_a.dropped == 0  # filtered-out events are not "dropped"
    assert drain(everything) == events


async def test_close_ends_iteration_after_draining() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    events = [progress(1), progress(2), progress(3)]
    for event in events:
        bus.publish(event)
    sub.close()
    bus.publish(progress(4))  # after close: not delivered
    assert await collect(sub) == events
    assert await collect(sub) == []


async def test_close_wakes_a_waiting_iterator() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    task = asyncio.create_task(collect(sub))
    await asyncio.sleep(0)
    assert not task.done()
    sub.close()
    async with asyncio.timeout(2):
        assert await task == []


async def test_context_manager_subscription_drains_then_stops() -> None:
    bus = EventBus()
    first = progress(1)
    async with bus.subscribe() as sub:
        bus.publish(first)
    bus.publish(progress(2))
    assert await collect(sub) == [first]


async def test_bus_close_ends_every_subscription_and_drops_listeners() -> None:
    bus = EventBus()
    subs = [bus.subscribe() for _ in range(3)]
    calls: list[Event] = []
    bus.add_listener(calls.append)
    event = progress(1)
    bus.publish(event)
    bus.close()
    bus.publish(progress(2))
    for sub in subs:
        assert await collect(sub) == [event]
    assert calls == [event]


async def test_several_subscribers_each_get_every_event() -> None:
    bus = EventBus()
    subs = [bus.subscribe(), bus.subscribe(maxsize=10), bus.subscribe(model_id="m")]
    events = a_run()
    for event in events:
        bus.publish(event)
    for sub in subs:
        sub.close()
    results = await asyncio.gather(*(collect(sub) for sub in subs))
    for received in results:
        assert received == events


async def test_listener_exceptions_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    good: list[Event] = []

    def bad(event: Event) -> None:
        raise RuntimeError("listener blew up")

    bus.add_listener(bad)
    bus.add_listener(good.append)
    event = progress(1)
    with caplog.at_level(logging.ERROR, logger="heliosfl.events"):
        bus.publish(event)  # must not raise
    assert good == [event]  # later listeners still run
    assert drain(sub) == [event]
    errors = [r for r in caplog.records if r.name == "heliosfl.events"]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)


async def test_add_listener_returns_a_working_unsubscribe() -> None:
    bus = EventBus()
    calls: list[Event] = []
    other: list[Event] = []
    unsubscribe = bus.add_listener(calls.append)
    bus.add_listener(other.append)
    first, second = progress(1), progress(2)
    bus.publish(first)
    unsubscribe()
    bus.publish(second)
    unsubscribe()  # idempotent
    assert calls == [first]
    assert other == [first, second]


@pytest.mark.parametrize("maxsize", [0, -1, True, 1.5, "10"])
def test_subscribe_rejects_invalid_maxsize(maxsize: object) -> None:
    with pytest.raises(ConfigError) as info:
        EventBus().subscribe(maxsize=maxsize)  # type: ignore[arg-type]
    assert info.value.field == "maxsize"


def test_get_nowait_on_empty_buffer_is_none() -> None:
    sub = EventBus().subscribe()
    assert sub.get_nowait() is None


def test_events_are_frozen_and_timestamped_in_utc() -> None:
    event = progress(1)
    assert event.time.tzinfo is not None
    assert event.time.utcoffset() is not None
    assert event.time.utcoffset().total_seconds() == 0
    with pytest.raises(AttributeError):
        event.round_number = 2  # type: ignore[misc]
