"""Tests of heliosfl.compliance.audit: the HMAC-chained audit log, checkpoints and exports.

Tampering is done the way an attacker with the workspace file would: raw SQL on the
workspace connection, after dropping the append-only triggers.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import pickle
import stat
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from heliosfl.compliance.audit import (
    AuditAction,
    AuditCheckpoint,
    AuditLog,
    AuditLogEntry,
    AuditProblem,
    FileCheckpoint,
    MemoryCheckpoint,
    VerificationResult,
    verify_export,
)
from heliosfl.errors import ComplianceError, ConfigError, WorkspaceError
from heliosfl.store import Workspace

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SENTINEL = "PHI-SENTINEL-Jane-Roe-078-05-1120"
N = 6


class Clock:
    """One minute later at each call: entry ``i`` of a fresh log is at ``T0 + (i+1) min``."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


class FlakyCheckpoint(MemoryCheckpoint):
    """A checkpoint whose next write fails, like a process dying before it."""

    fail_next = False

    def write(self, text: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError(28, "No space left on device")
        super().write(text)


@pytest.fixture(params=["memory", "file"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(None if request.param == "memory" else tmp_path / "ws.db")
    yield workspace
    workspace.close()


def make_log(
    workspace: Workspace, n: int = N, checkpoint: AuditCheckpoint | None = None, **kwargs: Any
) -> AuditLog:
    log = AuditLog(workspace, KEY, checkpoint=checkpoint, clock=Clock(), **kwargs)
    for i in range(n):
        log.append(f"user-{i}", AuditAction.PHI_ACCESS, f"record-{i}", details={"i": i})
    return log


def tamper(workspace: Workspace, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    with workspace.transaction() as conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, ())
            conn.execute(sql, params)


def assert_bad(result: VerificationResult, problem: AuditProblem, seq: int | None) -> None:
    assert (result.ok, result.problem, result.first_bad_seq) == (False, problem, seq), result


# -- appending and reading --------------------------------------------------------------


def test_append_chains_entries_and_reads_them_back(ws: Workspace) -> None:
    log = make_log(ws)
    entries = log.entries()
    assert [e.seq for e in entries] == list(range(N))
    assert entries[0].prev_hmac == "0" * 64
    assert all(b.prev_hmac == a.hmac for a, b in itertools.pairwise(entries))
    assert entries[2].time == T0 + timedelta(minutes=3)
    assert entries[2].time.tzinfo is UTC
    assert (entries[2].user_id, entries[2].action, entries[2].resource) == (
        "user-2",
        AuditAction.PHI_ACCESS,
        "record-2",
    )
    assert entries[2].details == {"i": 2}
    assert entries[2].success is True
    assert log.verify() == VerificationResult(True, N, None, None, log.verify().message)


def test_append_returns_the_stored_entry(ws: Workspace) -> None:
    log = make_log(ws, 2)
    entry = log.append("auditor", "login", "session", False, {"reason": "bad password"})
    assert entry == log.entries()[-1]
    assert (entry.seq, entry.action, entry.success) == (2, AuditAction.LOGIN, False)


def test_mac_is_the_documented_hmac_sha256_chain() -> None:
    log = make_log(Workspace(), 2, log_id="ward-7")
    for entry in log.entries():
        body = {k: v for k, v in entry.to_dict().items() if k != "hmac"} | {"log_id": "ward-7"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        message = entry.prev_hmac.encode() + canonical
        assert entry.hmac == hmac.new(KEY, message, hashlib.sha256).hexdigest()


def test_entry_round_trips_through_json() -> None:
    entry = make_log(Workspace(), 1).entries()[0]
    assert AuditLogEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry


def test_entry_validates_its_fields() -> None:
    good = make_log(Workspace(), 1).entries()[0].to_dict()
    for field, bad in [
        ("seq", -1),
        ("seq", True),
        ("time", "2024-03-01T12:00:00"),
        ("action", "hack"),
        ("success", 1),
        ("hmac", "ABC"),
        ("prev_hmac", "g" * 64),
        ("user_id", ""),
        ("details", {"x": [1]}),
    ]:
        with pytest.raises(ConfigError):
            AuditLogEntry.from_dict({**good, field: bad})
    with pytest.raises(ConfigError):
        AuditLogEntry.from_dict({k: v for k, v in good.items() if k != "hmac"})


def test_time_is_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    log = AuditLog(Workspace(), KEY, clock=lambda: datetime(2024, 1, 1, 14, tzinfo=plus_two))
    entry = log.append("u", AuditAction.LOGIN, "session")
    assert entry.time == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert entry.to_dict()["time"] == "2024-01-01T12:00:00.000000+00:00"


def test_entries_filters_by_inclusive_time_range(ws: Workspace) -> None:
    log = make_log(ws)  # entry i at T0 + (i + 1) minutes
    minute = timedelta(minutes=1)
    assert [e.seq for e in log.entries(T0 + 2 * minute, T0 + 4 * minute)] == [1, 2, 3]
    assert [e.seq for e in log.entries(start=T0 + 5 * minute)] == [4, 5]
    assert [e.seq for e in log.entries(end=T0 + minute)] == [0]
    assert log.entries(T0 + 100 * minute) == []
    with pytest.raises(ConfigError):
        log.entries(datetime(2024, 1, 1))  # noqa: DTZ001  # naive on purpose


def test_logs_in_one_workspace_are_separate_chains() -> None:
    workspace = Workspace()
    a = make_log(workspace, 3, log_id="a")
    b = make_log(workspace, 2, log_id="b")
    assert [len(a.entries()), len(b.entries())] == [3, 2]
    assert a.verify().ok and b.verify().ok
    # An entry of "a" copied into "b" does not verify there: the log id is MACed.
    tamper(
        workspace,
        "INSERT INTO audit_log SELECT 'b', 2, time, user_id, action, resource, success, "
        "details, (SELECT hmac FROM audit_log WHERE log_id = 'b' AND seq = 1), hmac "
        "FROM audit_log WHERE log_id = 'a' AND seq = 2",
    )
    assert not b.verify().ok


def test_the_table_refuses_updates_and_deletes(ws: Workspace) -> None:
    make_log(ws, 2)
    for sql in ["UPDATE audit_log SET user_id = 'x'", "DELETE FROM audit_log"]:
        with pytest.raises(WorkspaceError, match="append-only"), ws.transaction() as conn:
            conn.execute(sql)


def test_concurrent_appends_form_one_chain() -> None:
    log = AuditLog(Workspace(), KEY)

    def worker(k: int) -> None:
        for i in range(25):
            log.append(f"user-{k}", AuditAction.ROUND_COMPLETED, "model", details={"i": i})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.seq for e in log.entries()] == list(range(200))
    assert log.verify() == VerificationResult(True, 200, None, None, log.verify().message)


# -- tampering with the stored log ------------------------------------------------------

EDITS = [
    ("user_id", "mallory"),
    ("action", "phi_delete"),
    ("resource", "record-99"),
    ("success", 0),
    ("details", '{"i":99}'),
    ("details", '{"i": 3}'),  # same value, other bytes: any edit of the column counts
    ("time", "2024-03-01T12:04:00.000001+00:00"),
    ("time", "2024-03-01T12:04:00+00:00"),  # same instant, other text
    ("prev_hmac", "1" * 64),
    ("hmac", "2" * 64),
]


@pytest.mark.parametrize(("column", "value"), EDITS, ids=[f"{c}={v}" for c, v in EDITS])
def test_an_edit_of_any_column_names_the_entry(ws: Workspace, column: str, value: object) -> None:
    log = make_log(ws)
    tamper(ws, (f"UPDATE audit_log SET {column} = ? WHERE seq = 3", (value,)))  # noqa: S608
    result = log.verify()
    assert_bad(result, AuditProblem.EDITED, 3)
    assert result.entries_checked == 3
    assert "seq 3" in result.message


@pytest.mark.parametrize("seq", [0, 2, 4])
def test_a_deleted_entry_is_named(ws: Workspace, seq: int) -> None:
    log = make_log(ws)
    tamper(ws, ("DELETE FROM audit_log WHERE seq = ?", (seq,)))
    assert_bad(log.verify(), AuditProblem.DELETED, seq)


def test_swapped_entries_are_named_as_reordered(ws: Workspace) -> None:
    log = make_log(ws)
    tamper(
        ws,
        "UPDATE audit_log SET seq = -seq - 100 WHERE seq IN (2, 4)",
        "UPDATE audit_log SET seq = CASE seq WHEN -102 THEN 4 ELSE 2 END WHERE seq < 0",
    )
    assert_bad(log.verify(), AuditProblem.REORDERED, 2)


def test_an_entry_moved_out_of_the_chain_is_named(ws: Workspace) -> None:
    log = make_log(ws)
    tamper(ws, "UPDATE audit_log SET seq = 1000 WHERE seq = 1")
    assert_bad(log.verify(), AuditProblem.REORDERED, 1)


@pytest.mark.parametrize("cut", [1, 3, N])
def test_a_truncated_tail_is_caught_by_the_checkpoint(ws: Workspace, cut: int) -> None:
    log = make_log(ws)
    tamper(ws, ("DELETE FROM audit_log WHERE seq >= ?", (N - cut,)))
    result = log.verify()
    assert_bad(result, AuditProblem.TRUNCATED, N - cut)
    assert result.entries_checked == N - cut


def test_a_dropped_table_is_caught_by_the_checkpoint(ws: Workspace) -> None:
    log = make_log(ws)
    tamper(ws, "DROP TABLE audit_log")
    assert_bad(log.verify(), AuditProblem.TRUNCATED, 0)


def test_an_entry_inserted_without_the_key_is_named(ws: Workspace) -> None:
    log = make_log(ws)
    # Make room at seq 2 (shift the later entries up by one), then forge an entry there.
    tamper(
        ws,
        "UPDATE audit_log SET seq = seq + 100 WHERE seq >= 2",
        "UPDATE audit_log SET seq = seq - 99 WHERE seq >= 100",
        "INSERT INTO audit_log SELECT log_id, 2, time, 'mallory', action, resource, success, "
        "details, hmac, printf('%064d', 7) FROM audit_log WHERE seq = 1",
    )
    assert_bad(log.verify(), AuditProblem.INSERTED, 2)


def test_an_entry_forged_after_the_head_is_named(ws: Workspace) -> None:
    log = make_log(ws)
    tamper(
        ws,
        (
            "INSERT INTO audit_log SELECT log_id, seq + 1, time, 'mallory', action, resource, "
            "success, details, hmac, hmac FROM audit_log WHERE seq = ?",
            (N - 1,),
        ),
    )
    assert_bad(log.verify(), AuditProblem.INSERTED, N)


def test_an_append_after_a_cut_keeps_the_gap_visible(ws: Workspace) -> None:
    log = make_log(ws)
    tamper(ws, "DELETE FROM audit_log WHERE seq >= 3")
    entry = log.append("admin", AuditAction.LOGIN, "session")
    assert entry.seq == N  # continues from the checkpoint head, not from the cut tail
    assert_bad(log.verify(), AuditProblem.DELETED, 3)


def test_only_the_key_verifies(ws: Workspace) -> None:
    make_log(ws)
    assert_bad(AuditLog(ws, OTHER_KEY).verify(), AuditProblem.EDITED, 0)


# -- checkpoints ------------------------------------------------------------------------


def test_file_checkpoint_is_private_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "audit.head"
    make_log(Workspace(), 3, FileCheckpoint(path))
    record = json.loads(path.read_text())
    assert (record["seq"], record["log_id"]) == (2, "default")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.head"]  # no temp file left
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_checkpoint_needs_an_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        FileCheckpoint(tmp_path / "missing" / "audit.head")


def test_an_edited_checkpoint_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.head"
    log = make_log(Workspace(), checkpoint=FileCheckpoint(path))
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "seq": 2}))  # hide a cut after seq 2
    assert_bad(log.verify(), AuditProblem.CHECKPOINT_TAMPERED, None)
    path.write_text("not json")
    assert_bad(log.verify(), AuditProblem.CHECKPOINT_TAMPERED, None)
    with pytest.raises(ComplianceError, match="Nothing was written"):
        log.append("u", AuditAction.LOGIN, "session")
    assert len(log.entries()) == N


def test_a_deleted_checkpoint_blocks_appends_until_reset(tmp_path: Path) -> None:
    path, workspace = tmp_path / "audit.head", Workspace()
    log = make_log(workspace, checkpoint=FileCheckpoint(path))
    path.unlink()
    assert_bad(log.verify(), AuditProblem.CHECKPOINT_MISSING, None)
    with pytest.raises(ComplianceError, match="reset_checkpoint"):
        log.append("u", AuditAction.LOGIN, "session")
    entry = log.reset_checkpoint("admin")
    assert (entry.seq, entry.action, entry.details["change"]) == (
        N,
        AuditAction.CONFIG_CHANGE,
        "audit_checkpoint_reset",
    )
    assert log.verify().ok and log.verify().problem is None


def test_reset_refuses_a_broken_chain(ws: Workspace) -> None:
    log = make_log(ws)
    tamper(ws, "UPDATE audit_log SET user_id = 'x' WHERE seq = 1")
    with pytest.raises(ComplianceError, match="seq 1"):
        log.reset_checkpoint("admin")


def test_a_checkpoint_of_another_log_or_key_is_refused(tmp_path: Path) -> None:
    path, workspace = tmp_path / "audit.head", Workspace()
    make_log(workspace, 2, FileCheckpoint(path), log_id="a")
    other = AuditLog(workspace, KEY, checkpoint=FileCheckpoint(path), log_id="b")
    assert_bad(other.verify(), AuditProblem.CHECKPOINT_MISMATCH, None)
    wrong_key = AuditLog(workspace, OTHER_KEY, checkpoint=FileCheckpoint(path), log_id="a")
    assert wrong_key.verify().problem in {AuditProblem.EDITED, AuditProblem.CHECKPOINT_TAMPERED}


def test_the_crash_window_is_reported_as_checkpoint_behind(ws: Workspace) -> None:
    checkpoint = FlakyCheckpoint()
    log = make_log(ws, 3, checkpoint)
    checkpoint.fail_next = True
    with pytest.raises(ComplianceError, match="seq 3 was committed"):
        log.append("u", AuditAction.LOGIN, "session")
    result = log.verify()
    assert (result.ok, result.problem, result.entries_checked) == (
        True,
        AuditProblem.CHECKPOINT_BEHIND,
        4,
    )
    log.append("u", AuditAction.LOGOUT, "session")
    assert log.verify().problem is None


def test_a_stale_checkpoint_is_a_mismatch(ws: Workspace) -> None:
    checkpoint = MemoryCheckpoint()
    log = make_log(ws, 2, checkpoint)
    old = checkpoint.read()
    assert old is not None
    log.append("u", AuditAction.LOGIN, "session")
    log.append("u", AuditAction.LOGOUT, "session")
    checkpoint.write(old)  # rolled back to a copy two entries old
    assert_bad(log.verify(), AuditProblem.CHECKPOINT_MISMATCH, 2)


def test_a_memory_checkpoint_is_seeded_from_an_existing_log(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws.db") as workspace:
        make_log(workspace)
    with Workspace(tmp_path / "ws.db") as workspace:
        log = AuditLog(workspace, KEY)
        tamper(workspace, "DELETE FROM audit_log WHERE seq = 5")
        assert_bad(log.verify(), AuditProblem.TRUNCATED, 5)


def test_a_file_workspace_and_checkpoint_survive_a_restart(tmp_path: Path) -> None:
    db, head = tmp_path / "ws.db", tmp_path / "audit.head"
    with Workspace(db) as workspace:
        make_log(workspace, 3, FileCheckpoint(head))
    with Workspace(db) as workspace:
        log = AuditLog(workspace, KEY, checkpoint=FileCheckpoint(head))
        assert log.verify().ok
        assert log.append("u", AuditAction.LOGIN, "session").seq == 3
        tamper(workspace, "DELETE FROM audit_log WHERE seq = 3")
    with Workspace(db) as workspace:
        log = AuditLog(workspace, KEY, checkpoint=FileCheckpoint(head))
        assert_bad(log.verify(), AuditProblem.TRUNCATED, 3)


def test_deleting_log_and_checkpoint_together_is_not_detectable(tmp_path: Path) -> None:
    # The documented limit of the mechanism: nothing remains to compare with.
    path, workspace = tmp_path / "audit.head", Workspace()
    log = make_log(workspace, checkpoint=FileCheckpoint(path))
    tamper(workspace, "DROP TABLE audit_log")
    path.unlink()
    assert log.verify().ok


# -- exports ----------------------------------------------------------------------------


def exported(n: int = N, **kwargs: Any) -> dict[str, Any]:
    export = make_log(Workspace(), n).export(**kwargs)
    return json.loads(json.dumps(export))  # a JSON round trip, as a file would be


def test_an_export_verifies_on_its_own() -> None:
    export = exported()
    assert [e["seq"] for e in export["entries"]] == list(range(N))
    assert verify_export(export, KEY).ok
    assert verify_export(json.dumps(export), KEY).ok
    assert export["head"]["seq"] == N - 1


def test_a_ranged_export_verifies() -> None:
    minute = timedelta(minutes=1)
    middle = exported(start=T0 + 2 * minute, end=T0 + 4 * minute)
    assert [e["seq"] for e in middle["entries"]] == [1, 2, 3]
    assert verify_export(middle, KEY).ok
    tail = exported(start=T0 + 5 * minute)
    assert [e["seq"] for e in tail["entries"]] == [4, 5]
    assert verify_export(tail, KEY).ok
    assert verify_export(exported(start=T0 + 100 * minute), KEY).ok
    assert verify_export(exported(0), KEY).ok


EDITED = AuditProblem.EDITED


def drop(i: int) -> Any:
    return lambda entries: entries.pop(i)


EXPORT_TAMPERING = {
    "edit user": (lambda es: es[2].update(user_id="x"), EDITED, 2),
    "edit details": (lambda es: es[3]["details"].update(i=0), EDITED, 3),
    "edit time": (lambda es: es[1].update(time="2020-01-01T00:00:00.000000+00:00"), EDITED, 1),
    "drop first": (drop(0), AuditProblem.DELETED, 0),
    "drop middle": (drop(3), AuditProblem.DELETED, 3),
    "drop last": (drop(-1), AuditProblem.TRUNCATED, N - 1),
    "swap": (lambda es: es.insert(1, es.pop(2)), AuditProblem.REORDERED, 1),
    "duplicate": (lambda es: es.insert(3, copy.deepcopy(es[2])), AuditProblem.REORDERED, 3),
}


@pytest.mark.parametrize("case", EXPORT_TAMPERING)
def test_tampering_with_an_export_is_named(case: str) -> None:
    change, problem, seq = EXPORT_TAMPERING[case]
    export = exported()
    change(export["entries"])
    assert_bad(verify_export(json.dumps(export), KEY), problem, seq)


def test_an_edited_export_header_is_detected() -> None:
    for field, value in [("count", N - 1), ("end", "2030-01-01"), ("head", None)]:
        export = exported()
        export[field] = value
        assert_bad(verify_export(export, KEY), AuditProblem.MANIFEST_MISMATCH, None)
    export = exported()
    export["entries"].pop()
    export["count"] = N - 1  # hide the dropped entry: the header's tag fails
    assert not verify_export(export, KEY).ok


def test_an_export_needs_the_key_and_the_shape() -> None:
    assert_bad(verify_export(exported(), OTHER_KEY), AuditProblem.EDITED, 0)
    for bad in ["not json", "[]", json.dumps({"format": "x"}), {"entries": "x"}]:
        assert_bad(verify_export(bad, KEY), AuditProblem.MALFORMED, None)
    with pytest.raises(ConfigError):
        verify_export(exported(), b"short")


def test_an_export_carries_the_stored_tampering(ws: Workspace) -> None:
    log = make_log(ws)
    tamper(ws, "UPDATE audit_log SET details = 'garbage' WHERE seq = 4")
    export = log.export()
    json.dumps(export)  # still JSON
    assert_bad(verify_export(export, KEY), AuditProblem.EDITED, 4)
    tamper(ws, "DELETE FROM audit_log WHERE seq >= 4")
    assert_bad(verify_export(log.export(), KEY), AuditProblem.TRUNCATED, 4)
    tamper(ws, "DELETE FROM audit_log WHERE seq = 0")
    assert_bad(verify_export(log.export(), KEY), AuditProblem.DELETED, 0)


# -- no PHI in the log, the export or any message ---------------------------------------


def test_subjects_become_keyed_pseudonyms() -> None:
    log = AuditLog(Workspace(), KEY)
    alias = log.subject(SENTINEL)
    assert alias.startswith("subj-") and len(alias) == 37 and SENTINEL not in alias
    assert alias == log.subject(SENTINEL) != log.subject(SENTINEL + "x")
    assert alias != AuditLog(Workspace(), OTHER_KEY).subject(SENTINEL)
    custom = AuditLog(Workspace(), KEY, pseudonymize=lambda s: "p-" + str(len(s)))
    assert custom.subject(SENTINEL) == f"p-{len(SENTINEL)}"


def test_a_phi_sentinel_never_reaches_the_log_export_or_messages(tmp_path: Path) -> None:
    workspace, head = Workspace(tmp_path / "ws.db"), tmp_path / "audit.head"
    log = AuditLog(workspace, KEY, checkpoint=FileCheckpoint(head))
    alias = log.subject(SENTINEL)
    log.append("dr-lee", AuditAction.PHI_DECRYPT, alias, details={"subject": alias})
    log.append("dr-lee", AuditAction.PHI_EXPORT, alias, success=False)

    errors: list[Exception] = []
    attempts = [
        lambda: log.append("u", AuditAction.PHI_ACCESS, "r", details={"note": SENTINEL * 20}),
        lambda: log.append("u", AuditAction.PHI_ACCESS, "r", details={SENTINEL * 3: 1}),
        lambda: log.append("u", AuditAction.PHI_ACCESS, "r", details={"x": [SENTINEL]}),
        lambda: log.append(SENTINEL * 10, AuditAction.PHI_ACCESS, "r"),
        lambda: log.append("u", AuditAction.PHI_ACCESS, SENTINEL * 10),
        lambda: log.append("u", SENTINEL, "r"),
        lambda: log.subject(SENTINEL * 100),
        lambda: AuditLog(workspace, KEY, pseudonymize=lambda s: s).subject(SENTINEL),
        lambda: AuditLog(workspace, KEY, pseudonymize=lambda s: f"id:{s}").subject(SENTINEL),
        lambda: AuditLog(workspace, SENTINEL.encode()[:20]),
    ]
    for attempt in attempts:
        with pytest.raises((ConfigError, ComplianceError)) as caught:
            attempt()
        errors.append(caught.value)
    workspace.close()

    def leaks(text: str) -> bool:
        return SENTINEL[:12] in text

    assert not any(leaks(str(e)) or leaks(repr(e)) for e in errors)
    assert not any(SENTINEL[:12].encode() in pickle.dumps(e) for e in errors)
    for path in tmp_path.iterdir():
        assert SENTINEL[:12].encode() not in path.read_bytes(), path
    with Workspace(tmp_path / "ws.db") as reopened:
        log = AuditLog(reopened, KEY, checkpoint=FileCheckpoint(head))
        assert not leaks(json.dumps(log.export()))
        assert not leaks(repr(log.entries()))
        assert log.verify().ok


# -- arguments --------------------------------------------------------------------------


def test_constructor_arguments_are_checked() -> None:
    workspace = Workspace()
    for kwargs in [
        {"key": b"k" * 31},
        {"key": "k" * 32},
        {"log_id": ""},
        {"checkpoint": "file.json"},
        {"clock": 5},
        {"pseudonymize": "x"},
    ]:
        with pytest.raises(ConfigError) as caught:
            AuditLog(workspace, **{"key": KEY, **kwargs})
        assert "k" * 31 not in str(caught.value)
    with pytest.raises(ConfigError):
        AuditLog("ws.db", KEY)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "details",
    [{"x": float("nan")}, {"x": {"y": 1}}, {"": 1}, {f"k{i}": i for i in range(33)}, ["x"]],
)
def test_details_are_json_scalars(details: Any) -> None:
    log = AuditLog(Workspace(), KEY)
    with pytest.raises(ConfigError):
        log.append("u", AuditAction.LOGIN, "session", details=details)
    assert log.entries() == []


def test_an_append_validates_its_arguments() -> None:
    log = AuditLog(Workspace(), KEY)
    for args in [
        ("", "login", "r"),
        ("u", "nope", "r"),
        ("u", "login", ""),
        ("u", "login", "r", 1),
    ]:
        with pytest.raises(ConfigError):
            log.append(*args)
    naive = AuditLog(Workspace(), KEY, clock=lambda: datetime(2024, 1, 1))  # noqa: DTZ001
    with pytest.raises(ConfigError):
        naive.append("u", AuditAction.LOGIN, "session")
    assert log.entries() == [] and naive.entries() == []
    log.append("u", "login", "r", details={"big": "x" * 500, "f": 0.5, "n": None, "b": False})
    assert log.entries()[0].details == {"big": "x" * 500, "f": 0.5, "n": None, "b": False}


def test_repr_shows_no_key() -> None:
    text = repr(AuditLog(Workspace(), KEY, log_id="ward"))
    assert "ward" in text and KEY.hex() not in text and str(KEY) not in text
