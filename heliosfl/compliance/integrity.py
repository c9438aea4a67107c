"""Integrity tags for model checkpoints (45 CFR 164.312(c)): HMAC-SHA256, verified on read.

Each committed checkpoint (parameters and aggregation state) gets a tag under a key only
the compliance manager holds, written in the same transaction as the checkpoint;
verification recomputes every tag and names the first checkpoint whose bytes no longer
match, or that has no tag. This detects a modified or swapped-in checkpoint; it does not
stop someone with write access to the workspace from deleting checkpoints together with
their tags (the audit log records the rounds that existed).
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ComplianceError
from heliosfl.store import Workspace

__all__ = ["CheckpointTags"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS checkpoint_tags (model_id TEXT NOT NULL, round_number INTEGER "
    "NOT NULL, tag TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (model_id, round_number))"
)


class CheckpointTags:
    """HMAC tags of a workspace's checkpoints.

    Parameters
    ----------
    workspace : Workspace
        Where the checkpoints and the tags are.
    key : bytes
        The tag key (at least 32 bytes), kept by the compliance manager.
    """

    def __init__(self, workspace: Workspace, key: bytes) -> None:
        if len(key) < 32:
            raise ComplianceError("The checkpoint integrity key must be at least 32 bytes.")
        self._workspace = workspace
        self._key = bytes(key)
        with workspace.transaction() as conn:
            conn.execute(_SCHEMA)

    def _mac(
        self,
        model_id: str,
        round_number: int,
        params: npt.NDArray[np.float64],
        state: Mapping[str, npt.NDArray[np.float64]],
    ) -> str:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        mac.update(f"{model_id}\x00{round_number}\x00".encode())
        mac.update(np.ascontiguousarray(params, dtype="<f8").tobytes())
        for name in sorted(state):
            mac.update(name.encode() + b"\x00")
            mac.update(np.ascontiguousarray(state[name], dtype="<f8").tobytes())
        return mac.hexdigest()

    def _tag(self, model_id: str, round_number: int) -> str:
        checkpoint = self._workspace.checkpoint(model_id, round_number)
        return self._mac(model_id, round_number, checkpoint.params, checkpoint.state)

    def tag(self, model_id: str, round_number: int) -> None:
        """Tag one committed checkpoint (idempotent for an unchanged checkpoint)."""
        value = self._tag(model_id, round_number)
        with self._workspace.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO checkpoint_tags VALUES (?, ?, ?, ?)",
                (model_id, round_number, value, datetime.now(UTC).isoformat()),
            )

    def tag_write(
        self,
        model_id: str,
        round_number: int,
        params: npt.NDArray[np.float64],
        state: Mapping[str, npt.NDArray[np.float64]],
    ) -> Callable[[sqlite3.Connection], None]:
        """The write that tags a checkpoint inside the transaction committing it.

        A round and its tag land together, so a crash can never leave a committed
        checkpoint untagged.
        """
        value = self._mac(model_id, round_number, params, state)
        when = datetime.now(UTC).isoformat()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO checkpoint_tags VALUES (?, ?, ?, ?)",
                (model_id, round_number, value, when),
            )

        return write

    def tag_all(self, model_id: str) -> int:
        """Tag every checkpoint of `model_id` that has no tag yet; return how many.

        Called when HIPAA is attached to an engine whose model already has checkpoints:
        from then on, :meth:`verify` requires a tag for every checkpoint.
        """
        with self._workspace.reading() as conn:
            rows = conn.execute(
                "SELECT round_number FROM checkpoints WHERE model_id = ? AND round_number NOT "
                "IN (SELECT round_number FROM checkpoint_tags WHERE model_id = ?)",
                (model_id, model_id),
            ).fetchall()
        for (number,) in rows:
            self.tag(model_id, int(number))
        return len(rows)

    def verify(self, model_id: str | None = None) -> tuple[int, tuple[str, int] | None]:
        """Recompute every tag; return (checkpoints verified, first bad (model, round)).

        A checkpoint of a tagged model without a tag of its own is bad too (it may have
        been swapped in, or written by a run that crashed before tagging).
        """
        where, args = ("", ()) if model_id is None else ("WHERE model_id = ?", (model_id,))
        with self._workspace.reading() as conn:
            rows = conn.execute(
                f"SELECT model_id, round_number, tag FROM checkpoint_tags {where} "  # noqa: S608
                "ORDER BY model_id, round_number",
                args,
            ).fetchall()
            tagged_models = sorted({row[0] for row in rows})
            untagged = []
            for model in tagged_models:
                untagged += conn.execute(
                    "SELECT model_id, round_number FROM checkpoints WHERE model_id = ? AND "
                    "round_number NOT IN (SELECT round_number FROM checkpoint_tags WHERE "
                    "model_id = ?) ORDER BY round_number",
                    (model, model),
                ).fetchall()
        for count, (model, number, tag) in enumerate(rows):
            try:
                actual = self._tag(model, number)
            except Exception:  # a missing or unreadable checkpoint is a failure too
                return count, (model, number)
            if not hmac.compare_digest(actual, tag):
                return count, (model, number)
        if untagged:
            return len(rows), (str(untagged[0][0]), int(untagged[0][1]))
        return len(rows), None

    def check(self, model_id: str) -> None:
        """Verify a model's checkpoints before they are read back.

        Raises
        ------
        ComplianceError
            Naming the first checkpoint whose integrity tag does not match.
        """
        _, bad = self.verify(model_id)
        if bad is not None:
            raise ComplianceError(
                f"Integrity check failed: checkpoint {bad[1]} of model {bad[0]!r} does not "
                "match its integrity tag (modified outside heliosfl). Restore it from a "
                "trusted copy."
            )
