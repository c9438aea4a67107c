"""The errors heliosfl raises.

Every error is a :class:`FederatedLearningError`; subclasses carry their facts as
attributes and also inherit a builtin where that is natural, so ``except ValueError``
still catches a bad configuration::

    FederatedLearningError
     ├── ConfigError(ValueError)            a value outside what is allowed
     ├── ModelNotFound(LookupError)         no model registered under that id
     ├── NodeNotFound(LookupError)          no node registered under that id
     ├── InsufficientNodes                  fewer nodes (or updates) than the quorum
     ├── NodeTimeout(TimeoutError)          a node did not answer within its timeout
     ├── NodeFailure                        a node's local training raised
     ├── ConvergenceNotReached              max_rounds ended short of the target
     ├── PrivacyBudgetExhausted             a round would overspend (epsilon, delta)
     ├── SecureAggregationError             secure aggregation could not complete
     ├── ComplianceError                    a HIPAA or GDPR rule was not met
     ├── WorkspaceError                     the workspace file cannot be used
     └── ClosedError(RuntimeError)          use of an engine or workspace after close

Messages follow one form: ``"<name> must be <constraint>. Found <value>."`` and, where
there is one, the remedy. Every exception survives :mod:`pickle`.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "ClosedError",
    "ComplianceError",
    "ConfigError",
    "ConvergenceNotReached",
    "FederatedLearningError",
    "InsufficientNodes",
    "ModelNotFound",
    "NodeFailure",
    "NodeNotFound",
    "NodeTimeout",
    "PrivacyBudgetExhausted",
    "SecureAggregationError",
    "WorkspaceError",
]


class FederatedLearningError(Exception):
    """Base class of every error heliosfl raises on purpose."""


class ConfigError(FederatedLearningError, ValueError):
    """A configuration value, argument or array is outside what is allowed.

    Parameters
    ----------
    field : str
        Name of the offending field or argument.
    value : object
        The value that was given (``repr`` of it appears in the message).
    allowed : str
        What would have been accepted, e.g. ``"a finite number > 0"``.
    hint : str, optional
        A remedy appended to the message.
    """

    def __init__(self, field: str, value: Any, allowed: str, hint: str = "") -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.hint = hint
        try:
            shown = (
                reprlib.repr(value) if isinstance(value, list | tuple | dict | set) else repr(value)
            )
        except (RecursionError, ValueError):  # nested too deep, or a broken __repr__
            shown = f"<{type(value).__name__}>"
        if len(shown) > 120:
            shown = shown[:117] + "..."
        message = f"{field} must be {allowed}. Found {shown}."
        if hint:
            message = f"{message} {hint}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.allowed, self.hint))


class ModelNotFound(FederatedLearningError, LookupError):
    """No model is registered under ``model_id``."""

    def __init__(self, model_id: str, known: tuple[str, ...] = ()) -> None:
        self.model_id = model_id
        self.known = tuple(known)
        listing = ", ".join(repr(k) for k in self.known) or "none"
        super().__init__(
            f"model_id must name a registered model. Found {model_id!r}; registered: "
            f"{listing}. Call `await engine.register_model(...)` first."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model_id, self.known))


class NodeNotFound(FederatedLearningError, LookupError):
    """No node (worker or registration) exists under ``node_id``."""

    def __init__(self, node_id: str, where: str = "coordinator") -> None:
        self.node_id = node_id
        self.where = where
        super().__init__(
            f"node_id must name a node registered with the {where}. Found {node_id!r}."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.node_id, self.where))


class InsufficientNodes(FederatedLearningError):
    """Fewer nodes (or successful updates) than ``min_nodes_per_round``.

    Attributes
    ----------
    required : int
        The quorum, ``min_nodes_per_round``.
    available : int
        How many nodes (or updates) there were.
    """

    def __init__(self, required: int, available: int, what: str = "available nodes") -> None:
        self.required = required
        self.available = available
        self.what = what
        super().__init__(
            f"Insufficient nodes: {what} must be at least min_nodes_per_round={required}. "
            f"Found {available}. Lower min_nodes_per_round, register more nodes, or wait "
            "for failed nodes to recover."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.required, self.available, self.what))


class NodeTimeout(FederatedLearningError, TimeoutError):
    """A node did not return its update within ``timeout_secs``."""

    def __init__(self, node_id: str, timeout_secs: float) -> None:
        self.node_id = node_id
        self.timeout_secs = timeout_secs
        super().__init__(f"Node {node_id!r} did not answer within {timeout_secs:g} s.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.node_id, self.timeout_secs))


class NodeFailure(FederatedLearningError):
    """A node's local training raised; ``reason`` says what happened."""

    def __init__(self, node_id: str, reason: str) -> None:
        self.node_id = node_id
        self.reason = reason
        super().__init__(f"Node {node_id!r} failed: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.node_id, self.reason))


class ConvergenceNotReached(FederatedLearningError):
    """Training ended at ``max_rounds`` (``rounds``) without meeting a stopping rule."""

    def __init__(self, rounds: int, best_accuracy: float | None, target: float | None) -> None:
        self.rounds = rounds
        self.best_accuracy = best_accuracy
        self.target = target
        best = "n/a" if best_accuracy is None else f"{best_accuracy:.4f}"
        super().__init__(
            f"Convergence not reached: training must meet target_accuracy={target} or the "
            f"convergence_threshold within {rounds} rounds. Found best accuracy {best}. "
            "Increase max_rounds, adjust learning_rate, or relax convergence_threshold."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.rounds, self.best_accuracy, self.target))


class PrivacyBudgetExhausted(FederatedLearningError):
    """A round would spend more privacy than the run's ``(epsilon, delta)`` budget."""

    def __init__(self, spent: float, requested: float, budget: float, delta: float) -> None:
        self.spent = spent
        self.requested = requested
        self.budget = budget
        self.delta = delta
        super().__init__(
            f"Privacy budget exhausted: epsilon spent plus this round must be at most "
            f"{budget:g} (delta={delta:g}). Found spent={spent:.6g}, this round would bring "
            f"it to {requested:.6g}. Increase epsilon (weaker privacy) or reduce max_rounds."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.spent, self.requested, self.budget, self.delta))


class SecureAggregationError(FederatedLearningError):
    """Secure aggregation could not complete; the model is left unchanged."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class ComplianceError(FederatedLearningError):
    """A HIPAA or GDPR requirement was not met."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class WorkspaceError(FederatedLearningError):
    """The workspace file cannot be opened, read or written."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class ClosedError(FederatedLearningError, RuntimeError):
    """An engine, run or workspace was used after it was closed."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what} is closed; create a new one.")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what,))
