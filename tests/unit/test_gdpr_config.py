"""Tests of heliosfl.compliance.gdpr_config: GdprConfig, DataCategory and check_user_id."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heliosfl.compliance.gdpr_config import (
    TRAINING_PURPOSE,
    DataCategory,
    GdprConfig,
    check_user_id,
)
from heliosfl.errors import ConfigError

FLAGS = (
    "enable_right_to_be_forgotten",
    "enable_data_portability",
    "enable_consent_management",
    "enable_data_minimization",
    "enable_purpose_limitation",
    "enable_explainability",
)


def json_round_trip(config: GdprConfig) -> GdprConfig:
    return GdprConfig.from_dict(json.loads(json.dumps(config.to_dict())))


# -- defaults ------------------------------------------------------------------------


def test_defaults_are_the_guides_values() -> None:
    config = GdprConfig()

    assert all(getattr(config, name) is True for name in FLAGS)
    assert config.retention_period_days == 365
    assert config.erasure_deadline_days == 30
    assert config.data_schema == {}
    assert config.controller == "heliosfl federation"
    assert TRAINING_PURPOSE == "model_training"


def test_guide_config_equals_defaults() -> None:
    guide = GdprConfig(
        enable_right_to_be_forgotten=True,
        enable_data_portability=True,
        enable_consent_management=True,
        retention_period_days=365,
        enable_data_minimization=True,
        enable_purpose_limitation=True,
        enable_explainability=True,
    )

    assert guide == GdprConfig()


def test_fields_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        GdprConfig(True)  # type: ignore[misc]
    config = GdprConfig()
    with pytest.raises(AttributeError):
        config.retention_period_days = 1  # type: ignore[misc]


def test_data_schema_cannot_be_changed_behind_validation() -> None:
    # A frozen config must stay as validated: editing its schema in place would change
    # what data minimisation admits without any check.
    config = GdprConfig(data_schema={"contact_data": ("email",)})

    with pytest.raises(TypeError):
        config.data_schema["contact_data"] = ("email", "home_address")  # type: ignore[index]

    assert config.data_schema == {"contact_data": ("email",)}
    assert hash(config) == hash(GdprConfig(data_schema={"contact_data": ("email",)}))


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize("name", FLAGS)
@pytest.mark.parametrize("bad", [1, 0, "yes", None])
def test_flags_must_be_bool(name: str, bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"gdpr_config\.{name} must be True or False") as info:
        GdprConfig(**{name: bad})
    assert info.value.field == f"gdpr_config.{name}"


@pytest.mark.parametrize(
    ("name", "bad", "high"),
    [
        ("retention_period_days", 0, 36500),
        ("retention_period_days", 36501, 36500),
        ("retention_period_days", -1, 36500),
        ("retention_period_days", 365.0, 36500),
        ("retention_period_days", "365", 36500),
        ("retention_period_days", True, 36500),
        ("erasure_deadline_days", 0, 30),
        ("erasure_deadline_days", 31, 30),
        ("erasure_deadline_days", None, 30),
        ("erasure_deadline_days", True, 30),
    ],
)
def test_day_counts_must_be_ints_in_range(name: str, bad: object, high: int) -> None:
    with pytest.raises(ConfigError, match=rf"gdpr_config\.{name} must be an int from 1 to {high}"):
        GdprConfig(**{name: bad})


@pytest.mark.parametrize("good", [1, 36500])
def test_retention_bounds_are_inclusive(good: int) -> None:
    assert GdprConfig(retention_period_days=good).retention_period_days == good


@pytest.mark.parametrize("bad", ["", "   ", "x" * 201, 7, None])
def test_controller_must_be_a_name(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"gdpr_config\.controller must be a name"):
        GdprConfig(controller=bad)  # type: ignore[arg-type]


def test_data_schema_unknown_category_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"gdpr_config\.data_schema key .*contact_data") as info:
        GdprConfig(data_schema={"health": ("diagnosis",)})
    assert info.value.value == "health"


@pytest.mark.parametrize(
    "names",
    ["email", ("email", "email"), ("email", ""), ("email", 3), {"email"}, None],
    ids=["str", "duplicate", "empty-name", "non-str", "set", "none"],
)
def test_data_schema_names_must_be_a_tuple_of_distinct_str(names: object) -> None:
    with pytest.raises(ConfigError, match=r"gdpr_config\.data_schema\['contact_data'\]"):
        GdprConfig(data_schema={"contact_data": names})  # type: ignore[dict-item]


@pytest.mark.parametrize("bad", [["contact_data"], "contact_data", 3])
def test_data_schema_must_be_a_mapping(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"gdpr_config\.data_schema must be a mapping"):
        GdprConfig(data_schema=bad)  # type: ignore[arg-type]


def test_data_schema_accepts_enum_keys_and_lists() -> None:
    config = GdprConfig(
        data_schema={DataCategory.CONTACT_DATA: ["email", "phone"], "training_data": ()}
    )

    assert config.data_schema == {"contact_data": ("email", "phone"), "training_data": ()}
    assert all(type(key) is str for key in config.data_schema)


def test_config_error_survives_pickle() -> None:
    with pytest.raises(ConfigError) as info:
        GdprConfig(retention_period_days=0)
    again = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own exception
    assert str(again) == str(info.value)
    assert again.field == "gdpr_config.retention_period_days"


# -- to_dict / from_dict -------------------------------------------------------------


def test_to_dict_round_trips_through_json() -> None:
    config = GdprConfig(
        enable_data_portability=False,
        retention_period_days=30,
        data_schema={"contact_data": ("email",), "training_data": ("age", "bmi")},
        controller="Example Hospital",
        erasure_deadline_days=14,
    )

    data = json.loads(json.dumps(config.to_dict()))

    assert data["data_schema"] == {"contact_data": ["email"], "training_data": ["age", "bmi"]}
    assert GdprConfig.from_dict(data) == config


def test_from_dict_refuses_unknown_keys_and_non_mappings() -> None:
    with pytest.raises(ConfigError, match="gdpr_config key must be a GdprConfig field"):
        GdprConfig.from_dict({**GdprConfig().to_dict(), "retention_days": 3})
    with pytest.raises(ConfigError, match="gdpr_config must be a mapping"):
        GdprConfig.from_dict([("retention_period_days", 3)])  # type: ignore[arg-type]


def test_from_dict_validates_values() -> None:
    with pytest.raises(ConfigError, match=r"gdpr_config\.retention_period_days"):
        GdprConfig.from_dict({"retention_period_days": 0})
    assert GdprConfig.from_dict({}) == GdprConfig()


names = st.text(st.characters(categories=["Ll", "Nd"]), min_size=1, max_size=8)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    categories = draw(st.lists(st.sampled_from(list(DataCategory)), unique=True, max_size=3))
    return {
        **{name: draw(st.booleans()) for name in FLAGS},
        "retention_period_days": draw(st.integers(1, 36500)),
        "erasure_deadline_days": draw(st.integers(1, 30)),
        "controller": draw(st.text(min_size=1, max_size=40).filter(str.strip)),
        "data_schema": {
            c.value: tuple(draw(st.lists(names, unique=True, max_size=4))) for c in categories
        },
    }


@settings(max_examples=60, deadline=None)
@given(configs())
def test_every_valid_config_round_trips(values: dict[str, Any]) -> None:
    config = GdprConfig(**values)

    again = json_round_trip(config)

    assert again == config
    assert again.to_dict() == config.to_dict()


# -- DataCategory --------------------------------------------------------------------


def test_data_category_values_are_lowercase_names() -> None:
    for category in DataCategory:
        assert category.name.isupper()
        assert category.value == category.name.lower()
    assert DataCategory("training_data") is DataCategory.TRAINING_DATA
    assert DataCategory.TRAINING_DATA == "training_data"


# -- check_user_id -------------------------------------------------------------------


@pytest.mark.parametrize("good", ["user123", "x", "x" * 150, "Jane Doe <jane@example.org>"])
def test_check_user_id_returns_good_ids(good: str) -> None:
    assert check_user_id(good) == good


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        (123, "<int>"),
        (None, "<NoneType>"),
        (b"user123", "<bytes>"),
        ("", "<str>"),
        ("patient-12345" * 12, "<str>"),  # 156 characters
        ("patient-12345\n", "<str>"),
        ("patient-12345\x00", "<str>"),
    ],
)
def test_check_user_id_refuses_without_echoing_the_id(bad: object, shown: str) -> None:
    with pytest.raises(ConfigError, match="user_id must be a printable str of 1 to 150") as info:
        check_user_id(bad)
    assert info.value.value == shown
    assert "12345" not in str(info.value)
    assert "user123" not in str(info.value)
