"""Scale: seconds per round from 100 to 10,000 nodes, with peak memory, against plain numpy.

Synthetic sites (100 rows each: 80 training, 20 validation; 30 features), one local epoch,
batch 32, FedAvg over every node, the new model evaluated on 1,000 held-out rows. Models:
logistic regression and the ~10k-parameter MLP (30-128-48-2). Backends: in-kernel
(``inline``) and a 2-worker Dask LocalCluster (``dask``; start-up is reported apart, and
the first round, which places the data, is left out of the median like every backend's
first round). The ``guide`` workload is the issue's deployment bar: breast cancer split
over 100 nodes (Dirichlet 0.5), the same MLP, one epoch, batch 32, learning rate 0.01.

Each configuration runs in its own process, so ``peak_rss_mb`` is its own (for ``dask``
it is the kernel's; the workers are separate processes). The reference is FedAvg written
with plain numpy (one ``local_sgd`` per node in a loop, weighted mean), timed in the same
process. One JSON line per (workload, nodes, model, backend); figures are medians.

``--streamed`` adds, for each configuration, a line without the absurd-norm
rule (``norm_outlier_factor=None``), so the batched path streams the updates into one sum
(``heliosfl/accumulate.py``; on Dask, each worker sums its nodes' updates) instead of
holding them: ``"aggregation": "streamed"``.

Usage: python benchmarks/scale.py [--nodes 100 1000 10000] [--models logistic mlp]
                                  [--backends inline dask] [--guide] [--streamed]
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


def reference_round(
    model: fl.Model, params: np.ndarray, nodes: list[fl.NodeData], lr: float = 0.1
) -> np.ndarray:
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
            learning_rate=lr,
            rng=rng,
            validated=True,
        )
        total += len(data) * (result.params - params)
        weight += len(data)
    return params + total / weight


async def measure(
    num_nodes: int, kind: str, rounds: int, backend: str, streamed: bool = False
) -> dict[str, Any]:
    guide = kind == "guide"
    lr = 0.01 if guide else 0.1
    if guide:
        train, test = fl.data.load_dataset("breast_cancer", seed=0)
        nodes = fl.data.partition(train, num_nodes=num_nodes, scheme="dirichlet", alpha=0.5, seed=0)
    else:
        nodes, test = fl.data.synthetic_sites(
            num_sites=num_nodes, samples_per_site=100, num_features=30, test_samples=1000, seed=0
        )
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=rounds + 2,
            min_nodes_per_round=num_nodes // 2,
            learning_rate=lr,
            convergence_threshold=0.0,
            node_timeout_secs=3600,
            # The absurd-norm rule compares each update with the round's median, so it
            # holds every update; without it the batched path streams them into one sum.
            norm_outlier_factor=None if streamed else 100.0,
        ),
        seed=0,
    )
    spec: dict[str, Any] = (
        {"model_type": "logistic_regression", "input_dim": 30}
        if kind == "logistic"
        else {"model_type": "mlp", "input_dim": 30, "hidden_layers": (128, 48)}
    )
    started = time.perf_counter()
    async with fl.FederatedLearningEngine(config, backend=backend) as engine:
        start = getattr(engine.backend, "start", None)
        if start is not None:
            await start()
        startup = time.perf_counter() - started
        model = await engine.register_model("m", **spec)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, data in enumerate(nodes):
            await engine.create_worker(
                fl.WorkerConfig(node_id=f"n{i:05d}", batch_size=32), data=data
            )
            await coordinator.register_node(f"n{i:05d}", len(data))
        started = time.perf_counter()
        await coordinator.run_round()  # places data (dask), checks rows against the model
        first = time.perf_counter() - started
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            record = await coordinator.run_round()
            times.append(time.perf_counter() - started)
        params = np.array(coordinator.params)
    failed = len(record.failed_nodes)
    references = []
    for _ in range(3 if num_nodes <= 1000 else 1):
        started = time.perf_counter()
        reference_round(model, params, nodes, lr)
        references.append(time.perf_counter() - started)
    reference = statistics.median(references)
    seconds = statistics.median(times)
    line: dict[str, Any] = {
        "benchmark": "scale",
        "workload": "guide" if guide else "synthetic",
        "nodes": num_nodes,
        "model": "mlp" if guide else kind,
        "parameters": int(params.size),
        "backend": backend,
        "aggregation": "streamed" if streamed else "held",
        "round_secs": round(seconds, 4),
        "rounds_per_sec": round(1.0 / seconds, 3),
        "first_round_secs": round(first, 4),
        "rounds": rounds,
        "failed_nodes": failed,
        "numpy_reference_round_secs": round(reference, 4),
        "ratio_to_reference": round(seconds / reference, 3),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    if backend != "inline":
        line["startup_secs"] = round(startup, 3)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--models", nargs="+", default=["logistic", "mlp"])
    parser.add_argument("--backends", nargs="+", default=["inline"])
    parser.add_argument("--guide", action="store_true", help="only the guide deployment")
    parser.add_argument(
        "--streamed", action="store_true", help="also each line with the updates streamed"
    )
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        nodes, kind, backend, streamed = int(args.one[0]), args.one[1], args.one[2], args.one[3]
        rounds = 20 if kind == "guide" else (5 if nodes <= 1000 else 2)
        line = measure(nodes, kind, rounds, backend, streamed == "streamed")
        print(json.dumps(asyncio.run(line)), flush=True)
        return
    runs = [(100, "guide", b, "held") for b in args.backends]
    if not args.guide:
        for kind in args.models:
            for nodes in args.nodes:
                runs += [(nodes, kind, b, "held") for b in args.backends]
                if args.streamed:
                    runs += [(nodes, kind, b, "streamed") for b in args.backends]
    for nodes, kind, backend, aggregation in runs:
        subprocess.run(  # noqa: S603 - this script, in a fresh process for its own peak
            [sys.executable, __file__, "--one", str(nodes), kind, backend, aggregation],
            check=True,
        )


if __name__ == "__main__":
    main()
