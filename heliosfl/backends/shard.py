"""What runs on a remote worker process: a shard of nodes and their local training.

A :class:`NodeShard` is the data of the nodes placed on one Dask worker, sent there once
and kept (as scattered data) until the placement changes. Each round the kernel sends the
global model (a :class:`~heliosfl.worker.TrainContext`) and the ids of the shard's selected
nodes straight to the worker (:func:`train_on_worker`); :func:`train_shard` trains them
where the data lives with the same code as the in-kernel path (batched when
:func:`~heliosfl.vectorised.batchable`, node by node otherwise), so the same seed gives
the same model on every backend.

This module is imported on the workers, so it depends on nothing but heliosfl itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

import numpy as np
import numpy.typing as npt

from heliosfl.accumulate import RoundSum, UpdateSummary
from heliosfl.backends.base import JobHandle, StopFlag
from heliosfl.config import WorkerConfig
from heliosfl.data import NodeData
from heliosfl.errors import ClosedError
from heliosfl.models.base import _NumpyModel
from heliosfl.records import ModelUpdate
from heliosfl.worker import FederatedWorker, TrainContext, failure_reason

__all__ = ["NodeShard", "PackedOutcomes", "SummedOutcomes", "train_on_worker", "train_shard"]


@dataclass(frozen=True, eq=False)
class NodeShard:
    """The nodes one remote worker holds: ``node_id -> (WorkerConfig, NodeData)``."""

    nodes: dict[str, tuple[WorkerConfig, NodeData]]


class _Detached:
    """The backend of a node replica on a remote worker: it only trains synchronously."""

    name = "detached"

    async def run(self, fn: Callable[..., Any], /, *args: Any) -> NoReturn:
        raise ClosedError("a remote node replica's backend")

    def submit_many(
        self,
        calls: Sequence[Callable[[], Any]],
        *,
        stops: Sequence[StopFlag] | None = None,
        budgets_secs: Sequence[float] | None = None,
    ) -> list[JobHandle[Any]]:
        raise ClosedError("a remote node replica's backend")

    def close(self) -> None:
        """Nothing to release."""


def _no_coordinator(node_id: str, model_id: str | None) -> NoReturn:
    raise ClosedError(f"node {node_id!r}'s coordinator (it lives in the kernel)")


#: Node replicas of the shards this process holds, by ``id(shard)`` (the shard is kept
#: alive alongside, so the id stays its own). Replicas keep their validation cache.
_REPLICAS: dict[int, tuple[NodeShard, dict[str, FederatedWorker]]] = {}
_KEEP = 4
_MODELS: dict[_NumpyModel, _NumpyModel] = {}


def _replicas(shard: NodeShard) -> dict[str, FederatedWorker]:
    found = _REPLICAS.get(id(shard))
    if found is not None and found[0] is shard:
        return found[1]
    workers = {
        node_id: FederatedWorker(config, data, backend=_Detached(), resolve=_no_coordinator)
        for node_id, (config, data) in shard.nodes.items()
    }
    if len(_REPLICAS) >= _KEEP:
        _REPLICAS.pop(next(iter(_REPLICAS)))
    _REPLICAS[id(shard)] = (shard, workers)
    return workers


def train_shard(
    shard: NodeShard,
    node_ids: Sequence[str],
    context: TrainContext,
    sink: RoundSum | None = None,
) -> list[ModelUpdate | UpdateSummary | str]:
    """Train the shard's nodes `node_ids` for `context`; an update or a failure reason each.

    Runs on the worker that holds `shard`. With `sink` (a part of the round's
    :class:`~heliosfl.accumulate.RoundSum`) each update is summed as soon as it is trained
    and only its summary, or the reason it was rejected, comes back.
    """
    from heliosfl.vectorised import batchable, train_together

    # One model object per architecture in this process, so each node's data is
    # validated against it once (contexts arrive unpickled, a new object every round).
    if isinstance(context.model, _NumpyModel):  # built-ins compare by architecture
        model = _MODELS.setdefault(context.model, context.model)
        if model is not context.model:
            context = dataclasses.replace(context, model=model)
    replicas = _replicas(shard)
    workers = [replicas[n] for n in node_ids]
    stop = StopFlag()
    add = None if sink is None else sink.add
    if batchable(workers, context):
        outcomes: list[Any] = list(train_together(workers, context, stop, add))
    else:
        outcomes = []
        for worker in workers:
            try:
                update = worker._train_sync(context, StopFlag(), None, worker.data)
            except Exception as exc:  # the node failed, not the shard
                outcomes.append(exc)
                continue
            outcomes.append(
                update if add is None or not isinstance(update, ModelUpdate) else add(update)
            )
    return [
        outcome
        if isinstance(outcome, ModelUpdate | UpdateSummary | str)
        else failure_reason(outcome, stop)[0] or "stopped"
        for outcome in outcomes
    ]


@dataclass(frozen=True, eq=False)
class PackedOutcomes:
    """A shard's outcomes for the trip back: every delta in one array, the rest as rows.

    A thousand updates of 10,258 parameters pickled one by one cost the kernel about
    0.3 s a round to receive; one ``(updates, parameters)`` array is one buffer on the
    wire, and the kernel's updates are views into it (no copy).
    """

    deltas: npt.NDArray[np.float64]
    rows: list[dict[str, Any] | str]

    @staticmethod
    def pack(outcomes: Sequence[ModelUpdate | str]) -> PackedOutcomes:
        """Pack `outcomes` (on the worker)."""
        updates = [o for o in outcomes if isinstance(o, ModelUpdate)]
        deltas = np.stack([u.delta for u in updates]) if updates else np.zeros((0, 0), np.float64)
        rows: list[dict[str, Any] | str] = [
            o
            if isinstance(o, str)
            else {
                "model_id": o.model_id,
                "node_id": o.node_id,
                "round_number": o.round_number,
                "num_samples": o.num_samples,
                "loss": o.loss,
                "metrics": o.metrics,
                "duration_secs": o.duration_secs,
            }
            for o in outcomes
        ]
        return PackedOutcomes(deltas, rows)

    def unpack(self) -> list[ModelUpdate | str]:
        """The outcomes again, in order (in the kernel); deltas are views into one array."""
        out: list[ModelUpdate | str] = []
        j = 0
        for row in self.rows:
            if isinstance(row, str):
                out.append(row)
            else:
                out.append(ModelUpdate(delta=self.deltas[j], **row))
                j += 1
        return out


@dataclass(frozen=True, eq=False)
class SummedOutcomes:
    """A shard's part of a streamed round: its partial sum and its nodes' outcomes."""

    part: RoundSum
    outcomes: list[UpdateSummary | str]


async def train_on_worker(
    shard_key: str,
    node_ids: Sequence[str],
    context: TrainContext,
    part: RoundSum | None = None,
    dask_worker: Any = None,
) -> PackedOutcomes | SummedOutcomes:
    """:func:`train_shard` on the Dask worker holding the shard scattered under `shard_key`.

    Called by ``Client.run`` straight on the worker (one message each way, no scheduler
    hop); training runs in a thread so the worker's event loop keeps answering heartbeats.
    With `part`, the worker sums its nodes' updates and sends back the partial sum and
    their summaries, not the updates.
    """
    shard = dask_worker.data[shard_key]

    def train() -> PackedOutcomes | SummedOutcomes:
        outcomes = train_shard(shard, node_ids, context, part)
        if part is not None:  # every update went into the part: summaries and reasons
            return SummedOutcomes(part, cast(list[UpdateSummary | str], outcomes))
        return PackedOutcomes.pack(cast(list[ModelUpdate | str], outcomes))

    return await asyncio.to_thread(train)
