"""Properties of the NumPy Lookahead references (``optimizer_conformance.reference.LookaheadSGD``,
``LookaheadAdam``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. α = 1 is the inner optimizer alone, bit for bit (the pull-back θ ← φ + 1·(θ − φ) is exact only
   up to rounding, so: within a few ulps), for SGD and Adam;
2. with plain SGD and k = 2, after two steps θ = (θ₀ + θ₂)/2 where θ₂ is the inner trajectory, and
   the slow weights equal θ afterwards;
3. a state_dict round trip in the middle of a k-cycle continues exactly (slow weights and counter).
"""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import SGD, Adam, LookaheadAdam, LookaheadSGD


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 4), steps=st.integers(1, 10),
       adam=st.booleans())
def test_alpha_one_is_the_inner_optimizer(seed, k, steps, adam):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(5)
    a, b = theta0.copy(), theta0.copy()
    inner = Adam([a], lr=0.05) if adam else SGD([a], lr=0.05, momentum=0.5)
    wrapped = LookaheadAdam([b], lr=0.05, k=k, alpha=1.0) if adam else \
        LookaheadSGD([b], lr=0.05, momentum=0.5, k=k, alpha=1.0)
    for _ in range(steps):
        g = rng.standard_normal(5)
        inner.step([g])
        wrapped.step([g])
    assert np.allclose(a, b, rtol=1e-14, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), alpha=st.floats(0.0, 1.0))
def test_k2_pulls_back_to_the_slow_weights(seed, alpha):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(4)
    theta = theta0.copy()
    opt = LookaheadSGD([theta], lr=0.1, k=2, alpha=alpha)
    g1, g2 = rng.standard_normal(4), rng.standard_normal(4)
    opt.step([g1])
    opt.step([g2])
    fast = theta0 - 0.1 * g1 - 0.1 * g2
    assert np.allclose(theta, theta0 + alpha * (fast - theta0), rtol=1e-13, atol=1e-13)
    assert np.array_equal(opt.state[0]["slow_params"], theta)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 4), cut=st.integers(1, 7), adam=st.booleans())
def test_resume_mid_cycle_changes_nothing(seed, k, cut, adam):
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(3) for _ in range(8)]
    cls, kw = (LookaheadAdam, {}) if adam else (LookaheadSGD, {"momentum": 0.75})
    a = rng.standard_normal(3)
    b = a.copy()
    straight = cls([a], lr=0.125, k=k, alpha=0.5, **kw)
    resumed = cls([b], lr=0.125, k=k, alpha=0.5, **kw)
    for i, g in enumerate(grads):
        if i == cut:
            sd = copy.deepcopy(resumed.state_dict())
            resumed = cls([b], lr=0.125)
            resumed.load_state_dict(sd)
        straight.step([g])
        resumed.step([g])
    assert np.array_equal(a, b)
