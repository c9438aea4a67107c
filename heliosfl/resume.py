"""Continuing a run kept in a persistent workspace (after a kernel restart).

Everything a coordinator needs to go on exactly where the run stopped is read back from
the workspace: the architecture, the last checkpoint (parameters and aggregation state),
the round history (from which the node registry is replayed) and the initial parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from heliosfl.config import Config
from heliosfl.data import NodeData
from heliosfl.errors import ConfigError, ModelNotFound
from heliosfl.models import Model, model_from_spec
from heliosfl.models.base import check_params
from heliosfl.records import RoundRecord
from heliosfl.store import Workspace

__all__ = ["StoredRun", "check_same_run", "check_validation_data", "load_stored_run"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class StoredRun:
    """A run read back from the workspace, ready for a coordinator."""

    model: Model
    params: FloatArray
    initial_params: FloatArray
    round_number: int
    history: list[RoundRecord]
    strategy_state: dict[str, FloatArray]
    privacy_ledger: list[dict[str, Any]]


def load_stored_run(
    workspace: Workspace, model_id: str, config: Config, model: Model | None = None
) -> StoredRun:
    """Read a stored run (synchronously; the engine calls this off the event loop).

    Parameters
    ----------
    workspace : Workspace
        Where the run is kept.
    model_id : str
        The model.
    config : Config
        The configuration the run will continue under (checked with
        :func:`check_same_run`).
    model : Model or None
        The model instance, required for a custom model (built-in ones are rebuilt from
        their stored architecture).

    Raises
    ------
    ModelNotFound
        If the workspace holds no such model.
    ConfigError
        If a custom model is not given, does not match the stored parameters, or the
        configuration would make it another run.
    """
    record = workspace.load_model(model_id)
    if record is None:
        raise ModelNotFound(model_id, tuple(workspace.list_models()))
    if model is None:
        if record.spec.get("model_type") == "custom":
            raise ConfigError(
                "model", None, "the Model instance for a custom model", "Pass model=..."
            )
        model = model_from_spec(record.spec)
    check_same_run(record.config, config)
    checkpoint = workspace.latest_checkpoint(model_id)
    params = check_params(model, checkpoint.params, field="checkpoint params")
    history = [
        RoundRecord.from_dict(row) for row in workspace.rounds(model_id, include_failed=True)
    ]
    initial = workspace.checkpoint(model_id, 0).params
    initial.flags.writeable = False
    return StoredRun(
        model=model,
        params=params,
        initial_params=initial,
        round_number=checkpoint.round_number,
        history=history,
        strategy_state=dict(checkpoint.state),
        privacy_ledger=workspace.privacy_ledger(model_id),
    )


def check_validation_data(model: Model, data: NodeData | None) -> None:
    """Refuse validation data the model cannot be evaluated on, naming the argument.

    Raises
    ------
    ConfigError
        If ``data`` is not a NodeData, has another number of features than the model,
        or holds labels the model cannot output.
    """
    if data is None:
        return
    if not isinstance(data, NodeData):
        raise ConfigError(
            "validation_data", f"<{type(data).__name__}>", "a NodeData or None (data)"
        )
    if data.num_features != model.input_dim:
        raise ConfigError(
            "validation_data",
            f"{data.num_features} features",
            f"rows of input_dim={model.input_dim} features, like the model's",
        )
    if len(data) and int(data.y.max()) >= model.num_classes:
        raise ConfigError(
            "validation_data",
            f"label {int(data.y.max())}",
            f"labels in [0, {model.num_classes - 1}] for a {model.num_classes}-class model",
        )


def check_same_run(stored: Mapping[str, Any], config: Config) -> None:
    """Refuse to continue a stored run under a config that would make it another run.

    The strategy, the seed and the selection rule decide every draw of a run, and the
    privacy budget is the budget of the whole run (a restart never resets or enlarges
    it); the other settings (``max_rounds``, timeouts, stopping rules) may change.

    Raises
    ------
    ConfigError
        Naming the first setting that differs.
    """
    current = config.to_dict()
    for key, label in (
        ("aggregation_strategy", "aggregation_strategy"),
        ("seed", "seed"),
        ("enable_privacy", "enable_privacy"),
        ("privacy_config", "privacy_config"),
    ):
        if stored.get(key) != current[key]:
            raise ConfigError(
                label,
                current[key],
                f"{stored.get(key)!r}, as when the model was registered",
                "Resume with the configuration of the stored run, or register a new model.",
            )
    stored_selection = stored.get("round_config", {}).get("selection_strategy")
    selection = current["round_config"]["selection_strategy"]
    if stored_selection != selection:
        raise ConfigError(
            "round_config.selection_strategy",
            selection,
            f"{stored_selection!r}, as when the model was registered",
            "Resume with the configuration of the stored run, or register a new model.",
        )
