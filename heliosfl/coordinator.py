"""Coordinator: the node registry, selection, one round, convergence, state and history.

A round, as data flows (see DESIGN.md): select the available nodes; train them
concurrently on the backend, each under ``node_timeout_secs``; check every update; if at
least ``min_nodes_per_round`` are good, aggregate them in node-id order, evaluate the new
model, commit round record and checkpoint to the workspace in one transaction, and
publish events. A round without quorum leaves the model unchanged and raises
:class:`~heliosfl.errors.InsufficientNodes`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from heliosfl.accumulate import RoundSum, UpdateSummary
from heliosfl.backends.base import Backend
from heliosfl.config import Config
from heliosfl.convergence import check_convergence, round_loss
from heliosfl.data import NodeData
from heliosfl.dispatch import RoundDispatch, evaluate_on_nodes
from heliosfl.errors import (
    ConfigError,
    FederatedLearningError,
    InsufficientNodes,
    NodeNotFound,
    SecureAggregationError,
)
from heliosfl.events import (
    EventBus,
    ModelRewound,
    NodeFailed,
    NodeRecovered,
    RoundCompleted,
    RoundFailed,
    RoundStarted,
)
from heliosfl.models import Model
from heliosfl.records import (
    CoordinatorState,
    ModelUpdate,
    NodeInfo,
    RoundRecord,
    RoundStatus,
    StopReason,
)
from heliosfl.registry import NodeRegistry, RoundNotes
from heliosfl.rounds import check_updates, summarize_round
from heliosfl.seeding import Stream, rng_for
from heliosfl.selection import select_nodes
from heliosfl.store import ExtraWrite, Rewind, Workspace
from heliosfl.strategies import FedAvg, FedOpt, FedProx
from heliosfl.worker import FederatedWorker, TrainContext

if TYPE_CHECKING:
    from heliosfl.dp_rounds import PrivateRounds
    from heliosfl.secure_rounds import SecureRounds

__all__ = ["Coordinator"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
CommitWrite = Callable[
    [int, tuple[str, ...], FloatArray, Mapping[str, FloatArray]], ExtraWrite | None
]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Coordinator:
    """Runs the rounds of one model over its registered nodes.

    Create it with :meth:`FederatedLearningEngine.create_coordinator`. Use either the
    automatic loop (``engine.start_training``) or the manual one
    (:meth:`select_nodes_for_round`, ``worker.train_local_model()``,
    :meth:`execute_round`, :meth:`has_converged`), not both at once.
    """

    def __init__(
        self,
        *,
        model_id: str,
        model: Model,
        params: FloatArray,
        config: Config,
        workspace: Workspace,
        backend: Backend,
        events: EventBus,
        workers: Mapping[str, FederatedWorker],
        validation_data: NodeData | None = None,
        current_round: int = 0,
        history: Sequence[RoundRecord] = (),
        strategy_state: Mapping[str, FloatArray] | None = None,
        privacy_ledger: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.model_id = model_id
        self.model = model
        self.config = config
        self.validation_data = validation_data
        self._workspace = workspace
        self._backend = backend
        self._events = events
        self._workers = workers
        self._strategy = config.strategy
        self._params = self._freeze(params)
        self._strategy_state = dict(strategy_state or {})
        self._round = current_round
        self._history: list[RoundRecord] = list(history)
        self._nodes = NodeRegistry(self._history)
        self._selection: tuple[int, tuple[str, ...], float, str] | None = None
        self._lock = asyncio.Lock()
        self.is_training = False
        self.stop_reason: StopReason | None = check_convergence(self._history, config.round_config)
        self._private: PrivateRounds | None = None
        if config.enable_privacy:
            # imported here: dp-accounting takes about a second to import
            from heliosfl.dp_rounds import PrivateRounds

            self._private = PrivateRounds(config, model_id, privacy_ledger)
        self._secure: SecureRounds | None = None
        if config.secure_aggregation.enabled:
            from heliosfl.secure_rounds import SecureRounds

            self._secure = SecureRounds(config, model_id)
        #: Further checks of every update before aggregation (run off the event loop);
        #: each returns a reason to reject it, or None. HIPAA's leakage test is one.
        self.update_guards: list[Callable[[ModelUpdate], str | None]] = []
        #: Which registered nodes a round may select (all must agree); GDPR leaves out
        #: nodes with no row anyone consented to, as if they did not exist.
        self.candidate_filters: list[Callable[[str], bool]] = []
        #: Writes committed with each round, in its transaction:
        #: ``f(round_number, contributors, params, state) -> write or None`` (GDPR lineage
        #: and HIPAA's checkpoint integrity tag are such writes).
        self.commit_writes: list[CommitWrite] = []

    # ----------------------------------------------------------------- state
    @staticmethod
    def _freeze(params: FloatArray) -> FloatArray:
        frozen = np.array(params, dtype=np.float64, copy=True)
        frozen.flags.writeable = False
        return frozen

    @property
    def params(self) -> FloatArray:
        """The current global parameters (a read-only array)."""
        return self._params

    @property
    def current_round(self) -> int:
        """Rounds committed so far."""
        return self._round

    @property
    def converged(self) -> bool:
        """True once a stopping rule (target accuracy or loss change) was met."""
        return self.stop_reason in (StopReason.TARGET_ACCURACY, StopReason.LOSS_CONVERGED)

    @property
    def history(self) -> list[RoundRecord]:
        """Every round attempt, committed and failed, in order."""
        return list(self._history)

    @property
    def state(self) -> CoordinatorState:
        """A snapshot of the guide's cluster state (synchronous form of :meth:`get_state`)."""
        completed = [r for r in self._history if r.status is RoundStatus.COMPLETED]
        accuracies = [r.validation_accuracy for r in completed if r.validation_accuracy is not None]
        losses = [loss for r in completed if (loss := round_loss(r)) is not None]
        return CoordinatorState(
            model_id=self.model_id,
            current_round=self._round,
            total_rounds=self.config.round_config.max_rounds,
            is_training=self.is_training,
            converged=self.converged,
            best_accuracy=max(accuracies) if accuracies else None,
            best_loss=min(losses) if losses else None,
            stop_reason=self.stop_reason,
        )

    async def get_state(self) -> CoordinatorState:
        """Return the cluster state: current and total rounds, training, convergence, bests."""
        return self.state

    async def has_converged(self) -> bool:
        """Return True once target accuracy or the loss-change rule was met."""
        return self.converged

    def privacy_spent(self) -> tuple[float, float]:
        """``(epsilon, delta)`` spent by the committed rounds (``(0.0, 0.0)`` without DP)."""
        if self._private is None:
            return 0.0, 0.0
        return self._private.spent()

    async def get_round_history(self, *, include_failed: bool = False) -> list[RoundRecord]:
        """Return the committed rounds (and failed attempts with ``include_failed``)."""
        if include_failed:
            return list(self._history)
        return [r for r in self._history if r.status is RoundStatus.COMPLETED]

    # ----------------------------------------------------------------- nodes
    async def register_node(self, node_id: str, num_samples: int) -> None:
        """Register a node (or re-admit a failed one) with its number of samples.

        Registering an id that is already known updates its sample count and makes it
        available again, which is the guide's recovery path.

        Raises
        ------
        ConfigError
            If ``node_id`` is not a non-empty string or ``num_samples`` is not an
            integer >= 0.
        """
        self._nodes.register(node_id, num_samples)

    async def unregister_node(self, node_id: str) -> None:
        """Remove a node from the registry (its past rounds stay in the history).

        Raises
        ------
        NodeNotFound
            If no node of that id is registered.
        """
        self._nodes.unregister(node_id)

    @property
    def nodes(self) -> list[NodeInfo]:
        """Snapshots of the registered nodes, by node id."""
        return self._nodes.snapshots()

    async def list_nodes(self) -> list[NodeInfo]:
        """Return snapshots of the registered nodes (node_id, available, rounds, ...)."""
        return self.nodes

    def is_registered(self, node_id: str) -> bool:
        """True if ``node_id`` is registered with this coordinator."""
        return node_id in self._nodes

    # ----------------------------------------------------------------- rounds
    def _refuse_if_training(self, what: str) -> None:
        if self.is_training:
            raise ConfigError(
                what,
                self.model_id,
                "called while no training run of this model is in progress",
                "Await or cancel the run first.",
            )

    def _probe(self, round_number: int) -> None:
        """Re-admit unavailable nodes that answer a health check (with backoff)."""

        def answers(node_id: str) -> bool:
            worker = self._workers.get(node_id)
            seed = self.config.seed
            return worker is not None and worker.answers_probe(seed, self.model_id, round_number)

        for node_id in self._nodes.probe(answers):
            self._events.publish(
                NodeRecovered(model_id=self.model_id, round_number=round_number, node_id=node_id)
            )

    def uptime(self) -> float:
        """Available nodes as a percentage of registered ones (the guide's health check)."""
        return self._nodes.uptime_percent

    def _select(self) -> list[str]:
        required = self.config.round_config.min_nodes_per_round
        self._probe(self._round + 1)
        candidates = self._nodes.candidates()
        if self.candidate_filters:
            candidates = [
                c for c in candidates if all(f(c.node_id) for f in self.candidate_filters)
            ]
        if len(candidates) < required:
            raise InsufficientNodes(required, len(candidates))
        round_number = self._round + 1
        if self._private is not None:  # before anyone trains
            self._private.check(round_number, len(candidates))
        rng = rng_for(
            self.config.seed,
            Stream.SELECTION,
            self.model_id,
            round_number,
            attempt=self._attempt(round_number),
        )
        selected = select_nodes(self.config.round_config.selection_strategy, candidates, rng)
        if len(selected) < required:
            raise InsufficientNodes(required, len(selected), "selected nodes")
        self._selection = (round_number, tuple(selected), time.perf_counter(), _now_iso())
        return selected

    def _attempt(self, round_number: int) -> int:
        """Earlier attempts at this round that lacked quorum (kept in the history)."""
        attempts = 0
        for record in reversed(self._history):  # this round's attempts are at the end
            if record.round_number != round_number:
                break
            attempts += record.status is RoundStatus.FAILED
        return attempts

    async def select_nodes_for_round(self) -> list[str]:
        """Choose the nodes of the next round.

        Returns
        -------
        list of str
            Node ids, sorted.

        Raises
        ------
        InsufficientNodes
            If fewer than ``min_nodes_per_round`` nodes are available.
        """
        self._refuse_if_training("select_nodes_for_round")
        return self._select()

    def training_context(self, node_id: str) -> TrainContext:
        """What ``node_id`` needs to train the next round.

        Raises
        ------
        NodeNotFound
            If the node is not registered here.
        """
        if node_id not in self._nodes:
            raise NodeNotFound(node_id, f"coordinator of model {self.model_id!r}")
        return TrainContext(
            model_id=self.model_id,
            model=self.model,
            params=self._params,
            round_number=self._round + 1,
            seed=self.config.seed,
            learning_rate=self.config.round_config.learning_rate,
            prox_mu=self._strategy.prox_mu,
            attempt=self._attempt(self._round + 1),
        )

    async def run_round(self) -> RoundRecord:
        """Run one whole round: select, train concurrently under timeouts, aggregate.

        For stepping through rounds by hand; refused while a training run is in progress.

        Each selected node gets ``node_timeout_secs`` of its own time: its local training,
        from the moment a thread starts it (waiting for a free thread is an artefact of
        simulating many nodes on few cores, and does not count), plus the simulated
        latency of its answer. A node that runs out of time is recorded as timed out and
        the round goes on with the others; a hang costs the round at most the timeout.

        Returns
        -------
        RoundRecord
            The committed round.

        Raises
        ------
        ConfigError
            If a training run of this model is in progress.
        InsufficientNodes
            If too few nodes are available, or too few updates succeed (the model is then
            unchanged and the attempt is recorded as failed).
        """
        self._refuse_if_training("run_round")
        return await self.next_round()

    async def next_round(self) -> RoundRecord:
        """Run one whole round (as :meth:`run_round`); used by the training loop."""
        async with self._lock:
            selected = self._select()
            context = self.training_context(selected[0])
            self._events.publish(
                RoundStarted(
                    model_id=self.model_id,
                    round_number=context.round_number,
                    selected_nodes=tuple(selected),
                )
            )
            dispatch = RoundDispatch(
                model_id=self.model_id,
                round_number=context.round_number,
                timeout_secs=self.config.round_config.node_timeout_secs,
                backend=self._backend,
                events=self._events,
                private=self._private is not None,
            )
            if self._secure is not None:
                return await self._secure_round(selected, context, dispatch)
            sink = self._round_sum(context.round_number, selected)
            outcomes = await dispatch.run(selected, self._workers, context, sink=sink)
            updates = [o for o in outcomes.values() if isinstance(o, ModelUpdate)]
            failures = {n: o for n, o in outcomes.items() if isinstance(o, str)}
            summed = sink if sink is not None and sink.streamed else None
            return await self._execute(updates, failures, summed)

    def _round_sum(self, round_number: int, selected: Sequence[str]) -> RoundSum | None:
        """A streaming sum for this round, if nothing in it needs every update at once.

        Not when the absurd-norm rule compares norms with the round's median, the
        strategy is a robust rule (or any strategy but FedAvg, FedProx and FedOpt, whose
        aggregate is the weighted mean), or adaptive clipping needs every norm; see
        :mod:`heliosfl.accumulate`.
        """
        private = self._private
        if type(self._strategy) not in (FedAvg, FedProx, FedOpt):
            return None
        if private is None and self.config.round_config.norm_outlier_factor is not None:
            return None
        clip = None
        if private is not None:
            if private.plan is None or private.plan.count_noise_multiplier is not None:
                return None  # adaptive clipping: the noisy count needs every norm
            from heliosfl.dp_rounds import CLIP_STATE_KEY  # loaded already: DP is on

            state_clip = self._strategy_state.get(CLIP_STATE_KEY)
            norm = private.privacy.clip_norm if state_clip is None else float(state_clip[0])
            clip = (private.privacy.mechanism.value, float(norm))
        return RoundSum(**self._update_rules(round_number, selected), clip=clip)

    def _update_rules(self, round_number: int, selected: Sequence[str] | None) -> dict[str, Any]:
        """What each update of a round is checked against, held or streamed."""
        return {
            "model_id": self.model_id,
            "round_number": round_number,
            "shape": self._params.shape,
            "registered": set(self._nodes),
            "selected": selected,
            "guards": tuple(self.update_guards),
            "max_norm": self.config.round_config.max_update_norm,
        }

    async def execute_round(self, updates: Sequence[ModelUpdate]) -> RoundRecord:
        """Aggregate the updates of the current round and commit the new model.

        Updates are checked first; one for another model or round, from an unregistered
        or unselected node, a duplicate, or with a wrong shape, non-finite values or
        malformed figures is rejected and recorded with its reason.

        Parameters
        ----------
        updates : sequence of ModelUpdate
            The updates returned by ``worker.train_local_model()``.

        Returns
        -------
        RoundRecord
            The committed round.

        Raises
        ------
        ConfigError
            If ``updates`` is not a list or tuple, or a training run is in progress.
        InsufficientNodes
            If fewer than ``min_nodes_per_round`` updates are accepted; the model is
            unchanged and the attempt is recorded as failed.
        """
        self._refuse_if_training("execute_round")
        if self._secure is not None:
            raise ConfigError(
                "execute_round",
                self.model_id,
                "not used with secure aggregation (individual updates never reach the coordinator)",
                "Run whole secure rounds with run_round() or engine.train().",
            )
        if not isinstance(updates, list | tuple):
            raise ConfigError("updates", updates, "a list of the ModelUpdate objects of this round")
        async with self._lock:
            return await self._execute(list(updates), {})

    async def _execute(
        self,
        updates: list[ModelUpdate],
        failures: dict[str, str],
        summed: RoundSum | None = None,
    ) -> RoundRecord:
        """Check, summarise, aggregate and commit a round's updates.

        With `summed`, the updates were checked and summed as they were produced (their
        rejections are among `failures` already) and only their summaries are left.
        """
        round_number = self._round + 1
        selection = (
            self._selection if self._selection and self._selection[0] == round_number else None
        )
        started_clock, started_at = (
            (selection[2], selection[3]) if selection else (time.perf_counter(), _now_iso())
        )
        selected = selection[1] if selection else None
        private = self._private
        if private is not None and (selected is None or not private.is_checked(round_number)):
            # The charged event assumes the round's participants were selected by the
            # rule (sampling, top-k); updates nobody selected would void that.
            raise ConfigError(
                "execute_round",
                self.model_id,
                "preceded by select_nodes_for_round() when differential privacy is on",
                "Select the round's nodes first; only their updates are accepted.",
            )
        failures = dict(failures)
        if summed is not None:
            summaries = sorted(summed.accepted, key=lambda u: u.node_id)
            return await self._conclude(
                round_number,
                summaries,
                failures,
                selected,
                (started_clock, started_at),
                functools.partial(self._aggregate, round_number, summed=summed),
            )
        accepted, rejected = await asyncio.to_thread(
            check_updates,
            updates,
            **self._update_rules(round_number, selected),
            outlier_factor=None if private else self.config.round_config.norm_outlier_factor,
        )
        contributors = {u.node_id for u in accepted}
        for node_id, reason in rejected:
            if node_id not in contributors:  # a duplicate does not undo the accepted update
                failures[node_id] = reason
            self._events.publish(
                NodeFailed(
                    model_id=self.model_id,
                    round_number=round_number,
                    node_id=node_id,
                    reason=reason,
                )
            )
        return await self._conclude(
            round_number,
            accepted,
            failures,
            selected,
            (started_clock, started_at),
            functools.partial(self._aggregate, round_number, accepted),
        )

    async def _conclude(
        self,
        round_number: int,
        accepted: Sequence[ModelUpdate | UpdateSummary],
        failures: dict[str, str],
        selected: Sequence[str] | None,
        started: tuple[float, str],
        aggregate: Callable[[], tuple[FloatArray, dict[str, FloatArray], Any, Any]],
    ) -> RoundRecord:
        """Record the round's outcome, then aggregate (off the loop) and commit it."""
        started_clock, started_at = started
        contributors = {u.node_id for u in accepted}
        private = self._private
        for node_id in selected or ():
            if node_id not in contributors and node_id not in failures:
                failures[node_id] = "no update received"
        required = self.config.round_config.min_nodes_per_round
        # Off the loop: at 10,000 nodes the record's per-node figures take tens of ms.
        record = await asyncio.to_thread(
            summarize_round, round_number, accepted, failures, selected, started_at
        )
        if private is not None:  # no per-node figures leave the accounting
            record = replace(record, node_figures={}, aggregated_loss=None)
        if len(accepted) < required:
            error = InsufficientNodes(required, len(accepted), "successful updates")
            await self._fail(record, started_clock, str(error))
            raise error
        new_params, new_state, evaluation, entry = await asyncio.to_thread(aggregate)
        return await self._commit(record, started_clock, new_params, new_state, evaluation, entry)

    async def _commit(
        self,
        record: RoundRecord,
        started_clock: float,
        new_params: FloatArray,
        new_state: dict[str, FloatArray],
        evaluation: tuple[float | None, float | None] | None,
        entry: dict[str, Any] | None,
    ) -> RoundRecord:
        """Evaluate (federated, if needed), commit record and checkpoint, publish."""
        round_number = record.round_number
        if evaluation is None and self._private is None:
            evaluation = await evaluate_on_nodes(
                self._backend,
                [w for n in record.participating_nodes if (w := self._workers.get(n)) is not None],
                self.model,
                new_params,
                timeout_secs=self.config.round_config.node_timeout_secs,
            )
        record = replace(
            record,
            validation_loss=None if evaluation is None else evaluation[0],
            validation_accuracy=None if evaluation is None else evaluation[1],
            duration_secs=time.perf_counter() - started_clock,
        )
        extra = [
            write
            for hook in self.commit_writes
            if (write := hook(round_number, record.participating_nodes, new_params, new_state))
            is not None
        ]
        notes: list[RoundNotes] = []

        def persist() -> None:  # off the loop: at 10,000 nodes each step takes tens of ms
            self._workspace.commit_round(
                self.model_id,
                round_number,
                record.to_dict(),
                new_params,
                new_state,
                entry,
                extra_writes=extra,
            )
            notes.append(
                self._nodes.plan_round(record.node_figures, record.failed_nodes, committed=True)
            )

        await self._persist(
            persist,
            functools.partial(self._apply_committed, record, new_params, new_state, entry, notes),
        )
        self._events.publish(RoundCompleted(model_id=self.model_id, record=record))
        return record

    @staticmethod
    async def _persist(write: Callable[[], None], apply: Callable[[], None]) -> None:
        """Write to the workspace off the loop, then apply the same change in memory.

        The pair is one unit: once the write has started, a cancellation waits for it and
        applies the change before re-raising, so memory never disagrees with the file.
        """
        pending = asyncio.ensure_future(asyncio.to_thread(write))
        cancelled = False
        while True:
            try:
                await asyncio.shield(pending)
                break
            except asyncio.CancelledError:
                if pending.done():
                    raise  # the write itself was cancelled before it ran
                cancelled = True
        apply()
        if cancelled:
            raise asyncio.CancelledError

    def _apply_failed(self, record: RoundRecord) -> None:
        self._history.append(record)
        self._nodes.note_round({}, record.failed_nodes, committed=False)

    def _apply_committed(
        self,
        record: RoundRecord,
        params: FloatArray,
        state: dict[str, FloatArray],
        entry: dict[str, Any] | None,
        notes: list[RoundNotes],
    ) -> None:
        if self._private is not None and entry is not None:
            self._private.charge(entry)
        self._params = self._freeze(params)
        self._strategy_state = state
        self._round = record.round_number
        self._history.append(record)
        self._nodes.apply(notes[0])  # planned off the loop by the write
        self.stop_reason = check_convergence(self._history, self.config.round_config)

    async def rewind(
        self,
        to_round: int,
        reason: Mapping[str, Any],
        *,
        extra_writes: Sequence[ExtraWrite] = (),
    ) -> Rewind:
        """Roll the model back to the checkpoint of ``to_round`` (see ``Workspace.rewind``).

        The coordinator's parameters, strategy state, history, node figures and privacy
        ledger become what they were after that round (rewound charges keep counting).

        Raises
        ------
        ConfigError
            If a training run is in progress, or ``to_round`` is not a committed round.
        """
        self._refuse_if_training("rewind")
        loaded: list[Any] = []

        def write() -> None:
            done = self._workspace.rewind(
                self.model_id, to_round, reason, extra_writes=extra_writes
            )
            checkpoint = self._workspace.latest_checkpoint(self.model_id)
            rows = self._workspace.rounds(self.model_id, include_failed=True)
            loaded.extend((done, checkpoint, rows, self._workspace.privacy_ledger(self.model_id)))

        def apply() -> None:
            _, checkpoint, rows, ledger = loaded
            self._params = self._freeze(checkpoint.params)
            self._strategy_state = dict(checkpoint.state)
            self._round = checkpoint.round_number
            self._history = [RoundRecord.from_dict(row) for row in rows]
            self._nodes.rewind(self._history)
            self._selection = None
            self.stop_reason = check_convergence(self._history, self.config.round_config)
            if self._private is not None:
                from heliosfl.dp_rounds import PrivateRounds

                self._private = PrivateRounds(self.config, self.model_id, ledger)

        async with self._lock:
            await self._persist(write, apply)
        result: Rewind = loaded[0]
        self._events.publish(
            ModelRewound(
                model_id=self.model_id,
                to_round=result.to_round,
                from_round=result.from_round,
                reason=str(reason.get("erasure", "rewind")),
            )
        )
        return result

    def _aggregate(
        self,
        round_number: int,
        accepted: Sequence[ModelUpdate] = (),
        summed: RoundSum | None = None,
    ) -> tuple[
        FloatArray,
        dict[str, FloatArray],
        tuple[float | None, float | None] | None,
        dict[str, Any] | None,
    ]:
        """New parameters, state, figures and DP ledger entry from the round's updates.

        From the `accepted` updates a round held, or from the sum a streamed round took
        (`summed`): the strategy sees the sum's mean as a single update, and under DP the
        clipped sum gets the same noise and denominator as a held round's.
        """
        private, entry = self._private, None
        if private is not None and summed is not None:
            new_params, new_state, entry = private.aggregate_sum(
                self._params,
                summed.total,
                len(summed.accepted),
                self._strategy_state,
                self._strategy,
                round_number=round_number,
                attempt=self._attempt(round_number),
                noise_added=False,
                secure=False,
            )
        elif private is not None:
            new_params, new_state, entry = private.aggregate(
                self._params,
                [u.delta for u in accepted],
                self._strategy_state,
                self._strategy,
                round_number=round_number,
                attempt=self._attempt(round_number),
            )
        else:
            deltas, weights = (
                ([summed.mean()], [1.0])
                if summed is not None
                else ([u.delta for u in accepted], [float(u.num_samples) for u in accepted])
            )
            new_params, new_state = self._strategy.aggregate(
                self._params, deltas, weights, self._strategy_state
            )
        return new_params, new_state, self._evaluate(new_params), entry

    def _evaluate(self, new_params: FloatArray) -> tuple[float, float] | None:
        """Refuse non-finite parameters; figures on the coordinator's validation data."""
        if not np.all(np.isfinite(new_params)):
            raise FederatedLearningError(
                "Aggregation produced non-finite parameters; the model is unchanged. "
                "Lower learning_rate (local or the strategy's server_learning_rate)."
            )
        data = self.validation_data
        if data is None or len(data) == 0:
            return None
        figures = self.model.evaluate(new_params, data.X, data.y)
        return float(figures["loss"]), float(figures["accuracy"])

    async def _secure_round(
        self, selected: list[str], context: TrainContext, dispatch: RoundDispatch
    ) -> RoundRecord:
        """One round under secure aggregation (see :mod:`heliosfl.secure_rounds`)."""
        assert self._secure is not None  # noqa: S101
        round_number = context.round_number
        assert self._selection is not None  # noqa: S101 - set by _select
        started_clock, started_at = self._selection[2], self._selection[3]
        counts = {n.node_id: n.num_samples for n in self._nodes.snapshots()}
        required = self.config.round_config.min_nodes_per_round
        try:
            outcome = await self._secure.run(
                selected=selected,
                workers=self._workers,
                context=context,
                dispatch=dispatch,
                sample_counts=counts,
                private=self._private,
            )
        except SecureAggregationError as exc:
            failures = {n: f"secure aggregation failed: {exc.message}" for n in selected}
            await self._fail(
                summarize_round(round_number, [], failures, selected, started_at),
                started_clock,
                str(exc),
            )
            raise
        record = summarize_round(
            round_number, outcome.updates, outcome.failures, selected, started_at
        )
        if self._private is not None:
            record = replace(record, node_figures={}, aggregated_loss=None)
        if len(outcome.survivors) < required:
            error = InsufficientNodes(required, len(outcome.survivors), "successful updates")
            await self._fail(record, started_clock, str(error))
            raise error
        private = self._private
        strategy, state, params = self._strategy, self._strategy_state, self._params
        distributed = self.config.secure_aggregation.noise.value == "distributed"

        def aggregate() -> tuple[
            FloatArray, dict[str, FloatArray], tuple[float, float] | None, dict[str, Any] | None
        ]:
            entry = None
            if private is None:
                new_params, new_state = strategy.aggregate(params, [outcome.values], [1.0], state)
            else:
                new_params, new_state, entry = private.aggregate_sum(
                    params,
                    outcome.values,
                    len(outcome.survivors),
                    state,
                    strategy,
                    round_number=round_number,
                    attempt=context.attempt,
                    noise_added=distributed,
                )
            return new_params, new_state, self._evaluate(new_params), entry

        new_params, new_state, evaluation, entry = await asyncio.to_thread(aggregate)
        return await self._commit(record, started_clock, new_params, new_state, evaluation, entry)

    async def _fail(self, record: RoundRecord, started_clock: float, reason: str) -> None:
        """Record a round attempt that did not change the model, and publish it."""
        record = replace(
            record,
            status=RoundStatus.FAILED,
            participating_nodes=(),
            duration_secs=time.perf_counter() - started_clock,
        )
        await self._persist(
            lambda: self._workspace.record_failed_round(
                self.model_id, record.round_number, record.to_dict()
            ),
            functools.partial(self._apply_failed, record),
        )
        self._events.publish(RoundFailed(model_id=self.model_id, record=record, reason=reason))

    def __repr__(self) -> str:
        return (
            f"Coordinator(model_id={self.model_id!r}, round={self._round}/"
            f"{self.config.round_config.max_rounds}, nodes={len(self._nodes)})"
        )
