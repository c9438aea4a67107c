"""Byzantine-robust aggregation: rules that bound what a few arbitrary updates can do.

Each rule is a :class:`~heliosfl.strategies.Strategy`, selectable like FedAvg by name
(``"median"``, ``"trimmed_mean"``, ``"krum"``) or as an object with settings. All three are
pure, deterministic numpy functions of the deltas, which arrive in node-id order.

=================  ======================================================================
CoordinateMedian   coordinate-wise median of the deltas (Yin et al. 2018)
TrimmedMean        coordinate-wise mean after dropping the largest and smallest
                   ``trim_fraction`` of values (Yin et al. 2018)
Krum               the delta (or mean of the ``multi`` deltas) closest to its neighbours
                   (Blanchard et al. 2017)
=================  ======================================================================

The weights (sample counts) are validated like FedAvg's but not used: a node reports its
own sample count, so a weighted rule would let a single node that claims enough samples
decide the result, which is exactly the influence these rules exist to deny.

The guarantees hold for the updates the strategy sees. Under differential privacy or
secure aggregation the coordinator sees one (noisy or summed) mean, not the individual
updates, so a robust rule has nothing to act on there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from heliosfl.errors import ConfigError, InsufficientNodes
from heliosfl.strategies import FloatArray, Strategy, StrategyState
from heliosfl.validation import check_float, check_int

__all__ = ["CoordinateMedian", "Krum", "TrimmedMean"]


def _stack(
    params: FloatArray, deltas: Sequence[FloatArray], weights: Sequence[float]
) -> FloatArray:
    """Check a round's updates as :func:`~heliosfl.strategies.weighted_mean` does; stack them.

    Returns an ``(n, *params.shape)`` float64 array. Raises ConfigError for no updates, a
    weight count or value FedAvg would refuse, a shape unlike the parameters', or a
    non-finite entry (a NaN would otherwise poison every coordinate it touches).
    """
    if len(deltas) == 0:
        raise ConfigError("updates", [], "a non-empty list of updates")
    if len(weights) != len(deltas):
        raise ConfigError("weights", len(weights), f"one weight per update ({len(deltas)})")
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError("weights", w.tolist(), "finite, non-negative numbers with a positive sum")
    shape = np.shape(params)
    for delta in deltas:
        if np.shape(delta) != shape:
            raise ConfigError("update shape", np.shape(delta), f"{shape}, the parameters' shape")
    stacked = np.stack([np.asarray(d, dtype=np.float64) for d in deltas])
    if not np.all(np.isfinite(stacked)):
        bad = [i for i in range(len(deltas)) if not np.all(np.isfinite(stacked[i]))]
        raise ConfigError(
            "update values",
            f"non-finite entries in updates at positions {bad}",
            "finite numbers",
            "Reject non-finite updates before aggregating (the coordinator does).",
        )
    return stacked


@dataclass(frozen=True, slots=True)
class CoordinateMedian(Strategy):
    """Coordinate-wise median of the client deltas.

    ``w_new = w + server_learning_rate * median_k(delta_k)``, the median taken separately in
    every coordinate (for an even number of updates, the mean of the two middle values).

    What it tolerates: in each coordinate, fewer than half of the values may be arbitrary
    (breakdown point 1/2). While at most ``ceil(n / 2) - 1`` of the ``n`` values in a
    coordinate are arbitrary, the median lies within the range of the honest values of that
    coordinate, however large the others are. The attackers may differ from coordinate to
    coordinate. Yin et al. bound the statistical error when the honest clients' data are
    i.i.d.; with heterogeneous clients the median is still bounded but may be biased away
    from the mean.

    Weights are ignored (see the module docstring): under a weighted median, one node
    claiming more than half of the samples would set every coordinate.

    Parameters
    ----------
    server_learning_rate : float
        Step size applied to the median delta, a finite number > 0 (1 takes it whole).

    References
    ----------
    Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards
    Optimal Statistical Rates", ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> deltas = [np.array([1.0]), np.array([2.0]), np.array([1e6])]
    >>> CoordinateMedian().aggregate(np.zeros(1), deltas, [1, 1, 1], {})[0]
    array([2.])
    """

    name: ClassVar[str] = "median"
    server_learning_rate: float = 1.0

    def __post_init__(self) -> None:
        value = check_float(
            "CoordinateMedian.server_learning_rate", self.server_learning_rate, low=0.0
        )
        object.__setattr__(self, "server_learning_rate", value)

    def aggregate(
        self,
        params: FloatArray,
        deltas: Sequence[FloatArray],
        weights: Sequence[float],
        state: Mapping[str, FloatArray],
    ) -> tuple[FloatArray, StrategyState]:
        """Return ``params`` plus the scaled coordinate-wise median delta; no state."""
        median = np.median(_stack(params, deltas, weights), axis=0)
        return params + self.server_learning_rate * median, {}


@dataclass(frozen=True, slots=True)
class TrimmedMean(Strategy):
    """Coordinate-wise trimmed mean of the client deltas.

    In every coordinate, sort the ``n`` values, drop the ``b = floor(trim_fraction * n)``
    largest and the ``b`` smallest, and average the remaining ``n - 2b``:
    ``w_new = w + trimmed_mean_k(delta_k)``. ``trim_fraction = 0`` is the unweighted mean.
    (``trim_fraction * n`` is rounded to 9 decimals before the floor, so 0.29 of 100 drops
    29, not 28.)

    What it tolerates: in each coordinate, at most ``b`` arbitrary values (breakdown point
    ``b / n``, about ``trim_fraction``). While no more than ``b`` values of a coordinate
    are arbitrary, every kept value and hence the result lies within the range of the
    honest values of that coordinate. With more than ``b`` it gives no such bound. Yin et
    al. bound the statistical error for i.i.d. honest data when ``trim_fraction`` is at
    least the fraction of Byzantine clients.

    Weights are ignored (see the module docstring).

    Parameters
    ----------
    trim_fraction : float
        Fraction trimmed from each end of every coordinate, a finite number in [0, 0.5).

    References
    ----------
    Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards
    Optimal Statistical Rates", ICML 2018.

    Examples
    --------
    >>> import numpy as np
    >>> deltas = [np.array([v]) for v in (1.0, 2.0, 3.0, 4.0, 1e6)]
    >>> TrimmedMean(trim_fraction=0.2).aggregate(np.zeros(1), deltas, [1] * 5, {})[0]
    array([3.])
    """

    name: ClassVar[str] = "trimmed_mean"
    trim_fraction: float = 0.1

    def __post_init__(self) -> None:
        value = check_float(
            "TrimmedMean.trim_fraction",
            self.trim_fraction,
            low=0.0,
            high=0.5,
            low_open=False,
            high_open=True,
        )
        object.__setattr__(self, "trim_fraction", value)

    def trimmed_per_side(self, n: int) -> int:
        """How many values are dropped from each end of a coordinate with ``n`` updates."""
        return min(math.floor(round(self.trim_fraction * n, 9)), (n - 1) // 2)

    def aggregate(
        self,
        params: FloatArray,
        deltas: Sequence[FloatArray],
        weights: Sequence[float],
        state: Mapping[str, FloatArray],
    ) -> tuple[FloatArray, StrategyState]:
        """Return ``params`` plus the coordinate-wise trimmed mean delta; no state."""
        ordered = np.sort(_stack(params, deltas, weights), axis=0)
        n = ordered.shape[0]
        b = self.trimmed_per_side(n)
        return params + ordered[b : n - b].mean(axis=0), {}


@dataclass(frozen=True, slots=True)
class Krum(Strategy):
    """Krum and Multi-Krum: keep the deltas that sit closest to their neighbours.

    With ``n`` deltas and ``f = num_byzantine``, the score of delta ``i`` is the sum of its
    squared Euclidean distances to its ``n - f - 2`` nearest other deltas. Krum
    (``multi = 1``) returns ``w + delta_i`` for the lowest score; Multi-Krum (``multi = m``)
    adds the unweighted mean of the ``m`` lowest-scored deltas. Equal scores are broken by
    node order (the earlier node wins). The mean is unweighted because sample counts are
    self-reported: a selected attacker claiming many samples would otherwise dominate it.

    What it tolerates: up to ``f`` Byzantine clients sending arbitrary deltas, provided
    ``n >= 2f + 3``. Blanchard et al. prove (alpha, f)-Byzantine resilience (the expected
    output makes an angle below pi/2 with the true gradient, with bounded moments) when the
    ``n - f`` honest updates are i.i.d. unbiased estimates of the gradient ``g`` whose
    spread is small against it: ``eta(n, f) * sqrt(d) * sigma < ||g||``. Heterogeneous
    (non-i.i.d.) clients or multi-step local training break these assumptions; then Krum
    still returns a real client's delta but may ignore honest minorities. It is not
    robust to more than ``f`` attackers.

    Parameters
    ----------
    num_byzantine : int
        ``f``, the number of attackers to tolerate (>= 0).
    multi : int
        ``m``, how many best-scored deltas to average (>= 1; 1 is Krum).

    Raises
    ------
    InsufficientNodes
        From :meth:`aggregate`, with fewer than ``max(2f + 3, m + f)`` updates.

    Notes
    -----
    Distances use ``||a||^2 + ||b||^2 - 2 a.b`` with one matrix product in float64, after
    subtracting the coordinate-wise median (distances do not change, and honest deltas
    stay small, which limits cancellation); tiny negative results are clipped to 0 and
    overflowing ones count as infinitely far. Cost: ``O(n^2 d)`` time, ``O(n d + n^2)``
    memory.

    References
    ----------
    Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine
    Tolerant Gradient Descent", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> deltas = [np.array([1.0]), np.array([1.1]), np.array([0.9]), np.array([50.0])]
    >>> Krum(num_byzantine=0).aggregate(np.zeros(1), deltas, [1] * 4, {})[0]
    array([1.])
    """

    name: ClassVar[str] = "krum"
    num_byzantine: int = 0
    multi: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "num_byzantine", check_int("Krum.num_byzantine", self.num_byzantine, low=0)
        )
        object.__setattr__(self, "multi", check_int("Krum.multi", self.multi, low=1))

    def required_updates(self) -> int:
        """The fewest updates :meth:`aggregate` accepts: ``max(2f + 3, m + f)``."""
        return max(2 * self.num_byzantine + 3, self.multi + self.num_byzantine)

    def scores(self, deltas: FloatArray) -> FloatArray:
        """Krum score of each row of ``deltas`` (shape ``(n, d)``, ``n >= 2f + 3``)."""
        n = deltas.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):
            centred = deltas - np.median(deltas, axis=0)
            norms = np.einsum("ij,ij->i", centred, centred)
            dist = norms[:, None] + norms[None, :] - 2.0 * (centred @ centred.T)
        dist[np.isnan(dist)] = np.inf
        np.maximum(dist, 0.0, out=dist)
        np.fill_diagonal(dist, np.inf)  # a delta is not its own neighbour
        nearest = n - self.num_byzantine - 2
        scores: FloatArray = np.sort(dist, axis=1)[:, :nearest].sum(axis=1)
        return scores

    def aggregate(
        self,
        params: FloatArray,
        deltas: Sequence[FloatArray],
        weights: Sequence[float],
        state: Mapping[str, FloatArray],
    ) -> tuple[FloatArray, StrategyState]:
        """Return ``params`` plus the selected delta (or mean of ``multi``); no state.

        Raises
        ------
        InsufficientNodes
            If there are fewer than ``max(2 * num_byzantine + 3, multi + num_byzantine)``
            updates.
        """
        stacked = _stack(params, deltas, weights)
        n = stacked.shape[0]
        required = self.required_updates()
        if n < required:
            raise InsufficientNodes(
                required,
                n,
                f"updates for Krum (num_byzantine={self.num_byzantine}, multi={self.multi})",
            )
        scores = self.scores(stacked.reshape(n, -1))
        chosen = np.sort(np.argsort(scores, kind="stable")[: self.multi])
        return params + stacked[chosen].mean(axis=0), {}
