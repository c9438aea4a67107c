"""RoundHistoryTable: the rounds of a model, newest first, updated live."""

from __future__ import annotations

import html

import ipywidgets as widgets

from heliosfl.coordinator import Coordinator
from heliosfl.events import Event, EventBus, ModelRewound, RoundCompleted, RoundFailed
from heliosfl.records import RoundRecord, RoundStatus
from heliosfl.ui._live import EventFeed, Throttle

__all__ = ["RoundHistoryTable"]


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class RoundHistoryTable(widgets.HTML):
    """A table of round attempts: participants, failures (with reasons on hover), figures.

    Parameters
    ----------
    coordinator : Coordinator
        The model's coordinator (its history fills the table).
    events : EventBus
        The engine's event bus.
    max_rows : int
        Newest rounds shown.
    """

    def __init__(self, coordinator: Coordinator, events: EventBus, *, max_rows: int = 50) -> None:
        super().__init__()
        self.add_class("heliosfl-history")
        self.max_rows = max_rows
        self.records: list[RoundRecord] = list(coordinator.history)
        self._throttle = Throttle(self._draw)
        self._feed = EventFeed(events, self._on_event, coordinator.model_id)
        self._throttle.poke()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RoundCompleted | RoundFailed):
            self.records.append(event.record)
        elif isinstance(event, ModelRewound):
            self.records = [r for r in self.records if r.round_number <= event.to_round]
        else:
            return
        self._throttle.poke()

    def flush(self) -> None:
        """Draw now if an update is pending."""
        self._throttle.flush()

    def rows(self) -> list[dict[str, object]]:
        """The table's rows, newest first (what is drawn)."""
        out: list[dict[str, object]] = []
        for record in reversed(self.records[-self.max_rows :]):
            out.append(
                {
                    "round": record.round_number,
                    "status": record.status.value,
                    "participants": len(record.participating_nodes),
                    "failed": len(record.failed_nodes),
                    "loss": record.validation_loss,
                    "accuracy": record.validation_accuracy,
                    "seconds": record.duration_secs,
                    "reasons": record.failed_nodes,
                }
            )
        return out

    def _draw(self) -> None:
        head = "".join(
            f"<th>{h}</th>"
            for h in ("round", "status", "nodes", "failed", "val loss", "val accuracy", "s")
        )
        body = []
        for row in self.rows():
            reasons = row["reasons"]
            assert isinstance(reasons, dict)  # noqa: S101
            tip = html.escape("; ".join(f"{n}: {r}" for n, r in sorted(reasons.items())[:20]))
            failed = RoundStatus.FAILED.value == row["status"]
            body.append(
                f"<tr class='{'heliosfl-failed' if failed else ''}'>"
                f"<td>{row['round']}</td><td>{row['status']}</td>"
                f"<td>{row['participants']}</td><td title='{tip}'>{row['failed']}</td>"
                f"<td>{_num(row['loss'])}</td>"  # type: ignore[arg-type]
                f"<td>{_num(row['accuracy'])}</td>"  # type: ignore[arg-type]
                f"<td>{_num(row['seconds'], 2)}</td></tr>"  # type: ignore[arg-type]
            )
        self.value = (
            "<div class='heliosfl-history-scroll' style='max-height:260px;overflow:auto'>"
            "<table class='heliosfl-table' style='border-collapse:collapse;font-size:12px'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )

    def close(self) -> None:
        """Stop listening and close the widget."""
        self._feed.close()
        self._throttle.cancel()
        super().close()
