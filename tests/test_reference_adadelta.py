"""Properties of the NumPy Adadelta reference (``optimizer_conformance.reference.Adadelta``).

The golden cases (through the runner, and directly in float64 within 1e-13) are checked for
every spec in ``test_reference.py``. Here, properties the rule implies, for random inputs: with
ρ = 0 and a constant gradient acc_delta follows u_t = g²(1 − rᵗ), r = g²/(g² + ε); without a
gradient θ stays and both accumulators fade by ρ; the learning rate scales the step and nothing
else (bit for bit for powers of two).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference.adadelta import Adadelta

DTYPES = ("float32", "float64")


@settings(max_examples=100, deadline=None)
@given(
    g=st.floats(1e-2, 1e2),
    sign=st.sampled_from([-1.0, 1.0]),
    eps=st.floats(1e-6, 1.0),
    steps=st.integers(1, 12),
)
def test_memoryless_acc_delta_follows_its_closed_form(g, sign, eps, steps):
    """ρ = 0, constant g: v = g², u_t = g²(1 − rᵗ) with r = g²/(g² + ε) (so u → g² and the step
    tends to g). Each step rounds u a few times and carries r times the previous error."""
    theta = np.zeros(2)
    opt = Adadelta([theta], rho=0.0, eps=eps)
    r = g * g / (g * g + eps)
    u = 2.0**-53
    for t in range(1, steps + 1):
        opt.step([np.full(2, sign * g)])
        expected = g * g * (1 - r**t)
        assert np.all(opt.state[0]["square_avg"] == g * g)
        error = np.abs(opt.state[0]["acc_delta"] - expected)
        assert np.all(error <= 16 * t * u * (expected + g * g * r**t)), (t, error, expected)


@st.composite
def runs(draw):
    """Settings, a random gradient schedule and a dtype."""
    hps = {
        "rho": draw(st.sampled_from([0.0, 0.5, 0.9, 0.95])),
        "eps": draw(st.sampled_from([1e-6, 1e-3, 0.25])),
        "weight_decay": draw(st.sampled_from([0.0, 0.5])),
        "maximize": draw(st.booleans()),
    }
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from(DTYPES))
    grads = [rng.standard_normal(4).astype(dtype) for _ in range(draw(st.integers(1, 8)))]
    return hps, rng.standard_normal(4).astype(dtype), grads


@settings(max_examples=100, deadline=None)
@given(run=runs(), zeros=st.integers(1, 5), lr=st.floats(1e-3, 4.0))
def test_memory_fades_without_gradient(run, zeros, lr):
    """A zero gradient (no weight decay): Δ = 0, so θ stays and v, u are multiplied by ρ."""
    hps, theta, grads = run
    hps = {**hps, "weight_decay": 0.0}
    opt = Adadelta([theta], lr=lr, **hps)
    for grad in grads:
        opt.step([grad])
    for _ in range(zeros):
        before = theta.copy()
        v, u = opt.state[0]["square_avg"].copy(), opt.state[0]["acc_delta"].copy()
        rho = theta.dtype.type(hps["rho"])
        opt.step([np.zeros_like(theta)])
        assert np.array_equal(theta, before)
        assert np.array_equal(opt.state[0]["square_avg"], rho * v)
        assert np.array_equal(opt.state[0]["acc_delta"], rho * u)


@settings(max_examples=100, deadline=None)
@given(run=runs(), k=st.integers(-10, 10))
def test_the_learning_rate_scales_the_step_and_nothing_else(run, k):
    """Without weight decay the accumulators never see θ or γ: γ = 2ᵏ gives the same state as
    γ = 1, bit for bit, and from θ₀ = 0 the parameters are exactly 2ᵏ times those of γ = 1
    (the paper's rule). Accumulating (γΔ)² instead would change the state."""
    hps, _, grads = run
    hps = {**hps, "weight_decay": 0.0}
    dtype = grads[0].dtype
    plain, scaled = np.zeros(4, dtype=dtype), np.zeros(4, dtype=dtype)
    opt_plain, opt_scaled = Adadelta([plain], lr=1.0, **hps), Adadelta([scaled], lr=2.0**k, **hps)
    for grad in grads:
        opt_plain.step([grad])
        opt_scaled.step([grad])
        assert np.array_equal(scaled, plain * 2.0**k)
        for key in ("square_avg", "acc_delta"):
            assert np.array_equal(opt_scaled.state[0][key], opt_plain.state[0][key])
