"""GDPR: consent, inventory, erasure with unlearning, portability, retention, explanations.

``GdprComplianceManager(GdprConfig(...))`` works from its config alone, as in the guide:
consent, the encrypted inventory, exports and erasure of stored records need nothing else.
Attached to an engine (``engine.attach_gdpr(manager)``) it also governs training: nodes
train only on rows of subjects who consented to ``"model_training"`` (a withdrawal takes
effect from the next round), every committed round records whose rows contributed
through which node, and an erasure removes the subject's rows at every node and unlearns
them by rolling each model back to the checkpoint before their first contribution and
replaying the later rounds without them.

Keys and the audit log are HIPAA's: records are encrypted by a
:class:`~heliosfl.compliance.crypto.PhiVault` (per-subject keys, crypto-shredding) and
every act is appended to an HMAC-chained :class:`~heliosfl.compliance.audit.AuditLog`
(``log_id="gdpr"``). Subjects appear in the workspace, the log and messages only as
keyed pseudonyms.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.compliance.audit import AuditAction, AuditLog, FileCheckpoint, MemoryCheckpoint
from heliosfl.compliance.consent import ConsentAction, ConsentBook, ConsentRecord, check_purposes
from heliosfl.compliance.crypto import PhiVault, check_id
from heliosfl.compliance.erasure import (
    ErasureBook,
)
from heliosfl.compliance.explain import PredictionExplanation, explain_prediction
from heliosfl.compliance.federation import Federation
from heliosfl.compliance.gdpr_config import (
    TRAINING_PURPOSE,
    DataCategory,
    GdprConfig,
    check_user_id,
)
from heliosfl.compliance.gdpr_erasure import ErasureWorkflow
from heliosfl.compliance.hipaa_config import check_workspace, default_audit_head, default_kek
from heliosfl.compliance.importance import GlobalImportance, feature_importance
from heliosfl.compliance.inventory import DataInventory
from heliosfl.compliance.keys import KeyEncryptionKey
from heliosfl.compliance.lineage import Lineage
from heliosfl.compliance.portability import UserDataExport, node_rows_json
from heliosfl.compliance.processing import ProcessingRecords, RetentionReport, build_records
from heliosfl.errors import ComplianceError, ConfigError, ModelNotFound
from heliosfl.store import Workspace

__all__ = ["DataCategory", "GdprComplianceManager", "GdprConfig"]

#: Who acts when a call names nobody (the controller's system).
SYSTEM_USER = "system"


_DATA_ALLOWED = (
    "bytes, a list of byte values (0-255), a str, or a dict of JSON values with str keys"
)


def _payload(data: object) -> tuple[bytes, str, tuple[str, ...]]:
    """The record's bytes, format and fields; messages describe `data` by type only."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), "bytes", ()
    if isinstance(data, list | tuple) and all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in data
    ):
        return bytes(data), "bytes", ()  # the guide's vec![1, 2, 3, 4, 5]
    if isinstance(data, str):
        try:
            return data.encode("utf-8"), "text", ()
        except UnicodeEncodeError:
            shown = f"<str of length {len(data)} that is not valid Unicode text>"
            raise ConfigError("data", shown, _DATA_ALLOWED) from None
    if isinstance(data, Mapping) and all(isinstance(k, str) for k in data):
        try:
            text = json.dumps(dict(data), allow_nan=False, sort_keys=True)
        except RecursionError:
            shown = f"<{type(data).__name__} nested too deeply>"
            raise ConfigError("data", shown, _DATA_ALLOWED, "Flatten the record.") from None
        except (TypeError, ValueError):
            pass
        else:
            return text.encode(), "json", tuple(sorted(data))
    raise ConfigError("data", f"<{type(data).__name__}>", _DATA_ALLOWED)


def _check_purpose(purpose: object) -> str:
    if not isinstance(purpose, str) or not 0 < len(purpose) <= 100:
        raise ConfigError("purpose", purpose, "a purpose name (str of 1-100 characters)")
    return purpose


class GdprComplianceManager(ErasureWorkflow):
    """The guide's GDPR manager.

    Parameters
    ----------
    config : GdprConfig or None
        The settings (default ``GdprConfig()``).
    workspace : Workspace or None
        Where consent, inventory, lineage, requests and the audit log live (default: in
        memory). Attach the manager to an engine using the same workspace.
    kek : KeyEncryptionKey or None
        The key-encryption key (default as for HIPAA: ephemeral in memory, else a key
        file apart from the workspace).
    clock : callable or None
        UTC clock (tests inject one for retention and deadlines).
    """

    def __init__(
        self,
        config: GdprConfig | None = None,
        *,
        workspace: Workspace | None = None,
        kek: KeyEncryptionKey | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = GdprConfig() if config is None else config
        if not isinstance(self.config, GdprConfig):
            raise ConfigError("config", f"<{type(config).__name__}>", "a GdprConfig")
        self.workspace = check_workspace(workspace)
        if kek is None:
            kek, _ = default_kek(self.workspace)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._vault = PhiVault(self.workspace, kek)
        head = default_audit_head(self.workspace, ".gdpr-audit-head")
        checkpoint = MemoryCheckpoint() if head is None else FileCheckpoint(head)
        self.audit = AuditLog(
            self.workspace,
            self._vault.derived_key("audit-log-hmac"),
            checkpoint=checkpoint,
            log_id="gdpr",
            pseudonymize=self.pseudonym,
            clock=self._clock,
        )
        self.consents = ConsentBook(self.workspace)
        self.inventory = DataInventory(self.workspace, self._vault)
        self.lineage = Lineage(self.workspace)
        self.erasures = ErasureBook(self.workspace)
        self._federation: Federation | None = None
        self._pseudonyms: dict[str, str] = {}
        #: Pseudonyms of subjects with an erasure in progress: never trained on.
        self.erasing: set[str] = {r.subject for r in self.erasures.pending()}

    # ------------------------------------------------------------------ basics
    def pseudonym(self, user_id: str) -> str:
        """The subject's keyed pseudonym (``"subj-"`` + 32 hex digits), as stored and logged."""
        found = self._pseudonyms.get(user_id)
        if found is None:
            found = "subj-" + self._vault.pseudonym(user_id)
            self._pseudonyms[user_id] = found
        return found

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)  # stored times compare as UTC text

    def _log(
        self,
        action: AuditAction,
        resource: str,
        success: bool = True,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.audit.append(SYSTEM_USER, action, resource, success, dict(details or {}))

    def bind(self, federation: Federation | None) -> None:
        """Govern `federation` (called by ``engine.attach_gdpr``; ``None`` detaches)."""
        self._federation = federation

    def may_train_on(self, subject: str) -> bool:
        """Whether a node may train on the rows of `subject` (a pseudonym) now."""
        if subject in self.erasing:
            return False
        if not self.config.enable_consent_management:
            return True
        return self.consents.allows(subject, TRAINING_PURPOSE)

    @property
    def policy_generation(self) -> int:
        """Changes whenever who may be trained on changes (nodes cache their views by it)."""
        return hash((self.consents.generation, frozenset(self.erasing)))

    # ------------------------------------------------------------------ consent
    def register_consent_text(self, version: str, text: str) -> str:
        """Register the wording of a consent version; its SHA-256 goes into each consent.

        Returns
        -------
        str
            The text's SHA-256 (hex).
        """
        digest = self.consents.register_text(version, text, at=self._now())
        self._log(AuditAction.CONFIG_CHANGE, f"consent-text:{version}", details={"sha256": digest})
        return digest

    def record_consent(self, user_id: str, purposes: Sequence[str], version: str) -> ConsentRecord:
        """Record that `user_id` consents to `purposes` under consent text `version` (Art. 7).

        Appends a record (time, purposes, version, hash of the text); earlier records stay.

        Raises
        ------
        ConfigError
            For a malformed id, purpose list or version.
        ComplianceError
            If consent management is off in the config.
        """
        user_id = check_user_id(user_id)
        if not self.config.enable_consent_management:
            raise ComplianceError(
                "Consent management is off (GdprConfig.enable_consent_management=False)."
            )
        subject = self.pseudonym(user_id)
        record = self.consents.record(
            subject, ConsentAction.GRANT, purposes, version, at=self._now()
        )
        self._log(
            AuditAction.CONSENT_RECORDED,
            subject,
            details={"purposes": ",".join(record.purposes), "version": record.version},
        )
        return record

    def withdraw_consent(
        self, user_id: str, purposes: Sequence[str] | None = None, *, version: str | None = None
    ) -> ConsentRecord:
        """Withdraw consent to `purposes` (default: all of them), as easily as it was given.

        Takes effect for training from the next round; rows already trained on stay in the
        model (withdrawal is not erasure: use :meth:`delete_user_data` for that).

        Raises
        ------
        ConfigError
            For a malformed id or purposes, or a subject with nothing to withdraw.
        """
        user_id = check_user_id(user_id)
        subject = self.pseudonym(user_id)
        current = self.consents.purposes(subject)
        wanted = sorted(current) if purposes is None else list(check_purposes(purposes))
        if not wanted or not set(wanted) <= current:
            raise ConfigError(
                "purposes",
                sorted(set(wanted) - current) or [],
                f"purposes the subject consents to now ({sorted(current) or 'none'})",
            )
        history = self.consents.history(subject)
        version = version or (history[-1].version if history else "withdrawal")
        record = self.consents.record(
            subject, ConsentAction.WITHDRAW, wanted, version, at=self._now()
        )
        self._log(AuditAction.CONSENT_WITHDRAWN, subject, details={"purposes": ",".join(wanted)})
        return record

    def has_consent(self, user_id: str, purpose: str) -> bool:
        """Whether `user_id` consents to `purpose` now.

        Raises
        ------
        ConfigError
            For a malformed id or a purpose that is not a str of 1-100 characters.
        """
        user_id = check_user_id(user_id)
        return self.consents.allows(self.pseudonym(user_id), _check_purpose(purpose))

    def consent_history(self, user_id: str) -> list[ConsentRecord]:
        """Every consent record of `user_id`, oldest first."""
        return self.consents.history(self.pseudonym(check_user_id(user_id)))

    # ------------------------------------------------------------------ inventory
    def add_user_data(
        self,
        user_id: str,
        data: bytes | str | Mapping[str, Any] | Sequence[int],
        purpose: str,
        category: DataCategory | str,
        *,
        node_id: str | None = None,
    ) -> str:
        """Store personal data of `user_id`, encrypted under their own key; return its id.

        Raises
        ------
        ConfigError
            For a malformed id, data, purpose or category.
        ComplianceError
            With purpose limitation on, if the subject has not consented to `purpose`; with
            data minimisation on, if a dict record holds fields not declared for its
            category in ``GdprConfig.data_schema``. Nothing is stored then.
        """
        user_id = check_user_id(user_id)
        purpose = _check_purpose(purpose)
        if node_id is not None:
            check_id("node_id", node_id)
        try:
            category = DataCategory(category)
        except ValueError:
            known = ", ".join(c.value for c in DataCategory)
            raise ConfigError("category", category, f"a DataCategory ({known})") from None
        payload, fmt, fields = _payload(data)
        subject = self.pseudonym(user_id)
        problem = None
        limited = self.config.enable_purpose_limitation and self.config.enable_consent_management
        if limited and not self.consents.allows(subject, purpose):
            problem = (
                f"Purpose limitation: the subject ({subject}) has not consented to {purpose!r}. "
                "Record their consent for it first (record_consent)."
            )
        elif self.config.enable_data_minimization and fmt == "json":
            declared = self.config.data_schema.get(category.value)
            extra = sorted(set(fields) - set(declared or ()))
            if extra:
                problem = (
                    f"Data minimisation: fields {extra} are not declared for category "
                    f"{category.value!r} (declared: {list(declared or ())}). Drop them, or "
                    "declare them in GdprConfig.data_schema if the purpose needs them."
                )
        if problem is not None:
            self._log(AuditAction.DATA_REFUSED, subject, False, {"purpose": purpose})
            raise ComplianceError(problem)
        record = self.inventory.add(
            user_id,
            subject,
            payload,
            fmt=fmt,
            fields=fields,
            purpose=purpose,
            category=category.value,
            node_id=node_id,
            at=self._now(),
        )
        self._log(
            AuditAction.DATA_ADDED,
            subject,
            details={"purpose": purpose, "category": category.value, "bytes": len(payload)},
        )
        return record.record_id

    def note_node_subjects(self, node_id: str, subject_ids: npt.ArrayLike) -> dict[str, int]:
        """List which subjects' rows `node_id` holds (the engine calls this for each worker).

        Raises
        ------
        ConfigError
            For a malformed `node_id`, or `subject_ids` that is ragged or nested.
        """
        check_id("node_id", node_id)
        try:
            array = np.asarray(subject_ids, dtype=np.str_)
        except (TypeError, ValueError):
            shown = "<a ragged or nested array>"
            raise ConfigError("subject_ids", shown, "a 1-D sequence of subject ids") from None
        ids, counts = np.unique(array, return_counts=True)
        rows = {self.pseudonym(str(s)): int(n) for s, n in zip(ids, counts, strict=True)}
        self.inventory.note_node(node_id, rows, self._now())
        return rows

    # ------------------------------------------------------------------ portability
    def export_user_data(self, user_id: str) -> UserDataExport:
        """Everything held about `user_id`, decrypted for them, as structured JSON (Art. 20).

        Raises
        ------
        ComplianceError
            If data portability is off in the config.
        """
        user_id = check_user_id(user_id)
        if not self.config.enable_data_portability:
            raise ComplianceError("Data portability is off in this GdprConfig.")
        subject = self.pseudonym(user_id)
        user_data = []
        for record in self.inventory.records(subject):
            raw = self.inventory.decrypt(record.record_id)
            value: Any = (
                base64.b64encode(raw).decode()
                if record.format == "bytes"
                else raw.decode()
                if record.format == "text"
                else json.loads(raw)
            )
            user_data.append(
                {
                    "record_id": record.record_id,
                    "purpose": record.purpose,
                    "category": record.category,
                    "format": record.format,
                    "fields": list(record.fields),
                    "node_id": record.node_id,
                    "created_at": record.created_at.isoformat(),
                    "data": value,
                }
            )
        federation = self._federation
        node_data = []
        if federation is not None:
            names = federation.feature_names()
            for node_id, rows in sorted(federation.subject_rows(subject).items()):
                node_data.append(node_rows_json(node_id, rows, names))
        export = UserDataExport(
            subject_id=user_id,
            generated_at=self._now().isoformat(),
            controller=self.config.controller,
            purposes=sorted(self.consents.purposes(subject)),
            consents=[c.to_dict() for c in self.consents.history(subject)],
            user_data=user_data,
            node_data=node_data,
            model_contributions=[
                {"model_id": m, "round_number": r, "node_id": n}
                for m, r, n in self.lineage.contributions(subject)
            ],
            erasure_requests=[r.to_dict() for r in self.erasures.of_subject(subject)],
        )
        self._log(
            AuditAction.DATA_EXPORT,
            subject,
            details={"records": len(user_data), "contributions": len(export.model_contributions)},
        )
        return export

    # ------------------------------------------------------------------ retention
    def enforce_retention(self) -> RetentionReport:
        """Purge personal data older than ``retention_period_days`` (Art. 5(1)(e)); audited.

        Stored records past the period are shredded; rows that nodes collected before the
        cutoff are removed at the nodes (an unreachable node is tried again next time).
        Models are not unlearned: training on the data was lawful while it was held.
        """
        now = self._now()
        cutoff = now - timedelta(days=self.config.retention_period_days)
        records, places = self.inventory.expired(cutoff)
        for _, record_id in records:
            self.inventory.purge_record(record_id)
        federation = self._federation
        purged: dict[str, int] = {}
        for subject, node_id in places:
            if federation is not None and node_id in federation.node_ids():
                if not federation.is_online(node_id):
                    continue
                purged[node_id] = purged.get(node_id, 0) + federation.erase_on_node(
                    node_id, subject
                )
            self.inventory.forget_location(subject, node_id)
        report = RetentionReport(cutoff, len(records), purged)
        if records or places:
            self._log(
                AuditAction.RETENTION_PURGE,
                "inventory",
                details={
                    "records": len(records),
                    "rows": sum(purged.values()),
                    "listings": len(places),
                },
            )
            self.workspace.scrub()
        return report

    # ------------------------------------------------------------------ explanations
    def _explainable(self, model_id: str) -> tuple[Any, Any, tuple[str, ...] | None]:
        if not self.config.enable_explainability:
            raise ComplianceError("Explainability is off in this GdprConfig.")
        federation = self._federation
        if federation is None:
            raise ComplianceError(
                "Explanations of a model need the engine: call engine.attach_gdpr(manager), "
                "or use heliosfl.compliance.explain_prediction(model, params, x)."
            )
        if model_id not in federation.model_ids():
            raise ModelNotFound(model_id, tuple(federation.model_ids()))
        model, params = federation.model_and_params(model_id)
        return model, params, federation.feature_names()

    def explain_prediction(
        self,
        model_id: str,
        x: npt.ArrayLike,
        *,
        feature_names: Sequence[str] | None = None,
        baseline: npt.ArrayLike | None = None,
        target_class: int | None = None,
        method: str = "auto",
    ) -> PredictionExplanation:
        """Explain one prediction of the current model (Art. 13-15, 22); audited.

        Exact per-feature contributions for linear models, integrated gradients for the
        MLP (see :func:`heliosfl.compliance.explain_prediction`). Feature names default to
        those the nodes declared.

        Raises
        ------
        ComplianceError
            If explainability is off, or the manager is not attached to an engine.
        ModelNotFound
            If the engine has no coordinator for `model_id`.
        ConfigError
            For a malformed row, baseline, class or method.
        """
        model, params, names = self._explainable(model_id)
        result = explain_prediction(
            model,
            params,
            x,
            feature_names=feature_names if feature_names is not None else names,
            baseline=baseline,
            target_class=target_class,
            method=method,
        )
        self._log(AuditAction.EXPLANATION, f"model:{model_id}", details={"kind": "prediction"})
        return result

    def feature_importance(
        self,
        model_id: str,
        X: npt.ArrayLike,  # noqa: N803
        y: npt.ArrayLike,
        *,
        feature_names: Sequence[str] | None = None,
        repeats: int = 5,
        seed: int = 0,
        metric: str = "accuracy",
    ) -> GlobalImportance:
        """Global feature importance of the current model by permutation; audited.

        Parameters
        ----------
        model_id : str
            The model.
        X, y : array_like
            Held-out rows to measure on (the controller's, not a node's).
        feature_names : sequence of str, optional
            Defaults to the names the nodes declared.
        repeats : int
            Permutations per feature.
        seed : int
            Seeds the permutations.
        metric : str
            ``"accuracy"`` (drop) or ``"loss"`` (increase).

        Raises
        ------
        ComplianceError
            If explainability is off, or the manager is not attached to an engine.
        """
        model, params, names = self._explainable(model_id)
        result = feature_importance(
            model,
            params,
            X,
            y,
            feature_names=feature_names if feature_names is not None else names,
            repeats=repeats,
            rng=np.random.default_rng(seed),
            metric=metric,
        )
        self._log(AuditAction.EXPLANATION, f"model:{model_id}", details={"kind": "global"})
        return result

    # ------------------------------------------------------------------ Art. 30
    def records_of_processing(self) -> ProcessingRecords:
        """The records of processing activities (Art. 30(1)), from config and activity."""
        federation = self._federation
        return build_records(
            self.config,
            consents=self.consents,
            inventory=self.inventory,
            erasures=self.erasures,
            audit=self.audit,
            nodes=federation.node_ids() if federation is not None else [],
            now=self._now(),
        )
