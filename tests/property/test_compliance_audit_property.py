"""Property tests of the audit chain: every edit, deletion or swap is found at its seq."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from heliosfl.compliance.audit import AuditAction, AuditLog, AuditProblem, verify_export
from heliosfl.store import Workspace

KEY = b"\x07" * 32
SETTINGS = settings(max_examples=60, deadline=None)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
details = st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=4)
names = st.text(min_size=1, max_size=30)
entries = st.lists(
    st.tuples(names, st.sampled_from(list(AuditAction)), names, st.booleans(), details),
    min_size=1,
    max_size=7,
)


def build(rows: list[tuple[Any, ...]]) -> tuple[Workspace, AuditLog]:
    workspace, ticks = Workspace(), iter(range(10_000))
    clock = lambda: datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=next(ticks))  # noqa: E731
    log = AuditLog(workspace, KEY, clock=clock)
    for row in rows:
        log.append(*row)
    return workspace, log


def tamper(workspace: Workspace, sql: str, params: tuple[Any, ...] = ()) -> None:
    with workspace.transaction() as conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        conn.execute(sql, params)


COLUMNS = ["time", "user_id", "action", "resource", "success", "details", "prev_hmac", "hmac"]


@SETTINGS
@given(entries, st.data())
def test_any_edit_of_any_column_is_found_at_its_seq(rows: list[Any], data: st.DataObject) -> None:
    workspace, log = build(rows)
    assert log.verify().ok
    seq = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.sampled_from(COLUMNS))
    with workspace.reading() as conn:
        (old,) = conn.execute(f"SELECT {column} FROM audit_log WHERE seq = ?", (seq,)).fetchone()  # noqa: S608
    # Same type as stored, so SQLite's column affinity cannot turn the edit into a no-op.
    values = st.integers(0, 3) if column == "success" else st.text(max_size=70)
    new = data.draw(values.filter(lambda v: v != old))
    tamper(workspace, f"UPDATE audit_log SET {column} = ? WHERE seq = ?", (new, seq))  # noqa: S608
    result = log.verify()
    assert (result.ok, result.first_bad_seq) == (False, seq), result


@SETTINGS
@given(entries, st.data())
def test_any_deletion_is_found_at_its_seq(rows: list[Any], data: st.DataObject) -> None:
    workspace, log = build(rows)
    seq = data.draw(st.integers(0, len(rows) - 1))
    tamper(workspace, "DELETE FROM audit_log WHERE seq = ?", (seq,))
    result = log.verify()
    last = seq == len(rows) - 1
    expected = AuditProblem.TRUNCATED if last else AuditProblem.DELETED
    assert (result.ok, result.problem, result.first_bad_seq) == (False, expected, seq), result


@SETTINGS
@given(entries.filter(lambda rows: len(rows) >= 2), st.data())
def test_any_swap_is_found_at_the_earlier_seq(rows: list[Any], data: st.DataObject) -> None:
    workspace, log = build(rows)
    a, b = sorted(data.draw(st.sets(st.integers(0, len(rows) - 1), min_size=2, max_size=2)))
    tamper(workspace, "UPDATE audit_log SET seq = -1 WHERE seq = ?", (a,))
    tamper(workspace, "UPDATE audit_log SET seq = ? WHERE seq = ?", (a, b))
    tamper(workspace, "UPDATE audit_log SET seq = ? WHERE seq = -1", (b,))
    result = log.verify()
    assert (result.ok, result.problem, result.first_bad_seq) == (
        False,
        AuditProblem.REORDERED,
        a,
    ), result


@SETTINGS
@given(entries, st.data())
def test_any_edit_or_drop_in_an_export_is_found_at_its_seq(
    rows: list[Any], data: st.DataObject
) -> None:
    _, log = build(rows)
    export = json.loads(json.dumps(log.export()))
    assert verify_export(export, KEY).ok
    seq = data.draw(st.integers(0, len(rows) - 1))
    if data.draw(st.booleans()):
        del export["entries"][seq]
    else:
        field = data.draw(st.sampled_from([*COLUMNS, "seq"]))
        old = export["entries"][seq][field]
        new = data.draw((scalars | details).filter(lambda v: v != old or type(v) is not type(old)))
        export["entries"][seq][field] = new
    result = verify_export(json.dumps(export), KEY)
    assert (result.ok, result.first_bad_seq) == (False, seq), result


@SETTINGS
@given(entries)
def test_appended_details_read_back_as_json(rows: list[Any]) -> None:
    _, log = build(rows)
    stored = log.entries()
    assert [json.dumps(e.details, sort_keys=True) for e in stored] == [
        json.dumps(r[4], sort_keys=True) for r in rows
    ]
    assert [(e.user_id, e.action, e.resource, e.success) for e in stored] == [r[:4] for r in rows]
