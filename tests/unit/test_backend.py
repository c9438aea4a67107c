"""The inline backend: ordering, errors, own-time budgets, abandonment, lanes."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from heliosfl.backends import InlineBackend, make_backend
from heliosfl.backends.base import Backend, CallAbandoned, StopFlag
from heliosfl.errors import ClosedError, ConfigError


async def test_results_come_back_in_submission_order():
    backend = InlineBackend()
    handles = backend.submit_many([lambda i=i: i * i for i in range(50)])
    results = await asyncio.gather(*(h.result for h in handles))
    backend.close()
    assert results == [i * i for i in range(50)]
    assert all(h.started_at is not None and h.finished_at >= h.started_at for h in handles)


async def test_an_exception_belongs_to_its_own_call():
    def boom() -> int:
        raise ValueError("bad node")

    backend = InlineBackend()
    handles = backend.submit_many([lambda: 1, boom, lambda: 3])
    outcomes = await asyncio.gather(*(h.result for h in handles), return_exceptions=True)
    backend.close()
    assert outcomes[0] == 1 and outcomes[2] == 3
    assert isinstance(outcomes[1], ValueError)


async def test_a_cooperative_call_stops_when_its_own_time_is_up():
    stop = StopFlag()

    def patient() -> str:
        while not stop.is_set():
            time.sleep(0.002)
        return "stopped"

    backend = InlineBackend()
    started = time.perf_counter()
    (handle,) = backend.submit_many([patient], stops=[stop], budgets_secs=[0.05])
    assert await handle.result == "stopped"
    backend.close()
    assert stop.expired
    assert 0.05 <= time.perf_counter() - started < 0.3


async def test_waiting_for_a_lane_does_not_count_against_the_budget():
    stops = [StopFlag(), StopFlag()]

    def slow_first() -> str:
        time.sleep(0.15)
        return "first"

    def quick_second() -> str:
        time.sleep(0.01)
        return "stopped" if stops[1].is_set() else "second"

    backend = InlineBackend(max_workers=1)
    handles = backend.submit_many([slow_first, quick_second], stops=stops, budgets_secs=[1.0, 0.1])
    results = await asyncio.gather(*(h.result for h in handles))
    backend.close()
    # the second call waited 0.15 s for the lane, longer than its budget, and still ran
    assert results == ["first", "second"]


async def test_a_call_that_ignores_its_flag_is_abandoned_and_the_queue_moves_on():
    release = threading.Event()

    def stuck() -> str:
        release.wait(2.0)
        return "late"

    backend = InlineBackend(max_workers=1)
    started = time.perf_counter()
    handles = backend.submit_many(
        [stuck, lambda: "a", lambda: "b"],
        stops=[StopFlag(), StopFlag(), StopFlag()],
        budgets_secs=[0.05, 1.0, 1.0],
    )
    outcomes = await asyncio.gather(*(h.result for h in handles), return_exceptions=True)
    elapsed = time.perf_counter() - started
    release.set()
    backend.close()
    assert isinstance(outcomes[0], CallAbandoned)
    assert outcomes[1:] == ["a", "b"]
    assert elapsed < 0.5


async def test_run_and_close():
    backend = make_backend("inline")
    assert isinstance(backend, Backend)
    assert await backend.run(lambda a, b: a + b, 2, 3) == 5
    backend.close()
    with pytest.raises(ClosedError):
        await backend.run(lambda: 1)
    assert "closed" in repr(backend)


async def test_the_backend_is_an_async_context_manager():
    async with InlineBackend(max_workers=2) as backend:
        assert await backend.run(lambda: "ok") == "ok"
    with pytest.raises(ClosedError):
        backend.submit_many([lambda: 1])


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="max_workers"):
        InlineBackend(max_workers=0)
    with pytest.raises(ConfigError, match="backend"):
        make_backend("gpu-cluster")


async def test_stops_and_budgets_must_match_the_calls():
    backend = InlineBackend()
    with pytest.raises(ConfigError, match="stops"):
        backend.submit_many([lambda: 1], stops=[])
    with pytest.raises(ConfigError, match="budgets_secs"):
        backend.submit_many([lambda: 1], budgets_secs=[1.0, 2.0])
    backend.close()


def test_stop_flag():
    flag = StopFlag()
    assert not flag.is_set() and not flag.expired
    flag.arm(0.0)
    time.sleep(0.001)
    assert flag.is_set() and flag.expired
    other = StopFlag()
    other.set()
    assert other.is_set() and not other.expired
