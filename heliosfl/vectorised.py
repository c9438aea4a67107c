"""Vectorised simulation: train many simulated nodes of one numpy model in one batch.

When every node of a round holds a built-in model (:class:`~heliosfl.models.LogisticRegression`,
:class:`~heliosfl.models.SoftmaxRegression` or :class:`~heliosfl.models.MLP`, not a
subclass), trains with the same epochs, batch size and learning rate, has no simulated
fault, no data policy (GDPR) and is online, the round's local training is the same
computation repeated per node on different rows. :func:`train_together` runs it for all
nodes at once: the parameters are stacked (one row per node), each node's rows are padded
to the longest node, and every mini-batch step is one batched numpy operation (a stacked
matrix product per layer) over the nodes still training. Nodes are ordered by how many
batches they have, so the nodes still training at any step are a prefix of the stack and
no work is spent on nodes that have finished their epoch. Masks cover the padding. Nodes
are trained in chunks so that the stacked parameters, gradients and activations of one
chunk stay within :data:`CHUNK_VALUES` floats however many nodes the round has.

Each node draws its shuffles from its own stream exactly as
:func:`~heliosfl.models.local_sgd` does, and every step is the same arithmetic, so the
result equals the per-node path to floating-point tolerance (a contract test checks
1e-12 for the linear models and 1e-10 for the MLP); summation order inside the matrix
products differs, so the two are not bit-identical.

A node whose data does not fit the model, or whose training diverges, fails alone, with
the same kind of reason as on the per-node path. Other models, and nodes with faults or
policies, take the per-node path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heliosfl.accumulate import UpdateSummary
from heliosfl.backends.base import StopFlag
from heliosfl.data import NodeData
from heliosfl.errors import ConfigError, NodeFailure
from heliosfl.models import MLP, LogisticRegression, Model, SoftmaxRegression, TrainingStopped
from heliosfl.records import ModelUpdate
from heliosfl.seeding import Stream, rng_for
from heliosfl.worker import FederatedWorker, TrainContext

__all__ = ["CHUNK_VALUES", "MIN_NODES", "batchable", "train_together"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Below this many nodes the per-node path is as fast (and keeps per-node timeouts).
MIN_NODES = 32

#: Floats of stacked parameters one chunk of nodes may hold (the gradients take as many).
#: Small enough for a chunk's parameters and gradients to stay in cache: measured on 2
#: cores, chunks of about 12 nodes of a 10k-parameter MLP train 100 nodes 2x faster than
#: one stack of all of them, whose every update streams through memory.
CHUNK_VALUES = 1 << 17

#: Most nodes in one chunk: numpy holds the GIL through each call (a gather of the batch
#: rows, say), so chunks this small keep every call to a few milliseconds and the
#: kernel's event loop, waiting for the GIL, responsive while 10,000 nodes train.
MAX_CHUNK_NODES = 256

_MODELS = (LogisticRegression, SoftmaxRegression, MLP)


@dataclass(frozen=True)
class _Net:
    """A built-in model as dense layers over the flat parameter vector.

    ``layers`` holds ``(w_start, w_stop, b_stop, fan_in, fan_out)`` per layer, as the
    models lay out their parameters; ``head`` is ``"sigmoid"`` (logistic regression: one
    output, log-loss) or ``"softmax"`` (cross-entropy); ``relu`` picks the hidden
    non-linearity (otherwise tanh).
    """

    layers: tuple[tuple[int, int, int, int, int], ...]
    head: str
    relu: bool
    num_params: int

    @staticmethod
    def of(model: Model) -> _Net:
        if isinstance(model, LogisticRegression):
            d = model.input_dim
            return _Net(((0, d, d + 1, d, 1),), "sigmoid", True, d + 1)
        if isinstance(model, MLP):
            return _Net(
                tuple(model._layout), "softmax", model.activation == "relu", model.num_params
            )
        assert isinstance(model, SoftmaxRegression)  # noqa: S101 - batchable() checked it
        d, c = model.input_dim, model.num_classes
        return _Net(((0, d * c, (d + 1) * c, d, c),), "softmax", True, model.num_params)

    def views(self, stack: FloatArray) -> list[tuple[FloatArray, FloatArray]]:
        """``(W, b)`` of every layer for each row of ``stack``, as views (no copies)."""
        k = stack.shape[0]
        return [
            (stack[:, w0:w1].reshape(k, fan_in, fan_out), stack[:, w1:b1])
            for w0, w1, b1, fan_in, fan_out in self.layers
        ]

    def forward(
        self, layers: list[tuple[FloatArray, FloatArray]], x: FloatArray
    ) -> tuple[list[FloatArray], FloatArray]:
        """Activations ``[x, h_1, ...]`` and the output scores, batched over nodes."""
        acts = [x]
        for W, b in layers[:-1]:
            z = np.matmul(acts[-1], W)
            z += b[:, None, :]
            if self.relu:
                np.maximum(z, 0.0, out=z)
            else:
                np.tanh(z, out=z)
            acts.append(z)
        W, b = layers[-1]
        out = np.matmul(acts[-1], W)
        out += b[:, None, :]
        return acts, out

    def loss_and_output_grad(
        self, out: FloatArray, y: FloatArray, valid: npt.NDArray[np.bool_], m: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Per-node summed loss of the valid rows, and dloss/dout (mean over each batch).

        As the models compute them: log-loss through ``logaddexp`` for the sigmoid head,
        a max-shifted log-softmax for the softmax head.
        """
        if self.head == "sigmoid":
            z = out[:, :, 0]
            losses = (np.logaddexp(0.0, z) - y * z) * valid
            dz = (np.exp(-np.logaddexp(0.0, -z)) - y) * valid / m[:, None]
            return losses.sum(axis=1), dz[:, :, None]
        labels, logp, picked = _log_softmax(out, y)
        losses = -(picked * valid).sum(axis=1)
        grad = np.exp(logp)
        a, width = labels.shape
        grad[np.arange(a)[:, None], np.arange(width)[None, :], labels] -= 1.0
        grad *= (valid / m[:, None])[:, :, None]
        return losses, grad

    def backward(
        self,
        layers: list[tuple[FloatArray, FloatArray]],
        acts: list[FloatArray],
        grad_out: FloatArray,
        grads: list[tuple[FloatArray, FloatArray]],
    ) -> None:
        """Write the gradient of every layer into ``grads`` (views of one stacked array)."""
        G = grad_out
        for k in range(len(layers) - 1, -1, -1):
            gW, gb = grads[k]
            np.matmul(acts[k].transpose(0, 2, 1), G, out=gW)
            np.sum(G, axis=1, out=gb)
            if k == 0:
                break
            G = np.matmul(G, layers[k][0].transpose(0, 2, 1))
            h = acts[k]
            if self.relu:
                G *= h > 0.0
            else:
                G *= 1.0 - h * h

    def log_proba_figures(
        self, stack: FloatArray, X: FloatArray, y: FloatArray, counts: IntArray
    ) -> tuple[FloatArray, FloatArray]:
        """Summed validation loss and hits per node (as ``Model._evaluate``)."""
        valid = np.arange(X.shape[1])[None, :] < counts[:, None]
        _, out = self.forward(self.views(stack), X)
        if self.head == "sigmoid":
            z = out[:, :, 0]
            loss = ((np.logaddexp(0.0, z) - y * z) * valid).sum(axis=1)
            hits = (((z > 0.0).astype(np.float64) == y) & valid).sum(axis=1)
            return loss, hits.astype(np.float64)
        labels, logp, picked = _log_softmax(out, y)
        hits = (np.argmax(logp, axis=2) == labels) & valid
        return -(picked * valid).sum(axis=1), hits.sum(axis=1).astype(np.float64)


def _log_softmax(out: FloatArray, y: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
    """Labels, max-shifted log-softmax of `out` (nodes, rows, classes), and each row's own.

    As :func:`~heliosfl.models.softmax.log_softmax`, batched over nodes.
    """
    labels = y.astype(np.int64)
    logp = out - out.max(axis=2, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=2, keepdims=True))
    return labels, logp, np.take_along_axis(logp, labels[:, :, None], axis=2)[:, :, 0]


def batchable(workers: Sequence[FederatedWorker], context: TrainContext) -> bool:
    """Whether `workers` can train `context` together (see the module docstring)."""
    if len(workers) < MIN_NODES or context.secure is not None:
        return False
    if type(context.model) not in _MODELS:  # subclasses may override the maths
        return False
    first = workers[0].config
    for worker in workers:
        config, data = worker.config, worker.data
        if (
            worker.fault is not None
            or worker.policy is not None
            or not worker.online
            or data is None
            or len(data) == 0
            or (config.local_epochs, config.batch_size, config.learning_rate)
            != (first.local_epochs, first.batch_size, first.learning_rate)
        ):
            return False
    return True


def train_together(
    workers: Sequence[FederatedWorker],
    context: TrainContext,
    stop: StopFlag | None = None,
    sink: Callable[[ModelUpdate], UpdateSummary | str] | None = None,
) -> list[ModelUpdate | UpdateSummary | str | NodeFailure | ConfigError]:
    """Local training of every worker for `context`, batched; one outcome per worker, in order.

    An outcome is the node's :class:`ModelUpdate`, or the error that failed that node alone:
    :class:`ConfigError` when its data does not fit the model or its training diverged.
    With `sink` (:meth:`heliosfl.accumulate.RoundSum.add`), each update goes to the sink as
    soon as its chunk is trained and is dropped; the outcome is then what the sink returned
    (the update's summary, or why it was rejected), so the round never holds its deltas.

    Raises
    ------
    TrainingStopped
        If `stop` is set between steps.
    """
    model = context.model
    net = _Net.of(model)
    outcomes: list[ModelUpdate | UpdateSummary | str | NodeFailure | ConfigError | None]
    outcomes = [None] * len(workers)
    usable: list[int] = []
    for i, worker in enumerate(workers):
        data = worker.data
        if data is None or len(data) == 0:
            outcomes[i] = NodeFailure(worker.node_id, "the node holds no training data it may use")
            continue
        try:
            worker._validated_for(model, data)
        except ConfigError as error:
            outcomes[i] = error
            continue
        usable.append(i)
    config = workers[0].config
    batch = config.batch_size
    # Most batches first: the nodes still training at any step are a prefix.
    sizes = np.array([len(workers[i].data) for i in usable], dtype=np.int64)  # type: ignore[arg-type]
    steps = -(-sizes // batch)  # ceil
    order = [usable[j] for j in np.argsort(-steps, kind="stable")]
    chunk = max(1, min(MAX_CHUNK_NODES, CHUNK_VALUES // net.num_params))
    for lo in range(0, len(order), chunk):
        part = order[lo : lo + chunk]
        results = _train_chunk(net, [workers[i] for i in part], context, stop)
        for i, result in zip(part, results, strict=True):
            if sink is not None and isinstance(result, ModelUpdate):
                outcomes[i] = sink(result)  # summed now; the delta goes with the chunk
            else:
                outcomes[i] = result
    done = [outcome for outcome in outcomes if outcome is not None]
    assert len(done) == len(workers)  # noqa: S101 - every worker was handled above
    return done


def _train_chunk(
    net: _Net, workers: Sequence[FederatedWorker], context: TrainContext, stop: StopFlag | None
) -> list[ModelUpdate | ConfigError]:
    """Train one chunk of nodes, ordered by number of batches (most first).

    Each update's ``duration_secs`` is the chunk's time shared equally among its nodes.
    """
    started = time.perf_counter()
    config = workers[0].config
    epochs, batch = config.local_epochs, config.batch_size
    lr = context.learning_rate if config.learning_rate is None else config.learning_rate
    mu = context.prox_mu
    datas: list[NodeData] = [w.data for w in workers]  # type: ignore[misc]
    # Padded per chunk and dropped after it: the nodes' rows stay held once, by the nodes
    # (a kept copy of every chunk measured no faster at 10,000 nodes).
    X, y, sizes = _pad([(x.X, x.y) for x in datas], net.layers[0][3])
    k, longest = len(workers), int(sizes.max())
    rngs = [
        rng_for(context.seed, Stream.TRAINING, context.model_id, context.round_number, w.node_id)
        for w in workers
    ]
    w0 = np.asarray(context.params, dtype=np.float64)
    stack = np.tile(w0, (k, 1))
    grad = np.empty_like(stack)
    steps_per_epoch = -(-sizes // batch)  # ceil, non-increasing along the stack
    epoch_loss = np.zeros(k)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(epochs):
            orders = np.zeros((k, longest), dtype=np.int64)
            for i, rng in enumerate(rngs):
                orders[i, : sizes[i]] = rng.permutation(int(sizes[i]))
            total = np.zeros(k)
            for s in range(int(steps_per_epoch[0])):
                if stop is not None and stop.is_set():
                    raise TrainingStopped(s)
                a = int((steps_per_epoch > s).sum())  # the nodes still training: a prefix
                start = s * batch
                width = min(batch, longest - start)
                cols = start + np.arange(width)
                valid = cols[None, :] < sizes[:a, None]  # (a, width): real rows of the batch
                index = orders[:a, start : start + width]
                rows = np.arange(a)[:, None]
                xb = X[rows, index]  # (a, width, d)
                yb = y[rows, index]
                m = valid.sum(axis=1).astype(np.float64)
                params = stack[:a]
                layers = net.views(params)
                acts, out = net.forward(layers, xb)
                losses, grad_out = net.loss_and_output_grad(out, yb, valid, m)
                g = grad[:a]
                net.backward(layers, acts, grad_out, net.views(g))
                if mu > 0.0:
                    step = params - w0
                    step *= mu
                    step += g
                else:
                    step = g
                step *= lr
                params -= step
                total[:a] += losses
            epoch_loss = total / sizes
    finite = np.isfinite(stack).all(axis=1) & np.isfinite(epoch_loss)
    loss_sum, hits, counts = _validation_figures(net, datas, stack, finite)
    elapsed = (time.perf_counter() - started) / k
    updates: list[ModelUpdate | ConfigError] = []
    for i, worker in enumerate(workers):
        if not finite[i]:
            updates.append(_diverged(lr, int(steps_per_epoch[i]) * epochs))
            continue
        n_val = int(counts[i])
        metrics = (
            {
                "val_loss": float(loss_sum[i] / n_val),
                "val_accuracy": float(hits[i] / n_val),
                "val_samples": float(n_val),
            }
            if n_val
            else {}
        )
        updates.append(
            ModelUpdate(
                model_id=context.model_id,
                node_id=worker.node_id,
                round_number=context.round_number,
                delta=stack[i] - w0,
                num_samples=int(sizes[i]),
                loss=float(epoch_loss[i]),
                metrics=metrics,
                duration_secs=elapsed,
            )
        )
    return updates


def _diverged(learning_rate: float, steps: int) -> ConfigError:
    return ConfigError(
        "learning_rate",
        learning_rate,
        "small enough for local training to stay finite",
        f"The loss or the parameters became NaN or Inf within {steps} steps; lower learning_rate.",
    )


def _pad(
    parts: Sequence[tuple[npt.ArrayLike, npt.ArrayLike] | None], d: int
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Rows ``(X, y)`` of each node stacked and zero-padded to the longest, with the counts."""
    sizes = np.array([0 if part is None else len(part[1]) for part in parts], dtype=np.int64)  # type: ignore[arg-type]
    X = np.zeros((len(parts), int(sizes.max(initial=0)), d))
    y = np.zeros(X.shape[:2])
    for i, part in enumerate(parts):
        if part is not None:
            X[i, : sizes[i]] = part[0]
            y[i, : sizes[i]] = part[1]
    return X, y, sizes


def _validation_figures(
    net: _Net, datas: Sequence[NodeData], stack: FloatArray, finite: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Each node's summed loss, hits and rows on its own validation split, batched."""
    splits = [
        (x.X_val, x.y_val)
        if ok and x.X_val is not None and x.y_val is not None and len(x.y_val) > 0
        else None
        for x, ok in zip(datas, finite, strict=True)
    ]
    k = len(datas)
    if all(split is None for split in splits):
        return np.zeros(k), np.zeros(k), np.zeros(k, dtype=np.int64)
    X, y, counts = _pad(splits, net.layers[0][3])
    safe = np.where(finite[:, None], stack, 0.0)
    loss, hits = net.log_proba_figures(safe, X, y, counts)
    return loss, hits, counts
