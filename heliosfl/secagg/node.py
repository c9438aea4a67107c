"""A node's side of secure aggregation: its protocol clients and how it protects its update.

A :class:`SecureNode` belongs to one simulated node. It keeps the node's
:class:`~heliosfl.secagg.protocol.SecAggClient` of each running round (its secrets never
leave it in clear) and turns the node's parameter delta into a masked ring vector
(:meth:`SecureNode.protect`): with differential privacy, clipped to the clip norm (and, for
distributed noise, noised) first; then quantised with stochastic rounding, weighted,
extended by one coordinate holding the weight, and masked.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heliosfl.errors import SecureAggregationError
from heliosfl.secagg.protocol import Advertisement, RoundSetup, SecAggClient
from heliosfl.secagg.quantize import Quantizer

__all__ = ["SecureNode", "SecureSpec"]

FloatArray = npt.NDArray[np.float64]
RingVector = npt.NDArray[np.uint64]


@dataclass(frozen=True, slots=True)
class SecureSpec:
    """The public parameters of a secure round, sent to nodes with the global model.

    Attributes
    ----------
    setup : RoundSetup
        Participants, graph, thresholds, ring.
    quantizer : Quantizer
        Clipping range, levels, modulus.
    max_weight : int
        Weights (sample counts) are capped here, as the set-up's wrap check assumed.
    clip_norm : float or None
        With differential privacy: every delta is clipped to this L2 norm *after*
        quantisation (the clip is tightened by the worst rounding, ``step * sqrt(d)``),
        and weights are 1.
    noise_std : float
        Distributed noise: the standard deviation each node adds per coordinate before
        quantisation (0 without).
    """

    setup: RoundSetup
    quantizer: Quantizer
    max_weight: int
    clip_norm: float | None = None
    noise_std: float = 0.0

    @property
    def dimension(self) -> int:
        """Parameters per update (the ring vector has one more coordinate: the weight)."""
        return self.setup.vector_length - 1


class SecureNode:
    """The secure-aggregation state of one node, across rounds and models.

    Parameters
    ----------
    node_id : str
        The node.
    """

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._clients: dict[tuple[str, int], SecAggClient] = {}

    def _client(self, model_id: str, round_number: int) -> SecAggClient:
        client = self._clients.get((model_id, round_number))
        if client is None:
            raise SecureAggregationError("The node has no secure session for this round.")
        return client

    def advertise(self, model_id: str, setup: RoundSetup) -> Advertisement:
        """Stage 0: start this round's client (forgetting older rounds of the model)."""
        for key in [k for k in self._clients if k[0] == model_id]:
            del self._clients[key]
        client = SecAggClient(self.node_id, setup)
        self._clients[(model_id, setup.round_number)] = client
        return client.advertisement

    def share(
        self, model_id: str, round_number: int, roster: Mapping[str, Advertisement]
    ) -> dict[str, bytes]:
        """Stage 1: encrypted shares for the neighbours."""
        return self._client(model_id, round_number).share_keys(roster)

    def receive(self, model_id: str, round_number: int, inbox: Mapping[str, bytes]) -> None:
        """Stage 1: the neighbours' shares for this node."""
        self._client(model_id, round_number).receive_shares(inbox)

    def protect(
        self,
        model_id: str,
        spec: SecureSpec,
        delta: FloatArray,
        num_samples: int,
        rng: np.random.Generator,
        noise_rng: np.random.Generator | None = None,
    ) -> tuple[RingVector, int]:
        """Stage 2: the masked ring vector of `delta`, and the weight folded into it.

        Parameters
        ----------
        model_id : str
            The model.
        spec : SecureSpec
            The round's public parameters.
        delta : ndarray
            The node's parameter delta (it never leaves this method unmasked).
        num_samples : int
            Rows trained on: the FedAvg weight (capped at ``spec.max_weight``; 1 under
            differential privacy).
        rng : numpy.random.Generator
            Stochastic rounding.
        noise_rng : numpy.random.Generator or None
            Distributed noise (required when ``spec.noise_std > 0``).
        """
        client = self._client(model_id, spec.setup.round_number)
        quantizer = spec.quantizer
        values = np.asarray(delta, dtype=np.float64)
        weight = max(1, min(int(num_samples), spec.max_weight))
        if spec.clip_norm is not None:
            weight = 1
            room = spec.clip_norm - quantizer.step * math.sqrt(values.size)
            if room <= 0:
                raise SecureAggregationError(
                    "The quantisation is too coarse for the clip norm: rounding alone could "
                    "exceed it. Raise quantization_bits."
                )
            norm = float(np.linalg.norm(values))
            if norm > room:
                values = values * (room / norm)
            if spec.noise_std > 0:
                if noise_rng is None:
                    raise SecureAggregationError("Distributed noise needs its own generator.")
                values = values + noise_rng.normal(0.0, spec.noise_std, values.size)
        encoded = quantizer.encode(values, rng, weight=weight)
        vector = np.empty(spec.setup.vector_length, dtype=np.uint64)
        vector[:-1] = encoded
        vector[-1] = np.uint64(weight)
        return client.masked_input(vector), weight

    def unmask(
        self,
        model_id: str,
        round_number: int,
        survivors: Collection[str],
        dropped: Collection[str],
    ) -> dict[str, bytes]:
        """Stage 3: this node's shares for the unmasking; the round's client is then dropped."""
        try:
            return self._client(model_id, round_number).unmask(survivors, dropped)
        finally:
            self._clients.pop((model_id, round_number), None)

    def forget(self, model_id: str, round_number: int) -> None:
        """Drop a round's client (its secrets) without unmasking."""
        self._clients.pop((model_id, round_number), None)
