"""FederatedLearningEngine: models, coordinators, workers and training runs.

The engine owns the workspace (in-memory unless one is given), the backend where local
training runs, and the event stream. It is an async context manager::

    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        ...
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from heliosfl.backends.base import Backend, make_backend
from heliosfl.compliance.gdpr import GdprComplianceManager
from heliosfl.compliance.hipaa import HipaaComplianceManager
from heliosfl.config import Config, WorkerConfig
from heliosfl.coordinator import Coordinator
from heliosfl.data import NodeData
from heliosfl.errors import (
    ClosedError,
    ConfigError,
    ConvergenceNotReached,
    ModelNotFound,
    NodeNotFound,
)
from heliosfl.events import EventBus
from heliosfl.faults import NodeFault
from heliosfl.models import Model, prepare_model
from heliosfl.records import ModelUpdate, RoundStatus, TrainingResult
from heliosfl.resume import check_validation_data, load_stored_run
from heliosfl.seeding import Stream, rng_for
from heliosfl.store import ExtraWrite, Workspace
from heliosfl.training import TrainingRun
from heliosfl.validation import check_id
from heliosfl.worker import FederatedWorker

if TYPE_CHECKING:
    from heliosfl.governance import GdprGovernance

__all__ = ["FederatedLearningEngine"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


def _check_model_id(model_id: object) -> str:
    return check_id("model_id", model_id)


class FederatedLearningEngine:
    """Trains models across simulated nodes that never pool their data.

    Parameters
    ----------
    config : Config or None
        The run configuration (default ``Config()``).
    workspace : Workspace or None
        Where history and checkpoints are kept. ``None``: a fresh in-memory workspace
        owned (and closed) by the engine, so nothing persists.
    backend : {"inline", "process", "dask"} or Backend
        Where local training runs: threads in the kernel (default), or a Dask
        LocalCluster of worker processes holding the nodes' data (``"process"`` and
        ``"dask"``); ``fl.DaskBackend("tcp://host:8786")`` uses an existing cluster.
    max_workers : int or None
        Threads of the inline backend; worker processes of a LocalCluster.

    Raises
    ------
    ConfigError
        If ``config`` is not a :class:`Config`, or ``workspace`` is not a Workspace.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        workspace: Workspace | None = None,
        backend: str | Backend = "inline",
        max_workers: int | None = None,
    ) -> None:
        config = Config() if config is None else config
        if not isinstance(config, Config):
            raise ConfigError("config", config, "a heliosfl.Config")
        self.config = config
        if workspace is not None and not isinstance(workspace, Workspace):
            raise ConfigError(
                "workspace",
                workspace,
                "a heliosfl.Workspace or None",
                "Open one with fl.Workspace(path) to persist the run.",
            )
        self._owns_workspace = workspace is None
        self.workspace = Workspace() if workspace is None else workspace
        self._owns_backend = isinstance(backend, str)
        self.backend = make_backend(backend, max_workers=max_workers)
        self.events = EventBus()
        self._models: dict[str, Model] = {}
        self._initial: dict[str, FloatArray] = {}
        self._coordinators: dict[str, Coordinator] = {}
        self._workers: dict[str, FederatedWorker] = {}
        self._runs: dict[str, TrainingRun] = {}
        self._hipaa: HipaaComplianceManager | None = None
        self._gdpr: GdprGovernance | None = None
        self._closed = False

    # ------------------------------------------------------------ lifecycle
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("FederatedLearningEngine")

    async def aclose(self) -> None:
        """Cancel running training, close the backend, and close an owned workspace."""
        if self._closed:
            return
        self._closed = True
        runs = [run for run in self._runs.values() if not run.done()]
        for run in runs:
            run.cancel()
        if runs:
            await asyncio.gather(*(run.task for run in runs), return_exceptions=True)
        if self._owns_backend:
            closing = getattr(self.backend, "aclose", None)
            if closing is not None:  # a cluster shuts down asynchronously
                await closing()
            else:
                self.backend.close()
        self.events.close()
        if self._owns_workspace:
            await asyncio.to_thread(self.workspace.close)  # may wait for a commit

    async def __aenter__(self) -> FederatedLearningEngine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------ models
    async def register_model(
        self,
        model_id: str,
        model_type: str | Model,
        initial_params: Sequence[float] | FloatArray | None = None,
        **model_kwargs: Any,
    ) -> Model:
        """Register a model and its initial parameters.

        Parameters
        ----------
        model_id : str
            A new id (1 to 200 characters).
        model_type : str or Model
            ``"logistic_regression"``, ``"softmax_regression"``, ``"neural_network"``
            (= ``"mlp"``, ``"deep_neural_network"``), or a :class:`Model` instance.
        initial_params : array-like or None
            A flat vector of ``model.num_params`` values; ``None`` draws them from the
            config's seed.
        **model_kwargs
            Architecture, e.g. ``input_dim=30, hidden_layers=(32,), num_classes=2``.

        Returns
        -------
        Model
            The model.

        Raises
        ------
        ConfigError
            For an unknown model type, a bad architecture, a parameter vector of the wrong
            length (both lengths in the message), or an id already registered here or in
            the workspace (use :meth:`resume` for the latter).

        Warns
        -----
        SymmetricInitWarning
            If a neural network's initial parameters are all equal (zeros, as in the
            guide): its hidden units would stay identical and it would train like a
            linear model.
        """
        self._check_open()
        model_id = _check_model_id(model_id)
        if model_id in self._models:
            raise ConfigError(
                "model_id", model_id, "an id not registered yet in this engine", "Choose a new id."
            )
        model, params = prepare_model(
            model_type,
            initial_params,
            rng_for(self.config.seed, Stream.INIT, model_id),
            label=repr(model_id),
            **model_kwargs,
        )
        spec = model.to_spec() if hasattr(model, "to_spec") else {"model_type": "custom"}
        exists = await asyncio.to_thread(self.workspace.has_model, model_id)
        if exists:
            raise ConfigError(
                "model_id",
                model_id,
                "an id not yet in the workspace",
                "Its history is kept there: call `await engine.resume(model_id)` to continue it, "
                "or choose a new id.",
            )
        await asyncio.to_thread(
            self.workspace.save_model, model_id, spec, self.config.to_dict(), params
        )
        self._models[model_id] = model
        frozen = np.array(params, dtype=np.float64, copy=True)  # the caller may reuse theirs
        frozen.flags.writeable = False
        self._initial[model_id] = frozen
        return model

    def _model(self, model_id: str) -> Model:
        model = self._models.get(check_id("model_id", model_id))
        if model is None:
            raise ModelNotFound(model_id, tuple(self._models))
        return model

    def attach_hipaa(self, manager: HipaaComplianceManager) -> None:
        """Put training under a HIPAA manager.

        From now on: training events go to its audit log; every update is checked with
        the gradient-leakage attack before aggregation and a leaking update is rejected
        (recorded in the round and audited), not aggregated; new workers are refused if
        their region breaks data residency or their data carries undeclared PHI.
        """
        if not isinstance(manager, HipaaComplianceManager):
            raise ConfigError("manager", manager, "a HipaaComplianceManager")
        self._hipaa = manager
        manager.track_checkpoints(self.workspace)
        for model_id in self.workspace.list_models():  # rounds a crash left unaudited
            rounds = self.workspace.rounds(model_id)
            manager.reconcile_rounds(model_id, [int(r["round_number"]) for r in rounds])
        self.events.add_listener(manager.audit_event)
        for coordinator in self._coordinators.values():
            self._guard(coordinator)

    def attach_gdpr(self, manager: GdprComplianceManager) -> None:
        """Put training under a GDPR manager (created with ``workspace=engine.workspace``).

        From now on: nodes train and evaluate only on rows of subjects who consented to
        ``"model_training"`` (decided as each round starts, so a withdrawal takes effect
        from the next round) and a node left with none is not selected; every committed
        round records, in its own transaction, whose rows contributed through which node;
        workers must hold ``subject_ids`` and are listed in the manager's inventory;
        retention is enforced at each training start; and
        ``await manager.delete_user_data(...)`` erases at the nodes and unlearns.

        Raises
        ------
        ConfigError
            If `manager` is not a GdprComplianceManager on this engine's workspace, or an
            existing worker's data has no ``subject_ids``.
        """
        from heliosfl.governance import GdprGovernance

        if not isinstance(manager, GdprComplianceManager):
            raise ConfigError("manager", manager, "a GdprComplianceManager")
        governance = GdprGovernance(
            manager,
            workspace=self.workspace,
            workers=self._workers,
            coordinators=self._coordinators,
        )
        for worker in self._workers.values():
            governance.admit(worker)
        self._gdpr = governance
        manager.bind(governance)
        for coordinator in self._coordinators.values():
            governance.govern(coordinator)

    def _guard(self, coordinator: Coordinator) -> None:
        if self._gdpr is not None:
            self._gdpr.govern(coordinator)
        manager = self._hipaa
        if manager is None:
            return

        def guard(update: ModelUpdate) -> str | None:
            worker = self._workers.get(update.node_id)
            inputs = None if worker is None or worker.data is None else worker.data.X
            return manager.update_guard(
                update.delta, model=coordinator.model, inputs=inputs, node_id=update.node_id
            )

        coordinator.update_guards.append(guard)
        if manager.config.enable_integrity_checks:
            tags = manager.checkpoint_tags
            tags.tag_all(coordinator.model_id)  # the initial checkpoint, at least

            def tag(
                round_number: int,
                contributors: tuple[str, ...],
                params: npt.NDArray[np.float64],
                state: Mapping[str, npt.NDArray[np.float64]],
            ) -> ExtraWrite:
                return tags.tag_write(coordinator.model_id, round_number, params, state)

            coordinator.commit_writes.append(tag)
        history = coordinator.history
        manager.reconcile_rounds(
            coordinator.model_id,
            [r.round_number for r in history if r.status is RoundStatus.COMPLETED],
        )

    def privacy_spent(self, model_id: str) -> tuple[float, float]:
        """``(epsilon, delta)`` spent by ``model_id``'s committed rounds.

        Recomputed with dp-accounting from the DP events in the workspace ledger, so it
        survives a kernel restart. ``(0.0, 0.0)`` without differential privacy.

        Raises
        ------
        ModelNotFound
            If the model has no coordinator.
        """
        return self.get_coordinator(model_id).privacy_spent()

    def list_models(self) -> list[str]:
        """Ids of the models registered in this engine."""
        return sorted(self._models)

    def get_params(self, model_id: str) -> FloatArray:
        """A copy of the current global parameters of ``model_id``.

        Raises
        ------
        ModelNotFound
            If the model is not registered.
        """
        self._model(model_id)  # raises ModelNotFound
        coordinator = self._coordinators.get(model_id)
        params = self._initial[model_id] if coordinator is None else coordinator.params
        return np.array(params, copy=True)

    # ------------------------------------------------------------ coordinators
    async def create_coordinator(
        self, model_id: str, *, validation_data: NodeData | None = None
    ) -> Coordinator:
        """Return the coordinator of ``model_id``, creating it on first call.

        Parameters
        ----------
        model_id : str
            A registered model.
        validation_data : NodeData or None
            Held-out data the coordinator evaluates each new global model on. Without
            it, rounds report the participants' own validation figures.

        Raises
        ------
        ModelNotFound
            If the model is not registered.
        """
        self._check_open()
        model = self._model(model_id)
        check_validation_data(model, validation_data)
        coordinator = self._coordinators.get(model_id)
        if coordinator is not None:
            if validation_data is not None:
                coordinator.validation_data = validation_data
            return coordinator
        entries = await asyncio.to_thread(self.workspace.privacy_ledger, model_id)
        coordinator = Coordinator(
            model_id=model_id,
            model=model,
            params=self._initial[model_id],
            privacy_ledger=entries,
            config=self.config,
            workspace=self.workspace,
            backend=self.backend,
            events=self.events,
            workers=self._workers,
            validation_data=validation_data,
        )
        self._coordinators[model_id] = coordinator
        self._guard(coordinator)
        return coordinator

    def get_coordinator(self, model_id: str) -> Coordinator:
        """The coordinator of ``model_id``.

        Raises
        ------
        ModelNotFound
            If the model has no coordinator yet.
        """
        coordinator = self._coordinators.get(check_id("model_id", model_id))
        if coordinator is None:
            raise ModelNotFound(model_id, tuple(self._coordinators))
        return coordinator

    async def resume(
        self,
        model_id: str,
        *,
        model: Model | None = None,
        validation_data: NodeData | None = None,
    ) -> Coordinator:
        """Continue a model kept in a persistent workspace, e.g. after a kernel restart.

        The model is rebuilt from its stored architecture (or ``model`` for a custom
        one), its parameters and aggregation state come from the last checkpoint and its
        history from the workspace. Register the nodes again, then train as usual; the
        next round is the one after the last committed round.

        Raises
        ------
        ModelNotFound
            If the workspace holds no such model.
        ConfigError
            If the model is already registered in this engine, ``model`` does not match
            the stored parameters, or this engine's strategy, seed or selection differ
            from the ones the model was trained with (the continuation would not be the
            same run).
        """
        self._check_open()
        model_id = _check_model_id(model_id)
        if model_id in self._models:
            raise ConfigError("model_id", model_id, "a model not yet registered in this engine")
        if self._hipaa is not None and self._hipaa.config.enable_integrity_checks:
            await asyncio.to_thread(self._hipaa.checkpoint_tags.check, model_id)
        stored = await asyncio.to_thread(
            load_stored_run, self.workspace, model_id, self.config, model
        )
        check_validation_data(stored.model, validation_data)
        self._models[model_id] = stored.model
        self._initial[model_id] = stored.initial_params
        coordinator = Coordinator(
            model_id=model_id,
            model=stored.model,
            params=stored.params,
            config=self.config,
            workspace=self.workspace,
            backend=self.backend,
            events=self.events,
            workers=self._workers,
            validation_data=validation_data,
            current_round=stored.round_number,
            history=stored.history,
            strategy_state=stored.strategy_state,
            privacy_ledger=stored.privacy_ledger,
        )
        self._coordinators[model_id] = coordinator
        self._guard(coordinator)
        return coordinator

    # ------------------------------------------------------------ workers
    async def create_worker(
        self,
        config: WorkerConfig,
        data: NodeData | None = None,
        *,
        fault: NodeFault | None = None,
        region: str | None = None,
        declared_phi: Sequence[str] = (),
        feature_names: Sequence[str] | None = None,
    ) -> FederatedWorker:
        """Create the worker of a node (replacing an earlier worker of the same id).

        Parameters
        ----------
        config : WorkerConfig
            Node id and local training settings.
        data : NodeData or None
            The node's private data.
        fault : NodeFault or None
            Simulated misbehaviour for experiments (crashes, hangs, delays).
        region : str or None
            Where the node's data lives; with a HIPAA manager attached it must match the
            manager's ``data_residency``.
        declared_phi : sequence of str
            PHI kinds the node's data is meant to hold (not refused by PHI detection).
        feature_names : sequence of str or None
            Column names, scanned for identifier names by PHI detection.

        Returns
        -------
        FederatedWorker
            The worker. Register its node with a coordinator to include it in rounds.
        """
        self._check_open()
        if not isinstance(config, WorkerConfig):
            raise ConfigError("worker_config", config, "a WorkerConfig")
        if data is not None and not isinstance(data, NodeData):
            raise ConfigError("data", f"<{type(data).__name__}>", "a NodeData or None")
        if fault is not None and not isinstance(fault, NodeFault):
            raise ConfigError("fault", fault, "a NodeFault or None")
        if self._hipaa is not None:
            self._hipaa.admit_node(
                config.node_id,
                None if data is None else data.X,
                region=region,
                feature_names=feature_names,
                declared_phi=declared_phi,
            )
        worker = FederatedWorker(
            config, data, backend=self.backend, resolve=self._resolve, fault=fault
        )
        if self._gdpr is not None:
            self._gdpr.admit(worker, feature_names)
        self._workers[config.node_id] = worker
        return worker

    def get_worker(self, node_id: str) -> FederatedWorker:
        """The worker of ``node_id``.

        Raises
        ------
        NodeNotFound
            If no worker of that id exists.
        """
        worker = self._workers.get(check_id("node_id", node_id))
        if worker is None:
            raise NodeNotFound(node_id, "engine (no worker)")
        return worker

    @property
    def workers(self) -> list[FederatedWorker]:
        """All workers, by node id."""
        return [self._workers[n] for n in sorted(self._workers)]

    def _resolve(self, node_id: str, model_id: str | None) -> Coordinator:
        if model_id is not None:
            coordinator = self.get_coordinator(model_id)
            if not coordinator.is_registered(node_id):
                raise NodeNotFound(node_id, f"coordinator of model {model_id!r}")
            return coordinator
        matches = [c for c in self._coordinators.values() if c.is_registered(node_id)]
        if not matches:
            raise NodeNotFound(node_id, "any coordinator")
        if len(matches) > 1:
            raise ConfigError(
                "model_id",
                None,
                "one of " + ", ".join(repr(c.model_id) for c in matches),
                f"Node {node_id!r} is registered with several models; say which.",
            )
        return matches[0]

    # ------------------------------------------------------------ training
    async def start_training(self, model_id: str) -> TrainingRun:
        """Start training ``model_id`` in a task and return at once.

        Returns
        -------
        TrainingRun
            Await it for the :class:`TrainingResult`; ``run.cancel()`` stops it.

        Raises
        ------
        ModelNotFound
            If the model is not registered.
        ConfigError
            If a run of this model is already in progress.
        """
        self._check_open()
        self._model(model_id)
        coordinator = await self.create_coordinator(model_id)
        if self._gdpr is not None and not coordinator.is_training:
            await asyncio.to_thread(self._gdpr.on_training_start)
        run = TrainingRun(coordinator, self.events)
        self._runs[model_id] = run
        return run

    async def train(self, model_id: str, *, require_convergence: bool = False) -> TrainingResult:
        """Train ``model_id`` until it stops and return the result.

        Parameters
        ----------
        model_id : str
            A registered model.
        require_convergence : bool
            Raise :class:`ConvergenceNotReached` if training ends at ``max_rounds``
            without meeting ``target_accuracy`` or ``convergence_threshold``.

        Raises
        ------
        InsufficientNodes
            If the quorum cannot be met (committed rounds stay committed).
        ConvergenceNotReached
            With ``require_convergence``, if no stopping rule was met.
        """
        run = await self.start_training(model_id)
        result = await run
        if require_convergence and not result.converged:
            raise ConvergenceNotReached(
                result.current_round,
                result.best_accuracy,
                self.config.round_config.target_accuracy,
            )
        return result

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"FederatedLearningEngine({state}, models={len(self._models)}, "
            f"workers={len(self._workers)}, workspace={self.workspace!r})"
        )
