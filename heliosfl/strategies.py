"""Aggregation strategies: how the coordinator turns client updates into new parameters.

Each strategy is a small frozen dataclass with one pure method,
:meth:`Strategy.aggregate`, a function of the global parameters, the client deltas, their
weights and the strategy's state (e.g. FedAdam's moments). No asyncio, no I/O: the
coordinator calls it off the event loop and checkpoints the returned state with the
parameters, so a resumed run continues exactly.

=============  ==========================================================================
FedAvg         sample-weighted mean of the deltas (McMahan et al. 2017)
FedProx        FedAvg's aggregation; clients add ``mu/2 ||w - w_global||^2`` locally
               (Li et al. 2020)
FedOpt         the weighted mean delta as a pseudo-gradient for a server optimiser:
               Adam, Yogi or Adagrad (Reddi et al. 2021)
=============  ==========================================================================

The Byzantine-robust rules (coordinate-wise median, trimmed mean, Krum) live in
:mod:`heliosfl.robust` and are selectable by name like these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from heliosfl.errors import ConfigError
from heliosfl.validation import check_float

__all__ = [
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedOpt",
    "FedProx",
    "FedYogi",
    "Strategy",
    "strategy_from_dict",
    "strategy_from_name",
    "weighted_mean",
]

FloatArray = npt.NDArray[np.float64]
StrategyState = dict[str, FloatArray]


def weighted_mean(deltas: Sequence[FloatArray], weights: Sequence[float]) -> FloatArray:
    """Return ``sum_i w_i * delta_i / sum_i w_i``, accumulated one delta at a time.

    Parameters
    ----------
    deltas : sequence of ndarray
        Client updates, all of one shape.
    weights : sequence of float
        Non-negative weights with a positive sum.

    Returns
    -------
    ndarray
        The weighted mean (float64).

    Raises
    ------
    ConfigError
        If there are no deltas, the shapes differ, or the weights are negative, non-finite
        or sum to zero.
    """
    if len(deltas) == 0:
        raise ConfigError("updates", [], "a non-empty list of updates")
    if len(weights) != len(deltas):
        raise ConfigError("weights", len(weights), f"one weight per update ({len(deltas)})")
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError("weights", w.tolist(), "finite, non-negative numbers with a positive sum")
    shape = np.shape(deltas[0])
    acc = np.zeros(shape, dtype=np.float64)
    scaled = np.empty(shape, dtype=np.float64)
    for delta, weight in zip(deltas, w, strict=True):
        if np.shape(delta) != shape:
            raise ConfigError("update shape", np.shape(delta), f"{shape}, like the first update")
        np.multiply(delta, weight, out=scaled)
        acc += scaled
    acc /= w.sum()
    return acc


class Strategy(ABC):
    """Base class of aggregation strategies.

    Subclasses are frozen dataclasses; ``name`` identifies them in configs and JSON.
    """

    name: ClassVar[str]

    @property
    def prox_mu(self) -> float:
        """Coefficient of the proximal term clients add to their local objective (0: none)."""
        return 0.0

    @abstractmethod
    def aggregate(
        self,
        params: FloatArray,
        deltas: Sequence[FloatArray],
        weights: Sequence[float],
        state: Mapping[str, FloatArray],
    ) -> tuple[FloatArray, StrategyState]:
        """Combine client deltas into new global parameters.

        Parameters
        ----------
        params : ndarray
            Current global parameters (not modified).
        deltas : sequence of ndarray
            ``local_params - params`` of each successful client, in node-id order.
        weights : sequence of float
            One weight per delta (the sample counts for FedAvg).
        state : mapping of str to ndarray
            The strategy state returned by the previous call (empty at first).

        Returns
        -------
        tuple of (ndarray, dict)
            The new parameters and the new state.
        """

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict naming the strategy and its settings."""
        data: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        return {"name": self.name, **data}


@dataclass(frozen=True, slots=True)
class FedAvg(Strategy):
    """Federated averaging: the sample-weighted mean of the client deltas.

    ``w_new = w + sum_k n_k (w_k - w) / sum_k n_k``.

    References
    ----------
    McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of
    Deep Networks from Decentralized Data", AISTATS 2017.
    """

    name: ClassVar[str] = "fedavg"

    def aggregate(
        self,
        params: FloatArray,
        deltas: Sequence[FloatArray],
        weights: Sequence[float],
        state: Mapping[str, FloatArray],
    ) -> tuple[FloatArray, StrategyState]:
        """Return ``params`` plus the weighted mean delta; the state stays empty."""
        return params + weighted_mean(deltas, weights), {}


@dataclass(frozen=True, slots=True)
class FedProx(Strategy):
    """FedProx: FedAvg's aggregation with a proximal term in each client's objective.

    Clients minimise ``f_k(w) + (mu / 2) * ||w - w_global||^2`` (the worker adds
    ``mu * (w - w_global)`` to every gradient step), which limits client drift on
    heterogeneous data.

    Parameters
    ----------
    mu : float
        Proximal coefficient, a finite number >= 0 (0 is FedAvg); stored as ``float``.

    References
    ----------
    Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith, "Federated Optimization in Heterogeneous
    Networks", MLSys 2020.
    """

    name: ClassVar[str] = "fedprox"
    mu: float = 0.01

    def __post_init__(self) -> None:
        mu = check_float("FedProx.mu", self.mu, low=0.0, low_open=False)
        object.__setattr__(self, "mu", mu)

    @property
    def prox_mu(self) -> float:
        """The proximal coefficient ``mu``."""
        return float(self.mu)

    def aggregate(
        self,
        params: FloatArray,
        deltas: Sequence[FloatArray],
        weights: Sequence[float],
        state: Mapping[str, FloatArray],
    ) -> tuple[FloatArray, StrategyState]:
        """Return ``params`` plus the weighted mean delta, as FedAvg."""
        return params + weighted_mean(deltas, weights), {}


_OPTIMIZERS = ("adam", "yogi", "adagrad")


@dataclass(frozen=True, slots=True)
class FedOpt(Strategy):
    """Adaptive server optimisation: FedAdam, FedYogi or FedAdagrad.

    With ``d`` the weighted mean client delta (a pseudo-gradient pointing downhill)::

        m = beta1 * m + (1 - beta1) * d
        v = v + d**2                                   (adagrad)
        v = beta2 * v + (1 - beta2) * d**2             (adam)
        v = v - (1 - beta2) * d**2 * sign(v - d**2)    (yogi)
        w = w + server_learning_rate * m / (sqrt(v) + tau)

    with ``m`` starting at 0 and ``v`` at ``tau**2`` (Algorithm 2 of the paper).

    Parameters
    ----------
    optimizer : {"adam", "yogi", "adagrad"}
        The server optimiser (any case; stored lowercase).
    server_learning_rate : float
        Server step size ``eta`` (> 0).
    beta1, beta2 : float
        Moment decay rates in [0, 1).
    tau : float
        Adaptivity (> 0): larger values make the step less adaptive.

    Numbers may be any finite real (numpy scalars included); they are stored as ``float``.

    References
    ----------
    Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
    Optimization", ICLR 2021.
    """

    name: ClassVar[str] = "fedopt"
    optimizer: Literal["adam", "yogi", "adagrad"] = "adam"
    server_learning_rate: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3

    def __post_init__(self) -> None:
        optimizer = self.optimizer.lower() if isinstance(self.optimizer, str) else None
        if optimizer not in _OPTIMIZERS:
            raise ConfigError(
                "FedOpt.optimizer", self.optimizer, "one of 'adam', 'yogi', 'adagrad'"
            )
        object.__setattr__(self, "optimizer", optimizer)
        for name in ("server_learning_rate", "tau"):
            value = check_float(f"FedOpt.{name}", getattr(self, name), low=0.0)
            object.__setattr__(self, name, value)
        for name in ("beta1", "beta2"):
            value = check_float(
                f"FedOpt.{name}",
                getattr(self, name),
                low=0.0,
                high=1.0,
                low_open=False,
                high_open=True,
            )
            object.__setattr__(self, name, value)

    @classmethod
    def adam(cls, **settings: float) -> FedOpt:
        """FedAdam with the given settings."""
        return cls(optimizer="adam", **settings)

    @classmethod
    def yogi(cls, **settings: float) -> FedOpt:
        """FedYogi with the given settings."""
        return cls(optimizer="yogi", **settings)

    @classmethod
    def adagrad(cls, **settings: float) -> FedOpt:
        """FedAdagrad with the given settings."""
        return cls(optimizer="adagrad", **settings)

    def aggregate(
        self,
        params: FloatArray,
        deltas: Sequence[FloatArray],
        weights: Sequence[float],
        state: Mapping[str, FloatArray],
    ) -> tuple[FloatArray, StrategyState]:
        """Take one server-optimiser step along the weighted mean delta."""
        d = weighted_mean(deltas, weights)
        m = state.get("m")
        v = state.get("v")
        if m is None or v is None or m.shape != d.shape or v.shape != d.shape:
            m = np.zeros_like(d)
            v = np.full_like(d, self.tau**2)
        m = self.beta1 * m + (1.0 - self.beta1) * d
        d2 = d * d
        if self.optimizer == "adagrad":
            v = v + d2
        elif self.optimizer == "adam":
            v = self.beta2 * v + (1.0 - self.beta2) * d2
        else:
            v = v - (1.0 - self.beta2) * d2 * np.sign(v - d2)
        new = params + self.server_learning_rate * m / (np.sqrt(v) + self.tau)
        return new, {"m": m, "v": v}


def FedAdam(**settings: float) -> FedOpt:  # noqa: N802 - the paper's spelling
    """Return :class:`FedOpt` with the Adam server optimiser."""
    return FedOpt(optimizer="adam", **settings)


def FedYogi(**settings: float) -> FedOpt:  # noqa: N802 - the paper's spelling
    """Return :class:`FedOpt` with the Yogi server optimiser."""
    return FedOpt(optimizer="yogi", **settings)


def FedAdagrad(**settings: float) -> FedOpt:  # noqa: N802 - the paper's spelling
    """Return :class:`FedOpt` with the Adagrad server optimiser."""
    return FedOpt(optimizer="adagrad", **settings)


_BY_NAME: dict[str, type[Strategy]] = {"fedavg": FedAvg, "fedprox": FedProx, "fedopt": FedOpt}


def _registry() -> dict[str, type[Strategy]]:
    """Every strategy class by name: ``_BY_NAME`` plus the robust rules.

    :mod:`heliosfl.robust` imports this module, so its rules are imported here, on first
    use, rather than at the top (which would be a circular import).
    """
    from heliosfl.robust import CoordinateMedian, Krum, TrimmedMean

    return {**_BY_NAME, "median": CoordinateMedian, "trimmed_mean": TrimmedMean, "krum": Krum}


def _allowed_names() -> str:
    return "one of " + ", ".join(repr(name) for name in _registry())


def strategy_from_name(name: str) -> Strategy:
    """Return the strategy called ``name`` with its default settings.

    Raises
    ------
    ConfigError
        If ``name`` is not one of ``fedavg``, ``fedprox``, ``fedopt``, ``median``,
        ``trimmed_mean``, ``krum``.
    """
    cls = _registry().get(str(name).lower())
    if cls is None:
        raise ConfigError("aggregation_strategy", name, _allowed_names())
    return cls()


def strategy_from_dict(data: Mapping[str, Any]) -> Strategy:
    """Rebuild a strategy from :meth:`Strategy.to_dict` output.

    Raises
    ------
    ConfigError
        If the name is unknown or a setting is not one of the strategy's.
    """
    values = dict(data)
    name = values.pop("name", None)
    cls = _registry().get(str(name).lower())
    if cls is None:
        raise ConfigError("aggregation_strategy.name", name, _allowed_names())
    try:
        return cls(**values)
    except TypeError:
        raise ConfigError(
            f"aggregation_strategy ({name}) settings",
            sorted(map(str, values)),
            f"the fields of {cls.__name__}",
        ) from None
