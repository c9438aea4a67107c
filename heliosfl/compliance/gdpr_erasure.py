"""The erasure workflow of the GDPR manager (Art. 17): erase at the nodes, shred, unlearn.

:class:`ErasureWorkflow` is a base class of
:class:`~heliosfl.compliance.gdpr.GdprComplianceManager`; it lives apart only to keep each
module to one idea. See :meth:`ErasureWorkflow.delete_user_data` for the order of steps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from heliosfl.compliance.audit import AuditAction
from heliosfl.compliance.consent import ConsentAction
from heliosfl.compliance.erasure import (
    DeletionRecord,
    DeletionVerification,
    ErasureBook,
    ModelUnlearning,
    membership_score,
)
from heliosfl.compliance.gdpr_config import check_user_id
from heliosfl.errors import ComplianceError, ConfigError, NodeFailure, NodeNotFound

if TYPE_CHECKING:
    from heliosfl.compliance.consent import ConsentBook
    from heliosfl.compliance.federation import Federation
    from heliosfl.compliance.gdpr_config import GdprConfig
    from heliosfl.compliance.inventory import DataInventory
    from heliosfl.compliance.lineage import Lineage
    from heliosfl.store import Workspace

__all__ = ["ErasureWorkflow"]


class ErasureWorkflow:
    """Erasure requests: delete, retry, verify, track deadlines."""

    if TYPE_CHECKING:  # provided by GdprComplianceManager
        config: GdprConfig
        workspace: Workspace
        consents: ConsentBook
        inventory: DataInventory
        lineage: Lineage
        erasures: ErasureBook
        erasing: set[str]
        _federation: Federation | None

        def pseudonym(self, user_id: str) -> str: ...  # noqa: D102

        def _now(self) -> datetime: ...

        def _log(
            self,
            action: AuditAction,
            resource: str,
            success: bool = True,
            details: Mapping[str, Any] | None = None,
        ) -> None: ...

    def _targets(self, subject: str, node_ids: Sequence[str] | None) -> list[str]:
        federation = self._federation
        wanted = [] if node_ids is None else list(node_ids)
        if isinstance(node_ids, str) or not all(isinstance(n, str) for n in wanted):
            raise ConfigError("node_ids", node_ids, "a list of node ids (str) or None")
        if federation is not None:
            known = set(federation.node_ids())
            for node_id in wanted:
                if node_id not in known:
                    raise NodeNotFound(node_id, "federation governed by this GDPR manager")
            if node_ids is None:
                wanted = sorted(known)
        return sorted(set(wanted) | set(self.inventory.locations(subject)))

    async def delete_user_data(
        self, user_id: str, node_ids: Sequence[str] | None = None
    ) -> DeletionRecord:
        """Erase a subject everywhere and unlearn them (Art. 17); return the deletion record.

        In order: consent is withdrawn and the subject is excluded from all training; their
        rows are removed at each node of `node_ids` (default: every node) and every node
        the inventory lists for them; their stored records are shredded (key destroyed);
        then each model they contributed to is rolled back to the checkpoint before their
        first contribution and the later rounds are replayed without them (with the same
        seeds, so the result equals training that never saw them; replayed rounds obey
        consent as it is now; with differential privacy they are charged to the budget).
        An unreachable node leaves the request ``"partial"`` until :meth:`retry_deletion`
        reaches it.

        Parameters
        ----------
        user_id : str
            The subject.
        node_ids : list of str or None
            Nodes to erase at (besides those the inventory lists); ``None``: all nodes.

        Returns
        -------
        DeletionRecord
            Nodes done and pending, rows removed, rollback and replay per model.

        Raises
        ------
        ComplianceError
            If the right to be forgotten is off, or a governed model is training (a round
            in flight may hold the subject's rows; await or cancel the run first); nothing
            is changed then.
        NodeNotFound
            If a listed node has no worker.
        """
        user_id = check_user_id(user_id)
        if not self.config.enable_right_to_be_forgotten:
            raise ComplianceError("The right to be forgotten is off in this GdprConfig.")
        subject = self.pseudonym(user_id)
        targets = self._targets(subject, node_ids)
        self._refuse_while_training()
        received = self._now()
        record = DeletionRecord(
            request_id="erasure-" + uuid.uuid4().hex[:16],
            subject=subject,
            received_at=received,
            deadline=ErasureBook.deadline(received, self.config.erasure_deadline_days),
            status="in_progress",
            deleted_from_nodes=(),
            pending_nodes=tuple(targets),
            rows_removed={},
            records_removed=0,
            key_shredded=False,
        )
        # Saved first: after a crash the request is pending, the subject stays excluded
        # from training, and retry_deletion() finishes it.
        self.erasures.save(record)
        self._log(AuditAction.ERASURE_REQUESTED, subject, details={"request": record.request_id})
        self.erasing.add(subject)
        if self.consents.purposes(subject):
            self.consents.record(
                subject,
                ConsentAction.WITHDRAW,
                sorted(self.consents.purposes(subject)),
                "erasure",
                at=received,
                reason="erasure",
            )
        return await self._carry_out(record, user_id)

    async def _carry_out(self, record: DeletionRecord, user_id: str) -> DeletionRecord:
        """Do what `record` still lacks: pending nodes, stored records, unlearning."""
        subject = record.subject
        federation = self._federation
        first = self.lineage.first_contributions(subject)
        before = self._membership(subject, sorted(first))
        done, pending, removed, unconfirmed = self._erase_rows(subject, record.pending_nodes)
        # crypto and SQLite work off the event loop (the notebook stays live)
        records, shredded = await asyncio.to_thread(self.inventory.erase, user_id, subject)
        unlearned = []
        for model_id in sorted(first):
            if federation is None or model_id not in federation.model_ids():
                continue
            reason: dict[str, object] = {"erasure": record.request_id, "subject": subject}
            unlearned.append(await federation.unlearn(model_id, first[model_id] - 1, reason))
        after = self._membership_from(before, sorted(first))
        unlearned = [self._with_scores(u, before, after) for u in unlearned]
        self.lineage.forget_subject(subject)
        updated = DeletionRecord(
            request_id=record.request_id,
            subject=subject,
            received_at=record.received_at,
            deadline=record.deadline,
            status="partial" if pending else "completed",
            deleted_from_nodes=record.deleted_from_nodes + tuple(done),
            pending_nodes=tuple(pending),
            rows_removed={**record.rows_removed, **removed},
            records_removed=record.records_removed + records,
            key_shredded=record.key_shredded or shredded,
            unlearning=record.unlearning + tuple(unlearned),
            completed_at=None if pending else self._now(),
            inventory_only_nodes=record.inventory_only_nodes + tuple(unconfirmed),
        )
        await asyncio.to_thread(self._settle, updated)
        return updated

    def _refuse_while_training(self) -> None:
        # Any run, not only of models the subject reached: a round in flight may be
        # training on their rows now and would commit after the erasure.
        federation = self._federation
        busy = federation.training_models() if federation is not None else []
        if busy:
            raise ComplianceError(
                f"Model(s) {busy} are training: await or cancel the run, then request the "
                "erasure again. Nothing was changed."
            )

    def _erase_rows(
        self, subject: str, targets: Sequence[str]
    ) -> tuple[list[str], list[str], dict[str, int], list[str]]:
        federation = self._federation
        done: list[str] = []
        pending: list[str] = []
        unconfirmed: list[str] = []
        removed: dict[str, int] = {}
        for node_id in targets:
            if federation is None or node_id not in federation.node_ids():
                # Not a live node: the inventory's listing is all there is to erase.
                removed[node_id] = self.inventory.locations(subject).get(node_id, 0)
                self.inventory.forget_location(subject, node_id)
                done.append(node_id)
                unconfirmed.append(node_id)
                continue
            try:
                removed[node_id] = federation.erase_on_node(node_id, subject)
            except NodeFailure:
                pending.append(node_id)
                continue
            self.inventory.forget_location(subject, node_id)
            done.append(node_id)
        return done, pending, removed, unconfirmed

    def _settle(self, record: DeletionRecord) -> None:
        self.erasures.save(record)
        if record.is_complete:
            self.erasing.discard(record.subject)
        self._log(
            AuditAction.ERASURE_COMPLETED,
            record.subject,
            record.is_complete,
            {
                "request": record.request_id,
                "status": record.status,
                "nodes_done": len(record.deleted_from_nodes),
                "nodes_pending": len(record.pending_nodes),
                "rows": sum(record.rows_removed.values()),
                "models_unlearned": len(record.unlearning),
            },
        )
        for item in record.unlearning:
            self._log(
                AuditAction.UNLEARNING,
                f"model:{item.model_id}",
                item.stopped_early is None,
                {
                    "request": record.request_id,
                    "rollback_round": item.rollback_round,
                    "rounds_replayed": item.rounds_replayed,
                    "epsilon_charged": item.epsilon_charged,
                },
            )
        self.workspace.scrub()

    async def retry_deletion(self, user_id: str) -> DeletionRecord:
        """Finish a pending erasure of `user_id`: offline nodes, and any step a crash cut.

        Reaches the nodes still pending and repeats the shredding of stored records and
        the unlearning of any model whose lineage still includes the subject.

        Raises
        ------
        ComplianceError
            If the subject has no erasure pending, or a governed model is training.
        """
        subject = self.pseudonym(check_user_id(user_id))
        pending = [r for r in self.erasures.of_subject(subject) if not r.is_complete]
        if not pending:
            raise ComplianceError(f"The subject ({subject}) has no erasure pending.")
        self._refuse_while_training()
        return await self._carry_out(pending[-1], user_id)

    def deletion_requests(self, *, pending_only: bool = False) -> list[DeletionRecord]:
        """Erasure requests, oldest first (pending ones only if asked)."""
        return self.erasures.pending() if pending_only else self.erasures.all()

    def overdue_requests(self) -> list[DeletionRecord]:
        """Pending erasures past their one-month deadline."""
        return self.erasures.overdue(self._now())

    async def verify_deletion(self, user_id: str) -> DeletionVerification:
        """Check that nothing of `user_id` is left and that no model's lineage includes them.

        Checks: no rows at any reachable node, every node of the request confirmed, no
        inventory record, no readable ciphertext or live key, no node listing, no
        committed round with them in its lineage, and lineage recorded for every
        committed round of each governed model (so the check covers the whole history).
        The result is truthy only if all pass; it carries the membership-inference scores
        before and after unlearning.
        """
        user_id = check_user_id(user_id)
        subject = self.pseudonym(user_id)
        federation = self._federation
        residue = self.inventory.residue(user_id, subject)
        requests = self.erasures.of_subject(subject)
        held = federation.subject_rows(subject) if federation is not None else {}
        checks = {
            "erasure_requested": bool(requests),
            "all_nodes_confirmed": bool(requests) and requests[-1].is_complete,
            "no_rows_on_nodes": not held,
            "no_inventory_records": residue["records"] == 0 and residue["vault_records"] == 0,
            "key_shredded_or_absent": residue["live_keys"] == 0,
            "no_locations": residue["locations"] == 0,
            "lineage_excludes_subject": not self.lineage.contributions(subject)
            and self.lineage.stored_mentions(subject) == 0,
        }
        uncovered = []
        if federation is not None:
            for model_id in federation.model_ids():
                if self.lineage.rounds_recorded(model_id) < federation.last_round(model_id):
                    uncovered.append(model_id)
        checks["lineage_covers_history"] = not uncovered
        problems = tuple(
            {
                "erasure_requested": "no erasure was requested for this subject",
                "all_nodes_confirmed": "nodes are still pending (offline): retry_deletion()",
                "no_rows_on_nodes": f"rows remain at nodes {sorted(held)}",
                "no_inventory_records": "stored records remain",
                "key_shredded_or_absent": "a subject key is still live",
                "no_locations": "the inventory still lists nodes holding the subject",
                "lineage_excludes_subject": "a committed round still includes the subject",
                "lineage_covers_history": f"models {uncovered} have rounds trained before "
                "the GDPR manager was attached; their contributors are unknown",
            }[name]
            for name, ok in checks.items()
            if not ok
        )
        membership = {
            u.model_id: (u.membership_before, u.membership_after)
            for r in requests
            for u in r.unlearning
        }
        return DeletionVerification(not problems, checks, problems, membership)

    def _membership(self, subject: str, models: Sequence[str]) -> dict[str, Any]:
        """Scores before unlearning, and the rows to score again after (kept in memory)."""
        federation = self._federation
        if federation is None or not models:
            return {}
        rows = list(federation.subject_rows(subject).values())
        scores = {}
        for model_id in models:
            if model_id in federation.model_ids():
                scores[model_id] = self._score(model_id, rows)
        return {"rows": rows, "scores": scores}

    def _membership_from(
        self, before: Mapping[str, Any], models: Sequence[str]
    ) -> dict[str, float | None]:
        rows = before.get("rows", [])
        federation = self._federation
        if federation is None:
            return {}
        return {m: self._score(m, rows) for m in models if m in federation.model_ids()}

    def _score(self, model_id: str, rows: Sequence[Any]) -> float | None:
        federation = self._federation
        if federation is None or not rows:
            return None
        reference = federation.reference_losses(model_id)
        if reference is None:
            return None
        losses = np.concatenate([federation.row_losses(model_id, r) for r in rows])
        return membership_score(losses, reference)

    @staticmethod
    def _with_scores(
        item: ModelUnlearning, before: Mapping[str, Any], after: Mapping[str, float | None]
    ) -> ModelUnlearning:
        return ModelUnlearning(
            **{
                **{k: getattr(item, k) for k in item.__dataclass_fields__},
                "membership_before": before.get("scores", {}).get(item.model_id),
                "membership_after": after.get(item.model_id),
            }
        )
