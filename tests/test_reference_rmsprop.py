"""Properties of the NumPy RMSprop reference (``optimizer_conformance.reference.RMSprop``).

The golden cases (through the runner, and directly in float64 within 1e-13) are checked for
every spec in ``test_reference.py``. Here, properties the rule implies, for random inputs: the
mean square and the mean gradient follow their closed forms under a constant gradient, exactly on
dyadic inputs; with α = 0 and ε = 0 momentum RMSprop is heavy-ball sign descent, bit for bit;
without ε and weight decay the trajectory does not depend on the scale of the gradients (by
powers of two: bit for bit).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference.rmsprop import RMSprop

DTYPES = ("float32", "float64")


# Dyadic inputs with few significant bits: the recurrences below stay exact in float64.
dyadic = st.integers(-(2**10), 2**10).map(lambda k: Fraction(k, 2**8))
nonzero_dyadic = st.integers(1, 2**8).map(lambda k: Fraction(k, 2**6))
alphas = st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(3, 4), Fraction(7, 8)])


@settings(max_examples=100, deadline=None)
@given(g=nonzero_dyadic, sign=st.sampled_from([-1, 1]), alpha=alphas, centered=st.booleans(),
       steps=st.integers(1, 8))
def test_averages_follow_their_closed_forms_exactly(g, sign, alpha, centered, steps):
    """Constant g: v_t = g²(1 − αᵗ) and, centered, ḡ_t = g(1 − αᵗ), exactly (dyadic arithmetic)."""
    g = sign * g
    theta = np.array([0.5, -0.75])
    opt = RMSprop([theta], lr=0.125, alpha=float(alpha), centered=centered)
    for t in range(1, steps + 1):
        opt.step([np.full(2, float(g))])
        state = opt.state[0]
        assert state["step"] == t
        assert state["square_avg"].tolist() == [float(g * g * (1 - alpha**t))] * 2
        if centered:
            assert state["grad_avg"].tolist() == [float(g * (1 - alpha**t))] * 2
        else:
            assert "grad_avg" not in state
    assert "momentum_buffer" not in opt.state[0]


@settings(max_examples=100, deadline=None)
@given(
    theta0=dyadic,
    g=nonzero_dyadic,
    sign=st.sampled_from([-1, 1]),
    lr_exponent=st.integers(0, 6),
    mu=st.sampled_from([Fraction(1, 2), Fraction(3, 4), Fraction(7, 8)]),
    steps=st.integers(1, 6),  # μ = 7/8: θ₆ needs 24 significant bits, θ₇ would need 27
    dtype=st.sampled_from(DTYPES),
)
def test_memoryless_momentum_is_heavy_ball_sign_descent(
    theta0, g, sign, lr_exponent, mu, steps, dtype
):
    """α = 0, ε = 0, constant g: a = |g|, so b_t = sign(g)(1 − μᵗ)/(1 − μ) and
    θ_t = θ₀ − γ·sign(g)·(t − μ(1 − μᵗ)/(1 − μ))/(1 − μ), bit for bit (every value is dyadic
    with at most 24 significant bits)."""
    lr = Fraction(1, 2**lr_exponent)
    theta = np.array([float(theta0)], dtype=dtype)
    opt = RMSprop([theta], lr=float(lr), alpha=0.0, eps=0.0, momentum=float(mu))
    for t in range(1, steps + 1):
        opt.step([np.array([float(sign * g)], dtype=dtype)])
        buffer = sign * (1 - mu**t) / (1 - mu)
        expected = theta0 - lr * sign * (t - mu * (1 - mu**t) / (1 - mu)) / (1 - mu)
        assert opt.state[0]["momentum_buffer"].item() == float(buffer)
        assert theta.item() == float(expected)


@st.composite
def scale_runs(draw):
    """Settings without ε and weight decay, a gradient schedule and a power-of-two scale."""
    hps = {
        "lr": draw(st.floats(1e-3, 1.0)),
        "alpha": draw(st.sampled_from([0.5, 0.9, 0.99])),
        "eps": 0.0,
        "momentum": draw(st.sampled_from([0.0, 0.5, 0.9])),
        "centered": draw(st.booleans()),
        "maximize": draw(st.booleans()),
    }
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps = draw(st.integers(1, 10))
    dtype = draw(st.sampled_from(DTYPES))
    grads = [rng.standard_normal(4).astype(dtype) for _ in range(steps)]
    theta0 = rng.standard_normal(4).astype(dtype)
    return hps, theta0, grads, draw(st.integers(-20, 20))


@settings(max_examples=100, deadline=None)
@given(run=scale_runs())
def test_without_eps_the_trajectory_ignores_the_gradient_scale(run):
    """ε = 0, no weight decay: g/√v is invariant to g → c·g; with c a power of two every rounding
    commutes with the scaling, so the parameters agree bit for bit and v scales by c²."""
    hps, theta0, grads, k = run
    c = 2.0**k
    plain, scaled = theta0.copy(), theta0.copy()
    opt_plain, opt_scaled = RMSprop([plain], **hps), RMSprop([scaled], **hps)
    for grad in grads:
        opt_plain.step([grad])
        opt_scaled.step([grad * c])
        assert np.array_equal(plain, scaled)
    v_plain, v_scaled = opt_plain.state[0]["square_avg"], opt_scaled.state[0]["square_avg"]
    assert np.array_equal(v_scaled, v_plain * c * c)
