"""The command line: `heliosfl demo` and `heliosfl simulate` run and report."""

from __future__ import annotations

from heliosfl.cli import main


def test_demo_runs_the_100_node_deployment_and_prints_the_health_check(capsys):
    assert main(["demo", "--max-rounds", "4", "--hanging", "2", "--timeout", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "Deployed 100/100 nodes" in out
    assert "10,258 parameters" in out
    assert out.count("  round ") == 4
    assert "Current round: 4/4" in out
    assert "Total nodes: 100" in out
    # prod_node_003 crashes every round: after three failures it is unavailable
    assert "unavailable: prod_node_003" in out


def test_simulate_trains_and_keeps_the_run_in_a_workspace(tmp_path, capsys):
    path = tmp_path / "run.db"
    code = main(
        ["simulate", "--nodes", "5", "--rounds", "3", "--workspace", str(path), "--seed", "1"]
    )
    assert code == 0
    assert "stopped: max_rounds" in capsys.readouterr().out
    assert path.exists()


def test_simulate_with_secure_aggregation(capsys):
    code = main(["simulate", "--nodes", "6", "--rounds", "2", "--secure-aggregation"])
    assert code == 0
    assert "round    2:   6/  6 nodes" in capsys.readouterr().out


def test_errors_are_reported_not_raised(capsys):
    assert main(["simulate", "--nodes", "5", "--min-nodes", "9", "--rounds", "2"]) == 2
    assert "Insufficient nodes" in capsys.readouterr().err


def test_lab_finds_the_start_notebook(capsys):
    assert main(["lab", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "jupyter lab 00_start_here.ipynb" in out and "notebooks" in out
    assert main(["lab", "--dry-run", "--notebooks", "/nonexistent"]) == 2
