"""Properties of the NumPy AdaBelief reference (``optimizer_conformance.reference.AdaBelief``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. with a zero gradient only ε enters the belief, and it accumulates: s_t = ε·(1 − β₂ᵗ)/(1 − β₂)
   within a rounding bound, m stays exactly 0 and θ only decays (``derivations/adabelief.py``,
   proved);
2. under a constant gradient s_t follows its closed form (1 − β₂)·g²·β₁²·(β₁²ᵗ − β₂ᵗ)/(β₁² − β₂)
   + ε·(1 − β₂ᵗ)/(1 − β₂) within a rounding bound (proved);
3. maximize is descent on the negated gradient, bit for bit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import AdaBelief

from tests.reference_runs import run_one

DTYPES = ("float32", "float64")


@settings(max_examples=100, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    lr=st.floats(1e-4, 1.0),
    beta2=st.floats(0.0, 0.999),
    eps=st.floats(1e-16, 1.0),
    weight_decay=st.sampled_from([0.0, 0.125, 0.5]),
    steps=st.integers(1, 20),
)
def test_zero_gradient_accumulates_eps_and_only_decays(dtype, lr, beta2, eps, weight_decay, steps):
    theta0 = np.array([-3.0, -0.5, 0.25, 2.0], dtype=dtype)
    theta = theta0.copy()
    opt = AdaBelief([theta], lr=lr, betas=(0.9, beta2), eps=eps, weight_decay=weight_decay)
    u = float(np.finfo(dtype).eps) / 2
    for t in range(1, steps + 1):
        opt.step([np.zeros(4, dtype=dtype)])
        s = opt.state[0]["exp_avg_var"]
        expected_s = eps * sum(beta2**k for k in range(t))  # ε·(1 − β₂ᵗ)/(1 − β₂), without cancellation
        assert np.all(np.abs(s - expected_s) <= 4 * t * u * expected_s + 1e-300)
        assert not np.any(opt.state[0]["exp_avg"])
        expected = theta0.astype(np.float64) * (1 - lr * weight_decay) ** t
        assert np.all(np.abs(theta - expected) <= 2 * t * u * np.abs(theta0))
    assert opt.state[0]["step"] == steps


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    beta1=st.floats(0.0, 0.95),
    beta2=st.floats(0.0, 0.999),
    eps=st.floats(1e-16, 1.0),
    steps=st.integers(1, 15),
)
def test_constant_gradient_belief_closed_form(seed, beta1, beta2, eps, steps):
    rng = np.random.default_rng(seed)
    g = rng.choice([-1.0, 1.0], 5) * 10.0 ** rng.uniform(-2, 2, 5)
    theta = rng.uniform(-10, 10, 5)
    opt = AdaBelief([theta], lr=1e-3, betas=(beta1, beta2), eps=eps)
    u = 2.0**-53
    for t in range(1, steps + 1):
        opt.step([g])
        # the geometric sums of the closed form, summed term by term (no cancellation in the oracle)
        geo = sum(beta2 ** (t - k) * beta1 ** (2 * k - 2) for k in range(1, t + 1))  # (β₁²ᵗ − β₂ᵗ)/(β₁² − β₂)
        belief = (1 - beta2) * g**2 * beta1**2 * geo
        accumulated = eps * sum(beta2**k for k in range(t))
        expected = belief + accumulated
        # the residual g − m = g·β₁ᵗ is computed by cancellation: relative error ~ u/β₁ᵗ per step
        scale = (1 - beta2) * g**2 * sum(beta2 ** (t - k) for k in range(1, t + 1)) + accumulated
        assert np.all(np.abs(opt.state[0]["exp_avg_var"] - expected) <= 64 * t * u * scale)
        assert np.allclose(opt.state[0]["exp_avg"], g * (1 - beta1**t), rtol=16 * t * u, atol=0)


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
        "eps": draw(st.sampled_from([1e-16, 1e-8, 1e-3, 0.5])),
        "weight_decay": draw(st.sampled_from([0.0, 0.125, 0.5])),
    }
    return dtype, theta0, grads, hps


def _run(theta0, grads, **hps):
    theta, opt = run_one(AdaBelief, theta0, grads, **hps)
    return theta, opt.state[0]


@settings(max_examples=100, deadline=None)
@given(run=schedules())
def test_maximize_is_descent_on_the_negated_gradient(run):
    dtype, theta0, grads, hps = run
    up, st_up = _run(theta0, grads, maximize=True, **hps)
    down, st_down = _run(theta0, [None if g is None else -g for g in grads], **hps)
    assert np.array_equal(up, down)
    assert np.array_equal(st_up["exp_avg_var"], st_down["exp_avg_var"])
