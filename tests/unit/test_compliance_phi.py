"""Unit tests for heliosfl.compliance.phi: Safe Harbor identifiers found by patterns."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest

import heliosfl.compliance.phi as phi
from heliosfl.compliance.phi import (
    LIMITATIONS,
    RESTRICTED_ZIP3,
    PhiFinding,
    PhiKind,
    detect_phi_table,
    detect_phi_text,
    safe_zip3,
    scan_node_data,
)
from heliosfl.data import NodeData
from heliosfl.errors import ConfigError

SENTINEL_SSN = "219-09-9999"


def kinds(text: str) -> list[PhiKind]:
    return [f.kind for f in detect_phi_text(text)]


# -- free text: positives and negatives per kind --------------------------------------------

POSITIVES = [
    ("SSN 123-45-6789 on file", PhiKind.SSN),
    ("ssn 123 45 6789", PhiKind.SSN),
    ("Social security number: 123456789", PhiKind.SSN),
    ("Call 555-123-4567 after 5", PhiKind.PHONE),
    ("tel (212) 555-0199", PhiKind.PHONE),
    ("mobile +1 212.555.0199", PhiKind.PHONE),
    ("fax: (555) 123-4567", PhiKind.FAX),
    ("Fax number 212-555-0100", PhiKind.FAX),
    ("write to jane.roe+lab@example.org today", PhiKind.EMAIL),
    ("portal https://mychart.example.org/p?id=77.", PhiKind.URL),
    ("see www.example.com", PhiKind.URL),
    ("login from 192.168.10.200", PhiKind.IP_ADDRESS),
    ("login from 2001:db8::8a2e:370:7334", PhiKind.IP_ADDRESS),
    ("Patient: John Doe, MRN: 12345", PhiKind.MRN),
    ("medical record number 00884422", PhiKind.MRN),
    ("DOB 03/14/1950", PhiKind.DATE),
    ("admitted 2021-02-03T10:00", PhiKind.DATE),
    ("seen on 14.03.21", PhiKind.DATE),
    ("born March 3, 1950", PhiKind.DATE),
    ("born 3rd of March 1950", PhiKind.DATE),
    ("discharged in March 2021", PhiKind.DATE),
    ("Boston, MA 02115", PhiKind.ZIP_CODE),
    ("zip code 12345-6789", PhiKind.ZIP_CODE),
    ("ZIP: 90210", PhiKind.ZIP_CODE),
    ("age 92", PhiKind.AGE_OVER_89),
    ("a 92-year-old woman", PhiKind.AGE_OVER_89),
    ("92 y/o male", PhiKind.AGE_OVER_89),
    ("aged 101", PhiKind.AGE_OVER_89),
    ("card 4111 1111 1111 1111", PhiKind.ACCOUNT_NUMBER),
    ("account number: AC-99812", PhiKind.ACCOUNT_NUMBER),
    ("Driver's license D1234567", PhiKind.LICENSE_NUMBER),
    ("DEA number AB1234563", PhiKind.LICENSE_NUMBER),
    ("member id W123456789", PhiKind.HEALTH_PLAN_NUMBER),
    ("VIN 1HGCM82633A004352", PhiKind.VEHICLE_ID),
    ("pacemaker serial number SN-88123", PhiKind.DEVICE_ID),
]

NEGATIVES = [
    "000-12-3456",  # SSN area 000
    "666-12-3456",  # SSN area 666
    "912-34-5678",  # SSN area 9xx
    "123-00-4567",  # SSN group 00
    "123-45-0000",  # SSN serial 0000
    "a 9-digit number 123456789 without context",
    "call 123-555-0199",  # NANP area codes never start with 0 or 1
    "user@localhost",
    "host 256.1.1.1",
    "at 12:30:45",
    "born in 1950",  # Safe Harbor allows the year
    "13/13/2020",
    "I have 12345 apples",  # 5 digits without ZIP context
    "age 45",
    "a 45-year-old",
    "card 4111 1111 1111 1112",  # fails Luhn
    "version 1.2.3",
    "lab plate 384-well",
    "the account is overdue",
]


@pytest.mark.parametrize(("text", "kind"), POSITIVES, ids=[p[0] for p in POSITIVES])
def test_identifier_is_found(text: str, kind: PhiKind) -> None:
    assert kind in kinds(text)


@pytest.mark.parametrize("text", NEGATIVES)
def test_lookalike_is_not_reported(text: str) -> None:
    assert detect_phi_text(text) == []


def test_fax_is_told_apart_from_phone() -> None:
    found = detect_phi_text("Phone (555) 123-4567, fax 555.123.4568")
    assert [f.kind for f in found] == [PhiKind.PHONE, PhiKind.FAX]


def test_mrn_is_found_but_the_name_is_not() -> None:
    # Patterns cannot find names: "John Doe" is missed, which LIMITATIONS says.
    found = detect_phi_text("Patient: John Doe, MRN: 12345")
    assert [(f.kind, f.location) for f in found] == [(PhiKind.MRN, "text[24:29]")]
    assert PhiKind.NAME not in {f.kind for f in found}
    assert any("Names" in line for line in LIMITATIONS)


def test_location_points_at_the_value() -> None:
    text = "Reach me at 555-123-4567."
    (finding,) = detect_phi_text(text)
    start, end = (int(v) for v in finding.location[5:-1].split(":"))
    assert text[start:end] == "555-123-4567"


def test_findings_come_in_text_order_without_overlaps() -> None:
    text = "MRN: 12345, DOB 01/02/1960, ssn 123-45-6789, jane@example.org"
    found = detect_phi_text(text)
    assert [f.kind for f in found] == [PhiKind.MRN, PhiKind.DATE, PhiKind.SSN, PhiKind.EMAIL]
    spans = [tuple(int(v) for v in f.location[5:-1].split(":")) for f in found]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_evidence_never_contains_the_raw_value() -> None:
    text = (
        f"SSN {SENTINEL_SSN}; SSN: 219099999; call 555-867-5309; jane.sentinel@example.org; "
        "MRN: 8675309; DOB 07/04/1931; https://sentinel.example.org; 10.20.30.40; "
        "Boston, MA 02115-8675; age 97; card 4111-1111-1111-1111; VIN 1HGCM82633A004352"
    )
    found = detect_phi_text(text)
    assert len(found) == 12
    evidence = " ".join(f.evidence for f in found)
    for raw in (SENTINEL_SSN, "9999", "219", "8675", "5309", "sentinel", "1931", "07/04",
                "10.20", "02115", "97", "4111", "1HGCM"):  # fmt: skip
        assert raw not in evidence
    assert "021**-****" in evidence  # the ZIP3 Safe Harbor permits is all that is shown


def test_finding_is_a_frozen_value() -> None:
    finding = detect_phi_text(SENTINEL_SSN)[0]
    assert finding == PhiFinding(PhiKind.SSN, "text[0:11]", "***-**-****", finding.confidence)
    assert 0.0 < finding.confidence <= 1.0
    with pytest.raises(AttributeError):
        finding.evidence = SENTINEL_SSN  # type: ignore[misc]


def test_text_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match="text must be a str"):
        detect_phi_text(b"123-45-6789")  # type: ignore[arg-type]


# -- ZIP-3 ----------------------------------------------------------------------------------


def test_restricted_zip3_list_is_the_seventeen_prefixes() -> None:
    assert len(RESTRICTED_ZIP3) == 17
    assert {"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831",
            "878", "879", "884", "890", "893"} == RESTRICTED_ZIP3  # fmt: skip


@pytest.mark.parametrize("prefix", sorted(RESTRICTED_ZIP3))
def test_restricted_prefixes_become_000(prefix: str) -> None:
    assert safe_zip3(prefix + "01") == "000"
    assert safe_zip3(prefix) == "000"


@pytest.mark.parametrize(("zip_code", "kept"), [("02115", "021"), ("90210-1234", "902")])
def test_other_prefixes_are_kept(zip_code: str, kept: str) -> None:
    assert safe_zip3(zip_code) == kept


def test_full_zip_in_a_restricted_area_is_phi_and_masked_to_000() -> None:
    (finding,) = detect_phi_text("ZIP 03601")
    assert finding.kind is PhiKind.ZIP_CODE and finding.evidence == "000**"


@pytest.mark.parametrize("bad", ["1234", "ABCDE", "123456", 2115])
def test_safe_zip3_refuses_non_zip_codes(bad: object) -> None:
    with pytest.raises(ConfigError, match="zip_code"):
        safe_zip3(bad)  # type: ignore[arg-type]


# -- Presidio (optional) --------------------------------------------------------------------


@pytest.fixture
def fresh_presidio() -> Iterator[None]:
    phi._presidio_analyzer.cache_clear()
    yield
    phi._presidio_analyzer.cache_clear()


def test_presidio_missing_raises_a_config_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, fresh_presidio: None
) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # import now fails
    with pytest.raises(ConfigError, match="pip install presidio-analyzer") as info:
        detect_phi_text("Patient: John Doe", use_presidio=True)
    assert info.value.field == "use_presidio"


def test_presidio_is_not_needed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    assert kinds("MRN: 12345") == [PhiKind.MRN]


def test_presidio_adds_names_when_installed(
    monkeypatch: pytest.MonkeyPatch, fresh_presidio: None
) -> None:
    class Engine:
        def analyze(self, *, text: str, language: str) -> list[SimpleNamespace]:
            start = text.index("John Doe")
            person = SimpleNamespace(entity_type="PERSON", start=start, end=start + 8, score=0.85)
            other = SimpleNamespace(entity_type="NRP", start=0, end=7, score=0.9)
            return [person, other]

    monkeypatch.setitem(sys.modules, "presidio_analyzer", SimpleNamespace(AnalyzerEngine=Engine))
    found = detect_phi_text("Patient: John Doe, MRN: 12345", use_presidio=True)
    assert [(f.kind, f.location, f.evidence) for f in found] == [
        (PhiKind.NAME, "text[9:17]", "<name>"),
        (PhiKind.MRN, "text[24:29]", "*****"),
    ]


# -- tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("ssn", PhiKind.SSN),
        ("social_security_number", PhiKind.SSN),
        ("MRN", PhiKind.MRN),
        ("emailAddress", PhiKind.EMAIL),
        ("home_phone", PhiKind.PHONE),
        ("fax", PhiKind.FAX),
        ("DOB", PhiKind.DATE),
        ("date_of_birth", PhiKind.DATE),
        ("admission_date", PhiKind.DATE),
        ("zip", PhiKind.ZIP_CODE),
        ("PostalCode", PhiKind.ZIP_CODE),
        ("street_address", PhiKind.ADDRESS),
        ("city", PhiKind.ADDRESS),
        ("name", PhiKind.NAME),
        ("first_name", PhiKind.NAME),
        ("patientName", PhiKind.NAME),
        ("surname", PhiKind.NAME),
        ("ip", PhiKind.IP_ADDRESS),
        ("ip_address", PhiKind.IP_ADDRESS),
        ("account_number", PhiKind.ACCOUNT_NUMBER),
        ("drivers_license", PhiKind.LICENSE_NUMBER),
        ("member_id", PhiKind.HEALTH_PLAN_NUMBER),
        ("vin", PhiKind.VEHICLE_ID),
        ("device_serial", PhiKind.DEVICE_ID),
        ("photo", PhiKind.PHOTO),
        ("fingerprint", PhiKind.BIOMETRIC),
    ],
)
def test_column_names_signal_identifiers(column: str, kind: PhiKind) -> None:
    (finding,) = detect_phi_table([column])
    assert finding.kind is kind
    assert finding.location == f"column {column!r}"


@pytest.mark.parametrize(
    "column",
    ["age", "drug_name", "account_type", "cell_count", "glucose", "update_count", "diagnosis"],
)
def test_ordinary_column_names_are_not_findings(column: str) -> None:
    assert detect_phi_table([column]) == []


def test_cell_values_are_scanned_and_grouped_per_column() -> None:
    columns = ["id", "notes", "age"]
    rows = [
        [1, "stable", 40],
        [2, f"SSN {SENTINEL_SSN} on file", 95],
        [3, "call 555-123-4567", 50],
        [4, "SSN 123-45-6789", np.int64(91)],
    ]
    found = {(f.kind, f.location): f for f in detect_phi_table(columns, rows)}
    ssn = found[(PhiKind.SSN, "column 'notes' row 1")]
    assert "in 2 of 4 sampled rows" in ssn.evidence
    assert SENTINEL_SSN not in ssn.evidence
    assert (PhiKind.PHONE, "column 'notes' row 2") in found
    assert "in 2 of 4" in found[(PhiKind.AGE_OVER_89, "column 'age' row 1")].evidence


def test_only_sample_rows_are_scanned() -> None:
    rows = [["ok"]] * 5 + [["SSN 123-45-6789"]]
    assert detect_phi_table(["notes"], rows, sample_rows=5) == []
    assert len(detect_phi_table(["notes"], rows, sample_rows=6)) == 1


def test_table_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ConfigError, match="row 1 with 1 cells"):
        detect_phi_table(["a", "b"], [["x", "y"], ["z"]])


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_sample_rows_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ConfigError, match="sample_rows"):
        detect_phi_table(["a"], [], sample_rows=bad)  # type: ignore[arg-type]


# -- numeric node data ----------------------------------------------------------------------


def ssn_like(n: int, seed: int = 0) -> np.ndarray:
    """Nine-digit integers that are valid SSNs (area 100-899 but 666, group and serial > 0)."""
    rng = np.random.default_rng(seed)
    area = rng.integers(100, 899, size=n)
    area[area == 666] = 665
    group, serial = rng.integers(1, 99, size=n), rng.integers(1, 9999, size=n)
    return (area * 1_000_000 + group * 10_000 + serial).astype(float)


def test_numeric_ssn_like_column_is_found() -> None:
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=50), ssn_like(50)])
    (finding,) = scan_node_data(X)
    assert finding.kind is PhiKind.SSN and finding.location == "column 1"
    assert "9-digit" in finding.evidence
    assert str(int(X[0, 1])) not in finding.evidence


def test_numeric_zip_date_phone_and_age_columns_are_found() -> None:
    rng = np.random.default_rng(2)
    X = np.column_stack(
        [
            rng.integers(10_000, 99_999, 30),
            rng.integers(1, 12, 30) * 100 + 19_500_000 + rng.integers(1, 28, 30),
            rng.integers(2_000_000_000, 9_999_999_999, 30),
            np.r_[rng.integers(20, 80, 29), 93],
            rng.normal(size=30),
        ]
    ).astype(float)
    found = scan_node_data(X, feature_names=["f0", "f1", "f2", "age", "glucose"])
    assert [(f.kind, f.location) for f in found] == [
        (PhiKind.ZIP_CODE, "column 'f0'"),
        (PhiKind.DATE, "column 'f1'"),
        (PhiKind.PHONE, "column 'f2'"),
        (PhiKind.AGE_OVER_89, "column 'age'"),
    ]


def test_feature_names_are_checked_and_declared_kinds_are_dropped() -> None:
    X = np.random.default_rng(3).normal(size=(10, 3))
    names = ["zip", "dob", "glucose"]
    assert {f.kind for f in scan_node_data(X, feature_names=names)} == {
        PhiKind.ZIP_CODE,
        PhiKind.DATE,
    }
    found = scan_node_data(X, feature_names=names, declared=[PhiKind.ZIP_CODE, "date"])
    assert found == []


def test_node_data_is_scanned_including_validation_rows() -> None:
    train = np.random.default_rng(4).normal(size=(5, 2))
    val = np.column_stack([np.zeros(3), ssn_like(3)])
    node = NodeData(np.column_stack([train[:, 0], ssn_like(5)]), np.zeros(5, int),
                    X_val=val, y_val=np.zeros(3, int))  # fmt: skip
    assert [f.kind for f in scan_node_data(node)] == [PhiKind.SSN]


def test_ordinary_numeric_features_are_clean() -> None:
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.normal(size=100), rng.integers(0, 5, 100), rng.uniform(0, 1e9, 100)])
    assert scan_node_data(X, feature_names=["bmi", "visits", "income"]) == []


@pytest.mark.parametrize(
    ("X", "kwargs", "field"),
    [
        (np.zeros(4), {}, "X"),
        ([["a", "b"]], {}, "X"),
        (np.zeros((2, 2)), {"feature_names": ["a"]}, "feature_names"),
        (np.zeros((2, 2)), {"declared": ["not-a-kind"]}, "declared"),
    ],
)
def test_scan_node_data_validates(X: object, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        scan_node_data(X, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
