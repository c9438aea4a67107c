"""Invariants of the SecAgg+ primitives: Shamir threshold, masks cancel, quantiser error."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heliosfl.errors import SecureAggregationError
from heliosfl.secagg import (
    Quantizer,
    combine_shares,
    mask_vector,
    ring_add,
    ring_sub,
    ring_sum,
    split_secret,
)


@settings(max_examples=60, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=64),
    n=st.integers(1, 7),
    data=st.data(),
)
def test_any_threshold_subset_reconstructs(secret: bytes, n: int, data: st.DataObject) -> None:
    xs = data.draw(st.lists(st.integers(1, 2**40), min_size=n, max_size=n, unique=True))
    threshold = data.draw(st.integers(1, n))
    shares = split_secret(secret, threshold=threshold, xs=xs)
    subset = data.draw(st.lists(st.sampled_from(xs), min_size=threshold, unique=True))
    got = combine_shares({x: shares[x] for x in subset}, threshold=threshold, length=len(secret))
    assert got == secret
    if threshold > 1:
        fewer = {x: shares[x] for x in subset[: threshold - 1]}
        try:
            combine_shares(fewer, threshold=threshold, length=len(secret))
        except SecureAggregationError:
            pass
        else:
            raise AssertionError("fewer than threshold shares were accepted")


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 8),
    bits=st.integers(1, 64),
    length=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_masks_cancel(n: int, bits: int, length: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"n{i}" for i in range(n)]
    inputs = {u: rng.integers(0, 2**bits, size=length, dtype=np.uint64) for u in ids}
    pair_seed = {p: rng.bytes(32) for p in itertools.combinations(ids, 2)}  # test-only seeds
    self_seed = {u: rng.bytes(32) for u in ids}
    masked = []
    for u in ids:
        y = ring_add(inputs[u], mask_vector(self_seed[u], length, bits), bits)
        for v in ids:
            if u < v:
                y = ring_add(y, mask_vector(pair_seed[(u, v)], length, bits), bits)
            elif v < u:
                y = ring_sub(y, mask_vector(pair_seed[(v, u)], length, bits), bits)
        masked.append(y)
    total = ring_sum(masked, bits, length)
    for u in ids:
        total = ring_sub(total, mask_vector(self_seed[u], length, bits), bits)
    assert total.dtype == np.uint64
    np.testing.assert_array_equal(total, ring_sum(list(inputs.values()), bits, length))


@settings(max_examples=80, deadline=None)
@given(
    clip_range=st.floats(0.01, 100.0),
    quantization_bits=st.integers(1, 24),
    weights=st.lists(st.integers(1, 1000), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.1, 300.0),
)
def test_decode_mean_within_one_step(
    clip_range: float, quantization_bits: int, weights: list[int], seed: int, scale: float
) -> None:
    q = Quantizer(clip_range, quantization_bits, 64)
    q.check_capacity(len(weights), max(weights))
    rng = np.random.default_rng(seed)
    xs = [rng.normal(scale=scale, size=16) for _ in weights]
    encoded = [q.encode(x, rng, weight=w) for x, w in zip(xs, weights, strict=True)]
    total = ring_sum(encoded, q.modulus_bits, 16)
    clipped = [np.clip(x, -clip_range, clip_range) for x in xs]
    expected = sum(w * c for c, w in zip(clipped, weights, strict=True)) / sum(weights)
    error = np.abs(q.decode_mean(total, sum(weights)) - expected)
    assert np.all(error <= q.step * (1 + 1e-9) + 1e-12 * clip_range)
