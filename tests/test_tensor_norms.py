"""The per-tensor norm functions of ``derivations/tensor.py`` (``SumSq``, ``Norm``): exact values in
mpmath and first-order error bounds that hold for float32 evaluations."""

from __future__ import annotations

import mpmath
import numpy as np
from optimizer_conformance.derivations.tensor import Norm, SumSq


def _objects(values):
    out = np.empty(len(values), dtype=object)
    out[:] = [mpmath.mpf(x) for x in values]
    return out


def test_exact_values_broadcast_over_the_tensor():
    x = _objects([3.0, -4.0, 12.0, 0.0]).reshape(2, 2)
    assert all(v == 169 for v in SumSq.exact(x).reshape(-1))
    assert all(v == 13 for v in Norm.exact(x).reshape(-1))
    scalar = np.array(mpmath.mpf(-2.5), dtype=object)
    assert Norm.exact(scalar).item() == 2.5


def test_bounds_cover_float32_evaluation():
    rng = np.random.default_rng(7)
    u32 = 2.0**-24
    for n in (1, 5, 64, 1000):
        x = rng.standard_normal(n)
        x32 = x.astype(np.float32).astype(np.float64)  # exact inputs
        exact_ss = float(np.sum(x32 * x32))  # fsum-accurate enough in float64 for the check
        s, es = SumSq.bound(x32, np.zeros(n))
        assert s[0] == exact_ss
        assert abs(float(np.sum(np.float32(x32) ** 2, dtype=np.float32)) - exact_ss) <= u32 * es[0]
        nv, en = Norm.bound(x32, np.zeros(n))
        computed = float(np.linalg.norm(x32.astype(np.float32)))
        assert abs(computed - np.sqrt(exact_ss)) <= u32 * en[0]
        # the bound is not vacuous: at most ~n relative
        assert en[0] <= (n + 2) * nv[0]


def test_zero_tensor_and_propagated_error():
    v, e = Norm.bound(np.zeros(3), np.zeros(3))
    assert v[0] == 0 and e[0] == 0
    # first order: d‖x‖ = Σ xᵢ dxᵢ / ‖x‖
    x = np.array([3.0, 4.0])
    assert np.allclose(Norm.propagate(x, np.array([1.0, 1.0])), 7 / 5)
    assert np.allclose(SumSq.propagate(x, np.array([1.0, 1.0])), 14)
