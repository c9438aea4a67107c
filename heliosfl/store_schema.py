"""The on-disk layout of a workspace: tables, schema version, row access, value encodings.

:mod:`heliosfl.store` holds the public :class:`~heliosfl.store.Workspace`; this module holds
what decides the bytes in the file, so that a change to either is easy to review:

* :func:`connect` opens (or creates) the SQLite database, refuses files that are not
  SQLite, that belong to another application or that a newer heliosfl wrote, and creates the
  tables of :data:`SCHEMA_VERSION`.
* :func:`model_size`, :func:`last_round`, :func:`insert_round`, :func:`insert_checkpoint`
  and :func:`select_checkpoint` are the SQL; they run inside the caller's transaction and
  lock.
* JSON values (model specs, configs, round records) go through :func:`to_json`, which turns
  non-finite floats (``nan``, ``inf``) into ``null`` and numpy scalars into Python numbers.
* Parameter vectors are raw little-endian float64 bytes with their length; strategy state is
  an ``.npz`` archive (the ``np.savez`` format), read back with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ConfigError, ModelNotFound, WorkspaceError

__all__ = [
    "SCHEMA_VERSION",
    "connect",
    "decode_params",
    "decode_state",
    "encode_params",
    "encode_state",
    "from_json",
    "insert_checkpoint",
    "insert_round",
    "last_round",
    "model_size",
    "now_utc",
    "parse_time",
    "select_checkpoint",
    "to_json",
]

SCHEMA_VERSION = 2
"""Version of the table layout below; bump it (and add a migration) on any change.

Version 2 added the tables of rewinds (``rewinds``, ``superseded_rounds``,
``superseded_ledger``); a version-1 file gains them when it is opened, nothing else changes.
"""

_TABLES = (
    """CREATE TABLE IF NOT EXISTS models (
    model_id   TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    config     TEXT NOT NULL,
    num_params INTEGER NOT NULL CHECK (num_params > 0),
    created_at TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS rounds (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id     TEXT NOT NULL REFERENCES models (model_id),
    round_number INTEGER NOT NULL CHECK (round_number >= 1),
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    succeeded    INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
    record       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (model_id, round_number, attempt)
)""",
    """CREATE UNIQUE INDEX IF NOT EXISTS rounds_one_success
    ON rounds (model_id, round_number) WHERE succeeded = 1""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
    model_id     TEXT NOT NULL REFERENCES models (model_id),
    round_number INTEGER NOT NULL CHECK (round_number >= 0),
    num_params   INTEGER NOT NULL,
    params       BLOB NOT NULL CHECK (length(params) = 8 * num_params),
    state        BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (model_id, round_number)
)""",
    """CREATE TABLE IF NOT EXISTS privacy_ledger (
    model_id     TEXT NOT NULL REFERENCES models (model_id),
    round_number INTEGER NOT NULL CHECK (round_number >= 1),
    entry        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (model_id, round_number)
)""",
    """CREATE TABLE IF NOT EXISTS rewinds (
    rewind_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id   TEXT NOT NULL REFERENCES models (model_id),
    to_round   INTEGER NOT NULL CHECK (to_round >= 0),
    from_round INTEGER NOT NULL CHECK (from_round >= to_round),
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS superseded_rounds (
    rewind_id    INTEGER NOT NULL REFERENCES rewinds (rewind_id),
    model_id     TEXT NOT NULL,
    round_number INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    succeeded    INTEGER NOT NULL,
    record       TEXT NOT NULL,
    created_at   TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS superseded_ledger (
    rewind_id    INTEGER NOT NULL REFERENCES rewinds (rewind_id),
    model_id     TEXT NOT NULL,
    round_number INTEGER NOT NULL,
    entry        TEXT NOT NULL,
    created_at   TEXT NOT NULL
)""",
)


def connect(path: Path | None) -> sqlite3.Connection:
    """Open the workspace database at `path` and make sure its schema is current.

    Parameters
    ----------
    path : pathlib.Path or None
        The database file (created if missing; its directory must exist), or ``None`` for a
        private in-memory database.

    Returns
    -------
    sqlite3.Connection
        In autocommit mode (``isolation_level=None``; callers open their own transactions),
        usable from any thread (``check_same_thread=False``; callers serialise access), with
        foreign keys on and, for a file, WAL journal mode and ``synchronous=NORMAL``.

    Raises
    ------
    WorkspaceError
        If the directory is missing, the file is not a SQLite database, it is a SQLite
        database of another application, or it was written by a newer schema version.
    """
    if path is not None:
        try:
            path.is_dir()
        except OSError as exc:  # e.g. a file name longer than the system allows
            raise WorkspaceError(f"Cannot use the workspace path {str(path)!r}: {exc}.") from exc
        if not path.parent.is_dir():
            raise WorkspaceError(
                f"The workspace directory must exist. Found no directory {str(path.parent)!r}. "
                "Create it first (e.g. Path(...).mkdir(parents=True))."
            )
        if path.is_dir():
            raise WorkspaceError(
                f"The workspace path must be a file. Found directory {str(path)!r}."
            )
    target = ":memory:" if path is None else str(path)
    if target == ":memory:" and path is not None:
        target = str(path.absolute())  # a file of that name, not SQLite's in-memory database
    if path is not None:
        _check_header(path)
    try:
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    except (sqlite3.Error, ValueError, OSError, UnicodeError) as exc:
        raise WorkspaceError(f"Cannot open workspace {target!r}: {exc}.") from exc
    try:
        _prepare(conn, target, persistent=path is not None)
    except BaseException:
        conn.close()
        raise
    return conn


#: ``PRAGMA application_id`` of a heliosfl workspace ("HFL1").
APPLICATION_ID = 0x48464C31
_HEADER = b"SQLite format 3\x00"
_CORE_TABLES = {"meta", "models", "rounds", "checkpoints"}


def _check_header(path: Path) -> None:
    """Refuse, before SQLite touches it, an existing non-empty file that is not SQLite."""
    try:
        if not path.exists() or path.stat().st_size == 0:
            return
        with path.open("rb") as handle:
            header = handle.read(len(_HEADER))
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"Cannot read the workspace path {str(path)!r}: {exc}.") from exc
    if header != _HEADER:
        raise WorkspaceError(
            f"The workspace file must be a heliosfl SQLite database. Found {str(path)!r}, which "
            "is not a SQLite database; it was left unchanged. Choose another path."
        )


def _prepare(conn: sqlite3.Connection, target: str, *, persistent: bool) -> None:
    try:
        # Reading the schema is the first touch of the file: it fails on a non-database.
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise WorkspaceError(
            f"The workspace file must be a heliosfl SQLite database. Found {target!r}, "
            f"which SQLite cannot read ({exc}). Choose another path."
        ) from exc
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    ours = app_id == APPLICATION_ID or (app_id == 0 and tables >= _CORE_TABLES)
    if tables and not ours:
        raise WorkspaceError(
            f"The workspace file must be a heliosfl database. Found {target!r}, a SQLite "
            "database of another application; it was left unchanged. Choose another path."
        )
    try:
        if tables:  # an existing workspace: check its version before changing anything
            _check_version(conn, target)
        # Deleted content is overwritten with zeros (erasure, crypto-shredding).
        conn.execute("PRAGMA secure_delete=ON")
        if persistent:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            _create(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise WorkspaceError(f"Cannot prepare workspace {target!r}: {exc}.") from exc


def _check_version(conn: sqlite3.Connection, target: str) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    found = int(row[0]) if row is not None and str(row[0]).isdigit() else -1
    if found > SCHEMA_VERSION:
        raise WorkspaceError(
            f"The workspace schema version must be at most {SCHEMA_VERSION} (what this "
            f"heliosfl reads). Found version {found} in {target!r}, written by a newer "
            "heliosfl; it was left unchanged. Upgrade heliosfl to open it."
        )
    if found < 1:
        raise WorkspaceError(
            f"The workspace schema version must be an integer from 1 to {SCHEMA_VERSION}. "
            f"Found {None if row is None else row[0]!r} in {target!r}; the file is damaged."
        )


def _create(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    for statement in _TABLES:  # not executescript: it would COMMIT the open transaction
        conn.execute(statement)
    # Migrations only add tables, so an older file is current once they exist.
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?",
        (str(SCHEMA_VERSION), SCHEMA_VERSION),
    )


def model_size(conn: sqlite3.Connection, model_id: str) -> int:
    """Return the parameter count of `model_id`.

    Raises
    ------
    ModelNotFound
        If no model named `model_id` is stored.
    """
    found = conn.execute("SELECT num_params FROM models WHERE model_id = ?", (model_id,))
    row = found.fetchone()
    if row is None:
        known = tuple(r[0] for r in conn.execute("SELECT model_id FROM models ORDER BY rowid"))
        raise ModelNotFound(model_id, known)
    return int(row[0])


def last_round(conn: sqlite3.Connection, model_id: str) -> int:
    """Return the last checkpointed round of a stored model (0: only the initial one)."""
    query = "SELECT MAX(round_number) FROM checkpoints WHERE model_id = ?"
    return int(conn.execute(query, (model_id,)).fetchone()[0])


def insert_round(
    conn: sqlite3.Connection,
    model_id: str,
    round_number: int,
    record_json: str,
    *,
    succeeded: bool,
    created_at: str,
) -> None:
    """Append a round attempt; its attempt number is one more than the round's last."""
    (attempt,) = conn.execute(
        "SELECT COALESCE(MAX(attempt), 0) + 1 FROM rounds WHERE model_id = ? AND round_number = ?",
        (model_id, round_number),
    ).fetchone()
    conn.execute(
        "INSERT INTO rounds (model_id, round_number, attempt, succeeded, record, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (model_id, round_number, attempt, int(succeeded), record_json, created_at),
    )


def insert_checkpoint(
    conn: sqlite3.Connection,
    model_id: str,
    round_number: int,
    params: tuple[bytes, int],
    state_blob: bytes,
    created_at: str,
) -> None:
    """Store the checkpoint of one round; `params` is what :func:`encode_params` returned."""
    conn.execute(
        "INSERT INTO checkpoints (model_id, round_number, num_params, params, state, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (model_id, round_number, params[1], params[0], state_blob, created_at),
    )


def select_checkpoint(
    conn: sqlite3.Connection, model_id: str, round_number: int
) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.float64]], datetime] | None:
    """Return the decoded ``(params, state, created_at)`` of one round, or ``None``."""
    row = conn.execute(
        "SELECT num_params, params, state, created_at FROM checkpoints "
        "WHERE model_id = ? AND round_number = ?",
        (model_id, round_number),
    ).fetchone()
    if row is None:
        return None
    return decode_params(row[1], int(row[0])), decode_state(row[2]), parse_time(row[3])


def _clean(value: Any, field: str) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    if isinstance(value, np.generic | np.ndarray):
        if value.dtype.kind in "biuf":
            return _clean(value.tolist(), field)
    elif isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{field} key", key, "a str (JSON object keys are strings)")
            out[key] = _clean(item, field)
        return out
    elif isinstance(value, list | tuple):
        return [_clean(item, field) for item in value]
    raise ConfigError(
        field,
        value,
        "JSON-serialisable (dict with str keys, list, tuple, str, int, float, bool, None, "
        "or a numeric numpy scalar or array)",
    )


def to_json(value: Mapping[str, Any], field: str) -> str:
    """Encode a mapping as JSON text, writing non-finite floats as ``null``.

    Records may hold a ``nan`` loss (a diverged round); JSON has no NaN, so ``nan``,
    ``inf`` and ``-inf`` are stored as ``null`` and read back as ``None``. Tuples come back
    as lists and numpy scalars/arrays as Python numbers/lists.

    Parameters
    ----------
    value : Mapping[str, Any]
        The record, spec or config.
    field : str
        Its name, for error messages.

    Returns
    -------
    str
        Compact JSON text.

    Raises
    ------
    ConfigError
        If `value` is not a mapping or holds something JSON cannot represent.
    """
    if not isinstance(value, Mapping):
        raise ConfigError(field, f"<{type(value).__name__}>", "a mapping (dict) of JSON values")
    try:
        return json.dumps(_clean(value, field), allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise ConfigError(
            field, "<nested too deep>", "JSON nested at most a few hundred levels"
        ) from None


def from_json(text: str) -> dict[str, Any]:
    """Decode JSON text written by :func:`to_json`."""
    try:
        result: dict[str, Any] = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise WorkspaceError(
            f"A stored record must be JSON. Found text that is not ({exc}); the workspace "
            "file is damaged."
        ) from None
    return result


def encode_params(params: npt.ArrayLike, field: str = "params") -> tuple[bytes, int]:
    """Return `params` as raw little-endian float64 bytes and their count.

    Raises
    ------
    ConfigError
        If `params` is not a non-empty 1-D array of real numbers.
    """
    try:
        array = np.asarray(params)
    except (ValueError, TypeError, OverflowError):
        raise ConfigError(
            field, f"<{type(params).__name__} of ragged rows>", "a 1-D array"
        ) from None
    if array.dtype.kind not in "biuf" or array.ndim != 1 or array.size == 0:
        raise ConfigError(
            field,
            f"array of shape {array.shape} and dtype {array.dtype}",
            "a non-empty 1-D array of real numbers",
        )
    return np.asarray(array, dtype="<f8").tobytes(), int(array.size)


def decode_params(blob: bytes, num_params: int) -> npt.NDArray[np.float64]:
    """Return a fresh, writable float64 vector from bytes written by :func:`encode_params`."""
    if len(blob) != 8 * num_params:
        raise WorkspaceError(
            f"A stored parameter vector must hold {8 * num_params} bytes. Found {len(blob)}; "
            "the workspace file is damaged."
        )
    return np.frombuffer(blob, dtype="<f8").astype(np.float64, copy=True)


def encode_state(state: Mapping[str, npt.ArrayLike] | None) -> bytes:
    """Return strategy state as an ``.npz`` archive, as ``np.savez`` writes (float64, any shape).

    Raises
    ------
    ConfigError
        If a key is not a non-empty str or a value is not an array of real numbers.
    """
    arrays: dict[str, npt.NDArray[np.float64]] = {}
    if state is not None and not isinstance(state, Mapping):
        raise ConfigError("state", f"<{type(state).__name__}>", "a mapping of names to arrays")
    for key, value in (state or {}).items():
        allowed = "a non-empty str of valid Unicode, not ending in '.npy'"
        if not isinstance(key, str) or not key or key.endswith(".npy"):
            raise ConfigError("state key", key, allowed)
        try:
            key.encode("utf-8")
            array = np.asarray(value)
        except UnicodeEncodeError:
            raise ConfigError("state key", "<str>", allowed) from None
        except (ValueError, TypeError, OverflowError):
            raise ConfigError(
                f"state[{key!r}]", "<ragged rows>", "an array of real numbers"
            ) from None
        if array.dtype.kind not in "biuf":
            raise ConfigError(f"state[{key!r}]", f"dtype {array.dtype}", "an array of real numbers")
        arrays[key] = np.asarray(array, dtype="<f8")
    buffer = io.BytesIO()
    # What np.savez writes, without its keyword names ("file") clashing with state keys.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def decode_state(blob: bytes) -> dict[str, npt.NDArray[np.float64]]:
    """Return fresh, writable float64 arrays from an archive written by :func:`encode_state`.

    Raises
    ------
    WorkspaceError
        If the blob is not such an archive, e.g. it holds pickled objects (never loaded).
    """
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            return {key: np.array(archive[key], dtype=np.float64) for key in archive.files}
    except (ValueError, TypeError, OSError, zipfile.BadZipFile) as exc:
        raise WorkspaceError(
            f"A stored strategy state must be an .npz archive of numbers. Found one that "
            f"cannot be read ({exc}); the workspace file is damaged."
        ) from exc


def now_utc() -> str:
    """Return the current UTC time as ISO-8601 text with its offset."""
    return datetime.now(UTC).isoformat()


def parse_time(text: str) -> datetime:
    """Return the timezone-aware UTC datetime stored by :func:`now_utc`."""
    return datetime.fromisoformat(text).astimezone(UTC)
