"""Contract: a round whose updates are streamed into one sum equals the round that holds them."""

from __future__ import annotations

import numpy as np
import pytest

import heliosfl as fl
from heliosfl.accumulate import RoundSum, UpdateSummary
from heliosfl.coordinator import Coordinator
from heliosfl.vectorised import train_together

MLP = {"model_type": "mlp", "input_dim": 6, "hidden_layers": (16,), "num_classes": 3}
LOGISTIC = {"model_type": "logistic_regression", "input_dim": 6}


async def federation(spec, *, nodes=40, guard=None, **config):
    data, test = fl.data.synthetic_sites(
        num_sites=nodes,
        samples_per_site=(10, 60),
        num_features=6,
        num_classes=int(spec.get("num_classes", 2)),
        test_samples=200,
        seed=2,
    )
    round_config = {
        "max_rounds": 6,
        "min_nodes_per_round": nodes // 4,
        "learning_rate": 0.2,
        "convergence_threshold": 0.0,
        "norm_outlier_factor": None,
    }
    round_config.update(config.pop("round_config", {}))
    engine = fl.FederatedLearningEngine(
        fl.Config(round_config=fl.RoundConfig(**round_config), seed=3, **config)
    )
    await engine.register_model("m", **spec)
    coordinator = await engine.create_coordinator("m", validation_data=test)
    if guard is not None:
        coordinator.update_guards.append(guard)
    for i, rows in enumerate(data):
        await engine.create_worker(fl.WorkerConfig(node_id=f"n{i:03d}"), data=rows)
        await coordinator.register_node(f"n{i:03d}", len(rows))
    return engine, coordinator


async def three_rounds(monkeypatch, spec, *, stream, **config):
    if not stream:  # every round holds its updates, as before streaming existed
        monkeypatch.setattr(Coordinator, "_round_sum", lambda self, *args: None)
    engine, coordinator = await federation(spec, **config)
    streamed = []
    original = RoundSum.add

    def counting_add(self, update):
        streamed.append(update.node_id)
        return original(self, update)

    monkeypatch.setattr(RoundSum, "add", counting_add)
    records = [await coordinator.run_round() for _ in range(3)]
    monkeypatch.undo()
    return engine, coordinator, records, streamed


def assert_same_rounds(a, b, tol):
    for x, y in zip(a, b, strict=True):
        assert x.participating_nodes == y.participating_nodes
        assert x.failed_nodes == y.failed_nodes
        assert x.node_figures.keys() == y.node_figures.keys()
        for node, figures in x.node_figures.items():
            for key in ("loss", "val_accuracy"):
                assert figures.get(key) == pytest.approx(y.node_figures[node].get(key), abs=tol)
        for key in ("aggregated_loss", "validation_loss", "validation_accuracy"):
            assert getattr(x, key) == pytest.approx(getattr(y, key), abs=tol)


@pytest.mark.parametrize(
    ("spec", "strategy"),
    [(LOGISTIC, fl.FedAvg()), (MLP, fl.FedProx(mu=0.1)), (MLP, fl.FedAdam())],
    ids=["logistic-fedavg", "mlp-fedprox", "mlp-fedadam"],
)
async def test_a_streamed_round_equals_the_held_round(monkeypatch, spec, strategy):
    _, held, held_records, none = await three_rounds(
        monkeypatch, spec, stream=False, aggregation_strategy=strategy
    )
    _, streamed, streamed_records, summed = await three_rounds(
        monkeypatch, spec, stream=True, aggregation_strategy=strategy
    )
    assert none == [] and len(summed) == 3 * 40  # every update went through the sum
    np.testing.assert_allclose(streamed.params, held.params, rtol=0, atol=1e-12)
    assert_same_rounds(streamed_records, held_records, 1e-12)
    assert held._strategy_state.keys() == streamed._strategy_state.keys()


async def test_a_private_streamed_round_equals_the_held_round_and_is_charged_the_same(
    monkeypatch,
):
    private = {
        "enable_privacy": True,
        "privacy_config": fl.DifferentialPrivacyConfig(
            epsilon=20.0, delta=1e-5, clip_norm=0.5, reproducible_noise=True
        ),
    }
    held_engine, held, held_records, _ = await three_rounds(
        monkeypatch, MLP, stream=False, **private
    )
    engine, streamed, records, summed = await three_rounds(monkeypatch, MLP, stream=True, **private)
    assert len(summed) == 3 * 40
    np.testing.assert_allclose(streamed.params, held.params, rtol=0, atol=1e-12)
    assert_same_rounds(records, held_records, 1e-12)
    ledger, held_ledger = (e.workspace.privacy_ledger("m") for e in (engine, held_engine))
    assert len(ledger) == len(held_ledger) == 3
    for entry, expected in zip(ledger, held_ledger, strict=True):
        assert entry.keys() == expected.keys()
        assert entry["event"] == expected["event"]
        for key in ("epsilon", "clip_norm", "participants", "noise_multiplier"):
            assert entry[key] == pytest.approx(expected[key], rel=1e-12), key
    assert engine.privacy_spent("m") == pytest.approx(held_engine.privacy_spent("m"))


async def test_guards_and_the_norm_cap_reject_the_same_updates_when_streamed(monkeypatch):
    def guard(update):
        return "leaky" if update.node_id in ("n004", "n017") else None

    cap = {"round_config": {"max_update_norm": 0.35}}
    _, held, held_records, _ = await three_rounds(
        monkeypatch, LOGISTIC, stream=False, guard=guard, **cap
    )
    _, streamed, records, _ = await three_rounds(
        monkeypatch, LOGISTIC, stream=True, guard=guard, **cap
    )
    rejected = records[0].failed_nodes
    assert rejected["n004"] == "rejected: leaky"
    assert any("max_update_norm" in why for why in rejected.values())
    assert_same_rounds(records, held_records, 1e-12)
    np.testing.assert_allclose(streamed.params, held.params, rtol=0, atol=1e-12)


async def test_rounds_that_need_every_update_hold_them():
    _, default = await federation(LOGISTIC, round_config={"norm_outlier_factor": 100.0})
    assert default._round_sum(1, ["n000"]) is None  # the median rule sees every norm
    _, robust = await federation(LOGISTIC, aggregation_strategy=fl.TrimmedMean(trim_fraction=0.1))
    assert robust._round_sum(1, ["n000"]) is None
    _, plain = await federation(LOGISTIC)
    assert isinstance(plain._round_sum(1, ["n000"]), RoundSum)


async def test_a_streamed_batch_returns_summaries_not_deltas():
    engine, coordinator = await federation(MLP)
    context = coordinator.training_context("n000")
    ids = [w.node_id for w in engine.workers]
    sink = coordinator._round_sum(context.round_number, ids)
    assert sink is not None

    outcomes = train_together(engine.workers, context, None, sink.add)

    assert all(isinstance(o, UpdateSummary) for o in outcomes)
    assert [o.node_id for o in outcomes] == ids
    held = train_together(engine.workers, context)
    weights = np.array([u.num_samples for u in held], dtype=float)
    mean = sum(w * u.delta for w, u in zip(weights, held, strict=True)) / weights.sum()
    np.testing.assert_allclose(sink.mean(), mean, rtol=0, atol=1e-12)
