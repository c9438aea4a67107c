"""Build small federations through the public API (imported by the integration tests)."""

from __future__ import annotations

from collections.abc import Sequence

import heliosfl as fl


async def add_nodes(
    engine: fl.FederatedLearningEngine,
    coordinator: fl.Coordinator,
    nodes: Sequence[fl.NodeData],
    *,
    prefix: str = "node_",
    faults: dict[int, fl.NodeFault] | None = None,
    **worker_settings: object,
) -> list[fl.FederatedWorker]:
    """Create one worker per NodeData and register it with the coordinator."""
    workers = []
    for i, data in enumerate(nodes):
        wc = fl.WorkerConfig(node_id=f"{prefix}{i:03d}", **worker_settings)  # type: ignore[arg-type]
        fault = (faults or {}).get(i)
        workers.append(await engine.create_worker(wc, data=data, fault=fault))
        await coordinator.register_node(wc.node_id, len(data))
    return workers


def round_config(**overrides: object) -> fl.RoundConfig:
    settings: dict[str, object] = {
        "max_rounds": 5,
        "min_nodes_per_round": 2,
        "learning_rate": 0.3,
        "convergence_threshold": 0.0,
        "node_timeout_secs": 30.0,
    }
    settings.update(overrides)
    return fl.RoundConfig(**settings)  # type: ignore[arg-type]
