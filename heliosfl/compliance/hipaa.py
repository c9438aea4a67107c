"""HIPAA: configuration and the compliance manager the guide uses.

``HipaaComplianceManager(HipaaConfig(...))`` works from its config alone, as in the guide:
with no workspace it keeps everything in memory with an ephemeral key-encryption key
(KEK); with a persistent workspace the KEK is a key file with owner-only permissions in a
key directory apart from the data (``HELIOSFL_KEY_DIR``, default ``~/.heliosfl/keys``),
or comes from ``HELIOSFL_KEK``, a passphrase, or an explicit :class:`KeyEncryptionKey`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy.typing as npt

from heliosfl.compliance.access import (
    AccessController,
    Permission,
    Role,
    Session,
    check_user_id,
)
from heliosfl.compliance.audit import (
    AuditAction,
    AuditLog,
    AuditLogEntry,
    FileCheckpoint,
    MemoryCheckpoint,
)
from heliosfl.compliance.crypto import EncryptedPhi, PhiVault, check_id
from heliosfl.compliance.hipaa_config import (
    HipaaConfig,
    check_workspace,
    default_audit_head,
    default_kek,
)
from heliosfl.compliance.integrity import CheckpointTags
from heliosfl.compliance.keys import KeyEncryptionKey
from heliosfl.compliance.leakage import LeakageReport, gradient_leakage_test
from heliosfl.compliance.phi import PhiFinding, detect_phi_text, scan_node_data
from heliosfl.compliance.report import ComplianceReport
from heliosfl.compliance.safeguards import compliance_checks
from heliosfl.errors import ComplianceError, ConfigError
from heliosfl.events import Event, RoundCompleted, TrainingFinished, TrainingStarted
from heliosfl.store import Workspace

__all__ = ["SYSTEM_USER", "HipaaComplianceManager", "HipaaConfig"]

#: The built-in administrator that acts when the guide's calls name no user.
SYSTEM_USER = "system"


def _phi_bytes(data: object) -> bytes:
    """PHI as bytes: bytes-like data as is, a str as UTF-8; the message never shows it."""
    allowed = "bytes, or a str of Unicode text (encode other values first)"
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError("data", f"<str of length {len(data)}>", allowed) from None
    raise ConfigError("data", f"<{type(data).__name__}>", allowed)


class HipaaComplianceManager:
    """PHI encryption, audit log, access control, PHI detection, leakage test, report.

    Parameters
    ----------
    config : HipaaConfig
        The settings.
    workspace : Workspace or None
        Where encrypted PHI and the audit log live (default: in memory).
    kek : KeyEncryptionKey or None
        The key-encryption key (default: see the module docstring).
    clock : callable or None
        UTC clock for audit times and sessions (tests inject one).
    """

    def __init__(
        self,
        config: HipaaConfig | None = None,
        *,
        workspace: Workspace | None = None,
        kek: KeyEncryptionKey | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = HipaaConfig() if config is None else config
        if not isinstance(self.config, HipaaConfig):
            raise ConfigError("config", config, "a HipaaConfig")
        self.workspace = check_workspace(workspace)
        key_file = None
        if kek is None:
            kek, key_file = default_kek(self.workspace)
        self._kek = kek
        self.key_file = key_file
        clock = clock or (lambda: datetime.now(UTC))
        head = default_audit_head(self.workspace, ".audit-head")
        checkpoint = MemoryCheckpoint() if head is None else FileCheckpoint(head)
        self.vault = PhiVault(self.workspace, kek)
        self._tag_key = self.vault.derived_key("checkpoint-integrity-tags")
        self.checkpoint_tags = CheckpointTags(self.workspace, self._tag_key)
        # The audit key and the pseudonyms come from the vault's own random key (stored
        # wrapped by the KEK and re-wrapped on rotation), so they survive key rotation.
        audit_key = self.vault.derived_key("audit-log-hmac")
        self.audit = AuditLog(
            self.workspace,
            audit_key,
            checkpoint=checkpoint,
            pseudonymize=self.vault.pseudonym,
            clock=clock,
        )
        self.access = AccessController(auto_logoff_secs=self.config.auto_logoff_secs, clock=clock)
        self.access.add_user(SYSTEM_USER, Role.ADMIN)
        self.last_leakage_report: LeakageReport | None = None
        self.rejected_updates = 0
        self._regions: dict[str, str] = {}

    # ------------------------------------------------------------------ helpers
    def _allow(self, user_id: str, permission: Permission, resource: str) -> bool:
        """Check access (if enabled), audit a denial, and return whether it was allowed."""
        if not self.config.enable_access_controls:
            return False
        # Reading PHI needs a live session, so automatic logoff ends access to it.
        decision = self.access.check(
            user_id, permission, require_session=permission is Permission.DECRYPT_PHI
        )
        if not decision.allowed:
            self._log(
                user_id,
                AuditAction.ACCESS_DENIED,
                resource,
                False,
                {"permission": permission.value, "reason": decision.reason},
            )
            raise ComplianceError(
                f"Access denied: user {user_id!r} may not {permission.value.replace('_', ' ')} "
                f"({decision.reason})."
            )
        return decision.break_glass

    def _log(
        self,
        user_id: str,
        action: AuditAction,
        resource: str,
        success: bool = True,
        details: Mapping[str, Any] | None = None,
    ) -> AuditLogEntry | None:
        if not self.config.enable_audit_logging:
            return None
        return self.audit.append(user_id, action, resource, success, dict(details or {}))

    def _record(self, record_id: str, name: str = "record_id") -> str:
        return "record:" + self.vault.pseudonym(check_id(name, record_id))

    # ------------------------------------------------------------------ users
    def add_user(self, user_id: str, role: Role | str, *, by: str = SYSTEM_USER) -> None:
        """Add a user (an administrator's act, audited).

        Raises
        ------
        ComplianceError
            If ``by`` may not manage users.
        ConfigError
            If the id is taken or the role unknown.
        """
        self._allow(by, Permission.MANAGE_USERS, "users")
        self.access.add_user(user_id, role)
        self._log(by, AuditAction.CONFIG_CHANGE, f"user:{user_id}", True, {"role": str(role)})

    def login(self, user_id: str) -> Session:
        """Open a session for ``user_id`` (audited; reading PHI needs one).

        Raises
        ------
        ConfigError
            For a user id that is not a str (not audited) or an unknown user (audited).
        """
        check_user_id(user_id)
        try:
            session = self.access.login(user_id)
        except ConfigError:
            self._log(user_id, AuditAction.LOGIN, f"user:{user_id}", False, {})
            raise
        self._log(user_id, AuditAction.LOGIN, f"user:{user_id}", True, {})
        return session

    def logout(self, session: Session) -> None:
        """End a session (audited)."""
        self.access.logout(session.token)
        self._log(session.user_id, AuditAction.LOGOUT, f"user:{session.user_id}", True, {})

    def break_glass(self, user_id: str, reason: str, *, duration_secs: float = 3600.0) -> datetime:
        """Grant emergency PHI access until the returned time (flagged and audited).

        The justification must not contain PHI (it is checked; the log keeps only its
        length, never its text).

        Raises
        ------
        ConfigError
            For an unknown user, an empty reason, a reason that contains PHI, or a
            duration outside (0, 24 h].
        """
        if isinstance(reason, str) and detect_phi_text(reason):
            raise ConfigError(
                "reason",
                f"<text of {len(reason)} characters containing PHI>",
                "a justification without patient identifiers",
            )
        until = self.access.break_glass(user_id, reason, duration_secs=duration_secs)
        self._log(
            user_id,
            AuditAction.BREAK_GLASS,
            f"user:{user_id}",
            True,
            {"until": until.isoformat(), "reason_length": len(reason)},
        )
        return until

    # ------------------------------------------------------------------ PHI at rest
    def encrypt_phi(
        self,
        data: bytes | str,
        record_id: str,
        *,
        subject_id: str | None = None,
        user_id: str = SYSTEM_USER,
    ) -> EncryptedPhi:
        """Encrypt PHI with AES-256-GCM under a fresh data key (see :class:`PhiVault`).

        Raises
        ------
        ConfigError
            If ``data`` is not bytes or encodable text, or an id is malformed (the message
            describes the value by type and length only).
        ComplianceError
            If the user may not encrypt PHI (audited).
        """
        payload = _phi_bytes(data)
        resource = self._record(record_id)
        if subject_id is not None:
            check_id("subject_id", subject_id)
        flagged = self._allow(user_id, Permission.ENCRYPT_PHI, resource)
        encrypted = self.vault.encrypt(payload, record_id, subject_id=subject_id)
        self._log(
            user_id,
            AuditAction.PHI_ENCRYPT,
            self._record(record_id),
            True,
            {"break_glass": flagged, "version": encrypted.version},
        )
        return encrypted

    def decrypt_phi(self, record: EncryptedPhi | str, *, user_id: str) -> bytes:
        """Decrypt a record for an authorised user (every call audited, denials too).

        Raises
        ------
        ConfigError
            If ``record`` is neither an :class:`EncryptedPhi` nor a record id.
        ComplianceError
            If the user may not decrypt PHI, or the record was tampered with or shredded.
        """
        given: object = record  # callers may pass anything
        if not isinstance(given, EncryptedPhi | str):
            allowed = "an EncryptedPhi or a record id (str)"
            raise ConfigError("record", f"<{type(given).__name__}>", allowed)
        record_id = record if isinstance(record, str) else record.record_id
        flagged = self._allow(user_id, Permission.DECRYPT_PHI, self._record(record_id))
        try:
            plain = self.vault.decrypt(record)
        except ComplianceError:
            self._log(
                user_id,
                AuditAction.PHI_DECRYPT,
                self._record(record_id),
                False,
                {"reason": "decryption refused (tampered, shredded or unknown record)"},
            )
            raise
        self._log(
            user_id,
            AuditAction.PHI_DECRYPT,
            self._record(record_id),
            True,
            {"break_glass": flagged},
        )
        return plain

    def rotate_keys(
        self, new_kek: KeyEncryptionKey | None = None, *, user_id: str = SYSTEM_USER
    ) -> int:
        """Re-wrap every subject key under a new KEK (no record is re-encrypted).

        With an in-memory workspace a new ephemeral KEK is made if none is given; a
        persistent workspace needs the new KEK (e.g. ``KeyEncryptionKey.create_file``),
        which the caller keeps; the old one can then be destroyed.

        Raises
        ------
        ConfigError
            For a persistent workspace without ``new_kek``.
        """
        self._allow(user_id, Permission.ROTATE_KEYS, "keys")
        if new_kek is None:
            if self.workspace.is_persistent:
                raise ConfigError(
                    "new_kek",
                    None,
                    "a KeyEncryptionKey kept outside the data for a persistent workspace",
                    "Create one with KeyEncryptionKey.create_file(path) and keep that file.",
                )
            new_kek = KeyEncryptionKey.ephemeral()
        count = self.vault.rotate(new_kek)
        self._kek = new_kek
        self._log(
            user_id,
            AuditAction.KEY_ROTATION,
            "keys",
            True,
            {"subject_keys": count, "new_key_id": new_kek.key_id},
        )
        return count

    def shred_subject(
        self,
        subject_id: str,
        *,
        rotate_to: KeyEncryptionKey | None = None,
        user_id: str = SYSTEM_USER,
    ) -> int:
        """Crypto-shred a subject: destroy their key, so their PHI cannot be decrypted.

        Copies of the workspace taken before the shred still hold the subject's wrapped
        key; pass ``rotate_to`` (and destroy the old KEK) to make those unreadable too.
        """
        resource = "subject:" + self.vault.pseudonym(subject_id)
        self._allow(user_id, Permission.SHRED_PHI, resource)
        count = self.vault.shred(subject_id, rotate_to=rotate_to)
        if rotate_to is not None:
            self._kek = rotate_to
        self._log(user_id, AuditAction.CRYPTO_SHRED, resource, True, {"records": count})
        return count

    # ------------------------------------------------------------------ audit
    def log_audit_event(
        self,
        user_id: str,
        action: AuditAction,
        resource_id: str,
        success: bool = True,
        details: Mapping[str, Any] | None = None,
        *,
        pseudonymize: bool = True,
    ) -> AuditLogEntry | None:
        """Append an event to the audit log (the guide's ``log_audit_event``).

        Resource ids such as ``"patient_12345"`` identify people, so by default they are
        stored as keyed pseudonyms (``"record:<hmac>"``); ``vault.pseudonym(id)`` computes
        the same pseudonym to find a resource's entries. Pass ``pseudonymize=False`` only
        for ids that are not PHI.

        Raises
        ------
        ConfigError
            For an unknown action, ``details`` that is not a mapping, or a malformed id.
        """
        try:
            member = AuditAction(action)
        except (TypeError, ValueError):
            shown = action if isinstance(action, str) else f"<{type(action).__name__}>"
            allowed = "an AuditAction (" + ", ".join(a.value for a in AuditAction) + ")"
            raise ConfigError("action", shown, allowed) from None
        given: object = details  # callers may pass anything
        if given is not None and not isinstance(given, Mapping):
            allowed = "a dict of str keys to JSON scalar values, or None"
            raise ConfigError("details", f"<{type(given).__name__}>", allowed)
        resource = self._record(resource_id, "resource_id") if pseudonymize else resource_id
        return self._log(user_id, member, resource, success, details)

    def export_audit_log(
        self, start: datetime, end: datetime, *, user_id: str = SYSTEM_USER
    ) -> list[AuditLogEntry]:
        """The audit entries between ``start`` and ``end`` (the export itself is audited)."""
        self._allow(user_id, Permission.EXPORT_AUDIT, "audit-log")
        entries = self.audit.entries(start, end)
        self._log(user_id, AuditAction.AUDIT_EXPORT, "audit-log", True, {"entries": len(entries)})
        return entries

    def export_audit_json(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        user_id: str = SYSTEM_USER,
    ) -> dict[str, Any]:
        """A self-verifying JSON export (check it with ``compliance.verify_export``)."""
        self._allow(user_id, Permission.EXPORT_AUDIT, "audit-log")
        exported = self.audit.export(start, end)
        self._log(user_id, AuditAction.AUDIT_EXPORT, "audit-log", True, {"format": "json"})
        return exported

    def verify_audit_log(self) -> Any:
        """Verify the hash chain and its checkpoint; the result names the first bad entry."""
        return self.audit.verify()

    # ------------------------------------------------------------------ PHI in data and gradients
    def detect_phi(self, text: str) -> list[PhiFinding]:
        """Safe Harbor identifiers that patterns find in ``text`` (masked evidence)."""
        return detect_phi_text(text)

    def admit_node(
        self,
        node_id: str,
        X: npt.ArrayLike | None,  # noqa: N803 - the data matrix, as in NodeData
        *,
        region: str | None,
        feature_names: Sequence[str] | None = None,
        declared_phi: Sequence[Any] = (),
    ) -> None:
        """Refuse a node whose region breaks data residency or whose data carries undeclared PHI.

        Raises
        ------
        ConfigError
            For a region that is not a str, or ``X``, ``feature_names`` or
            ``declared_phi`` of the wrong kind (see :func:`scan_node_data`).
        ComplianceError
            Naming the node and the reason (never the PHI itself).
        """
        given: object = region  # callers may pass anything
        if given is not None and not isinstance(given, str):
            raise ConfigError("region", f"<{type(given).__name__}>", "a region code (str) or None")
        wanted = self.config.data_residency.upper()
        if region is None or region.upper() != wanted:
            self._log(
                SYSTEM_USER,
                AuditAction.ACCESS_DENIED,
                f"node:{node_id}",
                False,
                {"reason": "data residency", "region": str(region)},
            )
            raise ComplianceError(
                f"Node {node_id!r} is in region {region!r}; HIPAA data_residency requires "
                f"{wanted!r}. Register the node with region={wanted!r} or keep PHI nodes "
                "in that region."
            )
        self._regions[node_id] = wanted
        if self.config.auto_detect_phi and X is not None:
            findings = scan_node_data(X, feature_names=feature_names, declared=declared_phi)
            if findings:
                kinds = sorted({str(f.kind) for f in findings})
                self._log(
                    SYSTEM_USER,
                    AuditAction.ACCESS_DENIED,
                    f"node:{node_id}",
                    False,
                    {"reason": "undeclared PHI", "kinds": ",".join(kinds)},
                )
                raise ComplianceError(
                    f"Node {node_id!r} holds data that looks like undeclared PHI "
                    f"({', '.join(kinds)}). Remove those columns, or declare them with "
                    "declared_phi=... if they are meant to be there."
                )

    def verify_gradient_privacy(
        self,
        gradients: npt.ArrayLike,
        *,
        model: Any = None,
        inputs: npt.ArrayLike | None = None,
    ) -> bool:
        """Run the exact-reconstruction attacks on a gradient or update.

        Returns True when they found no exact single-example reconstruction (and no match
        with ``inputs``); that is evidence, not a privacy guarantee (see
        :func:`~heliosfl.compliance.gradient_leakage_test`).

        The full report (attacks run, evidence) is kept in :attr:`last_leakage_report`.
        """
        report = gradient_leakage_test(gradients, model=model, inputs=inputs)
        self.last_leakage_report = report
        self._log(
            SYSTEM_USER,
            AuditAction.COMPLIANCE_CHECK,
            "gradient-leakage-test",
            report.safe,
            {"attacks": ",".join(report.attacks), "safe": report.safe},
        )
        return report.safe

    # ------------------------------------------------------------------ engine hooks
    def track_checkpoints(self, workspace: Workspace) -> None:
        """Tag (and verify) the checkpoints kept in ``workspace`` (the engine's).

        Checkpoints already there are tagged now; the engine tags each new one in the
        transaction that commits it (:meth:`CheckpointTags.tag_write`).
        """
        self.checkpoint_tags = CheckpointTags(workspace, self._tag_key)
        if self.config.enable_integrity_checks:
            for model_id in workspace.list_models():
                self.checkpoint_tags.tag_all(model_id)

    def reconcile_rounds(self, model_id: str, committed: Sequence[int]) -> list[int]:
        """Audit committed rounds the log lacks (a crash between commit and audit append).

        Returns
        -------
        list of int
            The rounds now audited with ``"reconciled": True``.
        """
        resource = f"model:{model_id}"
        audited = {
            int(entry.details.get("round", -1))  # type: ignore[arg-type]
            for entry in self.audit.entries()
            if entry.action is AuditAction.ROUND_COMPLETED and entry.resource == resource
        }
        missing = [n for n in committed if n not in audited]
        for number in missing:
            self._log(
                SYSTEM_USER,
                AuditAction.ROUND_COMPLETED,
                resource,
                True,
                {"round": number, "reconciled": True},
            )
        return missing

    def update_guard(
        self,
        delta: npt.ArrayLike,
        *,
        model: Any,
        inputs: npt.ArrayLike | None,
        node_id: str,
    ) -> str | None:
        """Check one node's update before aggregation (the guide's best practice).

        Runs the exact-reconstruction attack on the update with the node's own rows as
        the inputs to compare against. Returns ``None`` if it is safe, else the reason it
        is rejected (also audited as ``update_rejected``); the evidence holds counts and
        errors only, never data.
        """
        report = gradient_leakage_test(delta, model=model, inputs=inputs, update=True)
        if report.safe:
            return None
        self.rejected_updates += 1
        self._log(
            SYSTEM_USER,
            AuditAction.UPDATE_REJECTED,
            f"node:{node_id}",
            False,
            {"attacks": ",".join(report.attacks), "matched_inputs": report.matched_inputs},
        )
        return "HIPAA gradient-leakage test: the update reveals a node's input"

    def audit_event(self, event: Event) -> None:
        """Record a training event in the audit log (an engine event listener)."""
        if isinstance(event, TrainingStarted):
            self._log(
                SYSTEM_USER,
                AuditAction.TRAINING_STARTED,
                f"model:{event.model_id}",
                True,
                {"start_round": event.start_round, "max_rounds": event.max_rounds},
            )
        elif isinstance(event, RoundCompleted):
            record = event.record
            self._log(
                SYSTEM_USER,
                AuditAction.ROUND_COMPLETED,
                f"model:{event.model_id}",
                True,
                {
                    "round": record.round_number,
                    "participants": len(record.participating_nodes),
                    "failed": len(record.failed_nodes),
                },
            )
        elif isinstance(event, TrainingFinished):
            self._log(
                SYSTEM_USER,
                AuditAction.TRAINING_FINISHED,
                f"model:{event.model_id}",
                event.result.error is None,
                {
                    "stop_reason": event.result.stop_reason.value,
                    "rounds": event.result.rounds_completed,
                },
            )

    # ------------------------------------------------------------------ report
    def verify_compliance(self) -> ComplianceReport:
        """One check per HIPAA technical safeguard (45 CFR 164.312 (a)-(e)) and setting."""
        report = ComplianceReport(checks=tuple(compliance_checks(self)))
        self._log(
            SYSTEM_USER,
            AuditAction.COMPLIANCE_CHECK,
            "compliance-report",
            report.overall_compliant,
            {"failures": len(report.failures)},
        )
        return report

    @property
    def kek_id(self) -> str:
        """The id (not the value) of the key-encryption key in use."""
        return self._kek.key_id
