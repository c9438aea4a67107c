"""The engine's accuracy bars and its timeout bar, measured; prints one JSON line.

- FedAvg, 100 nodes, Dirichlet(0.5) split of breast cancer, logistic regression:
  rounds to reach 0.95 test accuracy (bar: within 50).
- Digits over 100 nodes (IID and Dirichlet(0.5)), MLP 64-64-10: rounds to reach 0.93
  (bar: within 100).
- Two of ten nodes hang with a 0.3 s node timeout: seconds the round takes (bar: at most
  the timeout, with the other nodes' updates used).

Usage: python benchmarks/accuracy_bars.py
"""

from __future__ import annotations

import asyncio
import json
import time

import heliosfl as fl


async def rounds_to_target(dataset, model, kwargs, scheme, lr, epochs, target, max_rounds):
    train, test = fl.data.load_dataset(dataset, seed=0)
    nodes = fl.data.partition(train, num_nodes=100, scheme=scheme, alpha=0.5, seed=0)
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=max_rounds,
            min_nodes_per_round=100,
            target_accuracy=target,
            learning_rate=lr,
            convergence_threshold=0.0,
        )
    )
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", model, **kwargs)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, data in enumerate(nodes):
            wc = fl.WorkerConfig(node_id=f"node_{i:03d}", local_epochs=epochs)
            await engine.create_worker(wc, data=data)
            await coordinator.register_node(wc.node_id, len(data))
        started = time.perf_counter()
        result = await engine.train("m")
    return {
        "reached": result.stop_reason is fl.StopReason.TARGET_ACCURACY,
        "rounds": result.rounds_completed,
        "test_accuracy": round(result.final_accuracy, 4),
        "secs": round(time.perf_counter() - started, 2),
    }


async def hung_round():
    train, test = fl.data.load_dataset("breast_cancer", seed=0)
    nodes = fl.data.partition(train, num_nodes=10, seed=0)
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=1, min_nodes_per_round=5, node_timeout_secs=0.3, learning_rate=0.3
        )
    )
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, data in enumerate(nodes):
            fault = fl.NodeFault.hang() if i in (2, 7) else None
            await engine.create_worker(fl.WorkerConfig(node_id=f"node_{i}"), data=data, fault=fault)
            await coordinator.register_node(f"node_{i}", len(data))
        started = time.perf_counter()
        record = await coordinator.run_round()
    return {
        "timeout_secs": 0.3,
        "round_secs": round(time.perf_counter() - started, 3),
        "participants": len(record.participating_nodes),
        "timed_out": len(record.timed_out_nodes),
    }


async def main() -> None:
    mlp = {"input_dim": 64, "hidden_layers": (64,), "num_classes": 10}
    figures = {
        "benchmark": "accuracy_bars",
        "breast_cancer_dirichlet_logistic_to_0.95": await rounds_to_target(
            "breast_cancer",
            "logistic_regression",
            {"input_dim": 30},
            "dirichlet",
            0.5,
            1,
            0.95,
            50,
        ),
        "digits_iid_mlp_to_0.93": await rounds_to_target(
            "digits", "neural_network", mlp, "iid", 0.3, 2, 0.93, 100
        ),
        "digits_dirichlet_mlp_to_0.93": await rounds_to_target(
            "digits", "neural_network", mlp, "dirichlet", 0.3, 2, 0.93, 100
        ),
        "two_hung_nodes": await hung_round(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
