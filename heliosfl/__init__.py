"""heliosfl: federated learning you can run, watch and check from a notebook.

The public API renders the product guide in Python::

    import heliosfl as fl

    config = fl.Config(round_config=fl.RoundConfig(max_rounds=50, min_nodes_per_round=5))
    engine = fl.FederatedLearningEngine(config)
    await engine.register_model("m", "logistic_regression", input_dim=30)

``heliosfl.ui`` (widgets) is loaded only when used and needs ``heliosfl[jupyter]``.
"""

import importlib
import logging
from typing import Any

from heliosfl import compliance, data, models
from heliosfl.compliance import (
    AuditAction,
    AuditLogEntry,
    DataCategory,
    GdprComplianceManager,
    GdprConfig,
    HipaaComplianceManager,
    HipaaConfig,
)
from heliosfl.config import (
    AggregationStrategy,
    Config,
    DifferentialPrivacyConfig,
    NodeSelectionStrategy,
    NoiseMechanism,
    RoundConfig,
    SelectionKind,
    WorkerConfig,
)
from heliosfl.coordinator import Coordinator
from heliosfl.data import NodeData
from heliosfl.engine import FederatedLearningEngine
from heliosfl.errors import (
    ClosedError,
    ComplianceError,
    ConfigError,
    ConvergenceNotReached,
    FederatedLearningError,
    InsufficientNodes,
    ModelNotFound,
    NodeFailure,
    NodeNotFound,
    NodeTimeout,
    PrivacyBudgetExhausted,
    SecureAggregationError,
    WorkspaceError,
)
from heliosfl.events import EventBus
from heliosfl.faults import NodeFault
from heliosfl.models import Model, SymmetricInitWarning
from heliosfl.records import (
    CoordinatorState,
    ModelUpdate,
    NodeInfo,
    RoundRecord,
    RoundStatus,
    StopReason,
    TrainingResult,
)
from heliosfl.robust import CoordinateMedian, Krum, TrimmedMean
from heliosfl.secagg import SecureAggregationConfig
from heliosfl.store import Workspace
from heliosfl.strategies import FedAdagrad, FedAdam, FedAvg, FedOpt, FedProx, FedYogi, Strategy
from heliosfl.training import TrainingRun
from heliosfl.worker import FederatedWorker

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Load ``heliosfl.privacy``, ``heliosfl.ui`` and ``DaskBackend`` on first use.

    dp-accounting takes about a second to import; the widgets need the ``[jupyter]`` extra
    and the Dask backend the ``[dask]`` extra.
    """
    if name == "DaskBackend":
        return importlib.import_module("heliosfl.backends.dask").DaskBackend
    if name == "privacy":
        return importlib.import_module("heliosfl.privacy")
    if name == "ui":
        try:
            import ipywidgets  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                'heliosfl.ui needs the Jupyter extra: pip install "heliosfl[jupyter]"'
            ) from exc
        return importlib.import_module("heliosfl.ui")
    raise AttributeError(f"module 'heliosfl' has no attribute {name!r}")


logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AggregationStrategy",
    "AuditAction",
    "AuditLogEntry",
    "ClosedError",
    "ComplianceError",
    "Config",
    "ConfigError",
    "ConvergenceNotReached",
    "CoordinateMedian",
    "Coordinator",
    "CoordinatorState",
    "DaskBackend",
    "DataCategory",
    "DifferentialPrivacyConfig",
    "EventBus",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedOpt",
    "FedProx",
    "FedYogi",
    "FederatedLearningEngine",
    "FederatedLearningError",
    "FederatedWorker",
    "GdprComplianceManager",
    "GdprConfig",
    "HipaaComplianceManager",
    "HipaaConfig",
    "InsufficientNodes",
    "Krum",
    "Model",
    "ModelNotFound",
    "ModelUpdate",
    "NodeData",
    "NodeFailure",
    "NodeFault",
    "NodeInfo",
    "NodeNotFound",
    "NodeSelectionStrategy",
    "NodeTimeout",
    "NoiseMechanism",
    "PrivacyBudgetExhausted",
    "RoundConfig",
    "RoundRecord",
    "RoundStatus",
    "SecureAggregationConfig",
    "SecureAggregationError",
    "SelectionKind",
    "StopReason",
    "Strategy",
    "SymmetricInitWarning",
    "TrainingResult",
    "TrainingRun",
    "TrimmedMean",
    "WorkerConfig",
    "Workspace",
    "WorkspaceError",
    "__version__",
    "compliance",
    "data",
    "models",
    "privacy",
]
