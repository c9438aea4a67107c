"""Data portability (Art. 20): a subject's data as structured, machine-readable JSON.

The export's layout is :data:`EXPORT_SCHEMA` (JSON Schema, draft 2020-12); tests validate
real exports against it. ``export.to_json(indent=2)`` is the Python form of the guide's
``serde_json::to_string_pretty(&export)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["EXPORT_FORMAT", "EXPORT_SCHEMA", "UserDataExport", "node_rows_json"]

EXPORT_FORMAT = "heliosfl-gdpr-export/1"

_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_STRS = {"type": "array", "items": _STR}

#: JSON Schema of :meth:`UserDataExport.to_dict`.
EXPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "heliosfl GDPR data export",
    "type": "object",
    "required": [
        "format",
        "subject_id",
        "generated_at",
        "controller",
        "purposes",
        "consents",
        "user_data",
        "node_data",
        "model_contributions",
        "erasure_requests",
    ],
    "additionalProperties": False,
    "properties": {
        "format": {"const": EXPORT_FORMAT},
        "subject_id": _STR,
        "generated_at": _TIME,
        "controller": _STR,
        "purposes": {**_STRS, "description": "Purposes the subject consents to now."},
        "consents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["seq", "action", "purposes", "version", "text_sha256", "recorded_at"],
                "properties": {
                    "seq": {"type": "integer"},
                    "action": {"enum": ["grant", "withdraw"]},
                    "purposes": _STRS,
                    "version": _STR,
                    "text_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "text_registered": {"type": "boolean"},
                    "recorded_at": _TIME,
                    "reason": _STR,
                },
            },
        },
        "user_data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["record_id", "purpose", "category", "format", "created_at", "data"],
                "properties": {
                    "record_id": _STR,
                    "purpose": _STR,
                    "category": _STR,
                    "format": {"enum": ["bytes", "text", "json"]},
                    "fields": _STRS,
                    "node_id": {"type": ["string", "null"]},
                    "created_at": _TIME,
                    "data": {
                        "description": "bytes: base64 text; text: the text; json: the object.",
                    },
                },
            },
        },
        "node_data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["node_id", "feature_names", "rows"],
                "properties": {
                    "node_id": _STR,
                    "feature_names": _STRS,
                    "rows": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["split", "features", "label"],
                            "properties": {
                                "split": {"enum": ["training", "validation"]},
                                "features": {"type": "array", "items": {"type": "number"}},
                                "label": {"type": "integer"},
                            },
                        },
                    },
                },
            },
        },
        "model_contributions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["model_id", "round_number", "node_id"],
                "properties": {
                    "model_id": _STR,
                    "round_number": {"type": "integer", "minimum": 1},
                    "node_id": _STR,
                },
            },
        },
        "erasure_requests": {"type": "array", "items": {"type": "object"}},
    },
}


@dataclass(frozen=True, slots=True)
class UserDataExport:
    """Everything held about one subject, as the subject may take it elsewhere.

    Attributes
    ----------
    subject_id : str
        The subject (this export is for them, so it names them).
    generated_at : str
        ISO-8601 UTC time of the export.
    controller : str
        Who holds the data.
    purposes : list of str
        Purposes consented to now.
    consents : list of dict
        The whole consent history.
    user_data : list of dict
        Stored records, decrypted.
    node_data : list of dict
        Rows the nodes hold, read at each reachable node.
    model_contributions : list of dict
        Committed rounds the subject's rows contributed to (model, round, node).
    erasure_requests : list of dict
        Earlier erasure requests and their outcome.
    """

    subject_id: str
    generated_at: str
    controller: str
    purposes: list[str]
    consents: list[dict[str, Any]]
    user_data: list[dict[str, Any]]
    node_data: list[dict[str, Any]]
    model_contributions: list[dict[str, Any]]
    erasure_requests: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The export as JSON-ready values, laid out as :data:`EXPORT_SCHEMA`."""
        return {
            "format": EXPORT_FORMAT,
            "subject_id": self.subject_id,
            "generated_at": self.generated_at,
            "controller": self.controller,
            "purposes": list(self.purposes),
            "consents": [dict(c) for c in self.consents],
            "user_data": [dict(r) for r in self.user_data],
            "node_data": [dict(n) for n in self.node_data],
            "model_contributions": [dict(c) for c in self.model_contributions],
            "erasure_requests": [dict(e) for e in self.erasure_requests],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The export as JSON text (``indent=2`` pretty-prints, as the guide does)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def node_rows_json(node_id: str, rows: Any, names: tuple[str, ...] | None) -> dict[str, Any]:
    """A node's rows of one subject (a NodeData) as the export's ``node_data`` item."""
    width = int(rows.X.shape[1])
    out: list[dict[str, Any]] = []
    for split, xs, y in (("training", rows.X, rows.y), ("validation", rows.X_val, rows.y_val)):
        if xs is None or y is None:
            continue
        out.extend(
            {"split": split, "features": [float(v) for v in x], "label": int(label)}
            for x, label in zip(xs, y, strict=True)
        )
    return {
        "node_id": node_id,
        "feature_names": list(names) if names else [f"x{i}" for i in range(width)],
        "rows": out,
    }
