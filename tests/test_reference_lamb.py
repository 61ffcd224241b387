"""Properties of the NumPy LAMB reference (``optimizer_conformance.reference.Lamb``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. the step length is exactly lr·‖θ‖ (the trust ratio normalises u), within a few ulps;
2. scaling the gradients and ε by a power of two changes nothing (m, v and r scale, the step does
   not), bit for bit, without weight decay;
3. under a constant gradient the direction is g/(|g| + ε) (``derivations/lamb.py``, proved), so with
   λ = 0 a scalar parameter shrinks geometrically: θ_t = θ₀·(1 − lr·sign(g)·sign(θ₀))ᵗ.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import Lamb


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lr=st.floats(1e-4, 0.5), wd=st.sampled_from([0.0, 0.01, 0.5]),
       steps=st.integers(1, 8))
def test_step_length_is_lr_times_param_norm(seed, lr, wd, steps):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((3, 4))
    opt = Lamb([theta], lr=lr, weight_decay=wd)
    for _ in range(steps):
        before = theta.copy()
        opt.step([rng.standard_normal((3, 4))])
        moved = np.linalg.norm(theta - before)
        assert abs(moved - lr * np.linalg.norm(before)) <= 1e-12 * np.linalg.norm(before)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(-6, 6), steps=st.integers(1, 8),
       eps=st.sampled_from([1e-6, 1e-3, 0.25]), dtype=st.sampled_from(["float32", "float64"]))
def test_scaling_gradients_and_eps_by_a_power_of_two_changes_nothing(seed, k, steps, eps, dtype):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(5).astype(dtype)
    grads = [rng.standard_normal(5).astype(dtype) for _ in range(steps)]
    c = 2.0**k
    a, b = theta0.copy(), theta0.copy()
    oa = Lamb([a], lr=0.01, eps=eps, weight_decay=0.0)
    ob = Lamb([b], lr=0.01, eps=eps * c, weight_decay=0.0)
    for gr in grads:
        oa.step([gr])
        ob.step([(gr * c).astype(dtype)])
    assert np.array_equal(a, b)
    assert np.array_equal(oa.state[0]["exp_avg"] * c, ob.state[0]["exp_avg"])


@settings(max_examples=80, deadline=None)
@given(theta0=st.floats(0.1, 100), g=st.floats(-10, 10).filter(lambda x: abs(x) > 1e-3),
       lr=st.floats(1e-3, 0.5), steps=st.integers(1, 20))
def test_scalar_under_constant_gradient_shrinks_geometrically(theta0, g, lr, steps):
    theta = np.array(theta0)
    opt = Lamb([theta], lr=lr, weight_decay=0.0)
    for _ in range(steps):
        opt.step([np.array(g)])
    expected = theta0 * (1 - lr * np.sign(g)) ** steps
    assert abs(theta - expected) <= 1e-13 * steps * max(abs(theta0), 1)
