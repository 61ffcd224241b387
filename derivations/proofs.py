"""Closed-form results, proved by induction over the step count with SymPy.

A :class:`ClosedForm` states, for a rule under some fixed settings (``given``), a formula in the
step count ``t`` for some of the state (and possibly the parameter). :func:`prove` checks

* the base case: one step of the rule from the initial state gives the formula at ``t = 1``;
* the induction step: one step of the rule applied to the formula at a symbolic ``n ≥ 1``
  gives the formula at ``n + 1``;

both by reducing the residual ``rule − formula`` to exactly zero, symbolically, with no floating
point anywhere (:func:`residual`: an exact polynomial identity test first, ``sympy.simplify`` for
what it leaves; a rule may compute its residuals itself, as L-BFGS's step call does in a field
of rational functions). Because the rule applied is the very rule the goldens are evaluated
from, a proof is also a check of the derivation itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy as sp

from .rule import Rule, t

# The induction variable: a positive integer, so that conditions such as Eq(n + 1, 1) decide.
n = sp.Symbol("n", integer=True, positive=True)


@dataclass(frozen=True)
class ClosedForm:
    name: str
    statement: str  # one sentence, for the docs
    rule: Rule
    given: Mapping[sp.Symbol, object]  # fixed settings and inputs (e.g. g ↦ g₀, λ ↦ 0)
    closed: Mapping[sp.Symbol, sp.Expr]  # symbol ↦ its value after t steps
    initial: Mapping[sp.Symbol, sp.Expr] = field(default_factory=dict)  # e.g. θ ↦ θ₀


@dataclass(frozen=True)
class Proof:
    name: str
    base_case: dict[str, sp.Expr]  # residual per symbol; all zero when proved
    induction_step: dict[str, sp.Expr]

    @property
    def holds(self) -> bool:
        return all(r == 0 for r in (*self.base_case.values(), *self.induction_step.values()))


def residual(after: sp.Expr, want: sp.Expr) -> sp.Expr:
    """``after − want``, simplified: exactly 0 when the two are equal as functions of the symbols.

    First an exact test: with every power of a sum written as a product (b**(x + y) → b**x·b**y,
    so that b**(n + 1) and b**n share the factor b**n), the difference is brought over one common
    denominator, N/D; if the expanded numerator N is 0 — a polynomial identity in the symbols and
    the remaining powers, roots and absolute values — the residual is 0. Otherwise
    ``sp.simplify``, which can also rewrite under a root (the bias corrections inside Adam's √v̂),
    decides."""
    r = sp.sympify(after) - want
    if r == 0:
        return sp.Integer(0)
    numerator, _ = sp.fraction(sp.together(sp.expand_power_exp(r)))
    if sp.expand(numerator) == 0:
        return sp.Integer(0)
    return sp.simplify(r)


def _residuals(after: Mapping[sp.Symbol, sp.Expr], want: Mapping[sp.Symbol, sp.Expr]) -> dict[str, sp.Expr]:
    return {str(sym): residual(after[sym], expr) for sym, expr in want.items()}


def _step_residuals(rule, env: Mapping[sp.Symbol, sp.Expr], want: Mapping[sp.Symbol, sp.Expr]) -> dict[str, sp.Expr]:
    """The residuals of one step of ``rule`` from ``env`` against ``want``. A rule that computes
    them itself (``residuals(env, want)``: L-BFGS's step call, exactly, in a field of rational
    functions) does; otherwise ``apply`` then :func:`_residuals`."""
    if hasattr(rule, "residuals"):
        return rule.residuals(env, want)
    return _residuals(rule.apply(env), want)


def prove(cf: ClosedForm) -> Proof:
    given = {k: sp.sympify(v) for k, v in cf.given.items()}
    closed = {k: sp.sympify(v) for k, v in cf.closed.items()}
    # Base case: from the initial state, one step.
    env0 = {**cf.rule.initial_env(), **cf.initial, **given}
    base = _step_residuals(cf.rule, env0, {s: e.subs(t, 1) for s, e in closed.items()})
    # Induction step: from the closed form at n, one step.
    env_n = {**{s: e.subs(t, n) for s, e in closed.items()}, t: n, **given}
    step = _step_residuals(cf.rule, env_n, {s: e.subs(t, n + 1) for s, e in closed.items()})
    return Proof(cf.name, base, step)
