"""The backend protocol: run synchronous calls somewhere, await their results.

A call's *own time* runs from the moment it starts running (not from when it was
submitted: waiting for a free thread is an artefact of simulating many nodes on few
cores) and is bounded by its budget. Calls stop cooperatively: they check their
:class:`StopFlag` between steps; a backend abandons a call that overruns its budget
anyway, so the caller is never held up by code that ignores its flag.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from heliosfl.errors import ConfigError

__all__ = ["Backend", "CallAbandoned", "JobHandle", "StopFlag", "make_backend"]

T = TypeVar("T")


class CallAbandoned(TimeoutError):
    """A call ran past its budget without stopping; its result will be ignored."""


class StopFlag:
    """A cooperative stop signal with an optional deadline on the call's own time.

    ``is_set()`` turns true when :meth:`set` was called or when the deadline armed by the
    backend (at the moment the call starts) has passed. Cheap to create and to check:
    it is consulted before every mini-batch.
    """

    __slots__ = ("_set", "deadline")

    def __init__(self) -> None:
        self._set = False
        self.deadline = math.inf

    def set(self) -> None:
        """Ask the call to stop at its next check."""
        self._set = True

    def arm(self, budget_secs: float) -> None:
        """Start the call's clock: it should stop ``budget_secs`` from now."""
        self.deadline = time.monotonic() + budget_secs

    @property
    def expired(self) -> bool:
        """True once the armed deadline has passed."""
        return time.monotonic() > self.deadline

    def is_set(self) -> bool:
        """True if the call should stop now (asked to, or out of time)."""
        return self._set or time.monotonic() > self.deadline


@dataclass(eq=False)
class JobHandle(Generic[T]):
    """One submitted call.

    Attributes
    ----------
    result : asyncio.Future
        Resolved with the call's return value or exception (:class:`CallAbandoned` if
        the call overran its budget and was left behind).
    started_at, finished_at : float or None
        ``time.monotonic()`` when the call started and ended.
    """

    result: asyncio.Future[T]
    call: Callable[[], T] = field(repr=False)
    stop: StopFlag | None = None
    budget_secs: float = math.inf
    started_at: float | None = None
    finished_at: float | None = None
    abandoned: bool = False


@runtime_checkable
class Backend(Protocol):
    """Runs node-local work off the event loop.

    Implementations must never block the loop, must let the caller cancel the await (the
    work itself may finish later; training checks a stop flag between batches), and must
    give the same results for the same inputs as every other backend.
    """

    name: str

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn(*args)`` and return its result (or raise its exception)."""
        ...

    def submit_many(
        self,
        calls: Sequence[Callable[[], T]],
        *,
        stops: Sequence[StopFlag] | None = None,
        budgets_secs: Sequence[float] | None = None,
    ) -> list[JobHandle[T]]:
        """Start every call and return one handle per call, in order.

        Called on the loop's thread. ``stops[i]`` is armed with ``budgets_secs[i]`` when
        call ``i`` starts; a call still running ``budgets_secs[i]`` after it started (plus
        a short grace) is abandoned: its ``result`` fails with :class:`CallAbandoned`.
        """
        ...

    def close(self) -> None:
        """Release the backend's resources; later calls to :meth:`run` raise ClosedError."""
        ...


def make_backend(backend: str | Backend, *, max_workers: int | None = None) -> Backend:
    """Return a backend from its name or pass one through.

    Parameters
    ----------
    backend : str or Backend
        ``"inline"`` (threads in the kernel), ``"process"`` or ``"dask"`` (a
        :class:`~heliosfl.backends.DaskBackend` on a LocalCluster of worker processes;
        pass ``DaskBackend("tcp://host:8786")`` for an existing cluster), or a
        :class:`Backend` instance.
    max_workers : int or None
        Threads of the inline backend; worker processes of ``"process"`` and ``"dask"``
        (default: the machine's cores, at most 8).

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    if isinstance(backend, Backend) and not isinstance(backend, str):
        return backend
    if backend == "inline":
        from heliosfl.backends.inline import InlineBackend

        return InlineBackend(max_workers=max_workers)
    if backend in ("dask", "process"):
        import os

        from heliosfl.backends.dask import DaskBackend

        workers = max_workers if max_workers is not None else max(1, min(os.cpu_count() or 1, 8))
        return DaskBackend(n_workers=workers, name=str(backend))
    raise ConfigError(
        "backend", backend, "'inline', 'process', 'dask' or a Backend instance (e.g. DaskBackend)"
    )
