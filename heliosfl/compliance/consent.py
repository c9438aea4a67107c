"""Consent that can be demonstrated (Art. 7(1)): an append-only book of grants and withdrawals.

Each record keeps the subject's pseudonym (never the id), what was done (``grant`` or
``withdraw``), the purposes, the version of the consent text and a SHA-256 hash of that
text (of the version label when no text was registered), and the time. Triggers refuse any
update or delete, so the history stays as it was written; a withdrawal is one more record,
as easy as the grant (Art. 7(3)). The current purposes of every subject are kept in memory
and bumped ``generation`` on each change, so a node can tell when its view is stale.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from heliosfl.errors import ConfigError
from heliosfl.store import Workspace

__all__ = ["ConsentAction", "ConsentBook", "ConsentRecord", "check_purposes"]

_NO_CHANGE = "BEGIN SELECT RAISE(ABORT, 'gdpr_consents is append-only'); END"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS gdpr_consents (seq INTEGER PRIMARY KEY AUTOINCREMENT, subject"
    " TEXT NOT NULL, action TEXT NOT NULL CHECK (action IN ('grant', 'withdraw')), purposes"
    " TEXT NOT NULL, version TEXT NOT NULL, text_sha256 TEXT NOT NULL, text_registered INTEGER"
    " NOT NULL, recorded_at TEXT NOT NULL, reason TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS gdpr_consents_by_subject ON gdpr_consents (subject, seq)",
    f"CREATE TRIGGER IF NOT EXISTS gdpr_consents_no_update BEFORE UPDATE ON gdpr_consents "
    f"{_NO_CHANGE}",
    f"CREATE TRIGGER IF NOT EXISTS gdpr_consents_no_delete BEFORE DELETE ON gdpr_consents "
    f"{_NO_CHANGE}",
    "CREATE TABLE IF NOT EXISTS gdpr_consent_texts (version TEXT PRIMARY KEY, text_sha256 TEXT"
    " NOT NULL, registered_at TEXT NOT NULL)",
)


class ConsentAction(StrEnum):
    """What a consent record does."""

    GRANT = "grant"
    WITHDRAW = "withdraw"


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One entry of the consent book, as stored.

    Attributes
    ----------
    seq : int
        Its position in the book (the order of events).
    subject : str
        The subject's pseudonym.
    action : ConsentAction
        Grant or withdrawal.
    purposes : tuple of str
        The purposes granted or withdrawn.
    version : str
        The version of the consent text the subject saw.
    text_sha256 : str
        SHA-256 of that text (of the version label if no text was registered).
    text_registered : bool
        Whether the hash is of a registered text.
    recorded_at : datetime
        When (UTC).
    reason : str
        ``"subject"`` for the subject's own act, ``"erasure"`` when an erasure ended it.
    """

    seq: int
    subject: str
    action: ConsentAction
    purposes: tuple[str, ...]
    version: str
    text_sha256: str
    text_registered: bool
    recorded_at: datetime
    reason: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (times as ISO-8601)."""
        return {
            "seq": self.seq,
            "action": self.action.value,
            "purposes": list(self.purposes),
            "version": self.version,
            "text_sha256": self.text_sha256,
            "text_registered": self.text_registered,
            "recorded_at": self.recorded_at.isoformat(),
            "reason": self.reason,
        }


def check_purposes(purposes: object, field: str = "purposes") -> tuple[str, ...]:
    """Return purposes as a sorted tuple of distinct non-empty strings, or raise ConfigError."""
    allowed = "a non-empty list of purpose names (str of 1-100 characters), e.g. ['model_training']"
    if isinstance(purposes, str) or not isinstance(purposes, Iterable):
        raise ConfigError(field, purposes, allowed)
    items = list(purposes)
    if not items or not all(isinstance(p, str) and 0 < len(p) <= 100 for p in items):
        raise ConfigError(field, items, allowed)
    return tuple(sorted(set(items)))


def _check_version(version: object) -> str:
    if not isinstance(version, str) or not 0 < len(version) <= 100 or not version.isprintable():
        raise ConfigError("version", version, "a consent text version label such as 'v1.0'")
    return version


class ConsentBook:
    """The consent records of a workspace and every subject's current purposes.

    Parameters
    ----------
    workspace : Workspace
        Holds ``gdpr_consents`` and ``gdpr_consent_texts`` (created if missing).
    """

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._current: dict[str, frozenset[str]] = {}
        #: Bumped on every change of anyone's consent.
        self.generation = 0
        with workspace.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            rows = conn.execute(
                "SELECT subject, action, purposes FROM gdpr_consents ORDER BY seq"
            ).fetchall()
        for subject, action, purposes in rows:
            self._apply(subject, ConsentAction(action), json.loads(purposes))

    def _apply(self, subject: str, action: ConsentAction, purposes: Iterable[str]) -> None:
        now = self._current.get(subject, frozenset())
        changed = now | set(purposes) if action is ConsentAction.GRANT else now - set(purposes)
        self._current[subject] = frozenset(changed)
        self.generation += 1

    def register_text(self, version: str, text: str, *, at: datetime) -> str:
        """Register the text of a consent version; return its SHA-256 (hex).

        Raises
        ------
        ConfigError
            If `text` is not a non-empty str, or the version is registered with another
            text (a published version never changes).
        """
        version = _check_version(version)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("text", "<not shown>", "the non-empty consent text (str)")
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self._workspace.transaction() as conn:
            row = conn.execute(
                "SELECT text_sha256 FROM gdpr_consent_texts WHERE version = ?", (version,)
            ).fetchone()
            if row is not None and row[0] != digest:
                raise ConfigError(
                    "version",
                    version,
                    "a new label: this version was registered with another text",
                    "Publish the changed text under a new version.",
                )
            conn.execute(
                "INSERT OR IGNORE INTO gdpr_consent_texts VALUES (?, ?, ?)",
                (version, digest, at.isoformat()),
            )
        return digest

    def record(
        self,
        subject: str,
        action: ConsentAction,
        purposes: Sequence[str],
        version: str,
        *,
        at: datetime,
        reason: str = "subject",
        conn: sqlite3.Connection | None = None,
    ) -> ConsentRecord:
        """Append a grant or withdrawal (in `conn`'s transaction if given) and apply it."""
        version = _check_version(version)
        purposes = check_purposes(purposes)

        def write(c: sqlite3.Connection) -> ConsentRecord:
            text = c.execute(
                "SELECT text_sha256 FROM gdpr_consent_texts WHERE version = ?", (version,)
            ).fetchone()
            digest = text[0] if text else hashlib.sha256(version.encode()).hexdigest()
            seq = c.execute(
                "INSERT INTO gdpr_consents (subject, action, purposes, version, text_sha256, "
                "text_registered, recorded_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    subject,
                    action.value,
                    json.dumps(list(purposes)),
                    version,
                    digest,
                    int(text is not None),
                    at.isoformat(),
                    reason,
                ),
            ).lastrowid
            assert seq is not None  # noqa: S101 - AUTOINCREMENT always gives one
            return ConsentRecord(
                seq, subject, action, purposes, version, digest, text is not None, at, reason
            )

        if conn is not None:
            result = write(conn)
        else:
            with self._workspace.transaction() as c:
                result = write(c)
        self._apply(subject, action, purposes)
        return result

    def purposes(self, subject: str) -> frozenset[str]:
        """The purposes `subject` (a pseudonym) consents to now."""
        return self._current.get(subject, frozenset())

    def allows(self, subject: str, purpose: str) -> bool:
        """Whether `subject` (a pseudonym) consents to `purpose` now."""
        return purpose in self._current.get(subject, frozenset())

    def history(self, subject: str) -> list[ConsentRecord]:
        """Every record of `subject` (a pseudonym), oldest first."""
        with self._workspace.reading() as conn:
            rows = conn.execute(
                "SELECT seq, subject, action, purposes, version, text_sha256, text_registered, "
                "recorded_at, reason FROM gdpr_consents WHERE subject = ? ORDER BY seq",
                (subject,),
            ).fetchall()
        return [
            ConsentRecord(
                seq,
                subj,
                ConsentAction(action),
                tuple(json.loads(purposes)),
                version,
                digest,
                bool(registered),
                datetime.fromisoformat(at),
                reason,
            )
            for seq, subj, action, purposes, version, digest, registered, at, reason in rows
        ]

    def counts(self) -> dict[str, int]:
        """How many grants and withdrawals the book holds, and subjects consenting now."""
        with self._workspace.reading() as conn:
            rows = dict(conn.execute("SELECT action, COUNT(*) FROM gdpr_consents GROUP BY action"))
        return {
            "grants": int(rows.get("grant", 0)),
            "withdrawals": int(rows.get("withdraw", 0)),
            "subjects_consenting": sum(1 for p in self._current.values() if p),
        }

    def all_purposes(self) -> list[str]:
        """Every purpose anyone ever consented to, sorted."""
        with self._workspace.reading() as conn:
            rows = conn.execute("SELECT purposes FROM gdpr_consents WHERE action = 'grant'")
            found = {p for (text,) in rows for p in json.loads(text)}
        return sorted(found)
