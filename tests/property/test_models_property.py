"""Property: every model's analytic gradient matches central finite differences."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heliosfl.models import MLP, LogisticRegression, Model, SoftmaxRegression


@st.composite
def models(draw: st.DrawFn) -> Model:
    kind = draw(st.sampled_from(["logistic", "softmax", "mlp"]))
    input_dim = draw(st.integers(1, 4))
    if kind == "logistic":
        return LogisticRegression(input_dim)
    num_classes = draw(st.integers(2, 4))
    if kind == "softmax":
        return SoftmaxRegression(input_dim, num_classes)
    hidden = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))
    activation = draw(st.sampled_from(["relu", "tanh"]))
    return MLP(input_dim, tuple(hidden), num_classes=num_classes, activation=activation)


@settings(max_examples=25, deadline=None)
@given(model=models(), n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_gradient_matches_finite_differences(model: Model, n: int, seed: int) -> None:
    # Data and params come from a seeded generator, not from hypothesis floats: that keeps
    # pre-activations away from ReLU's kink (where finite differences are meaningless).
    rng = np.random.default_rng(seed)
    params = rng.normal(0.0, 0.7, size=model.num_params)
    X = rng.normal(size=(n, model.input_dim))
    y = rng.integers(0, model.num_classes, size=n)

    _, grad = model.loss_and_grad(params, X, y)

    eps = 1e-6
    numeric = np.empty_like(params)
    for i in range(params.size):
        step = np.zeros_like(params)
        step[i] = eps
        plus = model.loss_and_grad(params + step, X, y)[0]
        minus = model.loss_and_grad(params - step, X, y)[0]
        numeric[i] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-7)
