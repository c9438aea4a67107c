"""Invariant of the SecAgg+ protocol: the unmasked result is exactly the survivors' ring sum.

Rounds are driven through the protocol objects only (no engine); the unit tests in
``tests/unit/test_secagg_protocol.py`` drive them stage by stage, this module end to end.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from heliosfl.secagg import RoundSetup, SecAggClient, SecAggServer, SecureAggregationConfig

RingVector = np.ndarray[Any, np.dtype[np.uint64]]


def node_ids(n: int) -> list[str]:
    return [f"n{i:02d}" for i in range(n)]


def make_setup(n: int, *, bits: int, seed: int) -> RoundSetup:
    config = SecureAggregationConfig(enabled=True, modulus_bits=bits)
    return RoundSetup.create(
        node_ids(n), config, round_number=1, vector_length=8, rng=np.random.default_rng(seed)
    )


def random_inputs(setup: RoundSetup, seed: int) -> dict[str, RingVector]:
    rng = np.random.default_rng(seed)
    size, high = setup.vector_length, 2**setup.modulus_bits
    return {u: rng.integers(0, high, size=size, dtype=np.uint64) for u in setup.participants}


def plain_sum(inputs: Mapping[str, RingVector], nodes: Collection[str], bits: int) -> RingVector:
    """The ring sum with Python ints (independent of the library's uint64 arithmetic)."""
    length = len(next(iter(inputs.values())))
    sums = [sum(int(inputs[u][i]) for u in nodes) % 2**bits for i in range(length)]
    return np.array(sums, dtype=np.uint64)


def run_round(
    setup: RoundSetup, inputs: Mapping[str, RingVector], *, no_masked: Collection[str]
) -> tuple[RingVector, frozenset[str], frozenset[str]]:
    """All four stages; the nodes of `no_masked` drop after sharing keys."""
    server = SecAggServer(setup)
    clients = {u: SecAggClient(u, setup) for u in setup.participants}
    rosters = server.collect_keys({u: c.advertisement for u, c in clients.items()})
    inbox = server.route_shares({u: clients[u].share_keys(r) for u, r in rosters.items()})
    for u, box in inbox.items():
        clients[u].receive_shares(box)
    for u in sorted(server.sharers - set(no_masked)):
        server.accept_masked(u, clients[u].masked_input(inputs[u]))
    survivors, dropped = server.begin_unmask()
    for u in sorted(survivors):
        server.accept_unmask(u, clients[u].unmask(survivors, dropped))
    return server.finish(), survivors, dropped


_FLAGS = st.lists(st.booleans(), min_size=12, max_size=12)


def _dropped(n: int, flags: list[bool], keep: int) -> list[str]:
    """The flagged nodes, at most ``n - keep`` of them."""
    return [u for u, flag in zip(node_ids(n), flags, strict=False) if flag][: n - keep]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 12), flags=_FLAGS, bits=st.sampled_from([32, 64]), seed=st.integers(0, 99))
@example(n=5, flags=[True] * 12, bits=64, seed=0)  # 2 of 5 drop: min_survivors = 3 remain
def test_dropout_after_key_sharing_leaving_min_survivors_sum_exact(
    n: int, flags: list[bool], bits: int, seed: int
) -> None:
    # Prepare (n <= 16: the default graph is complete)
    setup = make_setup(n, bits=bits, seed=seed)
    inputs = random_inputs(setup, seed)
    gone = _dropped(n, flags, setup.min_survivors)
    # Execute
    total, survivors, dropped = run_round(setup, inputs, no_masked=gone)
    # Assert
    assert dropped == frozenset(gone)
    assert np.array_equal(total, plain_sum(inputs, survivors, bits))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 12), flags=_FLAGS, bits=st.sampled_from([32, 64]), seed=st.integers(0, 99))
def test_dropout_leaving_every_secret_threshold_shares_sum_exact(
    n: int, flags: list[bool], bits: int, seed: int
) -> None:
    # Prepare: as above, but at least share_threshold + 1 survive, so every survivor's
    # self-mask seed keeps share_threshold shares (the complete graph)
    setup = make_setup(n, bits=bits, seed=seed)
    inputs = random_inputs(setup, seed)
    gone = _dropped(n, flags, max(setup.min_survivors, setup.share_threshold + 1))
    # Execute
    total, survivors, dropped = run_round(setup, inputs, no_masked=gone)
    # Assert
    assert len(survivors) + len(dropped) == n
    assert np.array_equal(total, plain_sum(inputs, survivors, bits))
