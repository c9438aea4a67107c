"""Lineage: which subjects' rows contributed to which round of which model, through which node.

Written in the transaction that commits the round (``Workspace.commit_round(...,
extra_writes=...)``), so a committed round always has its lineage. A node's subject set
rarely changes between rounds, so sets are stored once (keyed by the SHA-256 of their sorted
pseudonyms) and each round row points to one: storage grows with rounds x nodes, not
rounds x subjects. Subjects appear only as pseudonyms.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Mapping

from heliosfl.store import Workspace

__all__ = ["Lineage"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS gdpr_lineage (model_id TEXT NOT NULL, round_number INTEGER NOT"
    " NULL, node_id TEXT NOT NULL, set_id TEXT NOT NULL, rows INTEGER NOT NULL, PRIMARY KEY"
    " (model_id, round_number, node_id))",
    "CREATE INDEX IF NOT EXISTS gdpr_lineage_by_set ON gdpr_lineage (set_id)",
    "CREATE TABLE IF NOT EXISTS gdpr_subject_sets (set_id TEXT NOT NULL, subject TEXT NOT NULL,"
    " PRIMARY KEY (set_id, subject))",
    "CREATE INDEX IF NOT EXISTS gdpr_subject_sets_by_subject ON gdpr_subject_sets (subject)",
)

Write = Callable[[sqlite3.Connection], None]


def _set_id(subjects: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(subjects)).encode()).hexdigest()[:32]


class Lineage:
    """The lineage tables of a workspace.

    Parameters
    ----------
    workspace : Workspace
        Holds ``gdpr_lineage`` and ``gdpr_subject_sets`` (created if missing).
    """

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        with workspace.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def round_write(
        self, model_id: str, round_number: int, sets: Mapping[str, tuple[frozenset[str], int]]
    ) -> Write:
        """The write recording a round: node id to (subject pseudonyms, rows trained on)."""
        rows = []
        members: dict[str, frozenset[str]] = {}
        for node_id, (subjects, count) in sorted(sets.items()):
            set_id = _set_id(subjects)
            rows.append((model_id, round_number, node_id, set_id, count))
            members[set_id] = subjects

        def write(conn: sqlite3.Connection) -> None:
            for set_id, subjects in members.items():
                if conn.execute(
                    "SELECT 1 FROM gdpr_subject_sets WHERE set_id = ? LIMIT 1", (set_id,)
                ).fetchone():
                    continue
                conn.executemany(
                    "INSERT INTO gdpr_subject_sets VALUES (?, ?)",
                    [(set_id, s) for s in sorted(subjects)],
                )
            conn.executemany("INSERT INTO gdpr_lineage VALUES (?, ?, ?, ?, ?)", rows)

        return write

    def drop_after(self, model_id: str, round_number: int) -> Write:
        """The write forgetting the lineage of rounds after `round_number` (a rewind)."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM gdpr_lineage WHERE model_id = ? AND round_number > ?",
                (model_id, round_number),
            )

        return write

    def forget_subject(self, subject: str) -> int:
        """Drop the stored sets holding `subject` that no committed round uses; return rows."""
        with self._workspace.transaction() as conn:
            removed = conn.execute(
                "DELETE FROM gdpr_subject_sets WHERE set_id IN (SELECT set_id FROM "
                "gdpr_subject_sets WHERE subject = ?) AND set_id NOT IN "
                "(SELECT set_id FROM gdpr_lineage)",
                (subject,),
            ).rowcount
        return int(removed)

    def contributions(self, subject: str) -> list[tuple[str, int, str]]:
        """``(model_id, round_number, node_id)`` of every committed round with `subject`."""
        with self._workspace.reading() as conn:
            rows = conn.execute(
                "SELECT l.model_id, l.round_number, l.node_id FROM gdpr_lineage l JOIN "
                "gdpr_subject_sets s ON s.set_id = l.set_id WHERE s.subject = ? "
                "ORDER BY l.model_id, l.round_number, l.node_id",
                (subject,),
            ).fetchall()
        return [(m, int(r), n) for m, r, n in rows]

    def first_contributions(self, subject: str) -> dict[str, int]:
        """Model id to the first round `subject` contributed to."""
        first: dict[str, int] = {}
        for model_id, round_number, _ in self.contributions(subject):
            first.setdefault(model_id, round_number)
        return first

    def rounds_recorded(self, model_id: str) -> int:
        """How many rounds of `model_id` have lineage."""
        with self._workspace.reading() as conn:
            row = conn.execute(
                "SELECT COUNT(DISTINCT round_number) FROM gdpr_lineage WHERE model_id = ?",
                (model_id,),
            ).fetchone()
        return int(row[0])

    def stored_mentions(self, subject: str) -> int:
        """Rows naming `subject` anywhere in the lineage tables."""
        with self._workspace.reading() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM gdpr_subject_sets WHERE subject = ?", (subject,)
            ).fetchone()
        return int(row[0])
