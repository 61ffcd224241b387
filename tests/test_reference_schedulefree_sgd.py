"""Properties of the NumPy Schedule-Free SGD reference (``optimizer_conformance.reference.ScheduleFreeSGD``).

The golden cases are in ``test_reference.py``. Here, for random inputs:

1. under a constant gradient, without warmup, r = 0 and no decay: z_t = θ₀ − t·γ·g,
   x_t = θ₀ − (t + 1)/2·γ·g and y_t = μ·x_t + (1 − μ)·z_t, within a running error bound
   (``derivations/schedulefree_sgd.py``, proved);
2. without weight decay the trajectory is equivariant under scaling: gradients and initial
   parameters scaled by a power of two give the scaled trajectory, bit for bit;
3. a state_dict round trip into a fresh instance, mid-run and during warmup, changes nothing,
   bit for bit (the group's step count, γ_max and Σw travel with it).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import ScheduleFreeSGD

from tests.reference_runs import run_one

DTYPES = ("float32", "float64")


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lr=st.floats(1e-4, 1.0),
    momentum=st.floats(0.05, 0.95),
    steps=st.integers(1, 20),
)
def test_constant_gradient_closed_form(seed, lr, momentum, steps):
    rng = np.random.default_rng(seed)
    n = 5
    g = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 3, n)
    theta0 = rng.uniform(-10, 10, n)
    theta = theta0.copy()
    opt = ScheduleFreeSGD([theta], lr=lr, momentum=momentum)
    per_step = lr * g
    u = 2.0**-53
    bound = np.zeros(n)
    for t in range(1, steps + 1):
        opt.step([g])
        z, x = opt.state[0]["z"], opt.state[0]["x"]
        bound += np.abs(theta0) + 4 * t * np.abs(per_step)  # a few roundings of z, x and y per step
        expected_z, expected_x = theta0 - t * per_step, theta0 - (t + 1) / 2 * per_step
        for actual, expected in ((z, expected_z), (x, expected_x),
                                 (theta, momentum * expected_x + (1 - momentum) * expected_z)):
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
        "momentum": draw(st.floats(0.05, 0.95)),
        "warmup_steps": draw(st.integers(0, 6)),
        "r": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "weight_lr_power": draw(st.sampled_from([0.0, 1.0, 2.0])),
    }
    return dtype, theta0, grads, hps


def _run(theta0, grads, reload_at=None, **hps):
    theta, opt = run_one(ScheduleFreeSGD, theta0, grads, reload_at=reload_at, **hps)
    return theta, opt.state[0]


@settings(max_examples=100, deadline=None)
@given(run=schedules(), k=st.integers(-6, 6))
def test_scaling_params_and_gradients_by_a_power_of_two_scales_the_trajectory(run, k):
    dtype, theta0, grads, hps = run
    c = 2.0**k
    base, st_base = _run(theta0, grads, **hps)
    scaled, st_scaled = _run((theta0 * c).astype(dtype), [(g * c).astype(dtype) for g in grads], **hps)
    assert np.array_equal(base * c, scaled)
    assert np.array_equal(st_base["z"] * c, st_scaled["z"])
    assert np.array_equal(st_base["x"] * c, st_scaled["x"])


@settings(max_examples=100, deadline=None)
@given(run=schedules(), weight_decay=st.sampled_from([0.0, 0.25]), data=st.data())
def test_state_dict_round_trip_changes_nothing(run, weight_decay, data):
    dtype, theta0, grads, hps = run
    reload_at = data.draw(st.integers(1, len(grads)))
    straight, st_straight = _run(theta0, grads, weight_decay=weight_decay, **hps)
    resumed, st_resumed = _run(theta0, grads, reload_at=reload_at, weight_decay=weight_decay, **hps)
    assert np.array_equal(straight, resumed)
    for key in ("z", "x"):
        assert np.array_equal(st_straight[key], st_resumed[key])
