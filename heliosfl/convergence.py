"""Stopping rules: target accuracy and loss change (pure functions of the history)."""

from __future__ import annotations

from collections.abc import Sequence

from heliosfl.config import RoundConfig
from heliosfl.records import RoundRecord, RoundStatus, StopReason

__all__ = ["check_convergence", "round_loss"]


def round_loss(record: RoundRecord) -> float | None:
    """The loss a round is judged by: validation loss, else the aggregated training loss."""
    if record.validation_loss is not None:
        return record.validation_loss
    return record.aggregated_loss


def check_convergence(history: Sequence[RoundRecord], config: RoundConfig) -> StopReason | None:
    """Return why training has converged after the last completed round, or ``None``.

    Parameters
    ----------
    history : sequence of RoundRecord
        Round attempts in order; failed attempts are ignored.
    config : RoundConfig
        ``target_accuracy`` and ``convergence_threshold``.

    Returns
    -------
    StopReason or None
        ``TARGET_ACCURACY`` when the last completed round's validation accuracy is at
        least the target; ``LOSS_CONVERGED`` when its loss (see :func:`round_loss`)
        changed by less than ``convergence_threshold`` from the previous completed round;
        otherwise ``None``. ``max_rounds`` is not convergence and is checked by the run.
    """
    completed = [r for r in history if r.status is RoundStatus.COMPLETED]
    if not completed:
        return None
    last = completed[-1]
    target = config.target_accuracy
    accuracy = last.validation_accuracy
    if target is not None and accuracy is not None and accuracy >= target:
        return StopReason.TARGET_ACCURACY
    if config.convergence_threshold > 0 and len(completed) >= 2:
        now, before = round_loss(last), round_loss(completed[-2])
        if (
            now is not None
            and before is not None
            and abs(now - before) < config.convergence_threshold
        ):
            return StopReason.LOSS_CONVERGED
    return None
