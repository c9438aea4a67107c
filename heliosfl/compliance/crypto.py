"""Envelope encryption of PHI with per-subject keys, key rotation and crypto-shredding.

Every key is 256 bits; every cipher is AES-256-GCM with a fresh random 96-bit nonce::

    KeyEncryptionKey (outside the workspace)
     ├─ wraps the vault's pseudonym key           table phi_vault_keys
     └─ wraps one key per SUBJECT                 table phi_subject_keys
         └─ wraps one data key per RECORD, beside the record's ciphertext in phi_records

Secret: plaintexts and keys. Stored in clear: record ids, versions, subject pseudonyms,
nonces, times and KEK key ids, so record ids must hold no PHI; subject ids are never stored.
Authenticated: each ciphertext and each wrapped data key together with its record id,
version and subject pseudonym (moved to another record, version or subject, it fails to
open); each wrapped subject key together with its pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from heliosfl.compliance.keys import KEY_BYTES, KeyEncryptionKey
from heliosfl.errors import ComplianceError, ConfigError
from heliosfl.store import Workspace
from heliosfl.validation import check_private_id

__all__ = ["EncryptedPhi", "PhiVault"]

_NONCE = 12
_Change = Callable[[sqlite3.Connection], int]
_PSEUDONYM_CONTEXT = b"heliosfl-phi|pseudonym-key"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS phi_vault_keys (name TEXT PRIMARY KEY, wrapped BLOB NOT NULL,"
    " key_id TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS phi_subject_keys (subject TEXT PRIMARY KEY, wrapped BLOB NOT"
    " NULL, key_id TEXT NOT NULL, created_at TEXT NOT NULL, shredded_at TEXT)",
    "CREATE TABLE IF NOT EXISTS phi_records (record_id TEXT PRIMARY KEY, subject TEXT NOT NULL,"
    " version INTEGER NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, wrapped_dek"
    " BLOB NOT NULL, created_at TEXT NOT NULL, shredded_at TEXT)",
    "CREATE INDEX IF NOT EXISTS phi_records_by_subject ON phi_records (subject)",
)


@dataclass(frozen=True, slots=True)
class EncryptedPhi:
    """One encrypted record as stored; ``repr`` omits `nonce` and `ciphertext`.

    `version` is 1 at the first encryption of `record_id` and grows by 1 at each
    re-encryption; `nonce` is the random 96-bit nonce and `ciphertext` carries the 16-byte
    GCM tag; `subject` is the subject's pseudonym (32 hex digits), never the subject id;
    `key_id` names the KEK in use at encryption (informational: rotation changes no
    record).
    """

    record_id: str
    version: int
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    subject: str
    key_id: str


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _bound(kind: bytes, record_id: str, version: int, subject: str) -> bytes:
    """``kind + b"heliosfl-phi|<record_id>|v<version>|<pseudonym>"``: parses from the right."""
    return b"%sheliosfl-phi|%s|v%d|%s" % (kind, record_id.encode(), version, subject.encode())


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes, problem: str) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
    except (InvalidTag, ValueError):
        raise ComplianceError(problem) from None


def _shredded(record_id: str, when: str) -> ComplianceError:
    return ComplianceError(
        f"The record was crypto-shredded at {when}: its key is destroyed, its data "
        "cannot be recovered, and it cannot be written again. Use a new record_id."
    )


def check_id(name: str, value: object) -> str:
    """Return ``value`` if it is a printable str of 1-200 characters that UTF-8 can encode.

    Record ids can identify people (the guide's "patient_12345"), so the message describes
    the value by type and length only (:func:`heliosfl.validation.check_private_id`).
    """
    return check_private_id(name, value)


class PhiVault:
    """Encrypt, decrypt, rotate and crypto-shred PHI records in a workspace.

    Guarantees: each record is confidential and integrity-protected (AES-256-GCM, 128-bit
    tag) under its own random data key and a nonce the caller cannot supply; only a vault
    holding the KEK that currently wraps the workspace's keys can read it. Assumptions: the
    KEK is kept apart from the workspace and its backups; ``os.urandom`` is secure.

    Backups: a copy of the workspace is exactly as readable as the live one to whoever holds
    the KEK that wrapped it, including keys shredded after the copy was taken; see
    :meth:`shred` (``rotate_to``) for making such copies unreadable.

    Parameters
    ----------
    workspace : Workspace
        Holds the tables ``phi_vault_keys``, ``phi_subject_keys`` and ``phi_records``.
    kek : KeyEncryptionKey
        The key-encryption key; for a workspace with PHI keys, the one that wraps them.

    Raises
    ------
    ComplianceError
        If the workspace's keys are wrapped under another KEK (both ids are named) or were
        tampered with.
    """

    def __init__(self, workspace: Workspace, kek: KeyEncryptionKey) -> None:
        if not isinstance(workspace, Workspace):
            raise ConfigError("workspace", f"<{type(workspace).__name__}>", "a Workspace")
        if not isinstance(kek, KeyEncryptionKey):
            raise ConfigError("kek", f"<{type(kek).__name__}>", "a KeyEncryptionKey")
        self._ws, self._kek = workspace, kek
        with workspace.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            found = conn.execute("SELECT wrapped FROM phi_vault_keys WHERE name = 'pseudonym'")
            if (row := found.fetchone()) is None:
                key = os.urandom(KEY_BYTES)
                conn.execute(
                    "INSERT INTO phi_vault_keys VALUES ('pseudonym', ?, ?, ?)",
                    (kek.wrap(key, context=_PSEUDONYM_CONTEXT), kek.key_id, _now()),
                )
            else:
                self._check_kek(conn)
                key = kek.unwrap(row[0], context=_PSEUDONYM_CONTEXT)
        self._pseudonym_key = key

    def __repr__(self) -> str:
        return f"PhiVault({self._ws!r}, kek={self._kek!r})"

    @property
    def key_id(self) -> str:
        """Id of the key-encryption key the vault uses now."""
        return self._kek.key_id

    def pseudonym(self, subject_id: str) -> str:
        """The subject's pseudonym here: 32 hex digits, the same before and after rotation.

        HMAC-SHA256 under the vault's random pseudonym key, stored wrapped by the KEK: it
        cannot be linked to the subject id without the KEK. Name subjects by it in logs.
        """
        subject_id = check_id("subject_id", subject_id)
        return self._mac(b"subject\x00" + subject_id.encode())

    def derived_key(self, purpose: str) -> bytes:
        """A 256-bit key for ``purpose`` (e.g. the audit log's HMAC key).

        HMAC-SHA256 of the purpose under the vault's random pseudonym key, domain-separated
        from subject pseudonyms; like them it survives KEK rotation and cannot be
        computed without the KEK.
        """
        return hmac.new(self._pseudonym_key, b"key\x00" + purpose.encode(), hashlib.sha256).digest()

    def _mac(self, message: bytes) -> str:
        return hmac.new(self._pseudonym_key, message, hashlib.sha256).hexdigest()[:32]

    def _check_kek(self, conn: sqlite3.Connection) -> None:
        found = conn.execute("SELECT key_id FROM phi_vault_keys WHERE name = 'pseudonym'")
        if (key_id := found.fetchone()[0]) != self._kek.key_id:
            raise ComplianceError(
                f"The workspace's PHI keys are wrapped under key-encryption key {key_id}; this "
                f"vault holds {self._kek.key_id}. Use that key (or the one it was rotated to)."
            )

    def _subject_key(
        self, conn: sqlite3.Connection, subject: str, record_id: str, *, create: bool = False
    ) -> bytes:
        context, kek = b"heliosfl-phi|subject|" + subject.encode(), self._kek
        query = "SELECT wrapped, shredded_at FROM phi_subject_keys WHERE subject = ?"
        if (row := conn.execute(query, (subject,)).fetchone()) is None:
            if not create:
                raise ComplianceError("The record has no subject key: store edited.")
            key = os.urandom(KEY_BYTES)
            conn.execute(
                "INSERT INTO phi_subject_keys VALUES (?, ?, ?, ?, NULL)",
                (subject, kek.wrap(key, context=context), kek.key_id, _now()),
            )
            return key
        if row[1] is not None:
            raise _shredded(record_id, row[1])
        return kek.unwrap(row[0], context=context)

    # -- records ------------------------------------------------------------------------

    def encrypt(
        self, data: bytes, record_id: str, *, subject_id: str | None = None
    ) -> EncryptedPhi:
        """Encrypt and store bytes-like `data` as the next version of `record_id`.

        Every call draws a new data key and nonce; re-encrypting stores version + 1 and
        replaces the previous ciphertext and data key. `record_id` is stored in clear (an
        opaque id, never PHI). Records of one `subject_id` share a subject key and are
        shredded together; without one, a record is its own subject.

        Raises
        ------
        ConfigError
            If `data` is not bytes-like or an id is not a printable str of 1-200 chars.
        ComplianceError
            If the record belongs to another subject, or it or its subject was shredded.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ConfigError("data", f"<{type(data).__name__}>", "bytes (encode text first)")
        check_id("record_id", record_id)
        if subject_id is None:
            subject = self._mac(b"record\x00" + record_id.encode())
        else:
            subject = self.pseudonym(subject_id)
        with self._ws.transaction() as conn:
            self._check_kek(conn)
            query = "SELECT subject, version, shredded_at FROM phi_records WHERE record_id = ?"
            if (row := conn.execute(query, (record_id,)).fetchone()) and row[2] is not None:
                raise _shredded(record_id, row[2])
            if row and row[0] != subject:
                raise ComplianceError(
                    "The record belongs to another subject; a record cannot change "
                    "subject. Use a new record_id."
                )
            version = row[1] + 1 if row else 1
            subject_key = self._subject_key(conn, subject, record_id, create=True)
            dek = os.urandom(KEY_BYTES)
            sealed = _seal(dek, bytes(data), _bound(b"", record_id, version, subject))
            wrapped_dek = _seal(subject_key, dek, _bound(b"dek|", record_id, version, subject))
            result = EncryptedPhi(
                record_id, version, sealed[:_NONCE], sealed[_NONCE:], subject, self._kek.key_id
            )
            conn.execute(
                "INSERT INTO phi_records VALUES (?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (record_id)"
                " DO UPDATE SET version = excluded.version, nonce = excluded.nonce, ciphertext ="
                " excluded.ciphertext, wrapped_dek = excluded.wrapped_dek",
                (record_id, subject, version, result.nonce, result.ciphertext, wrapped_dek, _now()),
            )
        return result

    def decrypt(self, record: EncryptedPhi | str) -> bytes:
        """Decrypt a record given as an :class:`EncryptedPhi` or by its record id.

        An :class:`EncryptedPhi` is opened with its own nonce, ciphertext and subject and
        the stored data key of its record, so it must be the record's current version.

        Raises
        ------
        ComplianceError
            If the record is unknown, superseded or crypto-shredded, or anything bound to
            it was altered or moved. Messages never hold data or subject ids.
        """
        copy = record if isinstance(record, EncryptedPhi) else None
        record_id = check_id("record_id", record if copy is None else copy.record_id)
        with self._ws.reading() as conn:
            self._check_kek(conn)
            row = conn.execute(
                "SELECT subject, version, nonce, ciphertext, wrapped_dek, shredded_at FROM"
                " phi_records WHERE record_id = ?",
                (record_id,),
            ).fetchone()
            if row is None:
                raise ComplianceError("The record is not in this PHI vault.")
            subject, version, nonce, ciphertext, wrapped_dek, shredded_at = row
            if shredded_at is not None:
                raise _shredded(record_id, shredded_at)
            subject_key = self._subject_key(conn, subject, record_id)
        where = f"The record (version {version}) cannot be decrypted: its"
        aad = _bound(b"dek|", record_id, version, subject)
        dek = _open(subject_key, wrapped_dek, aad, f"{where} wrapped data key was altered.")
        if copy is not None:
            if copy.version != version:
                raise ComplianceError(f"{where} copy is version {copy.version}, superseded.")
            nonce, ciphertext, subject = copy.nonce, copy.ciphertext, str(copy.subject)
        if not isinstance(nonce, bytes) or len(nonce) != _NONCE:
            nonce = b""  # never re-split bytes across the nonce/ciphertext boundary
        return _open(
            dek,
            nonce + bytes(ciphertext),
            _bound(b"", record_id, version, subject),
            f"{where} ciphertext, nonce, record id, version or subject was altered, or it "
            "was moved from another record.",
        )

    def records(self, subject_id: str | None = None) -> list[str]:
        """Ids of the readable (not shredded) records, all or a subject's, by first encryption."""
        subject = None if subject_id is None else self.pseudonym(subject_id)
        with self._ws.reading() as conn:
            rows = conn.execute(
                "SELECT record_id FROM phi_records WHERE shredded_at IS NULL AND (? IS NULL OR"
                " subject = ?) ORDER BY rowid",
                (subject, subject),
            ).fetchall()
        return [row[0] for row in rows]

    # -- keys ---------------------------------------------------------------------------

    def rotate(self, new_kek: KeyEncryptionKey) -> int:
        """Re-wrap the pseudonym key and every live subject key under `new_kek`.

        One transaction, all or nothing; no record, data key or pseudonym changes. Then the
        vault uses `new_kek` and the old KEK opens nothing in the live workspace (backups
        taken before still open with it until it is destroyed). Returns the number of
        subject keys re-wrapped. Raises ConfigError if `new_kek` is the current key.
        """
        if new_kek is None:
            raise ConfigError("new_kek", None, "a KeyEncryptionKey")
        return self._commit(new_kek, None, "new_kek")

    def shred(self, subject_id: str, *, rotate_to: KeyEncryptionKey | None = None) -> int:
        """Crypto-shred a subject; return how many of their records this made unreadable.

        In one transaction the wrapped subject key is overwritten with zeros of its length
        and marked shredded, and so are the nonce, ciphertext and wrapped data key of each
        of the subject's records. Exported :class:`EncryptedPhi` copies are unreadable at
        once (their data keys lived only here). SQLite cannot guarantee secure erasure:
        old bytes may survive in free pages, the WAL or the file system, and a backup taken
        before the shred holds the wrapped subject key. `rotate_to` re-wraps every other
        key under that new KEK in the same transaction: once the old KEK is destroyed (key
        file, environment, passphrase: the library cannot erase a key it does not own), no
        copy of the subject's data, backups included, can be decrypted.

        Idempotent; an unknown subject is recorded as shredded; new data for a shredded
        subject is refused.
        """
        subject = self.pseudonym(subject_id)
        return self._commit(rotate_to, lambda conn: self._shred(conn, subject, None), "rotate_to")

    def shred_record(self, record_id: str, *, rotate_to: KeyEncryptionKey | None = None) -> int:
        """Crypto-shred one record as :meth:`shred` does a subject; return 1 (0 if it was already).

        A record without a subject loses its own subject key; a record of a named subject
        loses its wrapped data key (the subject's other records stay readable). Raises
        ComplianceError if the record is not in the vault.
        """
        own = self._mac(b"record\x00" + check_id("record_id", record_id).encode())

        def shred(conn: sqlite3.Connection) -> int:
            query = "SELECT subject FROM phi_records WHERE record_id = ?"
            if (row := conn.execute(query, (record_id,)).fetchone()) is None:
                raise ComplianceError("The record is not in this PHI vault.")
            return self._shred(conn, row[0], None if row[0] == own else record_id)

        return self._commit(rotate_to, shred, "rotate_to")

    def _shred(self, conn: sqlite3.Connection, subject: str, record_id: str | None) -> int:
        now = _now()
        if record_id is None:
            conn.execute(
                "INSERT INTO phi_subject_keys VALUES (?, x'', ?, ?, ?) ON CONFLICT (subject) DO "
                "UPDATE SET wrapped = zeroblob(length(wrapped)), shredded_at = excluded.created_at"
                " WHERE shredded_at IS NULL",
                (subject, self._kek.key_id, now, now),
            )
        return conn.execute(
            "UPDATE phi_records SET nonce = zeroblob(length(nonce)), ciphertext = zeroblob("
            "length(ciphertext)), wrapped_dek = zeroblob(length(wrapped_dek)), shredded_at = ?"
            " WHERE subject = ? AND shredded_at IS NULL AND (? IS NULL OR record_id = ?)",
            (now, subject, record_id, record_id),
        ).rowcount

    def _commit(self, new_kek: KeyEncryptionKey | None, change: _Change | None, name: str) -> int:
        """Apply `change`, then re-wrap every live key under `new_kek`, in one transaction."""
        if new_kek is not None and not isinstance(new_kek, KeyEncryptionKey):
            raise ConfigError(name, f"<{type(new_kek).__name__}>", "a KeyEncryptionKey")
        if new_kek is not None and new_kek == self._kek:
            raise ConfigError(name, new_kek, "a key-encryption key other than the current")
        old = self._kek
        try:
            with self._ws.transaction() as conn:
                self._check_kek(conn)
                count = 0 if change is None else change(conn)
                if new_kek is None:
                    return count
                conn.execute(
                    "UPDATE phi_vault_keys SET wrapped = ?, key_id = ? WHERE name = 'pseudonym'",
                    (new_kek.wrap(self._pseudonym_key, context=_PSEUDONYM_CONTEXT), new_kek.key_id),
                )
                live = "SELECT subject, wrapped FROM phi_subject_keys WHERE shredded_at IS NULL"
                for subject, wrapped in (rows := conn.execute(live).fetchall()):
                    context = b"heliosfl-phi|subject|" + subject.encode()
                    conn.execute(
                        "UPDATE phi_subject_keys SET wrapped = ?, key_id = ? WHERE subject = ?",
                        (
                            new_kek.wrap(old.unwrap(wrapped, context=context), context=context),
                            new_kek.key_id,
                            subject,
                        ),
                    )
                self._kek = new_kek  # under the workspace lock; undone if the commit fails
                return len(rows) if change is None else count
        except BaseException:
            self._kek = old
            raise
