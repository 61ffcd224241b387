"""Properties of RAdam's rectification, and of the NumPy RAdam reference.

The golden cases (through the runner, and directly in float64) are in ``test_reference.py``,
which covers every spec's reference. Here:

1. ρ_t in exact rational arithmetic (for the double β₂, as torch computes it from): ρ₁ = 1, it
   increases, and ρ_t < t for every β₂ in (0, 1) — so no β₂ rectifies before step 6 (ρ_t > 5), nor
   the paper's rule before step 5 (ρ_t > 4); the crossings the golden cases rely on;
2. the reference takes exactly the SGD-with-momentum step γ·m̂ before the first step with ρ_t > 5
   (bit for bit on dyadic inputs) and the rectified step from that step on;
3. with β₂ ≤ 2/3 (ρ∞ ≤ 5) it never rectifies: under a constant gradient θ_t = θ₀ − t·γ·g exactly;
4. maximize is descent on the negated gradient, bit for bit.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from optimizer_conformance.derivations.radam import first_rectified_step, sma_length
from optimizer_conformance.reference import RAdam

DTYPES = ("float32", "float64")


@settings(max_examples=200, deadline=None)
@given(beta2=st.floats(1e-3, 1 - 1e-6, exclude_max=True), steps=st.integers(2, 40))
def test_sma_length_starts_at_one_increases_and_stays_below_t(beta2, steps):
    rho = [sma_length(beta2, t) for t in range(1, steps + 1)]
    assert rho[0] == 1
    for t in range(2, steps + 1):
        assert rho[t - 2] < rho[t - 1] < t, (beta2, t, float(rho[t - 1]))
    assert rho[-1] < 2 / (1 - Fraction(beta2)) - 1  # below ρ∞


def test_first_rectified_steps():
    """The crossings the golden cases are designed around (exact for the doubles)."""
    assert [first_rectified_step(b) for b in (0.999, 0.99, 0.95, 0.9, 0.75)] == [6, 6, 6, 6, 8]
    assert [first_rectified_step(b, 4) for b in (0.999, 0.99, 0.95, 0.9, 0.75)] == [5, 5, 5, 5, 6]
    assert first_rectified_step(0.5) is None and first_rectified_step(2 / 3) is None  # ρ∞ ≤ 5
    assert math.isclose(float(sma_length(0.999, 5)), 4.996, abs_tol=1e-3)
    assert math.isclose(float(sma_length(0.999, 6)), 5.994, abs_tol=1e-3)


def _rect(beta2: float, t: int) -> float:
    rho, rho_inf = float(sma_length(beta2, t)), 2 / (1 - beta2) - 1
    return math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))


@settings(max_examples=100, deadline=None)
@given(
    beta2=st.floats(0.7, 0.9999),
    lr_exponent=st.integers(0, 8),
    g=st.integers(-255, 255).filter(bool).map(lambda k: k / 256),
    eps_exponent=st.integers(-27, 0),
    steps=st.integers(1, 14),
)
def test_sgd_until_the_first_rectified_step_then_rectified(beta2, lr_exponent, g, eps_exponent, steps):
    """β₁ = 0.5 and dyadic inputs: m̂ = g exactly, so each unrectified step is exactly γ·g."""
    first = first_rectified_step(beta2)
    assume(all(abs(float(sma_length(beta2, t)) - 5) > 1e-9 for t in range(1, steps + 1)))
    lr, eps = 2.0**-lr_exponent, 2.0**eps_exponent
    theta = np.array([0.75])
    opt = RAdam([theta], lr=lr, betas=(0.5, beta2), eps=eps)
    for t in range(1, steps + 1):
        before = theta.copy()
        opt.step([np.array([g])])
        delta = float(theta[0] - before[0])
        if first is None or t < first:
            assert delta == -lr * g, (t, delta)
        else:
            bc2 = 1 - beta2**t
            expected = -lr * _rect(beta2, t) * g / (abs(g) + eps / math.sqrt(bc2))
            assert math.isclose(delta, expected, rel_tol=1e-9, abs_tol=1e-15), (t, delta, expected)


@settings(max_examples=100, deadline=None)
@given(
    beta1=st.sampled_from([0.0, 0.5]),
    beta2=st.sampled_from([0.0, 0.25, 0.5, 2 / 3]),
    theta0=st.integers(-1024, 1024).map(lambda k: k / 256),
    g=st.integers(-255, 255).map(lambda k: k / 256),
    lr_exponent=st.integers(0, 8),
    steps=st.integers(1, 16),
    dtype=st.sampled_from(DTYPES),
)
def test_never_rectified_below_two_thirds(beta1, beta2, theta0, g, lr_exponent, steps, dtype):
    """Dyadic inputs with few bits (m = g·(1 − 2⁻ᵗ) needs t + 8 bits): every value is exact even in
    float32, so the trajectory is exactly θ₀ − t·γ·g."""
    lr = 2.0**-lr_exponent
    theta = np.array([theta0], dtype=dtype)
    opt = RAdam([theta], lr=lr, betas=(beta1, beta2), eps=0.5)
    for t in range(1, steps + 1):
        opt.step([np.array([g], dtype=dtype)])
        assert theta[0] == Fraction(theta0) - t * Fraction(lr) * Fraction(g), (t, theta[0])


@st.composite
def schedules(draw):
    dtype = draw(st.sampled_from(DTYPES))
    steps = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    theta0 = rng.standard_normal(4).astype(dtype)
    grads = [None if draw(st.booleans()) and t > 0 else rng.standard_normal(4).astype(dtype)
             for t in range(steps)]
    hps = {
        "lr": draw(st.floats(1e-3, 1.0)),
        "betas": (draw(st.floats(0.0, 0.99)), draw(st.sampled_from([0.5, 0.9, 0.999]))),
        "eps": draw(st.sampled_from([1e-8, 1e-3, 0.5])),
        "weight_decay": draw(st.sampled_from([0.0, 0.125])),
        "decoupled_weight_decay": draw(st.booleans()),
    }
    return dtype, theta0, grads, hps


@settings(max_examples=100, deadline=None)
@given(run=schedules())
def test_maximize_is_descent_on_the_negated_gradient(run):
    dtype, theta0, grads, hps = run
    up, down = theta0.copy(), theta0.copy()
    opt_up, opt_down = RAdam([up], maximize=True, **hps), RAdam([down], **hps)
    for g in grads:
        opt_up.step([g])
        opt_down.step([None if g is None else -g])
    assert np.array_equal(up, down)
