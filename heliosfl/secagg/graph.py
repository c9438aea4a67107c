"""The neighbour graph of SecAgg+: who masks with, and shares keys with, whom.

In SecAgg (Bonawitz et al. 2017) every pair of nodes shares a mask: the graph is complete
and each node's cost grows linearly with ``n``. SecAgg+ (Bell et al. 2020) replaces it by
a ``k``-regular graph with ``k = O(log n)``: a Harary graph ``H(n, k)`` (each node joined
to the ``k/2`` nearest nodes on each side of a cycle) whose vertices are randomly
permuted, so no party can choose its neighbours. Bell et al. prove that such a graph keeps
the protocol secure and correct with high probability when ``k`` is large enough for the
fractions of corrupt and dropped nodes assumed; the ``k`` their theorems need depends on
those fractions and on the failure probability targeted.

:func:`default_neighbours` is a cost-oriented default, not their bound: the complete graph
up to 16 nodes, then ``k = 2 * ceil(1.5 * log2(n))``, which gives ``k = 20`` for 100 nodes,
``k = 30`` for 1,000 and ``k = 40`` for 10,000. For comparison, Bell et al. report that in
their semi-malicious setting with 10,000 clients, 5 % corrupt and 5 % dropouts, each
client talks to about 3 % of the clients (about 300). Deployments that assume an
adversary of that strength should pass ``k`` computed from the paper explicitly.

References
----------
J. Bell, K. Bonawitz, A. Gascón, T. Lepoint, M. Raykova, "Secure Single-Server Aggregation
with (Poly)Logarithmic Overhead", ACM CCS 2020. F. Harary, "The maximum connectivity of a
graph", PNAS 48(7), 1962. K. Bonawitz et al., "Practical Secure Aggregation for
Privacy-Preserving Machine Learning", ACM CCS 2017.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from heliosfl.errors import ConfigError

__all__ = ["default_neighbours", "neighbour_graph"]

_FULL_GRAPH_UP_TO = 16


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def default_neighbours(num_nodes: int) -> int:
    """Default degree ``k`` of the neighbour graph for `num_nodes` nodes.

    ``n - 1`` (the complete graph, i.e. SecAgg) for ``n <= 16``; otherwise the even number
    ``min(n - 1, 2 * ceil(1.5 * log2(n)))``: 14 for 17 nodes, 20 for 100, 30 for 1,000.

    Parameters
    ----------
    num_nodes : int
        Number of nodes in the round, ``>= 2``.

    Returns
    -------
    int
        The degree, in ``[1, num_nodes - 1]``.

    Raises
    ------
    ConfigError
        If `num_nodes` is not an int ``>= 2``.

    References
    ----------
    J. Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead",
    ACM CCS 2020.
    """
    if not _is_int(num_nodes) or num_nodes < 2:
        raise ConfigError("num_nodes", num_nodes, "an int >= 2")
    if num_nodes <= _FULL_GRAPH_UP_TO:
        return num_nodes - 1
    return min(num_nodes - 1, 2 * math.ceil(1.5 * math.log2(num_nodes)))


def neighbour_graph(
    node_ids: Sequence[str], neighbours: int, rng: np.random.Generator
) -> dict[str, tuple[str, ...]]:
    """Random ``k``-regular neighbour graph over `node_ids` (``k`` = `neighbours`).

    If ``neighbours >= n - 1`` the graph is complete. Otherwise the ids, sorted, are put
    in a random cyclic order drawn from `rng` and each is joined to the ``k / 2`` ids on
    either side (a Harary graph with randomly permuted vertices), so ``k`` must be even.
    The result depends only on the set of ids, `neighbours` and the state of `rng`.

    Parameters
    ----------
    node_ids : Sequence[str]
        Distinct node ids, at least two.
    neighbours : int
        Degree ``k >= 1``.
    rng : numpy.random.Generator
        Source of the permutation (not consumed for the complete graph). The graph must
        not be chosen by a party that could bias it: draw it from a seed fixed before the
        nodes' inputs, or from a seed no single party controls.

    Returns
    -------
    dict[str, tuple[str, ...]]
        For each id in the order given, its neighbours sorted. Symmetric, without self
        loops, every tuple of length ``min(k, n - 1)``.

    Raises
    ------
    ConfigError
        If the ids are not distinct strings, there are fewer than two, `neighbours` is
        below 1, or `neighbours` is odd and below ``n - 1``.

    References
    ----------
    J. Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead",
    ACM CCS 2020.
    """
    ids = list(node_ids)
    if not all(isinstance(node, str) for node in ids):
        raise ConfigError("node_ids", ids, "a sequence of str")
    if len(set(ids)) != len(ids):
        raise ConfigError("node_ids", ids, "distinct ids")
    n = len(ids)
    if n < 2:
        raise ConfigError("node_ids", ids, "at least 2 ids")
    if not _is_int(neighbours) or neighbours < 1:
        raise ConfigError("neighbours", neighbours, "an int >= 1")
    if neighbours >= n - 1:
        return {node: tuple(sorted(other for other in ids if other != node)) for node in ids}
    if neighbours % 2:
        raise ConfigError(
            "neighbours",
            neighbours,
            f"even when below n - 1 = {n - 1} (a k-regular ring graph has k/2 neighbours "
            "on each side)",
            "Use default_neighbours(n) or an even k.",
        )
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("rng", type(rng).__name__, "a numpy.random.Generator")
    ordered = sorted(ids)
    cycle = [ordered[int(i)] for i in rng.permutation(n)]
    adjacent: dict[str, set[str]] = {node: set() for node in ids}
    half = neighbours // 2
    for position, node in enumerate(cycle):
        for offset in range(1, half + 1):
            other = cycle[(position + offset) % n]
            adjacent[node].add(other)
            adjacent[other].add(node)
    return {node: tuple(sorted(adjacent[node])) for node in ids}
