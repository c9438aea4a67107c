"""Unit tests of the SecAgg+ primitives: Shamir, masks, ring, quantiser, graph, channel."""

from __future__ import annotations

import itertools
import math
import secrets
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import heliosfl.secagg as secagg
from heliosfl.errors import ConfigError, SecureAggregationError
from heliosfl.secagg import (
    PRIME,
    Quantizer,
    agree,
    combine_shares,
    decode_share,
    default_neighbours,
    encode_share,
    generate_keypair,
    mask_vector,
    neighbour_graph,
    open_sealed,
    ring_add,
    ring_sub,
    ring_sum,
    seal,
    split_secret,
)

SESSION = b"session-0123456789"

# ---------------------------------------------------------------------------------------
# package
# ---------------------------------------------------------------------------------------


def test_all_is_sorted_and_exported() -> None:
    assert secagg.__all__ == sorted(secagg.__all__, key=lambda n: (not n.isupper(), n))
    for name in secagg.__all__:
        assert hasattr(secagg, name)


# ---------------------------------------------------------------------------------------
# shamir
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 32, 64])
@pytest.mark.parametrize("threshold", [1, 2, 3, 5])
def test_shamir_round_trip_any_threshold_subset(length: int, threshold: int) -> None:
    secret = secrets.token_bytes(length)
    xs = [1, 2, 3, 4, 5]
    shares = split_secret(secret, threshold=threshold, xs=xs)
    assert list(shares) == xs
    assert all(0 <= y < PRIME for y in shares.values())
    for size in range(threshold, len(xs) + 1):
        for subset in itertools.combinations(xs, size):
            got = combine_shares({x: shares[x] for x in subset}, threshold=threshold, length=length)
            assert got == secret


def test_shamir_keeps_leading_zero_bytes() -> None:
    secret = b"\x00\x00\x07" + bytes(29)
    shares = split_secret(secret, threshold=2, xs=[3, 9])
    assert combine_shares(shares, threshold=2, length=32) == secret


def test_shamir_fewer_than_threshold_refused() -> None:
    shares = split_secret(b"secret", threshold=3, xs=[1, 2, 3, 4])
    with pytest.raises(SecureAggregationError, match=r"threshold=3 .*Found 2"):
        combine_shares({1: shares[1], 2: shares[2]}, threshold=3, length=6)


def test_shamir_tampered_extra_share_detected() -> None:
    shares = split_secret(b"k" * 32, threshold=3, xs=[1, 2, 3, 4, 5])
    for victim in shares:  # whichever share is modified, the genuine others expose it
        tampered = dict(shares)
        tampered[victim] = (tampered[victim] + 1) % PRIME
        with pytest.raises(SecureAggregationError, match=r"inconsistent.*tampered"):
            combine_shares(tampered, threshold=3, length=32)


def test_shamir_tampered_share_undetectable_without_redundancy_gives_wrong_secret() -> None:
    secret = b"k" * 32
    shares = split_secret(secret, threshold=2, xs=[1, 2])
    shares[2] = (shares[2] + 1) % PRIME
    # f(0) = 2*y1 - y2, so the result is the secret minus one: wrong, and undetected
    got = combine_shares(shares, threshold=2, length=32)
    assert int.from_bytes(got, "big") == int.from_bytes(secret, "big") - 1


def test_shamir_threshold_minus_one_shares_fit_any_secret() -> None:
    # Perfect secrecy: for any t-1 share values and ANY candidate secret there is a
    # polynomial of degree t-1 through them, so t-1 shares cannot rule out a secret.
    t, xs = 3, [1, 2, 3]
    shares = split_secret(b"\x01" * 16, threshold=t, xs=xs)
    seen = {x: shares[x] for x in xs[: t - 1]}
    for candidate in (b"\x02" * 16, b"\xff" * 16, bytes(15) + b"\x01"):
        points = [(0, int.from_bytes(candidate, "big")), *seen.items()]
        # the polynomial through (0, s'), (1, y1), (2, y2) yields a third share:
        third = _lagrange(points, 3)
        fake = {**seen, 3: third}
        assert combine_shares(fake, threshold=t, length=16) == candidate


def _lagrange(points: list[tuple[int, int]], at: int) -> int:
    total = 0
    for j, (xj, yj) in enumerate(points):
        num, den = 1, 1
        for m, (xm, _) in enumerate(points):
            if m != j:
                num, den = num * (at - xm) % PRIME, den * (xj - xm) % PRIME
        total = (total + yj * num * pow(den, -1, PRIME)) % PRIME
    return total


def test_shamir_single_share_is_uniform_chi_square() -> None:
    # With t=2, a share f(1) = s + a is uniform: its top bits are uniform whatever s is.
    counts = np.zeros(8, dtype=np.int64)
    for _ in range(800):
        y = split_secret(b"\x00", threshold=2, xs=[1, 2])[1]
        counts[(y * 8) // PRIME] += 1
    expected = 100.0
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 40.5  # false alarm probability 1e-6 (7 degrees of freedom)


@pytest.mark.parametrize(
    ("secret", "threshold", "xs", "field"),
    [
        (b"", 1, [1], "secret"),
        (b"x" * 65, 1, [1], "secret"),
        (b"x", 1, [0], "xs"),
        (b"x", 1, [PRIME], "xs"),
        (b"x", 1, [True], "xs"),
        (b"x", 2, [1, 1], "xs"),
        (b"x", 0, [1], "threshold"),
        (b"x", 3, [1, 2], "threshold"),
    ],
)
def test_split_secret_validation(secret: bytes, threshold: int, xs: list[int], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        split_secret(secret, threshold=threshold, xs=xs)
    assert info.value.field == field


def test_combine_shares_validation() -> None:
    with pytest.raises(ConfigError):
        combine_shares({1: 1}, threshold=0, length=1)
    with pytest.raises(ConfigError):
        combine_shares({1: 1}, threshold=1, length=0)
    with pytest.raises(SecureAggregationError):
        combine_shares({1: PRIME}, threshold=1, length=1)
    with pytest.raises(SecureAggregationError, match="fit in length=1"):
        combine_shares({1: 256}, threshold=1, length=1)


def test_encode_decode_share() -> None:
    for value in (0, 1, PRIME - 1, secrets.randbelow(PRIME)):
        data = encode_share(value)
        assert len(data) == 66 and decode_share(data) == value
    with pytest.raises(SecureAggregationError):
        decode_share(bytes(65))
    with pytest.raises(SecureAggregationError):
        decode_share(PRIME.to_bytes(66, "big"))
    with pytest.raises(ConfigError):
        encode_share(PRIME)


# ---------------------------------------------------------------------------------------
# prg and ring
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 8, 31, 32, 33, 63, 64])
def test_mask_vector_deterministic_bounded_uint64(bits: int) -> None:
    seed = bytes(range(32))
    a, b = mask_vector(seed, 1000, bits), mask_vector(seed, 1000, bits)
    assert a.dtype == np.uint64 and a.shape == (1000,)
    np.testing.assert_array_equal(a, b)
    if bits < 64:
        assert int(a.max()) < 2**bits
    assert not np.array_equal(a, mask_vector(bytes(31) + b"\x01", 1000, bits))
    a[0] = 0  # writable


def test_mask_vector_prefix_stable_and_roughly_uniform() -> None:
    seed = secrets.token_bytes(32)
    long, short = mask_vector(seed, 4000, 16), mask_vector(seed, 10, 16)
    np.testing.assert_array_equal(long[:10], short)
    mean = float(long.astype(np.float64).mean()) / 2**16
    assert abs(mean - 0.5) < 0.03
    assert mask_vector(seed, 0, 64).shape == (0,)


def test_mask_vector_validation() -> None:
    with pytest.raises(ConfigError, match="<31 bytes>"):
        mask_vector(bytes(31), 1, 8)
    with pytest.raises(ConfigError):
        mask_vector(bytes(32), -1, 8)
    for bits in (0, 65):
        with pytest.raises(ConfigError):
            mask_vector(bytes(32), 1, bits)


def test_ring_ops_wrap_and_stay_uint64() -> None:
    top = np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)
    one = np.array([1, 2**63, 7], dtype=np.uint64)
    s64 = ring_add(top, one, 64)
    assert s64.dtype == np.uint64
    assert s64.tolist() == [0, 0, 12]
    assert ring_sub(one, top, 64).tolist() == [2, 0, 2]
    assert ring_add(np.array([250], np.uint64), np.array([10], np.uint64), 8).tolist() == [4]
    assert ring_sub(np.array([3], np.uint64), np.array([10], np.uint64), 8).tolist() == [249]
    # Python int operands (also negative) never turn the result into float
    for result in (ring_add(top, 1, 64), ring_sub(top, 1, 64), ring_add(5, -6, 16)):
        assert result.dtype == np.uint64
    assert ring_add(top, 1, 64).tolist() == [0, 2**63 + 1, 6]
    assert ring_add(5, -6, 16).tolist() == 2**16 - 1
    assert ring_sub(np.array([0], np.uint32), 1, 12).tolist() == [4095]


def test_ring_sum_wraps_and_refuses_bad_vectors() -> None:
    vectors = [np.full(4, 2**63, np.uint64)] * 3 + [np.arange(4, dtype=np.uint64)]
    total = ring_sum(vectors, 64, 4)
    assert total.dtype == np.uint64
    assert total.tolist() == [(3 * 2**63 + i) % 2**64 for i in range(4)]
    assert ring_sum(vectors, 10, 4).tolist() == [i for i in range(4)]
    assert ring_sum([], 8, 3).tolist() == [0, 0, 0]
    with pytest.raises(ConfigError):
        ring_sum([np.zeros(3, np.uint64)], 8, 4)
    with pytest.raises(ConfigError):
        ring_sum([np.zeros(4, np.int64)], 8, 4)
    with pytest.raises(ConfigError):
        ring_add(np.zeros(2), np.zeros(2, np.uint64), 8)


def test_pairwise_and_self_masks_cancel_exactly() -> None:
    bits, length, ids = 40, 50, ["a", "b", "c"]
    rng = np.random.default_rng(0)
    q = Quantizer(clip_range=1.0, quantization_bits=16, modulus_bits=bits)
    inputs = {u: q.encode(rng.normal(size=length), rng) for u in ids}
    pair_seed = {frozenset(p): secrets.token_bytes(32) for p in itertools.combinations(ids, 2)}
    self_seed = {u: secrets.token_bytes(32) for u in ids}
    masked = {}
    for u in ids:
        y = ring_add(inputs[u], mask_vector(self_seed[u], length, bits), bits)
        for v in ids:
            if v != u:
                m = mask_vector(pair_seed[frozenset((u, v))], length, bits)
                y = ring_add(y, m, bits) if u < v else ring_sub(y, m, bits)
        masked[u] = y
    total = ring_sum([masked[u] for u in ids], bits, length)
    for u in ids:
        total = ring_sub(total, mask_vector(self_seed[u], length, bits), bits)
    np.testing.assert_array_equal(total, ring_sum(list(inputs.values()), bits, length))
    assert not np.array_equal(masked["a"], inputs["a"])


# ---------------------------------------------------------------------------------------
# quantize
# ---------------------------------------------------------------------------------------


def test_quantizer_properties_and_validation() -> None:
    q = Quantizer(clip_range=2.0, quantization_bits=8, modulus_bits=32)
    assert q.levels == 255 and q.step == pytest.approx(4.0 / 255)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"clip_range": 0.0}, "clip_range"),
        ({"clip_range": math.inf}, "clip_range"),
        ({"quantization_bits": 0}, "quantization_bits"),
        ({"quantization_bits": 33, "modulus_bits": 64}, "quantization_bits"),
        ({"modulus_bits": 8}, "modulus_bits"),
        ({"modulus_bits": 65}, "modulus_bits"),
    ]
    for change, field in bad:
        kwargs = {"clip_range": 1.0, "quantization_bits": 8, "modulus_bits": 32, **change}
        with pytest.raises(ConfigError) as info:
            Quantizer(**kwargs)
        assert info.value.field == field


def test_quantizer_single_input_within_one_step_and_clipped() -> None:
    q = Quantizer(clip_range=1.0, quantization_bits=10, modulus_bits=32)
    rng = np.random.default_rng(1)
    x = np.array([-5.0, -1.0, -0.3, 0.0, 0.123, 1.0, 7.0])
    encoded = q.encode(x, rng)
    assert encoded.dtype == np.uint64 and int(encoded.max()) <= q.levels
    decoded = q.decode_mean(encoded, 1)
    assert np.all(np.abs(decoded - np.clip(x, -1, 1)) <= q.step)
    assert decoded[0] == -1.0 and decoded[-1] == 1.0
    np.testing.assert_allclose(q.decode_sum(encoded, 1), decoded)
    with pytest.raises(ConfigError):
        q.encode(np.array([0.0, np.nan]), rng)


def test_stochastic_rounding_is_unbiased() -> None:
    q = Quantizer(clip_range=1.0, quantization_bits=2, modulus_bits=32)  # coarse: step 2/3
    rng = np.random.default_rng(2)
    x = np.array([0.1, -0.45, 0.9])
    trials = 4000
    total = ring_sum([q.encode(x, rng) for _ in range(trials)], 32, 3)
    mean = q.decode_mean(total, trials)
    np.testing.assert_allclose(mean, x, atol=0.02)
    np.testing.assert_allclose(q.decode_sum(total, trials) / trials, x, atol=0.02)


def test_weights_folded_recover_weighted_mean() -> None:
    q = Quantizer(clip_range=1.0, quantization_bits=12, modulus_bits=40)
    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1, 1, size=20) for _ in range(3)]
    weights = [1, 5, 40]
    total = ring_sum([q.encode(x, rng, weight=w) for x, w in zip(xs, weights, strict=True)], 40, 20)
    expected = sum(w * x for x, w in zip(xs, weights, strict=True)) / sum(weights)
    assert np.all(np.abs(q.decode_mean(total, sum(weights)) - expected) <= q.step)


def test_capacity_check_refuses_wrap_accepts_boundary() -> None:
    q = Quantizer(clip_range=1.0, quantization_bits=4, modulus_bits=8)  # L = 15, ring 256
    q.check_capacity(17, 1)  # 255 < 256
    q.check_capacity(8, 2, headroom=15)  # 240 + 15 = 255
    with pytest.raises(ConfigError) as info:
        q.check_capacity(18, 1)  # 270 >= 256
    assert info.value.field == "secure_aggregation.modulus_bits"
    assert "18 clients" in str(info.value) and "needs 9 bits" in str(info.value)
    assert "8 available" in str(info.value)
    with pytest.raises(ConfigError):
        q.check_capacity(8, 2, headroom=16)
    with pytest.raises(ConfigError):  # a single input with a huge weight would wrap
        q.encode(np.zeros(2), np.random.default_rng(0), weight=20)


# ---------------------------------------------------------------------------------------
# graph
# ---------------------------------------------------------------------------------------


def test_default_neighbours() -> None:
    assert [default_neighbours(n) for n in (2, 3, 16)] == [1, 2, 15]
    assert default_neighbours(17) == 14
    assert default_neighbours(100) == 20
    assert default_neighbours(1000) == 30
    assert all(default_neighbours(n) % 2 == 0 for n in range(17, 3000, 37))
    with pytest.raises(ConfigError):
        default_neighbours(1)


@pytest.mark.parametrize(("n", "k"), [(5, 2), (10, 4), (40, 6), (101, 20)])
def test_neighbour_graph_regular_symmetric_no_loops(n: int, k: int) -> None:
    ids = [f"node-{i:03d}" for i in range(n)]
    graph = neighbour_graph(ids, k, np.random.default_rng(7))
    assert list(graph) == ids
    for u, nbrs in graph.items():
        assert len(nbrs) == k and u not in nbrs and list(nbrs) == sorted(set(nbrs))
        assert all(u in graph[v] for v in nbrs)
    assert graph == neighbour_graph(ids[::-1], k, np.random.default_rng(7))
    other = neighbour_graph(ids, k, np.random.default_rng(8))
    assert other != graph


def test_neighbour_graph_full_and_refusals() -> None:
    ids = ["c", "a", "b", "d"]
    full = neighbour_graph(ids, 3, np.random.default_rng(0))
    assert full == {u: tuple(sorted(set(ids) - {u})) for u in ids}
    assert neighbour_graph(ids, 99, np.random.default_rng(0)) == full
    with pytest.raises(ConfigError, match="even"):
        neighbour_graph([str(i) for i in range(10)], 3, np.random.default_rng(0))
    for bad_ids, k in ((["a", "a", "b"], 2), (["a"], 1), (["a", "b"], 0)):
        with pytest.raises(ConfigError):
            neighbour_graph(bad_ids, k, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------
# channel
# ---------------------------------------------------------------------------------------


def _key(
    me: X25519PrivateKey, peer: bytes, purpose: str = "mask", session: bytes = SESSION
) -> bytes:
    return agree(me, peer, purpose=purpose, session=session, round_number=3, pair=("u", "v"))


def test_agree_symmetric_and_separated() -> None:
    (a, a_pub), (b, b_pub) = generate_keypair(), generate_keypair()
    assert len(a_pub) == 32
    k = _key(a, b_pub)
    assert len(k) == 32 and k == _key(b, a_pub)
    swapped = agree(b, a_pub, purpose="mask", session=SESSION, round_number=3, pair=("v", "u"))
    assert swapped == k
    variants = {
        _key(a, b_pub, purpose="share"),
        _key(a, b_pub, session=b"other-session"),
        agree(a, b_pub, purpose="mask", session=SESSION, round_number=4, pair=("u", "v")),
        agree(a, b_pub, purpose="mask", session=SESSION, round_number=3, pair=("u", "w")),
        # length prefixes: ("u", "v|x") and ("u|v", "x") must not collide
        agree(a, b_pub, purpose="mask", session=SESSION, round_number=3, pair=("u", "v|x")),
        agree(a, b_pub, purpose="mask", session=SESSION, round_number=3, pair=("u|v", "x")),
    }
    assert len(variants) == 6 and k not in variants


def test_agree_refuses_bad_public_keys_and_arguments() -> None:
    a, _ = generate_keypair()
    for bad in (bytes(32), (1).to_bytes(32, "little"), b"\x01" * 31):
        with pytest.raises(SecureAggregationError):
            _key(a, bad)
    _, b_pub = generate_keypair()
    with pytest.raises(ConfigError):
        agree(a, b_pub, purpose="mask", session=SESSION, round_number=1, pair=("u", "u"))
    with pytest.raises(ConfigError):
        agree(a, b_pub, purpose="", session=SESSION, round_number=1, pair=("u", "v"))
    with pytest.raises(ConfigError):
        agree(a, b_pub, purpose="mask", session=b"", round_number=1, pair=("u", "v"))
    with pytest.raises(ConfigError):
        agree(a, b_pub, purpose="mask", session=SESSION, round_number=-1, pair=("u", "v"))


def test_seal_round_trip_fresh_nonces_and_any_tampering_refused() -> None:
    key = secrets.token_bytes(32)
    ctx: dict[str, Any] = {"sender": "u", "recipient": "v", "session": SESSION, "round_number": 2}
    plaintext = b"share material"
    sealed = seal(key, plaintext, **ctx)
    assert open_sealed(key, sealed, **ctx) == plaintext
    again = seal(key, plaintext, **ctx)
    assert sealed[:12] != again[:12] and sealed != again
    for index in range(len(sealed)):
        flipped = bytearray(sealed)
        flipped[index] ^= 0x01
        with pytest.raises(SecureAggregationError, match="cannot be authenticated"):
            open_sealed(key, bytes(flipped), **ctx)
    wrong: list[dict[str, Any]] = [
        {"sender": "v", "recipient": "u"},
        {"sender": "w"},
        {"recipient": "w"},
        {"round_number": 3},
        {"session": b"another"},
    ]
    for change in wrong:
        with pytest.raises(SecureAggregationError, match="cannot be authenticated"):
            open_sealed(key, sealed, **{**ctx, **change})
    for short in (b"", sealed[:27], sealed[:-1]):
        with pytest.raises(SecureAggregationError, match="cannot be authenticated"):
            open_sealed(key, short, **ctx)
    with pytest.raises(SecureAggregationError):
        open_sealed(secrets.token_bytes(32), sealed, **ctx)
    with pytest.raises(ConfigError, match="<16 bytes>"):
        seal(bytes(16), plaintext, **ctx)
