"""The engine side of GDPR: consent-filtered training, lineage, erasure at nodes, unlearning.

``engine.attach_gdpr(manager)`` creates one :class:`GdprGovernance`. It is each worker's
:class:`~heliosfl.worker.DataPolicy` (a node trains and evaluates only on rows of subjects
the manager allows, decided when the round starts), each coordinator's hooks (selection
skips nodes left with no usable row, as if they did not exist; an update without a
recorded policy view is rejected; each committed round writes its lineage in its own
transaction) and the manager's :class:`~heliosfl.compliance.federation.Federation`
(erasure at the nodes, per-row losses for the membership check, rollback and replay).

Unlearning is exact retraining from a checkpoint (Cao and Yang 2015's "retrain from
scratch", shortened to the rounds after the subject's first contribution): every draw of a
round is keyed by (seed, model, round, node, attempt) and nodes train on their rows in
their order, so replaying rounds on data without the subject gives the parameters that
training which never saw the subject would have given (the test suite checks equality).
Replayed rounds obey consent as it is now: someone who withdrew after the rollback point
is left out of the replay too, as training on them again would be new processing.
With differential privacy this needs ``reproducible_noise=True``; otherwise the replay draws
fresh noise and is an equally valid, but different, run.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.compliance.erasure import ModelUnlearning
from heliosfl.compliance.gdpr import GdprComplianceManager
from heliosfl.coordinator import Coordinator
from heliosfl.data import NodeData
from heliosfl.errors import (
    ComplianceError,
    ConfigError,
    InsufficientNodes,
    PrivacyBudgetExhausted,
)
from heliosfl.models import Model
from heliosfl.records import ModelUpdate
from heliosfl.store import ExtraWrite, Workspace
from heliosfl.worker import FederatedWorker, TrainContext

__all__ = ["GdprGovernance"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
_View = tuple[NodeData, frozenset[str], int]


def _row_ids(data: NodeData) -> npt.NDArray[np.str_]:
    train = data.subject_ids
    assert train is not None  # noqa: S101 - admitted nodes have subject ids
    if data.subject_ids_val is None:
        return train
    return np.concatenate([train, data.subject_ids_val])


class GdprGovernance:
    """Enforces a GDPR manager on an engine's workers and coordinators.

    Parameters
    ----------
    manager : GdprComplianceManager
        Decides who may be trained on, and keeps consent, inventory and lineage.
    workspace : Workspace
        The engine's workspace (the manager's must be the same).
    workers, coordinators : mapping
        The engine's live maps of node id to worker and model id to coordinator.
    """

    def __init__(
        self,
        manager: GdprComplianceManager,
        *,
        workspace: Workspace,
        workers: Mapping[str, FederatedWorker],
        coordinators: Mapping[str, Coordinator],
    ) -> None:
        if manager.workspace is not workspace:
            raise ConfigError(
                "manager",
                "<a GdprComplianceManager on another workspace>",
                "a manager created with workspace=engine.workspace",
                "Lineage must be written with each round, in the engine's workspace.",
            )
        self.manager = manager
        self._workspace = workspace
        self._workers = workers
        self._coordinators = coordinators
        self._views: dict[str, tuple[int, NodeData, _View]] = {}
        self._notes: dict[tuple[str, int, str], tuple[frozenset[str], int]] = {}
        self._feature_names: dict[str, tuple[str, ...]] = {}

    # ------------------------------------------------------------------ nodes
    def admit(self, worker: FederatedWorker, feature_names: Sequence[str] | None = None) -> None:
        """Put a worker under the policy and list its subjects in the inventory.

        Raises
        ------
        ConfigError
            If the node's data has no ``subject_ids`` (consent and erasure need them).
        ComplianceError
            With data minimisation and a declared ``training_data`` schema, if a feature
            name is not declared.
        """
        data = worker.data
        if data is not None and data.subject_ids is None:
            raise ConfigError(
                "data.subject_ids",
                None,
                "set for every row when a GDPR manager is attached",
                "Build the node with NodeData(X, y, subject_ids=...).",
            )
        config = self.manager.config
        declared = config.data_schema.get("training_data")
        if feature_names is not None and config.enable_data_minimization and declared:
            extra = sorted(set(feature_names) - set(declared))
            if extra:
                raise ComplianceError(
                    f"Data minimisation: node {worker.node_id!r} has features {extra} not "
                    f"declared for 'training_data' in GdprConfig.data_schema. Drop them or "
                    "declare them."
                )
        if feature_names is not None:
            self._feature_names[worker.node_id] = tuple(feature_names)
        if data is not None:
            self.manager.note_node_subjects(worker.node_id, _row_ids(data))
        worker.policy = self

    def _view(self, node_id: str, data: NodeData) -> _View:
        """The node's usable rows, their subjects (pseudonyms) and count, cached per policy."""
        generation = self.manager.policy_generation
        cached = self._views.get(node_id)
        if cached is not None and cached[0] == generation and cached[1] is data:
            return cached[2]
        ids = _row_ids(data)
        unique = np.unique(ids)
        names = [self.manager.pseudonym(str(s)) for s in unique]
        allowed = [self.manager.may_train_on(p) for p in names]
        refused = [str(s) for s, ok in zip(unique, allowed, strict=True) if not ok]
        view = data.without_subjects(refused) if refused else data
        train_subjects = set(np.unique(view.subject_ids)) if view.subject_ids is not None else ()
        subjects = frozenset(
            p for s, p, ok in zip(unique, names, allowed, strict=True) if ok and s in train_subjects
        )
        result = (view, subjects, len(view))
        self._views[node_id] = (generation, data, result)
        return result

    def training_view(self, context: TrainContext, node_id: str, data: NodeData) -> NodeData:
        """The rows the node may train on this round; noted for the round's lineage."""
        view, subjects, rows = self._view(node_id, data)
        self._notes[(context.model_id, context.round_number, node_id)] = (subjects, rows)
        return view

    def evaluation_view(self, node_id: str, data: NodeData) -> NodeData:
        """The rows the node may evaluate on now."""
        return self._view(node_id, data)[0]

    def _eligible(self, node_id: str) -> bool:
        worker = self._workers.get(node_id)
        if worker is None or worker.data is None:
            return True  # fails in the round as any node without data does
        return self._view(node_id, worker.data)[2] > 0

    # ------------------------------------------------------------------ coordinators
    def govern(self, coordinator: Coordinator) -> None:
        """Install the selection filter, update guard and lineage write on a coordinator."""
        model_id = coordinator.model_id

        def guard(update: ModelUpdate) -> str | None:
            if (model_id, update.round_number, update.node_id) in self._notes:
                return None
            return (
                "GDPR: no consent-checked training view was recorded for this node and "
                "round (train through worker.train_local_model)"
            )

        def lineage(round_number: int, contributors: tuple[str, ...], *_: object) -> ExtraWrite:
            sets = {
                n: note
                for n in contributors
                if (note := self._notes.get((model_id, round_number, n))) is not None
            }
            for key in [k for k in self._notes if k[0] == model_id and k[1] <= round_number]:
                del self._notes[key]
            return self.manager.lineage.round_write(model_id, round_number, sets)

        coordinator.candidate_filters.append(self._eligible)
        coordinator.update_guards.append(guard)
        coordinator.commit_writes.append(lineage)

    def on_training_start(self) -> None:
        """Enforce retention before a run (GDPR Art. 5(1)(e))."""
        self.manager.enforce_retention()

    # ------------------------------------------------------------------ Federation
    def node_ids(self) -> list[str]:
        """Every node with a worker, sorted."""
        return sorted(self._workers)

    def is_online(self, node_id: str) -> bool:
        """Whether the node can be reached now."""
        worker = self._workers.get(node_id)
        return worker is not None and worker.online

    def subject_rows(self, subject: str) -> dict[str, NodeData]:
        """The rows of `subject` (a pseudonym) at each reachable node holding some."""
        found = {}
        for node_id, worker in sorted(self._workers.items()):
            data = worker.data
            if not worker.online or data is None or data.subject_ids is None:
                continue
            ids = [str(s) for s in np.unique(_row_ids(data))]
            others = [s for s in ids if self.manager.pseudonym(s) != subject]
            if len(others) < len(ids):
                if not others:
                    found[node_id] = data
                    continue
                kept = data.without_subjects(others)
                if len(kept) + kept.num_val_samples > 0:
                    found[node_id] = kept
        return found

    def erase_on_node(self, node_id: str, subject: str) -> int:
        """Remove the rows of `subject` (a pseudonym) at the node; NodeFailure if offline."""
        worker = self._workers[node_id]
        removed = worker.erase_subject(lambda s: self.manager.pseudonym(s) == subject)
        self._views.pop(node_id, None)
        for coordinator in self._coordinators.values():
            if coordinator.is_registered(node_id):
                coordinator._nodes.resize(node_id, worker.num_samples)
        return removed

    def training_models(self) -> list[str]:
        """Models with a training run (or a replay) in progress."""
        return sorted(m for m, c in self._coordinators.items() if c.is_training)

    def model_ids(self) -> list[str]:
        """Models with a coordinator."""
        return sorted(self._coordinators)

    def last_round(self, model_id: str) -> int:
        """The model's last committed round."""
        return self._coordinators[model_id].current_round

    def model_and_params(self, model_id: str) -> tuple[Model, FloatArray]:
        """The model's architecture and current parameters."""
        coordinator = self._coordinators[model_id]
        return coordinator.model, np.array(coordinator.params)

    def feature_names(self) -> tuple[str, ...] | None:
        """The feature names nodes declared (the first node's), if any."""
        for node_id in sorted(self._feature_names):
            return self._feature_names[node_id]
        return None

    def row_losses(self, model_id: str, rows: NodeData) -> FloatArray:
        """Per-row cross-entropy of the current model on `rows` (training and validation)."""
        coordinator = self._coordinators[model_id]
        parts = [(rows.X, rows.y)]
        if rows.X_val is not None and rows.y_val is not None:
            parts.append((rows.X_val, rows.y_val))
        losses = []
        for features, y in parts:
            proba = coordinator.model.predict_proba(coordinator.params, features)
            picked = proba[np.arange(len(y)), y]
            losses.append(-np.log(np.maximum(picked, np.finfo(np.float64).tiny)))
        return np.concatenate(losses)

    def reference_losses(self, model_id: str) -> FloatArray | None:
        """Per-row losses on the coordinator's held-out validation data (None without)."""
        data = self._coordinators[model_id].validation_data
        if data is None or len(data) == 0:
            return None
        return self.row_losses(model_id, NodeData(data.X, data.y))

    async def unlearn(
        self, model_id: str, rollback_round: int, reason: dict[str, object]
    ) -> ModelUnlearning:
        """Roll `model_id` back to `rollback_round` and replay up to where it was.

        Replays exactly the rounds the model had (the erasure replaces them; it does not
        train further), retrying a round without quorum as the training loop does and
        stopping early if the privacy budget runs out.
        """
        coordinator = self._coordinators[model_id]
        target = coordinator.current_round
        epsilon_before = coordinator.privacy_spent()[0]
        await coordinator.rewind(
            rollback_round,
            reason,
            extra_writes=(
                self.manager.lineage.drop_after(model_id, rollback_round),
                _drop_checkpoint_tags(model_id, rollback_round),
            ),
        )
        stopped = await _replay(coordinator, target)
        return ModelUnlearning(
            model_id=model_id,
            first_contribution=rollback_round + 1,
            rollback_round=rollback_round,
            target_round=target,
            rounds_replayed=coordinator.current_round - rollback_round,
            stopped_early=stopped,
            epsilon_charged=max(coordinator.privacy_spent()[0] - epsilon_before, 0.0),
        )


async def _replay(coordinator: Coordinator, target: int) -> str | None:
    """Run rounds until `target`; return why it stopped early, or None."""
    limit = coordinator.config.round_config.max_failed_attempts
    failed = 0
    coordinator.is_training = True
    try:
        while coordinator.current_round < target:
            try:
                await coordinator.next_round()
            except PrivacyBudgetExhausted:
                return "privacy budget exhausted"
            except InsufficientNodes as exc:
                failed += 1
                if exc.what != "successful updates" or failed >= limit:
                    return f"too few nodes: {exc}"
            else:
                failed = 0
    finally:
        coordinator.is_training = False
    return None


def _drop_checkpoint_tags(model_id: str, round_number: int) -> Callable[[sqlite3.Connection], Any]:
    """A write dropping HIPAA integrity tags of rewound checkpoints (if HIPAA tags exist)."""

    def write(conn: sqlite3.Connection) -> None:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoint_tags'"
        ).fetchone()
        if exists:
            conn.execute(
                "DELETE FROM checkpoint_tags WHERE model_id = ? AND round_number > ?",
                (model_id, round_number),
            )

    return write
