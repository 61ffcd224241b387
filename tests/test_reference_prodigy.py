"""Properties of the NumPy Prodigy reference (``optimizer_conformance.reference.Prodigy``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. the first step cannot grow D (θ = x₀, so r = 0) and is Adam's first step scaled by d₀·γ:
   θ₁ = θ₀ − d₀·γ·(1 − β₁)·g/(|g|·√(1 − β₂) + ε) elementwise (m₁ and √v₁ both carry d₀);
2. D never decreases, and it is one number for all parameters: splitting the parameters
   differently (one array or the same elements in two arrays) gives the same trajectory, because
   the estimate sums over every parameter;
3. scaling the gradients and ε by a power of two changes neither D nor the parameters, bit for bit:
   r and ‖s‖₁ scale alike, and so do m and √v + D·ε.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import Prodigy


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lr=st.floats(0.1, 2.0), d0=st.floats(1e-6, 0.5))
def test_first_step_is_d0_sized_adam(seed, lr, d0):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(7)
    g = rng.standard_normal(7)
    theta = theta0.copy()
    opt = Prodigy([theta], lr=lr, d0=d0, betas=(0.9, 0.999), eps=1e-8)
    opt.step([g])
    assert opt.d == d0 and opt.d_numerator == 0.0
    expected = theta0 - d0 * lr * 0.1 * g / (np.abs(g) * np.sqrt(0.001) + 1e-8)
    np.testing.assert_allclose(theta, expected, rtol=1e-12, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(2, 10))
def test_d_is_one_nondecreasing_estimate_over_all_params(seed, steps):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(9)
    direction = rng.standard_normal(9)
    whole = theta0.copy()
    parts = [theta0[:4].copy(), theta0[4:].copy()]
    a = Prodigy([whole], d0=0.01, betas=(0.5, 0.75))
    b = Prodigy(parts, d0=0.01, betas=(0.5, 0.75))
    ds = []
    for _ in range(steps):
        g = direction + 0.25 * rng.standard_normal(9)
        a.step([g])
        b.step([g[:4], g[4:]])
        ds.append(a.d)
    assert all(x <= y for x, y in zip(ds, ds[1:], strict=False))
    assert abs(a.d - b.d) <= 1e-12 * a.d
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-12, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(-6, 6), steps=st.integers(1, 8),
       dtype=st.sampled_from(["float32", "float64"]))
def test_scaling_gradients_and_eps_by_a_power_of_two_changes_nothing(seed, k, steps, dtype):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(5).astype(dtype)
    direction = rng.standard_normal(5)
    grads = [(direction + 0.5 * rng.standard_normal(5)).astype(dtype) for _ in range(steps)]
    c = 2.0**k
    x, y = theta0.copy(), theta0.copy()
    ox = Prodigy([x], d0=0.0625, betas=(0.5, 0.75), eps=1e-3)
    oy = Prodigy([y], d0=0.0625, betas=(0.5, 0.75), eps=1e-3 * c)
    for gr in grads:
        ox.step([gr])
        oy.step([(gr * c).astype(dtype)])
    assert ox.d == oy.d
    assert np.array_equal(x, y)
