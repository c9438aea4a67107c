"""Records of processing activities (Art. 30(1)) and the retention report.

The record is generated, not typed in: purposes come from the consent book, categories and
counts from the inventory, recipients from the governed nodes, erasures and exports from
the requests and the audit log, retention and safeguards from the configuration.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from heliosfl.compliance.gdpr_config import TRAINING_PURPOSE, GdprConfig

if TYPE_CHECKING:
    from heliosfl.compliance.audit import AuditLog
    from heliosfl.compliance.consent import ConsentBook
    from heliosfl.compliance.erasure import ErasureBook
    from heliosfl.compliance.inventory import DataInventory

__all__ = ["ProcessingRecords", "RetentionReport", "build_records"]


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What :meth:`GdprComplianceManager.enforce_retention` purged.

    Attributes
    ----------
    cutoff : datetime
        Data collected before this was due for deletion.
    records_purged : int
        Stored records shredded.
    node_rows_purged : dict of str to int
        Rows removed at each node.
    """

    cutoff: datetime
    records_purged: int
    node_rows_purged: dict[str, int]

    @property
    def total(self) -> int:
        """Records and rows purged together."""
        return self.records_purged + sum(self.node_rows_purged.values())


@dataclass(frozen=True, slots=True)
class ProcessingRecords:
    """The Art. 30(1) record of processing activities, as a dict and as text.

    Attributes
    ----------
    sections : dict
        ``controller``, ``purposes``, ``categories_of_data_subjects``,
        ``categories_of_personal_data``, ``recipients``, ``transfers``, ``retention``,
        ``security_measures``, ``activity``, ``generated_at``.
    """

    sections: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values."""
        return dict(self.sections)

    def to_text(self) -> str:
        """The record as plain text, one section per paragraph."""
        lines = ["Records of processing activities (GDPR Art. 30(1))"]
        for key, value in self.sections.items():
            title = key.replace("_", " ").capitalize()
            if isinstance(value, dict):
                lines.append(f"{title}:")
                lines.extend(f"  - {k}: {v}" for k, v in value.items())
            elif isinstance(value, list):
                lines.append(f"{title}:")
                lines.extend(f"  - {v}" for v in value)
            else:
                lines.append(f"{title}: {value}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def build_records(
    config: GdprConfig,
    *,
    consents: ConsentBook,
    inventory: DataInventory,
    erasures: ErasureBook,
    audit: AuditLog,
    nodes: list[str],
    now: datetime,
) -> ProcessingRecords:
    """Build the Art. 30(1) record from the configuration and what was done.

    Returns
    -------
    ProcessingRecords
        The record (its ``generated_at`` is `now`).
    """
    counts = inventory.counts()
    consent_counts = consents.counts()
    actions = Counter(str(entry.action.value) for entry in audit.entries())
    requests = erasures.all()
    purposes = sorted(set(consents.all_purposes()) | set(counts["records_by_purpose"]))  # type: ignore[call-overload]
    categories = sorted(counts["records_by_category"])  # type: ignore[call-overload]
    if nodes and "training_data" not in categories:
        categories.append("training_data")
    measures = [
        "AES-256-GCM encryption of stored records under per-subject keys wrapped by a "
        "key-encryption key kept apart from the data (crypto-shredding on erasure)",
        "HMAC-chained, append-only audit log with an external checkpoint",
        "keyed pseudonyms for subjects in every table, log and message",
        "federated training: rows stay at their nodes; only model updates travel",
        "consent-filtered training and lineage of every round's contributors",
        "erasure by deletion at the nodes and unlearning by rollback and replay",
        "deleted database pages overwritten (SQLite secure_delete) and the WAL truncated",
    ]
    sections: dict[str, Any] = {
        "controller": config.controller,
        "purposes": purposes or [TRAINING_PURPOSE],
        "categories_of_data_subjects": [
            f"data subjects whose rows the {len(nodes)} federated nodes hold"
            if nodes
            else "data subjects of stored records"
        ],
        "categories_of_personal_data": categories,
        "recipients": {
            "nodes": len(nodes),
            "note": "each node processes only its own rows; the coordinator receives updates",
        },
        "transfers": "none outside the federation's nodes",
        "retention": f"{config.retention_period_days} days, enforced by enforce_retention()",
        "security_measures": measures,
        "activity": {
            "subjects_in_inventory": counts["subjects"],
            "consents_granted": consent_counts["grants"],
            "consents_withdrawn": consent_counts["withdrawals"],
            "subjects_consenting_now": consent_counts["subjects_consenting"],
            "erasure_requests": len(requests),
            "erasures_pending": sum(1 for r in requests if not r.is_complete),
            "erasures_overdue": sum(1 for r in requests if not r.is_complete and r.deadline < now),
            "exports": actions.get("data_export", 0),
            "retention_purges": actions.get("retention_purge", 0),
            "data_refused": actions.get("data_refused", 0),
        },
        "generated_at": now.isoformat(),
    }
    return ProcessingRecords(sections)
