"""The HIPAA compliance report: one check per technical safeguard, with evidence."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = ["CheckStatus", "ComplianceCheck", "ComplianceReport"]


class CheckStatus(StrEnum):
    """Outcome of one check."""

    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True)
class ComplianceCheck:
    """One requirement, what was found, and what to do if it is not met.

    Attributes
    ----------
    requirement : str
        E.g. ``"164.312(b) Audit controls"``.
    status : CheckStatus
        Pass, warn (met with a caveat), fail, or not applicable.
    evidence : str
        What was checked and found.
    remediation : str
        What to change when the status is not ``pass``.
    """

    requirement: str
    status: CheckStatus
    evidence: str
    remediation: str = ""


@dataclass(frozen=True, slots=True)
class ComplianceReport:
    """The result of ``HipaaComplianceManager.verify_compliance()``.

    ``overall_compliant`` is true when no check failed (warnings are reported, not
    failed). The report is evidence for a compliance officer, not a legal opinion.
    """

    checks: tuple[ComplianceCheck, ...]
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def overall_compliant(self) -> bool:
        """True if no check failed."""
        return all(c.status is not CheckStatus.FAIL for c in self.checks)

    @property
    def failures(self) -> list[ComplianceCheck]:
        """The failed checks."""
        return [c for c in self.checks if c.status is CheckStatus.FAIL]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return {
            "generated_at": self.generated_at.isoformat(),
            "overall_compliant": self.overall_compliant,
            "checks": [
                {
                    "requirement": c.requirement,
                    "status": c.status.value,
                    "evidence": c.evidence,
                    "remediation": c.remediation,
                }
                for c in self.checks
            ],
        }

    def text(self) -> str:
        """A plain-text rendering (what :meth:`print` prints)."""
        lines = [
            f"HIPAA compliance report ({self.generated_at:%Y-%m-%d %H:%M} UTC): "
            + ("COMPLIANT" if self.overall_compliant else "NOT COMPLIANT"),
        ]
        for c in self.checks:
            lines.append(f"  [{c.status.value.upper():>14}] {c.requirement}")
            lines.append(f"                   {c.evidence}")
            if c.remediation and c.status is not CheckStatus.PASS:
                lines.append(f"                   remedy: {c.remediation}")
        return "\n".join(lines)

    def print(self) -> None:
        """Print the report (the guide's ``report.print()``)."""
        print(self.text())  # noqa: T201 - printing is this method's purpose

    def to_html(self) -> str:
        """An HTML table of the checks (escaped)."""
        rows = "".join(
            f"<tr class='heliosfl-{c.status.value}'><td>{html.escape(c.requirement)}</td>"
            f"<td>{html.escape(c.status.value)}</td><td>{html.escape(c.evidence)}</td>"
            f"<td>{html.escape(c.remediation)}</td></tr>"
            for c in self.checks
        )
        verdict = "compliant" if self.overall_compliant else "not compliant"
        return (
            f"<div class='heliosfl-report'><p>HIPAA compliance: <b>{verdict}</b></p>"
            "<table><tr><th>Requirement</th><th>Status</th><th>Evidence</th>"
            f"<th>Remediation</th></tr>{rows}</table></div>"
        )
