"""The NumPy Rprop reference (``optimizer_conformance.reference.Rprop``): goldens and rule.

Every golden case runs through ``tests/test_reference.py`` (the runner, and 1e-13 in float64).
Properties of the rule, for random inputs: under a gradient of constant sign the step size is
min(γ·η₊ᵗ⁻¹, Γmax) — clamped regime included — and θ moves by their sum, exactly; under a
gradient that changes sign at every step θ moves every second step only and Δ halves down to
Γmin; only the signs of the gradients matter (bit for bit); maximizing g is minimizing −g.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference import Rprop

DTYPES = ("float32", "float64")


# -- properties ---------------------------------------------------------------------------

# Dyadic inputs and factors: every step size γ·η₊ᵏ stays exact in float32 and float64 for the
# few steps drawn, so the reference must agree with exact rational arithmetic bit for bit.
nonzero_dyadic = st.integers(1, 2**8).map(lambda k: Fraction(k, 2**6))


@settings(max_examples=100, deadline=None)
@given(
    theta0=st.lists(st.integers(-(2**10), 2**10).map(lambda k: Fraction(k, 2**6)),
                    min_size=1, max_size=5),
    signs=st.lists(st.sampled_from([-1, 1]), min_size=5, max_size=5),
    magnitudes=st.lists(nonzero_dyadic, min_size=10, max_size=10),
    lr_exponent=st.integers(0, 8),
    eta_plus=st.sampled_from([Fraction(5, 4), Fraction(3, 2), Fraction(2)]),
    max_exponent=st.integers(-6, 2),
    steps=st.integers(1, 10),
    dtype=st.sampled_from(DTYPES),
)
def test_constant_sign_step_size_growth_and_trajectory(
    theta0, signs, magnitudes, lr_exponent, eta_plus, max_exponent, steps, dtype
):
    """Δ_t = min(γ·η₊ᵗ⁻¹, Γmax) (γ ≤ Γmax), exactly, and θ_t = θ₀ − sign(g)·Σ Δ_s, whatever |g_t|.

    The step sizes are exact (dyadic, at most 5⁹ in the significand); θ rounds once per step.
    """
    n = len(theta0)
    lr = Fraction(1, 2**lr_exponent)
    step_max = max(lr, Fraction(2) ** max_exponent)
    theta = np.array([float(x) for x in theta0], dtype=dtype)
    opt = Rprop([theta], lr=float(lr), etas=(0.5, float(eta_plus)),
                step_sizes=(0.0, float(step_max)))
    exact = list(theta0)
    u = float(np.finfo(dtype).eps) / 2
    travelled = [abs(x) for x in theta0]
    for t in range(1, steps + 1):
        g = [s * magnitudes[(t + i) % 10] for i, s in enumerate(signs[:n])]
        opt.step([np.array([float(x) for x in g], dtype=dtype)])
        delta = min(lr * eta_plus ** (t - 1), step_max)
        exact = [x - s * delta for x, s in zip(exact, signs[:n], strict=True)]
        travelled = [b + abs(x) for b, x in zip(travelled, exact, strict=True)]
        assert opt.state[0]["step_size"].tolist() == [float(delta)] * n
        error = np.abs(theta.astype(np.float64) - np.array([float(x) for x in exact]))
        assert np.all(error <= u * np.array([float(b) for b in travelled])), (t, error)
    assert opt.state[0]["step"] == steps


@settings(max_examples=100, deadline=None)
@given(
    g0=st.lists(nonzero_dyadic.flatmap(lambda x: st.sampled_from([x, -x])), min_size=1, max_size=5),
    lr_exponent=st.integers(0, 4),
    min_exponent=st.integers(-10, -4),
    steps=st.integers(1, 12),
    dtype=st.sampled_from(DTYPES),
)
def test_sign_change_at_every_step(g0, lr_exponent, min_exponent, steps, dtype):
    """g_t = (−1)^(t−1)·g: θ moves on odd steps only, by Δ = max(γ·2^−k, Γmin) after k changes."""
    n = len(g0)
    lr = Fraction(1, 2**lr_exponent)
    step_min = Fraction(2) ** min_exponent
    theta = np.zeros(n, dtype=dtype)
    opt = Rprop([theta], lr=float(lr), etas=(0.5, 1.2), step_sizes=(float(step_min), 50.0))
    exact = [Fraction(0)] * n
    for t in range(1, steps + 1):
        g = [(-1) ** (t - 1) * x for x in g0]
        opt.step([np.array([float(x) for x in g], dtype=dtype)])
        delta = max(lr / 2 ** (t // 2), step_min)  # one halving per sign change (even steps)
        if t % 2 == 1:  # g·prev = 0 after a sign change (or at the start): move, no adaptation
            exact = [x - (1 if gi > 0 else -1) * delta for x, gi in zip(exact, g, strict=True)]
        assert opt.state[0]["step_size"].tolist() == [float(delta)] * n
        assert opt.state[0]["prev"].tolist() == ([float(x) for x in g] if t % 2 else [0.0] * n)
        assert theta.tolist() == [float(x) for x in exact]


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    steps=st.integers(1, 12),
    lr=st.floats(1e-4, 1.0),
    etas=st.sampled_from([(0.5, 1.2), (0.25, 2.0), (0.75, 1.5)]),
    step_sizes=st.sampled_from([(1e-6, 50.0), (1e-3, 0.5), (0.0, 1e-2)]),
    dtype=st.sampled_from(DTYPES),
)
def test_only_the_signs_of_the_gradients_matter(seed, steps, lr, etas, step_sizes, dtype):
    """Rescaling every gradient element by its own positive factor changes nothing, bit for bit."""
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(6).astype(dtype)
    grads = [rng.standard_normal(6) * (rng.random(6) < 0.8) for _ in range(steps)]  # with zeros
    a, b = theta0.copy(), theta0.copy()
    opt_a = Rprop([a], lr=lr, etas=etas, step_sizes=step_sizes)
    opt_b = Rprop([b], lr=lr, etas=etas, step_sizes=step_sizes)
    for g in grads:
        opt_a.step([g.astype(dtype)])
        opt_b.step([(g * 10.0 ** rng.uniform(-3, 3, 6)).astype(dtype)])
        assert np.array_equal(a, b)
        assert np.array_equal(opt_a.state[0]["step_size"], opt_b.state[0]["step_size"])
        assert np.array_equal(np.sign(opt_a.state[0]["prev"]), np.sign(opt_b.state[0]["prev"]))


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 10), dtype=st.sampled_from(DTYPES))
def test_maximizing_g_is_minimizing_minus_g(seed, steps, dtype):
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal(5).astype(dtype)
    up, down = theta0.copy(), theta0.copy()
    opt_up = Rprop([up], lr=0.1, maximize=True)
    opt_down = Rprop([down], lr=0.1)
    for _ in range(steps):
        g = rng.standard_normal(5).astype(dtype)
        opt_up.step([g])
        opt_down.step([-g])
        assert np.array_equal(up, down)
        assert np.array_equal(opt_up.state[0]["prev"], opt_down.state[0]["prev"])
