"""A first-order running error bound of a rule, derived from the rule's own expressions.

Evaluating a rule in a floating-point type with unit roundoff ``u`` rounds after every
operation. Following each value ``x`` together with a bound ``e`` on its accumulated error
(Wilkinson's running error analysis, to first order in ``u``) gives, for every parameter and
state element after every step, a bound ``u·B`` on how far a faithful evaluation of the formula
can be from the exact trajectory. ``B`` is what the goldens store (``bound``), per element and
step, and the tolerance is ``K·u·B`` (see ``conformance/tolerance.py``).

The rules for one operation, with ``u = 1`` (the bound is linear in ``u``)::

    a ± b        e = e_a + e_b + |a ± b|              (one rounding of the result)
    a · b        e = |b|·e_a + |a|·e_b + |a·b|
    1 / b        e = e_b / b² + |1/b|
    √a           e = e_a / (2√a) + √a
    a ** n       e = |n·a**(n−1)|·e_a + |a**n|
    max(a, b)    e = max(e_a, e_b)
    a mod b      e = 0                                (integer counters only)
    Piecewise    the error of the branch taken

Inputs are exact (e = 0): gradients and initial parameters are representable in every dtype,
and hyperparameters are the doubles the goldens are computed from (scalar coefficients such as
``1 − β₂`` are expected in at least the working precision, as torch computes them); the
parameter and the state carry their error from step to step. Exact operations (negation,
multiplication by ±1, integer arithmetic on the step count) add nothing. So the bound grows with ``u``, with the
distance the parameters travelled (each step adds ``|θ|`` and ``|Δθ|``), and with the
conditioning of each step (``1 − β₂ᵗ`` for small ``t``; cancellation in ``g + λθ``) — exactly
the three things that make a correct implementation's error grow.

With ``rounding=False`` the operations add no rounding of their own: errors already in the
operands are carried through, to first order, and nothing more. That is how a fixed-precision error
channel (see :mod:`.tensor`, ``fixed_dtype``) travels through the later lines of a rule: the rounding
errors there belong to the parameter's dtype and are in the main bound already.

This is generation-time code: values are plain Python floats (a bound needs a few digits, not
forty).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache

import numpy as np
import sympy as sp

from .rule import F32, Rule

Pair = tuple[float, float]  # (value, error bound / u)


def _const(expr: sp.Expr) -> Pair:
    return float(expr), 0.0


def _bool(expr, env: Mapping[sp.Symbol, Pair]) -> bool:
    """Evaluate a condition (values only; conditions are decided on exact data)."""
    if expr is sp.true or expr is True:
        return True
    if expr is sp.false or expr is False:
        return False
    if isinstance(expr, sp.Symbol):
        return bool(env[expr][0])
    if isinstance(expr, sp.And):
        return all(_bool(a, env) for a in expr.args)
    if isinstance(expr, sp.Or):
        return any(_bool(a, env) for a in expr.args)
    if isinstance(expr, sp.Not):
        return not _bool(expr.args[0], env)
    if isinstance(expr, sp.Eq):
        return ev(expr.lhs, env)[0] == ev(expr.rhs, env)[0]
    if isinstance(expr, sp.Ne):
        return ev(expr.lhs, env)[0] != ev(expr.rhs, env)[0]
    if isinstance(expr, sp.core.relational.Relational):
        a, b = ev(expr.lhs, env)[0], ev(expr.rhs, env)[0]
        return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[expr.rel_op]
    raise TypeError(f"unsupported condition {expr!r}")


def _exact_factor(x: sp.Expr) -> bool:
    return x.is_Number and abs(x) == 1


def ev(expr: sp.Expr, env: Mapping[sp.Symbol, Pair], rounding: bool = True) -> Pair:
    """(value, error bound / u) of ``expr``; ``rounding=False``: propagate the operands' errors only."""
    r = 1.0 if rounding else 0.0  # weight of an operation's own rounding
    if isinstance(expr, sp.Symbol):
        return env[expr]
    if expr.is_Number:
        return _const(expr)
    if isinstance(expr, sp.Add):
        parts = [ev(a, env, rounding) for a in expr.args]
        value = math.fsum(v for v, _ in parts)
        err = sum(e for _, e in parts)
        if err == 0 and value.is_integer():
            return value, 0.0  # integer arithmetic (the step count) is exact
        return value, err + r * (len(parts) - 1) * abs(value)
    if isinstance(expr, sp.Mul):
        exact = all(_exact_factor(a) for a in expr.args if a.is_Number)
        parts = [ev(a, env, rounding) for a in expr.args]
        value = math.prod(v for v, _ in parts)
        err = 0.0
        for i, (_, e) in enumerate(parts):
            if e:
                err += e * math.prod(abs(v) for j, (v, _) in enumerate(parts) if j != i)
        roundings = sum(1 for a in expr.args if not _exact_factor(a)) - 1
        if not exact:
            roundings = max(roundings, 1)
        return value, err + r * max(roundings, 0) * abs(value)
    if isinstance(expr, sp.Pow):
        (a, ea) = ev(expr.base, env, rounding)
        n_expr = expr.exp
        (n, en) = ev(n_expr, env, rounding)
        if n == 0.5:
            value = math.sqrt(a)
            return value, (ea / (2 * value) if value else math.sqrt(ea)) + r * value
        if n == -0.5:
            value = 1.0 / math.sqrt(a)
            return value, 0.5 * ea * value / a + r * 2 * value
        value = a**n
        err = abs(n * a ** (n - 1)) * ea if ea else 0.0
        if en and a > 0:
            err += abs(value * math.log(a)) * en
        return value, err + r * abs(value)
    if isinstance(expr, sp.Abs):
        v, e = ev(expr.args[0], env, rounding)
        return abs(v), e
    if isinstance(expr, (sp.Max, sp.Min)):
        parts = [ev(a, env, rounding) for a in expr.args]
        pick = max if isinstance(expr, sp.Max) else min
        value = pick(v for v, _ in parts)
        return value, max(e for _, e in parts)
    if isinstance(expr, sp.Piecewise):
        for branch, cond in expr.args:
            if _bool(cond, env):
                return ev(branch, env, rounding)
        raise ValueError(f"no branch of {expr} applies")
    if isinstance(expr, F32):
        # A declared float32 rounding is part of the definition being bounded, not an error.
        v, e = ev(expr.args[0], env, rounding)
        return float(np.float32(v)), e
    if isinstance(expr, sp.Mod):
        # integer arithmetic on counters (Lookahead's sync every k calls): exact
        a, b = (ev(x, env, rounding)[0] for x in expr.args)
        return float(a % b), 0.0
    if isinstance(expr, sp.sign):
        v, _ = ev(expr.args[0], env)
        return float(math.copysign(1.0, v) if v else 0.0), 0.0
    raise TypeError(f"error analysis does not know {type(expr).__name__}: {expr}")


@cache
def _body(rule: Rule) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
    return tuple((line.target, sp.sympify(line.expr)) for line in rule.body)


def step_bounds(rule: Rule, env: dict[sp.Symbol, Pair]) -> dict[sp.Symbol, Pair]:
    """One step of the rule on (value, bound) pairs; returns the new environment."""
    out = dict(env)
    for target, expr in _body(rule):
        out[target] = ev(expr, out)
    return out
