"""The tamper-evident audit log: an HMAC chain in the workspace, its head kept elsewhere.

Entries live in the ``audit_log`` table, whose triggers ``audit_log_no_update`` and
``audit_log_no_delete`` refuse changes; they are chained as :mod:`.audit_chain` describes,
and an :class:`AuditCheckpoint` outside the workspace holds the chain head (last seq and
MAC) under an HMAC tag. :meth:`AuditLog.verify` names the first bad seq for: an edit of any
column of any entry; an entry deleted, reordered or forged; entries cut from the tail, or
the table dropped, while the checkpoint survives; an edited checkpoint; a durable
checkpoint deleted while the log has entries.

**Not detected**: anything done with the key (it can rewrite chain and checkpoint, so keep
it apart from the workspace); the log *and* its checkpoint deleted together, or rolled back
together to an older state (a checkpoint has no monotonic counter: keep it where the
workspace's attacker cannot roll it back, or file exports elsewhere); events never logged;
PHI inside a free-text ``details`` value (pass subjects through :meth:`AuditLog.subject`).

Crash window: an append commits, then writes the checkpoint. Dying in between leaves one
genuine entry past the head; verify reports ``CHECKPOINT_BEHIND`` with ``ok=True`` (a valid
MAC past the head is not a truncation, which is entries *missing*), and the next append
catches up. An append chains onto the checkpoint head when the log ends before it, so a
cut stays visible as a gap; it writes nothing while a durable checkpoint is missing or
fails its tag, until :meth:`AuditLog.reset_checkpoint`. A power loss (not a process crash)
can drop the workspace's last commits (WAL, ``synchronous=NORMAL``) while the fsynced
checkpoint keeps them; verify then reports ``TRUNCATED``, as it cannot tell that from a cut.
Each append is its own transaction: never call it inside ``workspace.transaction()``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import tempfile
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from heliosfl.compliance import audit_chain as chain
from heliosfl.compliance.audit_chain import (
    AuditAction,
    AuditLogEntry,
    AuditProblem,
    VerificationResult,
    verify_export,
)
from heliosfl.errors import ComplianceError, ConfigError
from heliosfl.store import Workspace

__all__ = [
    "AuditAction",
    "AuditCheckpoint",
    "AuditLog",
    "AuditLogEntry",
    "AuditProblem",
    "FileCheckpoint",
    "MemoryCheckpoint",
    "VerificationResult",
    "verify_export",
]

_log = logging.getLogger(__name__)
_LOCK = threading.Lock()  # keeps each commit and its checkpoint write together
_NO_CHANGE = "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit_log (log_id TEXT NOT NULL, seq INTEGER NOT NULL, "
    "time TEXT NOT NULL, user_id TEXT NOT NULL, action TEXT NOT NULL, resource TEXT NOT NULL, "
    "success INTEGER NOT NULL, details TEXT NOT NULL, prev_hmac TEXT NOT NULL, "
    "hmac TEXT NOT NULL, PRIMARY KEY (log_id, seq))",
    "CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (log_id, time)",
    f"CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log {_NO_CHANGE}",
    f"CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log {_NO_CHANGE}",
)
_COLUMNS: tuple[str, ...] = ("seq", "time", "user_id", "action", "resource", "success", "details")
_COLUMNS += ("prev_hmac", "hmac")
_INSERT = (
    f"INSERT INTO audit_log (log_id, {', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES (:log_id, {', '.join(':' + c for c in _COLUMNS)})"
)
_WHERE = "FROM audit_log WHERE log_id = :log AND typeof(seq) = 'integer'"
_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'"
_TAIL = f"SELECT seq, hmac {_WHERE} ORDER BY seq DESC LIMIT 1"
_SPAN = f"SELECT {{}}(seq) {_WHERE} AND time >= :lo AND time <= :hi"
Head = tuple[int, str]  # (seq, hmac) of the last entry; (-1, GENESIS_HMAC) for none


class AuditCheckpoint(ABC):
    """Keeps the chain head outside the log, as opaque text :class:`AuditLog` HMAC-tags.

    ``durable`` says whether it outlives the process: an empty durable checkpoint beside a
    non-empty log is ``CHECKPOINT_MISSING``; an empty memory one is seeded from the log.
    """

    durable: ClassVar[bool]

    @abstractmethod
    def read(self) -> str | None:
        """The record, or ``None`` if none was written; ``OSError`` if unreadable."""

    @abstractmethod
    def write(self, text: str) -> None:
        """Replace the record atomically."""


class MemoryCheckpoint(AuditCheckpoint):
    """A checkpoint in memory: catches truncation while this process lives."""

    durable = False

    def __init__(self) -> None:
        self._text: str | None = None

    def read(self) -> str | None:  # noqa: D102
        return self._text

    def write(self, text: str) -> None:  # noqa: D102
        self._text = text


class FileCheckpoint(AuditCheckpoint):
    """A small JSON file, replaced atomically (temp file, fsync, rename), mode 0o600.

    Parameters
    ----------
    path : str or os.PathLike
        The file, in an existing directory; best on other storage than the workspace.
    """

    durable = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ConfigError("path", str(path), "a file in an existing directory")

    def read(self) -> str | None:  # noqa: D102
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    def write(self, text: str) -> None:  # noqa: D102
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
            folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


def _raw(row: tuple[Any, ...]) -> dict[str, Any]:
    """A stored row in ``to_dict()`` form, tampered values left as found (bytes as text)."""
    values = (v.decode(errors="replace") if isinstance(v, bytes) else v for v in row)
    raw: dict[str, Any] = dict(zip(_COLUMNS, values, strict=True))
    raw["success"] = {0: False, 1: True}.get(raw["success"], raw["success"])
    with contextlib.suppress(TypeError, ValueError):  # non-canonical text stays: its MAC fails
        if chain.canonical_json(details := json.loads(raw["details"])).decode() == raw["details"]:
            raw["details"] = details
    return raw


def _bounds(start: datetime | None, end: datetime | None) -> dict[str, str]:
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
            raise ConfigError(name, "<naive or not a datetime>", "an aware datetime or None")
    lo = "" if start is None else chain.format_time(start)
    return {"lo": lo, "hi": "~" if end is None else chain.format_time(end)}


class AuditLog:
    """An append-only, HMAC-chained audit log in a workspace; thread-safe.

    Use one instance per log and checkpoint: a lock orders appends with their checkpoint
    writes within this process; another process appending to the same log races it.

    Parameters
    ----------
    workspace : Workspace
        Holds the ``audit_log`` table, created on first use.
    key : bytes
        At least 32 bytes. MACs the chain; subkeys tag checkpoints and exports and make
        pseudonyms. Keep it apart from the workspace.
    checkpoint : AuditCheckpoint, optional
        Where the head is kept; default a :class:`MemoryCheckpoint`, seeded from the log.
    log_id : str, default "default"
        Chains sharing the table stay apart; the id is inside every MAC.
    pseudonymize : callable, optional
        ``subject_id -> pseudonym`` for :meth:`subject`; default a keyed HMAC.
    clock : callable, optional
        Returns the aware current time; default ``datetime.now(UTC)``.

    Examples
    --------
    >>> from heliosfl.store import Workspace
    >>> log = AuditLog(Workspace(), b"k" * 32)
    >>> entry = log.append("dr-lee", AuditAction.PHI_ACCESS, log.subject("MRN 12345"))
    >>> entry.seq, entry.resource[:5], log.verify().ok, verify_export(log.export(), b"k" * 32).ok
    (0, 'subj-', True, True)
    """

    def __init__(
        self,
        workspace: Workspace,
        key: bytes,
        *,
        checkpoint: AuditCheckpoint | None = None,
        log_id: str = "default",
        pseudonymize: Callable[[str], str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not isinstance(workspace, Workspace):
            raise ConfigError("workspace", type(workspace).__name__, "a heliosfl Workspace")
        if not isinstance(checkpoint, AuditCheckpoint | None):
            raise ConfigError("checkpoint", type(checkpoint).__name__, "an AuditCheckpoint")
        for name, function in (("pseudonymize", pseudonymize), ("clock", clock)):
            if function is not None and not callable(function):
                raise ConfigError(name, "<not callable>", "a callable or None")
        self._workspace, self._key = workspace, chain.check_key(key)
        self._log_id = chain.check_text("log_id", log_id, 100)
        self._checkpoint = MemoryCheckpoint() if checkpoint is None else checkpoint
        self._pseudonymize, self._clock = pseudonymize, clock or (lambda: datetime.now(UTC))
        with _LOCK:
            with workspace.transaction() as conn:
                tail = self._tail(conn)
            if tail and not self._checkpoint.durable and self._checkpoint.read() is None:
                self._checkpoint.write(self._record(tail))

    def __repr__(self) -> str:
        return f"AuditLog(log_id={self._log_id!r}, checkpoint={type(self._checkpoint).__name__})"

    def subject(self, subject_id: str) -> str:
        """A keyed pseudonym of a data subject, for `resource` or `details`.

        The NFC-normalised id never reaches the log or a message. The default pseudonym is
        ``"subj-"`` and 128 bits of HMAC-SHA256 under a subkey: stable for this key,
        unlinkable without it. Raises :class:`ConfigError` for an id that is not a str of
        1-1000 characters, :class:`ComplianceError` if `pseudonymize` returns no str of
        1-200 characters, or one equal to the id or containing it (ids of 6+ characters).
        """
        text = unicodedata.normalize("NFC", chain.check_text("subject_id", subject_id, 1000))
        if self._pseudonymize is None:
            return "subj-" + chain.keyed_tag(self._key, "pseudonym", text)[:32]
        alias = self._pseudonymize(text)
        leaks = isinstance(alias, str) and (alias == text or (len(text) >= 6 and text in alias))
        if not isinstance(alias, str) or not 0 < len(alias) <= 200 or leaks:
            raise ComplianceError(
                "pseudonymize must return a str of 1-200 characters without the subject id. "
                "Found another value (not shown). Fix the pseudonymize function."
            )
        return alias

    def append(
        self,
        user_id: str,
        action: AuditAction | str,
        resource: str,
        success: bool = True,
        details: Mapping[str, object] | None = None,
    ) -> AuditLogEntry:
        """Append one entry in one transaction, then move the checkpoint to it.

        Parameters
        ----------
        user_id, resource : str
            Who acted, on what: 1-200 characters; subjects through :meth:`subject`.
        action : AuditAction or str
            What was done.
        success : bool, default True
            The outcome; ``False`` for a denial or a failure.
        details : Mapping, optional
            At most 32 items: str keys of 1-64 characters; values None, bool, int, finite
            float, or str of at most 500 characters. Never PHI.

        Returns
        -------
        AuditLogEntry
            The entry as stored.

        Raises
        ------
        ConfigError
            If an argument is invalid (the message never echoes a value).
        ComplianceError
            If a durable checkpoint is missing or fails its tag (nothing is written), or
            the entry was committed but the checkpoint write failed (verify says so).
        """
        chain.check_text("user_id", user_id)
        chain.check_text("resource", resource)
        if action not in tuple(AuditAction) or not isinstance(success, bool):
            raise ConfigError("action or success", "<invalid>", "an AuditAction and a bool")
        clean = chain.check_details(details)
        with _LOCK:
            head, problem, why = self._head()
            with self._workspace.transaction() as conn:
                tail = self._tail(conn)
                if problem or (head is None and tail and self._checkpoint.durable):
                    raise ComplianceError(
                        f"The audit checkpoint {why or 'is missing'}. Nothing was written. "
                        "Restore it, or investigate and call reset_checkpoint()."
                    )
                base = tail if head is None or (tail and tail[0] > head[0]) else head
                if base != tail:
                    _log.warning("Audit log %r ends before its checkpoint head", self._log_id)
                seq, prev = base or (-1, chain.GENESIS_HMAC)
                raw: dict[str, Any] = {
                    "seq": seq + 1,
                    "time": chain.format_time(self._now()),
                    "user_id": user_id,
                    "action": AuditAction(action).value,
                    "resource": resource,
                    "success": success,
                    "details": clean,
                    "prev_hmac": prev,
                }
                raw["hmac"] = chain.entry_mac(self._key, self._log_id, raw)
                details_json = chain.canonical_json(clean).decode()
                row = {**raw, "log_id": self._log_id, "details": details_json}
                conn.execute(_INSERT, row)
            try:
                self._checkpoint.write(self._record((raw["seq"], raw["hmac"])))
            except OSError as exc:
                raise ComplianceError(
                    f"Audit entry seq {raw['seq']} was committed but the checkpoint write failed "
                    f"({exc.strerror}); verify() reports the checkpoint behind."
                ) from exc
        return AuditLogEntry.from_dict(raw)

    def entries(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[AuditLogEntry]:
        """The entries with ``start <= time <= end`` (bounds optional, aware), by seq.

        Not verified (see :meth:`verify`); :class:`ComplianceError` if one is unreadable.
        """
        rows, _ = self._query("AND time >= :lo AND time <= :hi", _bounds(start, end))
        try:
            return [AuditLogEntry.from_dict(raw) for raw in rows]
        except ConfigError as exc:
            raise ComplianceError(
                f"An audit entry is malformed ({exc.field}): run verify()."
            ) from None

    def verify(self) -> VerificationResult:
        """Check the chain and its checkpoint; name the first bad seq (module docstring)."""
        with _LOCK:
            rows, _ = self._query("", {})
            head, problem, why = self._head()
        result = chain.check_chain(self._key, self._log_id, rows, head_seq=head and head[0])
        n, bad = len(rows), functools.partial(VerificationResult, False, len(rows))
        if not result.ok:
            return result
        if problem:
            return bad(None, problem, f"The audit checkpoint {why}.")
        if head is None:
            if n and self._checkpoint.durable:
                why = f"is missing beside {n} entries: a cut cannot be ruled out"
                return bad(None, AuditProblem.CHECKPOINT_MISSING, f"The audit checkpoint {why}.")
            return result
        seq, last = head[0], rows[head[0]]["hmac"] if 0 <= head[0] < n else chain.GENESIS_HMAC
        if seq >= n:
            why = f"ends at seq {n - 1} but its checkpoint head is seq {seq}: entries were cut"
            return bad(n, AuditProblem.TRUNCATED, f"The audit log {why}.")
        if head[1] != last:
            why = f"Entry seq {seq} is not the one the checkpoint recorded."
            return bad(seq, AuditProblem.CHECKPOINT_MISMATCH, why)
        if seq < n - 2:
            why = f"{n - 1 - seq} entries follow the checkpoint head (seq {seq}): it is stale."
            return bad(seq + 1, AuditProblem.CHECKPOINT_MISMATCH, why)
        if seq == n - 2:
            why = f"{result.message} The checkpoint is one behind: interrupted after a commit."
            return VerificationResult(True, n, None, AuditProblem.CHECKPOINT_BEHIND, why)
        return result

    def export(self, start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
        """A JSON-ready export that :func:`verify_export` checks with the key alone.

        It holds every entry from the first with ``time >= start`` to the last with ``time <=
        end`` (to the log's end if `end` is None), the first's ``prev_hmac``, the head at
        export time, and a tag over this header. The caller audits the export itself.
        """
        bounds = _bounds(start, end)
        upper = _SPAN.format("MAX") if end else "SELECT MAX(seq) FROM audit_log WHERE log_id = :log"
        with _LOCK:
            rows, tail = self._query(
                f"AND seq BETWEEN ({_SPAN.format('MIN')}) AND ({upper})", bounds
            )
            head, _, _ = self._head()
        head = tail if head is None or (tail and tail[0] > head[0]) else head
        first, last = (rows[0], rows[-1]) if rows else ({}, {})
        doc = {
            "format": chain.EXPORT_FORMAT,
            "log_id": self._log_id,
            "exported_at": chain.format_time(self._now()),
            "start": None if start is None else bounds["lo"],
            "end": None if end is None else bounds["hi"],
            "first_seq": 0 if start is None else first.get("seq"),
            "first_prev_hmac": chain.GENESIS_HMAC if start is None else first.get("prev_hmac"),
            "count": len(rows),
            "last_seq": last.get("seq"),
            "last_hmac": last.get("hmac"),
            "head": None if head is None else {"seq": head[0], "hmac": head[1]},
        }
        return {**doc, "tag": chain.export_tag(self._key, doc), "entries": rows}

    def reset_checkpoint(self, user_id: str) -> AuditLogEntry:
        """Trust the log as it stands: put the checkpoint at its end, and audit that.

        For a checkpoint lost or replaced, after investigation. Raises
        :class:`ComplianceError` if the chain itself does not verify.
        """
        with _LOCK:
            rows, tail = self._query("", {})
            result = chain.check_chain(self._key, self._log_id, rows)
            if not result.ok:
                raise ComplianceError(
                    f"Cannot reset the checkpoint of a broken chain. {result.message}"
                )
            self._checkpoint.write(self._record(tail or (-1, chain.GENESIS_HMAC)))
        details = {"change": "audit_checkpoint_reset", "entries": len(rows)}
        return self.append(user_id, AuditAction.CONFIG_CHANGE, "audit-log", True, details)

    def _now(self) -> datetime:
        now = self._clock()
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise ConfigError("clock", "<naive or not a datetime>", "a clock of aware datetimes")
        return now

    def _tail(self, conn: sqlite3.Connection) -> Head | None:
        """Create the table if need be; the last integer seq and its hmac."""
        for statement in _SCHEMA:
            conn.execute(statement)
        row = conn.execute(_TAIL, {"log": self._log_id}).fetchone()
        return None if row is None else (row[0], str(row[1]))

    def _query(
        self, where: str, params: dict[str, str]
    ) -> tuple[list[dict[str, Any]], Head | None]:
        """The rows (``to_dict()`` form, by seq) and the tail; none if the table is gone."""
        with self._workspace.reading() as conn:
            if conn.execute(_EXISTS).fetchone() is None:
                return [], None
            select = f"SELECT {', '.join(_COLUMNS)} FROM audit_log WHERE log_id = :log {where}"  # noqa: S608
            rows = [
                _raw(row)
                for row in conn.execute(f"{select} ORDER BY seq", {**params, "log": self._log_id})
            ]
            tail = conn.execute(_TAIL, {"log": self._log_id}).fetchone()
        return rows, None if tail is None else (tail[0], str(tail[1]))

    def _record(self, head: Head) -> str:
        body = dict(format="heliosfl-audit-checkpoint", log_id=self._log_id, seq=head[0])
        body["hmac"] = head[1]
        return json.dumps({**body, "tag": chain.keyed_tag(self._key, "checkpoint", body)})

    def _head(self) -> tuple[Head | None, AuditProblem | None, str]:
        """The checkpoint's head, or what is wrong with it."""
        try:
            text = self._checkpoint.read()
        except OSError as exc:
            return None, AuditProblem.CHECKPOINT_MISSING, f"cannot be read ({exc.strerror})"
        if text is None:
            return None, None, ""
        with contextlib.suppress(KeyError, TypeError, ValueError):
            record = json.loads(text)
            body = {k: record[k] for k in ("format", "log_id", "seq", "hmac")}
            if chain.same_mac(chain.keyed_tag(self._key, "checkpoint", body), record["tag"]):
                if body["log_id"] != self._log_id:
                    return None, AuditProblem.CHECKPOINT_MISMATCH, "belongs to another log"
                if type(body["seq"]) is int and isinstance(body["hmac"], str):
                    return (body["seq"], body["hmac"]), None, ""
        return None, AuditProblem.CHECKPOINT_TAMPERED, "fails its HMAC tag: it was edited"
