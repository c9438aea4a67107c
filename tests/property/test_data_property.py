"""Property: partition is a partition, respects min_samples, and splits validation by floor."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heliosfl.data import NodeData, PartitionScheme, partition


@st.composite
def partition_cases(draw: st.DrawFn) -> tuple[NodeData, dict[str, object]]:
    rows = draw(st.integers(1, 80))
    num_classes = draw(st.integers(1, 5))
    min_samples = draw(st.integers(1, 4))
    num_nodes = draw(st.integers(1, max(1, min(25, rows // min_samples))))
    if num_nodes * min_samples > rows:
        min_samples = 1
    labels = draw(st.lists(st.integers(0, num_classes - 1), min_size=rows, max_size=rows))
    X = np.arange(rows * 2, dtype=np.float64).reshape(rows, 2)  # row i is identifiable
    data = NodeData(X, labels, [f"s{i}" for i in range(rows)])
    kwargs: dict[str, object] = {
        "num_nodes": num_nodes,
        "scheme": draw(st.sampled_from(list(PartitionScheme))),
        "alpha": draw(st.floats(0.01, 100.0)),
        "min_samples": min_samples,
        "val_fraction": draw(st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.9])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }
    return data, kwargs


@settings(max_examples=30, deadline=None)
@given(case=partition_cases())
def test_partition_invariants(case: tuple[NodeData, dict[str, object]]) -> None:
    data, kwargs = case

    nodes = partition(data, **kwargs)  # type: ignore[arg-type]

    assert len(nodes) == kwargs["num_nodes"]
    seen: list[str] = []
    for node in nodes:
        assert node.subject_ids is not None
        ids = node.subject_ids.tolist()
        X, y = node.X, node.y
        if node.subject_ids_val is not None:
            assert node.X_val is not None and node.y_val is not None
            ids += node.subject_ids_val.tolist()
            X, y = np.concatenate([X, node.X_val]), np.concatenate([y, node.y_val])
        rows = np.array([int(s[1:]) for s in ids], dtype=np.int64)
        # each row travels with its own features and label
        assert np.array_equal(X, data.X[rows]) and np.array_equal(y, data.y[rows])
        total = len(ids)
        assert total >= kwargs["min_samples"]  # type: ignore[operator]
        assert len(node) >= 1
        expected_val = min(math.floor(kwargs["val_fraction"] * total + 1e-9), total - 1)  # type: ignore[operator]
        assert node.num_val_samples == expected_val
        seen += ids
    assert sorted(seen) == sorted(data.subject_ids.tolist())  # type: ignore[union-attr]


@settings(max_examples=30, deadline=None)
@given(case=partition_cases())
def test_partition_is_a_function_of_its_seed(case: tuple[NodeData, dict[str, object]]) -> None:
    data, kwargs = case

    first = partition(data, **kwargs)  # type: ignore[arg-type]
    second = partition(data, **kwargs)  # type: ignore[arg-type]

    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
        assert a.num_val_samples == b.num_val_samples
