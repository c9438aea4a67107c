"""The backend protocol: run a synchronous function somewhere, await its result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from heliosfl.errors import ConfigError

__all__ = ["Backend", "make_backend"]

T = TypeVar("T")


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

    def close(self) -> None:
        """Release the backend's resources; later calls to :meth:`run` raise ClosedError."""
        ...


def make_backend(backend: str | Backend, *, max_workers: int | None = None) -> Backend:
    """Return a backend from its name or pass one through.

    Parameters
    ----------
    backend : str or Backend
        ``"inline"`` or a :class:`Backend` instance.
    max_workers : int or None
        Threads of the inline backend.

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
    raise ConfigError("backend", backend, "'inline' or a Backend instance")
