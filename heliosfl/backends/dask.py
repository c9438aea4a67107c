"""Local training on a Dask cluster: nodes' data placed on workers once, trained there.

``DaskBackend()`` starts a :class:`distributed.LocalCluster` of worker processes (two,
one thread each, bound to 127.0.0.1) on first use; ``DaskBackend("tcp://host:8786")``
connects to a running scheduler instead. The client is asynchronous and runs on the
kernel's own event loop, so the loop stays free while the cluster trains.

How a round runs (measured design: one task per node is the wrong design on every engine,
see ``docs/scale.md``):

1. **Placement, once.** Each node gets a home worker (balanced, stable from round to
   round); the nodes of a worker are sent to it as one :class:`~heliosfl.backends.shard.NodeShard`
   and kept there as scattered data. A shard is sent again only when its nodes or their
   data change, or its worker was lost.
2. **One call per worker per round.** The global model travels once per worker, straight
   to it (``Client.run``: one message each way; a scheduled task costs two more hops,
   10-25 ms a round on 2 cores); the worker trains its selected nodes in a thread with
   the in-kernel code
   (:func:`~heliosfl.backends.shard.train_shard`: batched when possible, else node by
   node), so the same seed gives the same model as ``backend="inline"`` (to
   floating-point tolerance, which a contract test checks).
3. **Failures are node failures.** If a worker dies or its task fails, every node of
   that shard fails for the round with the reason, the round goes on with the others, and
   the next round places those nodes on the workers still alive.

Rounds the cluster cannot run as they are simulated in the kernel take the in-kernel
path, through the inline backend this backend wraps: secure aggregation rounds (the
protocol's messages and keys live with the coordinator), and rounds with a node that has
a simulated fault, a data policy (GDPR consent views) or is offline. Evaluation calls and
other generic work also run in-kernel (:meth:`run`, :meth:`submit_many`).

Requires the ``dask`` extra (``pip install "heliosfl[dask]"``); on a remote cluster every
worker needs heliosfl installed. User models travel by cloudpickle: a class defined in a
notebook by value, a class from a module by reference (that module must be importable on
the workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from heliosfl.accumulate import RoundSum, UpdateSummary
from heliosfl.backends.base import JobHandle, StopFlag
from heliosfl.backends.inline import InlineBackend
from heliosfl.backends.shard import NodeShard, SummedOutcomes, train_on_worker
from heliosfl.errors import ClosedError, ConfigError, FederatedLearningError
from heliosfl.records import ModelUpdate
from heliosfl.validation import check_float
from heliosfl.worker import FederatedWorker, TrainContext

__all__ = ["DaskBackend"]

T = TypeVar("T")

_BLAS_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class DaskBackend:
    """Train nodes where their data lives, on a Dask cluster.

    Parameters
    ----------
    address : str or None
        A scheduler address (``"tcp://host:8786"``) or ``None`` for a LocalCluster of
        worker processes started on first use and closed with the backend.
    n_workers : int, default 2
        Worker processes of the LocalCluster (ignored with ``address``).
    threads_per_worker : int, default 1
        Threads per LocalCluster worker; numpy's BLAS is pinned to one thread each.
    name : str, default "dask"
        Shown in benchmarks and reprs (``backend="process"`` builds one named "process").
    timeout_secs : float, default 30
        How long to wait for the scheduler at ``address`` to answer.

    Raises
    ------
    ConfigError
        If an argument is invalid, or dask.distributed is not installed.

    Examples
    --------
    >>> backend = DaskBackend()                       # doctest: +SKIP
    >>> engine = fl.FederatedLearningEngine(config, backend=backend)  # doctest: +SKIP
    >>> DaskBackend("tcp://scheduler.example:8786")   # doctest: +SKIP
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        name: str = "dask",
        timeout_secs: float = 30.0,
    ) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError:  # pragma: no cover - the dev install has it
            raise ConfigError(
                "backend",
                name,
                "a backend whose dependencies are installed",
                'The dask and process backends need the dask extra: pip install "heliosfl[dask]".',
            ) from None
        if address is not None and (not isinstance(address, str) or "://" not in address):
            raise ConfigError("address", address, "a scheduler address such as 'tcp://host:8786'")
        for field, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
                raise ConfigError(field, value, "an integer from 1 to 256")
        self.timeout_secs = check_float("timeout_secs", timeout_secs, low=0.0)
        self.name = name
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self._inline = InlineBackend()
        self._cluster: Any = None
        self._client: Any = None
        self._starting: asyncio.Future[None] | None = None
        self._home: dict[str, str] = {}  # node id -> worker address
        self._workers: dict[str, FederatedWorker] = {}  # every node placed so far
        # worker address -> (what the shard holds, its scattered future, objects kept alive)
        self._shards: dict[str, tuple[tuple[Any, ...], Any, list[object]]] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._closed = False

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start the LocalCluster (or connect to ``address``) on the running loop.

        Called on first use; call it yourself to pay the start-up before the first round.
        """
        if self._closed:
            raise ClosedError("DaskBackend")
        if self._client is not None:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        try:
            if self.address is None:
                # Dask's workers start with MALLOC_TRIM_THRESHOLD_ set, which also fixes
                # glibc's mmap threshold: every numpy temporary over 128 KB is then mapped
                # and unmapped, and batched training ran 2.5x slower per node than in the
                # kernel. BLAS stays pinned to one thread per worker.
                with dask.config.set(
                    {"distributed.nanny.pre-spawn-environ": dict.fromkeys(_BLAS_THREADS, 1)}
                ):
                    self._cluster = await LocalCluster(
                        n_workers=self.n_workers,
                        threads_per_worker=self.threads_per_worker,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address="127.0.0.1:0",
                        asynchronous=True,
                    )  # awaited inside: the workers are spawned now, with this setting
                self._client = await Client(self._cluster, asynchronous=True)
            else:
                self._client = await Client(
                    self.address, asynchronous=True, timeout=self.timeout_secs
                )
        except Exception as exc:
            self._starting = None
            await self._shutdown()
            where = self.address or "a LocalCluster"
            raise FederatedLearningError(
                f"Could not start the {self.name} backend on {where}: {exc}"
            ) from exc

    @property
    def dashboard_link(self) -> str | None:
        """The cluster's dashboard address (``None`` before start)."""
        return None if self._client is None else str(self._client.dashboard_link)

    async def worker_addresses(self) -> list[str]:
        """The addresses of the cluster's workers alive now, sorted."""
        await self.start()
        info = await self._client.scheduler.identity()
        return sorted(info.get("workers", {}))

    async def aclose(self) -> None:
        """Close the client and a LocalCluster this backend started."""
        self._closed = True
        self._inline.close()
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._shards.clear()
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                await cluster.close()

    def close(self) -> None:
        """Close from synchronous code: schedules :meth:`aclose` on the running loop."""
        if self._closed:
            return
        self._closed = True
        self._inline.close()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the cluster's processes end with this one
            return
        task = loop.create_task(self._shutdown())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def __aenter__(self) -> DaskBackend:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------- generic (in-kernel)
    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn(*args)`` in the kernel (see the module docstring)."""
        if self._closed:
            raise ClosedError("DaskBackend")
        return await self._inline.run(fn, *args)

    def submit_many(
        self,
        calls: Sequence[Callable[[], T]],
        *,
        stops: Sequence[StopFlag] | None = None,
        budgets_secs: Sequence[float] | None = None,
    ) -> list[JobHandle[T]]:
        """In-kernel, as :meth:`InlineBackend.submit_many` (rounds that cannot go remote)."""
        if self._closed:
            raise ClosedError("DaskBackend")
        return self._inline.submit_many(calls, stops=stops, budgets_secs=budgets_secs)

    # ------------------------------------------------------------ remote rounds
    def accepts(self, workers: Sequence[FederatedWorker], context: TrainContext) -> bool:
        """Whether a round of `workers` trains on the cluster (see the module docstring).

        Not secure aggregation, and no node with a simulated fault, a data policy, no
        data, or offline: those rounds train in the kernel.
        """
        return context.secure is None and all(
            w.fault is None and w.policy is None and w.online and w.data is not None
            for w in workers
        )

    async def train_nodes(
        self,
        workers: Sequence[FederatedWorker],
        context: TrainContext,
        *,
        timeout_secs: float = math.inf,
        sink: RoundSum | None = None,
    ) -> dict[str, ModelUpdate | UpdateSummary | str]:
        """Train `workers` on the cluster; node id to its update or failure reason.

        A worker's task may run ``timeout_secs`` per node it trains; past that, or if the
        worker is lost, its nodes fail for this round. With a `sink` that can travel
        (:attr:`RoundSum.portable`), each worker sums its nodes' updates into a part of
        it and sends back the part and their summaries, not the updates; the parts are
        merged in worker-address order, so the sum is the same every time.
        """
        if self._closed:
            raise ClosedError("DaskBackend")
        await self.start()
        alive = await self.worker_addresses()
        if not alive:
            return {w.node_id: f"no {self.name} worker is alive" for w in workers}
        self._place(workers, alive)
        by_home: dict[str, list[FederatedWorker]] = {}
        for worker in workers:
            by_home.setdefault(self._home[worker.node_id], []).append(worker)
        client = self._client
        streams = sink is not None and sink.portable
        if sink is not None and streams:
            sink.streamed = True
        calls: dict[asyncio.Future[Any], tuple[str, list[FederatedWorker]]] = {}
        outcomes: dict[str, ModelUpdate | UpdateSummary | str] = {}
        for address, nodes in by_home.items():
            try:
                shard = await self._shard(address)
            except Exception as exc:
                self._lost(address, exc, nodes, outcomes)
                continue
            ids = [w.node_id for w in nodes]
            part = sink.part(ids) if sink is not None and streams else None
            call = client.run(train_on_worker, shard.key, ids, context, part, workers=[address])
            calls[asyncio.ensure_future(call)] = (address, nodes)
        budget = max((len(n) for _, n in calls.values()), default=0) * timeout_secs
        try:
            done, late = (
                await asyncio.wait(calls, timeout=None if math.isinf(budget) else budget)
                if calls
                else (set(), set())
            )
        except asyncio.CancelledError:
            for call in calls:
                call.cancel()
            raise
        for call in sorted(done, key=lambda c: calls[c][0]):  # merged in address order
            address, nodes = calls[call]
            error = call.exception()
            if error is not None:  # the worker died, or its shard is gone
                self._lost(address, error, nodes, outcomes)
                continue
            answer = call.result()[address]
            if isinstance(answer, SummedOutcomes):
                if sink is not None:
                    sink.merge(answer.part)
                back: list[ModelUpdate | UpdateSummary | str] = list(answer.outcomes)
            else:
                back = list(answer.unpack())
            for worker, outcome in zip(nodes, back, strict=True):
                outcomes[worker.node_id] = outcome
        for call in late:  # the worker goes on; its answer is dropped
            call.cancel()
            for worker in calls[call][1]:
                outcomes[worker.node_id] = f"timeout: no update within {timeout_secs:g} s"
        return {w.node_id: outcomes[w.node_id] for w in workers}

    def _lost(
        self,
        address: str,
        error: BaseException,
        nodes: Sequence[FederatedWorker],
        outcomes: dict[str, ModelUpdate | UpdateSummary | str],
    ) -> None:
        """A worker's task failed: its nodes fail this round; its shard is placed anew."""
        self._shards.pop(address, None)
        for node in nodes:
            if self._home.get(node.node_id) == address:
                del self._home[node.node_id]
        reason = f"{self.name} worker {address} lost: {type(error).__name__}: {error}"
        for node in nodes:
            outcomes[node.node_id] = reason

    def _place(self, workers: Sequence[FederatedWorker], alive: list[str]) -> None:
        """Give every node a home among the live workers, keeping existing homes."""
        live = set(alive)
        for address in [a for a in self._shards if a not in live]:
            del self._shards[address]
        load = dict.fromkeys(alive, 0)
        for node_id, address in list(self._home.items()):
            if address in live:
                load[address] += 1
            else:
                del self._home[node_id]
        self._workers.update((w.node_id, w) for w in workers)
        for worker in workers:
            if worker.node_id not in self._home:
                address = min(alive, key=lambda a: (load[a], a))
                self._home[worker.node_id] = address
                load[address] += 1

    async def _shard(self, address: str) -> Any:
        """The scattered shard of `address`, sent again if its nodes or their data changed."""
        members = sorted(n for n, a in self._home.items() if a == address)
        nodes = [self._workers[n] for n in members]
        key = tuple((w.node_id, id(w.data), id(w.config)) for w in nodes)
        found = self._shards.get(address)
        if found is not None and found[0] == key:
            return found[1]
        shard = NodeShard({w.node_id: (w.config, w.data) for w in nodes})  # type: ignore[misc]
        (future,) = await self._client.scatter([shard], workers=[address], hash=False)
        keep: list[object] = [w.data for w in nodes] + [w.config for w in nodes]
        self._shards[address] = (key, future, keep)
        return future

    def __repr__(self) -> str:
        where = self.address or f"LocalCluster(n_workers={self.n_workers})"
        state = "closed" if self._closed else ("started" if self._client else "not started")
        return f"DaskBackend({where}, {state})"
