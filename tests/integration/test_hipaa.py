"""The guide's HIPAA examples, and the manager's behaviour around them."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import heliosfl as fl
from heliosfl.compliance import (
    AuditAction,
    CheckStatus,
    HipaaComplianceManager,
    HipaaConfig,
    Role,
    verify_export,
)

SENTINEL = "SENTINEL-PHI 123-45-6789"


def guide_config() -> HipaaConfig:
    return HipaaConfig(
        encrypt_phi_at_rest=True,
        encrypt_phi_in_transit=True,
        enable_audit_logging=True,
        data_residency="US",
        enable_access_controls=True,
        enable_integrity_checks=True,
        min_key_size_bits=256,
        auto_detect_phi=True,
    )


def test_setup_hipaa_compliance_as_in_the_guide(capsys):
    hipaa_manager = HipaaComplianceManager(guide_config())
    patient_data = b"Patient: John Doe, MRN: 12345"
    encrypted_phi = hipaa_manager.encrypt_phi(patient_data, "patient_12345")
    assert patient_data not in encrypted_phi.ciphertext
    assert b"John Doe" not in encrypted_phi.ciphertext
    # The guide's gradient is a single-example gradient of a dense unit: exactly invertible.
    gradients = [0.1, 0.2, 0.3, 0.4, 0.5]
    is_safe = hipaa_manager.verify_gradient_privacy(gradients)
    assert not is_safe
    assert "dense_layer_inversion" in hipaa_manager.last_leakage_report.attacks
    report = hipaa_manager.verify_compliance()
    report.print()
    assert report.overall_compliant
    printed = capsys.readouterr().out
    assert "164.312(b) Audit controls" in printed and "COMPLIANT" in printed
    assert json.loads(json.dumps(report.to_dict()))["overall_compliant"] is True
    assert "<table>" in report.to_html()


def test_hipaa_audit_logging_as_in_the_guide():
    hipaa_manager = HipaaComplianceManager(guide_config())
    hipaa_manager.log_audit_event("dr_smith", AuditAction.PHI_ACCESS, "patient_12345", True, {})
    start_date = datetime.now(UTC) - timedelta(days=30)
    end_date = datetime.now(UTC)
    entries = hipaa_manager.export_audit_log(start_date, end_date)
    access = [e for e in entries if e.action is AuditAction.PHI_ACCESS]
    assert len(access) == 1 and access[0].user_id == "dr_smith" and access[0].success
    assert hipaa_manager.verify_audit_log().ok


def test_keys_smaller_than_256_bits_are_refused():
    with pytest.raises(fl.ConfigError, match=r"min_key_size_bits|key"):
        HipaaConfig(min_key_size_bits=128)


def test_access_is_deny_by_default_audited_and_break_glass_expires():
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    manager = HipaaComplianceManager(guide_config(), clock=lambda: now[0])
    manager.add_user("dr_smith", Role.CLINICIAN)
    manager.add_user("ana", Role.DATA_SCIENTIST)
    manager.encrypt_phi(b"Patient record", "patient_1", subject_id="subject-1")
    with pytest.raises(fl.ComplianceError, match="no active session"):
        manager.decrypt_phi("patient_1", user_id="dr_smith")  # reading PHI needs a session
    manager.login("dr_smith")
    manager.login("ana")
    assert manager.decrypt_phi("patient_1", user_id="dr_smith") == b"Patient record"
    with pytest.raises(fl.ComplianceError, match="Access denied"):
        manager.decrypt_phi("patient_1", user_id="ana")
    with pytest.raises(fl.ConfigError, match="reason"):
        manager.break_glass("ana", "patient SSN 123-45-6789 crashing", duration_secs=600)
    until = manager.break_glass("ana", "patient coding on the ward", duration_secs=600)
    assert manager.decrypt_phi("patient_1", user_id="ana") == b"Patient record"
    now[0] = until + timedelta(seconds=1)
    manager.login("ana")
    with pytest.raises(fl.ComplianceError, match="expired"):
        manager.decrypt_phi("patient_1", user_id="ana")
    entries = manager.audit.entries()
    denials = [e for e in entries if e.action is AuditAction.ACCESS_DENIED]
    decrypts = [e for e in entries if e.action is AuditAction.PHI_DECRYPT]
    assert len(denials) == 3
    assert [e.details.get("break_glass") for e in decrypts] == [False, True]
    actions = [e.action for e in entries]
    assert actions.count(AuditAction.LOGIN) == 3 and AuditAction.BREAK_GLASS in actions
    assert actions.count(AuditAction.CONFIG_CHANGE) == 2  # the two users added
    with pytest.raises(fl.ConfigError, match="user_id"):
        manager.add_user("dr_smith", Role.AUDITOR)  # ids are unique
    with pytest.raises(fl.ComplianceError, match="Access denied"):
        manager.add_user("eve", Role.ADMIN, by="ana")  # only administrators add users


def test_idle_sessions_are_logged_off():
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    manager = HipaaComplianceManager(HipaaConfig(auto_logoff_secs=60), clock=lambda: now[0])
    manager.access.add_user("dr_smith", Role.CLINICIAN)
    manager.access.login("dr_smith")
    assert manager.access.active_session("dr_smith") is not None
    now[0] += timedelta(seconds=61)
    assert manager.access.active_session("dr_smith") is None


def test_no_phi_reaches_the_log_the_export_or_an_error():
    manager = HipaaComplianceManager(guide_config())
    manager.encrypt_phi(SENTINEL.encode(), "patient_9", subject_id=SENTINEL)
    manager.log_audit_event("system", AuditAction.PHI_ACCESS, "patient_9")
    with pytest.raises(fl.ComplianceError) as info:
        manager.decrypt_phi("patient_9", user_id="nobody")
    exported = json.dumps(manager.export_audit_json())
    assert SENTINEL not in exported and "123-45-6789" not in exported
    assert SENTINEL not in str(info.value)
    assert verify_export(exported, manager.audit._key).ok  # an export verifies on its own


def test_tampering_with_the_log_fails_the_report_and_names_the_entry():
    manager = HipaaComplianceManager(guide_config())
    for i in range(5):
        manager.log_audit_event("dr_smith", AuditAction.PHI_ACCESS, f"record-{i}")
    assert manager.verify_audit_log().ok
    # edit the user of the third entry behind the log's back (dropping its append-only
    # triggers first, as someone with write access to the file could)
    with manager.workspace.transaction() as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("DROP TRIGGER audit_log_no_delete")
        conn.execute("UPDATE audit_log SET user_id = 'mallory' WHERE seq = 3")
    result = manager.verify_audit_log()
    assert not result.ok and result.first_bad_seq == 3
    report = manager.verify_compliance()
    assert not report.overall_compliant
    audit_check = next(c for c in report.checks if c.requirement.startswith("164.312(b)"))
    assert audit_check.status is CheckStatus.FAIL


def test_nodes_outside_the_residency_or_with_undeclared_phi_are_refused():
    manager = HipaaComplianceManager(guide_config())
    X = np.random.default_rng(0).normal(size=(20, 3))
    manager.admit_node("hospital_a", X, region="US")
    with pytest.raises(fl.ComplianceError, match="data_residency"):
        manager.admit_node("hospital_b", X, region="EU")
    ssn_like = np.column_stack([X, np.full(20, 123456789.0) + np.arange(20)])
    with pytest.raises(fl.ComplianceError, match="undeclared PHI"):
        manager.admit_node("hospital_c", ssn_like, region="US")


def test_the_leakage_test_catches_one_example_and_passes_a_dp_aggregate():
    manager = HipaaComplianceManager(guide_config())
    model = fl.models.SoftmaxRegression(8, 3)
    rng = np.random.default_rng(0)
    params = model.init_params(0)
    X = rng.normal(size=(100, 8))
    y = rng.integers(0, 3, size=100)
    _, single = model.loss_and_grad(params, X[:1], y[:1])
    assert not manager.verify_gradient_privacy(single, model=model, inputs=X)
    clipped = []
    for i in range(100):
        _, g = model.loss_and_grad(params, X[i : i + 1], y[i : i + 1])
        clipped.append(g / max(1.0, np.linalg.norm(g)))
    aggregate = (np.sum(clipped, axis=0) + rng.normal(0, 1.0, size=params.size)) / 100
    assert manager.verify_gradient_privacy(aggregate, model=model, inputs=X)


def test_a_persistent_workspace_keeps_its_key_apart_and_survives_a_restart(tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    monkeypatch.setenv("HELIOSFL_KEY_DIR", str(keys))
    monkeypatch.delenv("HELIOSFL_KEK", raising=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with fl.Workspace(data_dir / "clinic.db") as workspace:
        manager = HipaaComplianceManager(guide_config(), workspace=workspace)
        manager.access.add_user("dr_smith", Role.CLINICIAN)
        manager.encrypt_phi(b"note", "patient_1")
        key_file = manager.key_file
    assert key_file is not None and key_file.parent == keys
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert not any(p.suffix == ".kek" for p in data_dir.iterdir())
    with fl.Workspace(data_dir / "clinic.db") as workspace:
        manager = HipaaComplianceManager(guide_config(), workspace=workspace)
        manager.access.add_user("dr_smith", Role.CLINICIAN)
        manager.access.login("dr_smith")
        assert manager.decrypt_phi("patient_1", user_id="dr_smith") == b"note"
        assert manager.verify_audit_log().ok


def test_the_guides_resource_ids_are_pseudonymised_in_the_log():
    manager = HipaaComplianceManager(guide_config())
    manager.log_audit_event("dr_smith", AuditAction.PHI_ACCESS, "patient_12345", True, {})
    entry = manager.audit.entries()[-1]
    assert "12345" not in entry.resource
    assert entry.resource == "record:" + manager.vault.pseudonym("patient_12345")


def test_record_ids_never_reach_errors_or_the_log():
    manager = HipaaComplianceManager(guide_config())
    manager.access.add_user("dr_smith", Role.CLINICIAN)
    manager.access.login("dr_smith")
    manager.encrypt_phi(b"x", "patient_12345", subject_id="subject-7")
    manager.shred_subject("subject-7")
    for record_id in ("patient_12345", "patient_99999"):
        with pytest.raises(fl.ComplianceError) as info:
            manager.decrypt_phi(record_id, user_id="dr_smith")
        assert record_id not in str(info.value)
    exported = json.dumps(manager.export_audit_json())
    assert "12345" not in exported and "99999" not in exported
