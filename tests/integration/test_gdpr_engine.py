"""GDPR enforced by the engine: consent filters training, erasure unlearns exactly."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import numpy as np
import numpy.typing as npt
import pytest

import heliosfl as fl
from heliosfl.compliance import EXPORT_SCHEMA
from heliosfl.models import LogisticRegression

SEED = 11
ROUNDS = 5


class RecordingLogistic(LogisticRegression):
    """A logistic regression that remembers every training row it was given."""

    def __init__(self, input_dim: int) -> None:
        super().__init__(input_dim)
        self.seen: list[npt.NDArray[np.float64]] = []

    def loss_and_grad(  # type: ignore[override]
        self, params: npt.NDArray[np.float64], X: npt.NDArray[np.float64], y: Any
    ) -> tuple[float, npt.NDArray[np.float64]]:
        self.seen.append(np.array(X))
        return super().loss_and_grad(params, X, y)


def config(**round_overrides: Any) -> fl.Config:
    settings: dict[str, Any] = {
        "max_rounds": 50,
        "min_nodes_per_round": 2,
        "learning_rate": 0.3,
        "convergence_threshold": 0.0,
        "selection_strategy": fl.NodeSelectionStrategy.random(3),
    }
    settings.update(round_overrides)
    return fl.Config(round_config=fl.RoundConfig(**settings), seed=SEED)


@pytest.fixture(scope="module")
def federation(
    breast_cancer: tuple[fl.NodeData, fl.NodeData],
) -> tuple[list[fl.NodeData], fl.NodeData]:
    train, test = breast_cancer
    return fl.data.partition(train, num_nodes=5, scheme="iid", seed=0), test


def all_subjects(nodes: Sequence[fl.NodeData]) -> list[str]:
    ids: set[str] = set()
    for node in nodes:
        ids.update(str(s) for s in node.subject_ids)  # type: ignore[union-attr]
        if node.subject_ids_val is not None:
            ids.update(str(s) for s in node.subject_ids_val)
    return sorted(ids)


def subject_at(nodes: Sequence[fl.NodeData], index: int) -> str:
    return str(nodes[index].subject_ids[0])  # type: ignore[index]


async def build(
    nodes: Sequence[fl.NodeData],
    test: fl.NodeData,
    *,
    manager: fl.GdprComplianceManager | None = None,
    cfg: fl.Config | None = None,
    model: str | fl.Model = "logistic_regression",
    **model_kwargs: Any,
) -> tuple[fl.FederatedLearningEngine, fl.Coordinator]:
    workspace = fl.Workspace() if manager is None else manager.workspace
    engine = fl.FederatedLearningEngine(cfg or config(), workspace=workspace)
    if isinstance(model, str):
        model_kwargs.setdefault("input_dim", 30)
    await engine.register_model("m", model, **model_kwargs)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    if manager is not None:
        engine.attach_gdpr(manager)
    for i, data in enumerate(nodes):
        wc = fl.WorkerConfig(node_id=f"n{i}", local_epochs=1, batch_size=16)
        await engine.create_worker(wc, data=data)
        await coordinator.register_node(wc.node_id, len(data))
    return engine, coordinator


def gdpr(
    nodes: Sequence[fl.NodeData], *, refuse: Sequence[str] = (), **settings: Any
) -> fl.GdprComplianceManager:
    manager = fl.GdprComplianceManager(fl.GdprConfig(**settings), workspace=fl.Workspace())
    for subject in all_subjects(nodes):
        if subject not in refuse:
            manager.record_consent(subject, ["model_training"], "v1.0")
    return manager


async def run_rounds(coordinator: fl.Coordinator, rounds: int) -> None:
    for _ in range(rounds):
        await coordinator.run_round()


async def retrained_without(
    nodes: Sequence[fl.NodeData],
    test: fl.NodeData,
    subject: str,
    rounds: int,
    **build_kwargs: Any,
) -> npt.NDArray[np.float64]:
    clean = [n.without_subjects([subject]) for n in nodes]
    _, coordinator = await build(clean, test, **build_kwargs)
    await run_rounds(coordinator, rounds)
    return np.array(coordinator.params)


def rounds_of(manager: fl.GdprComplianceManager, subject: str) -> list[int]:
    return sorted(
        {c["round_number"] for c in manager.export_user_data(subject).model_contributions}
    )


# ----------------------------------------------------------------------------- consent
async def test_training_never_sees_a_subject_without_consent(federation):
    nodes, test = federation
    refused = subject_at(nodes, 1)
    manager = gdpr(nodes, refuse=[refused])
    model = RecordingLogistic(30)
    _, coordinator = await build(nodes, test, manager=manager, model=model)
    await run_rounds(coordinator, ROUNDS)

    rows = np.concatenate(model.seen)
    own = nodes[1].X[nodes[1].subject_ids == refused]
    assert not any((rows == row).all(axis=1).any() for row in own)
    assert rounds_of(manager, refused) == []
    assert rounds_of(manager, subject_at(nodes, 2))  # consenting subjects are recorded
    expected = await retrained_without(nodes, test, refused, ROUNDS)
    np.testing.assert_allclose(coordinator.params, expected, rtol=0, atol=1e-12)


async def test_a_withdrawal_takes_effect_from_the_next_round(federation):
    nodes, test = federation
    subject = subject_at(nodes, 0)
    manager = gdpr(nodes)
    model = RecordingLogistic(30)
    engine, coordinator = await build(
        nodes, test, manager=manager, model=model, cfg=config(max_rounds=6)
    )
    own = nodes[0].X[nodes[0].subject_ids == subject]
    seen_per_round: dict[int, int] = {}

    def listen(event: fl.events.Event) -> None:
        if isinstance(event, fl.events.RoundCompleted):
            number = event.record.round_number
            seen = np.concatenate(model.seen) if model.seen else np.empty((0, 30))
            seen_per_round[number] = sum(int((seen == r).all(axis=1).any()) for r in own)
            model.seen.clear()
            if number == 2:
                manager.withdraw_consent(subject)

    engine.events.add_listener(listen)
    await engine.train("m")

    assert coordinator.current_round == 6
    assert rounds_of(manager, subject) and max(rounds_of(manager, subject)) <= 2
    assert all(seen_per_round[r] == 0 for r in range(3, 7))
    history = manager.consent_history(subject)
    assert [r.action.value for r in history] == ["grant", "withdraw"]


async def test_a_node_left_without_consenting_rows_is_not_selected(federation):
    nodes, test = federation
    refused = [str(s) for s in np.unique(nodes[3].subject_ids)]
    manager = gdpr(nodes, refuse=refused, enable_purpose_limitation=True)
    _, coordinator = await build(
        nodes, test, manager=manager, cfg=config(selection_strategy=fl.NodeSelectionStrategy.all())
    )
    record = await coordinator.run_round()
    assert "n3" not in record.participating_nodes
    assert "n3" not in record.failed_nodes


async def test_an_update_trained_outside_the_policy_is_rejected(federation):
    nodes, test = federation
    manager = gdpr(nodes)
    _, coordinator = await build(
        nodes, test, manager=manager, cfg=config(selection_strategy=fl.NodeSelectionStrategy.all())
    )
    forged = fl.ModelUpdate(
        model_id="m",
        node_id="n0",
        round_number=1,
        delta=np.zeros(31),
        num_samples=10,
        loss=0.5,
    )
    with pytest.raises(fl.InsufficientNodes):
        await coordinator.execute_round([forged])
    (failed,) = await coordinator.get_round_history(include_failed=True)
    assert "consent-checked" in failed.failed_nodes["n0"]


async def test_workers_must_name_their_subjects(federation):
    nodes, test = federation
    manager = gdpr(nodes)
    engine, _ = await build(nodes, test, manager=manager)
    anonymous = fl.NodeData(nodes[0].X, nodes[0].y)
    with pytest.raises(fl.ConfigError, match="subject_ids"):
        await engine.create_worker(fl.WorkerConfig(node_id="anon"), data=anonymous)
    elsewhere = fl.GdprComplianceManager(workspace=fl.Workspace())
    with pytest.raises(fl.ConfigError, match=r"workspace=engine\.workspace"):
        engine.attach_gdpr(elsewhere)


async def test_undeclared_features_are_refused_with_data_minimisation(federation):
    nodes, test = federation
    names = [f"f{i}" for i in range(30)]
    manager = gdpr(nodes, data_schema={"training_data": tuple(names[:-1])})
    engine, _ = await build(nodes[:2], test, manager=manager)
    with pytest.raises(fl.ComplianceError, match=r"f29"):
        await engine.create_worker(
            fl.WorkerConfig(node_id="extra"), data=nodes[2], feature_names=names
        )


# ----------------------------------------------------------------------------- erasure
@pytest.mark.parametrize("consents_after_round", [0, 3])
async def test_erasure_equals_training_that_never_saw_the_subject(federation, consents_after_round):
    nodes, test = federation
    subject = subject_at(nodes, 2)
    manager = gdpr(nodes, refuse=[subject])
    _, coordinator = await build(nodes, test, manager=manager)
    await run_rounds(coordinator, consents_after_round)
    manager.record_consent(subject, ["model_training"], "v1.0")
    await run_rounds(coordinator, ROUNDS)
    assert min(rounds_of(manager, subject)) == consents_after_round + 1

    record = await manager.delete_user_data(subject, ["n2"])

    assert record.status == "completed"
    assert record.deleted_from_nodes == ("n2",)
    assert record.inventory_only_nodes == ()
    assert record.rows_removed == {"n2": 1}
    (unlearning,) = record.unlearning
    assert unlearning.rollback_round == consents_after_round
    assert unlearning.rounds_replayed == ROUNDS
    assert unlearning.stopped_early is None
    assert coordinator.current_round == consents_after_round + ROUNDS
    verified = await manager.verify_deletion(subject)
    assert verified, verified.problems
    expected = await retrained_without(nodes, test, subject, consents_after_round + ROUNDS)
    np.testing.assert_allclose(coordinator.params, expected, rtol=0, atol=1e-9)


async def test_erasure_of_an_mlp_with_fedadam_state_is_exact(federation):
    nodes, test = federation
    subject = subject_at(nodes, 4)
    manager = gdpr(nodes)
    cfg = fl.Config(
        aggregation_strategy=fl.FedAdam(server_learning_rate=0.05),
        round_config=config().round_config,
        seed=SEED,
    )
    kwargs: dict[str, Any] = {"model": "mlp", "hidden_layers": (8,), "cfg": cfg}
    engine, coordinator = await build(nodes, test, manager=manager, **kwargs)
    await run_rounds(coordinator, 4)
    seen: list[fl.events.Event] = []
    engine.events.add_listener(seen.append)
    record = await manager.delete_user_data(subject)
    (rewound,) = [e for e in seen if isinstance(e, fl.events.ModelRewound)]
    assert (rewound.to_round, rewound.from_round) == (record.unlearning[0].rollback_round, 4)
    assert rewound.reason == record.request_id
    completed = [e for e in seen if isinstance(e, fl.events.RoundCompleted)]
    assert len(completed) == record.unlearning[0].rounds_replayed
    expected = await retrained_without(nodes, test, subject, 4, **kwargs)
    np.testing.assert_allclose(coordinator.params, expected, rtol=0, atol=1e-9)


async def test_an_offline_node_leaves_the_erasure_partial_until_retried(federation):
    nodes, test = federation
    subject = subject_at(nodes, 1)
    # the subject also has rows at node 3 (a second site holding their records)
    row = nodes[1].subject_ids == subject
    extra = fl.NodeData(
        np.vstack([nodes[3].X, nodes[1].X[row]]),
        np.concatenate([nodes[3].y, nodes[1].y[row]]),
        np.concatenate([nodes[3].subject_ids, nodes[1].subject_ids[row]]),
    )
    sites = [nodes[0], nodes[1], nodes[2], extra, nodes[4]]
    manager = gdpr(sites)
    engine, coordinator = await build(sites, test, manager=manager)
    await run_rounds(coordinator, 3)
    engine.get_worker("n3").set_online(False)

    record = await manager.delete_user_data(subject)

    assert record.status == "partial"
    assert record.pending_nodes == ("n3",)
    assert "n1" in record.deleted_from_nodes
    verification = await manager.verify_deletion(subject)
    assert not verification
    assert not verification.checks["all_nodes_confirmed"]
    assert verification.checks["lineage_excludes_subject"]
    assert [r.request_id for r in manager.deletion_requests(pending_only=True)] == [
        record.request_id
    ]
    await coordinator.run_round()  # n3 still holds the rows but may not train on them
    assert rounds_of(manager, subject) == []

    engine.get_worker("n3").set_online(True)
    done = await manager.retry_deletion(subject)

    assert done.status == "completed"
    assert done.rows_removed["n3"] == 1
    assert done.completed_at is not None
    verified = await manager.verify_deletion(subject)
    assert verified, verified.problems
    assert manager.deletion_requests(pending_only=True) == []


async def test_erasure_is_refused_while_the_model_trains(federation):
    nodes, test = federation
    subject = subject_at(nodes, 0)
    manager = gdpr(nodes)
    engine, coordinator = await build(nodes, test, manager=manager)
    await run_rounds(coordinator, 1)
    run = await engine.start_training("m")
    with pytest.raises(fl.ComplianceError, match="training"):
        await manager.delete_user_data(subject)
    run.cancel()
    with pytest.raises(BaseException):  # noqa: B017 - CancelledError
        await run
    assert (await manager.verify_deletion(subject)).checks["erasure_requested"] is False
    assert manager.has_consent(subject, "model_training")


async def test_erasure_under_differential_privacy_charges_the_replay(federation):
    nodes, test = federation
    subject = subject_at(nodes, 0)
    privacy = fl.DifferentialPrivacyConfig(
        epsilon=50.0, delta=1e-5, noise_multiplier=0.8, reproducible_noise=True
    )

    def private() -> fl.Config:
        return fl.Config(
            round_config=config(max_rounds=20).round_config,
            enable_privacy=True,
            privacy_config=privacy,
            seed=SEED,
        )

    manager = gdpr(nodes)
    engine, coordinator = await build(nodes, test, manager=manager, cfg=private())
    await run_rounds(coordinator, 3)
    spent_before = engine.privacy_spent("m")[0]

    record = await manager.delete_user_data(subject)

    (unlearning,) = record.unlearning
    assert unlearning.epsilon_charged > 0
    assert engine.privacy_spent("m")[0] > spent_before
    ledger = engine.workspace.privacy_ledger("m")
    replayed = unlearning.rounds_replayed
    assert sum("superseded" in e for e in ledger) == replayed and len(ledger) == 3 + replayed
    expected = await retrained_without(nodes, test, subject, 3, cfg=private())
    np.testing.assert_allclose(coordinator.params, expected, rtol=0, atol=1e-9)


async def test_unlearning_keeps_hipaa_checkpoint_tags_valid(federation):
    nodes, test = federation
    manager = gdpr(nodes)
    engine, coordinator = await build(nodes, test, manager=manager)
    hipaa = fl.HipaaComplianceManager(workspace=engine.workspace)
    engine.attach_hipaa(hipaa)
    await run_rounds(coordinator, 3)
    await manager.delete_user_data(subject_at(nodes, 1))
    verified, bad = hipaa.checkpoint_tags.verify("m")
    assert bad is None and verified >= 3


async def test_an_erased_run_resumes_from_the_unlearned_checkpoint(federation, tmp_path):
    nodes, test = federation
    subject = subject_at(nodes, 3)
    path = tmp_path / "ws.sqlite"
    kek = fl.compliance.KeyEncryptionKey.ephemeral()
    workspace = fl.Workspace(path)
    manager = fl.GdprComplianceManager(workspace=workspace, kek=kek)
    for s in all_subjects(nodes):
        manager.record_consent(s, ["model_training"], "v1.0")
    _engine, coordinator = await build(nodes, test, manager=manager)
    await run_rounds(coordinator, 3)
    await manager.delete_user_data(subject)
    params = np.array(coordinator.params)
    workspace.close()

    reopened = fl.Workspace(path)
    again = fl.GdprComplianceManager(workspace=reopened, kek=kek)
    engine2 = fl.FederatedLearningEngine(config(), workspace=reopened)
    resumed = await engine2.resume("m", validation_data=test)
    np.testing.assert_array_equal(resumed.params, params)
    assert resumed.current_round == 3
    assert len(reopened.superseded_rounds("m")) == 3
    assert [r.status for r in again.deletion_requests()] == ["completed"]
    assert not again.has_consent(subject, "model_training")
    reopened.close()


# ----------------------------------------------------------------------------- export etc.
async def test_export_lists_contributions_and_node_rows_in_the_documented_schema(federation):
    nodes, test = federation
    subject = subject_at(nodes, 2)
    manager = gdpr(nodes, data_schema={"contact_data": ("email",)})
    _engine, coordinator = await build(nodes, test, manager=manager)
    manager.add_user_data(subject, {"email": "a@example.org"}, "model_training", "contact_data")
    await run_rounds(coordinator, 3)

    export = manager.export_user_data(subject)
    document = json.loads(export.to_json(indent=2))

    jsonschema.Draft202012Validator(EXPORT_SCHEMA).validate(document)
    assert len(export.user_data) == 1
    assert document["node_data"][0]["node_id"] == "n2"
    (row,) = [r for r in document["node_data"][0]["rows"] if r["split"] == "training"]
    assert row["features"] == pytest.approx(nodes[2].X[0].tolist())
    rounds = {c["round_number"] for c in document["model_contributions"]}
    selected = {
        r.round_number
        for r in await coordinator.get_round_history()
        if "n2" in r.participating_nodes
    }
    assert rounds == selected


async def test_retention_purges_old_rows_at_the_next_training_start(federation):
    nodes, test = federation
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    manager = fl.GdprComplianceManager(
        fl.GdprConfig(retention_period_days=30), workspace=fl.Workspace(), clock=lambda: now[0]
    )
    for s in all_subjects(nodes):
        manager.record_consent(s, ["model_training"], "v1.0")
    engine, coordinator = await build(nodes[:3], test, manager=manager, cfg=config(max_rounds=2))
    now[0] += timedelta(days=20)
    for i in (3, 4):
        fresh = fl.NodeData(nodes[i].X, nodes[i].y, nodes[i].subject_ids)
        await engine.create_worker(fl.WorkerConfig(node_id=f"late{i}"), data=fresh)
        await coordinator.register_node(f"late{i}", len(fresh))
    now[0] += timedelta(days=15)  # the first three nodes' rows are now 35 days old

    result = await engine.train("m")

    assert result.current_round == 2
    for node_id in ("n0", "n1", "n2"):
        assert engine.get_worker(node_id).num_samples == 0
    assert engine.get_worker("late3").num_samples == len(nodes[3])
    actions = [e.action.value for e in manager.audit.entries()]
    assert "retention_purge" in actions


async def test_the_manager_explains_the_current_model(federation):
    nodes, test = federation
    names = [f"feature_{i}" for i in range(30)]
    manager = gdpr(nodes)
    engine, coordinator = await build(nodes[:2], test, manager=manager)
    await engine.create_worker(fl.WorkerConfig(node_id="named"), data=nodes[2], feature_names=names)
    await run_rounds(coordinator, 2)

    explanation = manager.explain_prediction("m", test.X[0])
    importance = manager.feature_importance("m", test.X, test.y, repeats=2)

    assert explanation.method == "exact_linear"
    total = explanation.baseline_score + sum(c.contribution for c in explanation.contributions)
    assert total == pytest.approx(explanation.score, abs=1e-9)
    assert "feature_" in explanation.to_text()
    assert len(importance.importances) == 30
    with pytest.raises(fl.ModelNotFound):
        manager.explain_prediction("nope", test.X[0])


async def test_an_erasure_cut_short_is_finished_by_a_retry(federation, monkeypatch):
    nodes, test = federation
    subject = subject_at(nodes, 3)
    manager = gdpr(nodes)
    engine, coordinator = await build(nodes, test, manager=manager)
    await run_rounds(coordinator, 3)
    governance = engine._gdpr
    assert governance is not None
    unlearn = governance.unlearn

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("process died")

    monkeypatch.setattr(governance, "unlearn", crash)
    with pytest.raises(RuntimeError):
        await manager.delete_user_data(subject)

    (pending,) = manager.deletion_requests(pending_only=True)
    assert pending.status == "in_progress"
    assert not await manager.verify_deletion(subject)
    monkeypatch.setattr(governance, "unlearn", unlearn)
    done = await manager.retry_deletion(subject)

    assert done.status == "completed" and len(done.unlearning) == 1
    assert await manager.verify_deletion(subject)
    expected = await retrained_without(nodes, test, subject, 3)
    np.testing.assert_allclose(coordinator.params, expected, rtol=0, atol=1e-9)
