"""Contract: training nodes together (vectorised) gives what training them one by one gives."""

from __future__ import annotations

import numpy as np
import pytest

import heliosfl as fl
from heliosfl import vectorised
from heliosfl.vectorised import batchable, train_together


async def federation(n: int, **worker: object) -> tuple[fl.FederatedLearningEngine, fl.Coordinator]:
    nodes, test = fl.data.synthetic_sites(
        num_sites=n, samples_per_site=(20, 90), num_features=7, test_samples=200, seed=3
    )
    config = fl.Config(
        aggregation_strategy=fl.FedProx(mu=0.1),
        round_config=fl.RoundConfig(
            max_rounds=5, min_nodes_per_round=n // 2, learning_rate=0.2, convergence_threshold=0.0
        ),
        seed=5,
    )
    engine = fl.FederatedLearningEngine(config)
    await engine.register_model("m", "logistic_regression", input_dim=7)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    for i, data in enumerate(nodes):
        wc = fl.WorkerConfig(node_id=f"n{i:03d}", **worker)  # type: ignore[arg-type]
        await engine.create_worker(wc, data=data)
        await coordinator.register_node(wc.node_id, len(data))
    return engine, coordinator


@pytest.mark.parametrize(("epochs", "batch"), [(1, 32), (2, 7), (3, 200)])
async def test_nodes_trained_together_match_nodes_trained_alone(epochs, batch):
    engine, coordinator = await federation(40, local_epochs=epochs, batch_size=batch)
    context = coordinator.training_context("n000")
    workers = engine.workers
    assert batchable(workers, context)

    together = train_together(workers, context)
    alone = [w._train_sync(context, vectorised_stop(), None, w.data) for w in workers]

    for a, b in zip(together, alone, strict=True):
        assert a.node_id == b.node_id and a.num_samples == b.num_samples
        np.testing.assert_allclose(a.delta, b.delta, rtol=0, atol=1e-12)
        assert a.loss == pytest.approx(b.loss, abs=1e-12)
        assert a.metrics.keys() == b.metrics.keys()
        for key in a.metrics:
            assert a.metrics[key] == pytest.approx(b.metrics[key], abs=1e-12)


def vectorised_stop():
    from heliosfl.backends.base import StopFlag

    return StopFlag()


async def test_whole_runs_agree_with_the_batched_path_on_or_off(monkeypatch):
    _, batched = await federation(40)
    for _ in range(4):
        await batched.run_round()
    monkeypatch.setattr(vectorised, "MIN_NODES", 10**9)  # every round per node
    _, alone = await federation(40)
    for _ in range(4):
        await alone.run_round()
    np.testing.assert_allclose(batched.params, alone.params, rtol=0, atol=1e-10)


async def test_faults_policies_and_other_models_take_the_per_node_path():
    engine, coordinator = await federation(40)
    context = coordinator.training_context("n000")
    workers = engine.workers
    workers[3].fault = fl.NodeFault(delay_secs=0.01)
    assert not batchable(workers, context)
    workers[3].fault = None
    workers[5].set_online(False)
    assert not batchable(workers, context)
    workers[5].set_online(True)
    assert batchable(workers, context)
    assert not batchable(workers[:10], context)  # too few to be worth it
