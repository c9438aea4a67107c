"""HIPAA compliance: encrypted PHI, audit log, access control, PHI detection, leakage test.

Also the compliance report (45 CFR 164.312).

The guide's entry points are :class:`HipaaConfig` and :class:`HipaaComplianceManager`;
the parts are usable on their own (:class:`PhiVault`, :class:`AuditLog`,
:class:`AccessController`, :func:`detect_phi_text`, :func:`gradient_leakage_test`).
"""

from heliosfl.compliance.access import AccessController, Decision, Permission, Role
from heliosfl.compliance.audit import (
    AuditAction,
    AuditLog,
    AuditLogEntry,
    FileCheckpoint,
    MemoryCheckpoint,
    VerificationResult,
    verify_export,
)
from heliosfl.compliance.crypto import EncryptedPhi, PhiVault
from heliosfl.compliance.hipaa import SYSTEM_USER, HipaaComplianceManager, HipaaConfig
from heliosfl.compliance.keys import KeyEncryptionKey, check_key_size
from heliosfl.compliance.leakage import LeakageReport, gradient_leakage_test
from heliosfl.compliance.phi import (
    LIMITATIONS,
    PhiFinding,
    PhiKind,
    detect_phi_table,
    detect_phi_text,
    safe_zip3,
    scan_node_data,
)
from heliosfl.compliance.report import CheckStatus, ComplianceCheck, ComplianceReport

__all__ = [
    "LIMITATIONS",
    "SYSTEM_USER",
    "AccessController",
    "AuditAction",
    "AuditLog",
    "AuditLogEntry",
    "CheckStatus",
    "ComplianceCheck",
    "ComplianceReport",
    "Decision",
    "EncryptedPhi",
    "FileCheckpoint",
    "HipaaComplianceManager",
    "HipaaConfig",
    "KeyEncryptionKey",
    "LeakageReport",
    "MemoryCheckpoint",
    "Permission",
    "PhiFinding",
    "PhiKind",
    "PhiVault",
    "Role",
    "VerificationResult",
    "check_key_size",
    "detect_phi_table",
    "detect_phi_text",
    "gradient_leakage_test",
    "safe_zip3",
    "scan_node_data",
    "verify_export",
]
