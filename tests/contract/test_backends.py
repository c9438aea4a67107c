"""Contract: the same seed gives the same model on every backend; the cluster's failures
are node failures; each node's data is sent to the cluster once."""

from __future__ import annotations

import os
import sys

import cloudpickle
import numpy as np
import pytest

import heliosfl as fl
from heliosfl.backends import make_backend
from heliosfl.backends.dask import DaskBackend
from heliosfl.models import LogisticRegression


class Poisoned(LogisticRegression):
    """Logistic regression whose process dies on a row holding the marker 777."""

    def loss_and_grad(self, params, X, y):
        if np.any(np.asarray(X) == 777.0):
            os._exit(1)  # the worker process dies mid-task, as a machine would
        return super().loss_and_grad(params, X, y)


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests

LOGISTIC = {"model_type": "logistic_regression", "input_dim": 6}
MLP = {"model_type": "mlp", "input_dim": 6, "hidden_layers": (16,), "num_classes": 3}


async def run(
    backend, model, *, nodes=40, rounds=3, classes=2, fault_on=None, round_config=None, **config
):
    data, test = fl.data.synthetic_sites(
        num_sites=nodes,
        samples_per_site=(10, 60),
        num_features=6,
        num_classes=classes,
        test_samples=200,
        seed=1,
    )
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=rounds + 1,
            min_nodes_per_round=nodes // 4,
            learning_rate=0.2,
            convergence_threshold=0.0,
            node_timeout_secs=60,
            **(round_config or {}),
        ),
        seed=7,
        **config,
    )
    async with fl.FederatedLearningEngine(config, backend=backend) as engine:
        if isinstance(model, dict):
            await engine.register_model("m", **model)
        else:
            await engine.register_model("m", model)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, rows in enumerate(data):
            fault = fl.NodeFault(delay_secs=0.001) if i == fault_on else None
            await engine.create_worker(fl.WorkerConfig(node_id=f"n{i:03d}"), data=rows, fault=fault)
            await coordinator.register_node(f"n{i:03d}", len(rows))
        records = [await coordinator.run_round() for _ in range(rounds)]
        return np.array(coordinator.params), records


@pytest.mark.parametrize(
    ("model", "classes"),
    [(LOGISTIC, 2), (MLP, 3), (Poisoned(6), 2)],
    ids=["logistic-batched", "mlp-batched", "user-model-per-node"],
)
async def test_same_seed_same_model_on_inline_process_and_dask(model, classes):
    inline, _ = await run("inline", model, classes=classes)
    process, _ = await run("process", model, classes=classes)
    async with DaskBackend(n_workers=2) as backend:  # the caller's backend: the caller closes it
        dask, records = await run(backend, model, classes=classes)
    assert all(len(r.participating_nodes) == 40 for r in records)
    np.testing.assert_allclose(process, inline, rtol=0, atol=1e-9)
    np.testing.assert_allclose(dask, inline, rtol=0, atol=1e-9)


async def test_differential_privacy_on_the_cluster_gives_the_in_kernel_model():
    private = {
        "enable_privacy": True,
        "privacy_config": fl.DifferentialPrivacyConfig(
            epsilon=20.0, delta=1e-5, reproducible_noise=True
        ),
    }
    inline, _ = await run("inline", LOGISTIC, **private)
    dask, records = await run("dask", LOGISTIC, **private)
    assert len(records[-1].participating_nodes) == 40
    np.testing.assert_allclose(dask, inline, rtol=0, atol=1e-9)


async def test_a_streamable_round_is_summed_on_the_workers_and_gives_the_in_kernel_model(
    monkeypatch,
):
    from heliosfl.accumulate import RoundSum

    merged = []
    original = RoundSum.merge

    def counting_merge(self, part):
        merged.append(len(part.accepted))
        return original(self, part)

    monkeypatch.setattr(RoundSum, "merge", counting_merge)
    streamed = {"norm_outlier_factor": None}
    inline, _ = await run("inline", MLP, classes=3, round_config=streamed)
    assert merged == []  # in the kernel the sum is taken where the batch trains
    dask, records = await run("dask", MLP, classes=3, round_config=streamed)
    assert sum(merged) == 3 * 40 and len(merged) == 3 * 2  # one part per worker per round
    assert len(records[-1].participating_nodes) == 40
    np.testing.assert_allclose(dask, inline, rtol=0, atol=1e-9)


async def test_secure_aggregation_rounds_train_in_the_kernel_on_a_dask_backend():
    secure = {"secure_aggregation": fl.SecureAggregationConfig(enabled=True)}
    inline, _ = await run("inline", LOGISTIC, nodes=12, rounds=2, **secure)
    dask, records = await run("dask", LOGISTIC, nodes=12, rounds=2, **secure)
    assert len(records[-1].participating_nodes) == 12
    np.testing.assert_allclose(dask, inline, rtol=0, atol=1e-4)  # within quantisation


async def test_a_round_the_cluster_cannot_run_trains_in_the_kernel_with_the_same_result():
    inline, _ = await run("inline", LOGISTIC, fault_on=3)
    dask, records = await run("dask", LOGISTIC, fault_on=3)
    np.testing.assert_allclose(dask, inline, rtol=0, atol=1e-9)
    assert len(records[-1].participating_nodes) == 40


async def test_a_lost_worker_fails_its_nodes_and_the_next_round_places_them_again():
    data, test = fl.data.synthetic_sites(
        num_sites=40, samples_per_site=30, num_features=6, test_samples=100, seed=0
    )
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=10, min_nodes_per_round=10, learning_rate=0.1, convergence_threshold=0.0
        ),
        seed=0,
    )
    backend = DaskBackend(n_workers=2)
    async with fl.FederatedLearningEngine(config, backend=backend) as engine:
        await engine.register_model("m", Poisoned(6))
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, rows in enumerate(data):
            await engine.create_worker(fl.WorkerConfig(node_id=f"n{i:03d}"), data=rows)
            await coordinator.register_node(f"n{i:03d}", len(rows))
        assert len((await coordinator.run_round()).participating_nodes) == 40
        homes = dict(backend._home)
        doomed = homes["n005"]
        X = np.array(data[5].X)
        X[0, 0] = 777.0
        engine.workers[5].data = fl.NodeData(X, data[5].y)

        record = await coordinator.run_round()  # n005's worker dies while training

        lost = {n for n, home in homes.items() if home == doomed}
        assert set(record.failed_nodes) == lost and len(lost) == 20
        assert all("lost" in why for why in record.failed_nodes.values())
        assert set(record.participating_nodes) == set(homes) - lost
        engine.workers[5].data = data[5]
        record = await coordinator.run_round()
        assert len(record.participating_nodes) == 40 and not record.failed_nodes
        assert doomed not in backend._home.values()
    await backend.aclose()


async def test_each_nodes_data_is_sent_once_and_again_only_when_it_changes():
    data, test = fl.data.synthetic_sites(
        num_sites=40, samples_per_site=30, num_features=6, test_samples=100, seed=0
    )
    config = fl.Config(
        round_config=fl.RoundConfig(max_rounds=10, min_nodes_per_round=10, learning_rate=0.1),
        seed=0,
    )
    backend = DaskBackend(n_workers=2)
    async with fl.FederatedLearningEngine(config, backend=backend) as engine:
        await engine.register_model("m", **LOGISTIC)
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, rows in enumerate(data):
            await engine.create_worker(fl.WorkerConfig(node_id=f"n{i:03d}"), data=rows)
            await coordinator.register_node(f"n{i:03d}", len(rows))
        await backend.start()
        scattered = []
        original = backend._client.scatter

        async def counting_scatter(items, **kwargs):
            scattered.append(kwargs["workers"][0])
            return await original(items, **kwargs)

        backend._client.scatter = counting_scatter
        for _ in range(3):
            await coordinator.run_round()
        assert sorted(scattered) == sorted(await backend.worker_addresses())  # once each
        engine.workers[0].data = fl.NodeData(data[0].X[:10], data[0].y[:10])
        await coordinator.run_round()
        assert len(scattered) == 3 and scattered[-1] == backend._home["n000"]
    await backend.aclose()


def test_backend_names_and_bad_input():
    process = make_backend("process", max_workers=2)
    assert isinstance(process, DaskBackend) and process.name == "process"
    assert process.n_workers == 2
    with pytest.raises(fl.ConfigError, match="'inline', 'process', 'dask'"):
        make_backend("ray")
    with pytest.raises(fl.ConfigError, match="address"):
        DaskBackend("localhost:8786")
    with pytest.raises(fl.ConfigError, match="n_workers"):
        DaskBackend(n_workers=0)


async def test_an_unreachable_scheduler_is_a_clear_error():
    backend = DaskBackend("tcp://127.0.0.1:9", timeout_secs=2)
    with pytest.raises(fl.FederatedLearningError, match="Could not start the dask backend"):
        await backend.start()
    await backend.aclose()
