"""The checks behind ``verify_compliance()``: 45 CFR 164.312 (a)-(e) and the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from heliosfl.compliance.report import CheckStatus, ComplianceCheck

if TYPE_CHECKING:
    from heliosfl.compliance.hipaa import HipaaComplianceManager

__all__ = ["compliance_checks"]


def compliance_checks(manager: HipaaComplianceManager) -> list[ComplianceCheck]:
    """Evaluate every technical safeguard against the manager's configuration and state.

    Returns
    -------
    list of ComplianceCheck
        One per safeguard or setting, with evidence and, where not met, a remedy.
    """
    config = manager.config
    checks: list[ComplianceCheck] = []
    access_on = config.enable_access_controls
    checks.append(
        ComplianceCheck(
            "164.312(a)(2)(i) Unique user identification",
            CheckStatus.PASS if access_on else CheckStatus.FAIL,
            f"{len(manager.access.users)} users, each with a unique id and one role; "
            "deny-by-default permissions"
            if access_on
            else "access controls are disabled",
            "Set enable_access_controls=True.",
        )
    )
    checks.append(
        ComplianceCheck(
            "164.312(a)(2)(ii) Emergency access procedure",
            CheckStatus.PASS if access_on else CheckStatus.FAIL,
            "time-limited break-glass access, flagged in every decision and audited",
            "Set enable_access_controls=True.",
        )
    )
    logoff = manager.access.auto_logoff.total_seconds()
    checks.append(
        ComplianceCheck(
            "164.312(a)(2)(iii) Automatic logoff",
            CheckStatus.PASS if logoff <= 900 else CheckStatus.WARN,
            f"idle sessions end after {logoff:g} s",
            "Lower auto_logoff_secs to 900 s or less.",
        )
    )
    at_rest = config.encrypt_phi_at_rest and config.min_key_size_bits >= 256
    checks.append(
        ComplianceCheck(
            "164.312(a)(2)(iv) Encryption and decryption",
            CheckStatus.PASS if at_rest else CheckStatus.FAIL,
            "PHI stored only as AES-256-GCM ciphertext under per-record data keys wrapped by "
            f"per-subject keys under the key-encryption key {manager.kek_id}",
            "Set encrypt_phi_at_rest=True.",
        )
    )
    if config.enable_audit_logging:
        result = manager.audit.verify()
        checks.append(
            ComplianceCheck(
                "164.312(b) Audit controls",
                CheckStatus.PASS if result.ok else CheckStatus.FAIL,
                f"HMAC-SHA256 hash-chained audit log, {result.entries_checked} entries: "
                + ("chain and checkpoint verify" if result.ok else result.message),
                "Investigate the tampering; restore the log from a verified export.",
            )
        )
    else:
        checks.append(
            ComplianceCheck(
                "164.312(b) Audit controls",
                CheckStatus.FAIL,
                "audit logging is disabled",
                "Set enable_audit_logging=True.",
            )
        )
    if config.enable_integrity_checks:
        verified, bad = manager.checkpoint_tags.verify()
        checks.append(
            ComplianceCheck(
                "164.312(c)(1) Integrity",
                CheckStatus.PASS if bad is None else CheckStatus.FAIL,
                "PHI records are authenticated (AES-GCM binds record id and version) and "
                f"verified on every read; {verified} model checkpoints carry HMAC tags"
                + (
                    " that verify"
                    if bad is None
                    else f"; checkpoint {bad[1]} of model {bad[0]!r} does not match"
                ),
                "Restore the modified checkpoint from a trusted copy.",
            )
        )
    else:
        checks.append(
            ComplianceCheck(
                "164.312(c)(1) Integrity",
                CheckStatus.FAIL,
                "integrity checks are disabled",
                "Set enable_integrity_checks=True.",
            )
        )
    checks.append(
        ComplianceCheck(
            "164.312(d) Person or entity authentication",
            CheckStatus.WARN,
            "heliosfl identifies users by id and session; verifying who a person is "
            "(passwords, single sign-on) is the host application's responsibility",
            "Authenticate users in the host application before creating their sessions.",
        )
    )
    checks.append(
        ComplianceCheck(
            "164.312(e)(1) Transmission security",
            CheckStatus.NOT_APPLICABLE if config.encrypt_phi_in_transit else CheckStatus.FAIL,
            "this simulation transmits no PHI between machines (nodes run in one process; "
            "only model updates leave a node)"
            if config.encrypt_phi_in_transit
            else "encrypt_phi_in_transit is disabled",
            "Use TLS between real nodes; set encrypt_phi_in_transit=True.",
        )
    )
    checks.append(
        ComplianceCheck(
            "Configuration: key size",
            CheckStatus.PASS,
            f"min_key_size_bits={config.min_key_size_bits} (AES-256)",
        )
    )
    checks.append(
        ComplianceCheck(
            "Configuration: data residency",
            CheckStatus.PASS,
            f"PHI nodes must be in {config.data_residency.upper()}; nodes elsewhere are refused",
        )
    )
    checks.append(
        ComplianceCheck(
            "Configuration: PHI detection",
            CheckStatus.PASS if config.auto_detect_phi else CheckStatus.WARN,
            "node data is scanned for undeclared Safe Harbor identifiers before training"
            if config.auto_detect_phi
            else "automatic PHI detection is off",
            "Set auto_detect_phi=True.",
        )
    )
    return checks
