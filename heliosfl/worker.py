"""FederatedWorker: a simulated node holding its own data and training locally."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from heliosfl.backends.base import Backend, CallAbandoned, StopFlag
from heliosfl.config import WorkerConfig
from heliosfl.data import NodeData
from heliosfl.errors import ConfigError, NodeFailure, NodeTimeout
from heliosfl.faults import FaultPlan, NodeFault, SimulatedCrash
from heliosfl.models import Model, TrainingStopped, local_sgd
from heliosfl.models.base import _NumpyModel
from heliosfl.records import MaskedUpdate, ModelUpdate
from heliosfl.secagg.node import SecureNode, SecureSpec
from heliosfl.seeding import Stream, rng_for
from heliosfl.validation import check_float

if TYPE_CHECKING:
    from heliosfl.coordinator import Coordinator

__all__ = ["DataPolicy", "FederatedWorker", "NodeJob", "TrainContext", "failure_reason"]


class DataPolicy(Protocol):
    """Which of a node's rows it may use now (GDPR consent is one such policy)."""

    def training_view(self, context: TrainContext, node_id: str, data: NodeData) -> NodeData:
        """The rows the node may train on this round (called as the round starts)."""
        ...

    def evaluation_view(self, node_id: str, data: NodeData) -> NodeData:
        """The rows the node may evaluate on now."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainContext:
    """What a node needs to train one round: the global model as the coordinator sent it.

    Parameters
    ----------
    model_id : str
        The model.
    model : Model
        Its architecture.
    params : ndarray
        The global parameters (read-only).
    round_number : int
        The round being trained (``current_round + 1``).
    seed : int
        The run's seed; the node's streams are derived from it.
    learning_rate : float
        Default local learning rate (``RoundConfig.learning_rate``).
    prox_mu : float
        FedProx proximal coefficient (0 for other strategies).
    attempt : int
        Which attempt at the round (simulated faults are drawn afresh for a retry).
    secure : SecureSpec or None
        Secure aggregation: the node returns a :class:`MaskedUpdate` instead.
    reproducible_noise : bool
        Distributed DP noise is drawn from the seed (for teaching and tests only).
    """

    model_id: str
    model: Model
    params: npt.NDArray[np.float64]
    round_number: int
    seed: int
    learning_rate: float
    prox_mu: float
    attempt: int = 0
    secure: SecureSpec | None = None
    reproducible_noise: bool = False


@dataclass(frozen=True, slots=True)
class NodeJob:
    """One node's work for one round.

    Attributes
    ----------
    call : callable
        Runs local training synchronously and returns the :class:`ModelUpdate`.
    stop : StopFlag
        Set when the node's time is up; training checks it between mini-batches.
    latency_secs : float
        Simulated latency of the answer (0 for a healthy node; ``inf`` for a hang).
    """

    call: Callable[[], ModelUpdate | MaskedUpdate]
    stop: StopFlag
    latency_secs: float = 0.0


class FederatedWorker:
    """A node: its private data and its local training.

    Create workers with :meth:`FederatedLearningEngine.create_worker`; the data never
    leaves the worker, only parameter deltas do.

    Parameters
    ----------
    config : WorkerConfig
        Node id and local training settings.
    data : NodeData or None
        The node's training rows (and validation split).
    backend : Backend
        Where training runs.
    resolve : callable
        ``resolve(node_id, model_id)`` returns the coordinator that this node trains for.
    fault : NodeFault or None
        Simulated misbehaviour, for experiments and tests.
    """

    def __init__(
        self,
        config: WorkerConfig,
        data: NodeData | None,
        *,
        backend: Backend,
        resolve: Callable[[str, str | None], Coordinator],
        fault: NodeFault | None = None,
    ) -> None:
        self.config = config
        self.data = data
        self.fault = fault
        self._backend = backend
        self._resolve = resolve
        self._validated: dict[tuple[int, int], tuple[Model, NodeData]] = {}
        #: Which rows the node may use (set by ``engine.attach_gdpr``); None: all of them.
        self.policy: DataPolicy | None = None
        self._online = True
        self._secure = SecureNode(config.node_id)

    @property
    def secure(self) -> SecureNode:
        """The node's secure-aggregation side (its keys and shares stay in it).

        Raises
        ------
        NodeFailure
            If the node is offline (its messages cannot reach the coordinator).
        """
        if not self._online:
            raise NodeFailure(self.node_id, "node offline: unreachable")
        return self._secure

    @property
    def online(self) -> bool:
        """Whether the node can be reached (a simulated network state)."""
        return self._online

    def set_online(self, online: bool) -> None:
        """Simulate the node going offline (``False``) or coming back (``True``).

        An offline node fails every round it is selected for ("node offline") and cannot
        act on requests such as an erasure until it is back.
        """
        if not isinstance(online, bool):
            raise ConfigError("online", online, "True or False")
        self._online = online

    def erase_subject(self, is_erased: Callable[[str], bool]) -> int:
        """Remove the rows (training and validation) of the subjects `is_erased` picks.

        Parameters
        ----------
        is_erased : callable
            ``subject_id -> bool``.

        Returns
        -------
        int
            Rows removed.

        Raises
        ------
        NodeFailure
            If the node is offline, or holds data without subject ids.
        """
        if not self._online:
            raise NodeFailure(self.node_id, "node offline: unreachable")
        data = self.data
        if data is None or data.subject_ids is None:
            raise NodeFailure(self.node_id, "the node's data has no subject_ids")
        ids = [str(s) for s in np.unique(data.subject_ids)]
        if data.subject_ids_val is not None:
            ids = sorted({*ids, *(str(s) for s in np.unique(data.subject_ids_val))})
        doomed = [s for s in ids if is_erased(s)]
        if not doomed:
            return 0
        kept = data.without_subjects(doomed)
        removed = len(data) + data.num_val_samples - len(kept) - kept.num_val_samples
        self.data = kept
        self._validated.clear()
        return removed

    @property
    def node_id(self) -> str:
        """The node's id."""
        return self.config.node_id

    @property
    def num_samples(self) -> int:
        """Training rows held by the node (0 without data)."""
        return 0 if self.data is None else len(self.data)

    async def train_local_model(
        self, model_id: str | None = None, *, timeout_secs: float | None = None
    ) -> ModelUpdate:
        """Train the current global model on this node's data for one round.

        Parameters
        ----------
        model_id : str or None
            The model to train; may be omitted when the node is registered with one
            coordinator only.
        timeout_secs : float or None
            Give up after this many seconds (> 0) and raise :class:`NodeTimeout`. Without
            it there is no limit: a simulated hang waits until the caller's own timeout.

        Returns
        -------
        ModelUpdate
            The parameter delta, sample count, local loss and validation metrics.

        Raises
        ------
        NodeNotFound
            If the node is not registered with a coordinator of that model.
        NodeFailure
            If local training raised (the reason is in the message).
        NodeTimeout
            If ``timeout_secs`` passed first (a ``TimeoutError``).
        """
        if timeout_secs is not None:
            timeout_secs = check_float("timeout_secs", timeout_secs, low=0.0)
        coordinator = self._resolve(self.node_id, model_id)
        context = coordinator.training_context(self.node_id)
        if timeout_secs is None:
            return await self.train(context)
        try:
            async with asyncio.timeout(timeout_secs):
                return await self.train(context)
        except TimeoutError:
            raise NodeTimeout(self.node_id, timeout_secs) from None

    async def train(self, context: TrainContext) -> ModelUpdate:
        """Train for ``context`` on the backend; cancelling the await stops the training.

        A simulated latency (see :mod:`heliosfl.faults`) delays the answer; a hang never
        answers, so the caller's timeout ends it.

        Raises
        ------
        NodeFailure
            If local training raised or was stopped.
        """
        job = self.job(context)
        handle = self._backend.submit_many([job.call], stops=[job.stop])[0]
        try:
            update = await handle.result
            await self.deliver(job)
        except asyncio.CancelledError:
            job.stop.set()
            raise
        except Exception as exc:
            raise NodeFailure(self.node_id, failure_reason(exc, job.stop)[0]) from exc
        if not isinstance(update, ModelUpdate):  # a secure round runs through the coordinator
            raise NodeFailure(self.node_id, "a masked update outside a secure round")
        return update

    def job(self, context: TrainContext) -> NodeJob:
        """The node's work for one round: the training call, its stop flag, its latency.

        The coordinator hands the calls of a whole round to the backend at once.
        """
        plan = FaultPlan()
        if self.fault is not None:
            rng = rng_for(
                context.seed,
                Stream.FAULTS,
                context.model_id,
                context.round_number,
                self.node_id,
                attempt=context.attempt,
            )
            plan = self.fault.plan(rng)
        stop = StopFlag()
        reason = None
        if not self._online:
            reason = "node offline: unreachable"
        elif self.fault is not None and (cut := self.fault.unreachable(context.round_number)):
            reason = cut
        elif plan.dropout:
            reason = "dropped out: no answer"
        if reason is not None:
            call: Callable[[], ModelUpdate | MaskedUpdate] = functools.partial(
                _unreachable, self.node_id, reason
            )
            return NodeJob(call=call, stop=stop)
        data = self.data
        if data is not None and self.policy is not None:
            data = self.policy.training_view(context, self.node_id, data)
        call = functools.partial(self._train_sync, context, stop, plan, data)
        return NodeJob(call=call, stop=stop, latency_secs=plan.latency_secs)

    def answers_probe(self, seed: int, model_id: str, round_number: int) -> bool:
        """Whether the node answers a health check before `round_number` (simulated)."""
        if not self._online:
            return False
        if self.fault is None:
            return True
        rng = rng_for(seed, Stream.PROBES, model_id, round_number, self.node_id)
        return self.fault.answers_probe(rng, round_number)

    def _validated_for(self, model: Model, data: NodeData) -> bool:
        """Check this node's data against a built-in model once; True if done.

        The global parameters come from the coordinator, which keeps them finite and of
        the right length, so after this the hot path skips re-validation.
        """
        if not isinstance(model, _NumpyModel) or (
            type(model).loss_and_grad is not _NumpyModel.loss_and_grad
            or type(model).evaluate is not _NumpyModel.evaluate
        ):
            return False
        key = (id(model), id(data))
        if key not in self._validated:
            model.check_xy(data.X, data.y)
            if data.X_val is not None and data.y_val is not None and len(data.y_val) > 0:
                model.check_xy(data.X_val, data.y_val)
            self._validated[key] = (model, data)  # keep both alive so ids stay unique
        return True

    def evaluation_call(
        self, model: Model, params: npt.NDArray[np.float64]
    ) -> Callable[[], tuple[float, float, int] | None]:
        """A call that evaluates ``params`` on this node's validation split.

        It returns ``(loss, accuracy, rows)``, or ``None`` when the node keeps no
        validation split. Only these three numbers leave the node.
        """
        data = self.data
        if data is not None and self.policy is not None:
            data = self.policy.evaluation_view(self.node_id, data)
        online = self._online

        def evaluate() -> tuple[float, float, int] | None:
            if not online:
                raise NodeFailure(self.node_id, "node offline: unreachable")
            if data is None or data.X_val is None or data.y_val is None or len(data.y_val) == 0:
                return None
            figures = model.evaluate(params, data.X_val, data.y_val)
            return float(figures["loss"]), float(figures["accuracy"]), len(data.y_val)

        return evaluate

    @staticmethod
    async def deliver(job: NodeJob) -> None:
        """Wait out the job's simulated latency (forever for a hang)."""
        if job.latency_secs <= 0:
            return
        if math.isinf(job.latency_secs):
            await asyncio.Event().wait()
        await asyncio.sleep(job.latency_secs)

    def _train_sync(
        self,
        context: TrainContext,
        stop: StopFlag,
        plan: FaultPlan | None = None,
        data: NodeData | None = None,
    ) -> ModelUpdate | MaskedUpdate:
        plan = plan or FaultPlan()
        update = self._train_plain(context, stop, plan.crash, data)
        if plan.garbage is not None or plan.attack is not None:
            rng = rng_for(
                context.seed,
                Stream.FAULTS,
                context.model_id,
                context.round_number,
                self.node_id + "/corrupt",
                attempt=context.attempt,
            )
            update = dataclasses.replace(update, delta=plan.corrupt(update.delta, rng))
        spec = context.secure
        if spec is None:
            return update
        # Secure aggregation: the delta is quantised and masked here, on the node; only
        # the masked vector leaves it.
        key = (context.seed, context.model_id, context.round_number, self.node_id)
        rng = rng_for(key[0], Stream.SECAGG, key[1], key[2], key[3], attempt=context.attempt)
        noise_rng = None
        if spec.noise_std > 0:
            noise_rng = (
                rng_for(key[0], Stream.NOISE, key[1], key[2], key[3], attempt=context.attempt)
                if context.reproducible_noise
                else np.random.default_rng(secrets.randbits(128))
            )
        started = time.perf_counter()
        masked, weight = self._secure.protect(
            context.model_id, spec, update.delta, update.num_samples, rng, noise_rng
        )
        return MaskedUpdate(
            model_id=update.model_id,
            node_id=update.node_id,
            round_number=update.round_number,
            masked=masked,
            num_samples=update.num_samples,
            weight=weight,
            loss=update.loss,
            metrics=update.metrics,
            duration_secs=update.duration_secs,
            masking_secs=time.perf_counter() - started,
        )

    def _train_plain(
        self,
        context: TrainContext,
        stop: StopFlag,
        crash: bool = False,
        data: NodeData | None = None,
    ) -> ModelUpdate:
        started = time.perf_counter()
        if stop.is_set():  # stopped before a thread was free
            raise TrainingStopped
        if data is None or len(data) == 0:
            raise NodeFailure(self.node_id, "the node holds no training data it may use")
        rng = rng_for(
            context.seed, Stream.TRAINING, context.model_id, context.round_number, self.node_id
        )
        fast = self._validated_for(context.model, data)
        lr = self.config.learning_rate
        should_stop: Callable[[], bool] = stop.is_set
        if crash:
            should_stop = _crash_half_way(stop, len(data), self.config)
        result = local_sgd(
            context.model,
            context.params,
            data.X,
            data.y,
            epochs=self.config.local_epochs,
            batch_size=self.config.batch_size,
            learning_rate=context.learning_rate if lr is None else lr,
            rng=rng,
            prox_mu=context.prox_mu,
            anchor=context.params,
            stop=should_stop,
            validated=fast,
        )
        metrics: dict[str, float] = {}
        if data.X_val is not None and data.y_val is not None and len(data.y_val) > 0:
            model = context.model
            evaluation = (
                model._evaluate(result.params, data.X_val, data.y_val)
                if fast and isinstance(model, _NumpyModel)
                else model.evaluate(result.params, data.X_val, data.y_val)
            )
            metrics = {
                "val_loss": float(evaluation["loss"]),
                "val_accuracy": float(evaluation["accuracy"]),
                "val_samples": float(len(data.y_val)),
            }
        return ModelUpdate(
            model_id=context.model_id,
            node_id=self.node_id,
            round_number=context.round_number,
            delta=result.params - context.params,
            num_samples=result.num_samples,
            loss=float(result.loss),
            metrics=metrics,
            duration_secs=time.perf_counter() - started,
        )

    def __repr__(self) -> str:
        return f"FederatedWorker(node_id={self.node_id!r}, num_samples={self.num_samples})"


def _unreachable(node_id: str, reason: str) -> ModelUpdate | MaskedUpdate:
    raise NodeFailure(node_id, reason)


def _crash_half_way(stop: StopFlag, rows: int, config: WorkerConfig) -> Callable[[], bool]:
    """A stop check that raises SimulatedCrash before the middle mini-batch."""
    batches = config.local_epochs * math.ceil(rows / config.batch_size)
    remaining = [batches // 2]

    def check() -> bool:
        if remaining[0] <= 0:
            raise SimulatedCrash("simulated crash during local training")
        remaining[0] -= 1
        return stop.is_set()

    return check


def failure_reason(error: BaseException, stop: StopFlag) -> tuple[str, bool]:
    """Why a node's training call failed, and whether that was a timeout.

    Parameters
    ----------
    error : BaseException
        What the call raised (or :class:`CallAbandoned` from the backend).
    stop : StopFlag
        The call's stop flag (an expired deadline means the node ran out of time).

    Returns
    -------
    tuple of (str, bool)
        A reason for the round record and ``True`` for a timeout.
    """
    if isinstance(error, CallAbandoned) or (isinstance(error, TrainingStopped) and stop.expired):
        return "", True
    if isinstance(error, TrainingStopped):
        return "stopped before finishing", False
    if isinstance(error, NodeFailure):
        return error.reason, False
    return f"{type(error).__name__}: {error}", False
