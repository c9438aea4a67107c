"""The automatic training loop and the handle of a running run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import Any

from heliosfl.coordinator import Coordinator
from heliosfl.errors import ConfigError, InsufficientNodes
from heliosfl.events import EventBus, TrainingFinished, TrainingStarted
from heliosfl.records import RoundStatus, StopReason, TrainingResult

__all__ = ["TrainingRun", "run_training"]


def _result(
    coordinator: Coordinator,
    reason: StopReason,
    start_round: int,
    started: float,
    error: str | None,
) -> TrainingResult:
    state = coordinator.state
    completed = [r for r in coordinator.history if r.status is RoundStatus.COMPLETED]
    last = completed[-1] if completed else None
    return TrainingResult(
        model_id=coordinator.model_id,
        stop_reason=reason,
        rounds_completed=coordinator.current_round - start_round,
        current_round=coordinator.current_round,
        final_accuracy=None if last is None else last.validation_accuracy,
        final_loss=None if last is None else last.validation_loss,
        best_accuracy=state.best_accuracy,
        best_loss=state.best_loss,
        duration_secs=time.perf_counter() - started,
        error=error,
    )


async def run_training(coordinator: Coordinator, events: EventBus) -> TrainingResult:
    """Run rounds until a stopping rule, ``max_rounds``, or a lost quorum.

    Parameters
    ----------
    coordinator : Coordinator
        The model's coordinator, with its nodes registered.
    events : EventBus
        Where ``TrainingStarted`` and ``TrainingFinished`` are published.

    Returns
    -------
    TrainingResult
        Why training stopped and the final figures.

    Raises
    ------
    InsufficientNodes
        If too few nodes are available, or ``max_failed_attempts`` consecutive round
        attempts lack quorum. Every committed round stays committed.
    asyncio.CancelledError
        If the run is cancelled; the model stays at its last committed round.
    """
    rc = coordinator.config.round_config
    if coordinator.is_training:
        raise ConfigError(
            "model_id", coordinator.model_id, "a model with no training run in progress"
        )
    coordinator.is_training = True
    start_round = coordinator.current_round
    started = time.perf_counter()
    events.publish(
        TrainingStarted(
            model_id=coordinator.model_id, start_round=start_round + 1, max_rounds=rc.max_rounds
        )
    )
    reason = StopReason.MAX_ROUNDS
    error: BaseException | None = None
    failed_attempts = 0
    try:
        while True:
            if coordinator.stop_reason is not None:
                reason = coordinator.stop_reason
                break
            if coordinator.current_round >= rc.max_rounds:
                reason = StopReason.MAX_ROUNDS
                break
            try:
                await coordinator.run_round()
            except InsufficientNodes as exc:
                if exc.what == "available nodes" or exc.what == "selected nodes":
                    raise
                failed_attempts += 1
                if failed_attempts >= rc.max_failed_attempts:
                    raise
            else:
                failed_attempts = 0
    except asyncio.CancelledError:
        reason, error = StopReason.CANCELLED, None
        raise
    except InsufficientNodes as exc:
        reason, error = StopReason.INSUFFICIENT_NODES, exc
        raise
    except BaseException as exc:
        reason, error = StopReason.ERROR, exc
        raise
    finally:
        coordinator.is_training = False
        result = _result(
            coordinator, reason, start_round, started, None if error is None else str(error)
        )
        events.publish(TrainingFinished(model_id=coordinator.model_id, result=result))
    return result


class TrainingRun:
    """A training run in progress: await it for the :class:`TrainingResult`.

    ``await run`` returns the result or raises what ended the run; :meth:`cancel` stops it
    after the current round's nodes are told to stop, leaving the model at its last
    committed round.
    """

    def __init__(self, model_id: str, task: asyncio.Task[TrainingResult]) -> None:
        self.model_id = model_id
        self._task = task

    def __await__(self) -> Generator[Any, None, TrainingResult]:
        return self._task.__await__()

    @property
    def task(self) -> asyncio.Task[TrainingResult]:
        """The asyncio task running the loop."""
        return self._task

    def done(self) -> bool:
        """True once the run has ended (finished, failed or cancelled)."""
        return self._task.done()

    def cancel(self) -> bool:
        """Ask the run to stop; returns False if it had already ended."""
        return self._task.cancel()

    def result(self) -> TrainingResult:
        """The result of a finished run (raises what ended it, or InvalidStateError)."""
        return self._task.result()

    def __repr__(self) -> str:
        state = "done" if self._task.done() else "running"
        return f"TrainingRun(model_id={self.model_id!r}, {state})"
