"""GDPR: what consent enforcement costs per round, and what an erasure costs and achieves.

The guide's 100-node task (breast cancer split over 100 nodes, Dirichlet(0.5)), every
subject consenting; a small MLP (30-16-2), one local epoch, batch 32, random(50) selection,
20 rounds. Prints one JSON line with:

* ``round_secs_plain`` / ``round_secs_gdpr``: median seconds per round without and with
  the GDPR manager attached (consent-filtered views, lineage written with each round);
* ``erasure_secs``: median wall time of ``delete_user_data`` over ``--erasures`` subjects
  (erase at the node, shred, roll back to the checkpoint before the first contribution,
  replay the later rounds), and ``rounds_replayed`` (median);
* ``max_abs_diff_vs_retrain``: after the erasures, the largest parameter difference from a
  model trained from scratch (same seed) on data that never held those subjects;
* ``membership_before`` / ``membership_after``: median loss-threshold membership score
  (0.5 = looks unseen) of the erased subjects' rows before and after unlearning;
* ``verified``: every ``verify_deletion`` passed;
* ``atypical_membership_before`` / ``_after``: the same score for the most atypical row
  (highest loss) of each of 10 nodes of a memorising set-up (10 nodes, a 30-64-2 MLP, ten
  local epochs, 30 rounds): rows a model can only fit by memorising them; after
  unlearning their loss should rise (the score falls).

Usage: python benchmarks/gdpr_erasure.py [--rounds 20] [--erasures 5]
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

NODES = 100


def config(rounds: int) -> fl.Config:
    return fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=rounds,
            min_nodes_per_round=25,
            selection_strategy=fl.NodeSelectionStrategy.random(50),
            learning_rate=0.1,
            convergence_threshold=0.0,
        ),
        seed=3,
    )


async def federation(
    nodes: list[fl.NodeData], test: fl.NodeData, rounds: int, *, governed: bool
) -> tuple[fl.FederatedLearningEngine, fl.Coordinator, fl.GdprComplianceManager | None]:
    engine = fl.FederatedLearningEngine(config(rounds))
    manager = None
    if governed:
        manager = fl.GdprComplianceManager(workspace=engine.workspace)
        engine.attach_gdpr(manager)
        for data in nodes:
            val = () if data.subject_ids_val is None else data.subject_ids_val
            for subject in {*data.subject_ids, *val}:
                manager.record_consent(str(subject), ["model_training"], "v1.0")
    await engine.register_model("m", "mlp", input_dim=30, hidden_layers=(16,))
    coordinator = await engine.create_coordinator("m", validation_data=test)
    for i, data in enumerate(nodes):
        node_id = f"node_{i:03d}"
        await engine.create_worker(fl.WorkerConfig(node_id=node_id, batch_size=32), data=data)
        await coordinator.register_node(node_id, len(data))
    return engine, coordinator, manager


async def timed_rounds(coordinator: fl.Coordinator, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await coordinator.run_round()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def atypical(train: fl.NodeData, test: fl.NodeData) -> tuple[float, float]:
    """Median membership scores before and after erasing each node's hardest row."""
    nodes = fl.data.partition(train, num_nodes=10, scheme="iid", seed=0, val_fraction=0.0)
    cfg = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=30, min_nodes_per_round=5, learning_rate=0.5, convergence_threshold=0.0
        ),
        seed=1,
    )
    engine = fl.FederatedLearningEngine(cfg)
    manager = fl.GdprComplianceManager(workspace=engine.workspace)
    engine.attach_gdpr(manager)
    await engine.register_model("m", "mlp", input_dim=30, hidden_layers=(64,))
    coordinator = await engine.create_coordinator("m", validation_data=test)
    for i, data in enumerate(nodes):
        for subject in data.subject_ids:
            manager.record_consent(str(subject), ["model_training"], "v1.0")
        worker = fl.WorkerConfig(node_id=f"n{i}", local_epochs=10, batch_size=8)
        await engine.create_worker(worker, data=data)
        await coordinator.register_node(f"n{i}", len(data))
    for _ in range(30):
        await coordinator.run_round()
    before, after = [], []
    for i in range(10):
        data = engine.get_worker(f"n{i}").data
        proba = coordinator.model.predict_proba(coordinator.params, data.X)
        hardest = int(np.argmin(proba[np.arange(len(data.y)), data.y]))
        record = await manager.delete_user_data(str(data.subject_ids[hardest]))
        before.append(record.unlearning[0].membership_before)
        after.append(record.unlearning[0].membership_after)
    await engine.aclose()
    return statistics.median(before), statistics.median(after)


async def main(rounds: int, erasures: int) -> dict[str, Any]:
    train, test = fl.data.load_dataset("breast_cancer", seed=0)
    nodes = fl.data.partition(train, num_nodes=NODES, scheme="dirichlet", alpha=0.5, seed=0)

    engine, coordinator, _ = await federation(nodes, test, rounds, governed=False)
    plain = await timed_rounds(coordinator, rounds)
    await engine.aclose()

    engine, coordinator, manager = await federation(nodes, test, rounds, governed=True)
    assert manager is not None
    governed = await timed_rounds(coordinator, rounds)
    victims = [str(nodes[i * (NODES // erasures)].subject_ids[0]) for i in range(erasures)]
    seconds, replayed, before, after, verified = [], [], [], [], []
    for user in victims:
        started = time.perf_counter()
        record = await manager.delete_user_data(user)
        seconds.append(time.perf_counter() - started)
        (unlearning,) = record.unlearning
        replayed.append(unlearning.rounds_replayed)
        before.append(unlearning.membership_before)
        after.append(unlearning.membership_after)
        verified.append(bool(await manager.verify_deletion(user)))
    params = np.array(coordinator.params)
    await engine.aclose()

    clean = [n.without_subjects(victims) for n in nodes]
    engine, coordinator, _ = await federation(clean, test, rounds, governed=False)
    await timed_rounds(coordinator, rounds)
    retrained = np.array(coordinator.params)
    await engine.aclose()
    hard_before, hard_after = await atypical(train, test)

    return {
        "benchmark": "gdpr_erasure",
        "nodes": NODES,
        "rounds": rounds,
        "round_secs_plain": round(plain, 4),
        "round_secs_gdpr": round(governed, 4),
        "gdpr_round_overhead": round(governed / plain, 3),
        "erasures": erasures,
        "erasure_secs": round(statistics.median(seconds), 3),
        "rounds_replayed": statistics.median(replayed),
        "max_abs_diff_vs_retrain": float(np.max(np.abs(params - retrained))),
        "membership_before": round(statistics.median(b for b in before if b is not None), 3),
        "membership_after": round(statistics.median(a for a in after if a is not None), 3),
        "verified": all(verified),
        "atypical_membership_before": round(hard_before, 3),
        "atypical_membership_after": round(hard_after, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--erasures", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.rounds, args.erasures))))
