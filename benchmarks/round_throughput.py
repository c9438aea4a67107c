"""Seconds per round: the engine versus a plain numpy FedAvg loop doing the same arithmetic.

Workload (the guide's 100-node deployment): 100 nodes, each with 100 synthetic samples of
30 features (80 for training, 20 for validation), a two-hidden-layer MLP of ~10,000
parameters, one local epoch of mini-batch SGD (batch 32), FedAvg, and evaluation of the
new global model on a held-out set every round.

The reference is written here with numpy alone (its own forward and backward pass, its own
loop) and does exactly the same arithmetic as the engine: per node the same shuffles,
batches and steps, a validation pass on the node's split, then the sample-weighted mean
and the global evaluation. Both run in this process, interleaved, and the figures are
medians over rounds. Prints one JSON line.

The engine runs twice: with its default backend (one lane) and with two lanes.
``same_result`` says whether both ended with bit-identical parameters to the reference.

Usage: python benchmarks/round_throughput.py [--nodes 100] [--rounds 20] [--hidden 128 48]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import platform
import resource
import statistics
import time

import numpy as np

import heliosfl as fl
from heliosfl.seeding import Stream, rng_for


def mlp_layers(params, dims):
    layers, offset = [], 0
    for fan_in, fan_out in itertools.pairwise(dims):
        w = params[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out)
        offset += fan_in * fan_out
        b = params[offset : offset + fan_out]
        offset += fan_out
        layers.append((w, b))
    return layers


def mlp_loss_grad(params, X, y, dims):
    """Mean softmax cross-entropy of a ReLU MLP and its gradient, plain numpy."""
    layers = mlp_layers(params, dims)
    acts = [X]
    for w, b in layers[:-1]:
        acts.append(np.maximum(acts[-1] @ w + b, 0.0))
    logits = acts[-1] @ layers[-1][0] + layers[-1][1]
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    n = X.shape[0]
    loss = -logp[np.arange(n), y].mean()
    g = np.exp(logp)
    g[np.arange(n), y] -= 1.0
    g /= n
    grads = []
    for k in range(len(layers) - 1, -1, -1):
        grads.append((acts[k].T @ g, g.sum(axis=0)))
        if k:
            g = (g @ layers[k][0].T) * (acts[k] > 0)
    flat = np.concatenate([np.concatenate([gw.ravel(), gb]) for gw, gb in reversed(grads)])
    return loss, flat


def mlp_evaluate(params, X, y, dims):
    layers = mlp_layers(params, dims)
    h = X
    for w, b in layers[:-1]:
        h = np.maximum(h @ w + b, 0.0)
    logits = h @ layers[-1][0] + layers[-1][1]
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean(), float((logp.argmax(axis=1) == y).mean())


def reference_round(params, nodes, test, dims, *, seed, round_number, lr, batch_size):
    """One FedAvg round in plain numpy: local SGD per node, weighted mean, evaluation."""
    acc = np.zeros_like(params)
    total = 0
    for i, node in enumerate(nodes):
        rng = rng_for(seed, Stream.TRAINING, "bench", round_number, f"node_{i:03d}")
        w = params.copy()
        n = len(node.y)
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            _, grad = mlp_loss_grad(w, node.X[batch], node.y[batch], dims)
            w -= lr * grad
        mlp_evaluate(w, node.X_val, node.y_val, dims)
        acc += n * (w - params)
        total += n
    new = params + acc / total
    mlp_evaluate(new, test.X, test.y, dims)
    return new


async def run_both(nodes, test, hidden, rounds, lr, batch_size, seed, max_workers):
    """Alternate one engine round and one reference round, timing each."""
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=rounds,
            min_nodes_per_round=len(nodes),
            learning_rate=lr,
            convergence_threshold=0.0,
            node_timeout_secs=30,
        ),
        seed=seed,
    )
    dims = [nodes[0].num_features, *hidden, 2]
    times, reference_times = [], []
    async with fl.FederatedLearningEngine(config, max_workers=max_workers) as engine:
        model = await engine.register_model(
            "bench",
            "deep_neural_network",
            input_dim=nodes[0].num_features,
            hidden_layers=hidden,
            num_classes=2,
        )
        coordinator = await engine.create_coordinator("bench", validation_data=test)
        for i, node in enumerate(nodes):
            wc = fl.WorkerConfig(node_id=f"node_{i:03d}", batch_size=batch_size)
            await engine.create_worker(wc, data=node)
            await coordinator.register_node(wc.node_id, len(node))
        params = engine.get_params("bench")
        for r in range(1, rounds + 1):
            t0 = time.perf_counter()
            await coordinator.run_round()
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            params = reference_round(
                params, nodes, test, dims, seed=seed, round_number=r, lr=lr, batch_size=batch_size
            )
            reference_times.append(time.perf_counter() - t0)
        final = engine.get_params("bench")
        accuracy = coordinator.state.best_accuracy
    return times, reference_times, final, params, model.num_params, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 48])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lr, batch_size = 0.05, 32
    nodes, test = fl.data.synthetic_sites(
        num_sites=args.nodes, samples_per_site=100, num_features=30, num_classes=2, seed=args.seed
    )
    engine_times, reference_times, engine_final, params, num_params, accuracy = asyncio.run(
        run_both(nodes, test, tuple(args.hidden), args.rounds, lr, batch_size, args.seed, None)
    )
    # The same with two lanes (threads): on 2 cores, small numpy work mostly takes turns
    # for the GIL, so this shows what a second lane costs or gains.
    single_times, single_reference, single_final, _, _, _ = asyncio.run(
        run_both(nodes, test, tuple(args.hidden), args.rounds, lr, batch_size, args.seed, 2)
    )
    reference_times += single_reference
    engine_med = statistics.median(engine_times)
    single_med = statistics.median(single_times)
    ref_med = statistics.median(reference_times)
    print(
        json.dumps(
            {
                "benchmark": "round_throughput",
                "nodes": args.nodes,
                "num_params": num_params,
                "rounds": args.rounds,
                "engine_secs_per_round": round(engine_med, 5),
                "numpy_loop_secs_per_round": round(ref_med, 5),
                "ratio": round(engine_med / ref_med, 3),
                "engine_2lanes_secs_per_round": round(single_med, 5),
                "ratio_2lanes": round(single_med / ref_med, 3),
                "same_result": bool(
                    np.array_equal(engine_final, params) and np.array_equal(single_final, params)
                ),
                "max_abs_param_diff": float(np.max(np.abs(engine_final - params))),
                "engine_best_accuracy": accuracy,
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "python": platform.python_version(),
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
