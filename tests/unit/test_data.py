"""Unit tests for heliosfl.data: NodeData, bundled datasets, synthetic sites, partitioners."""

from __future__ import annotations

import dataclasses
import logging
import math
import pickle
import time
import tracemalloc

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import heliosfl.data as data_pkg
import heliosfl.data.synthetic as synthetic_module
from heliosfl.data import (
    DATASETS,
    NodeData,
    PartitionScheme,
    Standardizer,
    load_dataset,
    partition,
    synthetic_sites,
)
from heliosfl.errors import ConfigError


def small_node(n: int = 10, d: int = 3, *, classes: int = 2, seed: int = 0) -> NodeData:
    rng = np.random.default_rng(seed)
    ids = [f"person-{i:03d}" for i in range(n)]
    return NodeData(rng.normal(size=(n, d)), np.arange(n) % classes, ids)


def all_ids(nodes: list[NodeData]) -> list[str]:
    out: list[str] = []
    for node in nodes:
        assert node.subject_ids is not None
        out += node.subject_ids.tolist()
        if node.subject_ids_val is not None:
            out += node.subject_ids_val.tolist()
    return out


def all_labels(node: NodeData) -> np.ndarray:
    return node.y if node.y_val is None else np.concatenate([node.y, node.y_val])


def mean_label_entropy(nodes: list[NodeData], num_classes: int) -> float:
    entropies = []
    for node in nodes:
        p = np.bincount(all_labels(node), minlength=num_classes) / (
            len(node) + node.num_val_samples
        )
        p = p[p > 0]
        entropies.append(float(-(p * np.log(p)).sum()))
    return float(np.mean(entropies))


@pytest.fixture(scope="module")
def breast_cancer() -> tuple[NodeData, NodeData]:
    return load_dataset("breast_cancer", seed=0)


# --- public API ---------------------------------------------------------------------------


def test_all_is_sorted_and_exported() -> None:
    assert data_pkg.__all__ == sorted(data_pkg.__all__, key=lambda n: (not n.isupper(), n))
    for name in data_pkg.__all__:
        assert hasattr(data_pkg, name)


# --- NodeData ---------------------------------------------------------------------------


def test_nodedata_converts_and_copies_array_likes() -> None:
    X = np.array([[1, 2], [3, 4], [5, 6]])
    y = [0.0, 1.0, 1.0]

    node = NodeData(X, y, ["a", "b", "c"])
    X[0, 0] = 99

    assert node.X.dtype == np.float64 and node.y.dtype == np.int64
    assert node.X[0, 0] == 1.0, "node must not alias the caller's array"
    assert X.flags.writeable, "the caller's array must not be frozen"
    assert len(node) == node.num_samples == 3 and node.num_features == 2
    assert node.classes.tolist() == [0, 1]
    assert not node.has_validation and node.num_val_samples == 0


def test_nodedata_arrays_are_read_only() -> None:
    node = small_node()
    val = node.split_validation(0.3, np.random.default_rng(0))

    with pytest.raises(ValueError, match="read-only"):
        node.X[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        node.y[0] = 1
    assert val.X_val is not None and val.subject_ids is not None
    with pytest.raises(ValueError, match="read-only"):
        val.X_val[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        val.subject_ids[0] = "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.X = np.zeros((2, 2))  # type: ignore[misc]


GOOD_X = [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"X": [0.0, 1.0, 2.0], "y": [0, 1, 0]}, "X"),
        ({"X": [[0.0, np.nan], [1.0, 0.0], [2.0, 2.0]], "y": [0, 1, 0]}, "X"),
        ({"X": [[0.0, np.inf], [1.0, 0.0], [2.0, 2.0]], "y": [0, 1, 0]}, "X"),
        ({"X": [["a", "b"]] * 3, "y": [0, 1, 0]}, "X"),
        ({"X": np.zeros((3, 0)), "y": [0, 1, 0]}, "X"),
        ({"X": GOOD_X, "y": [0, 1]}, "y"),
        ({"X": GOOD_X, "y": [0, -1, 0]}, "y"),
        ({"X": GOOD_X, "y": [0, 1.5, 0]}, "y"),
        ({"X": GOOD_X, "y": [[0], [1], [0]]}, "y"),
        ({"X": GOOD_X, "y": [0, 1, 0], "subject_ids": ["alice", "bob"]}, "subject_ids"),
        ({"X": GOOD_X, "y": [0, 1, 0], "subject_ids": [1, 2, 3]}, "subject_ids"),
        ({"X": GOOD_X, "y": [0, 1, 0], "X_val": [[0.0, 1.0]]}, "y_val"),
        ({"X": GOOD_X, "y": [0, 1, 0], "y_val": [1]}, "X_val"),
        ({"X": GOOD_X, "y": [0, 1, 0], "X_val": [[0.0]], "y_val": [1]}, "X_val"),
        ({"X": GOOD_X, "y": [0, 1, 0], "X_val": [[0.0, 1.0]], "y_val": [1, 0]}, "y_val"),
        (
            {
                "X": GOOD_X,
                "y": [0, 1, 0],
                "subject_ids": ["alice", "bob", "carol"],
                "X_val": [[0.0, 1.0]],
                "y_val": [1],
            },
            "subject_ids_val",
        ),
        ({"X": GOOD_X, "y": [0, 1, 0], "subject_ids_val": ["alice"]}, "y_val"),
    ],
)
def test_nodedata_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        NodeData(**kwargs)  # type: ignore[arg-type]

    assert info.value.field == field
    assert str(info.value).startswith(f"{field} must be")
    assert isinstance(info.value, ValueError)
    assert "alice" not in str(info.value), "messages must not show subject ids"


def test_nodedata_accepts_an_empty_training_part() -> None:
    node = NodeData(np.empty((0, 3)), [], [])

    assert len(node) == 0 and node.num_features == 3 and node.classes.size == 0


def test_without_subjects_removes_training_and_validation_rows() -> None:
    node = NodeData(
        GOOD_X,
        [0, 1, 0],
        ["alice", "bob", "alice"],
        X_val=[[5.0, 5.0], [6.0, 6.0]],
        y_val=[1, 1],
        subject_ids_val=["alice", "carol"],
    )

    kept = node.without_subjects(["alice", "nobody"])
    single = node.without_subjects("bob")

    assert kept.subject_ids is not None and kept.subject_ids.tolist() == ["bob"]
    assert kept.X.tolist() == [[1.0, 0.0]] and kept.y.tolist() == [1]
    assert kept.subject_ids_val is not None and kept.subject_ids_val.tolist() == ["carol"]
    assert kept.X_val is not None and kept.X_val.tolist() == [[6.0, 6.0]]
    assert single.subject_ids is not None and "bob" not in single.subject_ids
    assert len(node) == 3, "the original node is unchanged"


def test_without_subjects_drops_an_emptied_validation_split_and_needs_ids() -> None:
    node = NodeData(
        GOOD_X, [0, 1, 0], ["a", "b", "c"], X_val=[[1.0, 1.0]], y_val=[0], subject_ids_val=["z"]
    )

    assert node.without_subjects(["z"]).X_val is None
    assert len(node.without_subjects(["a", "b", "c", "z"])) == 0
    with pytest.raises(ConfigError, match="subject_ids"):
        NodeData(GOOD_X, [0, 1, 0]).without_subjects(["a"])


def test_split_validation_moves_floor_fraction_and_keeps_every_row() -> None:
    node = small_node(n=29)

    split = node.split_validation(0.29, np.random.default_rng(1))
    again = node.split_validation(0.29, np.random.default_rng(1))

    assert split.num_val_samples == math.floor(0.29 * 29) == 8
    assert len(split) == 21
    assert sorted(all_ids([split])) == sorted(all_ids([node]))
    assert np.array_equal(split.X_val, again.X_val)  # type: ignore[arg-type]
    # each moved row keeps its features and label
    assert split.subject_ids_val is not None and split.X_val is not None
    rows = {sid: i for i, sid in enumerate(node.subject_ids.tolist())}  # type: ignore[union-attr]
    for sid, x, label in zip(split.subject_ids_val, split.X_val, split.y_val, strict=True):  # type: ignore[arg-type]
        assert np.array_equal(node.X[rows[sid]], x) and node.y[rows[sid]] == label


def test_split_validation_keeps_one_training_row_and_appends() -> None:
    node = small_node(n=2)
    rng = np.random.default_rng(0)

    once = small_node(n=10).split_validation(0.5, rng)
    twice = once.split_validation(0.5, rng)

    assert len(node.split_validation(0.9, rng)) == 1
    assert node.split_validation(0.0, rng) is node
    assert (len(twice), twice.num_val_samples) == (3, 7)
    assert twice.X_val is not None and once.X_val is not None
    assert np.array_equal(twice.X_val[:5], once.X_val)
    with pytest.raises(ConfigError, match="fraction"):
        node.split_validation(1.0, rng)
    with pytest.raises(ConfigError, match="rng"):
        node.split_validation(0.5, 0)  # type: ignore[arg-type]


def test_nodedata_pickles_read_only_and_repr_hides_ids() -> None:
    node = small_node().split_validation(0.2, np.random.default_rng(0))

    clone = pickle.loads(pickle.dumps(node))  # noqa: S301 (our own bytes)

    assert np.array_equal(clone.X, node.X) and np.array_equal(clone.y_val, node.y_val)  # type: ignore[arg-type]
    assert not clone.X.flags.writeable and not clone.X_val.flags.writeable
    assert "person" not in repr(node) and "num_samples=8" in repr(node)


# --- bundled datasets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "features", "classes"), [("breast_cancer", 30, 2), ("digits", 64, 10)]
)
def test_dataset_shapes(name: str, features: int, classes: int) -> None:
    train, test = load_dataset(name, seed=0)

    assert train.num_features == test.num_features == features == DATASETS[name].num_features
    assert len(train) + len(test) == DATASETS[name].num_samples
    assert train.classes.tolist() == test.classes.tolist() == list(range(classes))
    assert abs(len(test) / DATASETS[name].num_samples - 0.2) < 0.01
    assert not train.has_validation


def test_dataset_split_is_stratified_seeded_and_disjoint() -> None:
    a_train, a_test = load_dataset("breast_cancer", seed=3)
    b_train, _ = load_dataset("breast_cancer", seed=3)
    c_train, _ = load_dataset("breast_cancer", seed=4)

    assert np.array_equal(a_train.X, b_train.X) and np.array_equal(a_train.y, b_train.y)
    assert not np.array_equal(a_train.subject_ids, c_train.subject_ids)  # type: ignore[arg-type]
    assert set(all_ids([a_train])).isdisjoint(all_ids([a_test]))
    assert abs(a_train.y.mean() - a_test.y.mean()) < 0.01


def test_tiny_test_fraction_still_holds_every_class() -> None:
    train, test = load_dataset("digits", seed=0, test_fraction=0.001)

    assert test.classes.tolist() == list(range(10)) and len(test) == 10
    assert len(train) == 1797 - 10


def test_dataset_subject_ids_point_at_the_original_rows() -> None:
    raw_X, raw_y = load_breast_cancer(return_X_y=True)

    train, _ = load_dataset("breast_cancer", seed=0, standardize=False)

    assert train.subject_ids is not None
    index = np.array([int(s.removeprefix("breast_cancer-")) for s in train.subject_ids])
    assert train.subject_ids[0] == f"breast_cancer-{index[0]:06d}"
    assert np.array_equal(train.X, raw_X[index]) and np.array_equal(train.y, raw_y[index])


def test_standardizer_is_fitted_on_train_only(breast_cancer: tuple[NodeData, NodeData]) -> None:
    train, test = breast_cancer
    raw_train, raw_test = load_dataset("breast_cancer", seed=0, standardize=False)

    expected = Standardizer.fit(raw_train.X).transform(raw_test.X)

    np.testing.assert_allclose(train.X.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(train.X.std(axis=0), 1.0, atol=1e-10)
    np.testing.assert_allclose(test.X, expected)
    assert np.abs(test.X.mean(axis=0)).max() > 1e-3, "test mean exactly 0 would mean leakage"


def test_standardizer_handles_constant_columns_and_checks_width() -> None:
    X = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]])

    fitted = Standardizer.fit(X)

    assert fitted.scale[1] == 1.0 and fitted.mean.tolist() == [3.0, 7.0]
    assert np.all(fitted.transform(X)[:, 1] == 0.0)
    assert not fitted.mean.flags.writeable
    with pytest.raises(ConfigError, match=r"^X must be 2 columns"):
        fitted.transform(np.ones((2, 3)))
    with pytest.raises(ConfigError, match="scale"):
        Standardizer(np.zeros(2), np.array([1.0, 0.0]))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "mnist"}, "name"),
        ({"name": "digits", "seed": -1}, "seed"),
        ({"name": "digits", "test_fraction": 1.0}, "test_fraction"),
        ({"name": "digits", "test_fraction": 0.0}, "test_fraction"),
        ({"name": "digits", "standardize": "yes"}, "standardize"),
    ],
)
def test_load_dataset_rejects_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset(**kwargs)  # type: ignore[arg-type]

    assert info.value.field == field
    if field == "name":
        assert "'breast_cancer', 'digits'" in str(info.value)


# --- synthetic sites --------------------------------------------------------------------


def test_synthetic_sites_shapes_and_ids() -> None:
    sites, test = synthetic_sites(
        num_sites=5, samples_per_site=50, num_features=7, num_classes=3, test_samples=300, seed=1
    )

    assert len(sites) == 5 and len(test) == 300 and test.num_features == 7
    for site in sites:
        assert (len(site), site.num_val_samples, site.num_features) == (40, 10, 7)
        assert set(np.unique(all_labels(site))) <= {0, 1, 2}
    assert sites[3].subject_ids is not None and sites[3].subject_ids_val is not None
    assert sites[3].subject_ids[0] == "site00003-000000"
    assert sites[3].subject_ids_val[-1] == "site00003-000049"
    assert len(set(all_ids(sites))) == 250
    assert test.subject_ids is not None and test.subject_ids[17] == "test-000017"


def test_synthetic_sites_are_deterministic_by_seed() -> None:
    a, a_test = synthetic_sites(num_sites=4, samples_per_site=(5, 30), seed=7)
    b, b_test = synthetic_sites(num_sites=4, samples_per_site=(5, 30), seed=7)
    c, _ = synthetic_sites(num_sites=4, samples_per_site=(5, 30), seed=8)

    for left, right in zip(a, b, strict=True):
        assert np.array_equal(left.X, right.X) and np.array_equal(left.y_val, right.y_val)  # type: ignore[arg-type]
    assert np.array_equal(a_test.X, b_test.X)
    assert not np.array_equal(a[0].X[:5], c[0].X[:5])


def test_synthetic_quantity_skew_sizes_lie_in_range() -> None:
    sites, _ = synthetic_sites(num_sites=200, samples_per_site=(10, 60), seed=0)

    sizes = np.array([len(s) + s.num_val_samples for s in sites])

    assert sizes.min() >= 10 and sizes.max() <= 60 and sizes.std() > 5


def test_synthetic_label_skew_lowers_per_site_entropy() -> None:
    skewed, _ = synthetic_sites(num_sites=100, label_skew=0.1, num_classes=4, seed=0)
    balanced, _ = synthetic_sites(num_sites=100, label_skew=None, num_classes=4, seed=0)

    assert mean_label_entropy(skewed, 4) < 0.6 * mean_label_entropy(balanced, 4)
    assert mean_label_entropy(balanced, 4) > 0.95 * math.log(4)


def test_synthetic_covariate_shift_moves_site_feature_means() -> None:
    def spread_of_site_means(shift: float) -> float:
        sites, _ = synthetic_sites(
            num_sites=50,
            samples_per_site=400,
            covariate_shift=shift,
            label_skew=None,
            class_separation=0.0,
            seed=0,
        )
        means = np.array([site.X.mean(axis=0) for site in sites])
        return float(np.linalg.norm(means - means.mean(axis=0), axis=1).mean())

    # no shift: site means differ only by sampling noise, about sqrt(30 / 320) = 0.31
    assert spread_of_site_means(0.0) < 0.4
    assert spread_of_site_means(3.0) > 2.0


def test_synthetic_sites_have_learnable_signal() -> None:
    sites, test = synthetic_sites(num_sites=20, seed=0)
    X = np.concatenate([site.X for site in sites])
    y = np.concatenate([site.y for site in sites])

    accuracy = LogisticRegression(max_iter=500).fit(X, y).score(test.X, test.y)

    assert accuracy > 0.8


def test_ten_thousand_sites_are_fast() -> None:
    start = time.perf_counter()
    sites, _ = synthetic_sites(num_sites=10_000, samples_per_site=100, num_features=30)
    elapsed = time.perf_counter() - start

    assert len(sites) == 10_000 and len(sites[-1]) == 80 and sites[-1].num_features == 30
    assert sites[-1].subject_ids is not None and sites[-1].subject_ids[0] == "site09999-000000"
    assert elapsed < 10.0, f"took {elapsed:.1f} s; is there a Python loop per row?"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_sites": 0}, "num_sites"),
        ({"num_sites": 2, "samples_per_site": 0}, "samples_per_site"),
        ({"num_sites": 2, "samples_per_site": (5, 2)}, "samples_per_site"),
        ({"num_sites": 2, "samples_per_site": (1, 2, 3)}, "samples_per_site"),
        ({"num_sites": 2, "num_classes": 1}, "num_classes"),
        ({"num_sites": 2, "label_skew": 0.0}, "label_skew"),
        ({"num_sites": 2, "covariate_shift": math.nan}, "covariate_shift"),
        ({"num_sites": 2, "val_fraction": 1.0}, "val_fraction"),
        ({"num_sites": 2, "test_samples": 0}, "test_samples"),
        ({"num_sites": 2, "seed": True}, "seed"),
    ],
)
def test_synthetic_sites_rejects_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        synthetic_sites(**kwargs)  # type: ignore[arg-type]

    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"num_classes": 10**9}, "num_classes", "an integer in [2, 10,000]"),
        ({"num_classes": 10_001}, "num_classes", "an integer in [2, 10,000]"),
        ({"num_features": 10**6}, "num_features", "an integer in [1, 100,000]"),
        ({"num_features": np.int64(100_001)}, "num_features", "an integer in [1, 100,000]"),
    ],
)
def test_synthetic_sites_caps_classes_and_features(
    kwargs: dict[str, object], field: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        synthetic_sites(num_sites=2, **kwargs)  # type: ignore[arg-type]

    assert info.value.field == field
    assert info.value.allowed == allowed
    assert str(info.value).startswith(f"{field} must be {allowed}. Found ")


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        pytest.param(
            {"num_sites": 10**7, "samples_per_site": 1000},
            "num_sites * samples_per_site",
            10**10,
            id="rows",
        ),
        pytest.param(
            {"num_sites": 2, "samples_per_site": (1, 10**9)},
            "num_sites * samples_per_site",
            2 * 10**9,
            id="rows-range",
        ),
        pytest.param(
            {"num_sites": 2, "test_samples": 10**9}, "test_samples", 10**9, id="test-rows"
        ),
        pytest.param(
            {"num_sites": 10**6, "samples_per_site": 1, "num_classes": 10_000},
            "num_sites",
            10**6,
            id="site-tables",
        ),
        pytest.param(
            {
                "num_sites": 1,
                "samples_per_site": 1,
                "num_classes": 10_000,
                "num_features": 100_000,
                "test_samples": 1,
            },
            "num_classes * num_features",
            10**9,
            id="class-means",
        ),
    ],
)
def test_synthetic_sites_refuses_more_than_4_gib_up_front(
    kwargs: dict[str, object], field: str, value: int
) -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        synthetic_sites(**kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start

    err = info.value
    assert (err.field, err.value) == (field, value)
    assert str(err).startswith(f"{field} must be at most ")
    assert "fit in 4 GiB" in str(err) and f"Found {value}." in str(err)
    assert elapsed < 1.0, "the size check must come before any allocation"


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"num_sites": 5, "num_classes": 10_000}, id="many-classes"),
        pytest.param(
            {"num_sites": 2, "samples_per_site": 20, "num_features": 20_000}, id="wide-rows"
        ),
        pytest.param({"num_sites": 2_000, "samples_per_site": (1, 60)}, id="many-sites"),
    ],
)
def test_synthetic_sites_peak_memory_stays_within_the_estimate(
    kwargs: dict[str, object],
) -> None:
    sizes = kwargs.get("samples_per_site", 100)
    high = sizes[1] if isinstance(sizes, tuple) else sizes
    terms = synthetic_module._estimated_bytes(
        num_sites=kwargs["num_sites"],  # type: ignore[arg-type]
        max_rows=kwargs["num_sites"] * high,  # type: ignore[operator]
        num_features=kwargs.get("num_features", 30),  # type: ignore[arg-type]
        num_classes=kwargs.get("num_classes", 2),  # type: ignore[arg-type]
        test_samples=2000,
    )
    estimate = synthetic_module._FIXED_BYTES + sum(value * unit for value, unit in terms.values())

    tracemalloc.start()
    try:
        synthetic_sites(**kwargs)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak <= estimate, f"peak {peak / 2**20:.0f} MiB > estimate {estimate / 2**20:.0f} MiB"


def test_synthetic_sites_accepts_the_largest_class_count() -> None:
    sites, test = synthetic_sites(
        num_sites=2, samples_per_site=20, num_classes=10_000, test_samples=50
    )

    assert int(test.y.max()) < 10_000 and len(sites) == 2


# --- partition --------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", list(PartitionScheme))
def test_partition_puts_every_row_on_exactly_one_node(
    breast_cancer: tuple[NodeData, NodeData], scheme: PartitionScheme
) -> None:
    train, _ = breast_cancer

    nodes = partition(train, 20, scheme=scheme, alpha=0.3, min_samples=5, seed=0)

    ids = all_ids(nodes)
    assert len(nodes) == 20
    assert len(ids) == len(set(ids)) == len(train)
    assert set(ids) == set(train.subject_ids.tolist())  # type: ignore[union-attr]
    assert min(len(n) + n.num_val_samples for n in nodes) >= 5


def test_partition_keeps_rows_intact(breast_cancer: tuple[NodeData, NodeData]) -> None:
    train, _ = breast_cancer
    assert train.subject_ids is not None
    row_of = {sid: i for i, sid in enumerate(train.subject_ids.tolist())}

    nodes = partition(train, 7, scheme="dirichlet", seed=2)

    for node in nodes:
        assert node.subject_ids is not None
        rows = [row_of[s] for s in node.subject_ids]
        assert np.array_equal(node.X, train.X[rows]) and np.array_equal(node.y, train.y[rows])


def test_partition_is_deterministic_by_seed(breast_cancer: tuple[NodeData, NodeData]) -> None:
    train, _ = breast_cancer

    a = partition(train, 10, scheme="dirichlet", seed=5)
    b = partition(train, 10, scheme=PartitionScheme.DIRICHLET, seed=5)
    c = partition(train, 10, scheme="dirichlet", seed=6)

    assert all_ids(a) == all_ids(b)
    assert all_ids(a) != all_ids(c)


def test_iid_sizes_differ_by_at_most_one(breast_cancer: tuple[NodeData, NodeData]) -> None:
    train, _ = breast_cancer

    sizes = [len(n) + n.num_val_samples for n in partition(train, 13, seed=0)]

    assert max(sizes) - min(sizes) <= 1


def test_hundred_dirichlet_nodes_over_breast_cancer_work_and_are_skewed(
    breast_cancer: tuple[NodeData, NodeData], caplog: pytest.LogCaptureFixture
) -> None:
    train, _ = breast_cancer

    with caplog.at_level(logging.DEBUG, logger="heliosfl.data.partition"):
        skewed = partition(train, 100, scheme="dirichlet", alpha=0.5, min_samples=2, seed=0)
    iid = partition(train, 100, scheme="iid", seed=0)

    assert len(skewed) == 100
    assert min(len(n) + n.num_val_samples for n in skewed) >= 2
    assert all(len(n) >= 1 for n in skewed)
    assert mean_label_entropy(skewed, 2) < 0.7 * mean_label_entropy(iid, 2)
    assert "No Dirichlet draw" in caplog.text, "this case needs the top-up path"


def test_dirichlet_uses_plain_draw_when_it_fits(
    breast_cancer: tuple[NodeData, NodeData], caplog: pytest.LogCaptureFixture
) -> None:
    train, _ = breast_cancer

    with caplog.at_level(logging.DEBUG, logger="heliosfl.data.partition"):
        nodes = partition(train, 5, scheme="dirichlet", alpha=0.1, seed=0)

    assert "No Dirichlet draw" not in caplog.text
    assert mean_label_entropy(nodes, 2) < 0.5


def test_dirichlet_small_alpha_is_more_skewed_than_large() -> None:
    train, _ = load_dataset("digits", seed=0)

    def entropy(alpha: float) -> float:
        return mean_label_entropy(partition(train, 20, scheme="dirichlet", alpha=alpha), 10)

    assert entropy(0.1) < entropy(100.0) - 0.5


def test_quantity_skew_varies_sizes_but_not_labels(
    breast_cancer: tuple[NodeData, NodeData],
) -> None:
    train, _ = breast_cancer

    nodes = partition(train, 10, scheme="quantity", alpha=0.5, min_samples=10, seed=0)

    sizes = np.array([len(n) + n.num_val_samples for n in nodes])
    big = [n for n in nodes if len(n) + n.num_val_samples >= 40]
    assert sizes.min() >= 10 and sizes.std() > 10
    for node in big:
        assert abs(all_labels(node).mean() - train.y.mean()) < 0.25


def test_partition_validation_split_per_node(breast_cancer: tuple[NodeData, NodeData]) -> None:
    train, _ = breast_cancer

    nodes = partition(train, 8, val_fraction=0.25, seed=0)
    plain = partition(train, 8, val_fraction=0.0, seed=0)

    for node in nodes:
        total = len(node) + node.num_val_samples
        assert node.num_val_samples == math.floor(0.25 * total)
    assert not any(node.has_validation for node in plain)


def test_partition_without_subject_ids() -> None:
    data = NodeData(np.zeros((12, 2)), np.arange(12) % 3)

    nodes = partition(data, 3, scheme="dirichlet", seed=0)

    assert all(node.subject_ids is None for node in nodes)
    assert sum(len(n) + n.num_val_samples for n in nodes) == 12


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_nodes": 0}, "num_nodes"),
        ({"num_nodes": 6}, "num_nodes"),
        ({"num_nodes": 2, "alpha": 0.0}, "alpha"),
        ({"num_nodes": 2, "alpha": math.nan}, "alpha"),
        ({"num_nodes": 2, "alpha": math.inf}, "alpha"),
        ({"num_nodes": 2, "scheme": "by_site"}, "scheme"),
        ({"num_nodes": 2, "min_samples": 0}, "min_samples"),
        ({"num_nodes": 2, "val_fraction": 1.0}, "val_fraction"),
        ({"num_nodes": 2, "val_fraction": -0.1}, "val_fraction"),
        ({"num_nodes": 2, "seed": -3}, "seed"),
    ],
)
def test_partition_rejects_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    data = small_node(n=10)

    with pytest.raises(ConfigError) as info:
        partition(data, **kwargs)  # type: ignore[arg-type]

    assert info.value.field == field
    if field == "scheme":
        assert "'iid', 'dirichlet', 'quantity'" in str(info.value)


def test_dirichlet_partition_refuses_class_by_node_tables_over_4_gib() -> None:
    rows = 200_000
    data = NodeData(np.zeros((rows, 1)), np.arange(rows))  # one class per row

    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        partition(data, 100_000, scheme="dirichlet")
    elapsed = time.perf_counter() - start

    err = info.value
    assert (err.field, err.value) == ("num_nodes", 100_000)
    assert str(err).startswith("num_nodes must be at most 335 for the 'dirichlet' scheme")
    assert "200,000 classes" in str(err) and "4 GiB" in str(err)
    assert elapsed < 2.0, "the size check must come before the tables are allocated"


def test_partition_refuses_data_with_a_validation_split() -> None:
    data = small_node(n=10).split_validation(0.2, np.random.default_rng(0))

    with pytest.raises(ConfigError, match=r"^data must be a NodeData without a validation"):
        partition(data, 2)
