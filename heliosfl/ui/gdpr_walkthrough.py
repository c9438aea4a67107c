"""GdprWalkthrough: consent, data, training, export, erasure and unlearning, step by step."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import ipywidgets as widgets
import numpy as np

from heliosfl.compliance import TRAINING_PURPOSE, DataCategory, GdprComplianceManager, GdprConfig
from heliosfl.config import Config, RoundConfig, WorkerConfig
from heliosfl.coordinator import Coordinator
from heliosfl.data import NodeData, load_dataset, partition
from heliosfl.engine import FederatedLearningEngine
from heliosfl.errors import ComplianceError, ConfigError
from heliosfl.ui._wizard import StepOutcome, StepWizard, WizardStep, esc, table, verdict

__all__ = ["GdprWalkthrough"]

#: The purpose the structured record of step 2 is kept for (consented in step 1).
CONTACT_PURPOSE = "care_coordination"
_CONSENT_VERSION = "v1.0"
_CONSENT_TEXT = (
    "I agree that my de-identified clinical measurements may be used to train a shared "
    "diagnostic model, and that the clinic may contact me about my care."
)
_SCHEMA = {"contact_data": ("email", "preferred_language")}
_PLACEHOLDERS = {"email": "subject@example.org", "preferred_language": "en"}

_EXPLAIN = {
    "consent": (
        "<p>Training on personal data needs a lawful basis; here it is <b>consent</b> "
        "(Art. 6(1)(a), 7): specific purposes, recorded with the version and the SHA-256 "
        "of the text the subject agreed to, in an append-only book. Every subject of the "
        "federation consents to <code>model_training</code> and "
        f"<code>{CONTACT_PURPOSE}</code>.</p>"
    ),
    "add_data": (
        "<p>Personal data may be kept only for a consented purpose (<b>purpose "
        "limitation</b>, Art. 5(1)(b)) and only the fields declared for its category "
        "(<b>data minimisation</b>, Art. 5(1)(c)). A record with the declared fields is "
        "stored, encrypted under the subject's own key; one with an undeclared field is "
        "refused.</p>"
    ),
    "train": (
        "<p>The nodes train on the rows of consenting subjects only, and every committed "
        "round records, in its own transaction, whose rows contributed through which "
        "node (lineage). That record is what makes an erasure exact.</p>"
    ),
    "export": (
        "<p>The <b>right to data portability</b> (Art. 20): everything held about the "
        "subject (consents, stored records, the rows each node holds, the rounds they "
        "contributed to) as structured JSON, offered for download.</p>"
    ),
    "erase": (
        "<p>The <b>right to erasure</b> (Art. 17): the subject's rows are removed at every "
        "node, their key is shredded, and the model is <i>unlearned</i>: rolled back to "
        "the checkpoint before their first contribution and the later rounds replayed "
        "without them, with the same seeds.</p>"
    ),
    "verify": (
        "<p>Verification checks every place the subject could remain: rows on nodes, "
        "stored records, keys, listings, and the lineage of every committed round. The "
        "loss-threshold membership-inference score (about 0.5 looks like unseen data) is "
        "an indicator, not a proof.</p>"
    ),
    "retrain": (
        "<p>The proof of unlearning: train a new federation from scratch on the same "
        "nodes with the subject's rows removed, with the same configuration and seed, "
        "for as many rounds. Its parameters equal the unlearned model's exactly.</p>"
    ),
}


class GdprWalkthrough(StepWizard):
    """Step by step through GDPR in a real federation: consent to verified unlearning.

    Seven steps: (1) consent for every subject, (2) a structured record under a declared
    schema, (3) a few training rounds and the rounds the subject contributed to, (4) the
    subject's JSON export (a download link), (5) erasure with unlearning, (6) its
    verification, (7) a from-scratch retrain without the subject, compared with the
    unlearned model. Every step awaits the manager's and engine's public coroutines;
    *Run step* runs them in a task on the kernel's loop, and the widget shows the error
    of a task that fails.

    Parameters
    ----------
    engine : FederatedLearningEngine or None
        A federation with a model whose nodes hold ``subject_ids``. ``None``: step 1
        builds one (breast cancer on `num_nodes` nodes, logistic regression), owned by
        the walkthrough (close it with :meth:`aclose`).
    manager : GdprComplianceManager or None
        The GDPR manager on ``engine.workspace``. With an engine it must already be
        attached to it (``engine.attach_gdpr``); without one, the walkthrough creates it
        (declaring the contact-data schema of step 2) and attaches it.
    model_id : str or None
        The model to train and unlearn (default: the engine's first); kept as
        :attr:`model_name` (``model_id`` is the widget's own comm id).
    subject_id : str or None
        The subject to follow (default: the first training row's subject at the first node).
    rounds : int
        Rounds trained in step 3.
    seed : int
        Seeds the data split and the run of a federation the walkthrough builds.
    num_nodes : int
        Nodes of a federation the walkthrough builds.

    Raises
    ------
    ConfigError
        If `engine` or `manager` is of the wrong type, or `rounds` is not a positive int.
    """

    def __init__(
        self,
        engine: FederatedLearningEngine | None = None,
        manager: GdprComplianceManager | None = None,
        *,
        model_id: str | None = None,
        subject_id: str | None = None,
        rounds: int = 3,
        seed: int = 0,
        num_nodes: int = 4,
    ) -> None:
        given: tuple[object, object] = (engine, manager)
        if given[0] is not None and not isinstance(given[0], FederatedLearningEngine):
            raise ConfigError("engine", f"<{type(given[0]).__name__}>", "a FederatedLearningEngine")
        if given[1] is not None and not isinstance(given[1], GdprComplianceManager):
            raise ConfigError("manager", f"<{type(given[1]).__name__}>", "a GdprComplianceManager")
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ConfigError("rounds", rounds, "an int >= 1")
        self.engine = engine
        self.manager = manager
        self.model_name = model_id
        self.subject_id = subject_id
        self.rounds = rounds
        self.seed = seed
        self.num_nodes = num_nodes
        self.coordinator: Coordinator | None = None
        #: The subject's JSON export (step 4).
        self.export_json: str | None = None
        self._owns_engine = engine is None
        self._nodes: list[tuple[WorkerConfig, NodeData]] = []
        self._initial: np.ndarray[Any, np.dtype[np.float64]] | None = None
        #: The download link of the export (step 4).
        self.download = widgets.HTML()
        self.download.add_class("heliosfl-walkthrough-download")
        steps = [
            WizardStep("consent", "Consent", _EXPLAIN["consent"], self._consent),
            WizardStep(
                "add_data",
                "Personal data under a declared schema",
                _EXPLAIN["add_data"],
                self._add_data,
            ),
            WizardStep("train", "Train", _EXPLAIN["train"], self._train),
            WizardStep("export", "Export (portability)", _EXPLAIN["export"], self._export),
            WizardStep("erase", "Erase and unlearn", _EXPLAIN["erase"], self._erase),
            WizardStep("verify", "Verify the erasure", _EXPLAIN["verify"], self._verify),
            WizardStep(
                "retrain",
                "Compare with a retrain without the subject",
                _EXPLAIN["retrain"],
                self._retrain,
            ),
        ]
        super().__init__(steps, css_class="heliosfl-gdpr-walkthrough")

    def _extra_children(self) -> list[Any]:
        return [self.download]

    async def aclose(self) -> None:
        """Close the engine if the walkthrough built it (an engine passed in is left open)."""
        if self._owns_engine and self.engine is not None:
            await self.engine.aclose()

    # ------------------------------------------------------------------ helpers
    def _ready(self) -> tuple[FederatedLearningEngine, GdprComplianceManager, Coordinator, str]:
        if self.engine is None or self.manager is None or self.coordinator is None:
            raise RuntimeError("Run the consent step first: it sets up the federation.")
        assert self.subject_id is not None  # noqa: S101 - set with the federation
        return self.engine, self.manager, self.coordinator, self.subject_id

    async def _build(self) -> None:
        """Set up the federation (built here if none was given) and note the nodes' data."""
        if self.engine is None:
            train, test = load_dataset("breast_cancer", seed=self.seed)
            nodes = partition(train, num_nodes=self.num_nodes, scheme="iid", seed=self.seed)
            config = Config(
                round_config=RoundConfig(
                    max_rounds=100,
                    min_nodes_per_round=2,
                    learning_rate=0.3,
                    convergence_threshold=0.0,
                ),
                seed=self.seed,
            )
            workspace = None if self.manager is None else self.manager.workspace
            engine = FederatedLearningEngine(config, workspace=workspace)
            manager = self.manager or GdprComplianceManager(
                GdprConfig(data_schema=_SCHEMA), workspace=engine.workspace
            )
            name = self.model_name or "walkthrough"
            try:
                await engine.register_model(name, "logistic_regression", input_dim=30)
                coordinator = await engine.create_coordinator(name, validation_data=test)
                engine.attach_gdpr(manager)
                for i, data in enumerate(nodes):
                    worker = await engine.create_worker(
                        WorkerConfig(node_id=f"node_{i}"), data=data
                    )
                    await coordinator.register_node(worker.node_id, len(data))
            except BaseException:
                await engine.aclose()  # a retry builds a new one
                raise
            self.engine, self.manager, self.model_name = engine, manager, name
        engine = self.engine
        if self.model_name is None:
            models = engine.list_models()
            if not models:
                raise ConfigError("engine", "<an engine without models>", "an engine with a model")
            self.model_name = models[0]
        coordinator = engine.get_coordinator(self.model_name)
        if self.manager is None:
            self.manager = GdprComplianceManager(workspace=engine.workspace)
            engine.attach_gdpr(self.manager)
        self._nodes = []
        for info in await coordinator.list_nodes():
            worker = engine.get_worker(info.node_id)
            if worker.data is None or worker.data.subject_ids is None:
                raise ConfigError(
                    f"node {info.node_id!r} data", "<no subject_ids>", "NodeData with subject_ids"
                )
            self._nodes.append((worker.config, worker.data))
        if not self._nodes:
            raise ConfigError("engine", "<a model without nodes>", "registered nodes with data")
        if self.subject_id is None:
            self.subject_id = str(self._nodes[0][1].subject_ids[0])  # type: ignore[index]
        self._initial = np.array(engine.workspace.checkpoint(self.model_name, 0).params)
        self.coordinator = coordinator

    def _subjects(self) -> list[str]:
        ids: set[str] = set()
        for _, data in self._nodes:
            for column in (data.subject_ids, data.subject_ids_val):
                if column is not None:
                    ids.update(str(s) for s in column)
        return sorted(ids)

    def _subject_rounds(self) -> list[tuple[int, str]]:
        _, manager, _, subject = self._ready()
        return [
            (number, node)
            for model, number, node in manager.lineage.contributions(manager.pseudonym(subject))
            if model == self.model_name
        ]

    # ------------------------------------------------------------------ steps
    async def _consent(self) -> StepOutcome:
        await self._build()
        _, manager, _, subject = self._ready()
        digest = manager.register_consent_text(_CONSENT_VERSION, _CONSENT_TEXT)
        subjects = self._subjects()
        purposes = [TRAINING_PURPOSE, CONTACT_PURPOSE]
        for other in sorted({*subjects, subject}):
            manager.record_consent(other, purposes, _CONSENT_VERSION)
        record = manager.consent_history(subject)[-1]
        expected = hashlib.sha256(_CONSENT_TEXT.encode()).hexdigest()
        result = {
            "subjects": len(subjects),
            "subject": subject,
            "purposes": list(record.purposes),
            "version": record.version,
            "text_sha256": record.text_sha256,
            "hash_matches_text": record.text_sha256 == digest == expected,
        }
        rows = [
            ("subject (as stored)", record.subject),
            ("action", record.action.value),
            ("purposes", ", ".join(record.purposes)),
            ("version", record.version),
            ("SHA-256 of the consent text", record.text_sha256),
            ("text registered", record.text_registered),
            ("recorded at (UTC)", record.recorded_at.isoformat()),
        ]
        shown = (
            f"<p>{len(subjects)} subjects on {len(self._nodes)} nodes consented. The consent "
            f"text ({esc(_CONSENT_VERSION)}): <i>{esc(_CONSENT_TEXT)}</i></p>"
            f"<p>The record of subject <code>{esc(subject)}</code> (stored only under a keyed "
            "pseudonym):</p>" + table(["field", "value"], rows)
        )
        return result, shown

    def _add_data(self) -> StepOutcome:
        _, manager, _, subject = self._ready()
        schema = dict(manager.config.data_schema)
        category, fields = next(iter(schema.items()), ("contact_data", ("preferred_language",)))
        record = {name: _PLACEHOLDERS.get(name, "example") for name in fields}
        record_id = manager.add_user_data(subject, record, CONTACT_PURPOSE, DataCategory(category))
        refused: str | None = None
        if manager.config.enable_data_minimization:
            try:
                manager.add_user_data(
                    subject, {**record, "national_id": "000-00-0000"}, CONTACT_PURPOSE, category
                )
            except ComplianceError as exc:  # the refusal is the point; its text is shown
                refused = str(exc)
        result = {
            "record_id": record_id,
            "category": category,
            "fields": sorted(record),
            "undeclared_refused": refused is not None,
        }
        shown = (
            "<p>Declared schema: "
            + table(["category", "fields"], [(c, ", ".join(f)) for c, f in schema.items()])
            + f"</p><p>Stored record <code>{esc(record_id)}</code> ({esc(category)}, purpose "
            f"{esc(CONTACT_PURPOSE)}), encrypted under the subject's key: "
            + table(["field", "value"], sorted(record.items()))
            + "</p><p>The same record with an undeclared <code>national_id</code>: "
            + verdict(refused is not None, "refused", "accepted (minimisation is off)")
            + (f" <small>({esc(refused)})</small>" if refused else "")
            + "</p>"
        )
        return result, shown

    async def _train(self) -> StepOutcome:
        _, _, coordinator, subject = self._ready()
        records = [await coordinator.run_round() for _ in range(self.rounds)]
        contributed: dict[int, str] = {}
        for number, node in self._subject_rounds():
            contributed[number] = node
        result = {
            "rounds": [r.round_number for r in records],
            "subject_rounds": sorted(contributed),
            "validation_accuracy": records[-1].validation_accuracy,
        }
        rows = [
            (
                r.round_number,
                len(r.participating_nodes),
                "-" if r.validation_accuracy is None else f"{r.validation_accuracy:.3f}",
                f"yes, through {contributed[r.round_number]}"
                if r.round_number in contributed
                else "no",
            )
            for r in records
        ]
        shown = f"<p>Subject <code>{esc(subject)}</code>'s contributions:</p>" + table(
            ["round", "nodes", "test accuracy", "subject's rows used"], rows
        )
        return result, shown

    def _export(self) -> StepOutcome:
        _, manager, _, subject = self._ready()
        export = manager.export_user_data(subject)
        text = export.to_json(indent=2)
        self.export_json = text
        encoded = base64.b64encode(text.encode()).decode()
        self.download.value = (
            '<a class="heliosfl-download" download="export.json" '
            f'href="data:application/json;base64,{encoded}">Download export.json</a>'
        )
        rows = sum(len(n.get("rows", [])) for n in export.node_data)
        result = {
            "json_bytes": len(text.encode()),
            "consents": len(export.consents),
            "user_data": len(export.user_data),
            "node_data": len(export.node_data),
            "node_rows": rows,
            "model_contributions": len(export.model_contributions),
        }
        preview = text if len(text) <= 4000 else text[:4000] + "\n..."
        shown = (
            table(["part", "entries"], [(k, v) for k, v in result.items() if k != "json_bytes"])
            + f"<p>{len(text.encode())} bytes of JSON (download link below):</p>"
            f"<pre>{esc(preview)}</pre>"
        )
        return result, shown

    async def _erase(self) -> StepOutcome:
        _, manager, _, subject = self._ready()
        deletion = await manager.delete_user_data(subject)
        unlearned = [u for u in deletion.unlearning if u.model_id == self.model_name]
        result: dict[str, Any] = {
            "status": deletion.status,
            "nodes": list(deletion.deleted_from_nodes),
            "pending_nodes": list(deletion.pending_nodes),
            "rows_removed": sum(deletion.rows_removed.values()),
            "records_removed": deletion.records_removed,
            "key_shredded": deletion.key_shredded,
            "rollback_round": unlearned[0].rollback_round if unlearned else None,
            "rounds_replayed": unlearned[0].rounds_replayed if unlearned else 0,
        }
        rows = [
            ("request", deletion.request_id),
            ("status", deletion.status),
            ("due by (UTC)", deletion.deadline.isoformat()),
            ("erased at nodes", ", ".join(deletion.deleted_from_nodes)),
            ("pending nodes", ", ".join(deletion.pending_nodes) or "none"),
            ("rows removed", ", ".join(f"{n}: {k}" for n, k in deletion.rows_removed.items())),
            ("stored records shredded", deletion.records_removed),
            ("subject key shredded", deletion.key_shredded),
        ]
        models = [
            (
                u.model_id,
                u.first_contribution,
                u.rollback_round,
                u.rounds_replayed,
                u.stopped_early or "-",
            )
            for u in deletion.unlearning
        ]
        shown = table(["field", "value"], rows) + table(
            [
                "model",
                "first contribution",
                "rolled back to round",
                "rounds replayed",
                "stopped early",
            ],
            models,
        )
        return result, shown

    async def _verify(self) -> StepOutcome:
        _, manager, _, subject = self._ready()
        verification = await manager.verify_deletion(subject)
        result = {
            "verified": verification.verified,
            "checks": dict(verification.checks),
            "problems": list(verification.problems),
            "membership": {m: list(s) for m, s in verification.membership.items()},
        }

        def score(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}"

        checks = "".join(
            f"<tr><td>{esc(name)}</td><td>{verdict(ok, 'pass', 'FAIL')}</td></tr>"
            for name, ok in verification.checks.items()
        )
        shown = (
            "<p>Erasure "
            + verdict(verification.verified, "verified", "NOT verified")
            + "</p><table><tr><th>check</th><th>result</th></tr>"
            + checks
            + "</table>"
            + "".join(f"<p class='heliosfl-bad'>{esc(p)}</p>" for p in verification.problems)
            + "<p>Membership-inference score of the subject's rows:</p>"
            + table(
                ["model", "before erasure", "after unlearning"],
                [(m, score(b), score(a)) for m, (b, a) in verification.membership.items()],
            )
        )
        return result, shown

    async def _retrain(self) -> StepOutcome:
        engine, manager, coordinator, subject = self._ready()
        assert self.model_name is not None and self._initial is not None  # noqa: S101
        consent_on = manager.config.enable_consent_management
        async with FederatedLearningEngine(engine.config) as fresh:
            await fresh.register_model(self.model_name, coordinator.model, self._initial)
            clean = await fresh.create_coordinator(
                self.model_name, validation_data=coordinator.validation_data
            )
            for config, data in self._nodes:
                refused = [subject]
                if consent_on:  # as the governed engine does: only consenting subjects' rows
                    ids = {
                        str(s)
                        for c in (data.subject_ids, data.subject_ids_val)
                        if c is not None
                        for s in c
                    }
                    refused += [
                        s for s in sorted(ids) if not manager.has_consent(s, TRAINING_PURPOSE)
                    ]
                kept = data.without_subjects(refused)
                await fresh.create_worker(config, data=kept)
                await clean.register_node(config.node_id, len(kept))
            for _ in range(coordinator.current_round):
                await clean.run_round()
            unlearned = np.asarray(coordinator.params)
            retrained = np.asarray(clean.params)
        diff = float(np.max(np.abs(unlearned - retrained)))
        result = {
            "rounds": coordinator.current_round,
            "max_abs_diff": diff,
            "identical": bool(np.array_equal(unlearned, retrained)),
        }
        shown = (
            f"<p>Both models after {coordinator.current_round} rounds; largest difference "
            f"between their {unlearned.size} parameters: <b>{diff:.3g}</b>. "
            + verdict(
                diff == 0.0,
                "The unlearned model is the model that never saw the subject.",
                "The models differ.",
            )
            + "</p>"
            + table(
                ["parameter", "unlearned", "retrained without the subject"],
                [
                    (i, f"{unlearned[i]:+.6f}", f"{retrained[i]:+.6f}")
                    for i in range(min(5, unlearned.size))
                ],
            )
        )
        return result, shown
