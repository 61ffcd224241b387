"""Properties of the NumPy Lion reference (``optimizer_conformance.reference.Lion``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. under a constant gradient g ≠ 0 without decay every step has length exactly γ, against sign(g)
   (the interpolation keeps the sign of g for any β): θ_t = θ₀ − t·γ·sign(g) within a running
   rounding bound, and m_t = g·(1 − β₂ᵗ) likewise (``derivations/lion.py``, proved for β₁ = 0);
2. the trajectory does not depend on the scale of the gradients, decay included (only the sign of
   the interpolation reaches θ): scaling them by a power of two changes θ not at all, bit for bit,
   and scales the momentum exactly;
3. maximize is descent on the negated gradient, bit for bit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import Lion

from tests.reference_runs import run_one

DTYPES = ("float32", "float64")


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(DTYPES),
    lr=st.floats(1e-4, 1.0),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.0, 0.999),
    steps=st.integers(1, 20),
)
def test_constant_gradient_moves_by_lr_each_step(seed, dtype, lr, beta1, beta2, steps):
    rng = np.random.default_rng(seed)
    n = 6
    g = (rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 3, n)).astype(dtype)
    theta0 = rng.uniform(-10, 10, n).astype(dtype)
    theta = theta0.copy()
    opt = Lion([theta], lr=lr, betas=(beta1, beta2))
    u = float(np.finfo(dtype).eps) / 2
    g64, theta64 = g.astype(np.float64), theta0.astype(np.float64)
    for t in range(1, steps + 1):
        opt.step([g])
        expected = theta64 - t * lr * np.sign(g64)
        # one rounding of θ and one of γ·sign per step, each at most u·max|θ|
        bound = 2 * t * u * (np.abs(theta64) + t * lr)
        assert np.all(np.abs(theta - expected) <= bound), (t, theta - expected, bound)
        m_expected = g64 * (1 - beta2**t)
        assert np.all(np.abs(opt.state[0]["exp_avg"] - m_expected) <= 4 * (t + 1) * u * np.abs(g64))
    assert "step" not in opt.state[0]  # Lion keeps no step counter


@st.composite
def schedules(draw):
    dtype = draw(st.sampled_from(DTYPES))
    steps = draw(st.integers(1, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    theta0 = rng.standard_normal(4).astype(dtype)
    grads = [None if draw(st.booleans()) and t > 0 else rng.standard_normal(4).astype(dtype)
             for t in range(steps)]
    hps = {
        "lr": draw(st.floats(1e-3, 1.0)),
        "betas": (draw(st.floats(0.0, 0.99)), draw(st.floats(0.0, 0.999))),
        "weight_decay": draw(st.sampled_from([0.0, 0.125, 0.5])),
    }
    return dtype, theta0, grads, hps


def _run(theta0, grads, **hps):
    theta, opt = run_one(Lion, theta0, grads, **hps)
    return theta, opt.state[0]


@settings(max_examples=100, deadline=None)
@given(run=schedules(), k=st.integers(-6, 6))
def test_scaling_the_gradients_by_a_power_of_two_changes_nothing(run, k):
    dtype, theta0, grads, hps = run
    c = 2.0**k
    base, st_base = _run(theta0, grads, **hps)
    scaled, st_scaled = _run(theta0, [None if g is None else (g * c).astype(dtype) for g in grads], **hps)
    assert np.array_equal(base, scaled)
    assert np.array_equal(st_base["exp_avg"] * c, st_scaled["exp_avg"])


@settings(max_examples=100, deadline=None)
@given(run=schedules())
def test_maximize_is_descent_on_the_negated_gradient(run):
    dtype, theta0, grads, hps = run
    up, st_up = _run(theta0, grads, maximize=True, **hps)
    down, st_down = _run(theta0, [None if g is None else -g for g in grads], **hps)
    assert np.array_equal(up, down)
    assert np.array_equal(st_up["exp_avg"], st_down["exp_avg"])
