"""Unit tests of the SecAgg+ protocol: whole rounds driven through the protocol objects.

Every round here runs purely through :class:`RoundSetup`, :class:`SecAggClient` and
:class:`SecAggServer` (no engine), stage by stage, so a test can drop, delay, replay or
tamper with any message between two stages. Expected sums are computed independently with
Python integers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np
import pytest

from heliosfl.errors import SecureAggregationError
from heliosfl.secagg import (
    PRIME,
    Advertisement,
    Quantizer,
    RoundSetup,
    SecAggClient,
    SecAggServer,
    SecureAggregationConfig,
    SecureNode,
    SecureSpec,
    decode_share,
    encode_share,
)

RingVector = np.ndarray[Any, np.dtype[np.uint64]]
Rosters = dict[str, dict[str, Advertisement]]
Outgoing = dict[str, dict[str, bytes]]

# ---------------------------------------------------------------------------------------
# helpers: one round, stage by stage
# ---------------------------------------------------------------------------------------


def node_ids(n: int) -> list[str]:
    return [f"n{i:02d}" for i in range(n)]


def make_setup(
    n: int,
    *,
    d: int = 16,
    bits: int = 64,
    full_graph: bool = False,
    neighbours: int | None = None,
    threshold: float = 0.6,
    seed: int = 0,
) -> RoundSetup:
    config = SecureAggregationConfig(
        enabled=True,
        threshold=threshold,
        neighbours=neighbours,
        full_graph=full_graph,
        modulus_bits=bits,
        quantization_bits=min(16, bits - 1),
    )
    return RoundSetup.create(
        node_ids(n), config, round_number=1, vector_length=d, rng=np.random.default_rng(seed)
    )


def random_inputs(setup: RoundSetup, seed: int = 1) -> dict[str, RingVector]:
    rng = np.random.default_rng(seed)
    high = 2**setup.modulus_bits
    return {
        u: rng.integers(0, high, size=setup.vector_length, dtype=np.uint64)
        for u in setup.participants
    }


def plain_sum(inputs: Mapping[str, RingVector], nodes: Iterable[str], bits: int) -> RingVector:
    """The ring sum, with Python ints (independent of the library's uint64 arithmetic)."""
    chosen = [inputs[u] for u in nodes]
    length = len(next(iter(inputs.values())))
    sums = [sum(int(v[i]) for v in chosen) % 2**bits for i in range(length)]
    return np.array(sums, dtype=np.uint64)


class Round:
    """One secure round; a method per stage so a test can interfere between stages."""

    def __init__(self, setup: RoundSetup, inputs: Mapping[str, RingVector]) -> None:
        self.setup = setup
        self.inputs = inputs
        self.server = SecAggServer(setup)
        self.clients = {u: SecAggClient(u, setup) for u in setup.participants}

    def advertise(self, *, absent: Collection[str] = ()) -> Rosters:
        adverts = {u: c.advertisement for u, c in self.clients.items() if u not in absent}
        return self.server.collect_keys(adverts)

    def share_keys(self, rosters: Rosters, *, absent: Collection[str] = ()) -> Outgoing:
        return {u: self.clients[u].share_keys(r) for u, r in rosters.items() if u not in absent}

    def receive(self, inbox: Outgoing) -> None:
        for u, box in inbox.items():
            self.clients[u].receive_shares(box)

    def mask(self, *, absent: Collection[str] = ()) -> None:
        for u in sorted(self.server.sharers - set(absent)):
            self.server.accept_masked(u, self.clients[u].masked_input(self.inputs[u]))

    def answers(
        self,
        survivors: Collection[str],
        dropped: Collection[str],
        *,
        absent: Collection[str] = (),
    ) -> Outgoing:
        return {
            u: self.clients[u].unmask(survivors, dropped)
            for u in sorted(survivors)
            if u not in absent
        }

    def accept(self, answers: Outgoing) -> None:
        for u, revealed in answers.items():
            self.server.accept_unmask(u, revealed)

    def until_unmask(
        self, *, no_share: Collection[str] = (), no_masked: Collection[str] = ()
    ) -> tuple[frozenset[str], frozenset[str]]:
        """Stages 0-2 and the start of 3; returns (survivors, dropped)."""
        outgoing = self.share_keys(self.advertise(), absent=no_share)
        self.receive(self.server.route_shares(outgoing))
        self.mask(absent=no_masked)
        return self.server.begin_unmask()


def run_round(
    setup: RoundSetup,
    inputs: Mapping[str, RingVector],
    *,
    no_share: Collection[str] = (),
    no_masked: Collection[str] = (),
    no_unmask: Collection[str] = (),
) -> tuple[RingVector, frozenset[str], frozenset[str]]:
    """A full round with the given dropouts; returns (total, survivors, dropped)."""
    round_ = Round(setup, inputs)
    survivors, dropped = round_.until_unmask(no_share=no_share, no_masked=no_masked)
    round_.accept(round_.answers(survivors, dropped, absent=no_unmask))
    return round_.server.finish(), survivors, dropped


def lagrange_at_zero(x: int, xs: Iterable[int]) -> int:
    """The Lagrange coefficient of the share at `x` when interpolating at 0 from `xs`."""
    num, den = 1, 1
    for m in xs:
        if m != x:
            num, den = num * (-m) % PRIME, den * (x - m) % PRIME
    return num * pow(den, -1, PRIME) % PRIME


# ---------------------------------------------------------------------------------------
# 1. exact sums
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize(
    ("n", "full_graph", "neighbours"),
    [(3, True, None), (10, True, None), (30, False, 8)],
    ids=["full-3", "full-10", "sparse-30-k8"],
)
def test_secure_sum_equals_plain_ring_sum(
    n: int, full_graph: bool, neighbours: int | None, bits: int
) -> None:
    # Prepare
    setup = make_setup(n, bits=bits, full_graph=full_graph, neighbours=neighbours)
    inputs = random_inputs(setup)
    # Execute
    total, survivors, dropped = run_round(setup, inputs)
    # Assert
    assert survivors == frozenset(setup.participants) and not dropped
    assert total.dtype == np.uint64
    assert np.array_equal(total, plain_sum(inputs, setup.participants, bits))


def test_sparse_setup_is_really_sparse() -> None:
    setup = make_setup(30, neighbours=8)
    assert {len(v) for v in setup.neighbours.values()} == {8}
    assert setup.share_threshold == 5


def test_sum_at_the_top_of_the_ring_wraps_exactly() -> None:
    # Prepare: every input is 2**bits - 1, the sum wraps many times
    setup = make_setup(5, bits=32, full_graph=True)
    inputs = {u: np.full(16, 2**32 - 1, dtype=np.uint64) for u in setup.participants}
    # Execute
    total, _, _ = run_round(setup, inputs)
    # Assert: 5 * (2**32 - 1) mod 2**32 = 2**32 - 5
    assert np.array_equal(total, np.full(16, 2**32 - 5, dtype=np.uint64))


# ---------------------------------------------------------------------------------------
# 2. dropout after key sharing (and before it)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize(
    ("n", "neighbours", "gone"),
    [(10, None, ("n02", "n05", "n09")), (30, 8, ("n00", "n07", "n13", "n21"))],
    ids=["full-10", "sparse-30-k8"],
)
def test_dropout_after_key_sharing_sum_of_survivors_exact(
    n: int, neighbours: int | None, gone: tuple[str, ...], bits: int
) -> None:
    # Prepare
    setup = make_setup(n, bits=bits, full_graph=neighbours is None, neighbours=neighbours)
    inputs = random_inputs(setup)
    round_ = Round(setup, inputs)
    survivors, dropped = round_.until_unmask(no_masked=gone)
    answers = round_.answers(survivors, dropped)
    # Execute
    round_.accept(answers)
    total = round_.server.finish()
    # Assert
    assert dropped == frozenset(gone)
    assert np.array_equal(total, plain_sum(inputs, survivors, bits))
    # the dropped nodes were unmasked through shares of their s keys, survivors through b
    kinds = {(peer, data[:1]) for answer in answers.values() for peer, data in answer.items()}
    assert {peer for peer, kind in kinds if kind == b"s"} == set(gone)
    assert {peer for peer, kind in kinds if kind == b"b"} == set(survivors)


def test_dropped_pairwise_masks_need_the_reconstructed_s_keys() -> None:
    # Prepare: without the s shares of the dropped node its pairwise masks cannot go
    setup = make_setup(10, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    survivors, dropped = round_.until_unmask(no_masked=["n04"])
    answers = round_.answers(survivors, dropped)
    for answer in answers.values():
        del answer["n04"]
    round_.accept(answers)
    # Execute / Assert
    with pytest.raises(SecureAggregationError, match=r"threshold=6 shares\. Found 0"):
        round_.server.finish()


def test_dropout_before_key_sharing_sum_exact() -> None:
    # Prepare: n03 advertised keys but never shared: nobody masks with it
    setup = make_setup(10, full_graph=True)
    inputs = random_inputs(setup)
    # Execute
    total, survivors, dropped = run_round(setup, inputs, no_share=["n03"])
    # Assert
    assert "n03" not in survivors | dropped
    assert np.array_equal(total, plain_sum(inputs, survivors, 64))


# ---------------------------------------------------------------------------------------
# 3. dropout after masked input (survivors that never answer the unmasking)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_masked", "no_unmask"),
    [((), ("n03",)), ((), ("n01", "n05", "n08")), (("n09",), ("n02", "n06"))],
    ids=["one-silent", "three-silent-exactly-t", "dropped-and-silent"],
)
def test_silent_survivor_sum_still_exact(
    no_masked: tuple[str, ...], no_unmask: tuple[str, ...]
) -> None:
    # Prepare: 10 nodes, full graph, share_threshold 6
    setup = make_setup(10, bits=32, full_graph=True)
    assert setup.share_threshold == 6
    inputs = random_inputs(setup)
    # Execute
    total, survivors, _ = run_round(setup, inputs, no_masked=no_masked, no_unmask=no_unmask)
    # Assert: the silent nodes' inputs are in the sum, their self masks rebuilt by others
    assert set(no_unmask) <= survivors
    assert np.array_equal(total, plain_sum(inputs, survivors, 32))


def test_too_many_silent_survivors_finish_refuses() -> None:
    # Prepare: only 5 of 10 answer; each answerer's b keeps 4 < 6 shares
    setup = make_setup(10, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    survivors, dropped = round_.until_unmask()
    round_.accept(round_.answers(survivors, dropped, absent=["n05", "n06", "n07", "n08", "n09"]))
    # Execute / Assert
    with pytest.raises(SecureAggregationError, match=r"threshold=6 shares\. Found 4"):
        round_.server.finish()


def test_min_survivors_suffice_to_unmask() -> None:
    # A survivor's self-mask seed needs share_threshold shares from *other* survivors, so
    # the minimum is at least share_threshold + 1 (ceil(0.6 * 5) = 3 would not do).
    setup = make_setup(5, full_graph=True)
    assert (setup.min_survivors, setup.share_threshold) == (4, 3)
    inputs = random_inputs(setup)
    # Execute
    total, survivors, _ = run_round(setup, inputs, no_masked=["n04"])
    # Assert
    assert np.array_equal(total, plain_sum(inputs, survivors, 64))


# ---------------------------------------------------------------------------------------
# 4. too few nodes at a stage
# ---------------------------------------------------------------------------------------


def test_too_few_masked_inputs_begin_unmask_refuses() -> None:
    # Prepare: 10 nodes need 7 masked inputs (share threshold 6, plus one); 5 arrive
    setup = make_setup(10, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    assert setup.min_survivors == 7
    # Execute / Assert
    with pytest.raises(
        SecureAggregationError,
        match=r"at least 7 nodes delivering masked updates\. Found 5; the round is abandoned",
    ):
        round_.until_unmask(no_masked=["n00", "n02", "n04", "n06", "n08"])


def test_too_few_advertisers_collect_keys_refuses() -> None:
    setup = make_setup(10, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    with pytest.raises(
        SecureAggregationError, match=r"at least 7 nodes advertising keys\. Found 5"
    ):
        round_.advertise(absent=node_ids(10)[5:])


def test_advertisements_of_strangers_are_ignored() -> None:
    # a non-participant's advertisement does not count towards the minimum
    setup = make_setup(10, full_graph=True)
    server = SecAggServer(setup)
    adverts = {u: SecAggClient(u, setup).advertisement for u in node_ids(10)[:5]}
    adverts["intruder"] = SecAggClient("n09", setup).advertisement
    with pytest.raises(SecureAggregationError, match=r"advertising keys\. Found 5"):
        server.collect_keys(adverts)


def test_too_few_sharers_route_shares_refuses() -> None:
    setup = make_setup(10, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    outgoing = round_.share_keys(round_.advertise(), absent=node_ids(10)[:5])
    with pytest.raises(SecureAggregationError, match=r"at least 7 nodes sharing keys\. Found 5"):
        round_.server.route_shares(outgoing)


def test_client_with_too_few_advertised_neighbours_refuses_to_share() -> None:
    setup = make_setup(5, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    rosters = round_.advertise()
    short = {v: rosters["n00"][v] for v in ("n01", "n02")}
    with pytest.raises(SecureAggregationError, match=r"needs 3 neighbours with keys.*Found 2"):
        round_.clients["n00"].share_keys(short)


def test_finish_before_begin_unmask_refuses() -> None:
    # Without begin_unmask the survivor set is empty: no zero vector passes for a sum.
    setup = make_setup(5, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    round_.receive(round_.server.route_shares(round_.share_keys(round_.advertise())))
    round_.mask()
    with pytest.raises(SecureAggregationError):
        round_.server.finish()


# ---------------------------------------------------------------------------------------
# 5. masked inputs the server must refuse
# ---------------------------------------------------------------------------------------


def test_masked_input_after_unmasking_began_rejected() -> None:
    # Prepare
    setup = make_setup(6, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    round_.until_unmask(no_masked=["n05"])
    late = round_.clients["n05"].masked_input(round_.inputs["n05"])
    # Execute / Assert
    with pytest.raises(SecureAggregationError, match="after unmasking began"):
        round_.server.accept_masked("n05", late)


def test_duplicate_and_unshared_masked_inputs_rejected() -> None:
    # Prepare: n05 advertised but never shared keys; "zz" is no participant
    setup = make_setup(6, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    outgoing = round_.share_keys(round_.advertise(), absent=["n05"])
    round_.receive(round_.server.route_shares(outgoing))
    masked = round_.clients["n00"].masked_input(round_.inputs["n00"])
    round_.server.accept_masked("n00", masked)
    # Execute / Assert
    with pytest.raises(SecureAggregationError, match="may not send one"):
        round_.server.accept_masked("n00", masked)
    with pytest.raises(SecureAggregationError, match="may not send one"):
        round_.server.accept_masked("n05", round_.clients["n05"].masked_input(masked))
    with pytest.raises(SecureAggregationError, match="may not send one"):
        round_.server.accept_masked("zz", masked)


@pytest.mark.parametrize(
    "vector",
    [
        np.zeros(16, dtype=np.int64),
        np.zeros(16, dtype=np.float64),
        np.zeros(16, dtype=np.uint32),
        np.zeros(15, dtype=np.uint64),
        np.zeros((2, 8), dtype=np.uint64),
        np.full(16, 2**32, dtype=np.uint64),  # outside Z / 2**32
    ],
    ids=["int64", "float64", "uint32", "short", "2-d", "above-modulus"],
)
def test_malformed_masked_vector_rejected(vector: np.ndarray[Any, Any]) -> None:
    setup = make_setup(5, bits=32, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    round_.receive(round_.server.route_shares(round_.share_keys(round_.advertise())))
    with pytest.raises(SecureAggregationError, match="not a vector of ring elements"):
        round_.server.accept_masked("n00", vector)


def test_client_refuses_malformed_input() -> None:
    setup = make_setup(5, full_graph=True)
    client = SecAggClient("n00", setup)
    with pytest.raises(SecureAggregationError, match=r"must be 16 uint64 ring elements.*float64"):
        client.masked_input(np.zeros(16))
    with pytest.raises(SecureAggregationError, match=r"shape \(3,\)"):
        client.masked_input(np.zeros(3, dtype=np.uint64))


def test_client_masks_only_one_input() -> None:
    # A second call would reuse the same self and pairwise masks, so two masked vectors
    # would reveal the difference of their inputs: the client refuses.
    setup = make_setup(5, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    round_.receive(round_.server.route_shares(round_.share_keys(round_.advertise())))
    client = round_.clients["n00"]
    first = client.masked_input(np.zeros(16, dtype=np.uint64))
    try:
        second = client.masked_input(np.full(16, 7, dtype=np.uint64))
    except SecureAggregationError:
        return
    leaked = second - first  # uint64 wraps: exactly the input difference
    assert not np.array_equal(leaked, np.full(16, 7, dtype=np.uint64)), "inputs leaked"


# ---------------------------------------------------------------------------------------
# 6. one kind of share per peer
# ---------------------------------------------------------------------------------------


@pytest.fixture
def unmasking() -> tuple[Round, frozenset[str], frozenset[str]]:
    setup = make_setup(6, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    survivors, dropped = round_.until_unmask(no_masked=["n05"])
    return round_, survivors, dropped


def test_client_never_reveals_both_kinds_for_a_peer(
    unmasking: tuple[Round, frozenset[str], frozenset[str]],
) -> None:
    # Prepare: n00 reveals b of n01 (a survivor)
    round_, survivors, dropped = unmasking
    client = round_.clients["n00"]
    first = client.unmask(survivors, dropped)
    assert first["n01"][:1] == b"b" and first["n05"][:1] == b"s"
    # Execute / Assert: a server now claiming n01 dropped asks for its s share
    with pytest.raises(SecureAggregationError, match="at most one kind of share per peer"):
        client.unmask(survivors - {"n01"}, dropped | {"n01"})
    # and the reverse: n05 (dropped) claimed a survivor
    with pytest.raises(SecureAggregationError, match="at most one kind of share per peer"):
        client.unmask(survivors | {"n05"}, dropped - {"n05"})
    # asking the same again is harmless and gives the same answer
    assert client.unmask(survivors, dropped) == first


def test_client_refuses_a_peer_in_both_sets(
    unmasking: tuple[Round, frozenset[str], frozenset[str]],
) -> None:
    round_, survivors, dropped = unmasking
    with pytest.raises(SecureAggregationError, match="both a survivor and dropped"):
        round_.clients["n00"].unmask(survivors, dropped | {"n02"})


def test_only_a_masking_survivor_unmasks(
    unmasking: tuple[Round, frozenset[str], frozenset[str]],
) -> None:
    round_, survivors, dropped = unmasking
    # n05 sent no masked input (even if a server names it a survivor)
    with pytest.raises(SecureAggregationError, match="Only a node whose masked input was used"):
        round_.clients["n05"].unmask(survivors | {"n05"}, dropped - {"n05"})
    # n00 masked but is not named a survivor
    with pytest.raises(SecureAggregationError, match="Only a node whose masked input was used"):
        round_.clients["n00"].unmask(survivors - {"n00"}, dropped)


def test_server_refuses_misdirected_unmask_answers(
    unmasking: tuple[Round, frozenset[str], frozenset[str]],
) -> None:
    round_, survivors, dropped = unmasking
    server = round_.server
    answer = round_.clients["n00"].unmask(survivors, dropped)
    with pytest.raises(SecureAggregationError, match="wrong kind"):
        server.accept_unmask("n00", {**answer, "n05": b"b" + answer["n05"][1:]})
    with pytest.raises(SecureAggregationError, match="malformed or misrouted"):
        server.accept_unmask("n00", {**answer, "n01": answer["n01"][:-1]})
    with pytest.raises(SecureAggregationError, match="malformed or misrouted"):
        server.accept_unmask("n00", {"n00": answer["n01"]})
    with pytest.raises(SecureAggregationError, match="may not send them"):
        server.accept_unmask("n05", answer)
    server.accept_unmask("n00", answer)
    with pytest.raises(SecureAggregationError, match="may not send them"):
        server.accept_unmask("n00", answer)


# ---------------------------------------------------------------------------------------
# 7. tampering
# ---------------------------------------------------------------------------------------


@pytest.fixture
def routed() -> tuple[Round, Outgoing]:
    setup = make_setup(6, full_graph=True)
    round_ = Round(setup, random_inputs(setup))
    inbox = round_.server.route_shares(round_.share_keys(round_.advertise()))
    return round_, inbox


@pytest.mark.parametrize(
    "at", [0, 11, 12, 40, -1], ids=["nonce", "nonce-end", "body", "mid", "tag"]
)
def test_flipped_byte_in_routed_share_refused(routed: tuple[Round, Outgoing], at: int) -> None:
    # Prepare
    round_, inbox = routed
    sealed = bytearray(inbox["n00"]["n01"])
    sealed[at] ^= 0x01
    inbox["n00"]["n01"] = bytes(sealed)
    # Execute / Assert
    with pytest.raises(SecureAggregationError, match=r"from 'n01' to 'n00'.*cannot be authentic"):
        round_.clients["n00"].receive_shares(inbox["n00"])


def test_swapped_ciphertexts_between_senders_refused(routed: tuple[Round, Outgoing]) -> None:
    round_, inbox = routed
    box = dict(inbox["n00"])
    box["n01"], box["n02"] = box["n02"], box["n01"]
    with pytest.raises(SecureAggregationError, match="cannot be authenticated"):
        round_.clients["n00"].receive_shares(box)


def test_ciphertext_redirected_to_another_recipient_refused(
    routed: tuple[Round, Outgoing],
) -> None:
    round_, inbox = routed
    with pytest.raises(SecureAggregationError, match="cannot be authenticated"):
        round_.clients["n02"].receive_shares({"n01": inbox["n00"]["n01"]})


def test_ciphertext_replayed_from_another_session_refused(routed: tuple[Round, Outgoing]) -> None:
    round_, _ = routed
    other = Round(make_setup(6, full_graph=True), round_.inputs)
    old = other.server.route_shares(other.share_keys(other.advertise()))
    with pytest.raises(SecureAggregationError, match="cannot be authenticated"):
        round_.clients["n00"].receive_shares({"n01": old["n00"]["n01"]})


def test_shares_from_a_non_neighbour_refused_by_the_client() -> None:
    setup = make_setup(30, neighbours=8)
    round_ = Round(setup, random_inputs(setup))
    inbox = round_.server.route_shares(round_.share_keys(round_.advertise()))
    stranger = next(u for u in setup.participants if u not in setup.neighbours["n00"])
    with pytest.raises(SecureAggregationError, match="not a neighbour"):
        round_.clients["n00"].receive_shares({stranger: next(iter(inbox["n00"].values()))})


def test_shares_sent_to_a_non_neighbour_refused_by_the_server() -> None:
    setup = make_setup(30, neighbours=8)
    round_ = Round(setup, random_inputs(setup))
    outgoing = round_.share_keys(round_.advertise())
    stranger = next(u for u in setup.participants if u not in setup.neighbours["n00"])
    outgoing["n00"][stranger] = next(iter(outgoing["n00"].values()))
    with pytest.raises(SecureAggregationError, match="sent shares to a non-neighbour"):
        round_.server.route_shares(outgoing)


def test_replayed_public_keys_refused() -> None:
    setup = make_setup(5, full_graph=True)
    adverts = {u: SecAggClient(u, setup).advertisement for u in setup.participants}
    server = SecAggServer(setup)
    replay = {**adverts, "n01": adverts["n00"]}
    with pytest.raises(SecureAggregationError, match="reuse a public key"):
        server.collect_keys(replay)
    a = adverts["n02"]
    crossed = {**adverts, "n02": Advertisement(a.c_public, adverts["n03"].c_public, a.commitment)}
    with pytest.raises(SecureAggregationError, match="reuse a public key"):
        server.collect_keys(crossed)
    same = {**adverts, "n04": Advertisement(a.c_public, a.c_public, a.commitment)}
    with pytest.raises(SecureAggregationError, match="reuse a public key"):
        server.collect_keys(same)


@pytest.mark.parametrize(
    ("target", "exact", "message"),
    [
        ("n01", False, "inconsistent"),
        ("n06", False, "inconsistent"),
        ("n01", True, "does not match its commitment"),
        ("n06", True, "does not match the key its node advertised"),
    ],
    ids=["b-extra-shares", "s-extra-shares", "b-commitment", "s-advertised-key"],
)
def test_tampered_revealed_share_detected(target: str, exact: bool, message: str) -> None:
    # Prepare: 7 nodes, full graph, t = 4; n06 drops after sharing keys. The target is a
    # survivor (n01: its b share) or the dropped node (n06: its s share).
    setup = make_setup(7, full_graph=True)
    t = setup.share_threshold
    assert t == 4
    inputs = random_inputs(setup)
    round_ = Round(setup, inputs)
    survivors, dropped = round_.until_unmask(no_masked=["n06"])
    answers = round_.answers(survivors, dropped)
    holders = sorted((u for u in answers if target in answers[u]), key=setup.x_of)
    if exact:  # only t shares reach the server: no redundancy to check them against
        for u in holders[t:]:
            del answers[u][target]
        holders = holders[:t]
    assert len(holders) >= t
    # Tamper: change one share so the interpolated secret is off by exactly one (it still
    # fits in 32 bytes, so only the commitment or the advertised key can expose it).
    victim = holders[0]
    xs = [setup.x_of(u) for u in holders[:t]]
    delta = pow(lagrange_at_zero(setup.x_of(victim), xs), -1, PRIME)
    data = answers[victim][target]
    answers[victim][target] = data[:1] + encode_share((decode_share(data[1:]) + delta) % PRIME)
    round_.accept(answers)
    # Execute / Assert
    with pytest.raises(SecureAggregationError, match=message):
        round_.server.finish()


def test_untampered_exact_threshold_answers_still_unmask() -> None:
    # the control of the test above: the same trimming without tampering is exact
    setup = make_setup(7, full_graph=True)
    inputs = random_inputs(setup)
    round_ = Round(setup, inputs)
    survivors, dropped = round_.until_unmask(no_masked=["n06"])
    answers = round_.answers(survivors, dropped)
    for target in ("n01", "n06"):
        holders = sorted((u for u in answers if target in answers[u]), key=setup.x_of)
        for u in holders[setup.share_threshold :]:
            del answers[u][target]
    round_.accept(answers)
    assert np.array_equal(round_.server.finish(), plain_sum(inputs, survivors, 64))


# ---------------------------------------------------------------------------------------
# 8. what the server holds
# ---------------------------------------------------------------------------------------


def reachable_arrays(obj: object, seen: set[int] | None = None) -> list[np.ndarray[Any, Any]]:
    """Every numpy array reachable from `obj` through attributes and containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, str | bytes | int | float | bool | type(None)):
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [obj]
    children: list[object] = []
    if isinstance(obj, Mapping):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list | tuple | set | frozenset):
        children = list(obj)
    elif is_dataclass(obj):
        children = [getattr(obj, f.name) for f in fields(obj)]
    elif hasattr(obj, "__dict__"):
        children = list(vars(obj).values())
    found = []
    for child in children:
        found += reachable_arrays(child, seen)
    return found


@pytest.mark.parametrize("bits", [32, 64])
def test_server_never_holds_an_individual_input(bits: int) -> None:
    # Prepare
    setup = make_setup(8, bits=bits, full_graph=True)
    inputs = random_inputs(setup)
    round_ = Round(setup, inputs)
    survivors, dropped = round_.until_unmask(no_masked=["n07"])
    round_.accept(round_.answers(survivors, dropped))
    # Execute
    total = round_.server.finish()
    # Assert
    ring = np.uint64(2**bits - 1)
    held = reachable_arrays(round_.server)
    assert len(held) == len(survivors)  # the masked inputs, nothing else
    for array in held:
        for x in inputs.values():
            assert not np.array_equal(array, x)
            assert not np.array_equal(array & ring, x & ring)
    assert np.array_equal(total, plain_sum(inputs, survivors, bits))


def test_masked_zero_input_looks_uniform() -> None:
    # Prepare: x = 0 in a 32-bit ring of 10,000 elements
    setup = make_setup(3, d=10_000, bits=32, full_graph=True)
    round_ = Round(setup, {u: np.zeros(10_000, dtype=np.uint64) for u in setup.participants})
    round_.receive(round_.server.route_shares(round_.share_keys(round_.advertise())))
    # Execute
    masked = round_.clients["n00"].masked_input(round_.inputs["n00"])
    # Assert: mean of uniform [0, 2**32) is 2**31 - 0.5, its std over 10k draws ~0.6%
    assert np.all(masked < 2**32)
    assert abs(float(masked.mean()) / 2**31 - 1.0) < 0.03
    assert abs(float(np.mean(masked < 2**31)) - 0.5) < 0.03
    assert len(np.unique(masked)) > 9_980


# ---------------------------------------------------------------------------------------
# 9. RoundSetup.create
# ---------------------------------------------------------------------------------------


def test_setup_refuses_fewer_than_three_participants() -> None:
    config = SecureAggregationConfig(enabled=True)
    with pytest.raises(SecureAggregationError, match=r"at least 3 nodes in a round\. Found 2"):
        RoundSetup.create(
            ["a", "b"], config, round_number=1, vector_length=4, rng=np.random.default_rng(0)
        )


@pytest.mark.parametrize(
    ("n", "full_graph", "neighbours", "threshold"),
    [
        (3, True, None, 0.51),
        (5, True, None, 0.51),
        (8, True, None, 0.6),
        (12, False, None, 1.0),
        (30, False, 8, 0.51),
        (30, False, 8, 0.6),
        (40, False, 2, 0.51),
        (100, False, None, 0.75),
    ],
)
def test_share_threshold_exceeds_half_the_degree(
    n: int, full_graph: bool, neighbours: int | None, threshold: float
) -> None:
    setup = make_setup(n, full_graph=full_graph, neighbours=neighbours, threshold=threshold)
    degree = min(len(v) for v in setup.neighbours.values())
    assert degree / 2 < setup.share_threshold <= degree
    assert setup.share_threshold >= threshold * degree
    assert 1 <= setup.min_survivors <= n


def test_setup_sorts_participants_and_x_is_index_plus_one() -> None:
    config = SecureAggregationConfig(enabled=True)
    ids = ["n04", "n01", "n03", "n00", "n02"]
    setup = RoundSetup.create(
        ids, config, round_number=7, vector_length=3, rng=np.random.default_rng(0)
    )
    assert setup.participants == tuple(sorted(ids))
    assert [setup.x_of(u) for u in setup.participants] == [1, 2, 3, 4, 5]
    assert setup.round_number == 7 and setup.vector_length == 3
    with pytest.raises(SecureAggregationError, match="not a participant"):
        SecAggClient("n09", setup)


@pytest.mark.parametrize(("n", "neighbours"), [(5, None), (30, 8), (31, 6), (100, None)])
def test_setup_graph_symmetric_without_loops(n: int, neighbours: int | None) -> None:
    setup = make_setup(n, neighbours=neighbours)
    assert set(setup.neighbours) == set(setup.participants)
    for u, peers in setup.neighbours.items():
        assert u not in peers
        assert len(set(peers)) == len(peers)
        for v in peers:
            assert u in setup.neighbours[v]


def test_setup_sessions_fresh_graph_from_rng() -> None:
    first, second = make_setup(30, neighbours=8, seed=3), make_setup(30, neighbours=8, seed=3)
    assert len(first.session) == 16
    assert first.session != second.session
    assert dict(first.neighbours) == dict(second.neighbours)  # same rng: same graph
    assert dict(make_setup(30, neighbours=8, seed=4).neighbours) != dict(first.neighbours)


def test_minimum_survivors_is_the_exact_ceiling() -> None:
    # ceil(0.55 * 100) in floats is ceil(55.000000000000007) = 56: the exact ceiling is 55.
    setup = make_setup(100, threshold=0.55)
    assert setup.min_survivors == 55


# ---------------------------------------------------------------------------------------
# 10. SecureNode.protect end to end
# ---------------------------------------------------------------------------------------


def secure_node_round(
    spec: SecureSpec, deltas: Mapping[str, np.ndarray[Any, Any]], samples: Mapping[str, int]
) -> tuple[RingVector, dict[str, int]]:
    """A full round of SecureNodes protecting float deltas; returns (total, weights)."""
    setup = spec.setup
    nodes = {u: SecureNode(u) for u in setup.participants}
    server = SecAggServer(setup)
    rosters = server.collect_keys({u: node.advertise("m", setup) for u, node in nodes.items()})
    inbox = server.route_shares({u: nodes[u].share("m", 1, rosters[u]) for u in rosters})
    for u, box in inbox.items():
        nodes[u].receive("m", 1, box)
    weights = {}
    seeds = np.random.SeedSequence(0).spawn(len(nodes))
    for (u, node), seed in zip(sorted(nodes.items()), seeds, strict=True):
        rng = np.random.default_rng(seed)
        masked, weights[u] = node.protect("m", spec, deltas[u], samples[u], rng)
        server.accept_masked(u, masked)
    survivors, dropped = server.begin_unmask()
    for u in sorted(survivors):
        server.accept_unmask(u, nodes[u].unmask("m", 1, survivors, dropped))
    return server.finish(), weights


def test_secure_node_weighted_mean_within_one_step() -> None:
    # Prepare
    dim = 50
    setup = make_setup(6, d=dim + 1, full_graph=True)
    spec = SecureSpec(setup=setup, quantizer=Quantizer(1.0, 16, 64), max_weight=1000)
    rng = np.random.default_rng(5)
    deltas = {u: rng.uniform(-0.9, 0.9, dim) for u in setup.participants}
    samples = dict(zip(setup.participants, [1, 10, 250, 999, 1000, 5000], strict=True))
    # Execute
    total, weights = secure_node_round(spec, deltas, samples)
    # Assert
    assert weights == {**samples, "n05": 1000}  # capped at max_weight
    assert int(total[-1]) == sum(weights.values())
    mean = spec.quantizer.decode_mean(total[:-1], int(total[-1]))
    expected = np.average(
        [deltas[u] for u in setup.participants],
        axis=0,
        weights=[weights[u] for u in setup.participants],
    )
    assert np.max(np.abs(mean - expected)) < spec.quantizer.step


def test_secure_node_dp_clips_and_sums_within_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: spy on the unmasked ring vector each node hands to its client
    seen: dict[str, RingVector] = {}
    original = SecAggClient.masked_input

    def spy(self: SecAggClient, values: RingVector) -> RingVector:
        seen[self.node_id] = np.array(values, copy=True)
        return original(self, values)

    monkeypatch.setattr(SecAggClient, "masked_input", spy)
    dim, clip, n = 64, 1.0, 6
    setup = make_setup(n, d=dim + 1, full_graph=True)
    quantizer = Quantizer(clip, 16, 64)
    spec = SecureSpec(setup=setup, quantizer=quantizer, max_weight=1, clip_norm=clip)
    rng = np.random.default_rng(6)
    scales = [0.05, 0.5, 0.99, 1.0, 5.0, 80.0]  # L2 norms before clipping
    deltas = {}
    for u, scale in zip(setup.participants, scales, strict=True):
        direction = rng.normal(size=dim)
        deltas[u] = direction / np.linalg.norm(direction) * scale
    samples = dict.fromkeys(setup.participants, 500)
    # Execute
    total, weights = secure_node_round(spec, deltas, samples)
    # Assert: weight 1; each dequantised contribution inside the clip ball
    assert set(weights.values()) == {1} and int(total[-1]) == n
    rounding = quantizer.step * np.sqrt(dim)
    room = clip - rounding
    clipped = {}
    for u, delta in deltas.items():
        assert int(seen[u][-1]) == 1
        contribution = quantizer.decode_sum(seen[u][:-1], 1)
        assert np.linalg.norm(contribution) <= clip
        norm = np.linalg.norm(delta)
        clipped[u] = delta * min(1.0, room / norm)
    got = quantizer.decode_sum(total[:-1], n)
    error = np.linalg.norm(got - sum(clipped.values()))
    assert error <= n * rounding


def test_secure_node_distributed_noise_needs_a_generator() -> None:
    setup = make_setup(3, d=5, full_graph=True)
    spec = SecureSpec(
        setup=setup, quantizer=Quantizer(1.0, 16, 64), max_weight=1, clip_norm=1.0, noise_std=0.1
    )
    node = SecureNode("n00")
    node.advertise("m", setup)
    with pytest.raises(SecureAggregationError, match="needs its own generator"):
        node.protect("m", spec, np.zeros(4), 1, np.random.default_rng(0))
    with pytest.raises(SecureAggregationError, match="no secure session"):
        node.protect("other", spec, np.zeros(4), 1, np.random.default_rng(0))
