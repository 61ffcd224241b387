"""Properties of the NumPy Schedule-Free AdamW reference (``optimizer_conformance.reference.ScheduleFreeAdamW``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. under a constant gradient, without warmup, r = 0 and no decay, z moves by γ·g/(|g| + ε) per
   step and x is the average of the z's: x_t = θ₀ − (t + 1)/2·γ·g/(|g| + ε), within a running
   error bound (``derivations/schedulefree_adamw.py``, proved);
2. scaling the gradients and ε by a power of two changes nothing (no weight decay): v scales by
   its square, the normalised gradient not at all — bit for bit;
3. a state_dict round trip into a fresh instance, mid-run and during warmup, changes nothing,
   bit for bit (the group's step count, γ_max and Σw travel with it).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import ScheduleFreeAdamW

from tests.reference_runs import run_one

DTYPES = ("float32", "float64")


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 1.0),
    beta1=st.floats(0.05, 0.95),
    beta2=st.floats(0.0, 0.999),
    eps=st.floats(1e-8, 1.0),
    steps=st.integers(1, 20),
)
def test_constant_gradient_closed_form(seed, lr, beta1, beta2, eps, steps):
    rng = np.random.default_rng(seed)
    n = 5
    g = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 3, n)
    theta0 = rng.uniform(-10, 10, n)
    theta = theta0.copy()
    opt = ScheduleFreeAdamW([theta], lr=lr, betas=(beta1, beta2), eps=eps)
    per_step = lr * g / (np.abs(g) + eps)
    u = 2.0**-53
    bound = np.zeros(n)
    for t in range(1, steps + 1):
        opt.step([g])
        z, x = opt.state[0]["z"], opt.state[0]["x"]
        # each step rounds z, x and y a few times; the normalised step carries the conditioning
        # of the bias correction, ~1/(1 − β₂ᵗ)
        bound += np.abs(theta0) + t * np.abs(per_step) * (4 + 1 / (1 - beta2**t))
        for actual, expected in ((z, theta0 - t * per_step), (x, theta0 - (t + 1) / 2 * per_step),
                                 (theta, beta1 * (theta0 - (t + 1) / 2 * per_step)
                                  + (1 - beta1) * (theta0 - t * per_step))):
            error = np.abs(actual - expected)
            assert np.all(error <= 16 * u * bound), (t, error, 16 * u * bound)
    assert opt.k == steps


@st.composite
def schedules(draw):
    dtype = draw(st.sampled_from(DTYPES))
    steps = draw(st.integers(1, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    theta0 = rng.standard_normal(4).astype(dtype)
    grads = [rng.standard_normal(4).astype(dtype) for _ in range(steps)]
    hps = {
        "lr": draw(st.floats(1e-3, 1.0)),
        "betas": (draw(st.floats(0.05, 0.95)), draw(st.floats(0.0, 0.999))),
        "eps": draw(st.sampled_from([1e-8, 1e-3, 0.5])),
        "warmup_steps": draw(st.integers(0, 6)),
        "r": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "weight_lr_power": draw(st.sampled_from([0.0, 1.0, 2.0])),
    }
    return dtype, theta0, grads, hps


def _run(theta0, grads, reload_at=None, **hps):
    theta, opt = run_one(ScheduleFreeAdamW, theta0, grads, reload_at=reload_at, **hps)
    return theta, opt.state[0]


@settings(max_examples=100, deadline=None)
@given(run=schedules(), k=st.integers(-6, 6))
def test_scaling_gradients_and_eps_by_a_power_of_two_changes_nothing(run, k):
    dtype, theta0, grads, hps = run
    c = 2.0**k
    base, st_base = _run(theta0, grads, **hps)
    scaled, st_scaled = _run(theta0, [(g * c).astype(dtype) for g in grads], **{**hps, "eps": hps["eps"] * c})
    assert np.array_equal(base, scaled)
    assert np.array_equal(st_base["z"], st_scaled["z"])
    assert np.array_equal(st_base["exp_avg_sq"] * c * c, st_scaled["exp_avg_sq"])


@settings(max_examples=100, deadline=None)
@given(run=schedules(), weight_decay=st.sampled_from([0.0, 0.25]), data=st.data())
def test_state_dict_round_trip_changes_nothing(run, weight_decay, data):
    dtype, theta0, grads, hps = run
    reload_at = data.draw(st.integers(1, len(grads)))
    straight, st_straight = _run(theta0, grads, weight_decay=weight_decay, **hps)
    resumed, st_resumed = _run(theta0, grads, reload_at=reload_at, weight_decay=weight_decay, **hps)
    assert np.array_equal(straight, resumed)
    for key in ("z", "x", "exp_avg_sq"):
        assert np.array_equal(st_straight[key], st_resumed[key])
