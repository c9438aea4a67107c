"""Find the HIPAA Safe Harbor identifiers that patterns can find reliably.

Safe Harbor (45 CFR 164.514(b)(2)) lists 18 identifiers. Regular expressions with
validation and context words find these in free text and tables: SSNs, phone and fax
numbers, emails, URLs, IP addresses, MRN-like ids, dates (a bare year is allowed), ZIP codes
(with the ZIP-3 rule, :func:`safe_zip3`), ages over 89, account, licence, health-plan,
vehicle and device numbers. Column names also signal names, addresses, photos and biometrics.
Every :class:`PhiFinding` holds a *masked* excerpt, never the value itself.

Patterns cannot find everything; :data:`LIMITATIONS` says what they miss. For names and
places in free text install Microsoft Presidio (``pip install presidio-analyzer``, plus a
spaCy model) and pass ``use_presidio=True``; it is never required.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import numbers
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.data.nodedata import Described, NodeData
from heliosfl.errors import ConfigError

__all__ = [
    "LIMITATIONS",
    "RESTRICTED_ZIP3",
    "PhiFinding",
    "PhiKind",
    "detect_phi_table",
    "detect_phi_text",
    "safe_zip3",
    "scan_node_data",
]

LIMITATIONS: tuple[str, ...] = (
    "Names of patients, relatives, employers or household members in free text "
    "(only column names such as 'patient_name' are recognised).",
    "Street addresses, cities, counties and other geographic subdivisions smaller than a "
    "state, other than ZIP codes next to 'ZIP' or a state abbreviation.",
    "Full-face photographs and comparable images, and biometric identifiers (finger and "
    "voice prints), except through column names.",
    "Any other unique identifying number, characteristic or code without a context word "
    "('MRN', 'account', 'licence', 'member id', 'VIN', 'serial number', ...).",
    "Misspelt, split or unusually formatted identifiers, and dates written in words.",
    "Quasi-identifiers whose combination identifies a person (expert determination).",
)
"""What pattern matching cannot find reliably; Presidio (``use_presidio=True``) adds names
and locations in free text, with its own error rate."""

RESTRICTED_ZIP3 = frozenset(
    {"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878"}
    | {"879", "884", "890", "893"}
)
"""ZIP3 prefixes with 20,000 people or fewer (2000 Census), which Safe Harbor maps to 000."""


class PhiKind(StrEnum):
    """A Safe Harbor identifier category."""

    SSN = "ssn"
    PHONE = "phone"
    FAX = "fax"
    EMAIL = "email"
    URL = "url"
    IP_ADDRESS = "ip_address"
    MRN = "mrn"
    DATE = "date"
    ZIP_CODE = "zip_code"
    AGE_OVER_89 = "age_over_89"
    ACCOUNT_NUMBER = "account_number"
    LICENSE_NUMBER = "license_number"
    HEALTH_PLAN_NUMBER = "health_plan_number"
    VEHICLE_ID = "vehicle_id"
    DEVICE_ID = "device_id"
    NAME = "name"
    ADDRESS = "address"
    PHOTO = "photo"
    BIOMETRIC = "biometric"


@dataclass(frozen=True, slots=True)
class PhiFinding:
    """One suspected identifier.

    Attributes
    ----------
    kind : PhiKind
        The Safe Harbor category.
    location : str
        Where it is: ``"text[12:23]"``, ``"column 'ssn'"``, ``"column 'notes' row 3"``.
    evidence : str
        A masked excerpt (``"***-**-****"``, ``"<email>"``, ``"021**"``); never the value.
    confidence : float
        Rough probability in ``(0, 1]`` that the finding is real PHI.
    """

    kind: PhiKind
    location: str
    evidence: str
    confidence: float


def safe_zip3(zip_code: str) -> str:
    """Return the part of a ZIP code Safe Harbor lets a data set keep.

    Parameters
    ----------
    zip_code : str
        A 3-digit prefix, a 5-digit ZIP or a ZIP+4 (``"02115"``, ``"02115-1234"``).

    Returns
    -------
    str
        The first three digits, or ``"000"`` for the 17 restricted prefixes.

    Raises
    ------
    ConfigError
        If ``zip_code`` is not a ZIP code.

    Examples
    --------
    >>> safe_zip3("02115"), safe_zip3("03601")
    ('021', '000')
    """
    if not isinstance(zip_code, str) or not re.fullmatch(r"\d{3}|\d{5}(?:-?\d{4})?", zip_code):
        raise ConfigError("zip_code", Described("a value that is not a ZIP code"), "a ZIP code")
    return "000" if zip_code[:3] in RESTRICTED_ZIP3 else zip_code[:3]


# -- free text ------------------------------------------------------------------------------

_I = re.IGNORECASE
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV "
    "NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR VI GU AS MP"
).replace(" ", "|")
_NUM = r"(?:\s+(?:number|no\.?|num|\#))?"
_END = r"(?!\d|[/.-]\d)"
_CONTEXT_IDS = {
    PhiKind.MRN: rf"MRN|MR\#|medical\s+record{_NUM}|chart{_NUM}|patient\s+(?:id|identifier)",
    PhiKind.ACCOUNT_NUMBER: rf"(?:bank\s+|billing\s+)?(?:account|acct\.?){_NUM}|IBAN",
    PhiKind.LICENSE_NUMBER: rf"(?:driver'?s?\s+)?licen[cs]e{_NUM}|DEA{_NUM}|NPI|certificate{_NUM}",
    PhiKind.HEALTH_PLAN_NUMBER: r"(?:health\s+plan|insurance|policy|member|subscriber|"
    r"beneficiary|medicaid|medicare)\s+(?:id|identifier|number|no\.?|\#)",
    PhiKind.VEHICLE_ID: rf"VIN|vehicle\s+identification{_NUM}|licen[cs]e\s+plate{_NUM}"
    r"|plate\s+(?:number|no\.?|\#)",
    PhiKind.DEVICE_ID: r"UDI|S/N|(?:device|serial|implant)\s+(?:id|identifier|number|no\.?)",
}
_ID_VALUE = r"\s*(?:[:#=]|\bis\b)?\s*(?P<v>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,24})\b"


def _mask(raw: str) -> str:
    return re.sub(r"[A-Za-z0-9]", "*", raw)


def _ssn(m: re.Match[str]) -> str | None:
    digits = re.sub(r"\D", "", m["v"])
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    bad = area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000"
    return None if bad else _mask(m["v"])


def _date(m: re.Match[str]) -> str | None:
    if "m" in m.re.groupindex:  # numeric: month and day in either order
        a, b = int(m["m"]), int(m["d"])
        ok = (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)
        return _mask(m[0]) if ok else None
    day = m["day"] if "day" in m.re.groupindex else None
    return _mask(m[0]) if day is None or 1 <= int(day) <= 31 else None


def _shape(m: re.Match[str]) -> str:
    return _mask(m["v"] if "v" in m.re.groupindex else m[0])


def _age(m: re.Match[str]) -> str | None:
    return "<age 90 or older>" if 90 <= int(m["v"] or m["w"]) <= 130 else None


def _ip(m: re.Match[str]) -> str | None:
    try:
        address = ipaddress.ip_address(m[0])
    except ValueError:
        return None
    return f"<ipv{address.version} address>"


def _luhn(m: re.Match[str]) -> str | None:
    digits = [int(c) for c in re.sub(r"\D", "", m[0])][::-1]
    total = sum(d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits))
    return _mask(m[0]) if 13 <= len(digits) <= 19 and total % 10 == 0 else None


_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
# (kind, confidence, check of a match -> masked evidence or None to drop it, pattern)
_PATTERNS: tuple[tuple[PhiKind, float, Callable[[re.Match[str]], str | None], str], ...] = (
    (PhiKind.SSN, 0.9, _ssn, r"(?<![\w-])(?P<v>\d{3}([- ])\d\d\2\d{4})(?![\w-])"),
    (PhiKind.SSN, 0.85, _ssn, rf"(?i:\b(?:SSN|social\s+security{_NUM}))\W{{0,3}}(?P<v>\d{{9}})\b"),
    (PhiKind.PHONE, 0.85, _shape, r"(?<![\w+])(?:\+?1[-. ]?)?(?:\([2-9]\d\d\) ?|[2-9]\d\d[-. ])"
     r"\d{3}[-. ]\d{4}(?!\w|-\d)"),
    (PhiKind.EMAIL, 0.95, lambda m: "<email>",
     r"(?<![\w.%+-])[\w.%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b"),
    (PhiKind.URL, 0.9, lambda m: "<url>",
     r"(?i:\b(?:(?:https?|ftp)://|www\.))[^\s<>\"'()]*[^\s<>\"'().,;:!?]"),
    (PhiKind.IP_ADDRESS, 0.75, _ip, r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"),
    (PhiKind.IP_ADDRESS, 0.8, _ip,
     r"(?<![\w:.])(?=[\w:.]*:[\w:.]*:)[0-9A-Fa-f:.]*[0-9A-Fa-f](?![\w:])"),
    (PhiKind.DATE, 0.8, _date,
     rf"(?<![\w/.-])(?P<m>\d{{1,2}})(?P<s>[/.-])(?P<d>\d{{1,2}})(?P=s)(?:\d{{4}}|\d\d){_END}"),
    (PhiKind.DATE, 0.85, _date,
     rf"(?<![\w/.-])\d{{4}}([/.-])(?P<m>\d{{1,2}})\1(?P<d>\d{{1,2}}){_END}"),
    (PhiKind.DATE, 0.7, _date, rf"\b{_MONTH}\.? {_DAY}\b(?:,? \d{{4}}\b)?"),
    (PhiKind.DATE, 0.7, _date, rf"\b{_DAY} (?:of )?{_MONTH}\b\.?(?:,? \d{{4}}\b)?"),
    (PhiKind.DATE, 0.6, _date, rf"\b{_MONTH}\.?,? \d{{4}}\b"),
    (PhiKind.ZIP_CODE, 0.85, lambda m: safe_zip3(m["v"]) + _mask(m["v"][3:]),
     rf"(?:(?i:\bzip(?: ?code)?|\bpost(?:al )?code)\s*[:#]?\s*|\b(?:{_STATES}),? )"
     r"(?P<v>\d{5}(?:-\d{4})?)(?!\d|-\d)"),
    (PhiKind.AGE_OVER_89, 0.9, _age,
     r"(?i:\b(?P<v>\d{2,3})(?:[- ]?(?:years?|yrs?)[- ]old\b|[- ]?(?:y/o|y\.o\.|yo)(?!\w))"
     r"|\baged?s? *(?:of )?[:=]? *(?P<w>\d{2,3})\b)"),
    (PhiKind.ACCOUNT_NUMBER, 0.6, _luhn, r"(?<![\d-])\d(?:[ -]?\d){12,18}(?!\d|-\d)"),
    *((kind, 0.8, _shape, rf"(?i:\b(?:{ctx}){_ID_VALUE})") for kind, ctx in _CONTEXT_IDS.items()),
)  # fmt: skip
_RULES = [(kind, re.compile(pattern), conf, check) for kind, conf, check, pattern in _PATTERNS]


@functools.cache
def _presidio_analyzer() -> Any:
    try:  # OSError: presidio-analyzer is installed but its spaCy model is not
        return importlib.import_module("presidio_analyzer").AnalyzerEngine()
    except (ImportError, OSError) as error:
        hint = (
            "Install the optional extra with `pip install presidio-analyzer` and a spaCy "
            "model (`python -m spacy download en_core_web_lg`); loading it raised "
            f"{type(error).__name__}."
        )
        allowed = "False unless the optional Presidio extra is installed"
        raise ConfigError("use_presidio", True, allowed, hint) from None


def _spans(text: str, use_presidio: bool) -> Iterator[tuple[int, int, PhiKind, str, float]]:
    for kind, pattern, confidence, check in _RULES:
        for m in pattern.finditer(text):
            evidence = check(m)
            if evidence is not None:
                start, end = m.span("v") if "v" in pattern.groupindex and m["v"] else m.span()
                before = text[max(0, start - 24) : start]
                fax = kind is PhiKind.PHONE and re.search(r"\bfax\b[^\d\n]{0,16}$", before, _I)
                yield start, end, PhiKind.FAX if fax else kind, evidence, confidence
    if use_presidio:
        wanted = {"PERSON": (PhiKind.NAME, "<name>"), "LOCATION": (PhiKind.ADDRESS, "<location>")}
        for result in _presidio_analyzer().analyze(text=text, language="en"):
            if result.entity_type in wanted:
                kind, shown = wanted[result.entity_type]
                yield int(result.start), int(result.end), kind, shown, float(result.score)


def detect_phi_text(text: str, *, use_presidio: bool = False) -> list[PhiFinding]:
    """Find Safe Harbor identifiers in free text.

    Each pattern is validated (SSN area/group/serial, NANP area codes, IP octets, calendar
    month and day, Luhn for card numbers) and overlapping matches keep the most confident.
    A bare year is not reported: Safe Harbor allows it. See :data:`LIMITATIONS`.

    Parameters
    ----------
    text : str
        The text to scan.
    use_presidio : bool, default False
        Also run Microsoft Presidio's recognisers for person names and locations.

    Returns
    -------
    list of PhiFinding
        In order of position, each located as ``"text[start:end]"`` with masked evidence.

    Raises
    ------
    ConfigError
        If ``text`` is not a string, or ``use_presidio`` is true and ``presidio-analyzer``
        is not installed.

    Examples
    --------
    >>> [(f.kind.value, f.evidence) for f in detect_phi_text("Patient: John Doe, MRN: 12345")]
    [('mrn', '*****')]

    References
    ----------
    .. [1] U.S. HHS, "Guidance Regarding Methods for De-identification of Protected Health
       Information in Accordance with the HIPAA Privacy Rule", 2012, section 164.514(b)(2).
    """
    if not isinstance(text, str):
        raise ConfigError("text", Described(f"a {type(text).__name__}"), "a str")
    kept: list[tuple[int, int, PhiKind, str, float]] = []
    for span in sorted(_spans(text, use_presidio), key=lambda s: (-s[4], s[0] - s[1], s[0])):
        if all(span[1] <= k[0] or span[0] >= k[1] for k in kept):
            kept.append(span)
    return [PhiFinding(k, f"text[{a}:{b}]", e, c) for a, b, k, e, c in sorted(kept)]


# -- tables ---------------------------------------------------------------------------------

_N = r"(?:_?(?:number|no|num|nr|id))?"
_COLUMN_RULES = {  # first match wins, so "email_address" is an email, not an address
    PhiKind.DEVICE_ID: r"device_?(?:id|serial|number)|serial_?(?:number|no)|udi|imei|mac_?address",
    PhiKind.IP_ADDRESS: r"ip|ipv[46]|ip_?addr(?:ess)?",
    PhiKind.EMAIL: r"e_?mail(?:_?address)?",
    PhiKind.VEHICLE_ID: r"vin|vehicle_?(?:id|number)|licen[cs]e_?plate|plate_?(?:number|no)",
    PhiKind.SSN: rf"ssn|ss_?num(?:ber)?|social_?security{_N}",
    PhiKind.MRN: rf"mrn|medical_?record{_N}|chart{_N}|patient_?(?:id|number)",
    PhiKind.FAX: rf"fax{_N}",
    PhiKind.PHONE: rf"(?:tele)?phone{_N}|tel|mobile|cell_?phone|contact_?number",
    PhiKind.DATE: r"dob|dod|birth_?(?:date|day)|date_?of_?\w+|\w+_(?:date|dt)|date|timestamp",
    PhiKind.ZIP_CODE: r"zip(?:_?code)?|zip5|postal(?:_?code)?|post_?code",
    PhiKind.HEALTH_PLAN_NUMBER: rf"health_?plan{_N}|mbi|(?:member|subscriber|beneficiary"
    r"|insurance|policy|medicaid|medicare)_?(?:id|number|no)",
    PhiKind.ACCOUNT_NUMBER: r"(?:account|acct)_?(?:number|no|num|id)|bank_?account|iban"
    r"|card_?number|credit_?card|cc_?num(?:ber)?",
    PhiKind.LICENSE_NUMBER: rf"(?:drivers?_?)?licen[cs]e{_N}|dea{_N}|npi|certificate{_N}",
    PhiKind.URL: r"url|uri|web_?site|homepage",
    PhiKind.PHOTO: r"photo(?:graph)?|face_?image|headshot|portrait|picture|selfie",
    PhiKind.BIOMETRIC: r"finger_?print|(?:retina|iris)_?scan|voice_?print|biometric",
    PhiKind.NAME: r"(?:patient|first|last|full|given|family|middle|maiden|person|guardian"
    r"|mother|father|spouse|relative|emergency_?contact)_?name|surname|^name$",
    PhiKind.ADDRESS: r"(?:street_?|home_?|mailing_?)?address|addr|street|city|county|town"
    r"|latitude|longitude|lat|lon|lng|geo_?code|gps",
}
_COLUMN_PATTERNS = [(k, re.compile(rf"(?:^|_)(?:{p})(?:_|$)")) for k, p in _COLUMN_RULES.items()]
_AGE_COLUMN = re.compile(r"(?:^|_)(?:patient_)?age(?:_?(?:years|yrs|at_\w+))?$")


def _normalise(column: str) -> str:
    column = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", str(column))
    return re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")


def _name_findings(columns: Sequence[str]) -> list[PhiFinding]:
    findings = []
    for column in columns:
        name = _normalise(column)
        kind = next((k for k, pattern in _COLUMN_PATTERNS if pattern.search(name)), None)
        if kind is not None:
            evidence = f"the column name signals {kind.value.replace('_', ' ')}"
            findings.append(PhiFinding(kind, f"column {column!r}", evidence, 0.85))
    return findings


def detect_phi_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]] | None = None,
    *,
    sample_rows: int = 1000,
    use_presidio: bool = False,
) -> list[PhiFinding]:
    """Find identifiers in a table's column names and in its first ``sample_rows`` rows.

    Column names such as ``ssn``, ``mrn``, ``dob``, ``zip``, ``patient_name``, ``address``
    are findings on their own. String cells are scanned with :func:`detect_phi_text`; a
    numeric cell of 90 or more in an age column is an age over 89. Value findings are
    grouped per column and kind, located at the first row where they occur.

    Parameters
    ----------
    columns : sequence of str
        Column names.
    rows : iterable of sequences, optional
        Rows of cells, one cell per column; only names are checked when omitted.
    sample_rows : int, default 1000
        How many rows (from the start) to scan, ``>= 1``.
    use_presidio : bool, default False
        Passed to :func:`detect_phi_text`.

    Returns
    -------
    list of PhiFinding
        Column-name findings first, then value findings, each with masked evidence.

    Raises
    ------
    ConfigError
        If ``sample_rows < 1``, a row has the wrong number of cells, or Presidio is asked
        for and missing.
    """
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 1:
        raise ConfigError("sample_rows", sample_rows, "an int >= 1")
    columns = [str(c) for c in columns]
    findings = _name_findings(columns)
    ages = {j for j, c in enumerate(columns) if _AGE_COLUMN.search(_normalise(c))}
    first: dict[tuple[int, PhiKind], PhiFinding] = {}
    counts: dict[tuple[int, PhiKind], int] = {}
    scanned = 0
    for i, row in enumerate(rows or ()):
        if i >= sample_rows:
            break
        scanned += 1
        if len(row) != len(columns):
            shown = Described(f"row {i} with {len(row)} cells")
            raise ConfigError("rows", shown, f"rows of {len(columns)} cells, one per column")
        for j, cell in enumerate(row):
            hits: list[PhiFinding] = []
            if isinstance(cell, str):
                hits = detect_phi_text(cell, use_presidio=use_presidio)
            elif j in ages and isinstance(cell, numbers.Real) and 90 <= float(cell) <= 130:
                hits = [PhiFinding(PhiKind.AGE_OVER_89, "", "<age 90 or older>", 0.9)]
            for hit in hits:
                key = (j, hit.kind)
                counts[key] = counts.get(key, 0) + 1
                if key not in first:
                    first[key] = PhiFinding(hit.kind, f"column {columns[j]!r} row {i}",
                                            hit.evidence, hit.confidence)  # fmt: skip
    for key, hit in first.items():
        evidence = f"{hit.evidence} (in {counts[key]} of {scanned} sampled rows)"
        findings.append(PhiFinding(hit.kind, hit.location, evidence, hit.confidence))
    return findings


# -- numeric node data ----------------------------------------------------------------------


def _valid_ssns(v: npt.NDArray[np.int64]) -> bool:
    area, group, serial = v // 1_000_000, v // 10_000 % 100, v % 10_000
    return bool(((area != 666) & (group != 0) & (serial != 0)).all())


def _valid_yyyymmdd(v: npt.NDArray[np.int64]) -> bool:
    month, day = v // 100 % 100, v % 100
    return bool(((month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)).all())


# (kind, low, high, extra check, confidence, what the values look like)
_NUMERIC_IDS: tuple[tuple[PhiKind, int, int, Callable[[Any], bool], float, str], ...] = (
    (PhiKind.SSN, 100_000_000, 899_999_999, _valid_ssns, 0.5, "9-digit integers valid as SSNs"),
    (PhiKind.PHONE, 2_000_000_000, 9_999_999_999, lambda v: True, 0.4, "10-digit NANP numbers"),
    (PhiKind.DATE, 18_000_101, 21_991_231, _valid_yyyymmdd, 0.5, "YYYYMMDD dates"),
    (PhiKind.ZIP_CODE, 10_000, 99_999, lambda v: True, 0.3, "5-digit integers (ZIP codes?)"),
)


def _as_matrix(X: npt.ArrayLike) -> npt.NDArray[np.float64]:  # noqa: N803
    """``X`` as a 2-D float array; ragged, non-numeric or complex input is refused."""
    allowed = "a 2-D real numeric array"
    try:
        raw = np.asarray(X)
    except (TypeError, ValueError):
        raise ConfigError("X", Described("a ragged array"), allowed) from None
    if raw.dtype.kind == "c":
        raise ConfigError("X", Described("a complex array"), allowed)
    try:
        matrix = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError("X", Described("a non-numeric array"), allowed) from None
    if matrix.ndim != 2:
        raise ConfigError("X", Described(f"shape {matrix.shape}"), "a 2-D numeric array")
    return matrix


def _column_names(feature_names: object) -> list[str]:
    if isinstance(feature_names, str | bytes) or not isinstance(feature_names, Iterable):
        shown = Described(f"a {type(feature_names).__name__}")
        raise ConfigError("feature_names", shown, "a sequence of column names")
    return [str(n) for n in feature_names]


def scan_node_data(
    X: NodeData | npt.ArrayLike,  # noqa: N803 (the feature matrix, as everywhere)
    *,
    feature_names: Sequence[str] | None = None,
    declared: Collection[PhiKind | str] = (),
) -> list[PhiFinding]:
    """Find undeclared identifiers in a node's numeric features.

    Numbers carry PHI only through what a column *is*: its name (``feature_names``), or
    integer values shaped like identifiers: every value a 9-digit valid SSN, a 10-digit
    NANP phone number, a ``YYYYMMDD`` date or a 5-digit ZIP; an age column holding 90 or
    more. These are hints with low confidence, not proof.

    Parameters
    ----------
    X : NodeData or array_like of shape (n, d)
        The node (training and validation rows are scanned) or its feature matrix.
    feature_names : sequence of str, optional
        One name per column.
    declared : collection of PhiKind, default ()
        Kinds the data owner declared (and protects); findings of these kinds are dropped.

    Returns
    -------
    list of PhiFinding
        Undeclared findings, located as ``"column 3"`` or ``"column 'zip'"``; evidence
        describes the column and never shows a value.

    Raises
    ------
    ConfigError
        If ``X`` is not a 2-D numeric array, ``feature_names`` has the wrong length, or a
        declared kind is unknown.
    """
    if isinstance(X, NodeData):
        parts = [X.X] if X.X_val is None else [X.X, X.X_val]
        matrix = np.concatenate(parts)
    else:
        matrix = _as_matrix(X)
    allowed_kinds = ", ".join(k.value for k in PhiKind)
    if isinstance(declared, str | bytes) or not isinstance(declared, Iterable):
        shown = Described(f"a {type(declared).__name__}")
        raise ConfigError("declared", shown, f"a collection of PhiKind values ({allowed_kinds})")
    try:
        kinds = {PhiKind(k) for k in declared}
    except (TypeError, ValueError):
        raise ConfigError("declared", list(declared), f"PhiKind values ({allowed_kinds})") from None
    d = matrix.shape[1]
    names = None if feature_names is None else _column_names(feature_names)
    if names is not None and len(names) != d:
        shown = Described(f"{len(names)} names")
        raise ConfigError("feature_names", shown, f"one name per column ({d})")
    findings = _name_findings(names) if names is not None else []
    for j in range(d):
        where = f"column {names[j]!r}" if names is not None else f"column {j}"
        column = matrix[:, j]
        if column.size == 0 or not np.isfinite(column).all():
            continue
        if names is not None and _AGE_COLUMN.search(_normalise(names[j])) and column.max() >= 90:
            count = int((column >= 90).sum())
            evidence = f"{count} of {column.size} values are ages of 90 or more"
            findings.append(PhiFinding(PhiKind.AGE_OVER_89, where, evidence, 0.9))
        if column.min() < 10_000 or column.max() >= 1e10 or (column != np.round(column)).any():
            continue
        ints = column.astype(np.int64)
        for kind, low, high, check, confidence, what in _NUMERIC_IDS:
            if column.min() >= low and column.max() <= high and check(ints):
                evidence = f"all {column.size} values are {what}"
                findings.append(PhiFinding(kind, where, evidence, confidence))
                break
    return [f for f in findings if f.kind not in kinds]
