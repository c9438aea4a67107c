"""Unit tests for heliosfl.errors: construction, builtin parents, messages and pickling."""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest

import heliosfl.errors as errors
from heliosfl.errors import (
    ClosedError,
    ComplianceError,
    ConfigError,
    ConvergenceNotReached,
    FederatedLearningError,
    InsufficientNodes,
    ModelNotFound,
    NodeFailure,
    NodeNotFound,
    NodeTimeout,
    PrivacyBudgetExhausted,
    SecureAggregationError,
    WorkspaceError,
)

# Realistic instances: at least one for every class in errors.__all__ (checked below).
EXAMPLES: list[FederatedLearningError] = [
    FederatedLearningError("training could not start"),
    ConfigError(
        "round_config.learning_rate",
        -0.1,
        "a finite number in (0, inf)",
        "Use a small positive step such as 0.01.",
    ),
    ConfigError("selection_strategy.k", 0, "an integer >= 1"),
    ConfigError("weights", [1.0, -2.0], "finite, non-negative numbers with a positive sum"),
    ModelNotFound("heart-model", ("cancer-model", "digits-model")),
    ModelNotFound("heart-model"),
    NodeNotFound("hospital-7", "worker"),
    NodeNotFound("hospital-7"),
    InsufficientNodes(5, 3),
    InsufficientNodes(4, 1, "successful updates"),
    NodeTimeout("hospital-2", 0.25),
    NodeFailure("hospital-3", "ValueError: input contains NaN"),
    ConvergenceNotReached(50, 0.8312, 0.9),
    ConvergenceNotReached(10, None, None),
    PrivacyBudgetExhausted(0.95, 1.2, 1.0, 1e-5),
    SecureAggregationError("only 2 of 5 nodes sent their mask shares; threshold is 3"),
    ComplianceError("GDPR: node 'eu-1' has no recorded lawful basis for processing"),
    WorkspaceError("workspace file 'run.heliosfl' is not a heliosfl workspace"),
    ClosedError("FederatedLearningEngine"),
]


def example_id(err: BaseException) -> str:
    return f"{type(err).__name__}-{EXAMPLES.index(err)}"  # type: ignore[arg-type]


def public_attributes(err: BaseException) -> dict[str, object]:
    return {k: v for k, v in vars(err).items() if not k.startswith("_")}


def test_examples_cover_every_exported_exception() -> None:
    exported = {getattr(errors, name) for name in errors.__all__}
    assert exported == {type(e) for e in EXAMPLES}


def test_every_exception_class_in_the_module_is_exported() -> None:
    classes = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }
    assert classes == set(errors.__all__)
    assert errors.__all__ == sorted(errors.__all__)


@pytest.mark.parametrize("err", EXAMPLES, ids=example_id)
def test_every_error_is_a_federated_learning_error(err: FederatedLearningError) -> None:
    assert isinstance(err, FederatedLearningError)
    assert isinstance(err, Exception)
    assert str(err)


@pytest.mark.parametrize("err", EXAMPLES, ids=example_id)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(err: FederatedLearningError, protocol: int) -> None:
    back = pickle.loads(pickle.dumps(err, protocol=protocol))  # noqa: S301 - our own bytes
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert back.args == err.args
    assert public_attributes(back) == public_attributes(err)


@pytest.mark.parametrize("err", EXAMPLES, ids=example_id)
def test_deepcopy_round_trip(err: FederatedLearningError) -> None:
    back = copy.deepcopy(err)
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert public_attributes(back) == public_attributes(err)


@pytest.mark.parametrize("err", EXAMPLES, ids=example_id)
def test_raised_and_caught_after_pickling(err: FederatedLearningError) -> None:
    # What a process backend does: the error crosses a process boundary, then is raised.
    back = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    with pytest.raises(type(err)) as info:
        raise back
    assert str(info.value) == str(err)


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ConfigError, ValueError),
        (NodeTimeout, TimeoutError),
        (NodeNotFound, LookupError),
        (ModelNotFound, LookupError),
        (ClosedError, RuntimeError),
    ],
)
def test_builtin_parents(cls: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(cls, parent)
    assert issubclass(cls, FederatedLearningError)
    err = next(e for e in EXAMPLES if type(e) is cls)
    with pytest.raises(parent):
        raise err


def test_config_error_message_form_and_attributes() -> None:
    err = ConfigError(
        "round_config.max_rounds", 0, "an integer >= 1", "Train for at least one round."
    )
    assert str(err) == (
        "round_config.max_rounds must be an integer >= 1. Found 0. Train for at least one round."
    )
    assert (err.field, err.value, err.allowed, err.hint) == (
        "round_config.max_rounds",
        0,
        "an integer >= 1",
        "Train for at least one round.",
    )


def test_config_error_truncates_long_values() -> None:
    err = ConfigError("node_ids", list(range(1000)), "at most 100 ids")
    assert len(str(err)) < 250
    assert "..." in str(err)
    assert err.value == list(range(1000))  # the attribute keeps the full value


def test_insufficient_nodes_message_contains_required_and_available() -> None:
    err = InsufficientNodes(7, 2)
    message = str(err)
    assert "min_nodes_per_round=7" in message
    assert "Found 2" in message
    assert (err.required, err.available, err.what) == (7, 2, "available nodes")
    updates = InsufficientNodes(4, 1, "successful updates")
    assert "successful updates" in str(updates)
    assert "4" in str(updates)
    assert "Found 1" in str(updates)


def test_privacy_budget_exhausted_message_mentions_both_remedies() -> None:
    err = PrivacyBudgetExhausted(0.95, 1.2, 1.0, 1e-5)
    message = str(err).lower()
    assert "increase epsilon" in message
    assert "reduce max_rounds" in message
    assert "1.2" in message
    assert "0.95" in message
    assert (err.spent, err.requested, err.budget, err.delta) == (0.95, 1.2, 1.0, 1e-5)


def test_model_not_found_lists_registered_models() -> None:
    err = ModelNotFound("heart", ("cancer", "digits"))
    assert "'heart'" in str(err)
    assert "'cancer', 'digits'" in str(err)
    assert "none" in str(ModelNotFound("heart"))


def test_node_timeout_message_and_attributes() -> None:
    err = NodeTimeout("hospital-2", 0.25)
    assert "hospital-2" in str(err)
    assert "0.25 s" in str(err)
    assert (err.node_id, err.timeout_secs) == ("hospital-2", 0.25)


def test_convergence_not_reached_message() -> None:
    err = ConvergenceNotReached(50, 0.8312, 0.9)
    assert "within 50 rounds" in str(err)
    assert "0.8312" in str(err)
    assert "target_accuracy=0.9" in str(err)
    assert "n/a" in str(ConvergenceNotReached(3, None, 0.9))
