"""Shared fixtures and the ``slow`` marker switch."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# In CI, property tests draw the same examples every run (a red CI blocks landing, so
# it must not depend on luck); locally they explore new examples each time.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with `make test-slow` (--run-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
