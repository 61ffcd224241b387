"""The reduction over every parameter of a step (``derivations/tensor.py`` ``Total``, scope "step"):
its exact value and error bound, the evaluator summing it across parameters (and param groups) and
only over those with a gradient, and the text and MathML printers."""

from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp
from optimizer_conformance.derivations import docs, text
from optimizer_conformance.derivations.cases import CaseBuilder
from optimizer_conformance.derivations.evaluate import evaluate
from optimizer_conformance.derivations.rule import (
    Assign,
    Hyperparameter,
    Rule,
    StateVar,
    g,
    t,
    theta,
)
from optimizer_conformance.derivations.tensor import Norm, Total

lr = sp.Symbol("gamma", positive=True)
total = sp.Symbol("T", real=True)

# θ ← θ − γ·Σ_params g: every element of every parameter moves by the same amount
RULE = Rule(
    id="total_demo",
    title="descend along the sum of every gradient element",
    hyperparameters=(Hyperparameter("lr", lr, 1.0),),
    state=(StateVar("step", t, sp.Integer(0), count=True),),
    body=(Assign("step", t, t + 1), Assign("total", total, Total(g)), Assign("update", theta, theta - lr * total)),
)


def _objects(values):
    out = np.empty(len(values), dtype=object)
    out[:] = [mpmath.mpf(x) for x in values]
    return out


def test_exact_value_is_the_sum_broadcast():
    x = _objects([3.0, -4.0, 12.0, 0.5])
    assert all(v == 11.5 for v in Total.exact(x))


def test_bound_covers_float32_summation_in_any_blocking():
    rng = np.random.default_rng(11)
    u32 = 2.0**-24
    for sizes in ((1,), (1, 5, 6), (64, 3, 200)):
        parts = [rng.standard_normal(n).astype(np.float32).astype(np.float64) for n in sizes]
        x = np.concatenate(parts)
        exact = float(mpmath.fsum(x))
        s, e = Total.bound(x, np.zeros(x.size))
        assert abs(s[0] - exact) <= 1e-12 * np.sum(np.abs(x))
        # per parameter in float32, then the partial sums in float32 (pytorch-style), and flat
        blocked = np.float32(0)
        for p in parts:
            blocked = np.float32(blocked + np.sum(p.astype(np.float32), dtype=np.float32))
        flat = np.sum(x.astype(np.float32), dtype=np.float32)
        for computed in (float(blocked), float(flat)):
            assert abs(computed - exact) <= u32 * e[0]
        assert e[0] <= x.size * np.sum(np.abs(x))  # not vacuous


def test_propagated_error_is_the_sum_of_errors():
    assert np.allclose(Total.propagate(np.array([1.0, -2.0]), np.array([0.5, 0.25])), 0.75)


def test_evaluator_sums_over_every_param_with_a_grad_across_groups():
    case = CaseBuilder(id="total/demo", title="", purpose="", hyperparameters={"lr": "0.5"},
                       grad_exponents=[0, 0, 0], seed=5,
                       groups=[(("scalar", "vector"), {}), (("matrix",), {"lr": "0.25"})],
                       no_grad={"vector": [2]}).build({"lr": "1.0"})
    snaps = evaluate(RULE, case)
    lrs = {"scalar": 0.5, "vector": 0.5, "matrix": 0.25}
    params = {p.name: [mpmath.mpf(x) for x in p.values] for p in case.params}
    for step, snap in zip(case.steps, snaps, strict=True):
        with_grad = {k: v for k, v in step.grads.items() if v is not None}
        s = mpmath.fsum(x for vs in with_grad.values() for x in vs)  # dyadic: exact
        for name in params:
            if name in with_grad:
                params[name] = [x - mpmath.mpf(lrs[name]) * s for x in params[name]]
            assert snap.params[name] == params[name], (name, step)


def test_evaluator_keeps_per_tensor_norms_per_tensor():
    """A per-tensor function (scope "tensor") in the same rule still reduces over one parameter."""
    rule = Rule(id="norm_demo", title="", hyperparameters=(Hyperparameter("lr", lr, 1.0),),
                state=(StateVar("step", t, sp.Integer(0), count=True),),
                body=(Assign("update", theta, theta - lr * (Total(g) - Norm(g) ** 2 + Norm(g) ** 2)),))
    case = CaseBuilder(id="n/demo", title="", purpose="", hyperparameters={}, grad_exponents=[0],
                       seed=6).build({"lr": "1.0"})
    (snap,) = evaluate(rule, case)
    s = mpmath.fsum(x for vs in case.steps[0].grads.values() for x in vs)
    for p in case.params:
        assert all(abs(a - (mpmath.mpf(x) - s)) < mpmath.mpf(2) ** -200
                   for a, x in zip(snap.params[p.name], p.values, strict=True))


def test_printers_show_the_sum_over_params():
    expr = Total(sp.Abs(sp.Symbol("s", real=True)))
    assert text.TextPrinter().doprint(expr) == "Σ_params(|s|)"
    math = docs.math(expr, docs.MathPrinter())
    assert "<munder>" in math and "params" in math and "&#8721;" in math
