"""The default backend: a thread pool in the kernel's process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from heliosfl.errors import ClosedError, ConfigError

__all__ = ["InlineBackend"]

T = TypeVar("T")


class InlineBackend:
    """Run node-local work in a private thread pool, keeping the event loop free.

    numpy releases the GIL inside its larger kernels, so a few threads overlap usefully;
    more threads than cores only add switching. A thread cannot be killed: a node that
    times out is asked to stop through its stop flag and its thread returns to the pool
    at the next mini-batch.

    Parameters
    ----------
    max_workers : int or None
        Pool size (default: the number of CPUs, at least 2).
    """

    name = "inline"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = max(2, os.cpu_count() or 2)
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError("max_workers", max_workers, "an integer >= 1")
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="heliosfl-node"
        )

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn(*args)`` in the pool and await the result."""
        if self._pool is None:
            raise ClosedError("InlineBackend")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        """Stop accepting work; queued work is cancelled, running work finishes alone."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __repr__(self) -> str:
        state = "closed" if self._pool is None else f"max_workers={self.max_workers}"
        return f"InlineBackend({state})"
