"""What a GDPR manager needs from the federation it governs (the engine implements it).

The compliance package never imports the engine; the engine hands a manager an object with
these methods when :meth:`FederatedLearningEngine.attach_gdpr` is called.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from heliosfl.compliance.erasure import ModelUnlearning
from heliosfl.data import NodeData
from heliosfl.models import Model

__all__ = ["Federation"]


class Federation(Protocol):
    """The engine side of GDPR enforcement."""

    def node_ids(self) -> list[str]:
        """Every node with a worker, sorted."""
        ...

    def is_online(self, node_id: str) -> bool:
        """Whether the node can be reached now."""
        ...

    def subject_rows(self, subject: str) -> dict[str, NodeData]:
        """The rows of `subject` (a pseudonym) at each reachable node that holds some."""
        ...

    def erase_on_node(self, node_id: str, subject: str) -> int:
        """Remove the rows of `subject` (a pseudonym) at the node; return how many.

        Raises NodeFailure if the node cannot be reached.
        """
        ...

    def training_models(self) -> list[str]:
        """Models with a training run in progress."""
        ...

    def model_ids(self) -> list[str]:
        """Models with a coordinator."""
        ...

    def last_round(self, model_id: str) -> int:
        """The model's last committed round."""
        ...

    def model_and_params(self, model_id: str) -> tuple[Model, npt.NDArray[np.float64]]:
        """The model's architecture and current parameters."""
        ...

    def feature_names(self) -> tuple[str, ...] | None:
        """Feature names the nodes declared, if any."""
        ...

    def reference_losses(self, model_id: str) -> npt.NDArray[np.float64] | None:
        """Per-row losses of the current model on data never trained on (or None)."""
        ...

    def row_losses(self, model_id: str, rows: NodeData) -> npt.NDArray[np.float64]:
        """Per-row losses of the current model on `rows` (train and validation)."""
        ...

    async def unlearn(
        self, model_id: str, rollback_round: int, reason: dict[str, object]
    ) -> ModelUnlearning:
        """Roll the model back to `rollback_round` and replay the later rounds."""
        ...
