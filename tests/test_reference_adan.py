"""Properties of the NumPy Adan reference (``optimizer_conformance.reference.Adan``).

The golden cases are in ``test_reference.py``, which covers every spec's reference. Here, for
random inputs:

1. under a constant gradient the difference average stays exactly 0 and the previous gradient is
   kept (negated) bit for bit, and θ_t = θ₀ − t·γ·g/(|g| + ε) within a running error bound (the
   closed form ``constant_gradient`` of ``derivations/adan.py``, proved);
2. scaling the gradients and ε by a power of two changes nothing, bit for bit (weight decay
   included): m, v, √n and the denominator scale, the step does not;
3. with zero gradients only the proximal decay acts: θ ← θ/(1 + γλ) at every step, bit for bit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import Adan

from tests.reference_runs import run_one

DTYPES = ("float32", "float64")


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 1.0),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.0, 0.99),
    beta3=st.floats(0.0, 0.999),
    eps=st.floats(1e-8, 1.0),
    steps=st.integers(1, 20),
)
def test_constant_gradient_closed_form(seed, lr, beta1, beta2, beta3, eps, steps):
    rng = np.random.default_rng(seed)
    n = 5
    g = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 3, n)
    theta0 = rng.uniform(-10, 10, n)
    theta = theta0.copy()
    opt = Adan([theta], lr=lr, betas=(beta1, beta2, beta3), eps=eps)
    per_step = lr * g / (np.abs(g) + eps)
    u = 2.0**-53
    bound = np.zeros(n)
    for t in range(1, steps + 1):
        opt.step([g])
        assert np.array_equal(opt.state[0]["exp_avg_diff"], np.zeros(n))
        assert np.array_equal(opt.state[0]["neg_pre_grad"], -g)
        expected = theta0 - t * per_step
        amplification = t + 1 / (1 - beta1**t) + 1 / (1 - beta3**t)
        bound += np.abs(theta0 - (t - 1) * per_step) + np.abs(per_step) * amplification
        error = np.abs(theta - expected)
        assert np.all(error <= 16 * u * bound), (t, error, 16 * u * bound)
    assert opt.state[0]["step"] == steps


@st.composite
def schedules(draw):
    dtype = draw(st.sampled_from(DTYPES))
    steps = draw(st.integers(1, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    theta0 = rng.standard_normal(4).astype(dtype)
    grads = [rng.standard_normal(4).astype(dtype) for _ in range(steps)]
    hps = {
        "lr": draw(st.floats(1e-3, 1.0)),
        "betas": (draw(st.floats(0.0, 0.99)), draw(st.floats(0.0, 0.99)), draw(st.floats(0.0, 0.999))),
        "eps": draw(st.sampled_from([1e-8, 1e-3, 0.5])),
        "weight_decay": draw(st.sampled_from([0.0, 0.125, 0.5])),
    }
    return dtype, theta0, grads, hps


def _run(theta0, grads, **hps):
    theta, opt = run_one(Adan, theta0, grads, **hps)
    return theta, opt.state[0]


@settings(max_examples=100, deadline=None)
@given(run=schedules(), k=st.integers(-6, 6))
def test_scaling_gradients_and_eps_by_a_power_of_two_changes_nothing(run, k):
    dtype, theta0, grads, hps = run
    c = 2.0**k
    base, st_base = _run(theta0, grads, **hps)
    scaled_grads = [(g * c).astype(dtype) for g in grads]
    scaled, st_scaled = _run(theta0, scaled_grads, **{**hps, "eps": hps["eps"] * c})
    assert np.array_equal(base, scaled)
    for key, power in (("exp_avg", 1), ("exp_avg_diff", 1), ("exp_avg_sq", 2), ("neg_pre_grad", 1)):
        assert np.array_equal(st_base[key] * c**power, st_scaled[key]), key


@settings(max_examples=100, deadline=None)
@given(run=schedules())
def test_zero_gradients_leave_only_the_proximal_decay(run):
    dtype, theta0, grads, hps = run
    theta, _ = _run(theta0, [np.zeros_like(g) for g in grads], **hps)
    expected = theta0.copy()
    for _ in grads:
        expected /= 1 + hps["lr"] * hps["weight_decay"]
    assert np.array_equal(theta, expected)
