"""Running the nodes of one round on the backend, each within its own time budget.

A node gets ``node_timeout_secs`` of its *own* time: its local training, from the moment a
thread starts it (waiting for a free thread is an artefact of simulating many nodes on
few cores, so it does not count), plus the simulated latency of its answer. A node whose
latency alone reaches the timeout is not run at all, and the round gives up on it at the
timeout, so a hang costs the round at most the timeout. Outcomes are published as events
as they arrive.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from heliosfl.accumulate import RoundSum, UpdateSummary
from heliosfl.backends.base import Backend, StopFlag
from heliosfl.events import EventBus, NodeFailed, NodeFinished
from heliosfl.models import Model
from heliosfl.records import MaskedUpdate, ModelUpdate
from heliosfl.rounds import weighted_figure
from heliosfl.vectorised import batchable, train_together
from heliosfl.worker import FederatedWorker, NodeJob, TrainContext, failure_reason

__all__ = ["Outcome", "RoundDispatch", "evaluate_on_nodes"]

#: What a node's round came to: its update (masked in a secure round; a summary once
#: streamed into a :class:`~heliosfl.accumulate.RoundSum`), or why it failed.
Outcome = ModelUpdate | MaskedUpdate | UpdateSummary | str

#: Node events published between two yields to the event loop.
PUBLISH_SLICE = 1000


class RoundDispatch:
    """Runs the selected nodes of one round and collects their outcomes.

    Parameters
    ----------
    model_id : str
        The model.
    round_number : int
        The round being trained.
    timeout_secs : float
        Each node's budget of own time.
    backend : Backend
        Where training runs.
    events : EventBus
        Where ``NodeFinished`` and ``NodeFailed`` go.
    private : bool
        Differential privacy is on: events carry no per-node loss.
    """

    def __init__(
        self,
        *,
        model_id: str,
        round_number: int,
        timeout_secs: float,
        backend: Backend,
        events: EventBus,
        private: bool = False,
    ) -> None:
        self.model_id = model_id
        self.private = private
        self.round_number = round_number
        self.timeout_secs = timeout_secs
        self._backend = backend
        self._events = events

    async def run(
        self,
        selected: Sequence[str],
        workers: Mapping[str, FederatedWorker],
        context: TrainContext,
        sink: RoundSum | None = None,
    ) -> dict[str, Outcome]:
        """Train the selected nodes; each outcome is an update or a failure reason.

        Parameters
        ----------
        selected : sequence of str
            The round's nodes.
        workers : mapping of str to FederatedWorker
            Every node's worker.
        context : TrainContext
            The global model as sent to the nodes.
        sink : RoundSum or None
            Where a batched or Dask round streams its updates (see
            :mod:`heliosfl.accumulate`); ``sink.streamed`` tells whether it did. Other
            paths return the updates.

        Returns
        -------
        dict
            Node id to its :class:`ModelUpdate` (a :class:`MaskedUpdate` in a secure
            round; an :class:`UpdateSummary` once streamed into `sink`) or the reason it
            failed, in ``selected`` order.
        """
        round_number = self.round_number
        present = [workers[n] for n in selected if n in workers]
        # A cluster backend (DaskBackend) trains the rounds it accepts where the data is.
        accepts = getattr(self._backend, "accepts", None)
        if accepts is not None and len(present) == len(selected) and accepts(present, context):
            train = self._backend.train_nodes  # type: ignore[attr-defined]
            return await self._run_remote(train, present, context, sink)
        if len(present) == len(selected) and batchable(present, context):
            return await self._run_together(present, context, sink)
        timeout = self.timeout_secs
        started = time.monotonic()
        outcomes: dict[str, Outcome] = {}
        jobs: dict[str, NodeJob] = {}
        for node_id in selected:
            worker = workers.get(node_id)
            if worker is None:
                outcomes[node_id] = "no worker for this node (call engine.create_worker first)"
            else:
                jobs[node_id] = worker.job(context)
        runnable = [n for n, job in jobs.items() if job.latency_secs < timeout]
        handles = self._backend.submit_many(
            [jobs[n].call for n in runnable],
            stops=[jobs[n].stop for n in runnable],
            budgets_secs=[timeout - jobs[n].latency_secs for n in runnable],
        )
        settle_callbacks = {}
        for node_id, handle in zip(runnable, handles, strict=True):
            callback = functools.partial(
                self._settle, outcomes, node_id, jobs[node_id], round_number
            )
            settle_callbacks[id(handle)] = callback
            handle.result.add_done_callback(callback)
        try:
            if handles:
                await asyncio.wait([h.result for h in handles])
            # Simulated latency: each answer arrives latency_secs after its training ended;
            # a node that never answers is given up at the timeout.
            arrivals = [
                h.finished_at + jobs[n].latency_secs
                for n, h in zip(runnable, handles, strict=True)
                if isinstance(outcomes.get(n), ModelUpdate | MaskedUpdate)
                and h.finished_at is not None
            ]
            if len(runnable) < len(jobs):
                arrivals.append(started + timeout)
            wait = max(arrivals, default=0.0) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        except asyncio.CancelledError:
            for job in jobs.values():
                job.stop.set()
            for handle in handles:  # no node events after the run has ended
                handle.result.remove_done_callback(settle_callbacks[id(handle)])
            raise
        for node_id in jobs:
            if node_id not in outcomes:  # its latency alone reached the timeout
                self._settle(outcomes, node_id, jobs[node_id], round_number, None)
        for node_id in selected:
            outcome = outcomes[node_id]
            if isinstance(outcome, str) and node_id not in jobs:
                self._publish_failure(node_id, round_number, outcome, timed_out=False)
        return {n: outcomes[n] for n in selected}

    async def _run_remote(
        self,
        remote: Callable[..., Awaitable[Mapping[str, Outcome]]],
        workers: Sequence[FederatedWorker],
        context: TrainContext,
        sink: RoundSum | None,
    ) -> dict[str, Outcome]:
        """All nodes on a cluster where their data lives (see :mod:`heliosfl.backends.dask`)."""
        remote_outcomes = await remote(workers, context, timeout_secs=self.timeout_secs, sink=sink)
        outcomes: dict[str, Outcome] = dict(remote_outcomes)
        await self._publish(outcomes)
        return outcomes

    async def _publish(self, outcomes: Mapping[str, Outcome]) -> None:
        """One event per node of a round trained in one go, yielding to the loop as it goes.

        Publishing 10,000 events takes the loop about 25 ms; every :data:`PUBLISH_SLICE`
        events it lets other work (widgets, the kernel's messages) run.
        """
        for i, (node_id, outcome) in enumerate(outcomes.items()):
            if i and i % PUBLISH_SLICE == 0:
                await asyncio.sleep(0)
            if isinstance(outcome, str):
                self._publish_failure(
                    node_id, self.round_number, outcome, timed_out=outcome.startswith("timeout")
                )
                continue
            self._events.publish(
                NodeFinished(
                    model_id=self.model_id,
                    round_number=self.round_number,
                    node_id=node_id,
                    loss=None if self.private else outcome.loss,
                    num_samples=outcome.num_samples,
                    duration_secs=outcome.duration_secs,
                )
            )

    async def _run_together(
        self, workers: Sequence[FederatedWorker], context: TrainContext, sink: RoundSum | None
    ) -> dict[str, Outcome]:
        """All nodes in one batched call (see :mod:`heliosfl.vectorised`), then their events."""
        stop = StopFlag()
        if sink is not None:
            sink.streamed = True
        call = functools.partial(
            train_together, workers, context, stop, None if sink is None else sink.add
        )
        handle = self._backend.submit_many([call], stops=[stop])[0]
        outcomes: dict[str, Outcome] = {}
        try:
            updates = await handle.result
        except asyncio.CancelledError:
            stop.set()
            raise
        except Exception as exc:  # the batch failed: every node of it did
            if sink is not None:
                sink.discard()
            reason = failure_reason(exc, stop)[0] or "timeout"
            for worker in workers:
                outcomes[worker.node_id] = reason
                self._publish_failure(worker.node_id, self.round_number, reason, timed_out=False)
            return outcomes
        for worker, update in zip(workers, updates, strict=True):
            if isinstance(update, Exception):  # this node alone failed
                outcomes[worker.node_id] = failure_reason(update, stop)[0]
            else:
                outcomes[worker.node_id] = update
        await self._publish(outcomes)
        return outcomes

    def _settle(
        self,
        outcomes: dict[str, Outcome],
        node_id: str,
        job: NodeJob,
        round_number: int,
        future: asyncio.Future[ModelUpdate | MaskedUpdate] | None,
    ) -> None:
        """Record one node's outcome and publish its event (on the loop)."""
        timeout = self.timeout_secs
        if future is None or future.cancelled():
            reason, timed_out = "", True
        elif (error := future.exception()) is not None:
            reason, timed_out = failure_reason(error, job.stop)
        else:
            update = future.result()
            outcomes[node_id] = update
            self._events.publish(
                NodeFinished(
                    model_id=self.model_id,
                    round_number=round_number,
                    node_id=node_id,
                    loss=None if self.private else update.loss,
                    num_samples=update.num_samples,
                    duration_secs=update.duration_secs,
                )
            )
            return
        if timed_out:
            reason = f"timeout: no update within {timeout:g} s"
        outcomes[node_id] = reason
        self._publish_failure(node_id, round_number, reason, timed_out=timed_out)

    def _publish_failure(
        self, node_id: str, round_number: int, reason: str, *, timed_out: bool
    ) -> None:
        self._events.publish(
            NodeFailed(
                model_id=self.model_id,
                round_number=round_number,
                node_id=node_id,
                reason=reason,
                timed_out=timed_out,
            )
        )


async def evaluate_on_nodes(
    backend: Backend,
    workers: Sequence[FederatedWorker],
    model: Model,
    params: npt.NDArray[np.float64],
    *,
    timeout_secs: float,
) -> tuple[float | None, float | None]:
    """Loss and accuracy of ``params`` on the nodes' validation splits, pooled.

    Federated evaluation of a global model: each node evaluates it on its own validation
    split (the rows never leave the node; three numbers do) and the figures are weighted
    by split size. Nodes without a split, or that fail or run out of time, are left out.

    Returns
    -------
    tuple of (float or None, float or None)
        Pooled loss and accuracy (``None`` when no node could evaluate).
    """
    calls = [w.evaluation_call(model, params) for w in workers]
    stops = [StopFlag() for _ in calls]
    handles = backend.submit_many(calls, stops=stops, budgets_secs=[timeout_secs] * len(calls))
    try:
        results = await asyncio.gather(*(h.result for h in handles), return_exceptions=True)
    except asyncio.CancelledError:
        for stop in stops:
            stop.set()
        raise
    figures = [r for r in results if isinstance(r, tuple)]
    loss = weighted_figure([(value, rows) for value, _, rows in figures])
    accuracy = weighted_figure([(value, rows) for _, value, rows in figures])
    return loss, accuracy
