"""The HIPAA and GDPR walkthrough widgets, driven as clicks would drive them."""

from __future__ import annotations

import asyncio
import base64
import json
import re

import pytest

pytest.importorskip("ipywidgets")

import heliosfl as fl
from heliosfl.compliance import HipaaComplianceManager, HipaaConfig
from heliosfl.ui import GdprWalkthrough, HipaaWalkthrough

HIPAA_STEPS = ["configure", "phi", "leakage", "audit", "report"]
GDPR_STEPS = ["consent", "add_data", "train", "export", "erase", "verify", "retrain"]


def click_run(wizard: HipaaWalkthrough) -> None:
    wizard.run_button.click()


# ----------------------------------------------------------------------------- HIPAA
def test_hipaa_steps_by_clicks_show_real_outcomes() -> None:
    w = HipaaWalkthrough()
    assert w.step_names == HIPAA_STEPS
    assert "heliosfl-walkthrough" in w._dom_classes
    assert "Step 1 of 5" in w.title.value
    assert w.next_button.disabled and not w.run_button.disabled

    click_run(w)
    assert w.results["configure"]["config"]["data_residency"] == "US"
    assert "min_key_size_bits" in w.output.value
    assert w.run_button.disabled and not w.next_button.disabled
    assert w.progress.value == 1

    w.next_button.click()
    assert w.step == 1 and "Step 2 of 5" in w.title.value and w.output.value == ""
    click_run(w)
    phi = w.results["phi"]
    assert phi["decrypted_matches"] and not phi["plaintext_in_ciphertext"]
    assert phi["unauthorised_denied"]
    assert {"ssn", "email", "phone"} <= set(phi["phi_kinds"])
    assert "123-45-6789" not in w.output.value.replace(w.SAMPLE_NOTE, "")  # evidence is masked

    w.next_button.click()
    click_run(w)
    leakage = w.results["leakage"]
    assert leakage["reconstructed"] is True
    assert leakage["max_abs_error"] <= 1e-9
    assert leakage["label_recovered"] == leakage["true_label"]
    assert leakage["reconstructed_with_dp"] is False
    assert w.manager.last_leakage_report is not None and w.manager.last_leakage_report.safe

    w.next_button.click()
    click_run(w)
    audit = w.results["audit"]
    assert audit["audit_ok"] is True and audit["export_ok"] is True
    assert audit["tampered_ok"] is False
    assert audit["first_bad_seq"] == audit["tampered_seq"]
    assert audit["problem"] == "edited"
    assert f"naming seq {audit['tampered_seq']}" in w.output.value

    w.next_button.click()
    click_run(w)
    report = w.results["report"]
    assert report["overall_compliant"] is True and report["failures"] == []
    assert "164.312(b) Audit controls" in report["checks"]
    assert "<table>" in w.output.value
    assert w.finished and w.progress.value == 5 and w.error is None
    assert w.next_button.disabled and w.run_button.disabled


def test_hipaa_run_all_over_a_given_manager() -> None:
    manager = HipaaComplianceManager(HipaaConfig(data_residency="EU", auto_logoff_secs=60))
    w = HipaaWalkthrough(manager)
    results = w.run_all()
    assert list(results) == HIPAA_STEPS
    assert results["configure"]["config"]["data_residency"] == "EU"
    assert results["leakage"]["reconstructed"] and not results["leakage"]["reconstructed_with_dp"]
    assert results["report"] == {
        "overall_compliant": True,
        "checks": results["report"]["checks"],
        "failures": [],
    }
    assert manager.verify_audit_log().ok  # only the exported copy was tampered with
    assert w.step == len(HIPAA_STEPS) - 1
    assert w.run_all() == results  # nothing left to run


async def test_hipaa_run_all_async_gives_the_same_outcomes() -> None:
    results = await HipaaWalkthrough().run_all_async()
    assert results["audit"]["tampered_ok"] is False
    assert results["report"]["overall_compliant"] is True


def test_next_waits_for_the_step_and_stops_at_the_end() -> None:
    w = HipaaWalkthrough()
    with pytest.raises(RuntimeError, match="Run step 'configure'"):
        w.next()
    w.next_button.click()  # a click shows the same refusal instead of raising
    assert w.step == 0 and w.error is not None and "configure" in w.error
    w.run_all()
    with pytest.raises(RuntimeError, match="last step"):
        w.next()


def test_a_hipaa_step_error_is_shown_and_kept_not_swallowed() -> None:
    workspace = fl.Workspace()
    manager = HipaaComplianceManager(workspace=workspace)
    workspace.close()
    w = HipaaWalkthrough(manager)
    click_run(w)  # the configuration needs no storage
    assert w.error is None
    w.next_button.click()

    click_run(w)  # encrypting PHI does: the click shows the error and does not raise
    assert w.error is not None and "closed" in w.error
    assert "ClosedError" in w.error_box.value and "failed" in w.error_box.value
    assert "phi" not in w.results
    assert not w.run_button.disabled and w.next_button.disabled  # it can be retried

    with pytest.raises(fl.ClosedError):
        w.run_step()  # from code it raises, and is shown too
    assert "ClosedError" in w.error_box.value


def test_hipaa_refuses_a_wrong_manager() -> None:
    with pytest.raises(fl.ConfigError, match="manager"):
        HipaaWalkthrough("not a manager")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- GDPR
async def test_gdpr_steps_by_clicks_erase_and_unlearn_exactly() -> None:
    w = GdprWalkthrough()
    assert w.step_names == GDPR_STEPS
    assert "heliosfl-gdpr-walkthrough" in w._dom_classes
    try:
        outcomes = {}
        for index, name in enumerate(GDPR_STEPS):
            assert w.step == index
            w.run_button.click()
            if w.task is not None and not w.task.done():
                assert w.running and w.run_button.disabled
                await w.task
            assert w.error is None, w.error
            outcomes[name] = w.results[name]
            if index < len(GDPR_STEPS) - 1:
                w.next_button.click()

        consent = outcomes["consent"]
        assert consent["subjects"] > 400 and consent["hash_matches_text"]
        assert consent["purposes"] == ["care_coordination", "model_training"]
        assert re.fullmatch(r"[0-9a-f]{64}", consent["text_sha256"])
        assert consent["text_sha256"] in w._html["consent"]

        assert outcomes["add_data"]["fields"] == ["email", "preferred_language"]
        assert outcomes["add_data"]["undeclared_refused"] is True

        assert outcomes["train"]["rounds"] == [1, 2, 3]
        assert outcomes["train"]["subject_rounds"] == [1, 2, 3]

        link = w.download.value
        assert 'download="export.json"' in link
        encoded = re.search(r"data:application/json;base64,([A-Za-z0-9+/=]+)", link)
        assert encoded is not None
        document = json.loads(base64.b64decode(encoded.group(1)))
        assert document["subject_id"] == w.subject_id
        assert document["user_data"][0]["data"]["preferred_language"] == "en"
        assert (
            len(document["model_contributions"]) == 3 == outcomes["export"]["model_contributions"]
        )

        erase = outcomes["erase"]
        assert erase["status"] == "completed" and erase["key_shredded"]
        assert erase["rows_removed"] == 1 and erase["records_removed"] == 1
        assert erase["rollback_round"] == 0 and erase["rounds_replayed"] == 3
        assert len(erase["nodes"]) == 4 and erase["pending_nodes"] == []

        verify = outcomes["verify"]
        assert verify["verified"] is True and all(verify["checks"].values())
        assert set(verify["membership"]) == {w.model_name}

        assert outcomes["retrain"] == {"rounds": 3, "max_abs_diff": 0.0, "identical": True}
        assert w.finished and w.progress.value == len(GDPR_STEPS)
        assert (
            w.manager is not None and w.manager.export_user_data(w.subject_id or "").user_data == []
        )
    finally:
        await w.aclose()


async def test_gdpr_over_a_given_engine_and_manager() -> None:
    train, test = fl.data.load_dataset("breast_cancer", seed=1)
    nodes = fl.data.partition(train, num_nodes=3, scheme="iid", seed=1)
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=10, min_nodes_per_round=2, learning_rate=0.3, convergence_threshold=0.0
        ),
        seed=3,
    )
    schema = {"contact_data": ("email",)}
    async with fl.FederatedLearningEngine(config) as engine:
        manager = fl.GdprComplianceManager(
            fl.GdprConfig(data_schema=schema), workspace=engine.workspace
        )
        engine.attach_gdpr(manager)
        await engine.register_model("clinic", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("clinic", validation_data=test)
        for i, data in enumerate(nodes):
            await engine.create_worker(fl.WorkerConfig(node_id=f"site_{i}"), data=data)
            await coordinator.register_node(f"site_{i}", len(data))
        subject = str(nodes[1].subject_ids[0])
        w = GdprWalkthrough(engine, manager, subject_id=subject, rounds=2)

        results = await w.run_all_async()

        assert w.model_name == "clinic" and w.engine is engine
        assert results["add_data"]["fields"] == ["email"]
        assert results["train"]["subject_rounds"] == [1, 2]
        assert results["erase"]["rows_removed"] == 1
        assert results["verify"]["verified"] is True
        assert results["retrain"]["max_abs_diff"] == 0.0
        await w.aclose()  # leaves an engine it did not build open
        assert engine.list_models() == ["clinic"]
        await coordinator.run_round()


async def test_an_async_step_must_be_awaited() -> None:
    w = GdprWalkthrough()
    with pytest.raises(RuntimeError, match="run_step_async"):
        w.run_step()
    assert not w.run_button.disabled and not w.running


async def test_a_failing_task_is_shown_in_the_widget() -> None:
    train, _ = fl.data.load_dataset("breast_cancer", seed=0)
    engine = fl.FederatedLearningEngine()
    await engine.register_model("m", "logistic_regression", input_dim=30)
    coordinator = await engine.create_coordinator("m")
    await engine.create_worker(fl.WorkerConfig(node_id="n0"), data=train)
    await coordinator.register_node("n0", len(train))
    await engine.aclose()  # a closed engine: its workspace is gone
    w = GdprWalkthrough(engine)

    w.run_button.click()
    assert w.task is not None
    await w.task  # the task finishes; its error is in the widget, not lost

    assert w.error is not None and "closed" in w.error.lower()
    assert "failed" in w.error_box.value and "Consent" in w.error_box.value
    assert w.results == {} and w.step == 0 and not w.run_button.disabled


async def test_a_manager_with_a_closed_workspace_fails_visibly() -> None:
    workspace = fl.Workspace()
    manager = fl.GdprComplianceManager(workspace=workspace)
    workspace.close()
    w = GdprWalkthrough(manager=manager)
    with pytest.raises(fl.ClosedError):
        await w.run_step_async()
    assert w.error is not None and w.error.startswith("ClosedError")
    assert "ClosedError" in w.error_box.value


async def test_a_cancelled_step_is_reported_and_not_swallowed() -> None:
    w = GdprWalkthrough()
    w.run_button.click()
    assert w.task is not None
    w.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await w.task
    assert w.error is not None and "cancelled" in w.error
    assert not w.running and not w.run_button.disabled
    await w.aclose()


def test_a_click_without_an_event_loop_says_what_to_do() -> None:
    w = GdprWalkthrough()
    w.run_button.click()
    assert w.task is None and w.error is not None and "run_step_async" in w.error
    assert not w.run_button.disabled


def test_gdpr_refuses_wrong_arguments() -> None:
    with pytest.raises(fl.ConfigError, match="engine"):
        GdprWalkthrough("engine")  # type: ignore[arg-type]
    with pytest.raises(fl.ConfigError, match="manager"):
        GdprWalkthrough(manager=HipaaComplianceManager())  # type: ignore[arg-type]
    with pytest.raises(fl.ConfigError, match="rounds"):
        GdprWalkthrough(rounds=0)
