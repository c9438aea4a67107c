"""Streaming aggregation: a round's updates summed as they are produced, then dropped.

A round of 10,000 nodes of a 10,258-parameter model produces 820 MB of float64 deltas.
When nothing in the round needs to see every update at once, :class:`RoundSum` takes each
update as it is produced, checks it exactly as the held path does
(:func:`~heliosfl.rounds.screen_update`: the same checks and update guards, then
``max_update_norm``), adds it to
one float64 accumulator and keeps only its figures (:class:`UpdateSummary`). Memory for
the updates is then one parameter vector, whatever the number of nodes.

What it sums:

- **Without differential privacy:** ``sum_i n_i * delta_i`` and ``sum_i n_i``; their
  ratio is FedAvg's weighted mean, and the strategy (FedAvg, FedProx, FedOpt) takes it as
  a single update, as it does with a held round's mean.
- **With differential privacy:** the sum of the updates clipped to the clip norm (L2 for
  Gaussian noise, L1 for Laplace). :meth:`~heliosfl.dp_rounds.PrivateRounds.aggregate_sum`
  adds the noise and divides by the fixed denominator, as for a held round.

A round streams only if every rule it applies holds per update. The coordinator does not
stream (it holds the updates) when:

- the absurd-norm rule compares each norm with the round's median
  (``norm_outlier_factor``, on by default, off under DP);
- a robust rule (median, trimmed mean, Krum) needs every update;
- adaptive clipping needs every norm;
- the round is a secure-aggregation round.

The sum is taken in the order updates are produced, not node-id order, so a streamed
round equals the held round to floating-point tolerance (a contract test checks 1e-12),
not bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from heliosfl.records import ModelUpdate
from heliosfl.rounds import above_max_norm, screen_update

__all__ = ["RoundSum", "UpdateSummary"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateSummary:
    """What a round keeps of an update once its delta is in the sum.

    The fields a round record, its events and the node registry read of a
    :class:`~heliosfl.records.ModelUpdate`.
    """

    node_id: str
    num_samples: int
    loss: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    duration_secs: float = 0.0


class RoundSum:
    """Checks and sums one round's updates as they arrive (see the module docstring).

    Parameters
    ----------
    model_id, round_number, shape, registered, selected
        What :func:`~heliosfl.rounds.check_update` checks an update against.
    guards : sequence of callable
        Further per-update checks (e.g. HIPAA's gradient-leakage test).
    max_norm : float or None
        ``max_update_norm``: a larger update is rejected as absurd.
    clip : tuple of (str, float) or None
        ``(mechanism, clip_norm)`` under differential privacy: updates are clipped
        (``"gaussian"``: L2, ``"laplace"``: L1) and summed with equal weights. ``None``:
        summed with their sample counts as weights.

    Notes
    -----
    Not thread-safe: one round's updates are added from one thread (the batched training
    call's).
    """

    def __init__(
        self,
        *,
        model_id: str,
        round_number: int,
        shape: tuple[int, ...],
        registered: Collection[str],
        selected: Collection[str] | None,
        guards: Sequence[Callable[[ModelUpdate], str | None]] = (),
        max_norm: float | None = None,
        clip: tuple[str, float] | None = None,
    ) -> None:
        self.model_id = model_id
        self.round_number = round_number
        self.shape = shape
        self._registered = set(registered)
        self._selected = None if selected is None else set(selected)
        self._guards = tuple(guards)
        self._max_norm = max_norm
        self._clip = clip
        self._clipper: Callable[[FloatArray, float], tuple[FloatArray, float]] | None = None
        if clip is not None:  # imported here: heliosfl.privacy loads dp-accounting (1 s)
            from heliosfl.privacy.clipping import clip_l1, clip_l2

            self._clipper = clip_l1 if clip[0] == "laplace" else clip_l2
        self.total: FloatArray = np.zeros(shape, dtype=np.float64)
        self.weight = 0.0
        self.accepted: list[UpdateSummary] = []
        self.rejected: list[tuple[str, str]] = []
        self._seen: set[str] = set()
        #: Set by the dispatch when the round's updates went through :meth:`add`.
        self.streamed = False

    def add(self, update: ModelUpdate) -> UpdateSummary | str:
        """Check `update` and add it to the sum; its summary, or why it was rejected."""
        reason = screen_update(
            update,
            model_id=self.model_id,
            round_number=self.round_number,
            shape=self.shape,
            registered=self._registered,
            seen=self._seen,
            selected=self._selected,
            guards=self._guards,
        )
        if reason is None and self._max_norm is not None:
            reason = above_max_norm(float(np.linalg.norm(update.delta)), self._max_norm)
        node_id = str(getattr(update, "node_id", "?"))
        if reason is not None:
            self.rejected.append((node_id, f"rejected: {reason}"))
            return f"rejected: {reason}"
        if self._clip is None or self._clipper is None:
            self.total += update.num_samples * update.delta
            self.weight += float(update.num_samples)
        else:
            self.total += self._clipper(update.delta, self._clip[1])[0]
            self.weight += 1.0
        self._seen.add(node_id)
        summary = UpdateSummary(
            node_id=update.node_id,
            num_samples=int(update.num_samples),
            loss=float(update.loss),
            metrics=dict(update.metrics),
            duration_secs=float(update.duration_secs),
        )
        self.accepted.append(summary)
        return summary

    @property
    def portable(self) -> bool:
        """Whether parts of this sum can be taken elsewhere (a Dask worker): no guards.

        Update guards are the kernel's callables (HIPAA's leakage test holds the
        manager), so a round with guards is summed in the kernel.
        """
        return not self._guards

    def part(self, node_ids: Collection[str]) -> RoundSum:
        """An empty sum with this one's rules, for the updates of `node_ids` only.

        A Dask worker sums its nodes' updates into a part; :meth:`merge` adds the part.
        """
        return RoundSum(
            model_id=self.model_id,
            round_number=self.round_number,
            shape=self.shape,
            registered=set(node_ids) & self._registered,
            selected=set(node_ids) if self._selected is None else set(node_ids) & self._selected,
            max_norm=self._max_norm,
            clip=self._clip,
        )

    def merge(self, part: RoundSum) -> None:
        """Add a part summed elsewhere (its nodes are disjoint from this sum's)."""
        self.total += part.total
        self.weight += part.weight
        self.accepted.extend(part.accepted)
        self.rejected.extend(part.rejected)
        self._seen |= part._seen

    def discard(self) -> None:
        """Forget everything summed (the batch that fed the sum failed as a whole)."""
        self.total[...] = 0.0
        self.weight = 0.0
        self.accepted.clear()
        self.rejected.clear()
        self._seen.clear()

    def mean(self) -> FloatArray:
        """The sample-weighted mean of the accepted deltas (without DP)."""
        return self.total / self.weight
