"""The workspace: models, round history and one checkpoint per round, in one SQLite file.

``Workspace(path)`` persists to a file (WAL journal, ``synchronous=NORMAL``, foreign keys
on, schema versioned in a ``meta`` table); ``Workspace()`` keeps everything in memory, so a
notebook re-run from the top is a fresh experiment. Every write is one transaction: a round's
record and its checkpoint land together or not at all, and a failure leaves earlier data
intact. History is the audit trail that privacy accounting and unlearning rely on, so
nothing is deleted except by :meth:`Workspace.rewind` (a GDPR erasure's unlearning): it
archives the rewound rounds and their privacy charges, which keep counting, and deletes
their checkpoints, which hold the erased data's influence. Deleted content is zeroed
(``secure_delete``); :meth:`Workspace.scrub` also empties the WAL.

The methods are synchronous and thread-safe (one connection, one lock); the engine calls
them through :func:`asyncio.to_thread`. JSON values (specs, configs, round records) are
stored with non-finite floats as ``null``: a ``nan`` loss reads back as ``None``. The
on-disk layout is in :mod:`heliosfl.store_schema`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ClosedError, ConfigError, WorkspaceError
from heliosfl.store_schema import (
    SCHEMA_VERSION,
    connect,
    encode_params,
    encode_state,
    from_json,
    insert_checkpoint,
    insert_round,
    last_round,
    model_size,
    now_utc,
    parse_time,
    select_checkpoint,
    to_json,
)
from heliosfl.validation import check_id

__all__ = ["SCHEMA_VERSION", "Checkpoint", "ModelRecord", "Rewind", "Workspace"]

#: A write run inside another write's transaction (e.g. GDPR lineage with a round).
ExtraWrite = Callable[[sqlite3.Connection], object]

_MAX_MODEL_ID_CHARS = 200


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A registered model, as stored.

    Attributes
    ----------
    model_id : str
        The model's name, unique in its workspace.
    spec : dict[str, Any]
        How to rebuild the model, e.g. ``{"model_type": "mlp", "input_dim": 30}``.
    config : dict[str, Any]
        The engine configuration (``Config.to_dict()``) at registration.
    created_at : datetime
        When the model was registered (UTC, timezone-aware).
    """

    model_id: str
    spec: dict[str, Any]
    config: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True, eq=False)
class Checkpoint:
    """A model's parameters (and strategy state) after one committed round.

    Compared by identity (arrays have no single truth value); compare ``params`` with
    :func:`numpy.array_equal`.

    Attributes
    ----------
    model_id : str
        The model.
    round_number : int
        The round that produced these parameters; ``0`` is the initial parameters.
    params : numpy.ndarray
        The 1-D float64 parameter vector (a fresh, writable copy).
    state : dict[str, numpy.ndarray]
        Aggregation-strategy state, e.g. FedAdam moments; empty if the strategy has none.
    created_at : datetime
        When the checkpoint was written (UTC, timezone-aware).
    """

    model_id: str
    round_number: int
    params: npt.NDArray[np.float64]
    state: dict[str, npt.NDArray[np.float64]]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Rewind:
    """What :meth:`Workspace.rewind` did.

    Attributes
    ----------
    rewind_id : int
        Its number in the workspace (the archive of superseded rounds is keyed by it).
    model_id : str
        The model.
    to_round : int
        The round the model was rewound to (its checkpoint is now the latest).
    from_round : int
        The last committed round before the rewind.
    rounds_archived : int
        Round records (attempts included) moved to ``superseded_rounds``.
    checkpoints_deleted : int
        Checkpoints deleted (rounds ``to_round + 1`` to ``from_round``).
    charges_archived : int
        Privacy charges moved to ``superseded_ledger``; they still count.
    """

    rewind_id: int
    model_id: str
    to_round: int
    from_round: int
    rounds_archived: int
    checkpoints_deleted: int
    charges_archived: int


def _check_model_id(model_id: object) -> str:
    return check_id("model_id", model_id, max_chars=_MAX_MODEL_ID_CHARS)


def _check_path(path: object) -> Path | None:
    """The workspace file, or ``None`` for an in-memory workspace (``None`` or ``":memory:"``)."""
    if path is None or (isinstance(path, str) and path == ":memory:"):
        return None
    if isinstance(path, str | os.PathLike):
        try:
            text = os.fspath(path)
            if isinstance(text, str):
                text.encode("utf-8")
                if "\x00" in text:
                    raise ValueError
                return Path(path)
        except (TypeError, ValueError, UnicodeError):  # bad __fspath__, NUL, lone surrogate
            pass
    raise ConfigError(
        "path", path, "a file path (str or os.PathLike) or None for an in-memory workspace"
    )


def _check_round_number(round_number: object) -> int:
    if isinstance(round_number, bool) or not isinstance(round_number, int) or round_number < 1:
        raise ConfigError("round_number", round_number, "an int >= 1")
    return round_number


class Workspace:
    """Persistent (or in-memory) storage of models, round history and checkpoints.

    Every method raises :class:`~heliosfl.errors.ClosedError` after :meth:`close` and
    :class:`~heliosfl.errors.ConfigError` for a `model_id` that is not a non-empty str of at
    most 200 characters; those taking a stored model raise
    :class:`~heliosfl.errors.ModelNotFound` for an unknown one. A write that raises has
    written nothing.

    Parameters
    ----------
    path : str or os.PathLike or None, optional
        The SQLite file, created if missing (its directory must exist). ``None`` (the
        default) or the string ``":memory:"`` keeps everything in memory for the life of
        this object.

    Raises
    ------
    ConfigError
        If ``path`` is not a str, an ``os.PathLike`` naming a str path, or None.
    WorkspaceError
        If the directory is missing, the file is not a heliosfl SQLite database, or it was
        written by a newer heliosfl (newer schema version).

    Examples
    --------
    >>> import numpy as np
    >>> with Workspace() as ws:
    ...     _ = ws.save_model("m", {"model_type": "mlp"}, {}, np.zeros(3))
    ...     ws.commit_round("m", 1, {"loss": float("nan")}, np.ones(3))
    ...     ws.rounds("m"), ws.last_round("m")
    ([{'loss': None}], 1)
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._path = _check_path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = connect(self._path)

    @property
    def path(self) -> Path | None:
        """The database file, or ``None`` for an in-memory workspace."""
        return self._path

    @property
    def is_persistent(self) -> bool:
        """Whether the workspace is a file that outlives this object."""
        return self._path is not None

    def __repr__(self) -> str:
        where = "in-memory" if self._path is None else repr(str(self._path))
        closed = ", closed" if self._conn is None else ""
        return f"Workspace({where}{closed})"

    # -- plumbing -----------------------------------------------------------------------

    def _where(self) -> str:
        return "in-memory workspace" if self._path is None else f"workspace {str(self._path)!r}"

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise ClosedError("Workspace")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise WorkspaceError(f"Cannot read the {self._where()}: {exc}.") from exc

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one IMMEDIATE transaction; commit on success, else roll back."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise ClosedError("Workspace")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise WorkspaceError(
                    f"Cannot write to the {self._where()}: {exc}. Nothing was written."
                ) from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the workspace, for modules that keep their own tables.

        Compliance modules (audit log, encrypted PHI, keys) create their tables with
        ``CREATE TABLE IF NOT EXISTS`` inside it. Commits on success, rolls back on any
        error (re-raised; SQLite errors become :class:`WorkspaceError`). Thread-safe.

        Raises
        ------
        ClosedError
            If the workspace was closed.
        WorkspaceError
            If the write fails; nothing is written.
        """
        with self._writing() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads, under the workspace lock (see :meth:`transaction`)."""
        with self._reading() as conn:
            yield conn

    def _check_next_round(self, conn: sqlite3.Connection, model_id: str, number: int) -> None:
        model_size(conn, model_id)
        expected = last_round(conn, model_id) + 1
        if number != expected:
            raise WorkspaceError(
                f"round_number must be {expected}. Found {number}. Model {model_id!r} has "
                f"committed rounds up to {expected - 1} in the {self._where()}; a round "
                "counted twice or skipped is refused. Nothing was written."
            )

    # -- models -------------------------------------------------------------------------

    def save_model(
        self,
        model_id: str,
        spec: Mapping[str, Any],
        config: Mapping[str, Any],
        initial_params: npt.ArrayLike,
    ) -> ModelRecord:
        """Register a model and store its initial parameters as the round-0 checkpoint.

        The model row and the checkpoint are written in one transaction.

        Parameters
        ----------
        model_id : str
            A name not yet used in this workspace.
        spec : Mapping[str, Any]
            JSON description of how to rebuild the model.
        config : Mapping[str, Any]
            JSON engine configuration at registration.
        initial_params : array_like
            The non-empty 1-D parameter vector; its length fixes the model's size.

        Returns
        -------
        ModelRecord
            The stored record, as :meth:`load_model` will return it.

        Raises
        ------
        ConfigError
            If `spec`, `config` or `initial_params` is malformed.
        WorkspaceError
            If a model named `model_id` already exists (history is never overwritten), or
            the write fails.
        """
        _check_model_id(model_id)
        spec_json, config_json = to_json(spec, "spec"), to_json(config, "config")
        params = encode_params(initial_params, "initial_params")
        state_blob, created_at = encode_state(None), now_utc()
        with self._writing() as conn:
            exists = conn.execute("SELECT 1 FROM models WHERE model_id = ?", (model_id,))
            if exists.fetchone() is not None:
                raise WorkspaceError(
                    f"model_id must be new in the {self._where()}. Found {model_id!r}, which is "
                    f"already registered with its history. Load it with "
                    f"load_model({model_id!r}) or choose another id."
                )
            conn.execute(
                "INSERT INTO models (model_id, spec, config, num_params, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (model_id, spec_json, config_json, params[1], created_at),
            )
            insert_checkpoint(conn, model_id, 0, params, state_blob, created_at)
        return ModelRecord(
            model_id, from_json(spec_json), from_json(config_json), parse_time(created_at)
        )

    def load_model(self, model_id: str) -> ModelRecord | None:
        """Return the stored record of `model_id`, or ``None`` if there is none."""
        _check_model_id(model_id)
        with self._reading() as conn:
            row = conn.execute(
                "SELECT spec, config, created_at FROM models WHERE model_id = ?", (model_id,)
            ).fetchone()
        if row is None:
            return None
        return ModelRecord(model_id, from_json(row[0]), from_json(row[1]), parse_time(row[2]))

    def list_models(self) -> list[str]:
        """Return the ids of all stored models, in registration order."""
        with self._reading() as conn:
            return [row[0] for row in conn.execute("SELECT model_id FROM models ORDER BY rowid")]

    def has_model(self, model_id: str) -> bool:
        """Return whether a model named `model_id` is stored."""
        return self.load_model(model_id) is not None

    # -- rounds -------------------------------------------------------------------------

    def commit_round(
        self,
        model_id: str,
        round_number: int,
        record: Mapping[str, Any],
        params: npt.ArrayLike,
        state: Mapping[str, npt.ArrayLike] | None = None,
        ledger_entry: Mapping[str, Any] | None = None,
        extra_writes: Sequence[ExtraWrite] = (),
    ) -> None:
        """Store a completed round: its record, its checkpoint and its privacy charge, atomically.

        Parameters
        ----------
        model_id : str
            A stored model.
        round_number : int
            Must be exactly :meth:`last_round` + 1, so a round is never counted twice or
            lost.
        record : Mapping[str, Any]
            The round's JSON record (non-finite floats are stored as ``null``).
        params : array_like
            The parameters after the round: 1-D, as many as the initial parameters.
        state : Mapping[str, array_like], optional
            Aggregation-strategy state to restore on resume; float64 arrays of any shape.
        ledger_entry : Mapping[str, Any], optional
            The round's privacy charge (its DP event as JSON), written in the same
            transaction: a round is never applied without its charge, nor charged without
            being applied.
        extra_writes : sequence of callable, optional
            Further writes of the round (each called with the connection, inside the same
            transaction), e.g. which data subjects contributed to it; if one raises,
            nothing is written.

        Raises
        ------
        ConfigError
            If `round_number`, `record`, `params` or `state` is malformed.
        WorkspaceError
            If `round_number` is not the next round, or the write fails.
        """
        _check_model_id(model_id)
        _check_round_number(round_number)
        record_json, encoded = to_json(record, "record"), encode_params(params)
        state_blob, created_at = encode_state(state), now_utc()
        entry_json = None if ledger_entry is None else to_json(ledger_entry, "ledger_entry")
        with self._writing() as conn:
            self._check_next_round(conn, model_id, round_number)
            if encoded[1] != (size := model_size(conn, model_id)):
                raise ConfigError("params", f"{encoded[1]} values", f"{size} values ({model_id!r})")
            insert_round(
                conn, model_id, round_number, record_json, succeeded=True, created_at=created_at
            )
            insert_checkpoint(conn, model_id, round_number, encoded, state_blob, created_at)
            if entry_json is not None:
                conn.execute(
                    "INSERT INTO privacy_ledger (model_id, round_number, entry, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (model_id, round_number, entry_json, created_at),
                )
            for write in extra_writes:
                write(conn)

    def privacy_ledger(self, model_id: str) -> list[dict[str, Any]]:
        """Every privacy charge of a model: of rounds rewound by :meth:`rewind`, then current.

        A rewound round's output was released before it was rewound, so its charge still
        counts towards the budget; such entries carry ``"superseded": <rewind_id>``.

        Parameters
        ----------
        model_id : str
            A stored model.

        Returns
        -------
        list of dict
            One JSON entry per charge (as given to :meth:`commit_round`), with its
            ``round_number``: the superseded ones in the order they were charged, then
            those of the committed rounds in round order.
        """
        _check_model_id(model_id)
        with self._reading() as conn:
            old = conn.execute(
                "SELECT round_number, entry, rewind_id FROM superseded_ledger WHERE model_id = ? "
                "ORDER BY created_at, rowid",
                (model_id,),
            ).fetchall()
            rows = conn.execute(
                "SELECT round_number, entry FROM privacy_ledger WHERE model_id = ? "
                "ORDER BY round_number",
                (model_id,),
            ).fetchall()
        superseded = [
            {**json.loads(entry), "round_number": number, "superseded": rewind_id}
            for number, entry, rewind_id in old
        ]
        return superseded + [
            {**json.loads(entry), "round_number": number} for number, entry in rows
        ]

    def rewind(
        self,
        model_id: str,
        to_round: int,
        reason: Mapping[str, Any],
        *,
        extra_writes: Sequence[ExtraWrite] = (),
    ) -> Rewind:
        """Roll a model back to the checkpoint of `to_round`, in one transaction.

        The records of later rounds (failed attempts included) move to
        ``superseded_rounds`` and their privacy charges to ``superseded_ledger`` (they
        keep counting); their checkpoints are deleted (zeroed on disk), so no parameters
        derived from those rounds remain. The next round to commit is ``to_round + 1``.
        Used to unlearn erased data; rewinding to the last round only records the reason.

        Parameters
        ----------
        model_id : str
            A stored model.
        to_round : int
            A committed round, ``0`` (the initial parameters) to :meth:`last_round`.
        reason : Mapping[str, Any]
            JSON kept with the rewind (e.g. the erasure request it serves).
        extra_writes : sequence of callable, optional
            Further writes in the same transaction (e.g. dropping the lineage of the
            rewound rounds).

        Returns
        -------
        Rewind
            What was archived and deleted.

        Raises
        ------
        ConfigError
            If `to_round` is not an int in that range, or `reason` is not JSON.
        WorkspaceError
            If the write fails; nothing is changed.
        """
        _check_model_id(model_id)
        reason_json, created_at = to_json(reason, "reason"), now_utc()
        with self._writing() as conn:
            model_size(conn, model_id)
            last = last_round(conn, model_id)
            if isinstance(to_round, bool) or not isinstance(to_round, int):
                raise ConfigError("to_round", to_round, f"an int from 0 to {last}")
            if not 0 <= to_round <= last:
                raise ConfigError("to_round", to_round, f"a committed round, 0 to {last}")
            rewind_id = conn.execute(
                "INSERT INTO rewinds (model_id, to_round, from_round, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (model_id, to_round, last, reason_json, created_at),
            ).lastrowid
            later = (model_id, to_round)
            rounds = conn.execute(
                "INSERT INTO superseded_rounds SELECT ?, model_id, round_number, attempt, "
                "succeeded, record, created_at FROM rounds WHERE model_id = ? AND round_number > ? "
                "ORDER BY seq",
                (rewind_id, *later),
            ).rowcount
            conn.execute("DELETE FROM rounds WHERE model_id = ? AND round_number > ?", later)
            charges = conn.execute(
                "INSERT INTO superseded_ledger SELECT ?, model_id, round_number, entry, "
                "created_at FROM privacy_ledger WHERE model_id = ? AND round_number > ? "
                "ORDER BY round_number",
                (rewind_id, *later),
            ).rowcount
            conn.execute(
                "DELETE FROM privacy_ledger WHERE model_id = ? AND round_number > ?", later
            )
            deleted = conn.execute(
                "DELETE FROM checkpoints WHERE model_id = ? AND round_number > ?", later
            ).rowcount
            for write in extra_writes:
                write(conn)
        assert rewind_id is not None  # noqa: S101 - AUTOINCREMENT always gives one
        return Rewind(rewind_id, model_id, to_round, last, rounds, deleted, charges)

    def superseded_rounds(self, model_id: str) -> list[dict[str, Any]]:
        """The round records archived by :meth:`rewind`, each with its ``rewind_id``."""
        _check_model_id(model_id)
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT rewind_id, record FROM superseded_rounds WHERE model_id = ? ORDER BY rowid",
                (model_id,),
            ).fetchall()
        return [{**from_json(record), "rewind_id": rewind_id} for rewind_id, record in rows]

    def scrub(self) -> None:
        """Empty the WAL into the database file, so deleted pages live nowhere else.

        Deleted content is already zeroed in the database file (``secure_delete``); the
        WAL may still hold older copies of those pages until it is checkpointed and
        truncated, which this does. Nothing to do for an in-memory workspace.
        """
        with self._reading() as conn:
            if self._path is not None:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def record_failed_round(
        self, model_id: str, round_number: int, record: Mapping[str, Any]
    ) -> None:
        """Keep the record of a round attempt that did not change the model.

        A failed attempt (e.g. too few updates for the quorum) has no checkpoint. Several
        attempts may share a round number; the attempt that finally succeeds is committed
        with :meth:`commit_round` under the same number.

        Parameters
        ----------
        model_id : str
            A stored model.
        round_number : int
            The round that was attempted: :meth:`last_round` + 1.
        record : Mapping[str, Any]
            The attempt's JSON record.

        Raises
        ------
        ConfigError
            If `round_number` or `record` is malformed.
        WorkspaceError
            If `round_number` is not the next round, or the write fails.
        """
        _check_model_id(model_id)
        _check_round_number(round_number)
        record_json, created_at = to_json(record, "record"), now_utc()
        with self._writing() as conn:
            self._check_next_round(conn, model_id, round_number)
            insert_round(
                conn, model_id, round_number, record_json, succeeded=False, created_at=created_at
            )

    def rounds(self, model_id: str, *, include_failed: bool = False) -> list[dict[str, Any]]:
        """Return the round records of `model_id`, ordered by round, then attempt.

        Parameters
        ----------
        model_id : str
            A stored model.
        include_failed : bool, default False
            Also return the records of failed attempts (see :meth:`record_failed_round`).

        Returns
        -------
        list of dict
            Fresh copies of the stored JSON records (``nan`` reads back as ``None``).
        """
        _check_model_id(model_id)
        only_success = "" if include_failed else "AND succeeded = 1 "
        with self._reading() as conn:
            model_size(conn, model_id)
            rows = conn.execute(
                f"SELECT record FROM rounds WHERE model_id = ? {only_success}"  # noqa: S608
                "ORDER BY round_number, attempt",
                (model_id,),
            ).fetchall()
        return [from_json(row[0]) for row in rows]

    def last_round(self, model_id: str) -> int:
        """Return the last committed round of `model_id`; ``0`` if only the initial one."""
        _check_model_id(model_id)
        with self._reading() as conn:
            model_size(conn, model_id)
            return last_round(conn, model_id)

    def latest_checkpoint(self, model_id: str) -> Checkpoint:
        """Return the checkpoint of the last committed round (round 0 if none)."""
        return self._checkpoint(model_id, None)

    def checkpoint(self, model_id: str, round_number: int) -> Checkpoint:
        """Return the checkpoint written by round `round_number` (``0``: initial params).

        Raises
        ------
        WorkspaceError
            If that round has no checkpoint.
        """
        if (
            isinstance(round_number, bool)
            or not isinstance(round_number, int)
            or not 0 <= round_number < 2**62
        ):
            raise ConfigError("round_number", round_number, "an int >= 0")
        return self._checkpoint(model_id, round_number)

    def _checkpoint(self, model_id: str, round_number: int | None) -> Checkpoint:
        _check_model_id(model_id)
        with self._reading() as conn:
            model_size(conn, model_id)
            last = last_round(conn, model_id)
            number = last if round_number is None else round_number
            found = select_checkpoint(conn, model_id, number)
        if found is None:
            raise WorkspaceError(
                f"round_number must be a committed round of model {model_id!r} (0 to {last}). "
                f"Found {round_number}."
            )
        params, state, created_at = found
        return Checkpoint(model_id, number, params, state, created_at)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; later use raises :class:`~heliosfl.errors.ClosedError`.

        Closing twice is harmless. Everything committed is already on disk.
        """
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Closing a WAL file checkpoints it (disk I/O): keep that off the event loop.
        await asyncio.to_thread(self.close)
