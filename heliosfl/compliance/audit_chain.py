"""Audit entries and the HMAC chain that links them; standalone checks of chains and exports.

Entry ``i`` carries ``hmac_i = HMAC-SHA256(key, prev_hmac_i || canonical_json(body_i))``
with ``prev_hmac_i = hmac_(i-1)`` and ``prev_hmac_0`` 64 zeros. ``body_i`` is the entry
without its ``hmac``, plus the log id, as JSON with sorted keys, no spaces, ASCII only,
time as UTC ISO-8601 text with microseconds. The seq is inside the MAC, so an entry moved
elsewhere stops verifying there. :func:`check_chain` walks a chain and names the first
sequence number at which it departs from the chain as written (:class:`AuditProblem`);
:func:`verify_export` checks an :meth:`~heliosfl.compliance.audit.AuditLog.export` alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from heliosfl.errors import ConfigError

__all__ = [
    "EXPORT_FORMAT",
    "GENESIS_HMAC",
    "MAX_DETAIL_CHARS",
    "AuditAction",
    "AuditLogEntry",
    "AuditProblem",
    "VerificationResult",
    "check_chain",
    "entry_mac",
    "verify_export",
]

GENESIS_HMAC = "0" * 64
EXPORT_FORMAT = "heliosfl-audit-export"
MAX_DETAIL_CHARS = 500
_BODY = ("seq", "time", "user_id", "action", "resource", "success", "details", "prev_hmac")
_HEX = set("0123456789abcdef")
DetailValue = str | int | float | bool | None


class AuditAction(StrEnum):
    """What an audit entry records."""

    PHI_ACCESS = "phi_access"
    PHI_ENCRYPT = "phi_encrypt"
    PHI_DECRYPT = "phi_decrypt"
    PHI_EXPORT = "phi_export"
    PHI_DELETE = "phi_delete"
    KEY_ROTATION = "key_rotation"
    CRYPTO_SHRED = "crypto_shred"
    LOGIN = "login"
    LOGOUT = "logout"
    ACCESS_DENIED = "access_denied"
    BREAK_GLASS = "break_glass"
    TRAINING_STARTED = "training_started"
    ROUND_COMPLETED = "round_completed"
    UPDATE_REJECTED = "update_rejected"
    TRAINING_FINISHED = "training_finished"
    CONFIG_CHANGE = "config_change"
    AUDIT_EXPORT = "audit_export"
    COMPLIANCE_CHECK = "compliance_check"
    CONSENT_RECORDED = "consent_recorded"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    DATA_ADDED = "data_added"
    DATA_REFUSED = "data_refused"
    ERASURE_REQUESTED = "erasure_requested"
    ERASURE_COMPLETED = "erasure_completed"
    UNLEARNING = "unlearning"
    DATA_EXPORT = "data_export"
    RETENTION_PURGE = "retention_purge"
    EXPLANATION = "explanation"


class AuditProblem(StrEnum):
    """What a verification found (``CHECKPOINT_BEHIND`` alone still verifies)."""

    EDITED = "edited"  # content differs from its MAC: a field edited, or forged
    INSERTED = "inserted"  # a forged entry the chain links around, or past the head
    DELETED = "deleted"  # seqs missing before a later genuine entry
    REORDERED = "reordered"  # a genuine entry at a position it was not written for
    BROKEN_LINK = "broken link"  # a genuine entry chained onto another predecessor
    TRUNCATED = "truncated"  # the recorded head lies past the last entry
    CHECKPOINT_BEHIND = "checkpoint behind"  # one genuine entry past it: a crash
    CHECKPOINT_MISMATCH = "checkpoint mismatch"  # it names another entry, or is stale
    CHECKPOINT_TAMPERED = "checkpoint tampered"  # its own HMAC tag fails
    CHECKPOINT_MISSING = "checkpoint missing"  # a durable one absent or unreadable
    MANIFEST_MISMATCH = "manifest mismatch"  # an export's header was edited
    MALFORMED = "malformed"  # not an export at all


def check_key(key: object) -> bytes:
    """Return `key` if it is at least 32 bytes (256 bits); messages never show it."""
    if not isinstance(key, bytes) or len(key) < 32:
        shown = f"<{len(key)} bytes>" if isinstance(key, bytes) else f"<{type(key).__name__}>"
        raise ConfigError("key", shown, "bytes of at least 32 (256 bits)")
    return key


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, ASCII; ``ValueError`` on a non-finite float."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def keyed_tag(key: bytes, label: str, body: object) -> str:
    """HMAC-SHA256 of ``canonical_json(body)`` under a subkey of `key` for `label`."""
    subkey = hmac.new(key, f"heliosfl/audit/{label}".encode(), hashlib.sha256).digest()
    return hmac.new(subkey, canonical_json(body), hashlib.sha256).hexdigest()


def same_mac(expected: str, found: object) -> bool:
    """Constant-time comparison of a MAC with a stored value of any type."""
    stored = found.encode("utf-8", "replace") if isinstance(found, str) else b""
    return hmac.compare_digest(expected.encode(), stored)


def format_time(value: datetime) -> str:
    """The canonical text of an aware datetime: UTC, always with microseconds."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def check_text(name: str, value: object, limit: int = 200) -> str:
    """Return `value` if a non-empty str of at most `limit` characters (never echoed)."""
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        shown = f"<str of {len(value)} characters>" if isinstance(value, str) else "<not a str>"
        raise ConfigError(name, shown, f"a non-empty str of at most {limit} characters")
    return value


def check_details(details: Mapping[str, object] | None) -> dict[str, DetailValue]:
    """At most 32 items, str keys of 1-64 characters, JSON scalar values; never echoed."""
    if not isinstance(details, Mapping | None) or len(details or {}) > 32:
        raise ConfigError("details", "<not a mapping of <= 32 items>", "a mapping or None")
    for i, (key, value) in enumerate((details or {}).items()):
        ok = value is None or isinstance(value, bool | int)
        ok = ok or (isinstance(value, float) and math.isfinite(value))
        ok = ok or (isinstance(value, str) and len(value) <= MAX_DETAIL_CHARS)
        if not (ok and isinstance(key, str) and 0 < len(key) <= 64):
            raise ConfigError(
                "details",
                f"<item #{i}: {type(value).__name__}>",
                f"str keys of 1-64 characters and values None, bool, int, finite float or a "
                f"str of at most {MAX_DETAIL_CHARS} characters",
                "Never put PHI in the audit log: pass subjects through AuditLog.subject().",
            )
    normal: dict[str, DetailValue] = json.loads(canonical_json(dict(details or {})))
    return normal


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditLogEntry:
    """One entry of the audit log; validated, ``time`` normalised to UTC.

    Attributes
    ----------
    seq : int
        Position in the chain: 0, 1, 2, ... without gaps.
    time : datetime
        When it was appended (UTC, timezone-aware).
    user_id, resource : str
        Who acted, on what (1-200 characters; subjects as keyed pseudonyms).
    action : AuditAction
        What was done.
    success : bool
        The outcome (``False`` for a denied or failed attempt).
    details : dict
        Further facts: None, bool, int, finite float or str of at most 500 characters.
    prev_hmac, hmac : str
        The previous entry's MAC (64 zeros for the first) and this one's, hex.
    """

    seq: int
    time: datetime
    user_id: str
    action: AuditAction
    resource: str
    success: bool
    details: dict[str, DetailValue] = field(default_factory=dict)
    prev_hmac: str
    hmac: str

    def __post_init__(self) -> None:
        hexes = (self.prev_hmac, self.hmac)
        checks = {
            "seq": type(self.seq) is int and self.seq >= 0,
            "time": isinstance(self.time, datetime) and self.time.utcoffset() is not None,
            "action": self.action in tuple(AuditAction),
            "success": isinstance(self.success, bool),
            "hmac": all(isinstance(h, str) and len(h) == 64 and not set(h) - _HEX for h in hexes),
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(name, "<invalid>", f"a valid audit entry {name}")
        check_text("user_id", self.user_id)
        check_text("resource", self.resource)
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        object.__setattr__(self, "action", AuditAction(self.action))
        object.__setattr__(self, "details", check_details(self.details))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, exactly as MACed and exported."""
        data = {name: getattr(self, name) for name in (*_BODY, "hmac")}
        time, action, details = format_time(self.time), self.action.value, dict(self.details)
        return {**data, "time": time, "action": action, "details": details}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditLogEntry:
        """Rebuild an entry from :meth:`to_dict`; ``ConfigError`` if malformed."""
        try:
            fields = {name: data[name] for name in (*_BODY, "hmac")}
            fields["time"] = datetime.fromisoformat(fields["time"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError("entry", "<malformed>", "a dict from to_dict()") from None
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The outcome of verifying a log or an export.

    Attributes
    ----------
    ok : bool
        Whether no tampering was found.
    entries_checked : int
        Entries verified before the first problem (all of them when `ok`).
    first_bad_seq : int or None
        The first seq at which the chain departs from the chain as written.
    problem : AuditProblem or None
        What was found (``CHECKPOINT_BEHIND`` may come with ``ok=True``).
    message : str
        An explanation naming seqs and columns, never entry content.
    """

    ok: bool
    entries_checked: int
    first_bad_seq: int | None
    problem: AuditProblem | None
    message: str


def entry_mac(key: bytes, log_id: str, raw: Mapping[str, Any], seq: object = None) -> str:
    """The MAC of `raw` (a ``to_dict()`` form) at `seq` (default its own); raises if malformed."""
    body = {**{name: raw[name] for name in _BODY}, "log_id": log_id}
    body["seq"] = raw["seq"] if seq is None else seq
    message = raw["prev_hmac"].encode() + canonical_json(body)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _written_at(
    key: bytes, log_id: str, raw: Mapping[str, Any], seqs: Iterable[object]
) -> int | None:
    """The first of `seqs` at which `raw` carries the MAC it was written with, if any."""
    for seq in seqs:
        try:
            if type(seq) is int and same_mac(entry_mac(key, log_id, raw, seq), raw["hmac"]):
                return seq
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
    return None


def _diagnose(
    key: bytes, log_id: str, rows: Sequence[Mapping[str, Any]], i: int, expected: int, prev: str
) -> tuple[AuditProblem, str]:
    """Explain ``rows[i]``, the first row that does not continue the chain."""
    raw, after, span = rows[i], rows[i + 1] if i + 1 < len(rows) else {}, len(rows) + 2
    seq = raw.get("seq")
    if _written_at(key, log_id, raw, [seq]) is not None and isinstance(seq, int):
        later = (_written_at(key, log_id, r, [expected]) for r in rows[i + 1 :])
        if seq > expected and any(s is not None for s in later):
            return AuditProblem.REORDERED, f"seq {expected} was moved later in the log"
        if seq > expected:
            return AuditProblem.DELETED, f"{seq - expected} entries before seq {seq} are missing"
        if seq < expected:
            return AuditProblem.REORDERED, f"seq {seq} appears again after seq {expected - 1}"
        return AuditProblem.BROKEN_LINK, "its prev_hmac is not the previous entry's hmac"
    moved = _written_at(key, log_id, raw, range(max(0, expected - span), expected + span))
    if moved is not None:
        return AuditProblem.REORDERED, f"the entry there was written as seq {moved}"
    if (
        after.get("prev_hmac") == prev
        and _written_at(key, log_id, after, [expected, after.get("seq")]) is not None
    ):
        return AuditProblem.INSERTED, "an entry not written with the key was added there"
    return AuditProblem.EDITED, "the entry does not match its HMAC (edited, or forged)"


def check_chain(
    key: bytes,
    log_id: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    first_seq: int = 0,
    first_prev: str = GENESIS_HMAC,
    head_seq: int | None = None,
) -> VerificationResult:
    """Walk `rows` (``to_dict()`` forms, in stored order) and name the first fault.

    Detected, at the first seq where the chain departs from the chain as written: an edit
    of any field, ``seq``, ``time``, ``details`` and both MACs included (``EDITED``); an
    entry not written with the key that its neighbours link around, or past `head_seq`
    (``INSERTED``); a gap (``DELETED``); a genuine entry at another position
    (``REORDERED``); a genuine entry chained onto another predecessor (``BROKEN_LINK``).
    Entries cut from the end are invisible here: compare the last one with a head kept
    elsewhere. An exact ``to_dict()`` copy of a genuine entry is needed to pass.
    """
    expected, prev = first_seq, first_prev
    for i, raw in enumerate(rows):
        linked = type(raw.get("seq")) is int and raw["seq"] == expected
        linked = linked and raw.get("prev_hmac") == prev
        if linked and _written_at(key, log_id, raw, [expected]) is not None:
            expected, prev = expected + 1, raw["hmac"]
            continue
        problem, why = _diagnose(key, log_id, rows, i, expected, prev)
        past_head = head_seq is not None and expected > head_seq and i + 1 == len(rows)
        if problem is AuditProblem.EDITED and past_head:
            problem, why = AuditProblem.INSERTED, "an entry past the checkpoint head is forged"
        message = f"Audit chain broken at seq {expected}: {why}."
        return VerificationResult(False, i, expected, problem, message)
    return VerificationResult(True, len(rows), None, None, f"All {len(rows)} entries verified.")


def export_tag(key: bytes, doc: Mapping[str, Any]) -> str:
    """The MAC of an export's header: everything but ``entries`` and ``tag``."""
    return keyed_tag(key, "export", {k: v for k, v in doc.items() if k not in ("entries", "tag")})


def _parse_export(export: Mapping[str, Any] | str) -> dict[str, Any] | None:
    try:
        doc = dict(json.loads(export) if isinstance(export, str) else export)
        entries, head, first = doc["entries"], doc["head"], doc["first_seq"]
        shaped = [
            doc["format"] == EXPORT_FORMAT and isinstance(doc["log_id"], str),
            isinstance(entries, list) and all(isinstance(e, dict) for e in entries),
            type(doc["count"]) is int and isinstance(doc["tag"], str) and "start" in doc,
            isinstance(doc["end"], str | None),
            not entries or (type(first) is int and isinstance(doc["first_prev_hmac"], str)),
            head is None or (type(head["seq"]) is int and isinstance(head["hmac"], str)),
        ]
    except (KeyError, TypeError, ValueError):
        return None
    return doc if all(shaped) else None


def verify_export(export: Mapping[str, Any] | str, key: bytes) -> VerificationResult:
    """Check an :meth:`~heliosfl.compliance.audit.AuditLog.export` on its own.

    Detected, naming the first bad seq: an exported entry edited, dropped (first, middle or
    last), reordered, duplicated or forged; an edited header (``MANIFEST_MISMATCH``); an
    open-ended export whose log had already lost its tail (``TRUNCATED``). Not detected:
    changes outside the exported range, or an export re-made by a holder of the key.

    Parameters
    ----------
    export : dict or str
        The export, or its JSON text.
    key : bytes
        The log's key.

    Returns
    -------
    VerificationResult
        With ``problem=MALFORMED`` if `export` does not have the shape of an export.
    """
    key, doc = check_key(key), _parse_export(export)
    if doc is None:
        return VerificationResult(False, 0, None, AuditProblem.MALFORMED, "Not an audit export.")
    entries, head, n = doc["entries"], doc["head"], len(doc["entries"])
    first = doc["first_seq"] if entries else 0
    if entries:
        chain = check_chain(
            key, doc["log_id"], entries, first_seq=first, first_prev=doc["first_prev_hmac"]
        )
        if not chain.ok:
            return chain
    last, last_hmac = first + n - 1, entries[-1]["hmac"] if entries else None
    if n < doc["count"]:
        why = f"it lists {doc['count']} entries but holds {n}: seqs from {last + 1} were cut off"
        return VerificationResult(False, n, last + 1, AuditProblem.TRUNCATED, f"Export: {why}.")
    claimed = (doc["count"], doc.get("last_seq"), doc.get("last_hmac"))
    actual = (n, last if entries else None, last_hmac)
    if not same_mac(export_tag(key, doc), doc["tag"]) or claimed != actual:
        why = "its header does not match its HMAC or its entries (edited)"
        return VerificationResult(False, n, None, AuditProblem.MANIFEST_MISMATCH, f"Export: {why}.")
    anchored = doc["end"] is None and (entries or doc["start"] is None)
    if head is not None and anchored and last < head["seq"]:
        why = f"the log ended at seq {last} but its head was seq {head['seq']} (truncated)"
        return VerificationResult(False, n, last + 1, AuditProblem.TRUNCATED, f"Export: {why}.")
    if head is not None and last == head["seq"] and last_hmac not in (None, head["hmac"]):
        why = f"entry seq {last} is not the head the checkpoint recorded"
        return VerificationResult(False, n, last, AuditProblem.CHECKPOINT_MISMATCH, why)
    return VerificationResult(True, n, None, None, f"All {n} exported entries verified.")
