"""Search for the boundary of a monotone privacy constraint (no accounting in here).

Calibration and round budgeting both look for the point where ``epsilon(x)`` crosses a
target, with each evaluation costing a full dp-accounting computation (tens of
milliseconds for sampled events). Both work on ``x = log(parameter)`` and on the *gap*
``log(epsilon) - log(target)``, which is close to linear in ``x``, so a safeguarded
regula falsi (the Illinois variant, falling back to bisection) needs a handful of
evaluations where plain bisection needs twenty. Only a point whose gap was computed and
found ``<= 0`` is ever returned as feasible: the search never trusts an interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["Point", "bracket", "gap", "refine"]

#: ``(x, gap(x))``.
Point = tuple[float, float]

_BISECT_AFTER = 40
_MAX_EVALUATIONS = 200


def gap(epsilon: float, target: float) -> float:
    """``log(epsilon) - log(target)``; ``<= 0`` means feasible. NaN counts as infeasible."""
    if math.isnan(epsilon):
        return math.inf
    if epsilon <= 0.0:
        return -math.inf
    return math.log(epsilon) - math.log(target)


def bracket(
    gap_at: Callable[[float], float],
    x0: float,
    *,
    x_min: float,
    x_max: float,
) -> tuple[Point | None, Point | None]:
    """An infeasible and a feasible point when feasibility grows with ``x``.

    Steps are Newton steps on the secant slope (``-1`` to start: epsilon roughly inversely
    proportional to the noise multiplier), clamped to a factor between 2 and 64 in the
    parameter, and stop at ``x_min`` / ``x_max``.

    Returns
    -------
    tuple of (Point or None, Point or None)
        ``(infeasible, feasible)``; ``infeasible`` is None when ``x_min`` is already
        feasible, ``feasible`` is None when even ``x_max`` is not.
    """
    x, g = x0, gap_at(x0)
    previous: Point | None = None
    while True:
        slope = -1.0
        if previous is not None and math.isfinite(g) and math.isfinite(previous[1]):
            secant = (g - previous[1]) / (x - previous[0])
            slope = secant if secant < 0.0 else slope
        step = abs(g / slope) if math.isfinite(g) else math.inf
        step = min(max(step, math.log(2.0)), math.log(64.0))
        nx = min(x + step, x_max) if g > 0.0 else max(x - step, x_min)
        if nx == x:
            return ((x, g), None) if g > 0.0 else (None, (x, g))
        ng = gap_at(nx)
        if (ng <= 0.0) != (g <= 0.0):
            return ((x, g), (nx, ng)) if g > 0.0 else ((nx, ng), (x, g))
        previous, x, g = (x, g), nx, ng


def refine(
    gap_at: Callable[[float], float],
    infeasible: Point,
    feasible: Point,
    *,
    close: Callable[[float, float], bool],
    nudge: float = 0.0,
    snap: Callable[[float, float, float], float] | None = None,
) -> Point:
    """Shrink the bracket ``(infeasible, feasible)`` until ``close`` holds; return the feasible end.

    Parameters
    ----------
    gap_at : callable
        The gap at ``x``; monotone, with the sign change inside the bracket.
    infeasible, feasible : Point
        Bracket ends, on either side of each other.
    close : callable
        ``close(x_infeasible, x_feasible)`` ends the search.
    nudge : float
        Shift of each trial point toward the end that did not move last, so an accurate
        interpolation closes the bracket from both sides instead of creeping up on one.
    snap : callable, optional
        ``snap(x, x_infeasible, x_feasible)`` maps a trial point onto the grid (integer
        parameters); it must return a point strictly inside the bracket.

    Returns
    -------
    Point
        The feasible end, ``gap <= 0``.
    """
    bad, good = infeasible, feasible
    weight_bad, weight_good = bad[1], good[1]
    last_moved = ""
    for evaluation in range(_MAX_EVALUATIONS):
        if close(bad[0], good[0]):
            return good
        t = 0.5
        finite = math.isfinite(weight_bad) and math.isfinite(weight_good)
        if evaluation < _BISECT_AFTER and finite and weight_bad > weight_good:
            t = weight_bad / (weight_bad - weight_good)
        x = bad[0] + t * (good[0] - bad[0])
        toward = good[0] if last_moved == "bad" else bad[0]
        if last_moved:
            x += math.copysign(nudge, toward - x)
        low, high = sorted((bad[0], good[0]))
        margin = (high - low) / 64.0
        x = min(max(x, low + margin), high - margin)
        if snap is not None:
            x = snap(x, bad[0], good[0])
        g = gap_at(x)
        if g <= 0.0:
            good, weight_good = (x, g), g
            weight_bad = weight_bad / 2.0 if last_moved == "good" else weight_bad
            last_moved = "good"
        else:
            bad, weight_bad = (x, g), g
            weight_good = weight_good / 2.0 if last_moved == "bad" else weight_good
            last_moved = "bad"
    raise ArithmeticError(f"boundary search did not converge in {_MAX_EVALUATIONS} steps")
