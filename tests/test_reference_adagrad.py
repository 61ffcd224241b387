"""Properties of the NumPy Adagrad reference (``optimizer_conformance.reference.Adagrad``).

The golden cases (through the runner, and directly in float64 within 1e-13) are checked for
every spec in ``test_reference.py``. Here, properties the rule implies, for random inputs: the
accumulator is G₀ + Σg², exactly on dyadic inputs; with ε = 0 and G₀ = 0 the steps are
γ_t·sign(g)/√t under a constant gradient, and the trajectory does not depend on the scale of the
gradients (by powers of two: bit for bit); the learning-rate decay follows each parameter's own
step count.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference.adagrad import Adagrad

DTYPES = ("float32", "float64")


# Dyadic inputs with few significant bits: sums of their squares are exact in float64.
dyadic = st.integers(-(2**10), 2**10).map(lambda k: Fraction(k, 2**8))


@settings(max_examples=100, deadline=None)
@given(
    initial=st.sampled_from([Fraction(0), Fraction(1, 8), Fraction(3, 4), Fraction(5, 2)]),
    grads=st.lists(st.lists(dyadic, min_size=3, max_size=3), min_size=1, max_size=10),
    maximize=st.booleans(),
    dtype=st.sampled_from(DTYPES),
)
def test_accumulator_is_the_initial_value_plus_the_sum_of_squares(initial, grads, maximize, dtype):
    """sum_t = G₀ + Σ g_s², exactly (each g² has at most 22 significant bits)."""
    theta = np.zeros(3, dtype=dtype)
    opt = Adagrad([theta], lr=0.5, initial_accumulator_value=float(initial), maximize=maximize)
    exact = [initial] * 3
    for t, g in enumerate(grads, start=1):
        opt.step([np.array([float(x) for x in g], dtype=dtype)])
        exact = [s + x * x for s, x in zip(exact, g, strict=True)]
        assert opt.state[0]["step"] == t
        assert opt.state[0]["sum"].dtype == np.dtype(dtype)
        assert opt.state[0]["sum"].tolist() == [float(s) for s in exact]


@settings(max_examples=100, deadline=None)
@given(
    theta0=st.floats(-4, 4),
    g=st.floats(1e-3, 1e3),
    sign=st.sampled_from([-1.0, 1.0]),
    lr=st.floats(1e-3, 1.0),
    lr_decay=st.sampled_from([0.0, 0.1, 0.5, 2.0]),
    steps=st.integers(1, 12),
)
def test_constant_gradient_steps_are_scale_free(theta0, g, sign, lr, lr_decay, steps):
    """ε = 0, G₀ = 0, constant g: G_t = t·g², so the t-th step is γ/(1 + (t − 1)·η)·sign(g)/√t
    whatever |g|. The bound: each step rounds θ, and its increment carries a few roundings."""
    theta = np.array([theta0])
    opt = Adagrad([theta], lr=lr, lr_decay=lr_decay, eps=0.0)
    expected, bound, u = theta0, 0.0, 2.0**-53
    for t in range(1, steps + 1):
        opt.step([np.array([sign * g])])
        increment = lr / (1 + (t - 1) * lr_decay) / math.sqrt(t)
        expected -= sign * increment
        bound += abs(expected) + 8 * increment
        assert abs(theta.item() - expected) <= 2 * u * bound, (t, theta.item(), expected)


@st.composite
def scale_runs(draw):
    """Settings without ε, G₀ and weight decay, a gradient schedule and a power-of-two scale."""
    hps = {
        "lr": draw(st.floats(1e-3, 1.0)),
        "lr_decay": draw(st.sampled_from([0.0, 0.25, 1.0])),
        "eps": 0.0,
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
    """ε = 0, G₀ = 0, no weight decay: g/√G is invariant to g → c·g; with c a power of two every
    rounding commutes with the scaling, so the parameters agree bit for bit and G scales by c²."""
    hps, theta0, grads, k = run
    c = 2.0**k
    plain, scaled = theta0.copy(), theta0.copy()
    opt_plain, opt_scaled = Adagrad([plain], **hps), Adagrad([scaled], **hps)
    for grad in grads:
        opt_plain.step([grad])
        opt_scaled.step([grad * c])
        assert np.array_equal(plain, scaled)
    assert np.array_equal(opt_scaled.state[0]["sum"], opt_plain.state[0]["sum"] * c * c)


def test_lr_decay_counts_each_parameters_own_steps():
    """A parameter that missed steps decays its learning rate by its own count, not the optimizer's:
    with G₀ = 0, ε = 0 and |g| = 1 its t-th step is γ/(1 + (t − 1)·η)/√t (its first: exactly γ)."""
    a, b = np.zeros(1), np.zeros(1)
    opt = Adagrad([a, b], lr=1.0, lr_decay=1.0, eps=0.0)
    one = np.ones(1)
    opt.step([one, None])
    opt.step([one, None])
    opt.step([one, one])  # b's first step: full learning rate
    assert b.item() == -1.0
    expected = -(1.0 + 1 / 2 / math.sqrt(2) + 1 / 3 / math.sqrt(3))
    assert math.isclose(a.item(), expected, rel_tol=1e-15)
    assert (opt.state[0]["step"], opt.state[1]["step"]) == (3, 1)
