"""HipaaWalkthrough: a step-by-step wizard over a real HIPAA compliance manager.

The module also holds :class:`StepWizard`, the wizard both compliance walkthroughs are
built on: a title, an explanation, *Run step* and *Next* buttons, a progress bar, a
results area and an error area. Steps are plain functions or coroutines of the walkthrough
that return a structured result (kept in :attr:`StepWizard.results`) and the HTML that
shows it. A step that fails shows its error in the widget and keeps it in
:attr:`StepWizard.error`; called from code, it also raises.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from heliosfl.compliance import (
    AuditLogEntry,
    HipaaComplianceManager,
    Role,
    verify_export,
)
from heliosfl.compliance.leakage import reconstruct_inputs
from heliosfl.errors import ComplianceError, ConfigError
from heliosfl.models import LogisticRegression
from heliosfl.privacy import clip_l2, gaussian_noise
from heliosfl.ui._wizard import StepOutcome, StepWizard, WizardStep, esc, table, verdict

__all__ = ["HipaaWalkthrough"]

_SETTINGS = {
    "encrypt_phi_at_rest": "PHI is stored only encrypted (AES-256-GCM, envelope keys)",
    "encrypt_phi_in_transit": "required by the report; secure aggregation protects updates",
    "enable_audit_logging": "every PHI access, denial and training event is audited",
    "data_residency": "region that nodes holding PHI must be in",
    "enable_access_controls": "deny-by-default roles gate encryption, decryption, export",
    "enable_integrity_checks": "checkpoints carry HMAC integrity tags, verified on read",
    "min_key_size_bits": "keys smaller than this are refused",
    "auto_detect_phi": "node data is scanned for undeclared PHI before it may train",
    "auto_logoff_secs": "idle sessions end after this many seconds",
}

#: The HMAC key of the manager's audit log is derived from its vault under this label.
_AUDIT_KEY_LABEL = "audit-log-hmac"

_EXPLAIN = {
    "configure": (
        "<p>HIPAA's Security Rule (45 CFR 164.312) asks for <b>technical safeguards</b>: "
        "access control, audit controls, integrity, person authentication and transmission "
        "security. A <code>HipaaConfig</code> switches each of them on; this step shows "
        "the settings the manager runs with.</p>"
    ),
    "phi": (
        "<p>Protected health information (PHI) must be unreadable at rest "
        "(164.312(a)(2)(iv)) and readable only by authorised people "
        "(164.312(a)(1), (d)). The manager encrypts a sample record under a fresh data "
        "key; a clinician decrypts it in a logged-in session, and a data scientist is "
        "refused. Then pattern-based Safe Harbor detection finds the identifiers in a "
        "free-text note (evidence is masked).</p>"
    ),
    "leakage": (
        "<p>Federated learning shares gradients, not data, but a single example's gradient "
        "of a dense layer <i>is</i> the example: <code>x = dL/dW / dL/db</code>. The "
        "manager's leakage test runs that attack on one patient's gradient of a small "
        "logistic regression and reconstructs the input exactly. Clipping the gradient "
        "and adding Gaussian noise (the DP-FedAvg recipe) makes the same attack fail.</p>"
    ),
    "audit": (
        "<p>Audit controls (164.312(b)) need a record of who did what to PHI that nobody "
        "can quietly change. Every step so far was appended to an HMAC hash chain; "
        "verification recomputes it. An export verifies on its own: edit one entry of a "
        "copy and verification names the entry.</p>"
    ),
    "report": (
        "<p>The compliance report checks each technical safeguard against the manager's "
        "actual state and gives evidence and a remedy for each. It is evidence for a "
        "compliance officer, not a legal opinion.</p>"
    ),
}


class HipaaWalkthrough(StepWizard):
    """Step by step through HIPAA's technical safeguards, on a real manager.

    Five steps: (1) the configuration, (2) PHI encrypted, decrypted in a session and
    detected in text, (3) the gradient-leakage attack reconstructing a patient's input
    from one gradient, and failing once the gradient is clipped and noised, (4) the audit
    log, its verification, and a tampered export that fails verification naming the
    edited entry, (5) the compliance report. Every step calls the manager's public
    methods; nothing is mocked.

    Parameters
    ----------
    manager : HipaaComplianceManager or None
        The manager to show (default: a new one with the default ``HipaaConfig``, kept in
        memory).
    seed : int
        Seeds the synthetic patient data and the DP noise of step 3.
    clip_norm : float
        L2 bound of the clipped gradient in step 3.
    noise_multiplier : float
        Noise standard deviation in step 3, as a multiple of `clip_norm`.

    Raises
    ------
    ConfigError
        If `manager` is not a HipaaComplianceManager.

    Examples
    --------
    >>> w = HipaaWalkthrough()
    >>> results = w.run_all()
    >>> results["leakage"]["reconstructed"], results["leakage"]["reconstructed_with_dp"]
    (True, False)
    """

    #: The sample record of step 2 (synthetic).
    SAMPLE_RECORD = "Patient: Jane Roe, MRN 00482913, seen 2024-03-14 for a breast biopsy"
    #: The free-text note of step 2 (synthetic identifiers).
    SAMPLE_NOTE = (
        "Follow-up for J. Roe, SSN 123-45-6789, phone (617) 555-0142, "
        "email jane.roe@example.org, MRN: 00482913."
    )
    CLINICIAN = "dr_lee"
    DATA_SCIENTIST = "ana_ds"

    def __init__(
        self,
        manager: HipaaComplianceManager | None = None,
        *,
        seed: int = 0,
        clip_norm: float = 1.0,
        noise_multiplier: float = 1.0,
    ) -> None:
        given: object = manager
        if given is not None and not isinstance(given, HipaaComplianceManager):
            raise ConfigError("manager", f"<{type(given).__name__}>", "a HipaaComplianceManager")
        self.manager = HipaaComplianceManager() if manager is None else manager
        self.seed = seed
        self.clip_norm = clip_norm
        self.noise_multiplier = noise_multiplier
        steps = [
            WizardStep("configure", "Configure", _EXPLAIN["configure"], self._configure),
            WizardStep("phi", "Encrypt, decrypt and detect PHI", _EXPLAIN["phi"], self._phi),
            WizardStep(
                "leakage",
                "Gradient leakage, without and with DP",
                _EXPLAIN["leakage"],
                self._leakage,
            ),
            WizardStep("audit", "Audit log and a tampered export", _EXPLAIN["audit"], self._audit),
            WizardStep("report", "Compliance report", _EXPLAIN["report"], self._report),
        ]
        super().__init__(steps, css_class="heliosfl-hipaa-walkthrough")

    # ------------------------------------------------------------------ steps
    def _configure(self) -> StepOutcome:
        config = dataclasses.asdict(self.manager.config)
        rows = [(name, value, _SETTINGS.get(name, "")) for name, value in config.items()]
        store = "persistent" if self.manager.workspace.is_persistent else "in memory"
        shown = table(["setting", "value", "what it does"], rows) + (
            f"<p>Workspace: {esc(store)}; key-encryption key id {esc(self.manager.kek_id)} "
            "(the key itself stays apart from the data).</p>"
        )
        return {"config": config, "kek_id": self.manager.kek_id}, shown

    def _phi(self) -> StepOutcome:
        manager = self.manager
        users = manager.access.users
        for user, role in (
            (self.CLINICIAN, Role.CLINICIAN),
            (self.DATA_SCIENTIST, Role.DATA_SCIENTIST),
        ):
            if user not in users:
                manager.add_user(user, role)
        record = self.SAMPLE_RECORD.encode()
        encrypted = manager.encrypt_phi(
            record, "walkthrough-record", subject_id="walkthrough-subject"
        )
        session = manager.login(self.CLINICIAN)
        try:
            plain = manager.decrypt_phi(encrypted, user_id=session.user_id)
        finally:
            manager.logout(session)
        denied = False
        try:
            manager.decrypt_phi(encrypted, user_id=self.DATA_SCIENTIST)
        except ComplianceError:
            denied = True
        findings = manager.detect_phi(self.SAMPLE_NOTE)
        kinds = sorted({str(f.kind) for f in findings})
        result = {
            "ciphertext_bytes": len(encrypted.ciphertext),
            "plaintext_in_ciphertext": record in encrypted.ciphertext,
            "decrypted_matches": plain == record,
            "unauthorised_denied": denied,
            "phi_kinds": kinds,
            "findings": len(findings),
        }
        rows = [(f.kind, f.location, f.evidence, f"{f.confidence:.2f}") for f in findings]
        shown = (
            f"<p>Record ({len(record)} bytes) encrypted as {len(encrypted.ciphertext)} bytes "
            f"(version {encrypted.version}): <code>{esc(encrypted.ciphertext[:24].hex())}"
            "...</code></p>"
            f"<p>{esc(self.CLINICIAN)} (clinician, in a session) decrypts it: "
            + verdict(plain == record, "the original record", "a different record")
            + f". {esc(self.DATA_SCIENTIST)} (data scientist): "
            + verdict(denied, "access denied (audited)", "was allowed to read PHI")
            + "</p>"
            f"<p>PHI found in the note <i>{esc(self.SAMPLE_NOTE)}</i>:</p>"
            + table(["kind", "where", "evidence (masked)", "confidence"], rows)
        )
        return result, shown

    def _leakage(self) -> StepOutcome:
        rng = np.random.default_rng(self.seed)
        model = LogisticRegression(8)
        params = model.init_params(self.seed)
        X = rng.normal(size=(20, 8))  # noqa: N806 - one node's patients (synthetic)
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
        _, gradient = model.loss_and_grad(params, X[:1], y[:1])
        safe = self.manager.verify_gradient_privacy(gradient, model=model, inputs=X)
        report = self.manager.last_leakage_report
        candidate = reconstruct_inputs(gradient, model=model)[0]
        error = float(np.abs(candidate - X[0]).max())
        scale = max(1.0, float(np.abs(X[0]).max()))

        clipped, norm = clip_l2(gradient, self.clip_norm)
        noise = gaussian_noise(gradient.shape, self.noise_multiplier * self.clip_norm, rng)
        private = clipped + noise
        safe_dp = self.manager.verify_gradient_privacy(private, model=model, inputs=X)
        report_dp = self.manager.last_leakage_report
        candidates_dp = reconstruct_inputs(private, model=model)
        error_dp = float(np.abs(candidates_dp[0] - X[0]).max()) if len(candidates_dp) else None
        label = None if report is None else report.label_recovered
        result = {
            "reconstructed": (not safe) and error <= 1e-9 * scale,
            "max_abs_error": error,
            "label_recovered": label,
            "true_label": int(y[0]),
            "reconstructed_with_dp": not safe_dp,
            "max_abs_error_with_dp": error_dp,
            "gradient_norm": norm,
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
        }

        def fmt(v: Any) -> list[str]:
            return [f"{x:+.4f}" for x in np.asarray(v)]

        rows = [
            ["patient's input x", *fmt(X[0])],
            ["attack on the gradient", *fmt(candidate)],
        ]
        if len(candidates_dp):
            rows.append(["attack on the clipped, noised gradient", *fmt(candidates_dp[0])])
        headers = ["", *(f"x{i}" for i in range(X.shape[1]))]
        shown = (
            table(headers, rows)
            + "<p>Without DP: "
            + verdict(
                not result["reconstructed"],
                "not reconstructed",
                f"input reconstructed exactly (max abs error {error:.1e})",
            )
            + f"; label recovered: {esc(label)} (true label {int(y[0])}).</p>"
            f"<p><small>{esc(report.evidence if report else '')}</small></p>"
            f"<p>Clipped to norm {self.clip_norm:g} (it was {norm:.3f}) with Gaussian noise "
            f"of standard deviation {self.noise_multiplier * self.clip_norm:g}: "
            + verdict(safe_dp, "the attack fails", "the input is still reconstructible")
            + (f" (max abs error {error_dp:.2f})" if error_dp is not None else "")
            + f".</p><p><small>{esc(report_dp.evidence if report_dp else '')}</small></p>"
        )
        return result, shown

    def _audit(self) -> StepOutcome:
        manager = self.manager
        verification = manager.verify_audit_log()
        entries = manager.audit.entries()
        exported = manager.export_audit_json()
        if not exported["entries"]:
            raise ComplianceError(
                "The audit log is empty (HipaaConfig.enable_audit_logging=False?): there is "
                "nothing to export or tamper with."
            )
        key = manager.vault.derived_key(_AUDIT_KEY_LABEL)
        export_ok = verify_export(exported, key).ok
        copy = json.loads(json.dumps(exported))  # a copy, as a file would be
        victim = _pick_entry(copy["entries"])
        victim["user_id"] = "mallory"
        tampered = verify_export(copy, key)
        result = {
            "audit_ok": verification.ok,
            "entries": len(entries),
            "export_ok": export_ok,
            "tampered_ok": tampered.ok,
            "tampered_seq": victim["seq"],
            "first_bad_seq": tampered.first_bad_seq,
            "problem": None if tampered.problem is None else str(tampered.problem),
        }
        shown = (
            _entries_table(entries)
            + "<p>The log: "
            + verdict(verification.ok, "verified", "FAILED verification")
            + f" ({esc(verification.message)})</p><p>The export: "
            + verdict(export_ok, "verifies on its own", "does not verify")
            + f". A copy with entry seq {victim['seq']}'s user changed to 'mallory': "
            + verdict(not tampered.ok, "verification fails", "still verifies")
            + f", naming seq {esc(tampered.first_bad_seq)} ({esc(tampered.message)})</p>"
        )
        return result, shown

    def _report(self) -> StepOutcome:
        report = self.manager.verify_compliance()
        result = {
            "overall_compliant": report.overall_compliant,
            "checks": {c.requirement: c.status.value for c in report.checks},
            "failures": [c.requirement for c in report.failures],
        }
        return result, report.to_html()


def _pick_entry(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry to tamper with: a PHI decryption if there is one, else the middle one."""
    for entry in entries:
        if entry.get("action") == "phi_decrypt":
            return entry
    return entries[len(entries) // 2]


def _entries_table(entries: Sequence[AuditLogEntry], limit: int = 40) -> str:
    shown = entries[-limit:]
    rows = [
        (
            e.seq,
            f"{e.time:%H:%M:%S}",
            e.user_id,
            e.action.value,
            e.resource if len(e.resource) <= 28 else e.resource[:25] + "...",
            "yes" if e.success else "no",
        )
        for e in shown
    ]
    note = (
        f"<p><small>The last {len(shown)} of {len(entries)} entries.</small></p>"
        if len(entries) > limit
        else ""
    )
    return note + table(["seq", "time (UTC)", "user", "action", "resource", "success"], rows)
