"""Scale: seconds per round from 100 to 10,000 nodes, with peak memory, against plain numpy.

Synthetic sites (100 rows each: 80 training, 20 validation; 30 features), one local epoch,
batch 32, FedAvg over every node, the new model evaluated on 1,000 held-out rows. Models:
logistic regression and the ~10k-parameter MLP (30-128-48-2). Backend: in-kernel
(``inline``). Each configuration runs in its own process, so ``peak_rss_mb`` is its own.
The reference is FedAvg written with plain numpy (one ``local_sgd`` per node in a loop,
weighted mean), timed in the same process. One JSON line per (nodes, model, backend).

Usage: python benchmarks/scale.py [--nodes 100 1000 10000] [--models logistic mlp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

import heliosfl as fl
from heliosfl.models import local_sgd
from heliosfl.seeding import Stream, rng_for


def reference_round(model: fl.Model, params: np.ndarray, nodes: list[fl.NodeData]) -> np.ndarray:
    """One FedAvg round with plain numpy: local SGD per node, sample-weighted mean."""
    total, weight = np.zeros_like(params), 0.0
    for i, data in enumerate(nodes):
        rng = rng_for(0, Stream.TRAINING, "ref", 1, f"n{i}")
        result = local_sgd(
            model,
            params,
            data.X,
            data.y,
            epochs=1,
            batch_size=32,
            learning_rate=0.1,
            rng=rng,
            validated=True,
        )
        total += len(data) * (result.params - params)
        weight += len(data)
    return params + total / weight


async def measure(num_nodes: int, kind: str, rounds: int) -> dict[str, Any]:
    nodes, test = fl.data.synthetic_sites(
        num_sites=num_nodes, samples_per_site=100, num_features=30, test_samples=1000, seed=0
    )
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=rounds + 1,
            min_nodes_per_round=num_nodes // 2,
            learning_rate=0.1,
            convergence_threshold=0.0,
            node_timeout_secs=3600,
        ),
        seed=0,
    )
    spec: dict[str, Any] = (
        {"model_type": "logistic_regression", "input_dim": 30}
        if kind == "logistic"
        else {"model_type": "mlp", "input_dim": 30, "hidden_layers": (128, 48)}
    )
    async with fl.FederatedLearningEngine(config) as engine:
        model = await engine.register_model("m", **spec)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, data in enumerate(nodes):
            await engine.create_worker(
                fl.WorkerConfig(node_id=f"n{i:05d}", batch_size=32), data=data
            )
            await coordinator.register_node(f"n{i:05d}", len(data))
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            await coordinator.run_round()
            times.append(time.perf_counter() - started)
        params = np.array(coordinator.params)
    started = time.perf_counter()
    reference_round(model, params, nodes)
    reference = time.perf_counter() - started
    seconds = statistics.median(times)
    return {
        "benchmark": "scale",
        "nodes": num_nodes,
        "model": kind,
        "parameters": int(params.size),
        "backend": "inline",
        "round_secs": round(seconds, 4),
        "rounds_per_sec": round(1.0 / seconds, 3),
        "numpy_reference_round_secs": round(reference, 4),
        "ratio_to_reference": round(seconds / reference, 3),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--models", nargs="+", default=["logistic", "mlp"])
    parser.add_argument("--one", nargs=2, metavar=("NODES", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        nodes, kind = int(args.one[0]), args.one[1]
        rounds = 3 if nodes <= 1000 else 2
        print(json.dumps(asyncio.run(measure(nodes, kind, rounds))), flush=True)
        return
    for kind in args.models:
        for nodes in args.nodes:
            subprocess.run(  # noqa: S603 - this script, in a fresh process for its own peak
                [sys.executable, __file__, "--one", str(nodes), kind], check=True
            )


if __name__ == "__main__":
    main()
