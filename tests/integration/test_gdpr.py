"""The guide's GDPR examples, rendered in Python and run as written, plus their engine form."""

from __future__ import annotations

import json

import numpy as np

import heliosfl as fl
from heliosfl import DataCategory, GdprComplianceManager, GdprConfig


async def setup_gdpr_compliance() -> GdprComplianceManager:
    """The guide's ``setup_gdpr_compliance``, line by line."""
    gdpr_config = GdprConfig(
        enable_right_to_be_forgotten=True,
        enable_data_portability=True,
        enable_consent_management=True,
        retention_period_days=365,
        enable_data_minimization=True,
        enable_purpose_limitation=True,
        enable_explainability=True,
    )
    gdpr_manager = GdprComplianceManager(gdpr_config)
    gdpr_manager.record_consent("user123", ["model_training", "data_analytics"], "v1.0")
    print("User consent recorded")
    gdpr_manager.add_user_data(
        "user123", [1, 2, 3, 4, 5], "model_training", DataCategory.TRAINING_DATA
    )
    print("User data added")
    return gdpr_manager


async def delete_user_data(
    gdpr_manager: GdprComplianceManager, user_id: str, node_ids: list[str]
) -> fl.compliance.DeletionRecord:
    """The guide's ``delete_user_data``."""
    print(f"Processing deletion request for {user_id}")
    deletion = await gdpr_manager.delete_user_data(user_id, node_ids)
    print(f"Deleted from {len(deletion.deleted_from_nodes)} nodes")
    verified = await gdpr_manager.verify_deletion(user_id)
    if not verified:
        raise fl.ComplianceError(f"Failed to verify deletion for {user_id}")
    print(f"Deletion verified for {user_id}")
    return deletion


def export_user_data(gdpr_manager: GdprComplianceManager, user_id: str) -> str:
    """The guide's ``export_user_data``: ``serde_json::to_string_pretty`` is ``to_json``."""
    export = gdpr_manager.export_user_data(user_id)
    print(f"Exported data for {user_id}")
    print(f" User data records: {len(export.user_data)}")
    print(f" Model contributions: {len(export.model_contributions)}")
    return export.to_json(indent=2)


async def test_the_guides_gdpr_examples_run_as_written(capsys):
    manager = await setup_gdpr_compliance()
    assert manager.has_consent("user123", "data_analytics")

    exported = export_user_data(manager, "user123")
    document = json.loads(exported)
    assert document["user_data"][0]["data"] == "AQIDBAU="  # base64 of bytes 1..5
    assert document["user_data"][0]["category"] == "training_data"
    assert [c["purposes"] for c in document["consents"]] == [["data_analytics", "model_training"]]

    deletion = await delete_user_data(manager, "user123", ["node_1", "node_2"])
    assert deletion.deleted_from_nodes == ("node_1", "node_2")
    assert deletion.inventory_only_nodes == ("node_1", "node_2")  # no engine: no node confirmed
    assert deletion.key_shredded and deletion.records_removed == 1
    assert not manager.has_consent("user123", "model_training")
    assert json.loads(export_user_data(manager, "user123"))["user_data"] == []

    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["User consent recorded", "User data added"]
    assert "Deleted from 2 nodes" in out
    assert "Deletion verified for user123" in out
    assert " User data records: 1" in out and " User data records: 0" in out
    assert manager.audit.verify().ok


async def test_the_guides_erasure_unlearns_in_a_federation(breast_cancer):
    train, test = breast_cancer
    nodes = fl.data.partition(train, num_nodes=4, scheme="iid", seed=0)
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=4, min_nodes_per_round=2, learning_rate=0.3, convergence_threshold=0.0
        ),
        seed=5,
    )
    engine = fl.FederatedLearningEngine(config)
    gdpr = GdprComplianceManager(GdprConfig(), workspace=engine.workspace)
    engine.attach_gdpr(gdpr)
    await engine.register_model("m", "logistic_regression", input_dim=30)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    for i, data in enumerate(nodes):
        for subject in np.unique(np.concatenate([data.subject_ids, data.subject_ids_val])):
            gdpr.record_consent(str(subject), ["model_training"], "v1.0")
        await engine.create_worker(fl.WorkerConfig(node_id=f"node_{i}"), data=data)
        await coordinator.register_node(f"node_{i}", len(data))
    await engine.train("m")
    user = str(nodes[0].subject_ids[0])
    assert export_user_data(gdpr, user)  # contributions are listed

    deletion = await delete_user_data(gdpr, user, ["node_0"])

    assert deletion.deleted_from_nodes == ("node_0",)  # the listed node and the inventory's
    assert deletion.rows_removed["node_0"] == 1
    (unlearning,) = deletion.unlearning
    assert unlearning.rounds_replayed == 4 and unlearning.rollback_round == 0
    assert json.loads(export_user_data(gdpr, user))["model_contributions"] == []
    await engine.aclose()
