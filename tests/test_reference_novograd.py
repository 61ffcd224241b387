"""Properties of the NumPy NovoGrad reference (``optimizer_conformance.reference.NovoGrad``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. the second moment is one scalar per tensor, and v₁ = ‖g₁‖² exactly as computed;
2. under a constant gradient with grad averaging, m_t = g/(‖g‖ + ε) on every step
   (``derivations/novograd.py``, proved) within a few ulps;
3. scaling the gradients and ε by a power of two changes nothing (v scales by c², the normalised
   gradient not at all), bit for bit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import NovoGrad


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(["float32", "float64"]))
def test_second_moment_is_a_per_tensor_scalar(seed, dtype):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((3, 4)).astype(dtype)
    g = rng.standard_normal((3, 4)).astype(dtype)
    opt = NovoGrad([theta])
    opt.step([g])
    v = opt.state[0]["exp_avg_sq"]
    assert v.shape == () and v.dtype == np.dtype(dtype)
    assert v == np.sum(g * g)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), beta1=st.floats(0.0, 0.99), steps=st.integers(1, 15),
       eps=st.sampled_from([1e-8, 1e-3, 0.5]))
def test_grad_averaging_keeps_m_constant_under_a_constant_gradient(seed, beta1, steps, eps):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(6)
    g = rng.standard_normal(6)
    opt = NovoGrad([theta], betas=(beta1, 0.98), eps=eps, grad_averaging=True)
    expected = g / (np.linalg.norm(g) + eps)
    for _ in range(steps):
        opt.step([g])
        assert np.allclose(opt.state[0]["exp_avg"], expected, rtol=1e-13 * (steps + 4), atol=0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(-6, 6), steps=st.integers(1, 8),
       averaging=st.booleans(), dtype=st.sampled_from(["float32", "float64"]))
def test_scaling_gradients_and_eps_by_a_power_of_two_changes_nothing(seed, k, steps, averaging, dtype):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(5).astype(dtype)
    grads = [rng.standard_normal(5).astype(dtype) for _ in range(steps)]
    c = 2.0**k
    a, b = theta0.copy(), theta0.copy()
    oa = NovoGrad([a], lr=0.01, eps=1e-3, grad_averaging=averaging)
    ob = NovoGrad([b], lr=0.01, eps=1e-3 * c, grad_averaging=averaging)
    for gr in grads:
        oa.step([gr])
        ob.step([(gr * c).astype(dtype)])
    assert np.array_equal(a, b)
    assert oa.state[0]["exp_avg_sq"] * c * c == ob.state[0]["exp_avg_sq"]
