"""Integrity tags for model checkpoints (45 CFR 164.312(c)): HMAC-SHA256, verified on read.

Each committed checkpoint (parameters and aggregation state) gets a tag under a key only
the compliance manager holds; verification recomputes every tag and names the first
checkpoint whose bytes no longer match. This detects a modified checkpoint; it does not
stop someone with write access to the workspace from deleting checkpoints together with
their tags (the audit log records the rounds that existed).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import numpy as np

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

    def _tag(self, model_id: str, round_number: int) -> str:
        checkpoint = self._workspace.checkpoint(model_id, round_number)
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        mac.update(f"{model_id}\x00{round_number}\x00".encode())
        mac.update(np.ascontiguousarray(checkpoint.params, dtype="<f8").tobytes())
        for name in sorted(checkpoint.state):
            mac.update(name.encode() + b"\x00")
            mac.update(np.ascontiguousarray(checkpoint.state[name], dtype="<f8").tobytes())
        return mac.hexdigest()

    def tag(self, model_id: str, round_number: int) -> None:
        """Tag one committed checkpoint (idempotent for an unchanged checkpoint)."""
        value = self._tag(model_id, round_number)
        with self._workspace.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO checkpoint_tags VALUES (?, ?, ?, ?)",
                (model_id, round_number, value, datetime.now(UTC).isoformat()),
            )

    def verify(self, model_id: str | None = None) -> tuple[int, tuple[str, int] | None]:
        """Recompute every tag; return (checkpoints verified, first bad (model, round))."""
        with self._workspace.reading() as conn:
            if model_id is None:
                rows = conn.execute(
                    "SELECT model_id, round_number, tag FROM checkpoint_tags "
                    "ORDER BY model_id, round_number"
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT model_id, round_number, tag FROM checkpoint_tags "
                    "WHERE model_id = ? ORDER BY round_number",
                    (model_id,),
                ).fetchall()
        for count, (model, number, tag) in enumerate(rows):
            try:
                actual = self._tag(model, number)
            except Exception:  # a missing or unreadable checkpoint is a failure too
                return count, (model, number)
            if not hmac.compare_digest(actual, tag):
                return count, (model, number)
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
