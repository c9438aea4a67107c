"""Privacy against utility: DP-FedAvg on the 100-node breast cancer task at several epsilons.

For each epsilon in {0.5, 1, 2, 4, 8} and without privacy: 100 nodes (Dirichlet(0.5)
split), logistic regression, 30 rounds, every node in every round, one local epoch,
delta = 1e-5, Gaussian noise with the noise multiplier calibrated by dp-accounting so the
30 rounds spend at most epsilon, clip norm 1. Prints one JSON line per setting: the final
test accuracy, the noise multiplier used and the epsilon actually spent. Accuracies are
medians over three seeds; the noise is seeded (``reproducible_noise=True``) so that the
figures can be reproduced.

Usage: python benchmarks/privacy_utility.py [--rounds 30] [--seeds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics

import heliosfl as fl


async def run(epsilon: float | None, rounds: int, seed: int) -> dict[str, float | None]:
    train, test = fl.data.load_dataset("breast_cancer", seed=0)
    nodes = fl.data.partition(train, num_nodes=100, scheme="dirichlet", alpha=0.5, seed=0)
    privacy = (
        None
        if epsilon is None
        # seeded noise, so that the figures can be reproduced; real runs use OS entropy
        else fl.DifferentialPrivacyConfig(epsilon=epsilon, delta=1e-5, reproducible_noise=True)
    )
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=rounds,
            min_nodes_per_round=80,
            learning_rate=0.5,
            convergence_threshold=0.0,
        ),
        enable_privacy=privacy is not None,
        privacy_config=privacy,
        seed=seed,
    )
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, data in enumerate(nodes):
            await engine.create_worker(fl.WorkerConfig(node_id=f"node_{i:03d}"), data=data)
            await coordinator.register_node(f"node_{i:03d}", len(data))
        result = await engine.train("m")
        spent, _ = engine.privacy_spent("m")
        ledger = engine.workspace.privacy_ledger("m")
    return {
        "accuracy": result.final_accuracy,
        "noise_multiplier": ledger[0]["noise_multiplier"] if ledger else None,
        "epsilon_spent": spent if privacy else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    for epsilon in (0.5, 1.0, 2.0, 4.0, 8.0, None):
        runs = [asyncio.run(run(epsilon, args.rounds, seed)) for seed in range(args.seeds)]
        print(
            json.dumps(
                {
                    "benchmark": "privacy_utility",
                    "epsilon": epsilon if epsilon is not None else "none",
                    "delta": 1e-5,
                    "rounds": args.rounds,
                    "nodes": 100,
                    "test_accuracy_median": round(
                        statistics.median(r["accuracy"] for r in runs),
                        4,  # type: ignore[misc]
                    ),
                    "test_accuracy_by_seed": [round(r["accuracy"], 4) for r in runs],  # type: ignore[arg-type]
                    "noise_multiplier": runs[0]["noise_multiplier"],
                    "epsilon_spent": runs[0]["epsilon_spent"],
                }
            )
        )


if __name__ == "__main__":
    main()
