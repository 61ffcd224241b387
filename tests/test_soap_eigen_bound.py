"""The eigen-solver bounds of the SOAP spec (``derivations/soap.py``), checked against perturbations.

The goldens' tolerance for SOAP's eigenbases rests on two first-order perturbation bounds; here
they are checked directly, on random symmetric matrices with separated eigenvalues:

1. eigenvectors: |δQ_ik| ≤ Σ_{j≠k} |Q_ij|·‖δA‖₂/|λ_k − λ_j| (``_eig_bound``, from ‖δA‖_F ≥ ‖δA‖₂);
2. the QR factor: ‖δQ‖_F ≤ √2·‖P⁻¹‖₂·‖δP‖_F (Sun 1991; ``_qr_bound``), applied to every component;
3. the cases refuse eigenvalues that are not separated (the order of the eigenvectors, in which v
   is stored, must be decided far above rounding).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_conformance.derivations import soap


def _separated_symmetric(rng, n):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.cumsum(rng.uniform(0.2, 1.0, n))  # gaps ≥ 0.2, largest ≤ n
    return (q * eigenvalues) @ q.T


def _aligned(q, reference):
    """q with each column's sign chosen to match reference (eigenvectors have no sign)."""
    return q * np.where(np.sum(q * reference, axis=0) < 0, -1.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 4))
def test_eigenvector_perturbation_is_within_the_bound(seed, n):
    rng = np.random.default_rng(seed)
    a = _separated_symmetric(rng, n)
    delta = rng.standard_normal((n, n)) * 1e-8
    delta = (delta + delta.T) / 2
    q, main, _ = soap._eig_bound(a, np.abs(delta))  # ‖e_A‖_F in "units" of 1: the perturbation itself
    _, q_perturbed = np.linalg.eigh(a + delta)
    moved = np.abs(_aligned(q_perturbed[:, ::-1], q) - q)
    assert np.all(moved <= 1.01 * main + 1e-15)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 4))
def test_qr_factor_perturbation_is_within_the_bound(seed, n):
    rng = np.random.default_rng(seed)
    p = _separated_symmetric(rng, n) @ np.linalg.qr(rng.standard_normal((n, n)))[0]
    delta = rng.standard_normal((n, n)) * 1e-8
    q, main, _ = soap._qr_bound(p, np.abs(delta), np.zeros((n, n)))
    q_perturbed, _ = np.linalg.qr(p + delta)
    moved = np.abs(_aligned(q_perturbed, q) - q)
    assert np.all(moved <= 1.01 * main + 1e-15)


def test_a_repeated_eigenvalue_is_refused():
    with mpmath.workdps(40):
        twice = np.array([[mpmath.mpf(2), mpmath.mpf(0)], [mpmath.mpf(0), mpmath.mpf(2)]], dtype=object)
        with pytest.raises(ValueError, match="not separated"):
            soap._eig_desc_exact(twice)
        values, vectors = soap._eig_desc_exact(
            np.array([[mpmath.mpf(3), mpmath.mpf(1)], [mpmath.mpf(1), mpmath.mpf(2)]], dtype=object))
        assert values[0] > values[1]  # decreasing, as the official code's flipped eigh
        assert all(max(vectors[:, k], key=abs) > 0 for k in range(2))  # the goldens' sign convention
