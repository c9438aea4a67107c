"""Tests of the standalone GdprComplianceManager (not attached to an engine).

Consent, the encrypted inventory, portability, erasure of stored records, retention,
the records of processing and the audit trail need only the manager and its workspace;
engine integration (training filters, lineage, unlearning) is tested elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heliosfl.compliance import (
    EXPORT_SCHEMA,
    AuditAction,
    ConsentAction,
    DataCategory,
    DeletionRecord,
    GdprComplianceManager,
    GdprConfig,
    KeyEncryptionKey,
    ModelUnlearning,
    membership_score,
)
from heliosfl.compliance.erasure import ErasureBook
from heliosfl.errors import ComplianceError, ConfigError, WorkspaceError
from heliosfl.store import Workspace

USER = "user123"
TRAINING = "model_training"
SENTINEL = b"SECRET-PAYLOAD-123"
START = datetime(2030, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1)  # noqa: DTZ001 - hypothesis takes naive bounds with timezones=


class FakeClock:
    """A UTC clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def guide_manager(**kwargs: object) -> GdprComplianceManager:
    return GdprComplianceManager(
        GdprConfig(
            enable_right_to_be_forgotten=True,
            enable_data_portability=True,
            enable_consent_management=True,
            retention_period_days=365,
            enable_data_minimization=True,
            enable_purpose_limitation=True,
            enable_explainability=True,
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def validate_export(text: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(EXPORT_SCHEMA)
    jsonschema.Draft202012Validator(EXPORT_SCHEMA).validate(document)
    return document


@pytest.fixture
def manager() -> GdprComplianceManager:
    return guide_manager()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kek() -> KeyEncryptionKey:
    return KeyEncryptionKey.ephemeral()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gdpr.db"


@pytest.fixture
def file_manager(db_path: Path, kek: KeyEncryptionKey) -> Iterator[GdprComplianceManager]:
    workspace = Workspace(db_path)
    yield GdprComplianceManager(GdprConfig(), workspace=workspace, kek=kek)
    workspace.close()


def raw_files(db_path: Path) -> bytes:
    """The database file and its WAL (if any), as bytes on disk."""
    wal = db_path.with_name(db_path.name + "-wal")
    return db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


# -- the guide's example -------------------------------------------------------------


async def test_guide_example_consent_export_delete_verify() -> None:
    # Prepare
    gdpr_manager = guide_manager()
    gdpr_manager.record_consent(USER, [TRAINING, "data_analytics"], "v1.0")
    gdpr_manager.add_user_data(USER, [1, 2, 3, 4, 5], TRAINING, DataCategory.TRAINING_DATA)

    # Execute
    export = gdpr_manager.export_user_data(USER)
    document = validate_export(export.to_json(indent=2))
    deletion = await gdpr_manager.delete_user_data(USER, ["node_1", "node_2"])
    verification = await gdpr_manager.verify_deletion(USER)

    # Assert
    assert len(export.user_data) == 1
    (item,) = document["user_data"]
    assert base64.b64decode(item["data"]) == b"\x01\x02\x03\x04\x05"
    assert (item["format"], item["category"], item["purpose"]) == (
        "bytes",
        "training_data",
        TRAINING,
    )
    assert document["subject_id"] == USER
    assert document["purposes"] == ["data_analytics", TRAINING]
    assert len(deletion.deleted_from_nodes) == 2
    assert deletion.deleted_from_nodes == ("node_1", "node_2")
    assert deletion.pending_nodes == ()
    assert deletion.status == "completed" and deletion.is_complete
    assert deletion.key_shredded is True
    assert deletion.records_removed == 1
    assert deletion.rows_removed == {"node_1": 0, "node_2": 0}
    assert deletion.unlearning == ()
    assert deletion.completed_at is not None
    assert deletion.deadline - deletion.received_at == timedelta(days=30)
    assert verification
    assert verification.verified and verification.problems == ()
    assert all(verification.checks.values())
    assert verification.checks["lineage_covers_history"] is True
    assert not gdpr_manager.has_consent(USER, TRAINING)


async def test_export_after_erasure_holds_no_data_and_the_request() -> None:
    manager = guide_manager()
    manager.record_consent(USER, [TRAINING], "v1.0")
    manager.add_user_data(USER, b"abc", TRAINING, DataCategory.PERSONAL_DATA)
    deletion = await manager.delete_user_data(USER)

    document = validate_export(manager.export_user_data(USER).to_json())

    assert document["user_data"] == [] and document["purposes"] == []
    assert [c["action"] for c in document["consents"]] == ["grant", "withdraw"]
    assert document["consents"][-1]["reason"] == "erasure"
    (request,) = document["erasure_requests"]
    assert request["request_id"] == deletion.request_id
    assert request["status"] == "completed"


async def test_verify_without_any_request_is_falsy(manager: GdprComplianceManager) -> None:
    result = await manager.verify_deletion("never-asked")

    assert not result
    assert result.checks["erasure_requested"] is False
    assert "no erasure was requested for this subject" in result.problems


async def test_erasure_of_a_subject_with_no_records(manager: GdprComplianceManager) -> None:
    deletion = await manager.delete_user_data("stranger")

    assert (deletion.status, deletion.records_removed, deletion.key_shredded) == (
        "completed",
        0,
        False,
    )
    assert deletion.deleted_from_nodes == ()
    assert await manager.verify_deletion("stranger")


def test_export_of_mixed_formats_validates(manager: GdprComplianceManager) -> None:
    manager.record_consent(USER, [TRAINING], "v1.0")
    manager.add_user_data(USER, "text ü", TRAINING, "personal_data", node_id="node_1")
    manager.add_user_data(USER, bytearray(b"\xff\x00"), TRAINING, "personal_data")
    schema_manager = GdprComplianceManager(
        GdprConfig(data_schema={"contact_data": ("email", "phone")})
    )
    schema_manager.record_consent(USER, [TRAINING], "v1.0")
    schema_manager.add_user_data(USER, {"email": "a@b.c"}, TRAINING, "contact_data")

    text_items = validate_export(manager.export_user_data(USER).to_json())["user_data"]
    json_items = validate_export(schema_manager.export_user_data(USER).to_json())["user_data"]

    assert [(i["format"], i["data"], i["node_id"]) for i in text_items] == [
        ("text", "text ü", "node_1"),
        ("bytes", base64.b64encode(b"\xff\x00").decode(), None),
    ]
    assert [(i["format"], i["data"], i["fields"]) for i in json_items] == [
        ("json", {"email": "a@b.c"}, ["email"])
    ]


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_any_bytes_come_back_in_the_export(payload: bytes) -> None:
    manager = guide_manager()
    manager.record_consent(USER, [TRAINING], "v1")
    manager.add_user_data(USER, payload, TRAINING, DataCategory.TRAINING_DATA)

    (item,) = manager.export_user_data(USER).user_data

    assert base64.b64decode(item["data"]) == payload
    assert item["format"] == "bytes"


def test_portability_off_refuses_exports() -> None:
    manager = GdprComplianceManager(GdprConfig(enable_data_portability=False))

    with pytest.raises(ComplianceError, match="Data portability is off"):
        manager.export_user_data(USER)


# -- consent -------------------------------------------------------------------------


def test_consent_book_is_append_only(manager: GdprComplianceManager) -> None:
    manager.record_consent(USER, [TRAINING], "v1.0")

    for statement in ("UPDATE gdpr_consents SET action = 'withdraw'", "DELETE FROM gdpr_consents"):
        with (
            pytest.raises(WorkspaceError, match="gdpr_consents is append-only"),
            manager.workspace.transaction() as conn,
        ):
            conn.execute(statement)

    (record,) = manager.consent_history(USER)
    assert record.action is ConsentAction.GRANT
    assert manager.has_consent(USER, TRAINING)


def test_history_keeps_grant_then_withdrawal(manager: GdprComplianceManager) -> None:
    granted = manager.record_consent(USER, [TRAINING, "data_analytics"], "v1.0")
    assert manager.has_consent(USER, TRAINING) and manager.has_consent(USER, "data_analytics")

    withdrawn = manager.withdraw_consent(USER)

    history = manager.consent_history(USER)
    assert history == [granted, withdrawn]
    assert [r.action for r in history] == [ConsentAction.GRANT, ConsentAction.WITHDRAW]
    assert withdrawn.purposes == ("data_analytics", TRAINING)  # all of them, by default
    assert withdrawn.version == "v1.0" and withdrawn.reason == "subject"
    assert history[0].seq < history[1].seq
    assert not manager.has_consent(USER, TRAINING)
    assert not manager.has_consent(USER, "data_analytics")


def test_partial_withdrawal_keeps_the_other_purposes(manager: GdprComplianceManager) -> None:
    manager.record_consent(USER, [TRAINING, "data_analytics"], "v1.0")

    manager.withdraw_consent(USER, ["data_analytics"])

    assert manager.has_consent(USER, TRAINING)
    assert not manager.has_consent(USER, "data_analytics")


def test_withdrawing_with_no_consent_raises(manager: GdprComplianceManager) -> None:
    with pytest.raises(ConfigError, match="purposes must be purposes the subject consents to"):
        manager.withdraw_consent(USER)
    manager.record_consent(USER, [TRAINING], "v1.0")
    manager.withdraw_consent(USER)
    with pytest.raises(ConfigError, match=r"consents to now \(none\)"):
        manager.withdraw_consent(USER)
    assert len(manager.consent_history(USER)) == 2


def test_consent_generation_changes_on_every_change(manager: GdprComplianceManager) -> None:
    start = manager.consents.generation

    manager.record_consent(USER, [TRAINING], "v1.0")
    after_grant = manager.consents.generation
    manager.withdraw_consent(USER)

    assert start < after_grant < manager.consents.generation


def test_text_hash_is_of_the_registered_text(manager: GdprComplianceManager) -> None:
    text = "I agree that my records may train the federated model."
    digest = manager.register_consent_text("v2.0", text)

    registered = manager.record_consent(USER, [TRAINING], "v2.0")
    unregistered = manager.record_consent("other", [TRAINING], "v1.0")

    assert digest == hashlib.sha256(text.encode()).hexdigest()
    assert (registered.text_sha256, registered.text_registered) == (digest, True)
    assert unregistered.text_sha256 == hashlib.sha256(b"v1.0").hexdigest()
    assert unregistered.text_registered is False


def test_a_published_version_never_changes(manager: GdprComplianceManager) -> None:
    digest = manager.register_consent_text("v2.0", "Original wording.")

    assert manager.register_consent_text("v2.0", "Original wording.") == digest  # idempotent
    with pytest.raises(ConfigError, match="registered with another text"):
        manager.register_consent_text("v2.0", "Changed wording.")
    with pytest.raises(ConfigError, match="text must be the non-empty consent text"):
        manager.register_consent_text("v3.0", "   ")
    assert manager.record_consent(USER, [TRAINING], "v2.0").text_sha256 == digest


def test_consent_survives_reopening_the_workspace(db_path: Path, kek: KeyEncryptionKey) -> None:
    with Workspace(db_path) as workspace:
        first = GdprComplianceManager(workspace=workspace, kek=kek)
        first.record_consent(USER, [TRAINING, "data_analytics"], "v1.0")
        first.withdraw_consent(USER, ["data_analytics"])
        record_id = first.add_user_data(USER, b"kept", TRAINING, "training_data")
        history = first.consent_history(USER)

    with Workspace(db_path) as workspace:
        again = GdprComplianceManager(workspace=workspace, kek=kek)

        assert again.pseudonym(USER) == first.pseudonym(USER)
        assert again.consent_history(USER) == history
        assert again.has_consent(USER, TRAINING)
        assert not again.has_consent(USER, "data_analytics")
        (item,) = again.export_user_data(USER).user_data
        assert item["record_id"] == record_id
        assert base64.b64decode(item["data"]) == b"kept"
        assert again.audit.verify().ok


def test_reopening_with_another_kek_is_refused(db_path: Path, kek: KeyEncryptionKey) -> None:
    with Workspace(db_path) as workspace:
        GdprComplianceManager(workspace=workspace, kek=kek).record_consent(USER, [TRAINING], "v1")

    with Workspace(db_path) as workspace, pytest.raises(ComplianceError, match="wrapped under"):
        GdprComplianceManager(workspace=workspace, kek=KeyEncryptionKey.ephemeral())


def test_consent_management_off_refuses_consent() -> None:
    manager = GdprComplianceManager(GdprConfig(enable_consent_management=False))

    with pytest.raises(ComplianceError, match="Consent management is off"):
        manager.record_consent(USER, [TRAINING], "v1.0")
    assert manager.consent_history(USER) == []


def test_consent_management_off_leaves_data_storable() -> None:
    # Off means "another lawful basis applies" (GdprConfig docs); consent cannot be
    # recorded then, so purpose limitation (on by default) must not demand it.
    manager = GdprComplianceManager(GdprConfig(enable_consent_management=False))

    record_id = manager.add_user_data(USER, b"rows", TRAINING, DataCategory.TRAINING_DATA)

    assert manager.inventory.decrypt(record_id) == b"rows"


def test_withdrawing_purposes_never_granted_raises(manager: GdprComplianceManager) -> None:
    manager.record_consent(USER, [TRAINING], "v1.0")

    with pytest.raises(ConfigError, match="purposes must be purposes the subject consents to"):
        manager.withdraw_consent(USER, ["marketing"])

    assert [r.action for r in manager.consent_history(USER)] == [ConsentAction.GRANT]
    assert manager.records_of_processing().to_dict()["activity"]["consents_withdrawn"] == 0


# -- purpose limitation and data minimisation ----------------------------------------


def test_purpose_limitation_refuses_and_stores_nothing(manager: GdprComplianceManager) -> None:
    manager.record_consent(USER, ["data_analytics"], "v1.0")

    with pytest.raises(ComplianceError, match=r"Purpose limitation.*'model_training'"):
        manager.add_user_data(USER, b"rows", TRAINING, DataCategory.TRAINING_DATA)

    subject = manager.pseudonym(USER)
    assert manager.inventory.records(subject) == []
    assert manager.inventory.counts()["records_by_purpose"] == {}
    refused = [e for e in manager.audit.entries() if e.action is AuditAction.DATA_REFUSED]
    assert len(refused) == 1
    assert (refused[0].resource, refused[0].success) == (subject, False)
    assert refused[0].details == {"purpose": TRAINING}


def test_purpose_limitation_off_stores_without_consent() -> None:
    manager = GdprComplianceManager(GdprConfig(enable_purpose_limitation=False))

    record_id = manager.add_user_data(USER, b"rows", TRAINING, DataCategory.TRAINING_DATA)

    (record,) = manager.inventory.records(manager.pseudonym(USER))
    assert record.record_id == record_id and record.purpose == TRAINING
    assert manager.inventory.decrypt(record_id) == b"rows"


def test_data_minimisation_refuses_undeclared_fields(manager: GdprComplianceManager) -> None:
    manager.record_consent(USER, [TRAINING], "v1.0")

    with pytest.raises(ComplianceError, match=r"Data minimisation: fields \['ssn'\]"):
        manager.add_user_data(USER, {"ssn": "000-00-0000"}, TRAINING, "contact_data")

    assert manager.inventory.records(manager.pseudonym(USER)) == []
    assert [e.action for e in manager.audit.entries()][-1] is AuditAction.DATA_REFUSED


def test_data_minimisation_names_only_the_extra_fields() -> None:
    manager = GdprComplianceManager(GdprConfig(data_schema={"contact_data": ("email", "phone")}))
    manager.record_consent(USER, [TRAINING], "v1.0")

    manager.add_user_data(USER, {"email": "a@b.c", "phone": "1"}, TRAINING, "contact_data")
    with pytest.raises(ComplianceError, match=r"fields \['address', 'name'\].*'contact_data'"):
        manager.add_user_data(
            USER, {"email": "a@b.c", "name": "N", "address": "A"}, TRAINING, "contact_data"
        )

    (record,) = manager.inventory.records(manager.pseudonym(USER))
    assert (record.format, record.fields) == ("json", ("email", "phone"))


def test_data_minimisation_off_or_unstructured_data_is_accepted() -> None:
    relaxed = GdprComplianceManager(GdprConfig(enable_data_minimization=False))
    relaxed.record_consent(USER, [TRAINING], "v1.0")
    strict = guide_manager()
    strict.record_consent(USER, [TRAINING], "v1.0")

    relaxed.add_user_data(USER, {"anything": 1}, TRAINING, "personal_data")
    strict.add_user_data(USER, b"raw bytes", TRAINING, "personal_data")
    strict.add_user_data(USER, "free text", TRAINING, "personal_data")

    assert len(relaxed.inventory.records(relaxed.pseudonym(USER))) == 1
    formats = [r.format for r in strict.inventory.records(strict.pseudonym(USER))]
    assert formats == ["bytes", "text"]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        3.5,
        [1, 2, 256],
        [1, -1],
        [True, False],
        [1.0, 2.0],
        {1: "int key"},
        {"x": float("nan")},
        {"x": object()},
        {"a", "b"},
    ],
    ids=lambda v: type(v).__name__,
)
def test_bad_data_types_raise_config_error(manager: GdprComplianceManager, bad: object) -> None:
    manager.record_consent(USER, [TRAINING], "v1.0")

    with pytest.raises(ConfigError, match="data must be bytes, a list of byte values"):
        manager.add_user_data(USER, bad, TRAINING, "personal_data")  # type: ignore[arg-type]

    assert manager.inventory.records(manager.pseudonym(USER)) == []


# -- encryption at rest and erasure of the stored copy --------------------------------


async def test_records_are_encrypted_on_disk_and_shredded_on_erasure(
    file_manager: GdprComplianceManager, db_path: Path
) -> None:
    # Prepare
    user = "jane.roe@example.org"
    file_manager.record_consent(user, [TRAINING], "v1.0")
    record_id = file_manager.add_user_data(user, SENTINEL, TRAINING, "special_category")
    subject = file_manager.pseudonym(user)
    file_manager.workspace.scrub()
    on_disk = raw_files(db_path)
    assert file_manager.inventory.decrypt(record_id) == SENTINEL

    # Execute
    await file_manager.delete_user_data(user)

    # Assert
    assert SENTINEL not in on_disk
    assert user.encode() not in on_disk and b"jane.roe" not in on_disk
    assert subject.encode() in on_disk  # the pseudonym is what the tables hold
    with pytest.raises(ComplianceError, match="crypto-shredded"):
        file_manager.inventory.decrypt(record_id)
    assert file_manager.inventory.residue(user, subject) == {
        "records": 0,
        "vault_records": 0,
        "live_keys": 0,
        "locations": 0,
    }
    after = raw_files(db_path)
    assert SENTINEL not in after and user.encode() not in after


async def test_subject_can_return_after_erasure_as_a_new_generation(
    manager: GdprComplianceManager,
) -> None:
    manager.record_consent(USER, [TRAINING], "v1.0")
    old_id = manager.add_user_data(USER, b"before", TRAINING, "training_data")
    await manager.delete_user_data(USER)

    manager.record_consent(USER, [TRAINING], "v1.1")
    new_id = manager.add_user_data(USER, b"after", TRAINING, "training_data")
    export = manager.export_user_data(USER)

    assert [item["record_id"] for item in export.user_data] == [new_id]
    assert base64.b64decode(export.user_data[0]["data"]) == b"after"
    assert export.purposes == [TRAINING]
    with manager.workspace.reading() as conn:
        (generation,) = conn.execute(
            "SELECT generation FROM gdpr_subjects WHERE subject = ?", (manager.pseudonym(USER),)
        ).fetchone()
    assert generation == 2
    with pytest.raises(ComplianceError, match="crypto-shredded"):
        manager.inventory.decrypt(old_id)  # the old key stays shredded
    residue = manager.inventory.residue(USER, manager.pseudonym(USER))
    assert residue == {"records": 1, "vault_records": 1, "live_keys": 1, "locations": 0}


async def test_erasure_forgets_node_listings_and_is_audited(
    manager: GdprComplianceManager,
) -> None:
    manager.note_node_subjects("node_9", [USER, USER, "other"])
    assert manager.inventory.locations(manager.pseudonym(USER)) == {"node_9": 2}

    deletion = await manager.delete_user_data(USER, [])

    assert deletion.deleted_from_nodes == ("node_9",)
    assert deletion.rows_removed == {"node_9": 2}
    assert manager.inventory.locations(manager.pseudonym(USER)) == {}
    assert manager.inventory.locations(manager.pseudonym("other")) == {"node_9": 1}
    actions = [e.action for e in manager.audit.entries()]
    assert actions[-2:] == [AuditAction.ERASURE_REQUESTED, AuditAction.ERASURE_COMPLETED]


async def test_right_to_be_forgotten_off_refuses_erasure() -> None:
    manager = GdprComplianceManager(GdprConfig(enable_right_to_be_forgotten=False))
    manager.record_consent(USER, [TRAINING], "v1.0")

    with pytest.raises(ComplianceError, match="right to be forgotten is off"):
        await manager.delete_user_data(USER)

    assert manager.has_consent(USER, TRAINING)
    assert manager.deletion_requests() == []


# -- retention -----------------------------------------------------------------------


def test_retention_purges_only_data_older_than_the_period(clock: FakeClock) -> None:
    # Prepare
    manager = guide_manager(clock=clock)
    manager.record_consent(USER, [TRAINING], "v1.0")
    old_id = manager.add_user_data(USER, b"old", TRAINING, "training_data")
    clock.advance(days=200)
    young_id = manager.add_user_data(USER, b"young", TRAINING, "training_data")
    clock.advance(days=166)  # the old record is 366 days old, the young one 166

    # Execute
    report = manager.enforce_retention()

    # Assert
    assert report.records_purged == 1 and report.total == 1
    assert report.node_rows_purged == {}
    assert report.cutoff == clock.now - timedelta(days=365)
    ids = [item["record_id"] for item in manager.export_user_data(USER).user_data]
    assert ids == [young_id]
    with pytest.raises(ComplianceError, match="crypto-shredded"):
        manager.inventory.decrypt(old_id)
    (purge,) = [e for e in manager.audit.entries() if e.action is AuditAction.RETENTION_PURGE]
    assert purge.details == {"records": 1, "rows": 0, "listings": 0}
    assert purge.time == clock.now
    assert manager.has_consent(USER, TRAINING)  # retention is not withdrawal


def test_retention_keeps_data_younger_than_the_cutoff(clock: FakeClock) -> None:
    manager = guide_manager(clock=clock)
    manager.record_consent(USER, [TRAINING], "v1.0")
    manager.add_user_data(USER, b"young", TRAINING, "training_data")
    clock.advance(days=364)

    report = manager.enforce_retention()

    assert report.records_purged == 0
    assert len(manager.export_user_data(USER).user_data) == 1
    assert AuditAction.RETENTION_PURGE not in [e.action for e in manager.audit.entries()]


def test_retention_forgets_old_node_listings(clock: FakeClock) -> None:
    manager = guide_manager(clock=clock)
    manager.note_node_subjects("node_1", [USER])
    clock.advance(days=366)

    manager.enforce_retention()

    assert manager.inventory.locations(manager.pseudonym(USER)) == {}


# -- erasure requests and deadlines --------------------------------------------------


def partial_record(subject: str, received: datetime, *, days: int = 30) -> DeletionRecord:
    return DeletionRecord(
        request_id="erasure-test-0001",
        subject=subject,
        received_at=received,
        deadline=ErasureBook.deadline(received, days),
        status="partial",
        deleted_from_nodes=("node_1",),
        pending_nodes=("node_2",),
        rows_removed={"node_1": 4},
        records_removed=1,
        key_shredded=True,
        unlearning=(
            ModelUnlearning("m", 2, 1, 5, 4, None, 0.25, membership_before=0.9),
            ModelUnlearning("n", 1, 0, 3, 2, "privacy budget"),
        ),
    )


def test_deletion_record_round_trips_through_json() -> None:
    record = partial_record("subj-x", START)
    done = DeletionRecord.from_dict(
        {**record.to_dict(), "status": "completed", "completed_at": START.isoformat()}
    )

    again = DeletionRecord.from_dict(json.loads(json.dumps(record.to_dict())))

    assert again == record
    assert not again.is_complete and done.is_complete
    assert done.completed_at == START
    assert json.loads(json.dumps(done.to_dict())) == done.to_dict()


@settings(max_examples=40, deadline=None)
@given(
    received=st.datetimes(max_value=LATEST, timezones=st.just(UTC)),
    days=st.integers(1, 30),
    rows=st.dictionaries(st.text(min_size=1, max_size=6), st.integers(0, 10**6), max_size=4),
    score=st.none() | st.floats(0.0, 1.0),
    pending=st.lists(st.text(min_size=1, max_size=6), max_size=3).map(tuple),
)
def test_every_deletion_record_round_trips(
    received: datetime,
    days: int,
    rows: dict[str, int],
    score: float | None,
    pending: tuple[str, ...],
) -> None:
    record = DeletionRecord(
        "erasure-1",
        "subj-1",
        received,
        received + timedelta(days=days),
        "partial" if pending else "completed",
        ("a",),
        pending,
        rows,
        0,
        False,
        (ModelUnlearning("m", 1, 0, 1, 1, membership_after=score),),
        None if pending else received,
    )

    assert DeletionRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_erasure_book_lists_pending_and_overdue(clock: FakeClock) -> None:
    # Prepare
    manager = guide_manager(clock=clock)
    subject = manager.pseudonym(USER)
    manager.erasures.save(partial_record(subject, clock.now))

    # Execute, Assert
    clock.advance(days=29)
    assert manager.overdue_requests() == []
    assert [r.request_id for r in manager.deletion_requests(pending_only=True)] == [
        "erasure-test-0001"
    ]
    clock.advance(days=2)
    (overdue,) = manager.overdue_requests()
    assert overdue == partial_record(subject, START)
    assert manager.erasures.overdue(START) == []
    assert manager.erasures.overdue(START + timedelta(days=30, seconds=1)) == [overdue]
    activity = manager.records_of_processing().to_dict()["activity"]
    assert (activity["erasures_pending"], activity["erasures_overdue"]) == (1, 1)


def test_completed_requests_are_never_overdue(clock: FakeClock) -> None:
    manager = guide_manager(clock=clock)
    record = partial_record("subj-x", START)
    done = DeletionRecord.from_dict(
        {**record.to_dict(), "status": "completed", "pending_nodes": [], "completed_at": None}
    )
    manager.erasures.save(record)
    manager.erasures.save(done)  # same request id: updated in place

    clock.advance(days=90)

    assert manager.overdue_requests() == []
    assert [r.status for r in manager.deletion_requests()] == ["completed"]


async def test_pending_request_blocks_training_until_retried(clock: FakeClock) -> None:
    workspace = Workspace()
    kek = KeyEncryptionKey.ephemeral()
    first = GdprComplianceManager(workspace=workspace, kek=kek, clock=clock)
    first.record_consent(USER, [TRAINING], "v1.0")
    first.erasures.save(partial_record(first.pseudonym(USER), clock.now))

    again = GdprComplianceManager(workspace=workspace, kek=kek, clock=clock)
    assert not again.may_train_on(again.pseudonym(USER))

    updated = await again.retry_deletion(USER)

    assert updated.status == "completed" and updated.pending_nodes == ()
    assert updated.deleted_from_nodes == ("node_1", "node_2")
    assert updated.completed_at == clock.now
    assert again.may_train_on(again.pseudonym(USER))
    with pytest.raises(ComplianceError, match="no erasure pending"):
        await again.retry_deletion(USER)


# -- membership inference score ------------------------------------------------------


def test_membership_score_is_half_for_identical_distributions() -> None:
    losses = np.arange(101.0)  # mean 50.0 exactly: one tie, 50 above, 50 below

    assert membership_score(losses, losses) == 0.5
    rng = np.random.default_rng(0)
    assert membership_score(rng.normal(size=500), rng.normal(size=5000)) == pytest.approx(
        0.5, abs=0.06
    )


def test_membership_score_extremes_and_ties() -> None:
    assert membership_score([0.01, 0.02], [0.5, 0.7, 0.9]) == 1.0
    assert membership_score([5.0], [0.5, 0.7, 0.9]) == 0.0
    assert membership_score([1.0], [1.0, 1.0]) == 0.5
    assert membership_score([1.0], [1.0, 2.0]) == 0.75
    assert membership_score([[0.5, 1.5]], [[1.0], [2.0]]) == 0.75  # mean 1.0, ravelled


@pytest.mark.parametrize(("members", "reference"), [([], [1.0]), ([1.0], []), ([], [])])
def test_membership_score_is_none_for_empty_input(
    members: list[float], reference: list[float]
) -> None:
    assert membership_score(members, reference) is None


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(finite, min_size=1, max_size=20),
    st.lists(finite, min_size=1, max_size=20),
    st.floats(0.0, 1e3),
)
def test_membership_score_is_a_probability_that_grows_as_losses_fall(
    members: list[float], reference: list[float], shift: float
) -> None:
    score = membership_score(members, reference)
    lower = membership_score(np.asarray(members) - shift, reference)

    assert score is not None and lower is not None
    assert 0.0 <= score <= 1.0
    assert lower >= score


# -- records of processing (Art. 30) -------------------------------------------------


async def test_records_of_processing_reflect_activity(manager: GdprComplianceManager) -> None:
    manager.record_consent("a", [TRAINING, "data_analytics"], "v1.0")
    manager.record_consent("b", [TRAINING], "v1.0")
    manager.add_user_data("a", b"x", TRAINING, DataCategory.TRAINING_DATA)
    manager.add_user_data("b", "t", TRAINING, DataCategory.PERSONAL_DATA)
    manager.withdraw_consent("a", ["data_analytics"])
    with pytest.raises(ComplianceError):
        manager.add_user_data("b", b"y", "marketing", DataCategory.CONTACT_DATA)
    manager.export_user_data("b")
    await manager.delete_user_data("b")

    records = manager.records_of_processing()
    sections = records.to_dict()

    for key in (
        "controller",
        "purposes",
        "categories_of_personal_data",
        "retention",
        "security_measures",
        "activity",
    ):
        assert key in sections
    assert sections["controller"] == "heliosfl federation"
    assert sections["purposes"] == ["data_analytics", TRAINING]
    assert sections["categories_of_personal_data"] == ["training_data"]
    assert "365 days" in sections["retention"]
    assert any("AES-256-GCM" in m for m in sections["security_measures"])
    assert sections["activity"] == {
        "subjects_in_inventory": 1,
        "consents_granted": 2,
        "consents_withdrawn": 2,  # a's own withdrawal and b's by erasure
        "subjects_consenting_now": 1,
        "erasure_requests": 1,
        "erasures_pending": 0,
        "erasures_overdue": 0,
        "exports": 1,
        "retention_purges": 0,
        "data_refused": 1,
    }
    assert "Art. 30" in records.to_text() and str(records) == records.to_text()
    assert json.loads(json.dumps(sections)) == sections


def test_records_of_processing_of_a_fresh_manager(manager: GdprComplianceManager) -> None:
    sections = manager.records_of_processing().to_dict()

    assert sections["purposes"] == [TRAINING]
    assert sections["categories_of_personal_data"] == []
    assert all(v == 0 for v in sections["activity"].values())


# -- audit trail ---------------------------------------------------------------------


async def test_every_act_is_audited_without_the_subject_id() -> None:
    # Prepare
    user = "SENTINEL-SUBJECT-98765"
    manager = guide_manager()

    # Execute
    manager.register_consent_text("v1.0", "Consent wording")
    manager.record_consent(user, [TRAINING], "v1.0")
    manager.add_user_data(user, b"payload", TRAINING, "training_data")
    with pytest.raises(ComplianceError):
        manager.add_user_data(user, b"payload", "marketing", "training_data")
    manager.export_user_data(user)
    manager.withdraw_consent(user)
    await manager.delete_user_data(user, ["node_1"])

    # Assert
    entries = manager.audit.entries()
    assert [e.action for e in entries] == [
        AuditAction.CONFIG_CHANGE,  # the consent text was registered
        AuditAction.CONSENT_RECORDED,
        AuditAction.DATA_ADDED,
        AuditAction.DATA_REFUSED,
        AuditAction.DATA_EXPORT,
        AuditAction.CONSENT_WITHDRAWN,
        AuditAction.ERASURE_REQUESTED,
        AuditAction.ERASURE_COMPLETED,
    ]
    assert [e.seq for e in entries] == list(range(len(entries)))
    assert manager.audit.verify().ok
    assert repr(manager.audit) == "AuditLog(log_id='gdpr', checkpoint=MemoryCheckpoint)"
    subject = manager.pseudonym(user)
    assert entries[0].resource == "consent-text:v1.0"
    for entry in entries:
        text = json.dumps(entry.to_dict())
        assert "98765" not in text and "SENTINEL" not in text
    for entry in entries[1:]:
        assert entry.resource == subject
        assert entry.user_id == "system"
    with manager.workspace.reading() as conn:
        dump = "\n".join(conn.iterdump())
    assert "98765" not in dump


# -- explanations --------------------------------------------------------------------


def test_explanations_need_an_attached_engine(manager: GdprComplianceManager) -> None:
    with pytest.raises(ComplianceError, match="attach_gdpr"):
        manager.explain_prediction("m", [0.0, 1.0])
    with pytest.raises(ComplianceError, match="attach_gdpr"):
        manager.feature_importance("m", [[0.0, 1.0]], [0])
    assert manager.audit.entries() == []


def test_explanations_off_refuse() -> None:
    manager = GdprComplianceManager(GdprConfig(enable_explainability=False))

    with pytest.raises(ComplianceError, match="Explainability is off"):
        manager.explain_prediction("m", [0.0, 1.0])
    with pytest.raises(ComplianceError, match="Explainability is off"):
        manager.feature_importance("m", [[0.0, 1.0]], [0])


# -- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [123, None, b"user123", "", "user\n123"])
async def test_malformed_user_id_refused_everywhere(
    manager: GdprComplianceManager, bad: Any
) -> None:
    calls = [
        lambda: manager.record_consent(bad, [TRAINING], "v1.0"),
        lambda: manager.withdraw_consent(bad),
        lambda: manager.has_consent(bad, TRAINING),
        lambda: manager.consent_history(bad),
        lambda: manager.add_user_data(bad, b"x", TRAINING, "training_data"),
        lambda: manager.export_user_data(bad),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match="user_id must be a printable str") as info:
            call()
        assert "123" not in str(info.value)
    for coroutine in (manager.delete_user_data, manager.verify_deletion, manager.retry_deletion):
        with pytest.raises(ConfigError, match="user_id"):
            await coroutine(bad)
    assert manager.audit.entries() == []


@pytest.mark.parametrize(
    "purposes", [TRAINING, [], [""], ["x" * 101], [TRAINING, 3], None], ids=repr
)
def test_malformed_purposes_refused(manager: GdprComplianceManager, purposes: object) -> None:
    with pytest.raises(ConfigError, match="purposes must be a non-empty list of purpose names"):
        manager.record_consent(USER, purposes, "v1.0")  # type: ignore[arg-type]
    assert manager.consent_history(USER) == []


@pytest.mark.parametrize("version", ["", None, "v1\n", "x" * 101])
def test_malformed_version_refused(manager: GdprComplianceManager, version: object) -> None:
    with pytest.raises(ConfigError, match="version must be a consent text version label"):
        manager.record_consent(USER, [TRAINING], version)  # type: ignore[arg-type]


def test_unknown_category_or_bad_purpose_refused(manager: GdprComplianceManager) -> None:
    manager.record_consent(USER, [TRAINING], "v1.0")

    with pytest.raises(ConfigError, match="category must be a DataCategory") as info:
        manager.add_user_data(USER, b"x", TRAINING, "health_data")
    assert info.value.value == "health_data"
    with pytest.raises(ConfigError, match="purpose must be a purpose name"):
        manager.add_user_data(USER, b"x", "", "training_data")
    assert manager.inventory.records(manager.pseudonym(USER)) == []


async def test_node_ids_as_a_string_refused(manager: GdprComplianceManager) -> None:
    manager.record_consent(USER, [TRAINING], "v1.0")

    with pytest.raises(ConfigError, match="node_ids must be a list of node ids"):
        await manager.delete_user_data(USER, "node_1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="node_ids"):
        await manager.delete_user_data(USER, ["node_1", 2])  # type: ignore[list-item]

    assert manager.deletion_requests() == []
    assert manager.has_consent(USER, TRAINING)


def test_config_must_be_a_gdpr_config() -> None:
    with pytest.raises(ConfigError, match="config must be a GdprConfig"):
        GdprComplianceManager({"retention_period_days": 30})  # type: ignore[arg-type]
