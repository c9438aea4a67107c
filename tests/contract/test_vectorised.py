"""Contract: training nodes together (vectorised) gives what training them one by one gives."""

from __future__ import annotations

import numpy as np
import pytest

import heliosfl as fl
from heliosfl import vectorised
from heliosfl.backends.base import StopFlag
from heliosfl.errors import ConfigError
from heliosfl.vectorised import batchable, train_together

LOGISTIC = {"model_type": "logistic_regression", "input_dim": 7}
SOFTMAX = {"model_type": "softmax_regression", "input_dim": 7, "num_classes": 3}
MLP_RELU = {"model_type": "mlp", "input_dim": 7, "hidden_layers": (16, 8), "num_classes": 3}
MLP_TANH = {"model_type": "mlp", "input_dim": 7, "hidden_layers": (12,), "activation": "tanh"}
MODELS = {"logistic": LOGISTIC, "softmax": SOFTMAX, "mlp_relu": MLP_RELU, "mlp_tanh": MLP_TANH}
#: Linear models agree to 1e-12; the MLP's longer chains of matrix products to 1e-10.
TOLERANCE = {"logistic": 1e-12, "softmax": 1e-12, "mlp_relu": 1e-10, "mlp_tanh": 1e-10}


async def federation(
    n: int, spec: dict[str, object] = LOGISTIC, **worker: object
) -> tuple[fl.FederatedLearningEngine, fl.Coordinator]:
    classes = int(spec.get("num_classes", 2))  # type: ignore[call-overload]
    nodes, test = fl.data.synthetic_sites(
        num_sites=n,
        samples_per_site=(20, 90),
        num_features=7,
        num_classes=classes,
        test_samples=200,
        seed=3,
    )
    config = fl.Config(
        aggregation_strategy=fl.FedProx(mu=0.1),
        round_config=fl.RoundConfig(
            max_rounds=5, min_nodes_per_round=n // 2, learning_rate=0.2, convergence_threshold=0.0
        ),
        seed=5,
    )
    engine = fl.FederatedLearningEngine(config)
    await engine.register_model("m", **spec)  # type: ignore[arg-type]
    coordinator = await engine.create_coordinator("m", validation_data=test)
    for i, data in enumerate(nodes):
        wc = fl.WorkerConfig(node_id=f"n{i:03d}", **worker)  # type: ignore[arg-type]
        await engine.create_worker(wc, data=data)
        await coordinator.register_node(wc.node_id, len(data))
    return engine, coordinator


def assert_same(together, alone, tol):
    for a, b in zip(together, alone, strict=True):
        assert a.node_id == b.node_id and a.num_samples == b.num_samples
        np.testing.assert_allclose(a.delta, b.delta, rtol=0, atol=tol)
        assert a.loss == pytest.approx(b.loss, abs=tol)
        assert a.metrics.keys() == b.metrics.keys()
        for key in a.metrics:
            assert a.metrics[key] == pytest.approx(b.metrics[key], abs=tol)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize(("epochs", "batch"), [(1, 32), (2, 7), (3, 200)])
async def test_nodes_trained_together_match_nodes_trained_alone(kind, epochs, batch):
    engine, coordinator = await federation(40, MODELS[kind], local_epochs=epochs, batch_size=batch)
    context = coordinator.training_context("n000")
    workers = engine.workers
    assert batchable(workers, context)

    together = train_together(workers, context)
    alone = [w._train_sync(context, StopFlag(), None, w.data) for w in workers]

    assert_same(together, alone, TOLERANCE[kind])


async def test_chunks_of_nodes_give_what_one_stack_gives(monkeypatch):
    engine, coordinator = await federation(40, MLP_RELU, batch_size=16)
    context = coordinator.training_context("n000")
    one_stack = train_together(engine.workers, context)
    monkeypatch.setattr(vectorised, "CHUNK_VALUES", 1)  # one node per chunk
    chunked = train_together(engine.workers, context)
    assert_same(chunked, one_stack, 1e-12)


async def test_a_node_whose_data_does_not_fit_fails_alone():
    engine, coordinator = await federation(40, SOFTMAX)
    bad = engine.workers[7]
    bad.data = fl.NodeData(bad.data.X, np.full(len(bad.data), 5))  # class 5 of 3
    context = coordinator.training_context("n000")
    assert batchable(engine.workers, context)

    outcomes = train_together(engine.workers, context)

    assert isinstance(outcomes[7], ConfigError)
    with pytest.raises(ConfigError) as alone:
        bad._train_sync(context, StopFlag(), None, bad.data)
    assert type(outcomes[7]) is type(alone.value)
    others = [w for i, w in enumerate(engine.workers) if i != 7]
    expected = [w._train_sync(context, StopFlag(), None, w.data) for w in others]
    assert_same([o for i, o in enumerate(outcomes) if i != 7], expected, 1e-12)


async def test_a_diverging_node_fails_alone_and_the_round_goes_on():
    engine, coordinator = await federation(40, MLP_RELU)
    blown = engine.workers[3]
    blown.data = fl.NodeData(blown.data.X * 1e200, blown.data.y)
    context = coordinator.training_context("n000")

    outcomes = train_together(engine.workers, context)

    assert isinstance(outcomes[3], ConfigError) and "learning_rate" in str(outcomes[3])
    assert all(isinstance(o, fl.ModelUpdate) for i, o in enumerate(outcomes) if i != 3)
    record = await coordinator.run_round()
    assert "n003" in record.failed_nodes and len(record.participating_nodes) == 39


@pytest.mark.parametrize("kind", ["logistic", "mlp_relu"])
async def test_whole_runs_agree_with_the_batched_path_on_or_off(monkeypatch, kind):
    _, batched = await federation(40, MODELS[kind])
    for _ in range(4):
        await batched.run_round()
    monkeypatch.setattr(vectorised, "MIN_NODES", 10**9)  # every round per node
    _, alone = await federation(40, MODELS[kind])
    for _ in range(4):
        await alone.run_round()
    np.testing.assert_allclose(batched.params, alone.params, rtol=0, atol=1e-9)


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
