"""Differential privacy through the engine: calibration, ledger, refusal, restart, noise."""

from __future__ import annotations

import dp_accounting
import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp
from federation_helpers import add_nodes, round_config

import heliosfl as fl


def private_config(*, epsilon=1.0, delta=1e-5, selection=None, **privacy) -> fl.Config:
    rc = {"max_rounds": 5, "min_nodes_per_round": 2}
    if selection is not None:
        rc["selection_strategy"] = selection
    max_rounds = privacy.pop("max_rounds", None)
    if max_rounds is not None:
        rc["max_rounds"] = max_rounds
    return fl.Config(
        round_config=round_config(**rc),
        enable_privacy=True,
        privacy_config=fl.DifferentialPrivacyConfig(epsilon=epsilon, delta=delta, **privacy),
    )


async def start(config, nodes, *, test=None, workspace=None, model="logistic_regression", **kw):
    engine = fl.FederatedLearningEngine(config, workspace=workspace)
    await engine.register_model("m", model, **({"input_dim": 30} | kw))
    coordinator = await engine.create_coordinator("m", validation_data=test)
    await add_nodes(engine, coordinator, nodes)
    return engine, coordinator


async def train_private(config, nodes, *, test=None):
    """Train to the end; return the result, the epsilon spent and the ledger."""
    engine, _ = await start(config, nodes, test=test)
    async with engine:
        result = await engine.train("m")
        spent, _ = engine.privacy_spent("m")
        ledger = engine.workspace.privacy_ledger("m")
    return result, spent, ledger


def rdp_epsilon(event, count, delta, relation=None) -> float:
    accountant = (
        rdp.RdpAccountant()
        if relation is None
        else rdp.RdpAccountant(neighboring_relation=relation)
    )
    accountant.compose(event, count)
    return accountant.get_epsilon(delta)


async def test_the_guides_example_trains_within_its_budget(small_nodes, breast_cancer):
    _, test = breast_cancer
    config = private_config(epsilon=0.1, delta=1e-5, max_rounds=100)
    result, spent, ledger = await train_private(config, small_nodes, test=test)
    assert result.rounds_completed == 100
    assert ledger[0]["delta"] == 1e-5
    assert 0.0 < spent <= 0.1
    z = ledger[0]["noise_multiplier"]
    expected = rdp_epsilon(dp_event.GaussianDpEvent(z), 100, 1e-5)
    assert spent == pytest.approx(expected, rel=1e-6)


async def test_epsilon_matches_dp_accounting_for_sampling_without_replacement(small_nodes):
    config = private_config(
        epsilon=4.0, selection=fl.NodeSelectionStrategy.random(k=4), max_rounds=6
    )
    _, spent, ledger = await train_private(config, small_nodes)
    z = ledger[0]["noise_multiplier"]
    assert ledger[0]["sampling"] == "without_replacement" and ledger[0]["denominator"] == 4
    event = dp_event.SampledWithoutReplacementDpEvent(10, 4, dp_event.GaussianDpEvent(z / 2))
    expected = rdp_epsilon(event, 6, 1e-5, dp_accounting.NeighboringRelation.REPLACE_ONE)
    assert spent == pytest.approx(expected, rel=1e-6)
    assert spent <= 4.0


async def test_a_fixed_noise_multiplier_stops_exactly_when_the_budget_is_spent(small_nodes):
    z = 1.0
    per_round = [rdp_epsilon(dp_event.GaussianDpEvent(z), r, 1e-5) for r in range(1, 40)]
    budget = (per_round[6] + per_round[7]) / 2  # 7 rounds fit, the 8th would not
    config = private_config(epsilon=budget, noise_multiplier=z, max_rounds=30)
    engine, coordinator = await start(config, small_nodes)
    async with engine:
        result = await engine.train("m")
        assert result.stop_reason is fl.StopReason.BUDGET_EXHAUSTED
        assert result.rounds_completed == 7
        spent, _ = engine.privacy_spent("m")
        assert spent == pytest.approx(per_round[6], rel=1e-6)
        events = engine.events.subscribe(model_id="m")
        with pytest.raises(fl.PrivacyBudgetExhausted) as info:
            await engine.train("m")  # called again: refused before any node trains
        seen = []
        while (event := events.get_nowait()) is not None:
            seen.append(type(event).__name__)
    message = str(info.value)
    assert "Increase epsilon" in message and "reduce max_rounds" in message
    assert info.value.spent == pytest.approx(per_round[6], rel=1e-6)
    assert info.value.requested == pytest.approx(per_round[7], rel=1e-6)
    assert "NodeFinished" not in seen and "RoundStarted" not in seen
    assert coordinator.current_round == 7


async def test_the_ledger_survives_a_restart_and_is_never_reset(small_nodes, tmp_path):
    path = tmp_path / "private.db"
    config = private_config(epsilon=2.0, max_rounds=6)
    with fl.Workspace(path) as workspace:
        engine, coordinator = await start(config, small_nodes, workspace=workspace)
        async with engine:
            for _ in range(3):
                await coordinator.run_round()
            spent_before = engine.privacy_spent("m")
    with fl.Workspace(path) as workspace:
        async with fl.FederatedLearningEngine(config, workspace=workspace) as engine:
            with pytest.raises(fl.ConfigError, match="resume"):
                await engine.register_model("m", "logistic_regression", input_dim=30)
            coordinator = await engine.resume("m")
            assert engine.privacy_spent("m") == pytest.approx(spent_before, rel=1e-12)
            await add_nodes(engine, coordinator, small_nodes)
            await engine.train("m")
            spent_after, _ = engine.privacy_spent("m")
        assert len(workspace.privacy_ledger("m")) == 6
    assert spent_before[0] < spent_after <= 2.0
    wider = private_config(epsilon=20.0, max_rounds=6)
    with fl.Workspace(path) as workspace:
        async with fl.FederatedLearningEngine(wider, workspace=workspace) as engine:
            with pytest.raises(fl.ConfigError, match="privacy_config"):
                await engine.resume("m")  # a restart never enlarges the budget


async def test_private_records_release_no_per_node_figures(small_nodes):
    config = private_config(epsilon=5.0)
    engine, coordinator = await start(config, small_nodes)
    async with engine:
        record = await coordinator.run_round()
        nodes = await coordinator.list_nodes()
    assert record.node_figures == {}
    assert record.aggregated_loss is None
    assert record.validation_accuracy is None  # no federated evaluation on private data
    assert all(n.last_loss is None and n.last_accuracy is None for n in nodes)


async def test_best_performance_is_refused_with_privacy(small_nodes):
    config = private_config(selection=fl.NodeSelectionStrategy.best_performance(k=3))
    engine, _ = await start(config, small_nodes)
    async with engine:
        with pytest.raises(fl.ConfigError, match="best_performance"):
            await engine.train("m")


async def test_the_noise_on_the_mean_has_standard_deviation_z_c_over_n(small_nodes):
    config = private_config(epsilon=1.0, clip_norm=2.0, max_rounds=1)
    engine = fl.FederatedLearningEngine(config)
    await engine.register_model("m", "mlp", input_dim=30, hidden_layers=(128, 48), num_classes=2)
    coordinator = await engine.create_coordinator("m")
    await add_nodes(engine, coordinator, small_nodes, learning_rate=1e-12)
    async with engine:
        before = engine.get_params("m")
        await coordinator.run_round()
        after = engine.get_params("m")
        ledger = engine.workspace.privacy_ledger("m")
    z, denominator = ledger[0]["noise_multiplier"], ledger[0]["denominator"]
    noise = after - before  # the updates are ~1e-12: what moved the model is the noise
    expected = z * 2.0 / denominator
    assert denominator == 10
    assert np.std(noise) == pytest.approx(expected, rel=0.03)
    assert abs(np.mean(noise)) < 4 * expected / np.sqrt(noise.size)


async def test_laplace_trains_end_to_end(small_nodes, breast_cancer):
    _, test = breast_cancer
    config = private_config(epsilon=8.0, mechanism=fl.NoiseMechanism.LAPLACE, max_rounds=5)
    result, spent, ledger = await train_private(config, small_nodes, test=test)
    assert result.rounds_completed == 5 and spent <= 8.0
    assert ledger[0]["event"]["type"] == "laplace"


async def test_adaptive_clipping_moves_the_clip_norm_and_is_accounted(small_nodes):
    config = private_config(epsilon=8.0, adaptive_clipping=True, clip_norm=50.0, max_rounds=5)
    _, spent, ledger = await train_private(config, small_nodes)
    clips = [entry["clip_norm"] for entry in ledger]
    assert clips[0] == 50.0 and clips[-1] < clips[0]  # updates are far below 50
    assert ledger[0]["count_noise_multiplier"] is not None
    assert spent <= 8.0


async def _breast_cancer_accuracy(epsilon: float | None, seed: int = 0) -> float:
    train, test = fl.data.load_dataset("breast_cancer", seed=0)
    nodes = fl.data.partition(train, num_nodes=100, scheme="dirichlet", alpha=0.5, seed=0)
    privacy = (
        None
        if epsilon is None
        else fl.DifferentialPrivacyConfig(epsilon=epsilon, reproducible_noise=True)
    )
    config = fl.Config(
        round_config=round_config(max_rounds=30, min_nodes_per_round=80, learning_rate=0.5),
        enable_privacy=privacy is not None,
        privacy_config=privacy,
        seed=seed,
    )
    engine, _ = await start(config, nodes, test=test)
    async with engine:
        result = await engine.train("m")
    assert result.final_accuracy is not None
    return result.final_accuracy


async def test_epsilon_8_costs_at_most_3_points_on_the_100_node_task():
    private = await _breast_cancer_accuracy(8.0)
    public = await _breast_cancer_accuracy(None)
    assert private >= public - 0.03


async def test_most_data_selection_is_charged_at_twice_the_sensitivity(small_nodes):
    config = private_config(
        epsilon=3.0, selection=fl.NodeSelectionStrategy.most_data(k=5), max_rounds=4
    )
    _, spent, ledger = await train_private(config, small_nodes)
    z = ledger[0]["noise_multiplier"]
    assert ledger[0]["deterministic_subset"] == 1 and ledger[0]["denominator"] == 5
    # one node joining can push another out of the top k: sensitivity 2C, so z/2
    assert spent == pytest.approx(rdp_epsilon(dp_event.GaussianDpEvent(z / 2), 4, 1e-5), rel=1e-6)
    assert spent <= 3.0


async def test_manual_rounds_must_select_first_under_privacy(small_nodes):
    config = private_config(selection=fl.NodeSelectionStrategy.random(k=2))
    engine, coordinator = await start(config, small_nodes)
    async with engine:
        updates = [await w.train_local_model() for w in engine.workers]
        with pytest.raises(fl.ConfigError, match="select_nodes_for_round"):
            await coordinator.execute_round(updates)
        selected = await coordinator.select_nodes_for_round()
        chosen = [u for u in updates if u.node_id in selected]
        record = await coordinator.execute_round(list(updates))
    assert set(record.participating_nodes) == set(selected) and len(chosen) == 2


async def test_private_events_carry_no_per_node_loss(small_nodes):
    config = private_config(epsilon=5.0)
    engine, coordinator = await start(config, small_nodes)
    async with engine:
        events = engine.events.subscribe(model_id="m")
        await coordinator.run_round()
        finished = []
        while (event := events.get_nowait()) is not None:
            if type(event).__name__ == "NodeFinished":
                finished.append(event)
    assert len(finished) == 10 and all(e.loss is None for e in finished)


async def test_random_k_is_charged_as_sampling_even_when_every_node_is_picked(small_nodes):
    config = private_config(
        epsilon=6.0, selection=fl.NodeSelectionStrategy.random(k=4), max_rounds=3
    )
    engine, coordinator = await start(config, small_nodes[:4])
    async with engine:
        await coordinator.run_round()  # 4 nodes, k = 4: everyone
        await engine.create_worker(fl.WorkerConfig(node_id="late"), data=small_nodes[4])
        await coordinator.register_node("late", len(small_nodes[4]))
        await coordinator.run_round()  # 5 nodes, k = 4: a real sample
        ledger = engine.workspace.privacy_ledger("m")
    first, second = (entry["event"] for entry in ledger)
    assert first["type"] == second["type"] == "sampled_without_replacement"
    assert (first["source_dataset_size"], first["sample_size"]) == (4, 4)
    assert (second["source_dataset_size"], second["sample_size"]) == (5, 4)


async def test_noise_comes_from_the_os_unless_reproducible_noise_is_asked_for(small_nodes):
    async def params(reproducible: bool) -> np.ndarray:
        config = private_config(epsilon=5.0, max_rounds=1, reproducible_noise=reproducible)
        engine, coordinator = await start(config, small_nodes)
        async with engine:
            await coordinator.run_round()
            return engine.get_params("m")

    assert not np.array_equal(await params(False), await params(False))
    np.testing.assert_array_equal(await params(True), await params(True))
