"""Tests of Workspace.rewind, the archive of superseded rounds and charges, and schema v2."""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heliosfl.errors import ClosedError, ConfigError, ModelNotFound, WorkspaceError
from heliosfl.store import SCHEMA_VERSION, Rewind, Workspace

SPEC = {"model_type": "mlp", "input_dim": 2, "hidden_layers": [2], "num_classes": 2}
SIZE = 6
ROUNDS = 5
NEW_TABLES = ("rewinds", "superseded_rounds", "superseded_ledger")
MARK = 123456.789  # a parameter value that only one rewound checkpoint holds


def params_of(round_number: int) -> np.ndarray:
    return np.full(SIZE, float(round_number)) + np.arange(SIZE) / 10


def charge_of(round_number: int) -> dict[str, object]:
    return {"epsilon": 0.1 * round_number, "event": "gaussian"}


def build(ws: Workspace, model_id: str = "m", rounds: int = ROUNDS) -> None:
    """A model with `rounds` committed rounds; odd rounds carry a privacy charge."""
    ws.save_model(model_id, SPEC, {}, params_of(0))
    for r in range(1, rounds + 1):
        ws.commit_round(
            model_id,
            r,
            {"round": r},
            params_of(r),
            {"m": np.full(2, float(r))},
            ledger_entry=charge_of(r) if r % 2 else None,
        )


def snapshot(ws: Workspace, model_id: str = "m") -> tuple[object, ...]:
    checkpoints = []
    for r in range(ws.last_round(model_id) + 1):
        checkpoints.append(ws.checkpoint(model_id, r).params.tobytes())
    return (
        ws.rounds(model_id, include_failed=True),
        ws.superseded_rounds(model_id),
        ws.privacy_ledger(model_id),
        ws.last_round(model_id),
        checkpoints,
    )


@pytest.fixture(params=["memory", "file"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(None if request.param == "memory" else tmp_path / "ws.db")
    yield workspace
    workspace.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ws.db"


# -- rewind --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 3, 4])
def test_rewind_archives_later_rounds_and_deletes_their_checkpoints(ws: Workspace, k: int) -> None:
    # Prepare
    build(ws)

    # Execute
    result = ws.rewind("m", k, {"erasure": "erasure-1"})

    # Assert
    charged_later = [r for r in range(k + 1, ROUNDS + 1) if r % 2]
    assert result == Rewind(1, "m", k, ROUNDS, ROUNDS - k, ROUNDS - k, len(charged_later))
    assert ws.rounds("m") == [{"round": r} for r in range(1, k + 1)]
    assert ws.superseded_rounds("m") == [
        {"round": r, "rewind_id": 1} for r in range(k + 1, ROUNDS + 1)
    ]
    assert ws.last_round("m") == k
    latest = ws.latest_checkpoint("m")
    assert latest.round_number == k
    assert latest.params.tobytes() == params_of(k).tobytes()
    for r in range(k + 1, ROUNDS + 1):
        with pytest.raises(WorkspaceError, match=rf"committed round of model 'm' \(0 to {k}\)"):
            ws.checkpoint("m", r)
    for r in range(k + 1):
        assert ws.checkpoint("m", r).params.tobytes() == params_of(r).tobytes()


def test_commit_after_rewind_continues_at_the_next_round(ws: Workspace) -> None:
    build(ws)
    ws.rewind("m", 2, {"why": "test"})

    with pytest.raises(WorkspaceError, match=r"round_number must be 3\. Found 4\."):
        ws.commit_round("m", 4, {"round": "4b"}, params_of(40))
    ws.commit_round("m", 3, {"round": "3b"}, params_of(30), ledger_entry=charge_of(30))

    assert ws.last_round("m") == 3
    assert ws.rounds("m") == [{"round": 1}, {"round": 2}, {"round": "3b"}]
    assert ws.latest_checkpoint("m").params.tobytes() == params_of(30).tobytes()
    assert [r["round"] for r in ws.superseded_rounds("m")] == [3, 4, 5]


def test_privacy_ledger_keeps_superseded_charges(ws: Workspace) -> None:
    # Prepare
    build(ws)
    before = ws.privacy_ledger("m")

    # Execute
    ws.rewind("m", 2, {"why": "first"})
    ws.commit_round("m", 3, {"round": "3b"}, params_of(30), ledger_entry=charge_of(30))

    # Assert
    assert before == [{**charge_of(r), "round_number": r} for r in (1, 3, 5)]
    assert ws.privacy_ledger("m") == [
        {**charge_of(3), "round_number": 3, "superseded": 1},
        {**charge_of(5), "round_number": 5, "superseded": 1},
        {**charge_of(1), "round_number": 1},
        {**charge_of(30), "round_number": 3},
    ]


def test_superseded_charges_come_in_the_order_they_were_charged(ws: Workspace) -> None:
    # The docstring of privacy_ledger promises charge order for the superseded entries.
    build(ws)
    ws.rewind("m", 4, {"why": "first"})  # archives the charge of round 5
    ws.commit_round("m", 5, {"round": "5b"}, params_of(50), ledger_entry=charge_of(50))

    ws.rewind("m", 2, {"why": "second"})  # archives round 3's charge (older), then 5b's

    superseded = [e for e in ws.privacy_ledger("m") if "superseded" in e]
    assert [(e["epsilon"], e["superseded"]) for e in superseded] == [
        (charge_of(3)["epsilon"], 2),
        (charge_of(5)["epsilon"], 1),
        (charge_of(50)["epsilon"], 2),
    ]


def test_two_rewinds_are_numbered_and_both_archived(ws: Workspace) -> None:
    build(ws)

    first = ws.rewind("m", 3, {"n": 1})
    ws.commit_round("m", 4, {"round": "4b"}, params_of(40))
    second = ws.rewind("m", 1, {"n": 2})

    assert (first.rewind_id, second.rewind_id) == (1, 2)
    assert (second.from_round, second.rounds_archived, second.checkpoints_deleted) == (4, 3, 3)
    assert ws.superseded_rounds("m") == [
        {"round": 4, "rewind_id": 1},
        {"round": 5, "rewind_id": 1},
        {"round": 2, "rewind_id": 2},
        {"round": 3, "rewind_id": 2},
        {"round": "4b", "rewind_id": 2},
    ]


def test_rewind_archives_failed_attempts_too(ws: Workspace) -> None:
    build(ws, rounds=2)
    ws.record_failed_round("m", 3, {"status": "quorum"})

    result = ws.rewind("m", 1, {"why": "test"})

    assert (result.rounds_archived, result.checkpoints_deleted) == (2, 1)
    assert ws.rounds("m", include_failed=True) == [{"round": 1}]
    assert ws.superseded_rounds("m") == [
        {"round": 2, "rewind_id": 1},
        {"status": "quorum", "rewind_id": 1},
    ]
    ws.commit_round("m", 2, {"round": "2b"}, params_of(20))  # attempt numbers start afresh
    assert ws.rounds("m", include_failed=True) == [{"round": 1}, {"round": "2b"}]


def test_rewind_to_the_last_round_only_records_the_reason(ws: Workspace) -> None:
    build(ws)
    before = snapshot(ws)

    result = ws.rewind("m", ROUNDS, {"why": "nothing later"})

    assert result == Rewind(1, "m", ROUNDS, ROUNDS, 0, 0, 0)
    assert snapshot(ws) == before
    with ws.reading() as conn:
        rows = conn.execute("SELECT model_id, to_round, from_round, reason FROM rewinds").fetchall()
    assert rows == [("m", ROUNDS, ROUNDS, '{"why":"nothing later"}')]


def test_rewind_leaves_other_models_alone(ws: Workspace) -> None:
    build(ws, "a")
    build(ws, "b")
    before = snapshot(ws, "b")

    ws.rewind("a", 0, {"why": "test"})

    assert snapshot(ws, "b") == before
    assert ws.superseded_rounds("b") == []
    assert ws.last_round("a") == 0 and ws.rounds("a") == []


@pytest.mark.parametrize("bad", [-1, ROUNDS + 1, 2.0, "2", True, None])
def test_rewind_to_an_invalid_round_changes_nothing(ws: Workspace, bad: object) -> None:
    build(ws)
    before = snapshot(ws)

    with pytest.raises(ConfigError, match=rf"to_round must be .*0 to {ROUNDS}") as info:
        ws.rewind("m", bad, {"why": "test"})  # type: ignore[arg-type]

    assert info.value.value == bad
    assert snapshot(ws) == before
    assert ws.rewind("m", 4, {}).rewind_id == 1  # the refused rewind took no number


def test_rewind_refuses_bad_reason_and_unknown_model(ws: Workspace) -> None:
    build(ws)
    before = snapshot(ws)

    with pytest.raises(ConfigError, match="reason must be a mapping"):
        ws.rewind("m", 1, ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="reason must be JSON-serialisable"):
        ws.rewind("m", 1, {"when": object()})
    with pytest.raises(ModelNotFound, match="'m'"):
        ws.rewind("other", 0, {})
    with pytest.raises(ConfigError, match="model_id"):
        ws.rewind("", 0, {})

    assert snapshot(ws) == before


def test_rewind_after_close_raises(ws: Workspace) -> None:
    build(ws)
    ws.close()

    for call in (
        lambda: ws.rewind("m", 0, {}),
        lambda: ws.superseded_rounds("m"),
        lambda: ws.privacy_ledger("m"),
    ):
        with pytest.raises(ClosedError):
            call()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_rewind_moves_history_but_never_loses_a_charge(case: tuple[int, int]) -> None:
    rounds, k = case
    with Workspace() as ws:
        build(ws, rounds=rounds)
        charges = ws.privacy_ledger("m")

        ws.rewind("m", k, {"k": k})

        assert len(ws.rounds("m")) == k
        assert len(ws.superseded_rounds("m")) == rounds - k
        ledger = ws.privacy_ledger("m")
        assert sorted(e["epsilon"] for e in ledger) == sorted(e["epsilon"] for e in charges)
        assert all(("superseded" in e) == (e["round_number"] > k) for e in ledger)
        assert ws.last_round("m") == k


# -- extra writes --------------------------------------------------------------------


def make_side_table(ws: Workspace) -> None:
    with ws.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS side (note TEXT NOT NULL)")


def side_notes(ws: Workspace) -> list[str]:
    with ws.reading() as conn:
        return [row[0] for row in conn.execute("SELECT note FROM side ORDER BY rowid")]


def test_rewind_extra_writes_run_inside_its_transaction(ws: Workspace) -> None:
    build(ws)
    make_side_table(ws)
    seen: list[tuple[bool, int]] = []

    def note(conn: sqlite3.Connection) -> None:
        # The rewind's own changes are visible: same connection, same transaction.
        (left,) = conn.execute("SELECT COUNT(*) FROM checkpoints WHERE model_id = 'm'").fetchone()
        seen.append((conn.in_transaction, left))
        conn.execute("INSERT INTO side VALUES ('rewound')")

    ws.rewind("m", 2, {"why": "test"}, extra_writes=[note])

    assert seen == [(True, 3)]
    assert side_notes(ws) == ["rewound"]


@pytest.mark.parametrize(
    ("failure", "error", "match"),
    [
        (RuntimeError("lineage write failed"), RuntimeError, "lineage write failed"),
        (None, WorkspaceError, "no such table: missing.*Nothing was written"),
    ],
)
def test_a_failing_rewind_extra_write_rolls_everything_back(
    ws: Workspace, failure: Exception | None, error: type[Exception], match: str
) -> None:
    build(ws)
    make_side_table(ws)
    before = snapshot(ws)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO side VALUES ('half done')")
        if failure is not None:
            raise failure
        conn.execute("INSERT INTO missing VALUES (1)")

    with pytest.raises(error, match=match):
        ws.rewind("m", 1, {"why": "test"}, extra_writes=[lambda conn: None, write])

    assert snapshot(ws) == before
    assert ws.rounds("m") == [{"round": r} for r in range(1, ROUNDS + 1)]
    assert side_notes(ws) == []
    with ws.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM rewinds").fetchone() == (0,)
    assert ws.rewind("m", 1, {"why": "again"}).rounds_archived == ROUNDS - 1  # still usable


def test_commit_round_extra_writes_commit_with_the_round(ws: Workspace) -> None:
    build(ws, rounds=1)
    make_side_table(ws)

    def note(conn: sqlite3.Connection) -> None:
        (count,) = conn.execute("SELECT COUNT(*) FROM rounds WHERE model_id = 'm'").fetchone()
        conn.execute("INSERT INTO side VALUES (?)", (f"rounds={count}",))

    ws.commit_round(
        "m", 2, {"round": 2}, params_of(2), ledger_entry=charge_of(2), extra_writes=[note]
    )

    assert side_notes(ws) == ["rounds=2"]
    assert ws.last_round("m") == 2


def test_a_failing_commit_extra_write_writes_nothing(ws: Workspace) -> None:
    build(ws, rounds=1)
    make_side_table(ws)
    before = snapshot(ws)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO side VALUES ('half done')")
        raise RuntimeError("lineage write failed")

    with pytest.raises(RuntimeError, match="lineage write failed"):
        ws.commit_round(
            "m", 2, {"round": 2}, params_of(2), ledger_entry=charge_of(2), extra_writes=[write]
        )

    assert snapshot(ws) == before
    assert side_notes(ws) == []
    ws.commit_round("m", 2, {"round": 2}, params_of(2))  # the same round commits afterwards
    assert ws.last_round("m") == 2


# -- schema version 2 ----------------------------------------------------------------


def test_version_1_file_is_migrated_to_version_2(db_path: Path) -> None:
    # Prepare: a workspace as heliosfl with schema version 1 wrote it
    with Workspace(db_path) as ws:
        build(ws, rounds=3)
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    for table in reversed(NEW_TABLES):
        raw.execute(f"DROP TABLE {table}")
    raw.commit()
    assert not {t for (t,) in raw.execute("SELECT name FROM sqlite_master")} & set(NEW_TABLES)
    raw.close()

    # Execute
    with Workspace(db_path) as ws:
        history = (ws.rounds("m"), ws.privacy_ledger("m"), ws.last_round("m"))
        result = ws.rewind("m", 1, {"why": "after migration"})

    # Assert
    assert SCHEMA_VERSION == 2
    assert history == (
        [{"round": r} for r in (1, 2, 3)],
        [{**charge_of(r), "round_number": r} for r in (1, 3)],
        3,
    )
    assert (result.rewind_id, result.rounds_archived, result.charges_archived) == (1, 2, 1)
    raw = sqlite3.connect(db_path)
    try:
        version = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        tables = {t for (t,) in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        raw.close()
    assert version == ("2",)
    assert set(NEW_TABLES) <= tables


def test_secure_delete_is_on(ws: Workspace) -> None:
    with ws.reading() as conn:
        assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)


def test_rewound_parameters_are_gone_from_the_file_after_scrub(db_path: Path) -> None:
    # Prepare: only round 3's checkpoint holds MARK, and it reached the database file
    needle = struct.pack("<d", MARK) * 2
    with Workspace(db_path) as ws:
        ws.save_model("m", SPEC, {}, params_of(0))
        for r in (1, 2, 3):
            vector = np.full(SIZE, MARK) if r == 3 else params_of(r)
            ws.commit_round("m", r, {"round": r}, vector)
        ws.scrub()
        assert needle in db_path.read_bytes()

        # Execute
        ws.rewind("m", 2, {"why": "erasure"})
        ws.scrub()

        # Assert
        wal = db_path.with_name(db_path.name + "-wal")
        on_disk = db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert needle not in on_disk
        assert struct.pack("<d", MARK) not in on_disk
        assert ws.latest_checkpoint("m").params.tobytes() == params_of(2).tobytes()


def test_scrub_keeps_everything_and_refuses_after_close(ws: Workspace) -> None:
    # The class promises ClosedError from every method after close, in memory as well.
    build(ws, rounds=1)
    before = snapshot(ws)

    ws.scrub()

    assert snapshot(ws) == before
    ws.close()
    with pytest.raises(ClosedError, match="Workspace is closed"):
        ws.scrub()
