"""Settings of secure aggregation (``Config.secure_aggregation``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from heliosfl.errors import ConfigError
from heliosfl.validation import check_float, check_int, known_fields

__all__ = ["NoisePlacement", "SecureAggregationConfig"]


class NoisePlacement(StrEnum):
    """Where differential-privacy noise is added when secure aggregation is on."""

    CENTRAL = "central"
    DISTRIBUTED = "distributed"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecureAggregationConfig:
    """Secure aggregation (SecAgg+): the coordinator learns only the sum of the updates.

    The defaults suit 100 to 1,000 nodes: each node shares its secrets with
    ``default_neighbours(n)`` random neighbours (20 for 100 nodes, 30 for 1,000: cost grows
    as n log n), and a round needs 60% of its nodes to deliver a masked update (and more
    than the share threshold) and 60% of each node's neighbours to answer the unmasking:
    up to about 40% may drop, unless dropouts cluster in one neighbourhood, which fails
    the round (the model is then unchanged).

    Parameters
    ----------
    enabled : bool
        Run every round under secure aggregation.
    threshold : float
        In (0.5, 1]: the fraction of a round's nodes that must deliver masked inputs, and
        of each neighbourhood needed to reconstruct a secret (Shamir threshold). Above one
        half, so the coordinator can never gather both kinds of share of one node.
    neighbours : int or None
        Neighbours per node (even, >= 2); ``None``: ``default_neighbours(n)``.
    full_graph : bool
        Every node is every other node's neighbour (Bonawitz et al. 2017; cost n^2).
    clipping_range : float
        Each coordinate of an update is clipped to ``[-clipping_range, clipping_range]``
        before quantisation (with differential privacy: the clip norm is used instead).
    quantization_bits : int
        Levels per coordinate: ``2**quantization_bits - 1`` (1 to 32).
    modulus_bits : int
        The ring is the integers modulo ``2**modulus_bits`` (up to 64); a round whose sum
        could wrap it is refused at set-up.
    stage_timeout_secs : float
        How long each key stage and the unmasking wait for nodes (> 0); the masked-input
        stage is the training itself, under ``node_timeout_secs``.
    noise : NoisePlacement
        With differential privacy: ``"central"`` (the coordinator adds the noise to the
        unmasked sum) or ``"distributed"`` (each node adds its share, calibrated so the
        minimum number of survivors together add the full noise).
    """

    enabled: bool = False
    threshold: float = 0.6
    neighbours: int | None = None
    full_graph: bool = False
    clipping_range: float = 1.0
    quantization_bits: int = 16
    modulus_bits: int = 64
    stage_timeout_secs: float = 10.0
    noise: NoisePlacement = NoisePlacement.CENTRAL

    def __post_init__(self) -> None:
        for name in ("enabled", "full_graph"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"secure_aggregation.{name}", getattr(self, name), "True or False"
                )
        threshold = check_float("secure_aggregation.threshold", self.threshold, low=0.5, high=1.0)
        object.__setattr__(self, "threshold", threshold)
        if self.neighbours is not None:
            k = check_int("secure_aggregation.neighbours", self.neighbours, low=2)
            if k % 2:
                raise ConfigError(
                    "secure_aggregation.neighbours", k, "an even int >= 2 (a k-regular graph)"
                )
            object.__setattr__(self, "neighbours", k)
        clip = check_float("secure_aggregation.clipping_range", self.clipping_range, low=0.0)
        object.__setattr__(self, "clipping_range", clip)
        bits = check_int(
            "secure_aggregation.quantization_bits", self.quantization_bits, low=1, high=32
        )
        object.__setattr__(self, "quantization_bits", bits)
        modulus = check_int("secure_aggregation.modulus_bits", self.modulus_bits, low=2, high=64)
        if modulus <= bits:
            raise ConfigError(
                "secure_aggregation.modulus_bits",
                modulus,
                f"more than quantization_bits={bits} (room for the sum of many updates)",
            )
        object.__setattr__(self, "modulus_bits", modulus)
        timeout = check_float(
            "secure_aggregation.stage_timeout_secs", self.stage_timeout_secs, low=0.0
        )
        object.__setattr__(self, "stage_timeout_secs", timeout)
        try:
            object.__setattr__(self, "noise", NoisePlacement(self.noise))
        except ValueError:
            raise ConfigError(
                "secure_aggregation.noise", self.noise, "'central' or 'distributed'"
            ) from None

    def minimum_survivors(self, participants: int) -> int:
        """Masked inputs a round of `participants` nodes needs."""
        return max(1, math.ceil(self.threshold * participants - 1e-9))  # exact ceiling

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (:meth:`from_dict` inverts it)."""
        return {
            "enabled": self.enabled,
            "threshold": self.threshold,
            "neighbours": self.neighbours,
            "full_graph": self.full_graph,
            "clipping_range": self.clipping_range,
            "quantization_bits": self.quantization_bits,
            "modulus_bits": self.modulus_bits,
            "stage_timeout_secs": self.stage_timeout_secs,
            "noise": self.noise.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SecureAggregationConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are refused."""
        return cls(**known_fields(cls, data, "secure_aggregation"))
