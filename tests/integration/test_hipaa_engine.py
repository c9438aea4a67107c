"""HIPAA hooks in the engine: audited training, leaking updates rejected, residency."""

from __future__ import annotations

import numpy as np
import pytest
from federation_helpers import round_config

import heliosfl as fl
from heliosfl.compliance import AuditAction, HipaaComplianceManager, HipaaConfig


async def hospital_engine(nodes, test, *, model="softmax_regression", **model_kwargs):
    config = fl.Config(round_config=round_config(max_rounds=2, min_nodes_per_round=3))
    engine = fl.FederatedLearningEngine(config)
    manager = HipaaComplianceManager(HipaaConfig(data_residency="US"))
    engine.attach_hipaa(manager)
    await engine.register_model("m", model, **model_kwargs)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    for i, data in enumerate(nodes):
        await engine.create_worker(fl.WorkerConfig(node_id=f"h{i}"), data=data, region="US")
        await coordinator.register_node(f"h{i}", len(data))
    return engine, coordinator, manager


async def test_a_leaking_update_is_rejected_and_audited_not_aggregated():
    train, test = fl.data.load_dataset("digits", seed=0)
    nodes = fl.data.partition(train, num_nodes=6, scheme="iid", seed=0, val_fraction=0.0)
    lone = fl.NodeData(train.X[:1], train.y[:1])  # one patient: its update is its input
    engine, coordinator, manager = await hospital_engine(
        [*nodes, lone], test, input_dim=64, num_classes=10
    )
    async with engine:
        record = await coordinator.run_round()
        result = await engine.train("m")
    assert "h6" not in record.participating_nodes
    assert "gradient-leakage" in record.failed_nodes["h6"]
    assert len(record.participating_nodes) == 6
    actions = [e.action for e in manager.audit.entries()]
    assert AuditAction.UPDATE_REJECTED in actions
    assert AuditAction.TRAINING_STARTED in actions and AuditAction.TRAINING_FINISHED in actions
    assert actions.count(AuditAction.ROUND_COMPLETED) == 2
    assert result.current_round == 2
    assert manager.verify_audit_log().ok


async def test_logistic_updates_are_checked_against_the_nodes_own_rows(breast_cancer):
    train, test = breast_cancer
    nodes = fl.data.partition(train, num_nodes=5, scheme="iid", seed=0)
    engine, coordinator, manager = await hospital_engine(
        nodes, test, model="logistic_regression", input_dim=30
    )
    async with engine:
        record = await coordinator.run_round()
    assert len(record.participating_nodes) == 5
    assert manager.rejected_updates == 0


async def test_nodes_outside_the_residency_are_refused_at_creation(small_nodes):
    engine = fl.FederatedLearningEngine()
    engine.attach_hipaa(HipaaComplianceManager(HipaaConfig(data_residency="US")))
    async with engine:
        with pytest.raises(fl.ComplianceError, match="data_residency"):
            await engine.create_worker(
                fl.WorkerConfig(node_id="eu"), data=small_nodes[0], region="EU"
            )
        with pytest.raises(fl.ComplianceError, match="data_residency"):
            await engine.create_worker(fl.WorkerConfig(node_id="nowhere"), data=small_nodes[0])
        ids = np.column_stack([small_nodes[0].X, 123456789 + np.arange(len(small_nodes[0]))])
        leaky = fl.NodeData(ids, small_nodes[0].y)
        with pytest.raises(fl.ComplianceError, match="undeclared PHI"):
            await engine.create_worker(fl.WorkerConfig(node_id="ids"), data=leaky, region="US")
        await engine.create_worker(fl.WorkerConfig(node_id="ok"), data=small_nodes[0], region="us")


async def test_checkpoints_carry_integrity_tags_verified_on_read(
    small_nodes, breast_cancer, tmp_path
):
    _, test = breast_cancer
    path = tmp_path / "hospital.db"
    config = fl.Config(round_config=round_config(max_rounds=3, min_nodes_per_round=3))
    with fl.Workspace(path) as workspace:
        engine = fl.FederatedLearningEngine(config, workspace=workspace)
        manager = HipaaComplianceManager(HipaaConfig())
        engine.attach_hipaa(manager)
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, data in enumerate(small_nodes):
            await engine.create_worker(fl.WorkerConfig(node_id=f"h{i}"), data=data, region="US")
            await coordinator.register_node(f"h{i}", len(data))
        async with engine:
            await engine.train("m")
        verified, bad = manager.checkpoint_tags.verify()
        assert (verified, bad) == (4, None)  # rounds 0..3
        report_ok = manager.verify_compliance()
        assert report_ok.overall_compliant
        with workspace.transaction() as conn:  # someone edits checkpoint 2 behind our back
            row = conn.execute(
                "SELECT params FROM checkpoints WHERE model_id='m' AND round_number=2"
            ).fetchone()
            tampered = bytearray(row[0])
            tampered[0] ^= 1
            conn.execute(
                "UPDATE checkpoints SET params=? WHERE model_id='m' AND round_number=2",
                (bytes(tampered),),
            )
        assert manager.checkpoint_tags.verify() == (2, ("m", 2))
        assert not manager.verify_compliance().overall_compliant
        resumed = fl.FederatedLearningEngine(config, workspace=workspace)
        resumed.attach_hipaa(manager)
        async with resumed:
            with pytest.raises(fl.ComplianceError, match="checkpoint 2"):
                await resumed.resume("m")
