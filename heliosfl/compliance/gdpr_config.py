"""GDPR settings and the categories of personal data the inventory records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from heliosfl.errors import ConfigError
from heliosfl.validation import check_private_id

__all__ = ["TRAINING_PURPOSE", "DataCategory", "GdprConfig", "check_user_id"]

#: The purpose a subject must consent to before a node trains on their rows.
TRAINING_PURPOSE = "model_training"


class DataCategory(StrEnum):
    """What kind of personal data a record holds (Art. 30(1)(c) asks for the categories).

    ``SPECIAL_CATEGORY`` is Art. 9 data (health, biometric, genetic, ...), which needs
    explicit consent; ``PSEUDONYMIZED`` is still personal data (Recital 26).
    """

    TRAINING_DATA = "training_data"
    PERSONAL_DATA = "personal_data"
    SPECIAL_CATEGORY = "special_category"
    CONTACT_DATA = "contact_data"
    BEHAVIORAL_DATA = "behavioral_data"
    PSEUDONYMIZED = "pseudonymized"
    MODEL_OUTPUT = "model_output"


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"gdpr_config.{name}", value, "True or False")


def _check_schema(value: object) -> Mapping[str, tuple[str, ...]]:
    allowed = "a mapping of DataCategory values to tuples of distinct field names (str)"
    if not isinstance(value, Mapping):
        raise ConfigError("gdpr_config.data_schema", value, allowed)
    schema: dict[str, tuple[str, ...]] = {}
    for key, names in value.items():
        try:
            category = DataCategory(key)
        except ValueError:
            known = ", ".join(c.value for c in DataCategory)
            raise ConfigError("gdpr_config.data_schema key", key, f"one of {known}") from None
        if isinstance(names, str) or not isinstance(names, list | tuple):
            raise ConfigError(f"gdpr_config.data_schema[{category.value!r}]", names, allowed)
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise ConfigError(f"gdpr_config.data_schema[{category.value!r}]", names, allowed)
        schema[category.value] = tuple(names)
    return MappingProxyType(schema)  # read-only: the policy changes only through a new config


@dataclass(frozen=True, slots=True, kw_only=True)
class GdprConfig:
    """The guide's GDPR settings, plus what a controller must declare.

    Parameters
    ----------
    enable_right_to_be_forgotten : bool
        Art. 17: :meth:`GdprComplianceManager.delete_user_data` erases and unlearns.
    enable_data_portability : bool
        Art. 20: :meth:`GdprComplianceManager.export_user_data` is allowed.
    enable_consent_management : bool
        Art. 6(1)(a)/7: consent is recorded, and nodes train only on the rows of subjects
        who consented to ``"model_training"``. Off: another lawful basis applies and no row
        is filtered (erasure still is).
    retention_period_days : int
        Art. 5(1)(e): personal data older than this is purged by ``enforce_retention()``
        and at each training start (1 to 36500).
    enable_data_minimization : bool
        Art. 5(1)(c): structured records may hold only the fields declared for their
        category in `data_schema`, and node feature names must be declared for
        ``TRAINING_DATA`` when a schema for it is given.
    enable_purpose_limitation : bool
        Art. 5(1)(b): data is accepted only for a purpose the subject consented to (with
        consent management off, consent is not the lawful basis and this is not checked).
    enable_explainability : bool
        Art. 13-15/22: per-prediction and global explanations are available.
    data_schema : Mapping[str, tuple[str, ...]]
        The fields each category may hold, e.g. ``{"contact_data": ("email",)}``.
    controller : str
        The controller named in the records of processing (Art. 30(1)(a)).
    erasure_deadline_days : int
        Art. 12(3): an erasure is due within one month of the request (default 30 days).
    """

    enable_right_to_be_forgotten: bool = True
    enable_data_portability: bool = True
    enable_consent_management: bool = True
    retention_period_days: int = 365
    enable_data_minimization: bool = True
    enable_purpose_limitation: bool = True
    enable_explainability: bool = True
    data_schema: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    controller: str = "heliosfl federation"
    erasure_deadline_days: int = 30

    def __post_init__(self) -> None:
        for name in (
            "enable_right_to_be_forgotten",
            "enable_data_portability",
            "enable_consent_management",
            "enable_data_minimization",
            "enable_purpose_limitation",
            "enable_explainability",
        ):
            _check_bool(name, getattr(self, name))
        for name, high in (("retention_period_days", 36500), ("erasure_deadline_days", 30)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ConfigError(f"gdpr_config.{name}", value, f"an int from 1 to {high}")
        if not isinstance(self.controller, str) or not 0 < len(self.controller.strip()) <= 200:
            raise ConfigError("gdpr_config.controller", self.controller, "a name of 1-200 chars")
        object.__setattr__(self, "data_schema", _check_schema(self.data_schema))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (``from_dict`` reads them back)."""
        return {
            "enable_right_to_be_forgotten": self.enable_right_to_be_forgotten,
            "enable_data_portability": self.enable_data_portability,
            "enable_consent_management": self.enable_consent_management,
            "retention_period_days": self.retention_period_days,
            "enable_data_minimization": self.enable_data_minimization,
            "enable_purpose_limitation": self.enable_purpose_limitation,
            "enable_explainability": self.enable_explainability,
            "data_schema": {k: list(v) for k, v in self.data_schema.items()},
            "controller": self.controller,
            "erasure_deadline_days": self.erasure_deadline_days,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GdprConfig:
        """Build a config from :meth:`to_dict` output; unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise ConfigError("gdpr_config", data, "a mapping from GdprConfig.to_dict()")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            first = sorted(unknown, key=repr)[0]  # keys may mix types
            raise ConfigError("gdpr_config key", first, "a GdprConfig field")
        values = dict(data)
        if isinstance(values.get("data_schema"), Mapping):
            values["data_schema"] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in values["data_schema"].items()
            }
        return cls(**values)


def check_user_id(user_id: object) -> str:
    """Return a data subject's id if it is a printable str of 1-150 characters.

    Raises
    ------
    ConfigError
        Otherwise; the message shows the type, never the id (it identifies a person).
    """
    return check_private_id("user_id", user_id, max_chars=150, show_length=False)
