"""A federation that trains until it is killed; run by ``test_crash_safety.py``.

Usage::

    python crash_child.py <workspace_path> <key_path> <ready_flag_path> <mode>

It trains model ``"m"`` (logistic regression on breast cancer, 10 nodes, differential
privacy with reproducible noise, a HIPAA manager attached) in a persistent workspace, one
``run_round()`` at a time. Every node answers ``DELAY_SECS`` late, so a round lasts at least
that long. After round ``READY_ROUND`` has committed it writes the ready flag and goes on
with the next rounds until the parent kills it.

Modes:

``kek``
    The HIPAA manager gets ``kek=KeyEncryptionKey.from_file(key_path)``.
``keydir``
    The manager finds its KEK itself in ``HELIOSFL_KEY_DIR`` (a key file the parent
    created beforehand, at ``key_path``); its audit head is then kept in a file beside it.
``commit-window``
    As ``keydir``, but the process SIGKILLs itself as soon as round ``READY_ROUND + 1``
    has committed, before the HIPAA manager has seen the round (the manager's event
    listener runs after this script's one): the crash lands between the workspace commit
    and the integrity tag and audit entry of that round.

The test (and the notebook kernel it drives) imports this module for :func:`make_config`,
:func:`new_run`, :func:`resumed_run`, :func:`make_manager` and :func:`summary`, so that
every process rebuilds exactly the same federation and reports on it the same way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import heliosfl as fl
from heliosfl.compliance import (
    AuditAction,
    HipaaComplianceManager,
    HipaaConfig,
    KeyEncryptionKey,
)
from heliosfl.privacy import PrivacyLedger

MODEL_ID = "m"
NUM_NODES = 10
READY_ROUND = 3
DELAY_SECS = 0.5
SEED = 0
MODES = ("kek", "keydir", "commit-window")


def make_config() -> fl.Config:
    """The run's configuration: DP with a fixed noise multiplier, room for 20 rounds."""
    return fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=20,
            min_nodes_per_round=NUM_NODES,
            selection_strategy=fl.NodeSelectionStrategy.all(),
            learning_rate=0.3,
            convergence_threshold=0.0,
            node_timeout_secs=30.0,
        ),
        enable_privacy=True,
        privacy_config=fl.DifferentialPrivacyConfig(
            epsilon=50.0, delta=1e-5, noise_multiplier=1.0, reproducible_noise=True
        ),
        seed=SEED,
    )


def load_data() -> tuple[list[fl.NodeData], fl.NodeData]:
    """The nodes' data and the held-out validation set."""
    train, test = fl.data.load_dataset("breast_cancer", seed=SEED)
    return fl.data.partition(train, num_nodes=NUM_NODES, scheme="iid", seed=SEED), test


async def add_workers(
    engine: fl.FederatedLearningEngine,
    coordinator: fl.Coordinator,
    nodes: list[fl.NodeData],
    *,
    delay_secs: float = 0.0,
) -> None:
    """Create and register one worker per node, in the HIPAA data residency."""
    fault = fl.NodeFault(delay_secs=delay_secs) if delay_secs else None
    for i, data in enumerate(nodes):
        wc = fl.WorkerConfig(node_id=f"node_{i:02d}", local_epochs=1, batch_size=16)
        await engine.create_worker(wc, data=data, fault=fault, region="US")
        await coordinator.register_node(wc.node_id, len(data))


async def new_run(
    engine: fl.FederatedLearningEngine,
    nodes: list[fl.NodeData],
    test: fl.NodeData,
    *,
    delay_secs: float = 0.0,
) -> fl.Coordinator:
    """Register model ``"m"`` and its nodes in ``engine``; return its coordinator."""
    await engine.register_model(MODEL_ID, "logistic_regression", input_dim=30)
    coordinator = await engine.create_coordinator(MODEL_ID, validation_data=test)
    await add_workers(engine, coordinator, nodes, delay_secs=delay_secs)
    return coordinator


async def resumed_run(
    engine: fl.FederatedLearningEngine, nodes: list[fl.NodeData], test: fl.NodeData
) -> fl.Coordinator:
    """Resume model ``"m"`` from the engine's workspace and register its nodes again."""
    coordinator = await engine.resume(MODEL_ID, validation_data=test)
    await add_workers(engine, coordinator, nodes)
    return coordinator


def make_manager(
    workspace: fl.Workspace, key_path: Path, *, explicit_kek: bool
) -> HipaaComplianceManager:
    """The HIPAA manager on ``workspace``, with the KEK of ``key_path``.

    With ``explicit_kek`` the key is read from ``key_path`` and passed as ``kek=``;
    otherwise the manager finds it in ``HELIOSFL_KEY_DIR``, which must give ``key_path``.
    """
    if explicit_kek:
        kek = KeyEncryptionKey.from_file(key_path)
        return HipaaComplianceManager(HipaaConfig(), workspace=workspace, kek=kek)
    manager = HipaaComplianceManager(HipaaConfig(), workspace=workspace)
    if manager.key_file is None or manager.key_file.resolve() != key_path.resolve():
        raise RuntimeError(f"the manager uses key file {manager.key_file}, not {key_path}")
    return manager


def summary(
    workspace: fl.Workspace,
    manager: HipaaComplianceManager,
    engine: fl.FederatedLearningEngine | None = None,
) -> dict[str, Any]:
    """What the workspace, the ledger, the audit log and the integrity tags hold (JSON)."""
    ledger = workspace.privacy_ledger(MODEL_ID)
    budget = make_config().privacy_config
    recomputed = PrivacyLedger(budget.epsilon, budget.delta, budget.accountant, list(ledger))
    audit = manager.verify_audit_log()
    tagged, first_bad = manager.checkpoint_tags.verify(MODEL_ID)
    checkpoint = workspace.latest_checkpoint(MODEL_ID)
    entries = manager.audit.entries()
    return {
        "last_round": workspace.last_round(MODEL_ID),
        "rounds": [r["round_number"] for r in workspace.rounds(MODEL_ID)],
        "attempts": [r["round_number"] for r in workspace.rounds(MODEL_ID, include_failed=True)],
        "ledger_rounds": [e["round_number"] for e in ledger],
        "superseded_charges": sum("superseded" in e for e in ledger),
        "noise_multipliers": sorted({e["noise_multiplier"] for e in ledger}),
        "epsilon_recomputed": recomputed.spent(),
        "epsilon_spent": None if engine is None else engine.privacy_spent(MODEL_ID)[0],
        "audit_ok": audit.ok,
        "audit_problem": None if audit.problem is None else str(audit.problem),
        "audit_message": audit.message,
        "audited_rounds": [
            e.details.get("round") for e in entries if e.action is AuditAction.ROUND_COMPLETED
        ],
        "checkpoint_round": checkpoint.round_number,
        "checkpoint_params": int(checkpoint.params.size),
        "checkpoint_finite": bool(np.isfinite(checkpoint.params).all()),
        "tags_verified": tagged,
        "tags_first_bad": first_bad,
    }


def _die_after_commit(round_number: int) -> Callable[[fl.events.Event], None]:
    def listener(event: fl.events.Event) -> None:
        committed = isinstance(event, fl.events.RoundCompleted)
        if committed and event.record.round_number == round_number:
            os.kill(os.getpid(), signal.SIGKILL)

    return listener


async def main(workspace_path: Path, key_path: Path, flag_path: Path, mode: str) -> None:
    """Train round after round until killed (see the module docstring)."""
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {MODES}. Found {mode!r}.")
    nodes, test = load_data()
    with fl.Workspace(workspace_path) as workspace:
        engine = fl.FederatedLearningEngine(make_config(), workspace=workspace)
        async with engine:
            if mode == "commit-window":  # registered first, so it runs before HIPAA's
                engine.events.add_listener(_die_after_commit(READY_ROUND + 1))
            manager = make_manager(workspace, key_path, explicit_kek=mode == "kek")
            engine.attach_hipaa(manager)
            coordinator = await new_run(engine, nodes, test, delay_secs=DELAY_SECS)
            for round_number in range(1, 20):
                record = await coordinator.run_round()
                if record.round_number != round_number:
                    raise RuntimeError(f"round {record.round_number}, not {round_number}")
                if round_number == READY_ROUND:
                    await asyncio.to_thread(flag_path.write_text, str(round_number))
    raise SystemExit("trained 19 rounds without being killed")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    ws, key, flag, run_mode = sys.argv[1:]
    asyncio.run(main(Path(ws), Path(key), Path(flag), run_mode))
