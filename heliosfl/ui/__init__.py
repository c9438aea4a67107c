"""Jupyter widgets for heliosfl (needs ``pip install "heliosfl[jupyter]"``).

Widgets are views: they learn from the engine's events and call its public coroutines,
redraw at most ten times a second, and show the errors of the tasks they start.

* :class:`ConvergencePlot` — loss and accuracy per round, epsilon spent on a second axis.
* :class:`ClusterGrid` — one cell per node, coloured live by state.
* :class:`RoundHistoryTable` — the rounds so far.
* :class:`PrivacyBudgetWidget` — choose a budget, see the noise and the curve.
* :class:`TrainingLauncher` — build and run a simulated federation.
* :class:`Dashboard` — all of the above for one model.
* :class:`HipaaWalkthrough`, :class:`GdprWalkthrough` — step-by-step compliance wizards.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ClusterGrid",
    "ConvergencePlot",
    "Dashboard",
    "GdprWalkthrough",
    "HipaaWalkthrough",
    "PrivacyBudgetWidget",
    "RoundHistoryTable",
    "TrainingLauncher",
]

_WHERE = {
    "ClusterGrid": "heliosfl.ui.cluster",
    "ConvergencePlot": "heliosfl.ui.convergence",
    "Dashboard": "heliosfl.ui.dashboard",
    "GdprWalkthrough": "heliosfl.ui.gdpr_walkthrough",
    "HipaaWalkthrough": "heliosfl.ui.hipaa_walkthrough",
    "PrivacyBudgetWidget": "heliosfl.ui.privacy_budget",
    "RoundHistoryTable": "heliosfl.ui.history",
    "TrainingLauncher": "heliosfl.ui.launcher",
}


def __getattr__(name: str) -> Any:
    """Import each widget on first use (matplotlib, anywidget load only when needed)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'heliosfl.ui' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
