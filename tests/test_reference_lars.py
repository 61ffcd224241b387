"""Properties of the NumPy LARS reference (``optimizer_conformance.reference.LARS``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. without momentum and weight decay the step length is exactly γ·η·‖θ‖ (the ratio normalises g),
   within a few ulps;
2. scaling the gradients by a power of two changes nothing, bit for bit (the ratio absorbs it);
3. under a constant gradient with λ = 0 the ratio changes with ‖θ‖ only, and a scalar parameter
   moving against its gradient by γ·η·|θ| per step without momentum shrinks geometrically:
   θ_t = θ₀·(1 − γη·sign(g)·sign(θ₀))ᵗ;
4. at a constant learning rate the velocity is γ times torch SGD's buffer computed beside it
   (``derivations/lars.py``, ``lr_outside_buffer_same_trajectory_at_constant_lr``, proved).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import LARS


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lr=st.floats(1e-3, 2.0), eta=st.floats(1e-3, 0.5), steps=st.integers(1, 8))
def test_step_length_is_lr_times_eta_times_param_norm(seed, lr, eta, steps):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((3, 4))
    opt = LARS([theta], lr=lr, momentum=0.0, trust_coefficient=eta)
    for _ in range(steps):
        before = theta.copy()
        opt.step([rng.standard_normal((3, 4))])
        moved = np.linalg.norm(theta - before)
        assert abs(moved - lr * eta * np.linalg.norm(before)) <= 1e-12 * np.linalg.norm(before)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(-6, 6), steps=st.integers(1, 8),
       dtype=st.sampled_from(["float32", "float64"]))
def test_scaling_gradients_by_a_power_of_two_changes_nothing(seed, k, steps, dtype):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(5).astype(dtype)
    grads = [rng.standard_normal(5).astype(dtype) for _ in range(steps)]
    c = 2.0**k
    a, b = theta0.copy(), theta0.copy()
    oa = LARS([a], lr=0.5, momentum=0.75, trust_coefficient=0.25)
    ob = LARS([b], lr=0.5, momentum=0.75, trust_coefficient=0.25)
    for gr in grads:
        oa.step([gr])
        ob.step([(gr * c).astype(dtype)])
    assert np.array_equal(a, b)
    assert np.array_equal(oa.state[0]["velocity"], ob.state[0]["velocity"])


@settings(max_examples=80, deadline=None)
@given(theta0=st.floats(0.1, 100), g=st.floats(-10, 10).filter(lambda x: abs(x) > 1e-3),
       lr=st.floats(1e-3, 1.0), eta=st.floats(1e-3, 0.5), steps=st.integers(1, 20))
def test_scalar_under_constant_gradient_shrinks_geometrically(theta0, g, lr, eta, steps):
    theta = np.array(theta0)
    opt = LARS([theta], lr=lr, momentum=0.0, trust_coefficient=eta)
    for _ in range(steps):
        opt.step([np.array(g)])
    expected = theta0 * (1 - lr * eta * np.sign(g)) ** steps
    assert abs(theta - expected) <= 1e-13 * steps * max(abs(theta0), 1)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lr=st.floats(1e-3, 2.0), mu=st.floats(0.1, 0.95),
       wd=st.sampled_from([0.0, 0.1, 0.5]), steps=st.integers(1, 8))
def test_velocity_is_lr_times_the_sgd_buffer_at_constant_lr(seed, lr, mu, wd, steps):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(6)
    shadow = theta.copy()
    buffer = np.zeros_like(theta)
    opt = LARS([theta], lr=lr, momentum=mu, weight_decay=wd, trust_coefficient=0.1)
    for _ in range(steps):
        g = rng.standard_normal(6)
        ratio = 0.1 * np.linalg.norm(shadow) / (np.linalg.norm(g) + wd * np.linalg.norm(shadow))
        buffer = mu * buffer + ratio * (g + wd * shadow)
        shadow -= lr * buffer
        opt.step([g])
    np.testing.assert_allclose(opt.state[0]["velocity"], lr * buffer, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(theta, shadow, rtol=1e-12, atol=1e-14)
