"""Properties of the NumPy Adamax reference (``optimizer_conformance.reference.Adamax``).

The golden cases (through the runner, and directly in float64) are in ``test_reference.py``,
which covers every spec's reference. Here, for random inputs:

1. under a constant gradient the infinity norm is |g| + ε from the first step on, bit for bit, and
   θ_t = θ₀ − t·γ·g/(|g| + ε) within a running error bound (``derivations/adamax.py``, proved);
2. the trajectory does not depend on the scale of the gradients when ε scales with them (without
   weight decay): u and m scale with the gradients, the step m/u does not — by powers of two, bit
   for bit;
3. maximize is descent on the negated gradient, bit for bit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import Adamax

from tests.reference_runs import run_one

DTYPES = ("float32", "float64")


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 1.0),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.0, 0.999),
    eps=st.floats(1e-8, 1.0),
    steps=st.integers(1, 20),
)
def test_constant_gradient_closed_form(seed, lr, beta1, beta2, eps, steps):
    """u_t = fl(|g| + ε) exactly (β₂·u < u never wins); θ_t = θ₀ − t·γ·g/(|g| + ε) within a bound.

    Bound: each step rounds θ and the step (a few u each), and the step's relative error carries
    the conditioning of the bias correction, ~u/(1 − β₁ˢ), and the ~s roundings of m's recurrence.
    """
    rng = np.random.default_rng(seed)
    n = 5
    g = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 3, n)
    theta0 = rng.uniform(-10, 10, n)
    theta = theta0.copy()
    opt = Adamax([theta], lr=lr, betas=(beta1, beta2), eps=eps)
    per_step = lr * g / (np.abs(g) + eps)
    u = 2.0**-53
    bound = np.zeros(n)
    for t in range(1, steps + 1):
        opt.step([g])
        assert np.array_equal(opt.state[0]["exp_inf"], np.abs(g) + eps)
        expected = theta0 - t * per_step
        bound += np.abs(theta0 - (t - 1) * per_step) + np.abs(per_step) * (t + 1 / (1 - beta1**t))
        error = np.abs(theta - expected)
        assert np.all(error <= 8 * u * bound), (t, error, 8 * u * bound)
    assert opt.state[0]["step"] == steps


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
        "eps": draw(st.sampled_from([1e-8, 1e-3, 0.5])),
    }
    return dtype, theta0, grads, hps


def _run(theta0, grads, **hps):
    theta, opt = run_one(Adamax, theta0, grads, **hps)
    return theta, opt.state[0]


@settings(max_examples=100, deadline=None)
@given(run=schedules(), k=st.integers(-6, 6))
def test_scaling_gradients_and_eps_by_a_power_of_two_changes_nothing(run, k):
    dtype, theta0, grads, hps = run
    c = 2.0**k
    base, st_base = _run(theta0, grads, **hps)
    scaled_grads = [None if g is None else (g * c).astype(dtype) for g in grads]
    scaled, st_scaled = _run(theta0, scaled_grads, **{**hps, "eps": hps["eps"] * c})
    assert np.array_equal(base, scaled)
    assert np.array_equal(st_base["exp_inf"] * c, st_scaled["exp_inf"])
    assert np.array_equal(st_base["exp_avg"] * c, st_scaled["exp_avg"])


@settings(max_examples=100, deadline=None)
@given(run=schedules(), weight_decay=st.sampled_from([0.0, 0.125, 0.5]))
def test_maximize_is_descent_on_the_negated_gradient(run, weight_decay):
    dtype, theta0, grads, hps = run
    up, _ = _run(theta0, grads, maximize=True, weight_decay=weight_decay, **hps)
    down, _ = _run(theta0, [None if g is None else -g for g in grads],
                   weight_decay=weight_decay, **hps)
    assert np.array_equal(up, down)
