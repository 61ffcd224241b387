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
import operator
from collections.abc import Callable, Mapping
from functools import cache

import numpy as np
import sympy as sp

from .rule import F32, Rule

Pair = tuple[float, float]  # (value, error bound / u)


Evaluator = Callable[[object], Pair]
# How an evaluator reads a symbol's (value, error) pair from its environment: leaf(symbol) is a
# function of the environment (by default ``env[symbol]``; the evaluator keys its environments
# by small integers instead, and reads a fixed-precision channel's errors from a second one).
Leaf = Callable[[sp.Symbol], Evaluator]


def ev(expr: sp.Expr, env: Mapping[sp.Symbol, Pair], rounding: bool = True) -> Pair:
    """(value, error bound / u) of ``expr``; ``rounding=False``: propagate the operands' errors only."""
    return compiled(expr, rounding)(env)


def _exact_factor(x: sp.Expr) -> bool:
    return x.is_Number and abs(x) == 1


def by_symbol(sym: sp.Symbol) -> Evaluator:
    """The default leaf: the environment maps each symbol to its (value, error) pair."""
    return lambda env: env[sym]


@cache
def compiled(expr: sp.Expr, rounding: bool, leaf: Leaf = by_symbol) -> Evaluator:
    """``expr`` turned once into nested closures that apply the rules above: the rules walk the
    same tree on every element of every step, so the walk (type tests, SymPy attributes) is done
    once per expression and only the float arithmetic is left per evaluation. ``leaf`` says how a
    symbol is read from the environment the closures are called on."""
    r = 1.0 if rounding else 0.0  # weight of an operation's own rounding
    if isinstance(expr, sp.Symbol):
        return leaf(expr)
    if expr.is_Number:
        const = (float(expr), 0.0)
        return lambda env: const
    if isinstance(expr, sp.Add):
        terms = [compiled(a, rounding, leaf) for a in expr.args]
        extra = r * (len(terms) - 1)
        if len(terms) == 2:  # the common case, unrolled (the same floats: one sum of two is exact rounding)
            left, right = terms

            def add2(env):
                (a, ea), (b, eb) = left(env), right(env)
                value, err = math.fsum((a, b)), ea + eb
                if err == 0 and value.is_integer():
                    return value, 0.0
                return value, err + extra * abs(value)
            return add2

        def add(env):
            parts = [f(env) for f in terms]
            value = math.fsum(v for v, _ in parts)
            err = sum(e for _, e in parts)
            if err == 0 and value.is_integer():
                return value, 0.0  # integer arithmetic (the step count) is exact
            return value, err + extra * abs(value)
        return add
    if isinstance(expr, sp.Mul):
        exact = all(_exact_factor(a) for a in expr.args if a.is_Number)
        roundings = sum(1 for a in expr.args if not _exact_factor(a)) - 1
        if not exact:
            roundings = max(roundings, 1)
        extra = r * max(roundings, 0)
        factors = [compiled(a, rounding, leaf) for a in expr.args]
        if len(factors) == 2:  # the common case, unrolled (the same floats as the loop below)
            left, right = factors

            def mul2(env):
                (a, ea), (b, eb) = left(env), right(env)
                value = a * b
                err = 0.0
                if ea:
                    err += ea * abs(b)
                if eb:
                    err += eb * abs(a)
                return value, err + extra * abs(value)
            return mul2

        def mul(env):
            parts = [f(env) for f in factors]
            value = math.prod(v for v, _ in parts)
            err = 0.0
            for i, (_, e) in enumerate(parts):
                if e:
                    err += e * math.prod(abs(v) for j, (v, _) in enumerate(parts) if j != i)
            return value, err + extra * abs(value)
        return mul
    if isinstance(expr, sp.Pow):
        base, exponent = compiled(expr.base, rounding, leaf), compiled(expr.exp, rounding, leaf)

        def power(env):
            (a, ea), (n, en) = base(env), exponent(env)
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
        return power
    if isinstance(expr, sp.Abs):
        inner = compiled(expr.args[0], rounding, leaf)

        def absolute(env):
            v, e = inner(env)
            return abs(v), e
        return absolute
    if isinstance(expr, (sp.Max, sp.Min)):
        operands = [compiled(a, rounding, leaf) for a in expr.args]
        pick = max if isinstance(expr, sp.Max) else min

        def extremum(env):
            parts = [f(env) for f in operands]
            return pick(v for v, _ in parts), max(e for _, e in parts)
        return extremum
    if isinstance(expr, sp.Piecewise):
        branches = [(compiled(branch, rounding, leaf), _condition(cond, leaf)) for branch, cond in expr.args]

        def piecewise(env):
            for branch, cond in branches:
                if cond(env):
                    return branch(env)
            raise ValueError(f"no branch of {expr} applies")
        return piecewise
    if isinstance(expr, F32):
        # A declared float32 rounding is part of the definition being bounded, not an error.
        inner = compiled(expr.args[0], rounding, leaf)

        def to_float32(env):
            v, e = inner(env)
            return float(np.float32(v)), e
        return to_float32
    if isinstance(expr, sp.Mod):
        # integer arithmetic on counters (Lookahead's sync every k calls): exact
        a, b = (compiled(x, rounding, leaf) for x in expr.args)
        return lambda env: (float(a(env)[0] % b(env)[0]), 0.0)
    if isinstance(expr, sp.sign):
        inner = compiled(expr.args[0], True, leaf)

        def sign(env):
            v, _ = inner(env)
            return float(math.copysign(1.0, v) if v else 0.0), 0.0
        return sign
    raise TypeError(f"error analysis does not know {type(expr).__name__}: {expr}")


_RELATIONS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@cache
def _condition(expr, leaf: Leaf) -> Callable[[object], bool]:
    """A condition as a closure (values only; conditions are decided on exact data)."""
    if expr is sp.true or expr is True:
        return lambda env: True
    if expr is sp.false or expr is False:
        return lambda env: False
    if isinstance(expr, sp.Symbol):
        read = leaf(expr)
        return lambda env: bool(read(env)[0])
    if isinstance(expr, sp.And):
        parts = [_condition(a, leaf) for a in expr.args]
        return lambda env: all(c(env) for c in parts)
    if isinstance(expr, sp.Or):
        parts = [_condition(a, leaf) for a in expr.args]
        return lambda env: any(c(env) for c in parts)
    if isinstance(expr, sp.Not):
        inner = _condition(expr.args[0], leaf)
        return lambda env: not inner(env)
    if isinstance(expr, sp.Eq):
        relation = operator.eq
    elif isinstance(expr, sp.Ne):
        relation = operator.ne
    elif isinstance(expr, sp.core.relational.Relational):
        relation = _RELATIONS[expr.rel_op]
    else:
        raise TypeError(f"unsupported condition {expr!r}")
    lhs, rhs = compiled(expr.lhs, True, leaf), compiled(expr.rhs, True, leaf)
    return lambda env: relation(lhs(env)[0], rhs(env)[0])


@cache
def _body(rule: Rule) -> tuple[tuple[sp.Symbol, sp.Expr], ...]:
    return tuple((line.target, sp.sympify(line.expr)) for line in rule.body)


def step_bounds(rule: Rule, env: dict[sp.Symbol, Pair]) -> dict[sp.Symbol, Pair]:
    """One step of the rule on (value, bound) pairs; returns the new environment."""
    out = dict(env)
    for target, expr in _body(rule):
        out[target] = ev(expr, out)
    return out
