"""Properties of the NumPy Muon reference (``optimizer_conformance.reference.Muon``).

The golden cases (through the runner, and directly in float64 within 1e-13) are checked for
every spec in ``test_reference.py``. Here, properties the rule implies, for random inputs: the EMA
buffer follows its closed form under a constant gradient, exactly on dyadic inputs; many cubic
Newton–Schulz steps orthogonalise (every singular value of the step is the lr adjustment); above
ε the trajectory does not depend on the scale of the gradients (by powers of two: bit for bit);
without momentum, a constant gradient pulls θ geometrically to its decay fixed point.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.reference.muon import Muon, newton_schulz

DTYPES = ("float32", "float64")
SHAPES = st.sampled_from([(2, 2), (3, 4), (4, 2), (2, 5), (5, 3)])

# Dyadic inputs with few significant bits: the recurrences below stay exact in float64.
dyadic = st.integers(-(2**8), 2**8).map(lambda k: Fraction(k, 2**6))
momenta = st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(3, 4)])


def _matrix(draw_values, shape) -> np.ndarray:
    return np.array([float(x) for x in draw_values], dtype=np.float64).reshape(shape)


@settings(max_examples=100, deadline=None)
@given(shape=SHAPES, data=st.data(), mu=momenta, nesterov=st.booleans(), steps=st.integers(1, 6))
def test_buffer_follows_its_closed_form_exactly(shape, data, mu, nesterov, steps):
    """Constant g: B_t = (1 − μᵗ)·g, exactly (dyadic μ and g), with and without Nesterov."""
    n = shape[0] * shape[1]
    g = data.draw(st.lists(dyadic, min_size=n, max_size=n))
    theta = np.zeros(shape)
    opt = Muon([theta], lr=0.125, momentum=float(mu), nesterov=nesterov)
    for t in range(1, steps + 1):
        opt.step([_matrix(g, shape)])
        expected = [float((1 - mu**t) * x) for x in g]
        assert opt.state[0]["momentum_buffer"].ravel().tolist() == expected


@settings(max_examples=50, deadline=None)
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1), lr_exponent=st.integers(0, 4))
def test_many_cubic_steps_orthogonalise(shape, seed, lr_exponent):
    """The cubic step X ← 1.5X − 0.5XXᵀX, iterated, converges to the polar factor: from θ = 0, one
    step without momentum or decay moves θ by lr·s times a matrix with all singular values 1."""
    rng = np.random.default_rng(seed)
    # a well-conditioned gradient: singular values in [1/2, 1] in random directions
    k = min(shape)
    left, _ = np.linalg.qr(rng.standard_normal((shape[0], k)))
    right, _ = np.linalg.qr(rng.standard_normal((shape[1], k)))
    g = left @ np.diag(rng.uniform(0.5, 1.0, k)) @ right.T
    lr = 2.0**-lr_exponent
    theta = np.zeros(shape)
    opt = Muon([theta], lr=lr, weight_decay=0.0, momentum=0.0, ns_coefficients=(1.5, -0.5, 0.0), ns_steps=40)
    opt.step([g])
    scale = math.sqrt(max(1, shape[0] / shape[1]))
    singular = np.linalg.svd(-theta / (lr * scale), compute_uv=False)
    np.testing.assert_allclose(singular, np.ones(k), rtol=0, atol=1e-10)
    np.testing.assert_allclose(-theta / (lr * scale), left @ right.T, rtol=0, atol=1e-10)


@settings(max_examples=100, deadline=None)
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1), k=st.integers(-6, 6), nesterov=st.booleans(),
       dtype=st.sampled_from(DTYPES))
def test_trajectory_does_not_depend_on_the_gradient_scale(shape, seed, k, nesterov, dtype):
    """Above ε, NS(2ᵏ·U) = NS(U): gradients scaled by a power of two give the same θ, bit for bit
    (the EMA scales exactly, and so does the Frobenius norm)."""
    rng = np.random.default_rng(seed)
    grads = [rng.integers(-128, 128, size=shape) / 64 for _ in range(4)]
    grads = [gr + (gr == 0) for gr in grads]  # no zero matrix: stay far above ε
    theta0 = rng.integers(-128, 128, size=shape) / 64
    thetas = []
    for scale in (1.0, 2.0**k):
        theta = theta0.astype(dtype)
        opt = Muon([theta], lr=0.125, weight_decay=0.25, momentum=0.75, nesterov=nesterov)
        for gr in grads:
            opt.step([(gr * scale).astype(dtype)])
        thetas.append(theta)
    assert thetas[0].tobytes() == thetas[1].tobytes()


@settings(max_examples=50, deadline=None)
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 12),
       lam=st.sampled_from([0.125, 0.5, 2.0]))
def test_no_momentum_decays_to_the_fixed_point(shape, seed, steps, lam):
    """μ = 0, constant g: θ_t = dᵗθ₀ − s·NS(g)·(1 − dᵗ)/λ with d = 1 − γλ (the proved closed form)."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(shape)
    theta0 = rng.standard_normal(shape)
    lr = 0.25
    theta = theta0.copy()
    opt = Muon([theta], lr=lr, weight_decay=lam, momentum=0.0)
    for _ in range(steps):
        opt.step([g])
    d = 1 - lr * lam
    ns = newton_schulz(g, (3.4445, -4.775, 2.0315), 5, 1e-7)
    s = math.sqrt(max(1, shape[0] / shape[1]))
    np.testing.assert_allclose(theta, d**steps * theta0 - s * ns * (1 - d**steps) / lam, rtol=0, atol=1e-12)
