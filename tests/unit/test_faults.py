"""Unit tests for heliosfl.faults: NodeFault validation and fault plans."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from heliosfl.errors import ConfigError
from heliosfl.faults import FaultPlan, NodeFault


def test_numpy_numbers_are_accepted_and_stored_as_builtin_floats() -> None:
    fault = NodeFault(
        crash_probability=np.float32(0.25),
        hang_probability=np.float64(0.5),
        hang_secs=np.float32(2.0),
        delay_secs=np.int64(1),
    )
    assert (fault.crash_probability, fault.hang_probability) == (0.25, 0.5)
    assert (fault.hang_secs, fault.delay_secs) == (2.0, 1.0)
    for value in (fault.crash_probability, fault.hang_probability, fault.hang_secs):
        assert type(value) is float
    assert type(fault.delay_secs) is float


@pytest.mark.parametrize("secs", [math.inf, np.inf, np.float32("inf")])
def test_hang_secs_accepts_infinity(secs: Any) -> None:
    fault = NodeFault(hang_probability=1.0, hang_secs=secs)
    assert fault.hang_secs == math.inf
    assert type(fault.hang_secs) is float
    assert NodeFault.hang().hang_secs == math.inf
    assert fault.plan(np.random.default_rng(0)) == FaultPlan(crash=False, latency_secs=math.inf)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"crash_probability": 1.5}, "crash_probability", id="crash-above-1"),
        pytest.param({"crash_probability": -0.1}, "crash_probability", id="crash-negative"),
        pytest.param({"crash_probability": math.nan}, "crash_probability", id="crash-nan"),
        pytest.param({"crash_probability": True}, "crash_probability", id="crash-bool"),
        pytest.param({"hang_probability": "0.5"}, "hang_probability", id="hang-p-str"),
        pytest.param({"hang_probability": np.float32(2)}, "hang_probability", id="hang-p-np"),
        pytest.param({"hang_secs": 0.0}, "hang_secs", id="hang-zero"),
        pytest.param({"hang_secs": -math.inf}, "hang_secs", id="hang-minus-inf"),
        pytest.param({"hang_secs": math.nan}, "hang_secs", id="hang-nan"),
        pytest.param({"hang_secs": None}, "hang_secs", id="hang-none"),
        pytest.param({"delay_secs": -1.0}, "delay_secs", id="delay-negative"),
        pytest.param({"delay_secs": math.inf}, "delay_secs", id="delay-inf"),
        pytest.param({"delay_secs": np.float32("nan")}, "delay_secs", id="delay-nan32"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        NodeFault(**kwargs)
    assert info.value.field == f"NodeFault.{field}"
    assert str(info.value).startswith(f"NodeFault.{field} must be ")
    assert " Found " in str(info.value)


def test_boundaries_are_accepted() -> None:
    NodeFault(crash_probability=0, hang_probability=1, delay_secs=0)
    NodeFault(hang_secs=1e-9)
    assert NodeFault.crash().plan(np.random.default_rng(0)).crash
