"""Node selection: which available nodes train in a round.

Pure functions of the candidates and an explicit random generator, so that every rule is
deterministic for a seed and testable without a coordinator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from heliosfl.config import NodeSelectionStrategy, SelectionKind

__all__ = ["Candidate", "select_nodes"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """What selection knows about one available node.

    Parameters
    ----------
    node_id : str
        The node.
    num_samples : int
        Samples the node registered with.
    performance : float or None
        The node's last measured validation accuracy (or ``None`` if never measured).
    """

    node_id: str
    num_samples: int
    performance: float | None = None


def select_nodes(
    strategy: NodeSelectionStrategy,
    candidates: Sequence[Candidate],
    rng: np.random.Generator,
) -> list[str]:
    """Pick the nodes of one round.

    Parameters
    ----------
    strategy : NodeSelectionStrategy
        The rule.
    candidates : sequence of Candidate
        The available nodes (order does not matter).
    rng : numpy.random.Generator
        Used by ``random(k)`` only; seeded per round by the coordinator.

    Returns
    -------
    list of str
        The chosen node ids, sorted. Rules that pick ``k`` return
        ``min(k, len(candidates))`` nodes; the coordinator checks the quorum.

    Notes
    -----
    - ``all``: every candidate.
    - ``random(k)``: ``k`` drawn uniformly without replacement (fixed-size sampling, not
      Poisson sampling).
    - ``most_data(k)``: largest ``num_samples`` first, ties broken by node id.
    - ``best_performance(k)``: nodes never measured first (by node id), then by highest
      last validation accuracy, ties broken by node id.
    """
    ordered = sorted(candidates, key=lambda c: c.node_id)
    if strategy.kind is SelectionKind.ALL:
        return [c.node_id for c in ordered]
    assert strategy.k is not None  # guaranteed by NodeSelectionStrategy validation  # noqa: S101
    k = min(strategy.k, len(ordered))
    if strategy.kind is SelectionKind.RANDOM:
        if k == 0:
            return []
        picks = rng.choice(len(ordered), size=k, replace=False)
        return sorted(ordered[int(i)].node_id for i in picks)
    if strategy.kind is SelectionKind.MOST_DATA:
        ranked = sorted(ordered, key=lambda c: (-c.num_samples, c.node_id))
    else:
        ranked = sorted(
            ordered,
            key=lambda c: (
                c.performance is not None,
                -(c.performance if c.performance is not None else 0.0),
                c.node_id,
            ),
        )
    return sorted(c.node_id for c in ranked[:k])
