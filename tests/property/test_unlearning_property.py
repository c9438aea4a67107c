"""Property: for any subject, consent time and history length, erasure equals a clean retrain.

The federation is small (synthetic sites, logistic regression, random(2) of 4 nodes) so
each example trains two short runs; the draw covers which subject is erased, how many
rounds ran before they consented, how many after, and whether some other subject withdrew
meanwhile. Replayed rounds obey consent as it stands at the erasure (training a subject
who has withdrawn would be processing without consent), so in the reference such a
withdrawal takes effect from the first replayed round if that is earlier.
"""

from __future__ import annotations

import asyncio

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import heliosfl as fl

SETTINGS = settings(max_examples=12, deadline=None)


def sites() -> tuple[list[fl.NodeData], fl.NodeData]:
    return fl.data.synthetic_sites(
        num_sites=4, samples_per_site=24, num_features=5, test_samples=200, seed=3
    )


def config() -> fl.Config:
    return fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=50,
            min_nodes_per_round=1,
            learning_rate=0.2,
            convergence_threshold=0.0,
            selection_strategy=fl.NodeSelectionStrategy.random(2),
        ),
        seed=9,
    )


def subjects(nodes: list[fl.NodeData]) -> list[str]:
    found: set[str] = set()
    for node in nodes:
        found.update(str(s) for s in node.subject_ids)  # type: ignore[union-attr]
        if node.subject_ids_val is not None:
            found.update(str(s) for s in node.subject_ids_val)
    return sorted(found)


async def federation(
    nodes: list[fl.NodeData], test: fl.NodeData, manager: fl.GdprComplianceManager | None
) -> fl.Coordinator:
    engine = fl.FederatedLearningEngine(config(), workspace=manager.workspace if manager else None)
    if manager is not None:
        engine.attach_gdpr(manager)
    await engine.register_model("m", "logistic_regression", input_dim=5)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    for i, data in enumerate(nodes):
        await engine.create_worker(fl.WorkerConfig(node_id=f"s{i}", batch_size=8), data=data)
        await coordinator.register_node(f"s{i}", len(data))
    return coordinator


async def scenario(pick: int, before: int, after: int, withdrawer: int | None) -> float:
    nodes, test = sites()
    everyone = subjects(nodes)
    erased = everyone[pick % len(everyone)]
    manager = fl.GdprComplianceManager(workspace=fl.Workspace())
    for subject in everyone:
        if subject != erased:
            manager.record_consent(subject, ["model_training"], "v1")
    coordinator = await federation(nodes, test, manager)
    for _ in range(before):
        await coordinator.run_round()
    manager.record_consent(erased, ["model_training"], "v1")
    withdrawn = None if withdrawer is None else everyone[withdrawer % len(everyone)]
    for i in range(after):
        if i == 1 and withdrawn is not None and withdrawn != erased:
            manager.withdraw_consent(withdrawn)
        await coordinator.run_round()
    record = await manager.delete_user_data(erased)
    assert await manager.verify_deletion(erased)

    # The reference: the same history on data that never held the erased subject. The
    # replay obeys consent as it is at the erasure, so a withdrawal that happened after
    # the rollback point counts from the first replayed round.
    rollback = record.unlearning[0].rollback_round if record.unlearning else before + after
    effective = min(before + 1, rollback)  # index of the first round without the withdrawer
    clean = [n.without_subjects([erased]) for n in nodes]
    reference = fl.GdprComplianceManager(workspace=fl.Workspace())
    for subject in everyone:
        if subject != erased:
            reference.record_consent(subject, ["model_training"], "v1")
    other = await federation(clean, test, reference)
    for i in range(before + after):
        if i == effective and withdrawn is not None and withdrawn != erased and after > 1:
            reference.withdraw_consent(withdrawn)
        await other.run_round()
    return float(np.max(np.abs(coordinator.params - other.params)))


@SETTINGS
@given(
    pick=st.integers(0, 10_000),
    before=st.integers(0, 3),
    after=st.integers(1, 4),
    withdrawer=st.none() | st.integers(0, 10_000),
)
def test_erasure_always_equals_a_retrain_without_the_subject(
    pick: int, before: int, after: int, withdrawer: int | None
) -> None:
    assert asyncio.run(scenario(pick, before, after, withdrawer)) <= 1e-9
