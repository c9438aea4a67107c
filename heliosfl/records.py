"""Value objects of a training run: updates, node snapshots, round records, state, results.

All are frozen dataclasses; the JSON-facing ones have ``to_dict`` / ``from_dict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CoordinatorState",
    "MaskedUpdate",
    "ModelUpdate",
    "NodeInfo",
    "RoundRecord",
    "RoundStatus",
    "StopReason",
    "TrainingResult",
]


class StopReason(StrEnum):
    """Why a training run stopped."""

    TARGET_ACCURACY = "target_accuracy"
    LOSS_CONVERGED = "loss_converged"
    MAX_ROUNDS = "max_rounds"
    CANCELLED = "cancelled"
    INSUFFICIENT_NODES = "insufficient_nodes"
    BUDGET_EXHAUSTED = "budget_exhausted"
    ERROR = "error"


class RoundStatus(StrEnum):
    """Outcome of a round attempt."""

    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ModelUpdate:
    """One node's contribution to a round.

    Parameters
    ----------
    model_id : str
        The model trained.
    node_id : str
        The node that trained it.
    round_number : int
        The round this update is for (the coordinator's ``current_round + 1``).
    delta : ndarray
        ``local_params - global_params`` (float64, one entry per parameter).
    num_samples : int
        Training rows used.
    loss : float
        Mean local training loss over the last local epoch.
    metrics : dict
        Local validation figures (``val_loss``, ``val_accuracy``) when the node has a
        validation split.
    duration_secs : float
        Wall time of local training.
    """

    model_id: str
    node_id: str
    round_number: int
    delta: npt.NDArray[np.float64]
    num_samples: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    duration_secs: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MaskedUpdate:
    """One node's contribution to a secure round: its update quantised and masked.

    The vector is uniformly random to anyone without the round's masks: only the sum of
    all survivors' vectors, unmasked by the protocol, means anything.

    Parameters
    ----------
    model_id, node_id : str
        The model and the node.
    round_number : int
        The round.
    masked : ndarray
        Ring elements (uint64): the quantised, weighted delta and the weight, masked.
    num_samples : int
        Training rows used.
    weight : int
        The weight folded into the vector (capped sample count; 1 under DP).
    loss : float
        Mean local training loss (``nan`` under differential privacy, never released).
    metrics : dict
        Local validation figures.
    duration_secs : float
        Wall time of local training.
    masking_secs : float
        Wall time of clipping, quantising and masking on the node.
    """

    model_id: str
    node_id: str
    round_number: int
    masked: npt.NDArray[np.uint64]
    num_samples: int
    weight: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    duration_secs: float = 0.0
    masking_secs: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    """A snapshot of one registered node, as ``list_nodes()`` returns it."""

    node_id: str
    num_samples: int
    available: bool
    rounds_participated: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_loss: float | None = None
    last_accuracy: float | None = None
    last_duration_secs: float | None = None
    last_error: str | None = None
    recoveries: int = 0


def _clean(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundRecord:
    """What happened in one round attempt, as ``get_round_history()`` returns it.

    Parameters
    ----------
    round_number : int
        1-based round number. A failed attempt carries the number the round would have had.
    status : RoundStatus
        ``completed`` (the model changed) or ``failed`` (no quorum; model unchanged).
    selected_nodes : tuple of str
        Nodes asked to train.
    participating_nodes : tuple of str
        Nodes whose updates were aggregated, in node-id order.
    failed_nodes : dict of str to str
        Nodes that failed, timed out or were rejected, with the reason.
    aggregated_loss : float or None
        Sample-weighted mean of the participants' local training losses.
    validation_loss, validation_accuracy : float or None
        The new global model on the coordinator's validation data (or, without it, the
        sample-weighted federated evaluation on the nodes' validation splits).
    num_samples : int
        Training rows behind the aggregated updates.
    duration_secs : float
        Wall time of the round.
    started_at : str
        ISO-8601 UTC time the round started.
    node_figures : dict of str to dict
        Per participant: ``loss`` (local training loss), ``duration_secs`` and, when the
        node has a validation split, ``val_accuracy`` of its locally trained model. The
        node registry is rebuilt from these on resume.
    """

    round_number: int
    status: RoundStatus = RoundStatus.COMPLETED
    selected_nodes: tuple[str, ...] = ()
    participating_nodes: tuple[str, ...] = ()
    failed_nodes: dict[str, str] = field(default_factory=dict)
    aggregated_loss: float | None = None
    validation_loss: float | None = None
    validation_accuracy: float | None = None
    num_samples: int = 0
    duration_secs: float = 0.0
    started_at: str = ""
    node_figures: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def timed_out_nodes(self) -> tuple[str, ...]:
        """Nodes recorded as timed out in this round."""
        return tuple(n for n, why in self.failed_nodes.items() if why.startswith("timeout"))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (non-finite numbers become ``None``)."""
        return {
            "round_number": self.round_number,
            "status": self.status.value,
            "selected_nodes": list(self.selected_nodes),
            "participating_nodes": list(self.participating_nodes),
            "failed_nodes": dict(self.failed_nodes),
            "aggregated_loss": _clean(self.aggregated_loss),
            "validation_loss": _clean(self.validation_loss),
            "validation_accuracy": _clean(self.validation_accuracy),
            "num_samples": self.num_samples,
            "duration_secs": self.duration_secs,
            "started_at": self.started_at,
            "node_figures": {
                node: {k: v for k, v in figures.items() if _clean(v) is not None}
                for node, figures in self.node_figures.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundRecord:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            round_number=int(data["round_number"]),
            status=RoundStatus(data.get("status", "completed")),
            selected_nodes=tuple(data.get("selected_nodes", ())),
            participating_nodes=tuple(data.get("participating_nodes", ())),
            failed_nodes=dict(data.get("failed_nodes", {})),
            aggregated_loss=data.get("aggregated_loss"),
            validation_loss=data.get("validation_loss"),
            validation_accuracy=data.get("validation_accuracy"),
            num_samples=int(data.get("num_samples", 0)),
            duration_secs=float(data.get("duration_secs", 0.0)),
            started_at=str(data.get("started_at", "")),
            node_figures={
                str(node): {str(k): float(v) for k, v in figures.items()}
                for node, figures in data.get("node_figures", {}).items()
            },
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorState:
    """The coordinator's state, as ``get_state()`` returns it (the guide's fields)."""

    model_id: str
    current_round: int
    total_rounds: int
    is_training: bool
    converged: bool
    best_accuracy: float | None
    best_loss: float | None
    stop_reason: StopReason | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingResult:
    """The outcome of a training run.

    Parameters
    ----------
    model_id : str
        The model trained.
    stop_reason : StopReason
        Why training stopped.
    rounds_completed : int
        Rounds committed by this run.
    current_round : int
        The model's round number at the end (including rounds of earlier runs).
    final_accuracy, final_loss : float or None
        Validation figures of the final model.
    best_accuracy, best_loss : float or None
        Best validation figures seen.
    duration_secs : float
        Wall time of the run.
    error : str or None
        The error that ended the run, if any.
    """

    model_id: str
    stop_reason: StopReason
    rounds_completed: int
    current_round: int
    final_accuracy: float | None
    final_loss: float | None
    best_accuracy: float | None
    best_loss: float | None
    duration_secs: float
    error: str | None = None

    @property
    def converged(self) -> bool:
        """True if a stopping rule (target accuracy or loss change) was met."""
        return self.stop_reason in (StopReason.TARGET_ACCURACY, StopReason.LOSS_CONVERGED)
