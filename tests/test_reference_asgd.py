"""The NumPy ASGD reference (``optimizer_conformance.reference.ASGD``): goldens and rule.

Every golden case runs through ``tests/test_reference.py`` (the runner, and 1e-13 in float64).
Properties of the rule, for random inputs: η_t and μ_t follow their closed forms; ax is the
running mean of the iterates from step ⌊t0⌋ + 2 on, whatever the gradients; with λ = 0 ASGD is
exact gradient descent with step γ; maximizing g is minimizing −g, bit for bit.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import ASGD

DTYPES = ("float32", "float64")


# -- properties ---------------------------------------------------------------------------


@st.composite
def runs(draw):
    """Settings, an integer t0 the run passes, and a random gradient schedule."""
    steps = draw(st.integers(1, 12))
    hps = {
        "lr": draw(st.floats(1e-3, 1.0)),
        "lambd": draw(st.sampled_from([0.0, 1e-4, 0.1, 0.5])),
        "alpha": draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])),
        "t0": float(draw(st.integers(-1, 10))),
        "weight_decay": draw(st.sampled_from([0.0, 0.25])),
        "maximize": draw(st.booleans()),
    }
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    theta0 = rng.standard_normal(4)
    grads = [rng.standard_normal(4) for _ in range(steps)]
    return hps, theta0, grads


@settings(max_examples=100, deadline=None)
@given(run=runs())
def test_eta_and_mu_follow_their_closed_forms(run):
    """After t steps, η = γ/(1 + λγt)^α and μ = 1/max(1, t − t0), whatever the gradients."""
    hps, theta0, grads = run
    opt = ASGD([theta0.copy()], **hps)
    lr, lambd, alpha, t0 = hps["lr"], hps["lambd"], hps["alpha"], hps["t0"]
    for t, g in enumerate(grads, start=1):
        opt.step([g])
        state = opt.state[0]
        assert state["step"] == t
        assert math.isclose(state["eta"], lr / (1 + lambd * lr * t) ** alpha, rel_tol=1e-15)
        assert state["mu"] == 1 / max(1, t - t0)


@settings(max_examples=100, deadline=None)
@given(run=runs())
def test_average_is_the_running_mean_of_the_iterates(run):
    """ax_t = θ_t while t ≤ t0 + 2, then the mean of θ_s for s from t0 + 2 to t (t0 an integer)."""
    hps, theta0, grads = run
    theta = theta0.copy()
    opt = ASGD([theta], **hps)
    start = max(1, int(hps["t0"]) + 2)
    iterates = []
    for t, g in enumerate(grads, start=1):
        opt.step([g])
        iterates.append(theta.copy())
        window = iterates[start - 1 :] if t >= start else iterates[-1:]
        expected = np.mean(window, axis=0)
        scale = np.max(np.abs(window), axis=0) + 1
        assert np.all(np.abs(opt.state[0]["ax"] - expected) <= 1e-13 * scale * t), (t, start)


dyadic = st.integers(-(2**10), 2**10).map(lambda k: Fraction(k, 2**8))


@settings(max_examples=100, deadline=None)
@given(
    theta0=st.lists(dyadic, min_size=1, max_size=6),
    grads=st.lists(st.lists(dyadic, min_size=6, max_size=6), min_size=1, max_size=8),
    lr_exponent=st.integers(0, 6),
    alpha=st.sampled_from([0.25, 0.75, 1.0]),
    dtype=st.sampled_from(DTYPES),
)
def test_without_lambd_asgd_is_exact_gradient_descent(theta0, grads, lr_exponent, alpha, dtype):
    """λ = 0: no decay term and a constant step size γ, so θ_t = θ_{t−1} − γ·g_t, exactly."""
    n = len(theta0)
    lr = Fraction(1, 2**lr_exponent)
    theta = np.array([float(x) for x in theta0], dtype=dtype)
    opt = ASGD([theta], lr=float(lr), lambd=0.0, alpha=alpha)
    exact = list(theta0)
    for g in grads:
        g = g[:n]
        opt.step([np.array([float(x) for x in g], dtype=dtype)])
        exact = [x - lr * gi for x, gi in zip(exact, g, strict=True)]
        assert theta.tolist() == [float(x) for x in exact]
        assert opt.state[0]["eta"] == float(lr)


@settings(max_examples=100, deadline=None)
@given(run=runs(), dtype=st.sampled_from(DTYPES))
def test_maximizing_g_is_minimizing_minus_g(run, dtype):
    hps, theta0, grads = run
    up, down = theta0.astype(dtype), theta0.astype(dtype)
    opt_up = ASGD([up], **{**hps, "maximize": True})
    opt_down = ASGD([down], **{**hps, "maximize": False})
    for g in grads:
        opt_up.step([g.astype(dtype)])
        opt_down.step([-g.astype(dtype)])
        assert np.array_equal(up, down)
        assert np.array_equal(opt_up.state[0]["ax"], opt_down.state[0]["ax"])
