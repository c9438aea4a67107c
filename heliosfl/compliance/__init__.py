"""Compliance: HIPAA and GDPR.

HIPAA: encrypted PHI, audit log, access control, PHI detection, leakage test, and the
compliance report (45 CFR 164.312). GDPR: consent, the encrypted inventory, erasure with
unlearning, portability, retention, explanations and the records of processing.

The guide's entry points are :class:`HipaaConfig`, :class:`HipaaComplianceManager`,
:class:`GdprConfig`, :class:`GdprComplianceManager` and :class:`DataCategory`;
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
from heliosfl.compliance.consent import ConsentAction, ConsentRecord
from heliosfl.compliance.crypto import EncryptedPhi, PhiVault
from heliosfl.compliance.erasure import (
    DeletionRecord,
    DeletionVerification,
    ModelUnlearning,
    membership_score,
)
from heliosfl.compliance.explain import (
    FeatureContribution,
    PredictionExplanation,
    explain_prediction,
)
from heliosfl.compliance.gdpr import GdprComplianceManager
from heliosfl.compliance.gdpr_config import TRAINING_PURPOSE, DataCategory, GdprConfig
from heliosfl.compliance.hipaa import SYSTEM_USER, HipaaComplianceManager, HipaaConfig
from heliosfl.compliance.importance import FeatureImportance, GlobalImportance, feature_importance
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
from heliosfl.compliance.portability import EXPORT_SCHEMA, UserDataExport
from heliosfl.compliance.processing import ProcessingRecords, RetentionReport
from heliosfl.compliance.report import CheckStatus, ComplianceCheck, ComplianceReport

__all__ = [
    "EXPORT_SCHEMA",
    "LIMITATIONS",
    "SYSTEM_USER",
    "TRAINING_PURPOSE",
    "AccessController",
    "AuditAction",
    "AuditLog",
    "AuditLogEntry",
    "CheckStatus",
    "ComplianceCheck",
    "ComplianceReport",
    "ConsentAction",
    "ConsentRecord",
    "DataCategory",
    "Decision",
    "DeletionRecord",
    "DeletionVerification",
    "EncryptedPhi",
    "FeatureContribution",
    "FeatureImportance",
    "FileCheckpoint",
    "GdprComplianceManager",
    "GdprConfig",
    "GlobalImportance",
    "HipaaComplianceManager",
    "HipaaConfig",
    "KeyEncryptionKey",
    "LeakageReport",
    "MemoryCheckpoint",
    "ModelUnlearning",
    "Permission",
    "PhiFinding",
    "PhiKind",
    "PhiVault",
    "PredictionExplanation",
    "ProcessingRecords",
    "RetentionReport",
    "Role",
    "UserDataExport",
    "VerificationResult",
    "check_key_size",
    "detect_phi_table",
    "detect_phi_text",
    "explain_prediction",
    "feature_importance",
    "gradient_leakage_test",
    "membership_score",
    "safe_zip3",
    "scan_node_data",
    "verify_export",
]
