"""The data inventory: what is held about each subject, for which purpose, and where.

Records given to :meth:`GdprComplianceManager.add_user_data` are encrypted in the
:class:`~heliosfl.compliance.crypto.PhiVault` (AES-256-GCM, a data key per record wrapped by
a key per subject, wrapped by the KEK); the inventory keeps only their metadata: pseudonym,
purpose, category, format, field names, size, node, time. Rows that nodes hold are listed
per node (count and collection time), never copied here. A subject erased and later
returning is a new *generation*: their old key stays shredded and new data gets a new key.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from heliosfl.compliance.crypto import PhiVault
from heliosfl.store import Workspace

__all__ = ["DataInventory", "InventoryRecord"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS gdpr_subjects (subject TEXT PRIMARY KEY, generation INTEGER"
    " NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gdpr_records (record_id TEXT PRIMARY KEY, subject TEXT NOT NULL,"
    " generation INTEGER NOT NULL, purpose TEXT NOT NULL, category TEXT NOT NULL, format TEXT"
    " NOT NULL, fields TEXT NOT NULL, node_id TEXT, size INTEGER NOT NULL, created_at TEXT NOT"
    " NULL)",
    "CREATE INDEX IF NOT EXISTS gdpr_records_by_subject ON gdpr_records (subject)",
    "CREATE TABLE IF NOT EXISTS gdpr_locations (subject TEXT NOT NULL, node_id TEXT NOT NULL,"
    " rows INTEGER NOT NULL, collected_at TEXT NOT NULL, PRIMARY KEY (subject, node_id))",
    "CREATE INDEX IF NOT EXISTS gdpr_locations_by_node ON gdpr_locations (node_id)",
)


@dataclass(frozen=True, slots=True)
class InventoryRecord:
    """Metadata of one stored record (its content is in the vault).

    Attributes
    ----------
    record_id : str
        Random id (no personal data).
    purpose, category, format : str
        Why it is held, what kind of data, and ``"bytes"``, ``"text"`` or ``"json"``.
    fields : tuple of str
        Field names of a ``"json"`` record.
    node_id : str or None
        The node it came from, if any.
    size : int
        Plaintext bytes.
    created_at : datetime
        When it was added (UTC).
    """

    record_id: str
    purpose: str
    category: str
    format: str
    fields: tuple[str, ...]
    node_id: str | None
    size: int
    created_at: datetime


class DataInventory:
    """Encrypted records and node locations of data subjects in a workspace.

    Parameters
    ----------
    workspace : Workspace
        Holds ``gdpr_subjects``, ``gdpr_records`` and ``gdpr_locations``.
    vault : PhiVault
        Encrypts the records with per-subject keys.
    """

    def __init__(self, workspace: Workspace, vault: PhiVault) -> None:
        self._workspace = workspace
        self._vault = vault
        with workspace.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def _generation(self, conn: sqlite3.Connection, subject: str, at: datetime) -> int:
        row = conn.execute(
            "SELECT generation FROM gdpr_subjects WHERE subject = ?", (subject,)
        ).fetchone()
        if row is not None:
            return int(row[0])
        conn.execute("INSERT INTO gdpr_subjects VALUES (?, 1, ?)", (subject, at.isoformat()))
        return 1

    @staticmethod
    def _vault_subject(user_id: str, generation: int) -> str:
        return f"gdpr/{generation}/{user_id}"

    def add(
        self,
        user_id: str,
        subject: str,
        payload: bytes,
        *,
        fmt: str,
        fields: tuple[str, ...],
        purpose: str,
        category: str,
        node_id: str | None,
        at: datetime,
    ) -> InventoryRecord:
        """Encrypt `payload` under the subject's key and list it; return its metadata."""
        record_id = "gdpr-" + uuid.uuid4().hex
        with self._workspace.transaction() as conn:
            generation = self._generation(conn, subject, at)
        self._vault.encrypt(payload, record_id, subject_id=self._vault_subject(user_id, generation))
        record = InventoryRecord(
            record_id, purpose, category, fmt, fields, node_id, len(payload), at
        )
        with self._workspace.transaction() as conn:
            conn.execute(
                "INSERT INTO gdpr_records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record_id,
                    subject,
                    generation,
                    purpose,
                    category,
                    fmt,
                    json.dumps(list(fields)),
                    node_id,
                    len(payload),
                    at.isoformat(),
                ),
            )
        return record

    def records(self, subject: str) -> list[InventoryRecord]:
        """The records held about `subject` (a pseudonym), oldest first."""
        with self._workspace.reading() as conn:
            rows = conn.execute(
                "SELECT record_id, purpose, category, format, fields, node_id, size, created_at "
                "FROM gdpr_records WHERE subject = ? ORDER BY rowid",
                (subject,),
            ).fetchall()
        return [
            InventoryRecord(r, p, c, f, tuple(json.loads(fs)), n, s, datetime.fromisoformat(t))
            for r, p, c, f, fs, n, s, t in rows
        ]

    def decrypt(self, record_id: str) -> bytes:
        """The plaintext of one listed record."""
        return self._vault.decrypt(record_id)

    def note_node(self, node_id: str, rows: Mapping[str, int], at: datetime) -> None:
        """Record which subjects (pseudonym to row count) `node_id` holds, replacing its list.

        A subject already listed at the node keeps their collection time.
        """
        with self._workspace.transaction() as conn:
            old = dict(
                conn.execute(
                    "SELECT subject, collected_at FROM gdpr_locations WHERE node_id = ?",
                    (node_id,),
                )
            )
            conn.execute("DELETE FROM gdpr_locations WHERE node_id = ?", (node_id,))
            conn.executemany(
                "INSERT INTO gdpr_locations VALUES (?, ?, ?, ?)",
                [(s, node_id, n, old.get(s, at.isoformat())) for s, n in rows.items() if n > 0],
            )

    def locations(self, subject: str) -> dict[str, int]:
        """Node id to the number of `subject`'s rows listed there."""
        with self._workspace.reading() as conn:
            rows = conn.execute(
                "SELECT node_id, rows FROM gdpr_locations WHERE subject = ? ORDER BY node_id",
                (subject,),
            ).fetchall()
        return {node: int(n) for node, n in rows}

    def forget_location(self, subject: str, node_id: str) -> None:
        """Drop `subject`'s listing at `node_id` (their rows there were erased)."""
        with self._workspace.transaction() as conn:
            conn.execute(
                "DELETE FROM gdpr_locations WHERE subject = ? AND node_id = ?", (subject, node_id)
            )

    def erase(self, user_id: str, subject: str) -> tuple[int, bool]:
        """Shred the subject's key and drop their records; return (records, key_shredded).

        The vault zeroes the wrapped key and every ciphertext (crypto-shredding); the
        inventory rows go, and the subject's next data starts a new generation.
        """
        with self._workspace.reading() as conn:
            row = conn.execute(
                "SELECT generation FROM gdpr_subjects WHERE subject = ?", (subject,)
            ).fetchone()
        if row is None:
            return 0, False
        generation = int(row[0])
        self._vault.shred(self._vault_subject(user_id, generation))
        with self._workspace.transaction() as conn:
            removed = conn.execute("DELETE FROM gdpr_records WHERE subject = ?", (subject,))
            conn.execute(
                "UPDATE gdpr_subjects SET generation = generation + 1 WHERE subject = ?",
                (subject,),
            )
        return removed.rowcount, True

    def residue(self, user_id: str, subject: str) -> dict[str, int]:
        """What is left of a subject: records, readable vault records, live keys, locations."""
        with self._workspace.reading() as conn:
            records = conn.execute(
                "SELECT COUNT(*) FROM gdpr_records WHERE subject = ?", (subject,)
            ).fetchone()[0]
            locations = conn.execute(
                "SELECT COUNT(*) FROM gdpr_locations WHERE subject = ?", (subject,)
            ).fetchone()[0]
            row = conn.execute(
                "SELECT generation FROM gdpr_subjects WHERE subject = ?", (subject,)
            ).fetchone()
            generations = range(1, int(row[0]) + 1) if row else range(0)
            live_keys = 0
            for generation in generations:
                pseudonym = self._vault.pseudonym(self._vault_subject(user_id, generation))
                live_keys += conn.execute(
                    "SELECT COUNT(*) FROM phi_subject_keys WHERE subject = ? AND "
                    "shredded_at IS NULL",
                    (pseudonym,),
                ).fetchone()[0]
        readable = sum(
            len(self._vault.records(self._vault_subject(user_id, g))) for g in generations
        )
        return {
            "records": int(records),
            "vault_records": readable,
            "live_keys": int(live_keys),
            "locations": int(locations),
        }

    def expired(self, cutoff: datetime) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Records ``(subject, record_id)`` and locations ``(subject, node_id)`` before `cutoff`."""
        with self._workspace.reading() as conn:
            records = conn.execute(
                "SELECT subject, record_id FROM gdpr_records WHERE created_at < ?",
                (cutoff.isoformat(),),
            ).fetchall()
            places = conn.execute(
                "SELECT subject, node_id FROM gdpr_locations WHERE collected_at < ?",
                (cutoff.isoformat(),),
            ).fetchall()
        return [(r[0], r[1]) for r in records], [(p[0], p[1]) for p in places]

    def purge_record(self, record_id: str) -> None:
        """Shred and drop one record (retention)."""
        self._vault.shred_record(record_id)
        with self._workspace.transaction() as conn:
            conn.execute("DELETE FROM gdpr_records WHERE record_id = ?", (record_id,))

    def counts(self) -> dict[str, object]:
        """Records by category and purpose, subjects and nodes listed (for Art. 30)."""
        with self._workspace.reading() as conn:
            categories = dict(
                conn.execute("SELECT category, COUNT(*) FROM gdpr_records GROUP BY category")
            )
            purposes = dict(
                conn.execute("SELECT purpose, COUNT(*) FROM gdpr_records GROUP BY purpose")
            )
            subjects = conn.execute(
                "SELECT COUNT(DISTINCT subject) FROM (SELECT subject FROM gdpr_records UNION "
                "SELECT subject FROM gdpr_locations)"
            ).fetchone()[0]
            nodes = conn.execute("SELECT COUNT(DISTINCT node_id) FROM gdpr_locations").fetchone()
        return {
            "records_by_category": categories,
            "records_by_purpose": purposes,
            "subjects": int(subjects),
            "nodes": int(nodes[0]),
        }
