"""Seconds per round: heliosfl versus Flower 1.42's simulation engine, on the same task.

Task (the guide's deployment): the breast-cancer data split over 100 nodes with a
Dirichlet(0.5) label skew (2 to 14 training rows a node), the MLP 30-128-48-2 (ReLU, softmax
cross-entropy, 10,258 parameters), one local epoch of mini-batch SGD (batch 32, learning
rate 0.01) on every node, FedAvg over all 100 nodes every round, and evaluation of the new
global model on the held-out test split after every round, on the server side. No
client-side evaluation in either.

heliosfl runs it as the guide does: an engine with its default backend, a coordinator with
``validation_data=test``, one worker per node. Flower runs it in its simulation engine
(``flwr.simulation.run_simulation``, Ray backend) with 100 virtual SuperNodes; each ClientApp
asks for ``--cpus-per-client`` CPUs (default 1, so two Ray actors share the two cores). The
ClientApp trains with heliosfl's own numpy model and ``local_sgd`` and the server evaluates
with the same model, starting from heliosfl's initial parameters, so the arithmetic is the
same (the shuffles differ only by seed) and what differs is the framework around it.

Flower runs twice, once per API: ``message``, the Message API that Flower recommends since
1.21 (``flwr.serverapp.strategy.FedAvg``, a ClientApp with a ``train`` handler), and
``numpyclient``, the older ``NumPyClient`` with ``flwr.server.strategy.FedAvg`` and
``ServerAppComponents`` (kept under ``flwr.compat`` in 1.42). The headline figures are the
first API's; the others are reported with their name as prefix, e.g.
``flower_numpyclient_round_secs``.

Timing. heliosfl: the median wall time of ``run_round`` over ``--rounds`` rounds, after one
warm-up round. Flower: the strategy stamps the clock when a round's server-side evaluation
ends; a round is the gap between consecutive stamps (the evaluation of the initial model,
before round 1, gives the first), so it counts everything between two evaluations. Round 1
is a warm-up and not counted: it waits for Ray to start and for the actors to import the
ClientApp and load their data. The median is over the ``--flower-rounds`` rounds after it.
In Flower 1.42 the ServerApp starts (and calls ``configure``) before Ray is up, so start-up
is measured from the client side instead: ``flower_startup_secs`` is the time from calling
``run_simulation`` to the first ClientApp call (Ray start, actor pool, import of this module
in an actor). ``flower_total_secs`` is the whole call, Ray's shut-down included. Everything
runs in this process, heliosfl first. Prints one JSON line; Flower's and Ray's logs go to
stderr (WARNING and above; ``--verbose`` for INFO).

``peak_rss_mb`` is this process's peak; Ray's processes (GCS, raylet, actors) are not in it.
``flower_ray_rss_mb`` is the summed resident memory of this process's descendants sampled
during Flower's last round (Linux only, else null).

Flower and Ray are not project dependencies: ``make bench-flower`` builds a separate venv
(``.venv-flower``) with the project and ``flwr[simulation]==1.42.*`` and runs this there.

Usage: python benchmarks/flower_comparison.py [--rounds 30] [--flower-rounds 10]
       [--flower-api message numpyclient] [--cpus-per-client 1]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import heliosfl as fl
from heliosfl.models import LocalResult, local_sgd

DATASET = "breast_cancer"
NUM_NODES = 100
ALPHA = 0.5
HIDDEN = (128, 48)
EPOCHS = 1
BATCH_SIZE = 32
LEARNING_RATE = 0.01
SEED = 0
TASK = (
    "breast_cancer dirichlet(0.5) 100 nodes, MLP 30-128-48-2 (10,258 parameters), 1 epoch, batch 32"
)


def load_task(num_nodes: int = NUM_NODES) -> tuple[list[fl.NodeData], fl.NodeData]:
    """The guide's data: Dirichlet(0.5) shards of the training split, and the test split."""
    train, test = fl.data.load_dataset(DATASET, seed=SEED)
    nodes = fl.data.partition(
        train, num_nodes=num_nodes, scheme="dirichlet", alpha=ALPHA, seed=SEED
    )
    return nodes, test


def make_model() -> fl.Model:
    return fl.models.MLP(30, HIDDEN)


# -- heliosfl ---------------------------------------------------------------------------------


async def run_heliosfl(nodes: list[fl.NodeData], test: fl.NodeData, rounds: int) -> dict[str, Any]:
    """One warm-up round, then ``rounds`` timed rounds."""
    config = fl.Config(
        round_config=fl.RoundConfig(
            max_rounds=1000,
            min_nodes_per_round=80,
            learning_rate=LEARNING_RATE,
            convergence_threshold=0.0,
            node_timeout_secs=30,
        ),
        seed=SEED,
    )
    times, accuracy = [], []
    async with fl.FederatedLearningEngine(config) as engine:
        await engine.register_model("m", "mlp", input_dim=30, hidden_layers=HIDDEN)
        initial = engine.get_params("m")
        coordinator = await engine.create_coordinator("m", validation_data=test)
        for i, data in enumerate(nodes):
            node_id = f"n{i:03d}"
            wc = fl.WorkerConfig(node_id=node_id, batch_size=BATCH_SIZE, local_epochs=EPOCHS)
            await engine.create_worker(wc, data=data)
            await coordinator.register_node(node_id, len(data))
        record = await coordinator.run_round()  # warm-up
        accuracy.append(record.validation_accuracy)
        for _ in range(rounds):
            t0 = time.perf_counter()
            record = await coordinator.run_round()
            times.append(time.perf_counter() - t0)
            accuracy.append(record.validation_accuracy)
    return {"round_times": times, "accuracy": accuracy, "initial": initial}


# -- Flower, client side ----------------------------------------------------------------------
# A Ray actor serves many virtual nodes. It imports this module by name (Ray's workers get the
# driver's sys.path) and keeps the data and the model here, built once per actor process, as
# the task module of a Flower app does; the ClientApp that goes with every message stays small.
# Flower is imported inside the functions so that this module imports without it.

_ACTOR_CACHE: dict[str, Any] = {}


def _node(context: Any) -> tuple[fl.Model, fl.NodeData, int]:
    if "nodes" not in _ACTOR_CACHE:
        _ACTOR_CACHE["nodes"], _ = load_task(int(context.node_config["num-partitions"]))
        _ACTOR_CACHE["model"] = make_model()
    pid = int(context.node_config["partition-id"])
    return _ACTOR_CACHE["model"], _ACTOR_CACHE["nodes"][pid], pid


def _local_train(context: Any, params: np.ndarray, server_round: int) -> LocalResult:
    model, data, pid = _node(context)
    return local_sgd(
        model,
        params,
        data.X,
        data.y,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        rng=np.random.default_rng([SEED, server_round, pid]),
    )


def train_handler(msg: Any, context: Any) -> Any:
    """Message API: local SGD on this node's shard; reply with the new parameters."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    started_at = time.time()
    params = msg.content["arrays"].to_numpy_ndarrays()[0]
    result = _local_train(context, params, int(msg.content["config"]["server-round"]))
    metrics = {"num-examples": result.num_samples, "loss": result.loss, "started-at": started_at}
    reply = RecordDict({"arrays": ArrayRecord([result.params]), "metrics": MetricRecord(metrics)})
    return Message(content=reply, reply_to=msg)


def _numpy_client_class() -> type:
    if "client_class" not in _ACTOR_CACHE:
        from flwr.client import NumPyClient

        class Client(NumPyClient):
            def __init__(self, context: Any) -> None:
                self.context = context

            def fit(self, parameters, config):
                started_at = time.time()
                result = _local_train(self.context, parameters[0], int(config["server_round"]))
                metrics = {"loss": result.loss, "started-at": started_at}
                return [result.params], result.num_samples, metrics

        _ACTOR_CACHE["client_class"] = Client
    return _ACTOR_CACHE["client_class"]


def numpy_client_fn(context: Any) -> Any:
    """Legacy API: a NumPyClient whose ``fit`` is the same local SGD."""
    return _numpy_client_class()(context).to_client()


# -- Flower, server side ----------------------------------------------------------------------


def _descendants_rss_mb() -> float | None:
    """Summed RSS of this process's descendants (Ray's processes), from /proc; Linux only."""
    proc = Path("/proc")
    if not (proc / "self" / "status").exists():
        return None
    parent, rss = {}, {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            lines = (entry / "status").read_text().splitlines()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        parent[int(entry.name)] = int(fields.get("PPid", "0"))
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0])
    me, total_kib = os.getpid(), 0
    for pid, kib in rss.items():
        p = parent.get(pid, 0)
        while p > 1 and p != me:
            p = parent.get(p, 0)
        total_kib += kib if p == me else 0
    return round(total_kib / 1024, 1)


class Clock:
    """What the strategy records while the simulation runs."""

    def __init__(self, test: fl.NodeData, num_rounds: int) -> None:
        self.test = test
        self.num_rounds = num_rounds
        self.model = make_model()
        self.evaluated: list[float] = []  # perf_counter at the end of each evaluation
        self.accuracy: list[float] = []
        self.first_client_call: float | None = None  # time.time(), from the actors
        self.ray_rss_mb: float | None = None

    def clients_started(self, stamps: list[float]) -> None:
        if self.first_client_call is None and stamps:
            self.first_client_call = min(stamps)

    def evaluate(self, server_round: int, params: np.ndarray) -> dict[str, float]:
        if server_round == self.num_rounds:
            self.ray_rss_mb = _descendants_rss_mb()
        metrics = self.model.evaluate(params, self.test.X, self.test.y)
        self.evaluated.append(time.perf_counter())
        self.accuracy.append(metrics["accuracy"])
        return metrics


def message_apps(initial: np.ndarray, clock: Clock) -> tuple[Any, Any]:
    """ServerApp and ClientApp with the Message API."""
    from flwr.app import ArrayRecord, MetricRecord
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp
    from flwr.serverapp.strategy import FedAvg

    client_app = ClientApp()
    client_app.train()(_importable_self().train_handler)

    def train_metrics(replies: list[Any], weighting_key: str) -> Any:
        clock.clients_started([float(r["metrics"]["started-at"]) for r in replies])
        return MetricRecord()

    def evaluate_fn(server_round: int, arrays: Any) -> Any:
        return MetricRecord(clock.evaluate(server_round, arrays.to_numpy_ndarrays()[0]))

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Any, context: Any) -> None:
        strategy = FedAvg(
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_train_nodes=NUM_NODES,
            min_available_nodes=NUM_NODES,
            train_metrics_aggr_fn=train_metrics,
        )
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord([initial]),
            num_rounds=clock.num_rounds,
            evaluate_fn=evaluate_fn,
        )

    return server_app, client_app


def numpyclient_apps(initial: np.ndarray, clock: Clock) -> tuple[Any, Any]:
    """ServerApp and ClientApp with NumPyClient and the legacy strategy."""
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg

    client_app = ClientApp(client_fn=_importable_self().numpy_client_fn)

    def fit_metrics(results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        clock.clients_started([float(m["started-at"]) for _, m in results])
        return {}

    def evaluate_fn(server_round: int, parameters: list[np.ndarray], config: dict) -> Any:
        metrics = clock.evaluate(server_round, parameters[0])
        return metrics["loss"], {"accuracy": metrics["accuracy"]}

    def server_fn(context: Any) -> Any:
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=NUM_NODES,
            min_evaluate_clients=0,
            min_available_clients=NUM_NODES,
            evaluate_fn=evaluate_fn,
            on_fit_config_fn=lambda server_round: {"server_round": server_round},
            fit_metrics_aggregation_fn=fit_metrics,
            initial_parameters=ndarrays_to_parameters([initial]),
        )
        return ServerAppComponents(
            strategy=strategy, config=ServerConfig(num_rounds=clock.num_rounds)
        )

    return ServerApp(server_fn=server_fn), client_app


APPS: dict[str, Callable[[np.ndarray, Clock], tuple[Any, Any]]] = {
    "message": message_apps,
    "numpyclient": numpyclient_apps,
}


def _importable_self() -> Any:
    """This module under its own name, so that Ray pickles its functions by reference."""
    if __name__ != "__main__":
        return sys.modules[__name__]
    return importlib.import_module(Path(__file__).stem)


def run_flower(
    api: str, initial: np.ndarray, test: fl.NodeData, rounds: int, cpus_per_client: float
) -> dict[str, Any]:
    """Run the simulation for 1 + ``rounds`` rounds and read the clock."""
    import ray
    from flwr.simulation import run_simulation

    clock = Clock(test, rounds + 1)
    server_app, client_app = APPS[api](initial, clock)
    called_at, t0 = time.time(), time.perf_counter()
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=NUM_NODES,
        backend_config={
            "client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
            "init_args": {"num_cpus": os.cpu_count() or 1},
        },
    )
    total = time.perf_counter() - t0
    if ray.is_initialized():
        ray.shutdown()
    if len(clock.evaluated) != rounds + 2 or clock.first_client_call is None:
        raise RuntimeError(f"the Flower simulation ({api}) did not complete {rounds + 1} rounds")
    gaps = np.diff(clock.evaluated).tolist()  # gaps[0] is round 1, the warm-up
    return {
        "round_times": gaps[1:],
        "warmup_round_secs": gaps[0],
        "startup_secs": clock.first_client_call - called_at,
        "total_secs": total,
        "accuracy": clock.accuracy[1:],  # after round 1, 2, ...
        "ray_rss_mb": clock.ray_rss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed heliosfl rounds")
    parser.add_argument("--flower-rounds", type=int, default=10, help="timed Flower rounds")
    parser.add_argument(
        "--flower-api", nargs="+", choices=sorted(APPS), default=["message", "numpyclient"]
    )
    parser.add_argument("--cpus-per-client", type=float, default=1.0)
    parser.add_argument("--verbose", action="store_true", help="Flower's INFO logs (stderr)")
    args = parser.parse_args()

    # Before Flower is imported: no usage telemetry from a benchmark, and WARNING logs only.
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_LOG_LEVEL", "INFO" if args.verbose else "WARNING")
    try:
        import flwr
        import ray
        from flwr.simulation import run_simulation  # noqa: F401  (needs the simulation extra)
    except ImportError as exc:
        sys.exit(
            f"flower_comparison needs Flower with its simulation extra ({exc}).\n"
            "Run `make bench-flower`: it builds .venv-flower with this project and "
            "flwr[simulation]==1.42.* and runs this benchmark there."
        )
    logging.getLogger("ray").setLevel(logging.WARNING)

    nodes, test = load_task()
    helios = asyncio.run(run_heliosfl(nodes, test, args.rounds))
    flower = {
        api: run_flower(api, helios["initial"], test, args.flower_rounds, args.cpus_per_client)
        for api in args.flower_api
    }
    h_med = statistics.median(helios["round_times"])
    same_round = min(args.rounds, args.flower_rounds) + 1
    out: dict[str, Any] = {
        "benchmark": "flower_comparison",
        "task": TASK,
        "heliosfl_round_secs": round(h_med, 4),
    }
    for i, (api, res) in enumerate(flower.items()):
        prefix = "flower" if i == 0 else f"flower_{api}"
        f_med = statistics.median(res["round_times"])
        out[f"{prefix}_round_secs"] = round(f_med, 4)
        out["speedup" if i == 0 else f"speedup_{api}"] = round(f_med / h_med, 2)
        out[f"{prefix}_startup_secs"] = round(res["startup_secs"], 4)
        out[f"{prefix}_warmup_round_secs"] = round(res["warmup_round_secs"], 4)
        out[f"{prefix}_total_secs"] = round(res["total_secs"], 4)
    out |= {
        "flower_api": args.flower_api,
        "flower_cpus_per_client": args.cpus_per_client,
        "flower_version": flwr.__version__,
        "ray_version": ray.__version__,
        "rounds": {"heliosfl": args.rounds, "flower": args.flower_rounds, "warmup": 1},
        f"accuracy_after_round_{same_round}": {
            "heliosfl": helios["accuracy"][same_round - 1],
            **{api: res["accuracy"][same_round - 1] for api, res in flower.items()},
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "flower_ray_rss_mb": {api: res["ray_rss_mb"] for api, res in flower.items()},
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
