"""Tests of heliosfl.store: the SQLite workspace (in-memory and file)."""

from __future__ import annotations

import io
import math
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from heliosfl.errors import ClosedError, ConfigError, ModelNotFound, WorkspaceError
from heliosfl.store import SCHEMA_VERSION, Checkpoint, ModelRecord, Workspace

SPEC = {"model_type": "mlp", "input_dim": 4, "hidden_layers": [3], "num_classes": 2}
CONFIG = {"max_rounds": 3, "epsilon": 1.0, "aggregation_strategy": "fedavg"}


def initial(n: int = 5) -> np.ndarray:
    return np.random.default_rng(0).normal(size=n)


@pytest.fixture(params=["memory", "file"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(None if request.param == "memory" else tmp_path / "ws.db")
    yield workspace
    workspace.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ws.db"


def commit_three(ws: Workspace, model_id: str = "m") -> list[np.ndarray]:
    params = [initial() + r for r in range(4)]
    ws.save_model(model_id, SPEC, CONFIG, params[0])
    for r in (1, 2, 3):
        state = {"m": params[r][:2] * 0.5, "step": np.array(float(r))}
        ws.commit_round(model_id, r, {"round": r, "loss": 1.0 / r}, params[r], state)
    return params


# -- models --------------------------------------------------------------------------


def test_save_and_load_model(ws: Workspace) -> None:
    saved = ws.save_model("m", SPEC, CONFIG, initial())
    loaded = ws.load_model("m")
    assert isinstance(loaded, ModelRecord)
    assert loaded == saved
    assert (loaded.model_id, loaded.spec, loaded.config) == ("m", SPEC, CONFIG)
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == UTC.utcoffset(None)
    assert ws.list_models() == ["m"]
    assert ws.has_model("m") and not ws.has_model("other")
    assert ws.load_model("other") is None


def test_round_zero_checkpoint_is_initial_params(ws: Workspace) -> None:
    params = initial()
    ws.save_model("m", SPEC, CONFIG, params)
    cp = ws.latest_checkpoint("m")
    assert isinstance(cp, Checkpoint)
    assert (cp.model_id, cp.round_number, cp.state) == ("m", 0, {})
    assert cp.params.tobytes() == params.tobytes()
    assert ws.last_round("m") == 0
    assert ws.rounds("m") == []


def test_duplicate_save_model_refused_and_original_kept(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    ws.commit_round("m", 1, {"loss": 0.5}, initial() + 1)
    with pytest.raises(WorkspaceError, match="already registered"):
        ws.save_model("m", {"model_type": "other"}, {}, np.zeros(2))
    assert ws.load_model("m").spec == SPEC  # type: ignore[union-attr]
    assert ws.last_round("m") == 1
    assert ws.checkpoint("m", 0).params.tobytes() == initial().tobytes()


@pytest.mark.parametrize("bad", ["", "x" * 201, 3, None])
def test_invalid_model_id(ws: Workspace, bad: object) -> None:
    with pytest.raises(ConfigError, match="model_id"):
        ws.save_model(bad, SPEC, CONFIG, initial())  # type: ignore[arg-type]
    assert ws.list_models() == []


@pytest.mark.parametrize("bad", [np.zeros((2, 2)), np.zeros(0), np.array(["a", "b"]), 3.0])
def test_invalid_params(ws: Workspace, bad: object) -> None:
    with pytest.raises(ConfigError, match="initial_params"):
        ws.save_model("m", SPEC, CONFIG, bad)  # type: ignore[arg-type]
    assert not ws.has_model("m")


def test_unknown_model_raises_model_not_found(ws: Workspace) -> None:
    ws.save_model("a", SPEC, CONFIG, initial())
    for call in (
        lambda: ws.rounds("b"),
        lambda: ws.last_round("b"),
        lambda: ws.latest_checkpoint("b"),
        lambda: ws.commit_round("b", 1, {}, initial()),
        lambda: ws.record_failed_round("b", 1, {}),
    ):
        with pytest.raises(ModelNotFound, match="'a'"):
            call()


# -- rounds --------------------------------------------------------------------------


def test_commit_rounds_and_checkpoints(ws: Workspace) -> None:
    params = commit_three(ws)
    assert ws.last_round("m") == 3
    assert ws.rounds("m") == [{"round": r, "loss": 1.0 / r} for r in (1, 2, 3)]
    for r in range(4):
        assert ws.checkpoint("m", r).params.tobytes() == params[r].tobytes()
    latest = ws.latest_checkpoint("m")
    assert latest.round_number == 3
    np.testing.assert_array_equal(latest.state["m"], params[3][:2] * 0.5)
    assert latest.state["step"].shape == ()


def test_reopen_file_keeps_history_bit_for_bit(db_path: Path) -> None:
    with Workspace(db_path) as first:
        params = commit_three(first)
        first.record_failed_round("m", 4, {"status": "failed"})
        before = (first.rounds("m", include_failed=True), first.load_model("m"))
    with Workspace(db_path) as again:  # a new object, as after a kernel restart
        assert again.is_persistent and again.path == db_path
        assert (again.rounds("m", include_failed=True), again.load_model("m")) == before
        assert again.last_round("m") == 3
        for r in range(4):
            cp = again.checkpoint("m", r)
            assert cp.params.tobytes() == params[r].tobytes()
            assert cp.params.dtype == np.float64
        again.commit_round("m", 4, {"loss": 0.1}, params[3] + 1)  # resume where it stopped
        assert again.last_round("m") == 4


@pytest.mark.parametrize("number", [0, 1, 2, 4, 5])
def test_round_gap_or_repeat_refused_and_nothing_written(ws: Workspace, number: int) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    ws.commit_round("m", 1, {"loss": 0.5}, initial() + 1)
    ws.commit_round("m", 2, {"loss": 0.4}, initial() + 2)
    error = ConfigError if number == 0 else WorkspaceError
    with pytest.raises(error, match="round_number"):
        ws.commit_round("m", number, {"loss": 9.0}, initial() + 9)
    with pytest.raises(error, match="round_number must be"):
        ws.record_failed_round("m", number, {"loss": 9.0})
    assert ws.last_round("m") == 2
    assert ws.rounds("m", include_failed=True) == [{"loss": 0.5}, {"loss": 0.4}]
    assert ws.latest_checkpoint("m").params.tobytes() == (initial() + 2).tobytes()


def test_round_number_message_says_expected_and_found(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    with pytest.raises(WorkspaceError, match=r"round_number must be 1\. Found 3\."):
        ws.commit_round("m", 3, {}, initial())


def test_unserialisable_record_writes_nothing(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    with pytest.raises(ConfigError, match="record"):
        ws.commit_round("m", 1, {"when": object()}, initial())
    with pytest.raises(ConfigError, match="record key"):
        ws.commit_round("m", 1, {1: "int key"}, initial())  # type: ignore[dict-item]
    assert ws.last_round("m") == 0
    assert ws.rounds("m", include_failed=True) == []


def test_wrong_param_count_writes_nothing(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial(5))
    with pytest.raises(ConfigError, match="params must be 5 values"):
        ws.commit_round("m", 1, {"loss": 1.0}, initial(6))
    assert ws.rounds("m") == [] and ws.last_round("m") == 0


def test_failure_inside_transaction_rolls_back(db_path: Path) -> None:
    with Workspace(db_path) as ws:
        ws.save_model("m", SPEC, CONFIG, initial())
    raw = sqlite3.connect(db_path)
    raw.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON checkpoints "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    raw.commit()
    raw.close()
    with Workspace(db_path) as ws:
        # the round row is inserted first, then the checkpoint insert fails
        with pytest.raises(WorkspaceError, match="disk says no"):
            ws.commit_round("m", 1, {"loss": 0.5}, initial() + 1)
        with pytest.raises(WorkspaceError, match="disk says no"):
            ws.save_model("n", SPEC, CONFIG, initial())
        assert ws.rounds("m", include_failed=True) == []
        assert ws.last_round("m") == 0
        assert ws.list_models() == ["m"]
        ws.record_failed_round("m", 1, {"status": "still usable"})
        assert ws.rounds("m", include_failed=True) == [{"status": "still usable"}]


def test_failed_rounds_kept_in_history(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    ws.record_failed_round("m", 1, {"attempt": "a", "status": "quorum"})
    ws.record_failed_round("m", 1, {"attempt": "b", "status": "quorum"})
    assert ws.last_round("m") == 0
    ws.commit_round("m", 1, {"attempt": "c", "status": "ok"}, initial() + 1)
    ws.record_failed_round("m", 2, {"attempt": "d", "status": "quorum"})
    assert [r["attempt"] for r in ws.rounds("m")] == ["c"]
    assert [r["attempt"] for r in ws.rounds("m", include_failed=True)] == ["a", "b", "c", "d"]
    assert ws.last_round("m") == 1
    with pytest.raises(WorkspaceError, match="round_number must be a committed round"):
        ws.checkpoint("m", 2)


def test_nan_and_numpy_values_in_record(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    record = {
        "loss": math.nan,
        "bound": math.inf,
        "nested": {"values": [np.float64("nan"), -math.inf, 1.5], "pair": (1, 2)},
        "count": np.int64(7),
        "accuracy": np.float32(0.5),
        "per_node": np.array([0.25, np.nan]),
        "ok": True,
        "note": None,
    }
    ws.commit_round("m", 1, record, initial())
    (stored,) = ws.rounds("m")
    assert stored == {
        "loss": None,
        "bound": None,
        "nested": {"values": [None, None, 1.5], "pair": [1, 2]},
        "count": 7,
        "accuracy": 0.5,
        "per_node": [0.25, None],
        "ok": True,
        "note": None,
    }
    assert type(stored["count"]) is int


def test_state_round_trip(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    state = {
        "m": np.arange(6.0).reshape(2, 3),
        "v": np.array([1e-300, -0.0, np.inf]),
        "file": np.array(1.0),  # a name np.savez would take as its own keyword
        "t": np.array([3], dtype=np.int64),
    }
    ws.commit_round("m", 1, {}, initial(), state)
    loaded = ws.latest_checkpoint("m").state
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        assert loaded[key].dtype == np.float64
        assert loaded[key].tobytes() == np.asarray(value, dtype=np.float64).tobytes()
    with pytest.raises(ConfigError, match="state"):
        ws.commit_round("m", 2, {}, initial(), {"bad": np.array(["x"])})
    assert ws.last_round("m") == 1


def test_loaded_arrays_are_fresh_writable_copies(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    ws.commit_round("m", 1, {}, initial(), {"m": np.ones(2)})
    cp = ws.latest_checkpoint("m")
    assert cp.params.flags.writeable and cp.state["m"].flags.writeable
    cp.params[:] = 0.0
    cp.state["m"][:] = 0.0
    again = ws.latest_checkpoint("m")
    assert again.params.tobytes() == initial().tobytes()
    assert again.state["m"].tolist() == [1.0, 1.0]


def test_big_endian_and_integer_params_stored_as_float64(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, np.array([1.5, -2.0], dtype=">f8"))
    ws.commit_round("m", 1, {}, np.array([3, 4], dtype=np.int32))
    assert ws.checkpoint("m", 0).params.tolist() == [1.5, -2.0]
    assert ws.checkpoint("m", 1).params.tolist() == [3.0, 4.0]


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(allow_nan=True)))
def test_params_round_trip_bit_for_bit(params: np.ndarray) -> None:
    with Workspace() as ws:
        ws.save_model("m", SPEC, CONFIG, params)
        ws.commit_round("m", 1, {}, params[::-1])
        assert ws.checkpoint("m", 0).params.tobytes() == params.tobytes()
        assert ws.checkpoint("m", 1).params.tobytes() == params[::-1].tobytes()


# -- file format ---------------------------------------------------------------------


def test_file_uses_wal_and_records_schema_version(db_path: Path) -> None:
    Workspace(db_path).close()
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert version[0] == str(SCHEMA_VERSION)
    finally:
        raw.close()


def set_schema_version(db_path: Path, value: object) -> None:
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    raw.commit()
    raw.close()


def test_newer_schema_version_refused(db_path: Path) -> None:
    Workspace(db_path).close()
    set_schema_version(db_path, SCHEMA_VERSION + 1)
    with pytest.raises(
        WorkspaceError, match=rf"at most {SCHEMA_VERSION}.*version {SCHEMA_VERSION + 1}"
    ):
        Workspace(db_path)
    set_schema_version(db_path, SCHEMA_VERSION)  # an older heliosfl's file opens again
    Workspace(db_path).close()


@pytest.mark.parametrize("value", ["abc", "0"])
def test_damaged_schema_version_refused(db_path: Path, value: str) -> None:
    Workspace(db_path).close()
    set_schema_version(db_path, value)
    with pytest.raises(WorkspaceError, match="damaged"):
        Workspace(db_path)


def test_not_a_database_refused(db_path: Path) -> None:
    db_path.write_text("patient_id,age\n" * 200)
    with pytest.raises(WorkspaceError, match=str(db_path)):
        Workspace(db_path)
    assert db_path.read_text().startswith("patient_id,age")


def test_other_applications_database_left_alone(db_path: Path) -> None:
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE patients (id INTEGER)")
    raw.commit()
    raw.close()
    with pytest.raises(WorkspaceError, match="another application"):
        Workspace(db_path)
    raw = sqlite3.connect(db_path)
    tables = [row[0] for row in raw.execute("SELECT name FROM sqlite_master")]
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
    raw.close()
    assert tables == ["patients"]


def test_missing_directory_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    with pytest.raises(WorkspaceError, match=str(missing)):
        Workspace(missing / "ws.db")
    assert not missing.exists()


def test_directory_as_path_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="must be a file"):
        Workspace(tmp_path)


def test_repr_and_persistence(tmp_path: Path) -> None:
    memory = Workspace()
    assert repr(memory) == "Workspace(in-memory)"
    assert not memory.is_persistent and memory.path is None
    memory.close()
    assert repr(memory) == "Workspace(in-memory, closed)"
    with Workspace(str(tmp_path / "a.db")) as ws:
        assert str(tmp_path / "a.db") in repr(ws)


@pytest.mark.parametrize("bad", [123, 1.5, b"ws.db", ["ws.db"], True])
def test_non_path_argument_raises_config_error(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        Workspace(bad)  # type: ignore[arg-type]
    err = info.value
    assert (err.field, err.value) == ("path", bad)
    assert err.allowed == "a file path (str or os.PathLike) or None for an in-memory workspace"
    assert str(err).startswith("path must be a file path (str or os.PathLike) or None")


def test_memory_string_is_an_in_memory_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Workspace(":memory:") as ws:
        assert not ws.is_persistent and ws.path is None
        assert repr(ws) == "Workspace(in-memory)"
        ws.save_model("m", SPEC, CONFIG, initial())
    assert repr(ws) == "Workspace(in-memory, closed)"
    assert list(tmp_path.iterdir()) == []


def test_path_object_named_memory_is_a_real_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the str ":memory:" means in-memory; a Path of that name is a file, as asked.
    monkeypatch.chdir(tmp_path)
    with Workspace(Path(":memory:")) as ws:
        assert ws.is_persistent
        ws.save_model("m", SPEC, CONFIG, initial())
    assert (tmp_path / ":memory:").is_file()
    with Workspace(Path(":memory:")) as again:
        assert again.list_models() == ["m"]


# -- lifetime and threads ------------------------------------------------------------


def test_use_after_close_raises_closed_error(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    ws.close()
    ws.close()  # harmless twice
    for call in (
        lambda: ws.save_model("n", SPEC, CONFIG, initial()),
        lambda: ws.load_model("m"),
        lambda: ws.list_models(),
        lambda: ws.commit_round("m", 1, {}, initial()),
        lambda: ws.record_failed_round("m", 1, {}),
        lambda: ws.rounds("m"),
        lambda: ws.latest_checkpoint("m"),
    ):
        with pytest.raises(ClosedError, match="Workspace is closed"):
            call()


def test_context_manager_closes() -> None:
    with Workspace() as ws:
        ws.save_model("m", SPEC, CONFIG, initial())
    with pytest.raises(ClosedError):
        ws.list_models()


async def test_async_context_manager_closes(db_path: Path) -> None:
    async with Workspace(db_path) as ws:
        ws.save_model("m", SPEC, CONFIG, initial())
    with pytest.raises(ClosedError):
        ws.list_models()
    async with Workspace(db_path) as again:
        assert again.list_models() == ["m"]


def test_concurrent_commits_for_different_models(ws: Workspace) -> None:
    models = [f"model_{i}" for i in range(8)]
    barrier = threading.Barrier(len(models), timeout=5)

    def train(model_id: str) -> None:
        ws.save_model(model_id, SPEC, CONFIG, initial())
        barrier.wait()
        for r in range(1, 6):
            ws.commit_round(model_id, r, {"model": model_id, "round": r}, initial() + r)

    with ThreadPoolExecutor(len(models)) as pool:
        list(pool.map(train, models))
    assert sorted(ws.list_models()) == models
    for model_id in models:
        assert ws.rounds(model_id) == [{"model": model_id, "round": r} for r in range(1, 6)]
        assert ws.latest_checkpoint(model_id).params.tobytes() == (initial() + 5).tobytes()


def test_concurrent_commits_of_the_same_round_only_one_wins(ws: Workspace) -> None:
    ws.save_model("m", SPEC, CONFIG, initial())
    barrier = threading.Barrier(6, timeout=5)

    def commit(i: int) -> bool:
        barrier.wait()
        try:
            ws.commit_round("m", 1, {"writer": i}, initial() + i)
        except WorkspaceError:
            return False
        return True

    with ThreadPoolExecutor(6) as pool:
        won = list(pool.map(commit, range(6)))
    assert sum(won) == 1
    (record,) = ws.rounds("m", include_failed=True)
    winner = won.index(True)
    assert record == {"writer": winner}
    assert ws.latest_checkpoint("m").params.tobytes() == (initial() + winner).tobytes()


def test_pickled_state_is_never_loaded(db_path: Path) -> None:
    with Workspace(db_path) as ws:
        ws.save_model("m", SPEC, CONFIG, initial())
    buffer = io.BytesIO()
    np.savez(buffer, m=np.array([1.5], dtype=object), allow_pickle=True)  # pickled
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE checkpoints SET state = ?", (buffer.getvalue(),))
    raw.commit()
    raw.close()
    with Workspace(db_path) as ws, pytest.raises(WorkspaceError, match="damaged"):
        ws.latest_checkpoint("m")
