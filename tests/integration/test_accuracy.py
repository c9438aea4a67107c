"""The accuracy bars, and that the engine computes exactly what plain FedAvg computes."""

from __future__ import annotations

import numpy as np
from federation_helpers import add_nodes, round_config

import heliosfl as fl
from heliosfl.seeding import Stream, rng_for


async def federated_run(nodes, test, model_type, model_kwargs, *, max_rounds, target, lr, epochs):
    config = fl.Config(
        round_config=round_config(
            max_rounds=max_rounds,
            min_nodes_per_round=len(nodes),
            target_accuracy=target,
            learning_rate=lr,
        )
    )
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", model_type, **model_kwargs)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        await add_nodes(engine, coordinator, nodes, local_epochs=epochs, batch_size=32)
        result = await engine.train("m")
        history = await coordinator.get_round_history()
        return result, history, engine.get_params("m")


async def test_breast_cancer_dirichlet_100_nodes_reaches_095_within_50_rounds(breast_cancer):
    train, test = breast_cancer
    nodes = fl.data.partition(train, num_nodes=100, scheme="dirichlet", alpha=0.5, seed=0)
    result, history, _ = await federated_run(
        nodes,
        test,
        "logistic_regression",
        {"input_dim": 30},
        max_rounds=50,
        target=0.95,
        lr=0.5,
        epochs=1,
    )
    assert result.stop_reason is fl.StopReason.TARGET_ACCURACY
    assert result.rounds_completed <= 50
    assert result.final_accuracy >= 0.95
    assert all(len(r.participating_nodes) == 100 for r in history)


async def test_digits_100_nodes_mlp_reaches_093_within_100_rounds():
    train, test = fl.data.load_dataset("digits", seed=0)
    nodes = fl.data.partition(train, num_nodes=100, scheme="iid", seed=0)
    result, _, _ = await federated_run(
        nodes,
        test,
        "neural_network",
        {"input_dim": 64, "hidden_layers": (64,), "num_classes": 10},
        max_rounds=100,
        target=0.93,
        lr=0.3,
        epochs=2,
    )
    assert result.stop_reason is fl.StopReason.TARGET_ACCURACY
    assert result.rounds_completed <= 100
    assert result.final_accuracy >= 0.93


def plain_fedavg(nodes, params, rounds, lr, seed=0):
    """FedAvg written with numpy alone: logistic regression, one epoch, batch 32."""
    for r in range(1, rounds + 1):
        total, acc = 0, np.zeros_like(params)
        for i, node in enumerate(nodes):
            rng = rng_for(seed, Stream.TRAINING, "m", r, f"node_{i:03d}")
            w = params.copy()
            n = len(node.y)
            order = rng.permutation(n)
            for start in range(0, n, 32):
                batch = order[start : start + 32]
                X, y = node.X[batch], node.y[batch]
                z = X @ w[:-1] + w[-1]
                p = 1.0 / (1.0 + np.exp(-z))
                g = (p - y) / len(y)
                w -= lr * np.concatenate([X.T @ g, [g.sum()]])
            acc += n * (w - params)
            total += n
        params = params + acc / total
    return params


async def test_engine_equals_a_plain_numpy_fedavg(breast_cancer):
    train, test = breast_cancer
    nodes = fl.data.partition(train, num_nodes=20, scheme="dirichlet", alpha=0.5, seed=1)
    config = fl.Config(round_config=round_config(max_rounds=10, learning_rate=0.5))
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "logistic_regression", input_dim=30)
        initial = engine.get_params("m")
        coordinator = await engine.create_coordinator("m", validation_data=test)
        await add_nodes(engine, coordinator, nodes)
        await engine.train("m")
        trained = engine.get_params("m")
    expected = plain_fedavg(nodes, initial, rounds=10, lr=0.5)
    np.testing.assert_allclose(trained, expected, rtol=1e-10, atol=1e-12)
