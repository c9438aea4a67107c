"""Helpers for engine-level tests: small federations built through the public API."""

from __future__ import annotations

import pytest

import heliosfl as fl


@pytest.fixture(scope="session")
def breast_cancer() -> tuple[fl.NodeData, fl.NodeData]:
    return fl.data.load_dataset("breast_cancer", seed=0)


@pytest.fixture(scope="session")
def small_nodes(breast_cancer: tuple[fl.NodeData, fl.NodeData]) -> list[fl.NodeData]:
    train, _ = breast_cancer
    return fl.data.partition(train, num_nodes=10, scheme="iid", seed=0)
