"""Properties of the NumPy ADOPT reference (``optimizer_conformance.reference.ADOPT``).

The golden cases are in ``test_reference.py``, which covers every spec's reference. Here, for
random inputs:

1. the first step only initialises the second moment: θ and m are unchanged, v = g² bit for bit
   (g including the L2 term), whatever the decay mode;
2. the clip bounds every step: |θ_t − θ_{t−1}| ≤ γ·(t − 1)^¼ (no weight decay), however large a
   gradient is against the previous √v (gradients spanning 2⁻²⁰…2²⁰, zeros included);
3. under a constant gradient |g| ≥ ε, θ_t = θ₀ − γ·sign(g)·(t − (1 − β₁ᵗ)/(1 − β₁)) within a running
   error bound (the closed form ``constant_gradient`` of ``derivations/adopt.py``, proved).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import ADOPT

DTYPES = ("float32", "float64")


@settings(max_examples=100, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
    weight_decay=st.sampled_from([0.0, 0.125, 0.5]),
    weight_decouple=st.booleans(),
    maximize=st.booleans(),
)
def test_first_step_only_initialises_the_second_moment(dtype, seed, weight_decay, weight_decouple,
                                                       maximize):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(6).astype(dtype)
    g = rng.standard_normal(6).astype(dtype)
    theta = theta0.copy()
    opt = ADOPT([theta], lr=0.5, weight_decay=weight_decay, weight_decouple=weight_decouple,
                maximize=maximize)
    opt.step([g])
    assert np.array_equal(theta, theta0)
    assert np.array_equal(opt.state[0]["exp_avg"], np.zeros(6, dtype))
    eff = -g if maximize else g
    if weight_decay and not weight_decouple:
        eff = eff + weight_decay * theta0
    assert np.array_equal(opt.state[0]["exp_avg_sq"], eff * eff)
    assert opt.state[0]["step"] == 1


@settings(max_examples=100, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 1.0),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.0, 0.9999),
    eps=st.sampled_from([1e-6, 1e-3, 0.5]),
    steps=st.integers(2, 15),
)
def test_the_clip_bounds_every_step(dtype, seed, lr, beta1, beta2, eps, steps):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(8).astype(dtype)
    opt = ADOPT([theta], lr=lr, betas=(beta1, beta2), eps=eps)
    u = float(np.finfo(dtype).eps)
    for t in range(1, steps + 1):
        g = (rng.choice([-1.0, 0.0, 1.0], 8) * 2.0 ** rng.integers(-20, 21, 8)).astype(dtype)
        before = theta.copy()
        opt.step([g])
        limit = lr * (t - 1) ** 0.25
        assert np.all(np.abs(theta.astype(np.float64) - before) <= limit * (1 + 8 * u) + 4 * u * np.abs(before))


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 1.0),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.0, 0.9999),
    steps=st.integers(1, 20),
)
def test_constant_gradient_closed_form(seed, lr, beta1, beta2, steps):
    rng = np.random.default_rng(seed)
    n = 5
    eps = 1e-6
    g = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-5, 3, n)  # |g| ≥ 1e-5 > ε
    theta0 = rng.uniform(-10, 10, n)
    theta = theta0.copy()
    opt = ADOPT([theta], lr=lr, betas=(beta1, beta2), eps=eps)
    u = 2.0**-53
    bound = np.zeros(n)
    for t in range(1, steps + 1):
        opt.step([g])
        distance = t - (1 - beta1**t) / (1 - beta1)
        expected = theta0 - lr * np.sign(g) * distance
        bound += np.abs(theta0) + lr * (t + 1)  # θ's magnitude and the step's, per rounding
        assert np.all(np.abs(theta - expected) <= 16 * u * bound), t
    assert opt.state[0]["step"] == steps
