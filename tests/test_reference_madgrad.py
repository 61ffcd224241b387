"""Properties of the NumPy MADGRAD reference (``optimizer_conformance.reference.MADGRAD``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. with momentum 0 and a constant gradient, θ_t = θ₀ − S_t/(ν_t^{1/3} + ε) with
   S_t = (γ + ε)·g·Σ√j and ν_t = (γ + ε)·g²·Σ√j (``derivations/madgrad.py``, proved), within a
   running error bound;
2. with momentum μ, θ_t = μ·θ_{t−1} + (1 − μ)·z_t where z_t is the momentum-free iterate from the
   same sums (the average of the iterates, not a buffer): z_t recomputed from the state;
3. a parameter without a gradient keeps its value and state, and its step count does not advance.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import MADGRAD


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 1.0),
    eps=st.floats(1e-8, 0.5),
    steps=st.integers(1, 15),
)
def test_no_momentum_constant_gradient_closed_form(seed, lr, eps, steps):
    rng = np.random.default_rng(seed)
    g = rng.choice([-1.0, 1.0], 5) * 10.0 ** rng.uniform(-2, 2, 5)
    theta0 = rng.uniform(-10, 10, 5)
    theta = theta0.copy()
    opt = MADGRAD([theta], lr=lr, momentum=0.0, eps=eps)
    w = 0.0
    for t in range(1, steps + 1):
        opt.step([g])
        w += math.sqrt(t)
        s = (lr + eps) * g * w
        nu = (lr + eps) * g**2 * w
        expected = theta0 - s / (np.cbrt(nu) + eps)
        bound = 64 * t * 2.0**-53 * (np.abs(theta0) + np.abs(expected - theta0))
        assert np.all(np.abs(theta - expected) <= bound), (t, theta - expected, bound)
        assert np.allclose(opt.state[0]["s"], s, rtol=1e-12 * t, atol=0)
    assert opt.state[0]["step"] == steps


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    momentum=st.sampled_from([0.25, 0.5, 0.9]),
    steps=st.integers(1, 10),
)
def test_momentum_averages_the_iterates(seed, momentum, steps):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(4)
    theta0 = theta.copy()
    opt = MADGRAD([theta], lr=0.1, momentum=momentum, eps=1e-6)
    for _ in range(steps):
        before = theta.copy()
        opt.step([rng.standard_normal(4)])
        st_ = opt.state[0]
        z = theta0 - st_["s"] / (np.cbrt(st_["grad_sum_sq"]) + 1e-6)
        assert np.allclose(theta, momentum * before + (1 - momentum) * z, rtol=1e-12, atol=1e-12)
        assert np.array_equal(st_["x0"], theta0)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), missing=st.lists(st.booleans(), min_size=2, max_size=8))
def test_missing_gradient_changes_nothing(seed, missing):
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(3) for _ in missing]
    a, b = rng.standard_normal(3), None
    b = a.copy()
    full = MADGRAD([a], lr=0.05)
    sparse = MADGRAD([b], lr=0.05)
    for g, skip in zip(grads, missing, strict=True):
        if not skip:
            full.step([g])
        before = b.copy()
        sparse.step([None if skip else g])
        if skip:
            assert np.array_equal(b, before)
    assert np.array_equal(a, b)
    assert sparse.state[0].get("step", 0) == sum(not m for m in missing)
