"""Vectorised simulation: train many simulated nodes of one numpy model in one batch.

When every node of a round holds a built-in :class:`~heliosfl.models.LogisticRegression`,
trains with the same epochs, batch size and learning rate, has no simulated fault, no
data policy (GDPR) and is online, the round's local training is the same computation
repeated per node on different rows. :func:`train_together` runs it for all nodes at once:
the parameters are stacked, each node's rows are padded to the longest node, and every
mini-batch step is one batched numpy operation over the nodes still training (masks cover
the padding and nodes with fewer batches). Each node draws its shuffles from its own
stream exactly as :func:`~heliosfl.models.local_sgd` does, so the result equals the
per-node path to floating-point tolerance (a contract test checks it); summation order
differs, so the two are not bit-identical.

Other models, and nodes with faults or policies, take the per-node path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from heliosfl.backends.base import StopFlag
from heliosfl.data import NodeData
from heliosfl.models import LogisticRegression, TrainingStopped
from heliosfl.records import ModelUpdate
from heliosfl.seeding import Stream, rng_for
from heliosfl.worker import FederatedWorker, TrainContext

__all__ = ["batchable", "train_together"]

FloatArray = npt.NDArray[np.float64]

#: Below this many nodes the per-node path is as fast (and keeps per-node timeouts).
MIN_NODES = 32


def batchable(workers: Sequence[FederatedWorker], context: TrainContext) -> bool:
    """Whether `workers` can train `context` together (see the module docstring)."""
    if len(workers) < MIN_NODES or context.secure is not None:
        return False
    model = context.model
    if type(model) is not LogisticRegression:  # subclasses may override the maths
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
    workers: Sequence[FederatedWorker], context: TrainContext, stop: StopFlag | None = None
) -> list[ModelUpdate]:
    """Local training of every worker for `context`, batched; one update per worker, in order.

    Raises
    ------
    TrainingStopped
        If `stop` is set between steps.
    """
    started = time.perf_counter()
    model = context.model
    assert isinstance(model, LogisticRegression)  # noqa: S101 - batchable() checked it
    d = model.input_dim
    config = workers[0].config
    epochs, batch = config.local_epochs, config.batch_size
    lr = context.learning_rate if config.learning_rate is None else config.learning_rate
    mu = context.prox_mu
    datas = [w.data for w in workers]
    X, y, sizes = _padded(datas, d)  # noqa: N806
    k, longest = len(workers), int(sizes.max())
    rngs = [
        rng_for(context.seed, Stream.TRAINING, context.model_id, context.round_number, w.node_id)
        for w in workers
    ]
    w0 = np.asarray(context.params, dtype=np.float64)
    weights = np.tile(w0[:d], (k, 1))
    bias = np.full(k, w0[d])
    rows = np.arange(k)[:, None]
    steps_per_epoch = -(-sizes // batch)  # ceil
    epoch_loss = np.zeros(k)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(epochs):
            orders = np.zeros((k, longest), dtype=np.int64)
            for i, rng in enumerate(rngs):
                orders[i, : sizes[i]] = rng.permutation(int(sizes[i]))
            total = np.zeros(k)
            for s in range(int(steps_per_epoch.max())):
                if stop is not None and stop.is_set():
                    raise TrainingStopped(s)
                lo = s * batch
                width = min(batch, longest - lo)
                cols = lo + np.arange(width)
                valid = cols[None, :] < sizes[:, None]  # (k, width): real rows of the batch
                active = valid.any(axis=1)
                index = orders[:, lo : lo + width]
                xb = X[rows, index]  # (k, width, d)
                yb = y[rows, index]
                m = valid.sum(axis=1).astype(np.float64)
                m[m == 0] = 1.0
                z = np.einsum("kbd,kd->kb", xb, weights) + bias[:, None]
                losses = (np.logaddexp(0.0, z) - yb * z) * valid
                dz = (np.exp(-np.logaddexp(0.0, -z)) - yb) * valid / m[:, None]
                grad_w = np.einsum("kb,kbd->kd", dz, xb)
                grad_b = dz.sum(axis=1)
                if mu > 0.0:
                    grad_w += mu * (weights - w0[:d])
                    grad_b += mu * (bias - w0[d])
                scale = np.where(active, lr, 0.0)
                weights -= scale[:, None] * grad_w
                bias -= scale * grad_b
                total += losses.sum(axis=1)
            epoch_loss = total / sizes
    if not (np.isfinite(weights).all() and bool(np.isfinite(bias).all())):
        from heliosfl.models.sgd import _diverged

        _diverged(lr, int(steps_per_epoch.max()) * epochs)
    metrics = _validation_figures(datas, weights, bias, d)
    elapsed = (time.perf_counter() - started) / k
    updates = []
    for i, worker in enumerate(workers):
        params = np.concatenate([weights[i], bias[i : i + 1]])
        updates.append(
            ModelUpdate(
                model_id=context.model_id,
                node_id=worker.node_id,
                round_number=context.round_number,
                delta=params - w0,
                num_samples=int(sizes[i]),
                loss=float(epoch_loss[i]),
                metrics=metrics[i],
                duration_secs=elapsed,
            )
        )
    return updates


def _pad(
    parts: Sequence[tuple[npt.ArrayLike, npt.ArrayLike] | None], d: int
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Rows ``(X, y)`` of each node stacked and zero-padded to the longest, with the counts."""
    sizes = np.array([0 if part is None else len(part[1]) for part in parts], dtype=np.int64)  # type: ignore[arg-type]
    X = np.zeros((len(parts), int(sizes.max(initial=0)), d))  # noqa: N806
    y = np.zeros(X.shape[:2])
    for i, part in enumerate(parts):
        if part is not None:
            X[i, : sizes[i]] = part[0]
            y[i, : sizes[i]] = part[1]
    return X, y, sizes


_PADDED: dict[
    tuple[int, ...], tuple[FloatArray, FloatArray, npt.NDArray[np.int64], list[object]]
] = {}


def _padded(
    datas: Sequence[NodeData | None], d: int
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """The nodes' rows stacked and padded, kept for the next round of the same nodes.

    NodeData is immutable, so the same objects in the same order mean the same rows; the
    cache holds one entry (the last round's nodes) and keeps those objects alive so their
    ids stay theirs.
    """
    key = tuple(id(x) for x in datas)
    found = _PADDED.get(key)
    if found is not None:
        return found[0], found[1], found[2]
    X, y, sizes = _pad([(x.X, x.y) if x is not None else None for x in datas], d)  # noqa: N806
    _PADDED.clear()
    _PADDED[key] = (X, y, sizes, list(datas))
    return X, y, sizes


def _validation_figures(
    datas: Sequence[NodeData | None], weights: FloatArray, bias: FloatArray, d: int
) -> list[dict[str, float]]:
    """Each node's loss and accuracy on its own validation split, batched (as ``_evaluate``)."""
    splits = [
        (x.X_val, x.y_val)
        if x is not None and x.X_val is not None and x.y_val is not None
        else None
        for x in datas
    ]
    out: list[dict[str, float]] = [{} for _ in datas]
    if all(split is None for split in splits):
        return out
    X, y, counts = _pad(splits, d)  # noqa: N806
    valid = np.arange(X.shape[1])[None, :] < counts[:, None]
    z = np.einsum("kbd,kd->kb", X, weights) + bias[:, None]
    loss = ((np.logaddexp(0.0, z) - y * z) * valid).sum(axis=1)
    hits = (((z > 0.0).astype(np.float64) == y) & valid).sum(axis=1)
    for i in (int(j) for j in np.flatnonzero(counts)):
        out[i] = {
            "val_loss": float(loss[i] / counts[i]),
            "val_accuracy": float(hits[i] / counts[i]),
            "val_samples": float(counts[i]),
        }
    return out
