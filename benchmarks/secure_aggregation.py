"""Secure aggregation: what SecAgg+ adds to a round, and where the time goes.

For 100 and 1,000 nodes (synthetic sites, 80 rows each), a 30-128-48-2 MLP (10,258
parameters), one local epoch, FedAvg over every node, 10% of the nodes crashing each round:
the same rounds run without and with secure aggregation (default settings: 20 / 30
neighbours, threshold 0.6, 16-bit quantisation, 64-bit ring), interleaved. One JSON line
per node count:

* ``round_secs_plain`` / ``round_secs_secure``: median seconds per round, and
  ``overhead_secs``, their difference;
* the secure round's split (medians): ``keys_secs`` (stage 0: key pairs),
  ``sharing_secs`` (stage 1: key agreement, Shamir shares, AES-GCM), ``masking_secs``
  (every node's clipping, quantisation and masking, summed: it runs inside training),
  ``unmasking_secs`` (stage 3: shares, reconstruction, unmasking);
* ``max_abs_diff_vs_fedavg``: largest parameter difference from the plain FedAvg round over
  the same survivors (quantisation error; one level is ``2 / 65535``).

Usage: python benchmarks/secure_aggregation.py [--rounds 5] [--nodes 100 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import numpy as np

import heliosfl as fl


async def federation(
    nodes: list[fl.NodeData], test: fl.NodeData, *, secure: bool
) -> tuple[fl.FederatedLearningEngine, fl.Coordinator]:
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=100,
            min_nodes_per_round=len(nodes) // 2,
            learning_rate=0.05,
            convergence_threshold=0.0,
            node_timeout_secs=600,
        ),
        seed=0,
        secure_aggregation=fl.SecureAggregationConfig(enabled=secure, stage_timeout_secs=600),
    )
    engine = fl.FederatedLearningEngine(config)
    await engine.register_model("m", "mlp", input_dim=30, hidden_layers=(128, 48))
    coordinator = await engine.create_coordinator("m", validation_data=test)
    crash = fl.NodeFault.crash()
    for i, data in enumerate(nodes):
        node_id = f"node_{i:04d}"
        fault = crash if i % 10 == 3 else None
        await engine.create_worker(fl.WorkerConfig(node_id=node_id), data=data, fault=fault)
        await coordinator.register_node(node_id, len(data))
    return engine, coordinator


async def measure(num_nodes: int, rounds: int) -> dict[str, Any]:
    nodes, test = fl.data.synthetic_sites(
        num_sites=num_nodes, samples_per_site=80, num_features=30, test_samples=500, seed=0
    )
    plain_engine, plain = await federation(nodes, test, secure=False)
    engine, coordinator = await federation(nodes, test, secure=True)
    plain_secs, secure_secs, diffs = [], [], []
    split: dict[str, list[float]] = {"advertise": [], "share_keys": [], "masking": [], "unmask": []}
    for _ in range(rounds):
        started = time.perf_counter()
        await plain.run_round()
        plain_secs.append(time.perf_counter() - started)
        started = time.perf_counter()
        await coordinator.run_round()
        secure_secs.append(time.perf_counter() - started)
        timings = coordinator._secure.last_timings if coordinator._secure else {}
        for key in split:
            split[key].append(timings[key])
        diffs.append(float(np.max(np.abs(coordinator.params - plain.params))))
    await engine.aclose()
    await plain_engine.aclose()
    plain_median, secure_median = statistics.median(plain_secs), statistics.median(secure_secs)
    return {
        "benchmark": "secure_aggregation",
        "nodes": num_nodes,
        "parameters": int(coordinator.params.size),
        "dropout": 0.1,
        "rounds": rounds,
        "round_secs_plain": round(plain_median, 4),
        "round_secs_secure": round(secure_median, 4),
        "overhead_secs": round(secure_median - plain_median, 4),
        "keys_secs": round(statistics.median(split["advertise"]), 4),
        "sharing_secs": round(statistics.median(split["share_keys"]), 4),
        "masking_secs": round(statistics.median(split["masking"]), 4),
        "unmasking_secs": round(statistics.median(split["unmask"]), 4),
        "max_abs_diff_vs_fedavg": max(diffs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    for num_nodes in args.nodes:
        rounds = args.rounds if num_nodes <= 100 else max(2, args.rounds // 2)
        print(json.dumps(asyncio.run(measure(num_nodes, rounds))), flush=True)


if __name__ == "__main__":
    main()
