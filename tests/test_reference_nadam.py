"""Properties of the NumPy NAdam reference (``optimizer_conformance.reference.NAdam``).

The golden cases (through the runner, and directly in float64) are in ``test_reference.py``,
which covers every spec's reference. Here, for random inputs:

1. with momentum_decay ψ = 0 the cache is β₁/2 and the μ product (β₁/2)ᵗ — on dyadic β₁ exactly;
2. with β₁ = 0 NAdam is bias-corrected RMSprop: under a constant gradient
   θ_t = θ₀ − t·γ·g/(|g| + ε) within a running error bound, and the μ product is 0;
3. the trajectory does not depend on the scale of the gradients when ε scales with them (without
   weight decay) — by powers of two, bit for bit; maximize is descent on the negated gradient;
4. a state_dict round trip in mid-run changes nothing, and keeps the μ product a Python float;
5. the golden ``nadam/resume`` case is built so that torch's float32 μ product is exact there (its
   cast to the parameter's dtype on load_state_dict must change no number).
"""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.conformance.kinds import load_spec, load_variant
from optimizer_conformance.reference import NAdam

from tests.reference_runs import run_one

DTYPES = ("float32", "float64")


@settings(max_examples=100, deadline=None)
@given(
    beta1=st.sampled_from([0.5, 0.75, 0.875, 0.9375]),
    steps=st.integers(1, 12),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_zero_momentum_decay_gives_half_beta1(beta1, steps, dtype, seed):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(3).astype(dtype)
    opt = NAdam([theta], lr=0.01, betas=(beta1, 0.999), momentum_decay=0.0)
    for t in range(1, steps + 1):
        opt.step([rng.standard_normal(3).astype(dtype)])
        assert opt.state[0]["mu_product"] == (beta1 / 2) ** t  # dyadic: exact in a double


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 1.0),
    beta2=st.floats(0.0, 0.999),
    eps=st.floats(1e-8, 1.0),
    momentum_decay=st.sampled_from([0.0, 4e-3, 0.5]),
    steps=st.integers(1, 20),
)
def test_beta1_zero_is_bias_corrected_rmsprop(seed, lr, beta2, eps, momentum_decay, steps):
    """θ_t = θ₀ − t·γ·g/(|g| + ε). Bound: each step rounds θ and the step (a few u each), and the
    step's relative error carries the conditioning of 1 − β₂ˢ and the ~s roundings of v."""
    rng = np.random.default_rng(seed)
    n = 5
    g = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 3, n)
    theta0 = rng.uniform(-10, 10, n)
    theta = theta0.copy()
    opt = NAdam([theta], lr=lr, betas=(0.0, beta2), eps=eps, momentum_decay=momentum_decay)
    per_step = lr * g / (np.abs(g) + eps)
    u = 2.0**-53
    bound = np.zeros(n)
    for t in range(1, steps + 1):
        opt.step([g])
        assert opt.state[0]["mu_product"] == 0.0
        expected = theta0 - t * per_step
        bound += np.abs(theta0 - (t - 1) * per_step) + np.abs(per_step) * (t + 1 / (1 - beta2**t))
        error = np.abs(theta - expected)
        assert np.all(error <= 8 * u * bound), (t, error, 8 * u * bound)


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
        "momentum_decay": draw(st.sampled_from([0.0, 4e-3, 0.25])),
    }
    return dtype, theta0, grads, hps


def _run(theta0, grads, **hps):
    theta, opt = run_one(NAdam, theta0, grads, **hps)
    return theta, opt


@settings(max_examples=100, deadline=None)
@given(run=schedules(), k=st.integers(-6, 6))
def test_scaling_gradients_and_eps_by_a_power_of_two_changes_nothing(run, k):
    dtype, theta0, grads, hps = run
    c = 2.0**k
    base, opt_base = _run(theta0, grads, **hps)
    scaled_grads = [None if g is None else (g * c).astype(dtype) for g in grads]
    scaled, opt_scaled = _run(theta0, scaled_grads, **{**hps, "eps": hps["eps"] * c})
    assert np.array_equal(base, scaled)
    assert np.array_equal(opt_base.state[0]["exp_avg"] * c, opt_scaled.state[0]["exp_avg"])
    assert opt_base.state[0]["mu_product"] == opt_scaled.state[0]["mu_product"]


@settings(max_examples=100, deadline=None)
@given(run=schedules(), weight_decay=st.sampled_from([0.0, 0.125, 0.5]), decoupled=st.booleans())
def test_maximize_is_descent_on_the_negated_gradient(run, weight_decay, decoupled):
    dtype, theta0, grads, hps = run
    extra = {"weight_decay": weight_decay, "decoupled_weight_decay": decoupled}
    up, _ = _run(theta0, grads, maximize=True, **extra, **hps)
    down, _ = _run(theta0, [None if g is None else -g for g in grads], **extra, **hps)
    assert np.array_equal(up, down)


@settings(max_examples=100, deadline=None)
@given(run=schedules(), data=st.data())
def test_state_dict_round_trip_keeps_the_product_exact(run, data):
    dtype, theta0, grads, hps = run
    straight, opt = _run(theta0, grads, **hps)
    at = data.draw(st.integers(0, len(grads)))
    resumed = theta0.copy()
    opt2 = NAdam([resumed], **hps)
    for t, g in enumerate(grads):
        if t == at:
            sd = copy.deepcopy(opt2.state_dict())
            opt2 = NAdam([resumed], lr=1.0)
            opt2.load_state_dict(sd)
        opt2.step([g])
    assert np.array_equal(straight, resumed)
    assert type(opt2.state[0]["mu_product"]) is float
    assert opt2.state[0]["mu_product"] == opt.state[0]["mu_product"]


def test_resume_case_products_are_exact_in_float32():
    """torch casts mu_product to the parameter's dtype on load_state_dict (float32 → float64): the
    resume case keeps every product exact in float32 so that the cast changes nothing."""
    spec = load_spec("nadam")
    (case,) = [c for c in spec.cases if c.id == "nadam/resume"]
    f32 = load_variant("nadam", "nadam.float32_mu_product")["nadam/resume"]
    for name, rows in case.expected_state.items():
        exact, rounded = rows["mu_product"], f32.expected_state[name]["mu_product"]
        assert np.array_equal(exact, rounded, equal_nan=True), name
        assert np.array_equal(exact[1:], exact[1:].astype(np.float32).astype(np.float64), equal_nan=True)
