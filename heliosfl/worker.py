"""FederatedWorker: a simulated node holding its own data and training locally."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from heliosfl.backends.base import Backend
from heliosfl.config import WorkerConfig
from heliosfl.data import NodeData
from heliosfl.errors import NodeFailure
from heliosfl.faults import NodeFault
from heliosfl.models import Model, TrainingStopped, local_sgd
from heliosfl.records import ModelUpdate
from heliosfl.seeding import Stream, rng_for

if TYPE_CHECKING:
    from heliosfl.coordinator import Coordinator

__all__ = ["FederatedWorker", "TrainContext"]


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
    """

    model_id: str
    model: Model
    params: npt.NDArray[np.float64]
    round_number: int
    seed: int
    learning_rate: float
    prox_mu: float


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

    @property
    def node_id(self) -> str:
        """The node's id."""
        return self.config.node_id

    @property
    def num_samples(self) -> int:
        """Training rows held by the node (0 without data)."""
        return 0 if self.data is None else len(self.data)

    async def train_local_model(self, model_id: str | None = None) -> ModelUpdate:
        """Train the current global model on this node's data for one round.

        Parameters
        ----------
        model_id : str or None
            The model to train; may be omitted when the node is registered with one
            coordinator only.

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
        """
        coordinator = self._resolve(self.node_id, model_id)
        context = coordinator.training_context(self.node_id)
        return await self.train(context)

    async def train(self, context: TrainContext) -> ModelUpdate:
        """Train for ``context`` on the backend; cancelling the await stops the training.

        Raises
        ------
        NodeFailure
            If local training raised or was stopped.
        """
        stop = threading.Event()
        try:
            return await self._backend.run(self._train_sync, context, stop)
        except asyncio.CancelledError:
            stop.set()
            raise
        except NodeFailure:
            raise
        except TrainingStopped:
            raise NodeFailure(self.node_id, "stopped before finishing") from None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise NodeFailure(self.node_id, reason) from exc

    def _train_sync(self, context: TrainContext, stop: threading.Event) -> ModelUpdate:
        started = time.perf_counter()
        if self.fault is not None:
            fault_rng = rng_for(
                context.seed, Stream.FAULTS, context.model_id, context.round_number, self.node_id
            )
            self.fault.apply(fault_rng, stop)
        if stop.is_set():
            raise TrainingStopped
        data = self.data
        if data is None or len(data) == 0:
            raise NodeFailure(self.node_id, "the node holds no training data")
        rng = rng_for(
            context.seed, Stream.TRAINING, context.model_id, context.round_number, self.node_id
        )
        lr = self.config.learning_rate
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
            stop=stop.is_set,
        )
        metrics: dict[str, float] = {}
        if data.X_val is not None and data.y_val is not None and len(data.y_val) > 0:
            evaluation = context.model.evaluate(result.params, data.X_val, data.y_val)
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
