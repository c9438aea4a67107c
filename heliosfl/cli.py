"""Command line: ``heliosfl demo`` and ``heliosfl simulate``.

``heliosfl demo`` runs the guide's "100+ Node Deployment" headless: 100 workers, a
~10,000-parameter MLP, an 80% quorum, a 30 s node timeout and a few nodes that fail on
purpose, printing per-round progress and the guide's cluster-health summary.
``heliosfl simulate`` runs a configurable simulation on a bundled or synthetic dataset.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import heliosfl as fl
from heliosfl.events import Event, RoundCompleted, RoundFailed

__all__ = ["main"]


def _print_round(event: Event) -> None:
    if isinstance(event, RoundCompleted):
        r = event.record
        acc = "n/a" if r.validation_accuracy is None else f"{r.validation_accuracy:.4f}"
        loss = "n/a" if r.validation_loss is None else f"{r.validation_loss:.4f}"
        print(
            f"  round {r.round_number:4d}: {len(r.participating_nodes):3d}/"
            f"{len(r.selected_nodes):3d} nodes, {len(r.failed_nodes):2d} failed, "
            f"val accuracy {acc}, val loss {loss}, {r.duration_secs:.2f} s",
            flush=True,
        )
    elif isinstance(event, RoundFailed):
        print(f"  round {event.record.round_number:4d} FAILED: {event.reason}", flush=True)


async def _health(coordinator: fl.Coordinator) -> None:
    """Print the guide's "Monitoring and Health Checks" summary."""
    state = await coordinator.get_state()
    print("Cluster Health:")
    print(f"  Current round: {state.current_round}/{state.total_rounds}")
    print(f"  Is training: {state.is_training}")
    print(f"  Converged: {state.converged}")
    if state.best_accuracy is not None:
        print(f"  Best accuracy: {state.best_accuracy * 100:.2f}%")
    if state.best_loss is not None:
        print(f"  Best loss: {state.best_loss:.4f}")
    nodes = await coordinator.list_nodes()
    active = sum(1 for n in nodes if n.available)
    uptime = 100.0 * active / len(nodes) if nodes else 0.0
    print("\nNode Status:")
    print(f"  Total nodes: {len(nodes)}")
    print(f"  Active nodes: {active}")
    print(f"  Uptime: {uptime:.1f}%")
    if uptime < 95.0:
        print(f"WARNING: Cluster uptime below 95% ({uptime:.1f}%)", file=sys.stderr)
    failed = [n for n in nodes if not n.available]
    for node in failed:
        print(f"  unavailable: {node.node_id} ({node.last_error})")


async def _demo(args: argparse.Namespace) -> int:
    print("heliosfl demo: the guide's 100-node production deployment")
    guide_z = fl.privacy.calibrate_noise(epsilon=0.1, delta=1e-5, rounds=1000)
    print(
        f"  the guide's budget, epsilon=0.1 over 1000 rounds, needs a noise multiplier of "
        f"{guide_z:.0f}: noise {guide_z / args.nodes:.1f}x the clip norm on every mean "
        "update, so the model could not learn. This demo spends "
        f"epsilon={args.epsilon:g} over at most {args.max_rounds} rounds "
        "(--epsilon, --max-rounds; --epsilon 0 trains without privacy)."
    )
    privacy = None
    if args.epsilon > 0:
        privacy = fl.DifferentialPrivacyConfig(
            epsilon=args.epsilon, delta=1e-5, mechanism=fl.NoiseMechanism.GAUSSIAN
        )
    config = fl.Config(
        aggregation_strategy=fl.AggregationStrategy.FEDAVG,
        round_config=fl.RoundConfig(
            max_rounds=args.max_rounds,
            min_nodes_per_round=int(0.8 * args.nodes),
            selection_strategy=fl.NodeSelectionStrategy.all(),
            node_timeout_secs=args.timeout,
            target_accuracy=0.95,
            learning_rate=args.learning_rate,
            convergence_threshold=0.001,
        ),
        enable_privacy=privacy is not None,
        privacy_config=privacy,
        seed=args.seed,
    )
    nodes, test = fl.data.synthetic_sites(
        num_sites=args.nodes,
        samples_per_site=100,
        num_features=30,
        num_classes=2,
        seed=args.seed,
    )
    crashing = {3, 41, 77}
    flaky = {10, 20, 30, 60}
    slow = {50, 51}
    hanging = set(range(90, 90 + args.hanging))
    async with fl.FederatedLearningEngine(config) as engine:
        model = await engine.register_model(
            "production_model",
            "deep_neural_network",
            input_dim=30,
            hidden_layers=(128, 48),
            num_classes=2,
        )
        print(f"Registered production_model: MLP 30-128-48-2, {model.num_params:,} parameters")
        coordinator = await engine.create_coordinator("production_model", validation_data=test)
        print(f"Deploying {args.nodes} worker nodes...")
        for i, data in enumerate(nodes):
            fault = None
            if i in crashing:
                fault = fl.NodeFault.crash()
            elif i in flaky:
                fault = fl.NodeFault(crash_probability=0.2)
            elif i in slow:
                fault = fl.NodeFault(delay_secs=0.05)
            elif i in hanging:
                fault = fl.NodeFault(hang_probability=0.1)
            wc = fl.WorkerConfig(node_id=f"prod_node_{i:03d}", local_epochs=1, batch_size=32)
            await engine.create_worker(wc, data=data, fault=fault)
            await coordinator.register_node(wc.node_id, len(data))
            if (i + 1) % 10 == 0:
                print(f"  Deployed {i + 1}/{args.nodes} nodes")
        print("All nodes deployed successfully")
        print(
            f"Failing on purpose: {len(crashing)} nodes crash every round, {len(flaky)} crash "
            f"in 20% of rounds, {len(slow)} answer 50 ms late, {len(hanging)} hang in 10% of "
            f"rounds (each hang is cut off at the {args.timeout:g} s timeout; try "
            "--hanging 3 --timeout 0.5)"
        )
        remove = engine.events.add_listener(_print_round)
        try:
            result = await engine.train("production_model")
        finally:
            remove()
        print(
            f"\nTraining stopped: {result.stop_reason.value} after {result.rounds_completed} "
            f"rounds in {result.duration_secs:.1f} s"
        )
        if privacy is not None:
            spent, delta = engine.privacy_spent("production_model")
            ledger = engine.workspace.privacy_ledger("production_model")
            z = ledger[0]["noise_multiplier"] if ledger else float("nan")
            print(
                f"Privacy spent: epsilon={spent:.4f} of {privacy.epsilon:g} (delta={delta:g}); "
                f"noise multiplier {z:.2f}, clip norm {privacy.clip_norm:g}"
            )
        await _health(coordinator)
    return 0


async def _simulate(args: argparse.Namespace) -> int:
    if args.dataset == "synthetic":
        nodes, test = fl.data.synthetic_sites(
            num_sites=args.nodes, samples_per_site=100, num_features=30, seed=args.seed
        )
        input_dim, classes = 30, 2
    else:
        train, test = fl.data.load_dataset(args.dataset, seed=args.seed)
        nodes = fl.data.partition(
            train, num_nodes=args.nodes, scheme=args.partition, alpha=args.alpha, seed=args.seed
        )
        input_dim, classes = train.num_features, int(max(train.y.max(), test.y.max())) + 1
    selection = (
        fl.NodeSelectionStrategy.all()
        if args.k is None
        else fl.NodeSelectionStrategy.random(k=args.k)
    )
    config = fl.Config(
        aggregation_strategy=fl.AggregationStrategy(args.strategy),
        round_config=fl.RoundConfig(
            max_rounds=args.rounds,
            min_nodes_per_round=args.min_nodes,
            selection_strategy=selection,
            learning_rate=args.learning_rate,
            target_accuracy=args.target_accuracy,
            convergence_threshold=0.0,
        ),
        seed=args.seed,
        secure_aggregation=fl.SecureAggregationConfig(enabled=args.secure_aggregation),
    )
    workspace = fl.Workspace(args.workspace) if args.workspace else None
    async with fl.FederatedLearningEngine(config, workspace=workspace) as engine:
        kwargs: dict[str, Any] = {"input_dim": input_dim}
        if args.model != "logistic_regression":
            kwargs["num_classes"] = classes
        if args.model in ("mlp", "neural_network"):
            kwargs["hidden_layers"] = (args.hidden,)
        await engine.register_model("model", args.model, **kwargs)
        coordinator = await engine.create_coordinator("model", validation_data=test)
        for i, data in enumerate(nodes):
            wc = fl.WorkerConfig(node_id=f"node_{i:04d}", local_epochs=args.local_epochs)
            await engine.create_worker(wc, data=data)
            await coordinator.register_node(wc.node_id, len(data))
        remove = engine.events.add_listener(_print_round)
        try:
            result = await engine.train("model")
        finally:
            remove()
        print(f"stopped: {result.stop_reason.value}; best accuracy {result.best_accuracy}")
        if workspace is not None:
            workspace.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heliosfl", description="heliosfl command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the guide's 100-node deployment, headless")
    demo.add_argument("--nodes", type=int, default=100)
    demo.add_argument("--max-rounds", type=int, default=50)
    demo.add_argument("--timeout", type=float, default=30.0, help="node timeout in seconds")
    demo.add_argument("--hanging", type=int, default=0, help="nodes that sometimes hang")
    demo.add_argument("--learning-rate", type=float, default=0.05)
    demo.add_argument(
        "--epsilon", type=float, default=8.0, help="total privacy budget (0: no privacy)"
    )
    demo.add_argument("--seed", type=int, default=0)
    sim = sub.add_parser("simulate", help="simulate federated training")
    sim.add_argument(
        "--dataset", choices=["breast_cancer", "digits", "synthetic"], default="breast_cancer"
    )
    sim.add_argument("--nodes", type=int, default=10)
    sim.add_argument("--partition", choices=["iid", "dirichlet", "quantity"], default="iid")
    sim.add_argument("--alpha", type=float, default=0.5)
    sim.add_argument(
        "--model",
        choices=["logistic_regression", "softmax_regression", "mlp", "neural_network"],
        default="logistic_regression",
    )
    sim.add_argument("--hidden", type=int, default=32)
    sim.add_argument(
        "--strategy",
        choices=["fedavg", "fedprox", "fedopt", "median", "trimmed_mean", "krum"],
        default="fedavg",
    )
    sim.add_argument("--rounds", type=int, default=20)
    sim.add_argument("--k", type=int, default=None, help="random(k) selection")
    sim.add_argument("--min-nodes", type=int, default=1)
    sim.add_argument("--local-epochs", type=int, default=1)
    sim.add_argument("--learning-rate", type=float, default=0.1)
    sim.add_argument("--target-accuracy", type=float, default=None)
    sim.add_argument("--workspace", default=None, help="SQLite file to keep the run in")
    sim.add_argument(
        "--secure-aggregation",
        action="store_true",
        help="SecAgg+: the coordinator sees only the sum of the updates",
    )
    sim.add_argument("--seed", type=int, default=0)
    lab = sub.add_parser("lab", help="open JupyterLab on the notebooks (00_start_here first)")
    lab.add_argument("--notebooks", default=None, help="folder with the notebooks")
    lab.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    return parser


def _lab(args: argparse.Namespace) -> int:
    """Open JupyterLab on ``notebooks/00_start_here.ipynb`` (the checkout's, or a copy)."""
    folder = Path(args.notebooks) if args.notebooks else _notebooks()
    if folder is None or not (folder / "00_start_here.ipynb").is_file():
        print(
            "error: no notebooks found; pass --notebooks PATH (a heliosfl checkout's notebooks/)",
            file=sys.stderr,
        )
        return 2
    command = [sys.executable, "-m", "jupyter", "lab", "00_start_here.ipynb"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")
    print(" ".join(command), f"(in {folder})")
    if args.dry_run:
        return 0
    return subprocess.call(command, cwd=folder)  # noqa: S603 - our own interpreter


def _notebooks() -> Path | None:
    """The checkout's notebooks, or a working copy of those shipped in the wheel.

    An installed package's notebooks are copied once to ``./heliosfl-notebooks`` (never
    opened inside site-packages); an existing copy is kept, with the user's changes.
    """
    checkout = Path(__file__).resolve().parents[1] / "notebooks"
    if checkout.is_dir():
        return checkout
    shipped = Path(__file__).resolve().parent / "_notebooks"
    if not shipped.is_dir():
        return None
    copy = Path.cwd() / "heliosfl-notebooks"
    if not copy.exists():
        shutil.copytree(shipped, copy)
    return copy


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "lab":
            return _lab(args)
        return asyncio.run(_simulate(args))
    except fl.FederatedLearningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
