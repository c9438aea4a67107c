"""Accuracy under hostile nodes: FedAvg against the robust aggregation rules.

100 nodes (breast cancer, IID split), logistic regression, every node in every round, 30
rounds, one local epoch; 10% or 20% of the nodes are attackers that train honestly and
then send ``-5 x`` their update (sign flip), ``10 x`` it (scaling) or a random direction of
``10 x`` its norm (random). For FedAvg, the coordinate-wise median, the trimmed mean
(trimming 5 points more than the attacker share) and Multi-Krum (f = the attackers,
m = half the nodes): the final test accuracy, and the clean accuracy of the same rule
without attackers. One JSON line per rule; the default absurd-norm filter
(100 x the median norm) stays on, and none of these attacks trips it.

Usage: python benchmarks/robustness.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import heliosfl as fl

NODES = 100
ATTACKS = {"sign_flip": 5.0, "scale": 10.0, "random": 10.0}


def strategy(name: str, attackers: int) -> fl.Strategy:
    if name == "median":
        return fl.CoordinateMedian()
    if name == "trimmed_mean":
        return fl.TrimmedMean(trim_fraction=attackers / NODES + 0.05)
    if name == "krum":
        return fl.Krum(num_byzantine=max(attackers, 1), multi=NODES // 2)
    return fl.FedAvg()


async def accuracy(name: str, attack: str | None, fraction: float, rounds: int) -> float:
    train, test = fl.data.load_dataset("breast_cancer", seed=0)
    nodes = fl.data.partition(train, num_nodes=NODES, scheme="iid", seed=0)
    attackers = round(fraction * NODES)
    config = fl.Config(
        aggregation_strategy=strategy(name, attackers),
        round_config=fl.RoundConfig(
            max_rounds=rounds,
            min_nodes_per_round=80,
            learning_rate=0.3,
            convergence_threshold=0.0,
        ),
        seed=0,
    )
    faults = {}
    if attack is not None:
        ids = [f"node_{i:03d}" for i in range(NODES)]
        faults = fl.faults.assign_faults(
            ids, {fl.NodeFault.hostile(attack, ATTACKS[attack]): fraction}, seed=1
        )
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, data in enumerate(nodes):
            node_id = f"node_{i:03d}"
            await engine.create_worker(
                fl.WorkerConfig(node_id=node_id), data=data, fault=faults.get(node_id)
            )
            await coordinator.register_node(node_id, len(data))
        result = await engine.train("m")
    return float(result.final_accuracy or 0.0)


async def main(rounds: int) -> list[dict[str, Any]]:
    lines = []
    for name in ("fedavg", "median", "trimmed_mean", "krum"):
        clean = await accuracy(name, None, 0.0, rounds)
        line: dict[str, Any] = {"benchmark": "robustness", "strategy": name, "clean": clean}
        for attack in ATTACKS:
            for fraction in (0.1, 0.2):
                key = f"{attack}_{int(fraction * 100)}pc"
                line[key] = round(await accuracy(name, attack, fraction, rounds), 4)
        line["worst_drop_points"] = round(
            100 * (clean - min(v for k, v in line.items() if k.endswith("pc"))), 2
        )
        lines.append(line)
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    for item in asyncio.run(main(args.rounds)):
        print(json.dumps(item))
