"""The automatic training loop and the handle of a running run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import Any

from heliosfl.coordinator import Coordinator
from heliosfl.errors import ConfigError, InsufficientNodes, PrivacyBudgetExhausted
from heliosfl.events import EventBus, TrainingFinished, TrainingStarted
from heliosfl.records import RoundStatus, StopReason, TrainingResult

__all__ = ["TrainingRun"]


class TrainingRun:
    """A training run in progress: await it for the :class:`TrainingResult`.

    Creating a run marks the coordinator as training and publishes ``TrainingStarted``
    at once; whatever ends the run (its stopping rules, an error, or :meth:`cancel`, even
    before the task first runs) publishes ``TrainingFinished`` exactly once and clears the
    flag. ``await run`` returns the result or raises what ended the run (``CancelledError``
    after :meth:`cancel`); the model stays at its last committed round.

    Parameters
    ----------
    coordinator : Coordinator
        The model's coordinator, with its nodes registered.
    events : EventBus
        Where the run's start and end are published.

    Raises
    ------
    ConfigError
        If the coordinator is already training.
    """

    def __init__(self, coordinator: Coordinator, events: EventBus) -> None:
        if coordinator.is_training:
            raise ConfigError(
                "model_id",
                coordinator.model_id,
                "a model with no training run in progress",
                "Await or cancel the current run first.",
            )
        self.model_id = coordinator.model_id
        self._coordinator = coordinator
        self._events = events
        self._start_round = coordinator.current_round
        self._started = time.perf_counter()
        self._finished = False
        coordinator.is_training = True
        rc = coordinator.config.round_config
        events.publish(
            TrainingStarted(
                model_id=self.model_id,
                start_round=self._start_round + 1,
                max_rounds=rc.max_rounds,
            )
        )
        self._task = asyncio.create_task(self._loop(), name=f"heliosfl-train-{self.model_id}")
        self._task.add_done_callback(self._on_done)

    async def _loop(self) -> TrainingResult:
        coordinator = self._coordinator
        rc = coordinator.config.round_config
        failed_attempts = 0
        try:
            while True:
                if coordinator.stop_reason is not None:
                    return self._finish(coordinator.stop_reason, None)
                if coordinator.current_round >= rc.max_rounds:
                    return self._finish(StopReason.MAX_ROUNDS, None)
                try:
                    await coordinator.next_round()
                except PrivacyBudgetExhausted:
                    if coordinator.current_round > self._start_round:
                        # a fixed noise multiplier: rounds run until the budget is spent
                        return self._finish(StopReason.BUDGET_EXHAUSTED, None)
                    raise  # nothing could run: say so
                except InsufficientNodes as exc:
                    if exc.what != "successful updates":
                        raise  # too few nodes to select: retrying changes nothing
                    failed_attempts += 1
                    if failed_attempts >= rc.max_failed_attempts:
                        raise
                else:
                    failed_attempts = 0
        except asyncio.CancelledError:
            self._finish(StopReason.CANCELLED, None)
            raise
        except InsufficientNodes as exc:
            self._finish(StopReason.INSUFFICIENT_NODES, exc)
            raise
        except PrivacyBudgetExhausted as exc:
            self._finish(StopReason.BUDGET_EXHAUSTED, exc)
            raise
        except Exception as exc:
            self._finish(StopReason.ERROR, exc)
            raise

    def _finish(self, reason: StopReason, error: BaseException | None) -> TrainingResult:
        """Clear the training flag and publish TrainingFinished (once)."""
        result = self._result(reason, error)
        if not self._finished:
            self._finished = True
            self._coordinator.is_training = False
            self._events.publish(TrainingFinished(model_id=self.model_id, result=result))
        return result

    def _on_done(self, task: asyncio.Task[TrainingResult]) -> None:
        if not self._finished:  # cancelled before the loop ever ran
            self._finish(StopReason.CANCELLED, None)

    def _result(self, reason: StopReason, error: BaseException | None) -> TrainingResult:
        coordinator = self._coordinator
        state = coordinator.state
        completed = [r for r in coordinator.history if r.status is RoundStatus.COMPLETED]
        last = completed[-1] if completed else None
        return TrainingResult(
            model_id=self.model_id,
            stop_reason=reason,
            rounds_completed=coordinator.current_round - self._start_round,
            current_round=coordinator.current_round,
            final_accuracy=None if last is None else last.validation_accuracy,
            final_loss=None if last is None else last.validation_loss,
            best_accuracy=state.best_accuracy,
            best_loss=state.best_loss,
            duration_secs=time.perf_counter() - self._started,
            error=None if error is None else str(error),
        )

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
