"""Closed-loop specs: an optimizer that calls its objective (torch's ``step(closure)``).

L-BFGS does not fit the elementwise rule of the other specs: one ``step()`` evaluates the
objective several times, takes decisions (termination tests, line-search branches) and mixes all
the parameter elements. A closed-loop spec therefore has

* an **algorithm**: a transcription of the optimizer written once, over a generic number type,
  that takes its *formula lines* (step sizes, scalings, tests) from the spec's
  :class:`~.rule.Rule` so that a variant is still a named delta of a few lines;
* **objectives** written once in SymPy (the gradient is ``sp.diff`` of the objective), stored in
  the goldens as a kind and exact coefficients so that any implementation can build the closure;
* **cases**: an objective, initial parameters, settings and a number of ``step()`` calls.

This module holds all of that and the exact run of a case (:func:`run`); the golden documents of
a closed-loop spec are written from those runs by ``closed_loop_golden.py``.

The same algorithm code runs over three number types:

* :class:`Traced` — an exact value (mpmath, 80 digits) recorded on a :class:`Tape`. The goldens
  are its values; the tape gives the error bounds (below).
* :class:`Sym` — SymPy expressions, for the closed-form proofs (rational functions held as
  elements of a ``sympy.polys`` field, in lowest terms); a comparison is decided symbolically
  (:meth:`Sym.sign`), never numerically.
* ``float`` — plain doubles, for quick cross-checks against torch.

The tolerance model: first-order (linearised) rounding-error analysis
----------------------------------------------------------------------
Every arithmetic operation of a faithful evaluation in a dtype with unit roundoff ``u`` returns
``r·(1 + δ)`` with ``|δ| ≤ u``, and so does every conversion of a constant that the dtype does not
hold exactly (``1e-4``, ``0.9``, ``0.01``, ``1e-10`` in float32). To first order in ``u`` the
computed value of any output ``o`` is then ``o + Σᵢ (∂o/∂rᵢ)·rᵢ·δᵢ``, the sum over every rounded
result ``rᵢ`` the output depends on, so that

    |computed − exact| ≤ u·B,   B = Σᵢ |∂o/∂rᵢ|·|rᵢ|,

with the derivatives taken along the exact trajectory with every decision held fixed. This is
the tightest first-order bound that holds for every choice of the δᵢ (Linnainmaa, "Taylor
expansion of the accumulated rounding error", BIT 16 (1976), the paper that introduced reverse
mode differentiation for exactly this purpose; Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., §3.3). The tape records every operation with its partial derivatives, and
one reverse sweep gives ``B`` for every output at once.

The elementwise specs use Wilkinson's running error bound instead, which bounds ``|∂o/∂rᵢ|`` by
products of absolute values along every path. For a closed loop that is hopeless: an iteration
``x ← x − H·∇f(x)`` that contracts (``∂x_new/∂x ≈ 0``) has path products ``1 + |H|·|∇²f| ≥ 2``,
so the running bound doubles at every iteration (10⁶ after twenty) while the true sensitivity
stays O(1). The signed derivatives keep the cancellation that makes the iteration converge.

The candidate's own evaluation of the objective and its gradient is part of the computation: the
tape evaluates the SymPy expressions operation by operation in the dtype's model, so ``B``
covers a closure that computes them in the candidate's dtype.

Decisions. First-order analysis needs the computed run to take the same branches as the exact
one. Every comparison the algorithm makes is recorded with its exact slack ``a − b`` and the
bound of that slack; its *margin* is ``|a − b| / (K·u·B)``, in tolerances. The generator refuses a
case (spec or variant trajectory) in which some decision has a margin below
:data:`DECISION_MARGIN` in float32: cases are designed so that no rounding in float32 or float64
can flip a termination test or a line-search branch. Value selections that are continuous
(``max|g|``, the clamping of an interpolated step into its bracket) are not decisions; when a
comparison sees the *same* value on both sides (a step clamped exactly to a bracket end), it is
exact in every precision and is not recorded.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp
from optimizer_conformance.conformance.tolerance import CATCH_MARGIN, UNIT_ROUNDOFF, K
from sympy.polys.fields import FracElement

from .cases import exact_decimal
from .rule import Rule

# A decision must be this many tolerances (K·u·B) away from flipping, in float32 (and so in
# float64), in every trajectory the goldens hold (spec and variants).
DECISION_MARGIN = CATCH_MARGIN
WORKING_DPS = 80


def float32_exact(x) -> bool:
    """Whether a real (an mpf) is exactly a float32: then converting it to float32 is exact."""
    if not mpmath.isfinite(x) or x == 0:
        return True
    f = float(x)
    return mpmath.mpf(f) == x and float(np.float32(f)) == f


# -- the tape and its numbers ---------------------------------------------------------------


@dataclass
class Decision:
    node: int  # the exact difference a − b on the tape
    value: object  # its exact value (mpf)
    what: str  # e.g. "a > b"


class Tape:
    """Every operation of one trajectory: value, parents, partial derivatives, rounded or not."""

    def __init__(self) -> None:
        self.values: list = []
        self.parents: list[tuple[int, ...]] = []
        self.partials: list[tuple[float, ...]] = []
        self.rounded: list[bool] = []
        self.decisions: list[Decision] = []

    def _node(self, value, parents: tuple[int, ...], partials: tuple[float, ...], rounded: bool) -> Traced:
        self.values.append(value)
        self.parents.append(parents)
        self.partials.append(partials)
        self.rounded.append(rounded)
        return Traced(self, len(self.values) - 1, value)

    def input(self, value) -> Traced:
        """An exact input (an initial parameter: dyadic, representable in every dtype)."""
        return self._node(mpmath.mpf(value), (), (), False)

    def const(self, value) -> Traced:
        """A constant of the algorithm or a hyperparameter: rounded when float32 cannot hold it."""
        v = _mpf(value)
        return self._node(v, (), (), not float32_exact(v))

    def bounds(self, outputs: Sequence[int]) -> np.ndarray:
        """B of each output node (u = 1): Σ over rounded nodes of |∂output/∂node|·|node|."""
        outputs = list(outputs)
        if not outputs:
            return np.zeros(0)
        last = max(outputs)
        adj = np.zeros((last + 1, len(outputs)))
        for j, o in enumerate(outputs):
            adj[o, j] += 1.0
        bound = np.zeros(len(outputs))
        for k in range(last, -1, -1):
            a = adj[k]
            if not a.any():
                continue
            if self.rounded[k]:
                bound += abs(float(self.values[k])) * np.abs(a)
            for p, w in zip(self.parents[k], self.partials[k], strict=True):
                adj[p] += w * a
        return bound


def _mpf(value):
    if isinstance(value, sp.Basic):
        p, q = sp.Rational(value).p, sp.Rational(value).q
        return mpmath.mpf(p) / q
    return mpmath.mpf(value)


class Traced:
    """An exact value on a :class:`Tape`. Python numbers mixed in are constants of the tape."""

    __slots__ = ("tape", "i", "v")

    def __init__(self, tape: Tape, i: int, v) -> None:
        self.tape, self.i, self.v = tape, i, v

    def _c(self, other) -> Traced:
        return other if isinstance(other, Traced) else self.tape.const(other)

    def _exact_zero(self) -> bool:
        return self.v == 0 and not self.tape.parents[self.i] and not self.tape.rounded[self.i]

    def __add__(self, other):
        o = self._c(other)
        if o._exact_zero():
            return self
        if self._exact_zero():
            return o
        return self.tape._node(self.v + o.v, (self.i, o.i), (1.0, 1.0), True)

    __radd__ = __add__

    def __sub__(self, other):
        o = self._c(other)
        if o._exact_zero():
            return self
        if self._exact_zero():
            return -o
        return self.tape._node(self.v - o.v, (self.i, o.i), (1.0, -1.0), True)

    def __rsub__(self, other):
        return self._c(other) - self

    def __mul__(self, other):
        o = self._c(other)
        for a, b in ((self, o), (o, self)):
            if a._exact_zero():
                return a  # 0·x = 0 exactly (x finite)
            if not a.tape.parents[a.i] and not a.tape.rounded[a.i] and a.v == 1:
                return b
        return self.tape._node(self.v * o.v, (self.i, o.i), (float(o.v), float(self.v)), True)

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = self._c(other)
        q = self.v / o.v
        return self.tape._node(q, (self.i, o.i), (float(1 / o.v), float(-q / o.v)), True)

    def __rtruediv__(self, other):
        return self._c(other) / self

    def __neg__(self):
        return self.tape._node(-self.v, (self.i,), (-1.0,), False)

    def __abs__(self):
        return self if self.v >= 0 else -self

    def __pow__(self, n):
        if n == 2:
            return self * self
        raise NotImplementedError(f"Traced ** {n}")

    def sqrt(self):
        r = mpmath.sqrt(self.v)
        return self.tape._node(r, (self.i,), (float(1 / (2 * r)) if r else 0.0,), True)

    # comparisons: decisions
    def _decide(self, other, op: str) -> bool:
        o = self._c(other)
        result = {"<": self.v < o.v, "<=": self.v <= o.v, ">": self.v > o.v, ">=": self.v >= o.v,
                  "!=": self.v != o.v, "==": self.v == o.v}[op]
        if o.i != self.i:
            diff = self.tape._node(self.v - o.v, (self.i, o.i), (1.0, -1.0), False)
            self.tape.decisions.append(Decision(diff.i, diff.v, f"{float(self.v):.6g} {op} {float(o.v):.6g}"))
        return result

    def __lt__(self, other):
        return self._decide(other, "<")

    def __le__(self, other):
        return self._decide(other, "<=")

    def __gt__(self, other):
        return self._decide(other, ">")

    def __ge__(self, other):
        return self._decide(other, ">=")

    def __ne__(self, other):
        return self._decide(other, "!=")

    def __eq__(self, other):
        return self._decide(other, "==")

    __hash__ = None

    def __float__(self):
        return float(self.v)

    def __repr__(self):
        return f"Traced({float(self.v)!r})"


class Undecided(Exception):
    """A comparison the symbolic proof cannot decide from its hypotheses."""


class Sym:
    """A SymPy expression. Comparisons are decided symbolically or raise :class:`Undecided`.

    ``Sym.small`` holds symbols that stand for thresholds *smaller than every nonzero quantity
    they are compared with* (L-BFGS's tolerances): ``X ≤ ε`` is decided by the sign of ``X`` when
    ``X`` is provably nonzero, and by ``0 ≤ ε`` when it is provably zero. A proof made with them
    holds for all sufficiently small positive thresholds.

    ``Sym.field``, when set, is a field of rational functions over ℚ (``sympy.polys.fields``) in
    the symbols of the run: a value that is a rational function of them is held as an element of
    it, so that arithmetic is exact polynomial arithmetic on reduced fractions (the canonical form
    ``sp.cancel`` would compute, without rebuilding an expression tree at every operation). A value
    outside it (an undecided ``Abs``, ``Min``, a square root) stays a SymPy expression; arithmetic
    that involves one is done on expressions.
    """

    __slots__ = ("_expr", "_frac")
    small: frozenset = frozenset()
    field = None  # a sympy.polys.fields.FracField, or None

    def __init__(self, e) -> None:
        if isinstance(e, FracElement):
            self._frac, self._expr = e, None
            return
        e = sp.sympify(e)
        self._frac = in_field(Sym.field, e)
        # keep expressions in a canonical rational form as they grow (an exact rewriting); a
        # selection Min/Max is kept as it is (its sign is decided from its arguments')
        keep = self._frac is not None or isinstance(e, (sp.Min, sp.Max)) or e.count_ops() <= 24
        self._expr = e if keep else sp.cancel(e)

    @property
    def e(self) -> sp.Expr:
        if self._expr is None:
            self._expr = self._frac.as_expr()
        return self._expr

    @staticmethod
    def _e(x):
        if isinstance(x, Sym):
            return x.e
        if isinstance(x, float):
            return sp.Rational(x)  # the exact value of the double: no floating point
        return sp.sympify(x)

    @staticmethod
    def _f(x):
        """``x`` as an element of ``Sym.field``, or None."""
        return x._frac if isinstance(x, Sym) else in_field(Sym.field, Sym._e(x))

    def _op(self, o, op, reverse: bool = False):
        a, b = self._frac, self._f(o)
        if a is not None and b is not None and a.field == b.field:
            try:
                return Sym(op(b, a) if reverse else op(a, b))
            except ZeroDivisionError:
                pass  # as an expression: SymPy's zoo, as before
        a, b = self.e, self._e(o)
        return Sym(op(b, a) if reverse else op(a, b))

    def __add__(self, o):
        return self._op(o, operator.add)

    __radd__ = __add__

    def __sub__(self, o):
        return self._op(o, operator.sub)

    def __rsub__(self, o):
        return self._op(o, operator.sub, reverse=True)

    def __mul__(self, o):
        return self._op(o, operator.mul)

    __rmul__ = __mul__

    def __truediv__(self, o):
        return self._op(o, operator.truediv)

    def __rtruediv__(self, o):
        return self._op(o, operator.truediv, reverse=True)

    def __neg__(self):
        return Sym(-self._frac) if self._frac is not None else Sym(-self.e)

    def __abs__(self):
        try:
            return self if self.sign(self._frac if self._frac is not None else self.e) >= 0 else -self
        except Undecided:
            return Sym(sp.Abs(self.e))

    def __pow__(self, n):
        if self._frac is not None and isinstance(n, int):
            return Sym(self._frac**n)
        return Sym(self.e**n)

    def sqrt(self):
        return Sym(sp.sqrt(self.e))

    @classmethod
    def sign(cls, e) -> int:
        """-1, 0 or 1, proved from the symbols' assumptions; raises :class:`Undecided`.

        ``e`` is an expression or an element of ``Sym.field`` (a fraction N/D in lowest terms: its
        sign is that of N times that of D)."""
        fraction = isinstance(e, FracElement)
        decide = _sign_of_ratio if fraction else _sign
        e = e if fraction else sp.sympify(e)
        if cls.small:
            s = decide(_at_zero(e, cls.small))
            if s is None:
                raise Undecided(f"cannot decide the sign of {e}")
            if s != 0:
                return s  # a nonzero quantity against thresholds small enough
        s = decide(e)
        if s is None:
            raise Undecided(f"cannot decide the sign of {e}")
        return s

    def minus(self, o):
        """``self − o``, for a comparison: an element of the field if both are in it, else the
        plain difference of the expressions."""
        a, b = self._frac, self._f(o)
        if a is not None and b is not None and a.field == b.field:
            return a - b
        return self.e - self._e(o)

    def _decide(self, other, op: str) -> bool:
        s = self.sign(self.minus(other))
        return {"<": s < 0, "<=": s <= 0, ">": s > 0, ">=": s >= 0}[op]

    def __lt__(self, o):
        return self._decide(o, "<")

    def __le__(self, o):
        return self._decide(o, "<=")

    def __gt__(self, o):
        return self._decide(o, ">")

    def __ge__(self, o):
        return self._decide(o, ">=")

    def __eq__(self, o):
        return self.sign(self.minus(o)) == 0

    def __ne__(self, o):
        return self.sign(self.minus(o)) != 0

    __hash__ = None

    def __repr__(self):
        return f"Sym({self.e})"


def _sign(e) -> int | None:
    if isinstance(e, (sp.Max, sp.Min)):  # sign(max(a, b)) = max(sign a, sign b); min alike
        signs = [_sign(a) for a in e.args]
        if isinstance(e, sp.Max) and 1 in signs or isinstance(e, sp.Min) and -1 in signs:
            return 1 if isinstance(e, sp.Max) else -1
        return None if None in signs else (max if isinstance(e, sp.Max) else min)(signs)
    if e.is_zero:
        return 0
    if e.is_positive:
        return 1
    if e.is_negative:
        return -1
    num, den = sp.fraction(sp.together(e))
    num, den = sp.expand(num), sp.expand(den)
    if num.is_zero:
        return 0
    sn = 1 if num.is_positive else -1 if num.is_negative else None
    sd = 1 if den.is_positive else -1 if den.is_negative else None
    if sn is None or sd is None:
        return None
    return sn * sd


def in_field(field, x):
    """``x`` (a :class:`Sym` or an expression) as an element of ``field`` (a field of rational
    functions), or None: when ``field`` is None or ``x`` is not a rational function of its symbols."""
    if field is None:
        return None
    if isinstance(x, Sym):
        if x._frac is not None and x._frac.field == field:
            return x._frac
        x = x.e
    try:
        return field.from_expr(x)
    except ValueError:
        return None


def _at_zero(e, symbols: frozenset):
    """``e`` (an expression or a field element) with ``symbols`` set to 0; None (for an element of
    a field, where SymPy's expressions would give zoo) if a denominator vanishes."""
    if not isinstance(e, FracElement):
        return e.subs({x: 0 for x in symbols})
    field = e.field
    zero = [(field.gens[field.symbols.index(x)], 0) for x in symbols if x in field.symbols]
    try:
        return e.subs(zero) if zero else e
    except ZeroDivisionError:
        return None


def _sign_of_ratio(f) -> int | None:
    """The sign of a fraction N/D of polynomials: the product of the signs of N and D."""
    if f is None:
        return None
    if not f.numer:
        return 0
    sn, sd = _sign_of_polynomial(f.numer), _sign_of_polynomial(f.denom)
    return None if sn is None or sd is None else sn * sd


def _sign_of_polynomial(p) -> int | None:
    """A nonzero polynomial whose coefficients have one sign, in positive symbols, has that sign
    (every monomial is positive); otherwise the assumptions on the expanded polynomial decide."""
    positive = [s.is_positive for s in p.ring.symbols]
    signs = {c > 0 for c in p.coeffs()}
    if len(signs) == 1 and all(positive[i] for monomial in p.monoms() for i, e in enumerate(monomial) if e):
        return 1 if signs.pop() else -1
    e = p.as_expr()
    return 1 if e.is_positive else -1 if e.is_negative else None


# -- helpers every number type shares ---------------------------------------------------------


def _select(a, b) -> bool:
    """b < a, as a value comparison that is not a decision (continuous selections)."""
    if isinstance(a, Traced) or isinstance(b, Traced):
        return _value(b) < _value(a)
    if isinstance(a, Sym) or isinstance(b, Sym):
        return Sym.sign(b.minus(a) if isinstance(b, Sym) else -a.minus(b)) < 0
    return b < a


def _value(x):
    return x.v if isinstance(x, Traced) else mpmath.mpf(x)


def smaller(a, b):
    """Python's ``min(a, b)`` (``b`` if ``b < a`` else ``a``), as a continuous selection."""
    if isinstance(a, Sym) or isinstance(b, Sym):
        try:
            return b if _select(a, b) else a
        except Undecided:
            return Sym(sp.Min(Sym._e(a), Sym._e(b)))
    return b if _select(a, b) else a


def larger(a, b):
    """Python's ``max(a, b)`` (``b`` if ``b > a`` else ``a``), as a continuous selection."""
    if isinstance(a, Sym) or isinstance(b, Sym):
        try:
            return b if _select(b, a) else a
        except Undecided:
            return Sym(sp.Max(Sym._e(a), Sym._e(b)))
    return b if _select(b, a) else a


def sqrt(x):
    return math.sqrt(x) if isinstance(x, (int, float)) else x.sqrt()


def dot(a: Sequence, b: Sequence):
    """Σ aᵢ·bᵢ, left to right."""
    out = a[0] * b[0]
    for x, y in zip(a[1:], b[1:], strict=True):
        out = out + x * y
    return out


def max_abs(v: Sequence):
    """max |vᵢ| (a continuous selection)."""
    out = abs(v[0])
    for x in v[1:]:
        out = larger(out, abs(x))
    return out


def sum_abs(v: Sequence):
    out = abs(v[0])
    for x in v[1:]:
        out = out + abs(x)
    return out


# -- SymPy expressions evaluated in a number type -----------------------------------------------


def evaluate(expr: sp.Basic, env: Mapping[sp.Symbol, object], const: Callable[[object], object]):
    """``expr`` evaluated operation by operation over the numbers in ``env``.

    Sums are folded left to right in SymPy's order; a product's factors ``b**-1`` divide (one
    rounding, as ``a / b``); ``x**2`` is ``x·x``; ``Min``/``Max`` are continuous selections; a
    relation is a comparison (a decision, for :class:`Traced`). ``const`` turns a SymPy number into
    the number type.
    """
    if isinstance(expr, sp.Symbol):
        v = env.get(expr, expr)  # a symbol the env does not give stays itself (proofs only)
        return v if isinstance(v, (Traced, Sym)) else const(v)
    if expr is sp.true:
        return True
    if expr is sp.false:
        return False
    if expr.is_Number:
        return const(expr)
    args = expr.args
    if isinstance(expr, sp.Add):
        out = evaluate(args[0], env, const)
        for a in args[1:]:
            out = out + evaluate(a, env, const)
        return out
    if isinstance(expr, sp.Mul):
        negate = False
        num, den = [], []
        for a in args:
            if a == -1:
                negate = not negate
            elif isinstance(a, sp.Pow) and a.exp == -1:
                den.append(evaluate(a.base, env, const))
            else:
                num.append(evaluate(a, env, const))
        out = num[0] if num else const(sp.Integer(1))
        for x in num[1:]:
            out = out * x
        if den:
            d = den[0]
            for x in den[1:]:
                d = d * x
            out = out / d
        return -out if negate else out
    if isinstance(expr, sp.Pow):
        base = evaluate(expr.base, env, const)
        n = expr.exp
        if n == -1:
            return const(sp.Integer(1)) / base
        if n == sp.Rational(1, 2):
            return sqrt(base)
        if n.is_Integer and n > 1:
            out = base
            for _ in range(int(n) - 1):
                out = out * base
            return out
        raise NotImplementedError(f"power {expr}")
    if isinstance(expr, (sp.Min, sp.Max)):
        pick = smaller if isinstance(expr, sp.Min) else larger
        out = evaluate(args[0], env, const)
        for a in args[1:]:
            out = pick(out, evaluate(a, env, const))
        return out
    if isinstance(expr, sp.Abs):
        return abs(evaluate(args[0], env, const))
    if isinstance(expr, sp.core.relational.Relational):
        a, b = evaluate(expr.lhs, env, const), evaluate(expr.rhs, env, const)
        return {">": lambda: a > b, ">=": lambda: a >= b, "<": lambda: a < b, "<=": lambda: a <= b,
                "!=": lambda: a != b, "==": lambda: a == b}[expr.rel_op]()
    raise NotImplementedError(f"cannot evaluate {type(expr).__name__}: {expr}")


class Lines:
    """A rule's formula lines, evaluated on demand in the number type of their inputs.

    ``fixed`` gives the values of the constants the lines name (L-BFGS's curvature threshold).
    """

    def __init__(self, rule: Rule, fixed: Mapping[sp.Symbol, object]) -> None:
        self.rule = rule
        self.fixed = dict(fixed)
        self.exprs = {line.label: sp.sympify(line.expr) for line in rule.body}

    def uses(self, label: str, symbol: sp.Symbol) -> bool:
        return symbol in self.exprs[label].free_symbols

    def __call__(self, label: str, env: Mapping[sp.Symbol, object], like) -> object:
        return evaluate(self.exprs[label], {**self.fixed, **env}, const_like(like))


def const_like(x) -> Callable[[object], object]:
    """The constructor of constants for the number type of ``x``."""
    if isinstance(x, Traced):
        return x.tape.const
    if isinstance(x, Sym):
        return lambda c: Sym(Sym._e(c) if not isinstance(c, sp.Basic) else c)
    return lambda c: float(c)


# -- objectives -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """An objective of the flat parameter vector ``x`` (the listed params, flattened, in order).

    ``f`` is a SymPy expression in ``symbols``; the gradient is its ``sp.diff``. ``coefficients``
    are what the golden stores (exact dyadic numbers, as nested lists or scalars).
    """

    kind: str
    coefficients: Mapping[str, object]
    symbols: tuple[sp.Symbol, ...]
    f: sp.Expr

    @property
    def gradient(self) -> tuple[sp.Expr, ...]:
        return tuple(sp.diff(self.f, s) for s in self.symbols)

    def document(self, variables: Sequence[str]) -> dict:
        def plain(v):
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            return exact_decimal(float(v))

        return {"kind": self.kind, "variables": list(variables),
                "coefficients": {k: plain(v) for k, v in self.coefficients.items()}}


def closure_of(objective: Objective, n_total: int, where: Sequence[int]) -> Callable:
    """The closure over the flat vector of every param: f and ∇f of the objective's variables
    (at flat positions ``where``), exact zeros for the params without a gradient."""
    gradient = objective.gradient
    seen: dict[tuple[int, ...], tuple] = {}

    def closure(x: Sequence):
        # The closure is deterministic: evaluated again at the very same parameters (the same
        # tape nodes) it returns the very same numbers in every precision, so the tape reuses
        # them (a gradient difference y = g − g is then exactly zero, as it is in floating point).
        key = tuple(x[i].i for i in where) if isinstance(x[where[0]], Traced) else None
        if key is not None and key in seen:
            f, g = seen[key]
            return f, list(g)
        env = {s: x[i] for s, i in zip(objective.symbols, where, strict=True)}
        c = const_like(x[where[0]])
        f = evaluate(objective.f, env, c)
        g = [c(sp.Integer(0))] * n_total
        for i, expr in zip(where, gradient, strict=True):
            g[i] = evaluate(expr, env, c)
        if key is not None:
            seen[key] = (f, tuple(g))
        return f, g

    return closure


# -- cases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    shape: tuple[int, ...]
    values: tuple[float, ...]  # exact dyadic numbers, row-major


@dataclass(frozen=True)
class Change:
    """``param_groups[0][name] = value`` before a step (as a scheduler does)."""

    name: str
    value: object


@dataclass(frozen=True)
class ClosedLoopCase:
    """One case: ``steps`` calls of ``step(closure)`` on ``objective`` from ``params``.

    ``variables`` are the params the objective depends on (in params order); the others have no
    gradient (the closure leaves ``p.grad`` None). ``changes[s]`` apply before step ``s``
    (1-based); ``reload_before`` steps start with a state_dict round trip into a fresh instance.
    """

    id: str
    title: str
    purpose: str
    objective: Objective
    params: tuple[Param, ...]
    variables: tuple[str, ...]
    hyperparameters: Mapping[str, object]
    steps: int
    changes: Mapping[int, Sequence[Change]] = field(default_factory=dict)
    reload_before: Sequence[int] = ()
    features: Sequence[str] = ()

    def group(self, defaults: Mapping[str, object]) -> dict:
        return {**defaults, **self.hyperparameters}


@dataclass
class Trajectory:
    """The exact run of one case by one rule: per step() call, params, loss and counters, with
    their bounds B, and every decision's margin."""

    params: list[dict[str, list]]  # per step: name -> values (mpf)
    loss: list  # per step: the loss step() returned (mpf)
    counters: list[dict[str, int]]  # per step
    param_bounds: list[dict[str, list[float]]]
    loss_bounds: list[float]
    decisions: int
    margin: dict[str, float]  # dtype -> smallest decision margin, in tolerances
    tightest: str  # the decision with the smallest margin


def hyperparameter_value(raw):
    """A case's hyperparameter as the algorithm receives it (decimal strings → float)."""
    if raw is None or isinstance(raw, (bool, int)):
        return raw
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return raw  # a name, e.g. "strong_wolfe"
    return raw


def run(algorithm: Callable, rule: Rule, fixed: Mapping[sp.Symbol, object], case: ClosedLoopCase,
        defaults: Mapping[str, object], prepare: Callable[[dict], None]) -> Trajectory:
    """The exact trajectory of ``case`` under ``rule`` (80 digits), with bounds and margins.

    ``algorithm(x, closure, state, group, lines)`` performs one ``step(closure)`` on the flat list
    ``x`` in place and returns the loss; ``prepare(group)`` completes a param group as the
    optimizer's constructor does (L-BFGS: ``max_eval``).
    """
    with mpmath.workdps(WORKING_DPS):
        tape = Tape()
        offsets, n = {}, 0
        for p in case.params:
            offsets[p.name] = n
            n += len(p.values)
        where = [offsets[v] + i for v in case.variables
                 for i in range(len(next(p for p in case.params if p.name == v).values))]
        x = [tape.input(v) for p in case.params for v in p.values]
        closure = closure_of(case.objective, n, where)
        group = {k: hyperparameter_value(v) for k, v in case.group(defaults).items()}
        prepare(group)
        lines = Lines(rule, fixed)
        state: dict = {}
        params, losses, counters = [], [], []
        for s in range(1, case.steps + 1):
            for c in case.changes.get(s, ()):
                group[c.name] = hyperparameter_value(c.value)
            loss = algorithm(x, closure, state, group, lines)
            params.append({p.name: list(x[offsets[p.name]: offsets[p.name] + len(p.values)]) for p in case.params})
            losses.append(loss)
            counters.append({"func_evals": state.get("func_evals", 0), "n_iter": state.get("n_iter", 0)})
        outputs = [v.i for snap in params for vs in snap.values() for v in vs]
        outputs += [v.i for v in losses]
        outputs += [d.node for d in tape.decisions]
        b = tape.bounds(outputs)
        k = 0
        param_bounds = []
        for snap in params:
            pb = {}
            for name, vs in snap.items():
                pb[name] = [float(x) for x in b[k: k + len(vs)]]
                k += len(vs)
            param_bounds.append(pb)
        loss_bounds = [float(x) for x in b[k: k + len(losses)]]
        k += len(losses)
        margin = {d: math.inf for d in ("float32", "float64")}
        tightest = ""
        for dec, bd in zip(tape.decisions, b[k:], strict=True):
            if bd == 0:
                continue  # computed exactly in every precision
            for dtype in margin:
                m = float(abs(dec.value)) / (K * UNIT_ROUNDOFF[dtype] * bd)
                if m < margin[dtype]:
                    margin[dtype] = m
                    if dtype == "float32":
                        tightest = dec.what
        return Trajectory(
            params=[{k2: [t.v for t in vs] for k2, vs in snap.items()} for snap in params],
            loss=[v.v for v in losses],
            counters=counters,
            param_bounds=param_bounds,
            loss_bounds=loss_bounds,
            decisions=len(tape.decisions),
            margin=margin,
            tightest=tightest,
        )


# -- the spec -------------------------------------------------------------------------------------


def plain(value):
    """A hyperparameter value as the goldens write it: reals as decimal strings, integers as JSON
    integers, None as null, names (``"strong_wolfe"``) as strings, booleans as booleans."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass
class ClosedLoopSpec:
    """A closed-loop spec; duck-types what the index reads from :class:`~.spec.Spec`.

    ``algorithm(x, closure, state, group, lines)`` is one ``step(closure)``; ``fixed`` the values
    of the named constants of the rule's lines; ``prepare(group)`` completes a param group as the
    optimizer's constructor does.
    """

    id: str
    title: str
    torch_class: str | None
    rule: Rule
    variants: tuple
    cases: tuple[ClosedLoopCase, ...]
    closed_forms: tuple
    algorithm: Callable
    fixed: Mapping[sp.Symbol, object]
    prepare: Callable[[dict], None]
    kind: str = "closed_loop"
    implementations: tuple = ()
    _cache: dict = field(default_factory=dict, repr=False)

    plain = staticmethod(plain)

    def defaults(self) -> dict[str, object]:
        return {hp.name: plain(hp.default) for hp in self.rule.hyperparameters}

    def variant(self, id: str):
        return next(v for v in self.variants if v.id == id)

    def features(self, case: ClosedLoopCase) -> list[str]:
        out = set(case.features)
        defaults = self.defaults()
        for name, value in case.hyperparameters.items():
            if value != defaults.get(name):
                out.add(name)
        if case.changes:
            out.add("hyperparameter_change")
        if case.reload_before:
            out.add("state_dict_resume")
        if set(case.variables) != {p.name for p in case.params}:
            out.add("grad_none")
        out.add(case.objective.kind)
        return sorted(out)

    def trajectory(self, rule: Rule, case: ClosedLoopCase) -> Trajectory:
        key = (rule.id, case.id)
        if key not in self._cache:
            self._cache[key] = run(self.algorithm, rule, self.fixed, case, self.defaults(), self.prepare)
        return self._cache[key]
