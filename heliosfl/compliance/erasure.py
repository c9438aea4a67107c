"""Erasure requests (Art. 17): their records, deadlines, and the membership-inference check.

An erasure is tracked from receipt against the one-month deadline of Art. 12(3). Its
:class:`DeletionRecord` says where the subject's rows were removed, which nodes are still
pending (offline), how many inventory records and keys went, and how each model was
unlearned (rollback round, rounds replayed, privacy charged). The records name the subject
only by pseudonym.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.store import Workspace

__all__ = [
    "DeletionRecord",
    "DeletionVerification",
    "ErasureBook",
    "ModelUnlearning",
    "membership_score",
]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS gdpr_erasures (request_id TEXT PRIMARY KEY, subject TEXT NOT"
    " NULL, received_at TEXT NOT NULL, deadline TEXT NOT NULL, status TEXT NOT NULL,"
    " completed_at TEXT, record TEXT NOT NULL)"
)


def membership_score(member_losses: npt.ArrayLike, reference_losses: npt.ArrayLike) -> float | None:
    """How much a model's loss on a subject's rows says they were trained on (0 to 1).

    The loss-threshold membership-inference attack (Yeom et al. 2018): training rows tend
    to have lower loss than unseen ones. The score is the probability that a random
    non-member row has a higher loss than the subject's mean loss (ties count half), i.e.
    the attack's AUC for this one subject: about 0.5 means the subject looks like any
    unseen row, near 1 that they look like training data. One subject's score is a noisy
    indicator, not a proof either way.

    Parameters
    ----------
    member_losses : array_like
        Per-row losses of the subject's rows.
    reference_losses : array_like
        Per-row losses of rows known not to be in training (e.g. held-out data).

    Returns
    -------
    float or None
        The score, or ``None`` if either side is empty.

    References
    ----------
    Yeom, Giacomelli, Fredrikson, Jha. "Privacy Risk in Machine Learning: Analyzing the
    Connection to Overfitting." IEEE CSF 2018.
    """
    members = np.asarray(member_losses, dtype=np.float64).ravel()
    reference = np.asarray(reference_losses, dtype=np.float64).ravel()
    if members.size == 0 or reference.size == 0:
        return None
    threshold = float(members.mean())
    above = float(np.count_nonzero(reference > threshold))
    ties = float(np.count_nonzero(reference == threshold))
    return (above + 0.5 * ties) / reference.size


@dataclass(frozen=True, slots=True)
class ModelUnlearning:
    """How one model was unlearned for an erasure.

    Attributes
    ----------
    model_id : str
        The model.
    first_contribution : int
        The first round the subject's rows contributed to.
    rollback_round : int
        The checkpoint the model went back to (``first_contribution - 1``).
    target_round : int
        The last round before the erasure; the replay aims to reach it again.
    rounds_replayed : int
        Rounds re-run without the subject (the model is now at ``rollback_round +
        rounds_replayed``).
    stopped_early : str or None
        Why the replay stopped before `target_round` (privacy budget, quorum), if it did.
    epsilon_charged : float
        Privacy spent by the replayed rounds (0 without differential privacy).
    membership_before, membership_after : float or None
        :func:`membership_score` of the subject's rows under the model before the erasure
        and after unlearning (``None`` without reference data).
    """

    model_id: str
    first_contribution: int
    rollback_round: int
    target_round: int
    rounds_replayed: int
    stopped_early: str | None = None
    epsilon_charged: float = 0.0
    membership_before: float | None = None
    membership_after: float | None = None


@dataclass(frozen=True, slots=True)
class DeletionRecord:
    """The outcome of an erasure request (the guide's ``deletion``).

    Attributes
    ----------
    request_id : str
        Random id of the request.
    subject : str
        The subject's pseudonym.
    received_at, deadline : datetime
        When the request arrived, and when it is due (one month later by default).
    status : str
        ``"completed"``; ``"partial"`` while nodes are offline; ``"in_progress"`` while
        it runs (found after a crash, it is finished by
        :meth:`GdprComplianceManager.retry_deletion`).
    deleted_from_nodes : tuple of str
        Nodes where the subject's rows are gone: live nodes that confirmed (holding none
        counts), and nodes known only to the inventory (see `inventory_only_nodes`).
    pending_nodes : tuple of str
        Nodes that could not be reached.
    rows_removed : dict of str to int
        Rows (training and validation) removed at each node.
    records_removed : int
        Inventory records shredded and dropped.
    key_shredded : bool
        Whether the subject's key was shredded (False if they had no stored records).
    unlearning : tuple of ModelUnlearning
        One per model the subject had contributed to.
    completed_at : datetime or None
        When the last node confirmed.
    inventory_only_nodes : tuple of str
        Nodes of `deleted_from_nodes` with no worker in a governed engine (or no engine
        attached): only the manager's listing of them was erased; no node confirmed.
    """

    request_id: str
    subject: str
    received_at: datetime
    deadline: datetime
    status: str
    deleted_from_nodes: tuple[str, ...]
    pending_nodes: tuple[str, ...]
    rows_removed: dict[str, int]
    records_removed: int
    key_shredded: bool
    unlearning: tuple[ModelUnlearning, ...] = ()
    completed_at: datetime | None = None
    inventory_only_nodes: tuple[str, ...] = ()

    @property
    def is_complete(self) -> bool:
        """True once every node confirmed."""
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as ISO-8601)."""
        data = asdict(self)
        for key in ("received_at", "deadline", "completed_at"):
            value = getattr(self, key)
            data[key] = None if value is None else value.isoformat()
        data["deleted_from_nodes"] = list(self.deleted_from_nodes)
        data["pending_nodes"] = list(self.pending_nodes)
        data["inventory_only_nodes"] = list(self.inventory_only_nodes)
        data["unlearning"] = [asdict(u) for u in self.unlearning]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeletionRecord:
        """Read back :meth:`to_dict` output."""
        values = dict(data)
        for key in ("received_at", "deadline", "completed_at"):
            if values.get(key) is not None:
                values[key] = datetime.fromisoformat(values[key])
        values["deleted_from_nodes"] = tuple(values["deleted_from_nodes"])
        values["pending_nodes"] = tuple(values["pending_nodes"])
        values["inventory_only_nodes"] = tuple(values.get("inventory_only_nodes", ()))
        values["unlearning"] = tuple(ModelUnlearning(**u) for u in values["unlearning"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class DeletionVerification:
    """The result of :meth:`GdprComplianceManager.verify_deletion`; true when all checks pass.

    Attributes
    ----------
    verified : bool
        Every check passed.
    checks : dict of str to bool
        ``erasure_requested``, ``all_nodes_confirmed``, ``no_rows_on_nodes``,
        ``no_inventory_records``, ``key_shredded_or_absent``, ``no_locations``,
        ``lineage_excludes_subject``, ``lineage_covers_history``.
    problems : tuple of str
        What failed, in words.
    membership : dict of str to tuple
        Model id to (score before, score after) from the deletion record.
    """

    verified: bool
    checks: dict[str, bool]
    problems: tuple[str, ...] = ()
    membership: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.verified


class ErasureBook:
    """Erasure requests kept in a workspace, with their deadlines."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        with workspace.transaction() as conn:
            conn.execute(_SCHEMA)

    def save(self, record: DeletionRecord) -> None:
        """Insert or update a request's record."""
        with self._workspace.transaction() as conn:
            conn.execute(
                "INSERT INTO gdpr_erasures VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id)"
                " DO UPDATE SET status = excluded.status, completed_at = excluded.completed_at,"
                " record = excluded.record",
                (
                    record.request_id,
                    record.subject,
                    record.received_at.isoformat(),
                    record.deadline.isoformat(),
                    record.status,
                    None if record.completed_at is None else record.completed_at.isoformat(),
                    json.dumps(record.to_dict()),
                ),
            )

    def _select(self, where: str, args: Sequence[object]) -> list[DeletionRecord]:
        with self._workspace.reading() as conn:
            rows = conn.execute(
                f"SELECT record FROM gdpr_erasures WHERE {where} ORDER BY received_at",  # noqa: S608
                tuple(args),
            ).fetchall()
        return [DeletionRecord.from_dict(json.loads(row[0])) for row in rows]

    def of_subject(self, subject: str) -> list[DeletionRecord]:
        """Every request of `subject` (a pseudonym), oldest first."""
        return self._select("subject = ?", (subject,))

    def pending(self) -> list[DeletionRecord]:
        """Requests not completed yet."""
        return self._select("status != 'completed'", ())

    def overdue(self, now: datetime) -> list[DeletionRecord]:
        """Pending requests past their deadline at `now`."""
        return [r for r in self.pending() if r.deadline < now]

    def all(self) -> list[DeletionRecord]:
        """Every request, oldest first."""
        return self._select("1 = 1", ())

    @staticmethod
    def deadline(received_at: datetime, days: int) -> datetime:
        """When a request received at `received_at` is due."""
        return received_at + timedelta(days=days)
