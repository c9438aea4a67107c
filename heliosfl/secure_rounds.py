"""The coordinator's side of a secure round: the four SecAgg+ stages around local training.

Stage 0 (advertise) and stage 1 (share keys) run before training, each under
``stage_timeout_secs``; stage 2 is the training itself (each node quantises and masks its
update on the node, under ``node_timeout_secs``); stage 3 (unmask) asks the survivors for
their shares. The coordinator holds a :class:`~heliosfl.secagg.protocol.SecAggServer`:
masked vectors and, at the end, their sum; never one node's update. A node that is
offline, fails or runs out of time at any stage is dropped; if fewer than the threshold
deliver masked inputs, or a secret cannot be rebuilt, the round raises
:class:`~heliosfl.errors.SecureAggregationError` and the model is unchanged.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from heliosfl.config import Config
from heliosfl.dispatch import RoundDispatch
from heliosfl.errors import ConfigError, NodeFailure, SecureAggregationError
from heliosfl.records import MaskedUpdate
from heliosfl.secagg.node import SecureSpec
from heliosfl.secagg.protocol import Advertisement, RoundSetup, SecAggServer
from heliosfl.secagg.quantize import Quantizer
from heliosfl.seeding import Stream, rng_for
from heliosfl.worker import FederatedWorker, TrainContext

if TYPE_CHECKING:
    from heliosfl.dp_rounds import PrivateRounds

__all__ = ["SecureOutcome", "SecureRounds"]

FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")

#: Distributed noise: coordinates are clipped this many per-node noise deviations beyond
#: the clip norm before quantisation (a clipped noise draw is rarer than 1e-9).
_NOISE_HEADROOM = 6.0


@dataclass(slots=True)
class SecureOutcome:
    """What a secure round produced.

    Attributes
    ----------
    values : ndarray
        Without differential privacy, the weighted mean delta of the survivors; with it,
        the sum of their clipped (and, for distributed noise, noised) deltas.
    weight_sum : int
        The survivors' total weight (their number under differential privacy).
    survivors : tuple of str
        Nodes whose masked input was summed.
    updates : list of MaskedUpdate
        Their masked updates (for per-node figures; the vectors are random to anyone).
    failures : dict of str to str
        Dropped nodes and why.
    timings : dict of str to float
        Seconds per stage: ``advertise``, ``share_keys``, ``training_and_masking``,
        ``masking`` (nodes' own masking time, summed), ``unmask``.
    """

    values: FloatArray
    weight_sum: int
    survivors: tuple[str, ...]
    updates: list[MaskedUpdate]
    failures: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)


class SecureRounds:
    """Secure aggregation for one model's rounds.

    Parameters
    ----------
    config : Config
        The run's configuration (``secure_aggregation.enabled``).
    model_id : str
        The model.
    """

    def __init__(self, config: Config, model_id: str) -> None:
        self.config = config
        self.secure = config.secure_aggregation
        self.model_id = model_id
        self.last_timings: dict[str, float] = {}

    def spec(
        self,
        setup: RoundSetup,
        sample_counts: Mapping[str, int],
        private: PrivateRounds | None,
    ) -> SecureSpec:
        """The round's public parameters, after checking that its sum cannot wrap.

        Raises
        ------
        ConfigError
            If the participants' weights and the quantisation could wrap the modulus, or
            the quantisation is too coarse for the differential-privacy clip norm.
        """
        secure = self.secure
        n = len(setup.participants)
        if private is None:
            max_weight = max([1, *(int(sample_counts.get(p, 1)) for p in setup.participants)])
            quantizer = Quantizer(
                secure.clipping_range, secure.quantization_bits, secure.modulus_bits
            )
            quantizer.check_capacity(n, max_weight, headroom=n * max_weight)
            return SecureSpec(setup=setup, quantizer=quantizer, max_weight=max_weight)
        plan = private.plan
        assert plan is not None  # noqa: S101 - checked before selection
        clip = float(private.privacy.clip_norm)
        noise_std = 0.0
        if secure.noise.value == "distributed":
            noise_std = plan.noise_multiplier * clip / math.sqrt(setup.min_survivors)
        quantizer = Quantizer(
            clip + _NOISE_HEADROOM * noise_std, secure.quantization_bits, secure.modulus_bits
        )
        quantizer.check_capacity(n, 1, headroom=n)
        dimension = setup.vector_length - 1
        if quantizer.step * math.sqrt(dimension) >= clip / 2:
            raise ConfigError(
                "secure_aggregation.quantization_bits",
                secure.quantization_bits,
                f"enough levels that rounding moves an update by less than half the clip norm "
                f"({clip:g}) in {dimension} dimensions",
                "Raise quantization_bits.",
            )
        return SecureSpec(
            setup=setup, quantizer=quantizer, max_weight=1, clip_norm=clip, noise_std=noise_std
        )

    async def _stage(
        self,
        name: str,
        nodes: Sequence[str],
        step: Callable[[str], T],
        failures: dict[str, str],
    ) -> dict[str, T]:
        """Run `step` for each node off the loop, within the stage timeout; collect failures."""
        results: dict[str, T] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def work() -> None:
            for node_id in nodes:
                if stop.is_set():
                    return
                try:
                    value = step(node_id)
                except NodeFailure as exc:
                    reason = exc.reason
                except SecureAggregationError as exc:
                    reason = f"secure aggregation ({name}): {exc.message}"
                else:
                    with lock:
                        results[node_id] = value
                    continue
                with lock:
                    failures[node_id] = reason

        pending = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            async with asyncio.timeout(self.secure.stage_timeout_secs):
                await asyncio.shield(pending)
        except TimeoutError:
            stop.set()
        except asyncio.CancelledError:
            stop.set()
            raise
        with lock:
            done = dict(results)
            for node_id in nodes:
                if node_id not in done and node_id not in failures:
                    failures[node_id] = f"timeout in secure aggregation stage {name!r}"
        return done

    async def run(
        self,
        *,
        selected: Sequence[str],
        workers: Mapping[str, FederatedWorker],
        context: TrainContext,
        dispatch: RoundDispatch,
        sample_counts: Mapping[str, int],
        private: PrivateRounds | None,
    ) -> SecureOutcome:
        """Run one secure round over `selected` (see the module docstring).

        Raises
        ------
        SecureAggregationError
            Too few nodes at some stage, or a secret could not be rebuilt; nothing of the
            round is used.
        ConfigError
            If the sum could wrap the modulus (before anyone trains).
        """
        timings: dict[str, float] = {}
        started = time.perf_counter()
        rng = rng_for(
            self.config.seed,
            Stream.SECAGG,
            self.model_id,
            context.round_number,
            attempt=context.attempt,
        )
        setup = RoundSetup.create(
            selected,
            self.secure,
            round_number=context.round_number,
            vector_length=context.params.size + 1,
            rng=rng,
        )
        spec = self.spec(setup, sample_counts, private)
        server = SecAggServer(setup)
        failures: dict[str, str] = {}
        model_id, number = self.model_id, context.round_number

        def node(node_id: str) -> FederatedWorker:
            worker = workers.get(node_id)
            if worker is None:
                raise NodeFailure(node_id, "no worker for this node")
            return worker

        try:
            adverts: dict[str, Advertisement] = await self._stage(
                "advertise",
                setup.participants,
                lambda n: node(n).secure.advertise(model_id, setup),
                failures,
            )
            rosters = server.collect_keys(adverts)
            timings["advertise"] = time.perf_counter() - started
            mark = time.perf_counter()
            outgoing = await self._stage(
                "share_keys",
                sorted(rosters),
                lambda n: node(n).secure.share(model_id, number, rosters[n]),
                failures,
            )
            inbox = server.route_shares(outgoing)
            received = await self._stage(
                "share_keys",
                sorted(inbox),
                lambda n: node(n).secure.receive(model_id, number, inbox[n]),
                failures,
            )
            timings["share_keys"] = time.perf_counter() - mark
            mark = time.perf_counter()
            trainers = sorted(received)
            outcomes = await dispatch.run(trainers, workers, replace(context, secure=spec))
            updates: list[MaskedUpdate] = []
            for node_id, outcome in outcomes.items():
                if isinstance(outcome, MaskedUpdate):
                    server.accept_masked(node_id, outcome.masked)
                    updates.append(outcome)
                elif not isinstance(outcome, str):  # never: a secure context masks
                    raise SecureAggregationError("A node returned an unmasked update.")
                else:
                    failures[node_id] = outcome
            timings["training_and_masking"] = time.perf_counter() - mark
            timings["masking"] = sum(u.masking_secs for u in updates)
            mark = time.perf_counter()
            survivors, dropped = server.begin_unmask()
            answers = await self._stage(
                "unmask",
                sorted(survivors),
                lambda n: node(n).secure.unmask(model_id, number, survivors, dropped),
                {},
            )
            for node_id, revealed in sorted(answers.items()):
                server.accept_unmask(node_id, revealed)
            total = await asyncio.to_thread(server.finish)
            timings["unmask"] = time.perf_counter() - mark
        finally:
            for node_id in setup.participants:
                worker = workers.get(node_id)
                if worker is not None and worker.online:
                    worker.secure.forget(model_id, number)
        self.last_timings = timings
        weight_sum = int(total[-1])
        quantizer = spec.quantizer
        if private is None:
            values = quantizer.decode_mean(total[:-1], weight_sum)
        else:
            values = quantizer.decode_sum(total[:-1], weight_sum)
        return SecureOutcome(
            values=values,
            weight_sum=weight_sum,
            survivors=tuple(sorted(survivors)),
            updates=sorted(updates, key=lambda u: u.node_id),
            failures=failures,
            timings=timings,
        )
