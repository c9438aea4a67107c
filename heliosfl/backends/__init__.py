"""Where local training runs.

``inline`` (the default) runs each node's training in a thread pool owned by the engine,
so the kernel's event loop stays free. Process and Dask backends come later; each
implements :class:`Backend`.
"""

from heliosfl.backends.base import Backend, make_backend
from heliosfl.backends.inline import InlineBackend

__all__ = ["Backend", "InlineBackend", "make_backend"]
