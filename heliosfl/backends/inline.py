"""The default backend: lanes of threads in the kernel's process.

A round hands all its node calls to :meth:`InlineBackend.submit_many` at once. Lanes
(threads) take the next call when they are free and report results back to the event
loop in bursts, so the loop does a little work per node and never waits. Measured on
2 cores (``benchmarks/round_throughput.py``): one lane beats two for millisecond-sized
numpy work, because small numpy operations hold the GIL and two Python threads mostly
take turns; models whose work releases the GIL (large matrix products) can use more lanes
with ``max_workers``.

Budgets are enforced cooperatively (each call's :class:`StopFlag` is armed when it starts)
and, for code that ignores its flag, by a watchdog on the loop: a call past its budget is
abandoned (its result fails with :class:`CallAbandoned`) and an extra lane takes over the
queue, so the rest of the round goes on. A thread cannot be killed; the abandoned call
finishes in the background and its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from heliosfl.backends.base import CallAbandoned, JobHandle, StopFlag
from heliosfl.errors import ClosedError, ConfigError

__all__ = ["InlineBackend"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Extra lanes one batch may open to get past calls that ignore their stop flag.
MAX_EXTRA_LANES = 64
#: How often the watchdog looks for calls past their budget (and the grace it allows),
#: and flushes results that lanes have not yet reported.
WATCHDOG_SECS = 0.02
#: A lane wakes the loop at most this often while it still has calls to run.
REPORT_SECS = 0.005


class _Batch:
    """The shared queue of one ``submit_many`` call and its outbox to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, jobs: Sequence[JobHandle[Any]]) -> None:
        self.loop = loop
        self.jobs = list(jobs)
        self.queue: deque[JobHandle[Any]] = deque(jobs)
        self.lock = threading.Lock()
        self.outbox: list[tuple[JobHandle[Any], Any, BaseException | None]] = []
        self.flush_scheduled = False
        self.last_report = 0.0
        self.extra_lanes = 0
        self.lanes_alive = 0  # lanes of this batch that have started and not exited
        self.lanes_stuck = 0  # of those, lanes running a call that was abandoned

    def post(self, job: JobHandle[Any], value: Any, error: BaseException | None) -> None:
        """Queue a result for the loop (from a lane).

        The loop is woken when the queue has run dry or ``REPORT_SECS`` have passed since
        the last wake-up, so a round of many short calls costs the loop (and the GIL) a
        few wake-ups rather than one per call; the watchdog flushes anything left over.
        """
        now = time.monotonic()
        with self.lock:
            self.outbox.append((job, value, error))
            if self.flush_scheduled:
                return
            if self.queue and now - self.last_report < REPORT_SECS:
                return
            self.flush_scheduled = True
            self.last_report = now
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self.loop.call_soon_threadsafe(self.flush)

    def flush(self) -> None:
        """Settle every queued result (on the loop)."""
        with self.lock:
            outbox, self.outbox = self.outbox, []
            self.flush_scheduled = False
        for job, value, error in outbox:
            if job.result.done():  # abandoned, or the caller gave up
                continue
            if error is None:
                job.result.set_result(value)
            else:
                job.result.set_exception(error)

    def take(self) -> JobHandle[Any] | None:
        with self.lock:
            return self.queue.popleft() if self.queue else None


class InlineBackend:
    """Run node-local work in lanes of threads, keeping the event loop free.

    Parameters
    ----------
    max_workers : int or None
        Lanes per batch (default 1; see the module docstring for why).
    """

    name = "inline"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = 1
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError("max_workers", max_workers, "an integer >= 1")
        self.max_workers = max_workers
        self._capacity = max_workers + MAX_EXTRA_LANES
        self._busy = 0  # threads inside a lane, across batches
        self._busy_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=self._capacity, thread_name_prefix="heliosfl-node"
        )

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn(*args)`` in a lane and await the result."""
        handle = self.submit_many([lambda: fn(*args)])[0]
        return await handle.result

    def submit_many(
        self,
        calls: Sequence[Callable[[], T]],
        *,
        stops: Sequence[StopFlag] | None = None,
        budgets_secs: Sequence[float] | None = None,
    ) -> list[JobHandle[T]]:
        """Start every call and return one handle per call, in order.

        Must be called from the event loop's thread. See :class:`~heliosfl.backends.Backend`
        for budgets and stop flags.

        Raises
        ------
        ClosedError
            If the backend was closed.
        ConfigError
            If ``stops`` or ``budgets_secs`` do not have one entry per call.
        """
        pool = self._pool
        if pool is None:
            raise ClosedError("InlineBackend")
        n = len(calls)
        if stops is not None and len(stops) != n:
            raise ConfigError("stops", len(stops), f"one StopFlag per call ({n})")
        if budgets_secs is not None and len(budgets_secs) != n:
            raise ConfigError("budgets_secs", len(budgets_secs), f"one budget per call ({n})")
        loop = asyncio.get_running_loop()
        jobs: list[JobHandle[T]] = [
            JobHandle(
                result=loop.create_future(),
                call=call,
                stop=None if stops is None else stops[i],
                budget_secs=math.inf if budgets_secs is None else float(budgets_secs[i]),
            )
            for i, call in enumerate(calls)
        ]
        batch = _Batch(loop, jobs)
        for _ in range(min(self.max_workers, n)):
            pool.submit(self._lane, batch)
        loop.call_later(WATCHDOG_SECS, self._watch, batch)
        return jobs

    def _watch(self, batch: _Batch) -> None:
        """Flush reported results; abandon calls past their budget (on the loop)."""
        batch.flush()
        now = time.monotonic()
        pending = False
        for job in batch.jobs:
            if job.result.done():
                continue
            pending = True
            started = job.started_at
            if started is None or job.finished_at is not None:
                continue
            if now - started > job.budget_secs + WATCHDOG_SECS:
                job.result.set_exception(CallAbandoned("the call overran its budget"))
                with batch.lock:
                    if job.finished_at is None:
                        job.abandoned = True
                        batch.lanes_stuck += 1
                logger.warning(
                    "a node call ran %.3g s past its %.3g s budget and ignored its stop flag; "
                    "its thread stays busy until it returns",
                    now - started - job.budget_secs,
                    job.budget_secs,
                )
                self._add_lane(batch)
        if pending:
            self._fail_if_starved(batch)
        if pending and self._pool is not None:
            batch.loop.call_later(WATCHDOG_SECS, self._watch, batch)

    def _fail_if_starved(self, batch: _Batch) -> None:
        """Fail queued calls that can never start: every thread is held by stuck calls."""
        with batch.lock:
            healthy = batch.lanes_alive - batch.lanes_stuck
            if not batch.queue or healthy > 0:
                return
        with self._busy_lock:
            free = self._capacity - self._busy
        if free > 0:
            return
        with batch.lock:
            starved = list(batch.queue)
            batch.queue.clear()
        for job in starved:
            if not job.result.done():
                job.result.set_exception(
                    CallAbandoned(
                        f"no thread is free: all {self._capacity} are held by calls that "
                        "ignored their stop flags"
                    )
                )

    def _add_lane(self, batch: _Batch) -> None:
        with batch.lock:
            if not batch.queue or batch.extra_lanes >= MAX_EXTRA_LANES:
                return
            batch.extra_lanes += 1
        if self._pool is not None:
            self._pool.submit(self._lane, batch)

    def _lane(self, batch: _Batch) -> None:
        with self._busy_lock:
            self._busy += 1
        with batch.lock:
            batch.lanes_alive += 1
        try:
            while (job := batch.take()) is not None:
                job.started_at = time.monotonic()
                if job.stop is not None and math.isfinite(job.budget_secs):
                    job.stop.arm(job.budget_secs)
                try:
                    value, error = job.call(), None
                except Exception as exc:
                    value, error = None, exc
                with batch.lock:
                    job.finished_at = time.monotonic()
                    if job.abandoned:
                        batch.lanes_stuck -= 1
                batch.post(job, value, error)
        finally:
            with batch.lock:
                batch.lanes_alive -= 1
            with self._busy_lock:
                self._busy -= 1

    def close(self) -> None:
        """Stop accepting work; running calls finish on their own."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def __aenter__(self) -> InlineBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._pool is None else f"max_workers={self.max_workers}"
        return f"InlineBackend({state})"
