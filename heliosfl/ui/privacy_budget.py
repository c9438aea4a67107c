"""PrivacyBudgetWidget: choose (epsilon, delta) and see what it costs in noise and rounds."""

from __future__ import annotations

import html
import io
import itertools
import math
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

from heliosfl.config import DifferentialPrivacyConfig, NoiseMechanism
from heliosfl.errors import FederatedLearningError
from heliosfl.ui._live import Throttle

__all__ = ["BENCHMARK_ACCURACY", "PrivacyBudgetWidget"]

#: Test accuracy by epsilon from ``benchmarks/privacy_utility.py`` (breast cancer, 100
#: nodes, Dirichlet(0.5), logistic regression, 30 rounds, all nodes; median of 3 seeds).
BENCHMARK_ACCURACY = {0.5: 0.814, 1.0: 0.903, 2.0: 0.956, 4.0: 0.982, 8.0: 0.991}
BENCHMARK_NON_PRIVATE = 0.982


def expected_accuracy(epsilon: float) -> float | None:
    """Benchmark accuracy at `epsilon` (log-linear between measured points), or None outside."""
    points = sorted(BENCHMARK_ACCURACY.items())
    if not points[0][0] <= epsilon <= points[-1][0]:
        return None
    for (e0, a0), (e1, a1) in itertools.pairwise(points):
        if e0 <= epsilon <= e1:
            t = (math.log(epsilon) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return a0 + t * (a1 - a0)
    return points[-1][1]


class PrivacyBudgetWidget(widgets.VBox):
    """Controls for a privacy budget, and what it implies, computed with dp-accounting.

    Shows the noise multiplier calibrated so that `rounds` rounds fit the budget, the
    epsilon spent against rounds (a curve), how many rounds the budget affords at that
    noise, and, where the benchmark measured it, the accuracy to expect. Invalid values
    are refused with the engine's own message. :attr:`config` is the resulting
    :class:`DifferentialPrivacyConfig`.
    """

    def __init__(
        self,
        *,
        epsilon: float = 4.0,
        delta: float = 1e-5,
        rounds: int = 30,
        nodes: int = 100,
        sample_size: int | None = None,
    ) -> None:
        style = {"description_width": "110px"}
        # Unbounded boxes: the engine's own validation refuses bad values, with its message.
        self.epsilon = widgets.FloatText(
            value=epsilon, step=0.5, description="epsilon", style=style
        )
        self.delta = widgets.FloatText(value=delta, step=1e-6, description="delta", style=style)
        self.mechanism = widgets.Dropdown(
            options=[m.value for m in NoiseMechanism],
            value="gaussian",
            description="mechanism",
            style=style,
        )
        self.rounds = widgets.BoundedIntText(
            value=rounds, min=1, max=10_000, description="rounds", style=style
        )
        self.nodes = widgets.BoundedIntText(
            value=nodes, min=1, max=100_000, description="nodes", style=style
        )
        self.sample_size = widgets.BoundedIntText(
            value=sample_size or nodes,
            min=1,
            max=100_000,
            description="nodes per round",
            style=style,
        )
        self.result = widgets.HTML()
        self.error = widgets.HTML()
        self.curve = widgets.Image(format="png", layout=widgets.Layout(width="420px"))
        controls = widgets.VBox(
            [self.epsilon, self.delta, self.mechanism, self.rounds, self.nodes, self.sample_size]
        )
        super().__init__([widgets.HBox([controls, self.curve]), self.result, self.error])
        self.add_class("heliosfl-privacy-budget")
        self.noise_multiplier: float | None = None
        self.affordable: int | None = None
        self.expected: float | None = None
        self.config: DifferentialPrivacyConfig | None = None
        self._throttle = Throttle(self.recompute, interval_secs=0.25)
        for control in controls.children:
            control.observe(lambda _change: self._throttle.poke(), names="value")
        self.recompute()

    def _sampling(self) -> dict[str, Any]:
        nodes, k = int(self.nodes.value), min(int(self.sample_size.value), int(self.nodes.value))
        if k >= nodes:
            return {"sampling_rate": 1.0}
        return {"sampling_rate": k / nodes, "sampling": "without_replacement", "population": nodes}

    def recompute(self) -> None:
        """Recalibrate from the controls (done automatically when a value changes)."""
        from heliosfl import privacy  # dp-accounting loads on first use

        try:
            config = DifferentialPrivacyConfig(
                epsilon=float(self.epsilon.value),
                delta=float(self.delta.value),
                mechanism=NoiseMechanism(self.mechanism.value),
            )
            epsilon, delta, rounds = config.epsilon, config.delta, int(self.rounds.value)
            mechanism = config.mechanism.value
            sampling = self._sampling()
            z = privacy.calibrate_noise(
                epsilon=epsilon, delta=delta, rounds=rounds, mechanism=mechanism, **sampling
            )
            affordable = privacy.rounds_affordable(
                noise_multiplier=z, epsilon=epsilon, delta=delta, mechanism=mechanism, **sampling
            )
            marks = sorted({max(1, round(rounds * f)) for f in (0.1, 0.25, 0.5, 0.75, 1.0, 1.5)})
            curve = privacy.epsilon_curve(z, marks, delta, mechanism=mechanism, **sampling)
        except FederatedLearningError as exc:
            self.config = None
            self.error.value = f"<div class='heliosfl-error'>{html.escape(str(exc))}</div>"
            return
        self.config, self.noise_multiplier, self.affordable = config, z, affordable
        self.expected = expected_accuracy(epsilon) if sampling["sampling_rate"] == 1.0 else None
        cost = (
            ""
            if self.expected is None
            else f"<br>On the breast-cancer benchmark (100 nodes, 30 rounds) epsilon {epsilon:g} "
            f"gave accuracy about {self.expected:.3f} (without privacy {BENCHMARK_NON_PRIVATE})."
        )
        with self.hold_sync():
            self.error.value = ""
            self.result.value = (
                f"<div class='heliosfl-privacy-result'>Noise multiplier <b>{z:.3f}</b> "
                f"(noise standard deviation {z:.3f} x the clip norm on the sum) lets "
                f"{rounds} rounds spend at most epsilon {epsilon:g} at delta {delta:g}; this "
                f"budget affords <b>{affordable}</b> rounds at that noise.{cost}</div>"
            )
            self.curve.value = _plot(marks, curve, epsilon)

    def close(self) -> None:
        """Close the widget and its pending recalculation."""
        self._throttle.cancel()
        super().close()


def _plot(rounds: list[int], epsilons: list[float], budget: float) -> bytes:
    fig = Figure(figsize=(4.6, 2.6), dpi=90)
    fig.patch.set_alpha(0.0)
    axes = fig.subplots()
    axes.set_facecolor("none")
    axes.plot(rounds, epsilons, marker=".", color="#d62728")
    axes.axhline(budget, color="#7f7f7f", linestyle="--", linewidth=1)
    axes.set_xlabel("rounds", color="#7f7f7f")
    axes.set_ylabel("epsilon spent", color="#7f7f7f")
    axes.tick_params(colors="#7f7f7f")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", transparent=True)
    return buffer.getvalue()
