"""Where local training runs.

``inline`` (the default) runs the nodes' training in lanes of threads owned by the engine,
so the kernel's event loop stays free. ``process`` and ``dask`` run it on a Dask cluster
(a LocalCluster of worker processes, or an existing cluster's address) where each node's
data is placed once (:class:`DaskBackend`). Each implements :class:`Backend`.
"""

from heliosfl.backends.base import Backend, JobHandle, make_backend
from heliosfl.backends.inline import InlineBackend

__all__ = ["Backend", "DaskBackend", "InlineBackend", "JobHandle", "make_backend"]


def __getattr__(name: str) -> object:
    if name == "DaskBackend":  # imported on use: dask is an optional dependency
        from heliosfl.backends.dask import DaskBackend

        return DaskBackend
    raise AttributeError(f"module 'heliosfl.backends' has no attribute {name!r}")
