"""Pure helpers of a round: checking an update, and the round's summary figures."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from heliosfl.records import MaskedUpdate, ModelUpdate, RoundRecord

if TYPE_CHECKING:
    from heliosfl.accumulate import UpdateSummary

__all__ = [
    "check_update",
    "check_updates",
    "node_figures",
    "summarize_round",
    "weighted_figure",
]


def weighted_figure(values: Sequence[tuple[float | None, float]]) -> float | None:
    """Weighted mean of ``(value, weight)`` pairs, skipping missing or non-finite values.

    Returns ``None`` when nothing is left to average.
    """
    pairs = [(v, w) for v, w in values if v is not None and math.isfinite(v) and w > 0]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    return float(sum(v * w for v, w in pairs) / total)


def check_update(
    update: object,
    *,
    model_id: str,
    round_number: int,
    shape: tuple[int, ...],
    registered: Collection[str],
    seen: Collection[str],
    selected: Collection[str] | None,
) -> str | None:
    """Return why ``update`` must be rejected from this round, or ``None`` if it is good.

    Parameters
    ----------
    update : object
        What a node returned.
    model_id : str
        The model of the round.
    round_number : int
        The round being executed.
    shape : tuple of int
        The shape of the model's parameter vector.
    registered : collection of str
        Registered node ids.
    seen : collection of str
        Nodes whose update was already accepted in this round.
    selected : collection of str or None
        The nodes selected for this round (``None``: no selection was made).
    """
    if not isinstance(update, ModelUpdate):
        return f"not a ModelUpdate ({type(update).__name__})"
    if update.model_id != model_id:
        return f"update is for model {update.model_id!r}"
    node_id: object = update.node_id  # typed str, but sent by a node
    if not isinstance(node_id, str):
        return f"node_id must be a str, found a {type(node_id).__name__}"
    if update.node_id not in registered:
        return "node is not registered"
    if update.node_id in seen:
        return "duplicate update from this node"
    if selected is not None and update.node_id not in selected:
        return "node was not selected for this round"
    if update.round_number != round_number:
        return f"stale update: trained for round {update.round_number}, not {round_number}"
    delta = update.delta
    if not isinstance(delta, np.ndarray) or delta.shape != shape:
        found = getattr(delta, "shape", type(delta).__name__)
        return f"delta shape {found} does not match the model's {shape}"
    if not np.issubdtype(delta.dtype, np.floating) or not np.all(np.isfinite(delta)):
        return "delta holds non-finite or non-float values"
    count = update.num_samples
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
        return f"num_samples must be an integer >= 1, found {count!r}"
    if not _finite_number(update.loss):
        return f"loss must be a finite number, found {update.loss!r}"
    if not _finite_number(update.duration_secs) or update.duration_secs < 0:
        return f"duration_secs must be a finite number >= 0, found {update.duration_secs!r}"
    metrics = update.metrics
    if not isinstance(metrics, Mapping) or not all(
        isinstance(k, str) and _finite_number(v) for k, v in metrics.items()
    ):
        return "metrics must map names to finite numbers"
    return None


def screen_update(
    update: object,
    *,
    model_id: str,
    round_number: int,
    shape: tuple[int, ...],
    registered: Collection[str],
    seen: Collection[str],
    selected: Collection[str] | None,
    guards: Sequence[Callable[[ModelUpdate], str | None]] = (),
) -> str | None:
    """:func:`check_update`, then each guard on an update that passed; the first reason.

    The checks every update gets on its own, whether the round holds its updates
    (:func:`check_updates`) or sums them as they come (:class:`~heliosfl.accumulate.RoundSum`).
    """
    reason = check_update(
        update,
        model_id=model_id,
        round_number=round_number,
        shape=shape,
        registered=registered,
        seen=seen,
        selected=selected,
    )
    if reason is None and isinstance(update, ModelUpdate):
        for guard in guards:
            reason = guard(update)
            if reason is not None:
                break
    return reason


def above_max_norm(norm: float, max_norm: float | None) -> str | None:
    """Why an update of L2 norm `norm` is absurd under ``max_update_norm``, or ``None``."""
    if max_norm is not None and norm > max_norm:
        return f"absurd norm: {norm:.3g} exceeds max_update_norm={max_norm:g}"
    return None


def _finite_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float range
        return False


def check_updates(
    updates: Sequence[object],
    *,
    model_id: str,
    round_number: int,
    shape: tuple[int, ...],
    registered: Collection[str],
    selected: Collection[str] | None,
    guards: Sequence[Callable[[ModelUpdate], str | None]] = (),
    max_norm: float | None = None,
    outlier_factor: float | None = None,
) -> tuple[list[ModelUpdate], list[tuple[str, str]]]:
    """Split a round's updates into accepted ones and rejected ones with their reasons.

    ``guards`` are further checks (e.g. HIPAA's gradient-leakage test) run on every update
    that passed :func:`check_update`; a guard returns a reason to reject, or ``None``.
    Then updates with an L2 norm above ``max_norm``, or above ``outlier_factor`` times the
    median norm of the round's valid updates (when at least three passed), are rejected as
    absurd.

    Returns
    -------
    tuple of (list of ModelUpdate, list of (str, str))
        The accepted updates in node-id order, and ``(node_id, reason)`` for each
        rejected one (see :func:`check_update`).
    """
    accepted: list[ModelUpdate] = []
    rejected: list[tuple[str, str]] = []
    seen: set[str] = set()
    # Membership tests per update: sets, or a 10,000-node round checks in O(n^2).
    registered = registered if isinstance(registered, set | frozenset) else set(registered)
    if selected is not None and not isinstance(selected, set | frozenset):
        selected = set(selected)
    for update in updates:
        reason = screen_update(
            update,
            model_id=model_id,
            round_number=round_number,
            shape=shape,
            registered=registered,
            seen=seen,
            selected=selected,
            guards=guards,
        )
        if reason is None and isinstance(update, ModelUpdate):
            accepted.append(update)
            seen.add(update.node_id)
        else:
            rejected.append((str(getattr(update, "node_id", "?")), f"rejected: {reason}"))
    accepted.sort(key=lambda u: u.node_id)
    if max_norm is None and outlier_factor is None:
        return accepted, rejected
    norms = {u.node_id: float(np.linalg.norm(u.delta)) for u in accepted}
    # The median of all valid norms (O(n log n)); one absurd norm barely moves it.
    median = float(np.median(list(norms.values()))) if len(norms) >= 3 else None
    kept = []
    for update in accepted:
        norm = norms[update.node_id]
        reason = above_max_norm(norm, max_norm)
        if (
            reason is None
            and outlier_factor is not None
            and median
            and norm > outlier_factor * median
        ):
            reason = (
                f"absurd norm: {norm:.3g} is more than {outlier_factor:g} times the "
                f"median of the round ({median:.3g})"
            )
        if reason is None:
            kept.append(update)
        else:
            rejected.append((update.node_id, f"rejected: {reason}"))
    return kept, rejected


def summarize_round(
    round_number: int,
    accepted: Sequence[ModelUpdate | MaskedUpdate | UpdateSummary],
    failures: Mapping[str, str],
    selected: Sequence[str] | None,
    started_at: str,
) -> RoundRecord:
    """The record of a round attempt before aggregation (figures of the accepted updates).

    ``accepted`` must be in node-id order; ``aggregated_loss`` is the sample-weighted
    mean of their local training losses.
    """
    participants = tuple(u.node_id for u in accepted)
    figures = {u.node_id: node_figures(u) for u in accepted}
    return RoundRecord(
        round_number=round_number,
        selected_nodes=participants if selected is None else tuple(selected),
        participating_nodes=participants,
        failed_nodes=dict(sorted(failures.items())),
        aggregated_loss=weighted_figure([(u.loss, u.num_samples) for u in accepted]),
        num_samples=sum(u.num_samples for u in accepted),
        started_at=started_at,
        node_figures=figures,
    )


def node_figures(update: ModelUpdate | MaskedUpdate | UpdateSummary) -> dict[str, float]:
    """The per-node figures a round record keeps: loss, duration, local val accuracy."""
    figures = {"loss": float(update.loss), "duration_secs": float(update.duration_secs)}
    accuracy = update.metrics.get("val_accuracy")
    if accuracy is not None:
        figures["val_accuracy"] = float(accuracy)
    return figures
