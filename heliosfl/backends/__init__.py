"""Where local training runs.

``inline`` (the default) runs the nodes' training in lanes of threads owned by the engine,
so the kernel's event loop stays free. Process and Dask backends come later; each
implements :class:`Backend`.
"""

from heliosfl.backends.base import Backend, JobHandle, make_backend
from heliosfl.backends.inline import InlineBackend

__all__ = ["Backend", "InlineBackend", "JobHandle", "make_backend"]
