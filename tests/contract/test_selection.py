"""Contract suite every node-selection rule must pass, then rule-specific behaviour."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from heliosfl.config import NodeSelectionStrategy
from heliosfl.selection import Candidate, select_nodes

CANDIDATES = [
    Candidate("node-00", 120, 0.81),
    Candidate("node-01", 40, None),
    Candidate("node-02", 300, 0.64),
    Candidate("node-03", 120, 0.93),
    Candidate("node-04", 75, None),
    Candidate("node-05", 10, 0.99),
    Candidate("node-06", 300, 0.0),
    Candidate("node-07", 220, 0.81),
    Candidate("node-08", 5, 0.5),
    Candidate("node-09", 90, None),
]
IDS = [c.node_id for c in CANDIDATES]

RULES = [
    pytest.param(NodeSelectionStrategy.all(), id="all"),
    pytest.param(NodeSelectionStrategy.random(k=1), id="random-1"),
    pytest.param(NodeSelectionStrategy.random(k=3), id="random-3"),
    pytest.param(NodeSelectionStrategy.random(k=25), id="random-25"),
    pytest.param(NodeSelectionStrategy.most_data(k=1), id="most_data-1"),
    pytest.param(NodeSelectionStrategy.most_data(k=4), id="most_data-4"),
    pytest.param(NodeSelectionStrategy.most_data(k=25), id="most_data-25"),
    pytest.param(NodeSelectionStrategy.best_performance(k=1), id="best_performance-1"),
    pytest.param(NodeSelectionStrategy.best_performance(k=5), id="best_performance-5"),
    pytest.param(NodeSelectionStrategy.best_performance(k=25), id="best_performance-25"),
]


def expected_size(strategy: NodeSelectionStrategy, n: int) -> int:
    return n if strategy.k is None else min(strategy.k, n)


def shuffled(seed: int) -> list[Candidate]:
    order = np.random.default_rng(seed).permutation(len(CANDIDATES))
    return [CANDIDATES[i] for i in order]


# ---------------------------------------------------------------------------------------
# Contract: every rule
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", RULES)
@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_returns_sorted_unique_subset_of_size_min_k_n(
    strategy: NodeSelectionStrategy, n: int
) -> None:
    candidates = CANDIDATES[:n]
    picked = select_nodes(strategy, candidates, np.random.default_rng(0))
    assert isinstance(picked, list)
    assert all(isinstance(node_id, str) for node_id in picked)
    assert picked == sorted(set(picked))
    assert set(picked) <= {c.node_id for c in candidates}
    assert len(picked) == expected_size(strategy, n)


@pytest.mark.parametrize("strategy", RULES)
def test_no_candidates_gives_no_nodes(strategy: NodeSelectionStrategy) -> None:
    assert select_nodes(strategy, [], np.random.default_rng(0)) == []


@pytest.mark.parametrize("strategy", RULES)
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_deterministic_for_a_seed(strategy: NodeSelectionStrategy, seed: int) -> None:
    first = select_nodes(strategy, CANDIDATES, np.random.default_rng(seed))
    second = select_nodes(strategy, CANDIDATES, np.random.default_rng(seed))
    assert first == second


@pytest.mark.parametrize("strategy", RULES)
@pytest.mark.parametrize("seed", [0, 7])
def test_independent_of_candidate_order(strategy: NodeSelectionStrategy, seed: int) -> None:
    expected = select_nodes(strategy, CANDIDATES, np.random.default_rng(seed))
    orders = [list(reversed(CANDIDATES))] + [shuffled(s) for s in range(5)]
    for candidates in orders:
        assert select_nodes(strategy, candidates, np.random.default_rng(seed)) == expected


@pytest.mark.parametrize("strategy", RULES)
def test_does_not_modify_candidates(strategy: NodeSelectionStrategy) -> None:
    candidates = shuffled(3)
    before = list(candidates)
    select_nodes(strategy, candidates, np.random.default_rng(0))
    assert candidates == before


# ---------------------------------------------------------------------------------------
# all
# ---------------------------------------------------------------------------------------


def test_all_returns_every_candidate_sorted() -> None:
    assert select_nodes(NodeSelectionStrategy.all(), shuffled(1), np.random.default_rng(0)) == IDS


# ---------------------------------------------------------------------------------------
# random(k)
# ---------------------------------------------------------------------------------------


def test_random_is_roughly_uniform_over_seeds() -> None:
    n, k, trials = len(CANDIDATES), 3, 2000
    counts: Counter[str] = Counter()
    for seed in range(trials):
        counts.update(
            select_nodes(NodeSelectionStrategy.random(k=k), CANDIDATES, np.random.default_rng(seed))
        )
    assert set(counts) == set(IDS)
    expected = k / n  # 0.3; the standard error over 2000 trials is about 0.01
    for node_id in IDS:
        assert abs(counts[node_id] / trials - expected) < 0.05, (node_id, counts[node_id])


def test_random_pairs_are_all_reachable() -> None:
    # Fixed-size sampling without replacement: every pair shows up with k=2 over many seeds.
    candidates = CANDIDATES[:5]
    seen = {
        tuple(select_nodes(NodeSelectionStrategy.random(k=2), candidates, np.random.default_rng(s)))
        for s in range(300)
    }
    assert seen == set(itertools.combinations([c.node_id for c in candidates], 2))


def test_random_different_seeds_give_different_picks() -> None:
    picks = {
        tuple(select_nodes(NodeSelectionStrategy.random(k=3), CANDIDATES, np.random.default_rng(s)))
        for s in range(20)
    }
    assert len(picks) >= 10


def test_random_ignores_num_samples_and_performance() -> None:
    # A node with no data and the worst score is picked as often as any other.
    candidates = [Candidate("a", 0, 0.0), Candidate("b", 10_000, 1.0), Candidate("c", 10_000, None)]
    counts: Counter[str] = Counter()
    for seed in range(600):
        counts.update(
            select_nodes(NodeSelectionStrategy.random(k=1), candidates, np.random.default_rng(seed))
        )
    for node_id in "abc":
        assert 140 < counts[node_id] < 260, counts


# ---------------------------------------------------------------------------------------
# most_data(k)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, ["node-02"]),  # 300 samples; node-06 also has 300 but a larger id
        (2, ["node-02", "node-06"]),
        (3, ["node-02", "node-06", "node-07"]),  # then 220
        (4, ["node-00", "node-02", "node-06", "node-07"]),  # 120: node-00 before node-03
        (5, ["node-00", "node-02", "node-03", "node-06", "node-07"]),
    ],
)
def test_most_data_picks_largest_ties_by_node_id(k: int, expected: list[str]) -> None:
    for candidates in (CANDIDATES, shuffled(4), list(reversed(CANDIDATES))):
        got = select_nodes(
            NodeSelectionStrategy.most_data(k=k), candidates, np.random.default_rng(0)
        )
        assert got == expected


def test_most_data_all_tied_picks_smallest_ids() -> None:
    candidates = [Candidate(f"n{i}", 50) for i in (5, 3, 9, 1, 7)]
    got = select_nodes(NodeSelectionStrategy.most_data(k=2), candidates, np.random.default_rng(0))
    assert got == ["n1", "n3"]


# ---------------------------------------------------------------------------------------
# best_performance(k)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, ["node-01"]),  # never measured come first, by node id
        (3, ["node-01", "node-04", "node-09"]),
        (4, ["node-01", "node-04", "node-05", "node-09"]),  # then the best, 0.99
        (5, ["node-01", "node-03", "node-04", "node-05", "node-09"]),  # 0.93
        (6, ["node-00", "node-01", "node-03", "node-04", "node-05", "node-09"]),  # 0.81 tie
        (7, ["node-00", "node-01", "node-03", "node-04", "node-05", "node-07", "node-09"]),
    ],
)
def test_best_performance_unmeasured_first_then_highest_ties_by_id(
    k: int, expected: list[str]
) -> None:
    for candidates in (CANDIDATES, shuffled(5), list(reversed(CANDIDATES))):
        got = select_nodes(
            NodeSelectionStrategy.best_performance(k=k), candidates, np.random.default_rng(0)
        )
        assert got == expected


def test_best_performance_zero_accuracy_is_measured_not_unmeasured() -> None:
    candidates = [Candidate("a", 1, 0.0), Candidate("b", 1, None), Candidate("c", 1, 0.2)]
    rule = NodeSelectionStrategy.best_performance
    assert select_nodes(rule(k=1), candidates, np.random.default_rng(0)) == ["b"]
    assert select_nodes(rule(k=2), candidates, np.random.default_rng(0)) == ["b", "c"]


def test_best_performance_without_unmeasured_nodes() -> None:
    candidates = [Candidate(f"n{i}", 1, p) for i, p in enumerate([0.2, 0.9, 0.5, 0.9, 0.1])]
    got = select_nodes(
        NodeSelectionStrategy.best_performance(k=2), candidates, np.random.default_rng(0)
    )
    assert got == ["n1", "n3"]
    got = select_nodes(
        NodeSelectionStrategy.best_performance(k=3), candidates, np.random.default_rng(0)
    )
    assert got == ["n1", "n2", "n3"]
