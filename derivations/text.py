"""A rule's lines as one-line Unicode text, for terminals: ``v̂ ← v/(1 − β₂ᵗ)``.

The docs print rules as MathML (:mod:`.docs`); a failure message in a terminal needs each line on
one line of text, so that the spec's line and a variant's line can be shown one above the other
with the differing characters marked. The generator writes these texts into the golden index
(``lines`` of each variant), so the plugin shows them without importing SymPy.

The notation follows the docs' printer: Greek letters, digit and sign subscripts (``beta_1`` →
β₁, ``eta_minus`` → η₋), accents (``\\hat{m}`` → m̂), ``·`` for products, ``√`` for square
roots, ``x^y`` for powers (superscripts where Unicode has them: β₁ᵗ), Piecewise as
``(a if c else b)``, and sums with their positive terms first (θ − γ·…).
"""

from __future__ import annotations

import json
import re

import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from .rule import Assign, Rule, changed_lines, t

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "zeta": "ζ", "eta": "η",
    "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ",
    "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "chi": "χ",
    "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
_SUB = str.maketrans("0123456789+-−aeoxhklmnpstij", "₀₁₂₃₄₅₆₇₈₉₊₋₋ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼ")
_SUP = str.maketrans("0123456789+-−tn()i", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻ᵗⁿ⁽⁾ⁱ")
_SUB_CHARS, _SUP_CHARS = set("0123456789+-−aeoxhklmnpstij"), set("0123456789+-−tn()i")
_SIGNS = {"minus": "−", "plus": "+"}
_ACCENTS = {"hat": "\u0302", "bar": "\u0304", "tilde": "\u0303"}


def name(sym: str) -> str:
    """A symbol's name as the docs show it: ``beta_1`` → β₁, ``\\hat{v}`` → v̂, ``amsgrad`` stays."""
    m = re.fullmatch(r"\\(hat|bar|tilde)\{(\w+)\}", sym)
    if m:
        base = name(m.group(2))
        return base[0] + _ACCENTS[m.group(1)] + base[1:]
    m = re.fullmatch(r"\\\|(\w+)\\\|_(\w+)", sym)  # \|g\|_1
    if m:
        return f"‖{name(m.group(1))}‖{_subscript(m.group(2))}"
    m = re.fullmatch(r"(\w)\^\\top (\w)", sym)  # y^\top s
    if m:
        return f"{m.group(1)}ᵀ{m.group(2)}"
    head, *subs = sym.replace("\\", "").replace("{", "").replace("}", "").split("_")
    if head not in _GREEK and len(head) != 1:
        return sym  # a flag or a torch name (amsgrad, max_iter): as it is
    out = _GREEK.get(head, head)
    parts = [_SIGNS.get(s, _GREEK.get(s, s)) for s in subs]
    return out + "".join(_subscript(p) for p in parts)


def _subscript(text: str) -> str:
    return text.translate(_SUB) if set(text) <= _SUB_CHARS else f"_{text}"


class TextPrinter(StrPrinter):
    """SymPy's str printer, made to read like the docs' algorithm box, on one line.

    (``parenthesize(x, level, strict=True)`` wraps x only below ``level``; ``strict=False`` at
    ``level`` too.)"""

    def __init__(self, settings_symbols=(), choices=None) -> None:
        super().__init__()
        self.settings_symbols = frozenset(settings_symbols) | {t}
        self.choices = dict(choices or {})  # symbol -> its choices (a named choice's index)

    def _rank(self, factor) -> int:
        """Numbers, then settings (γ, β₁, the step t), then the rest: γ·m̂, (1 − β₁)·g."""
        if factor.is_number:
            return 0
        return 1 if factor.free_symbols and factor.free_symbols <= self.settings_symbols else 2

    def _print_Symbol(self, expr):
        return name(expr.name)

    _print_Dummy = _print_Symbol

    def _print_Add(self, expr, order=None):
        terms = sorted(expr.as_ordered_terms(), key=lambda a: a.could_extract_minus_sign())
        out = self._print(terms[0])
        for a in terms[1:]:
            if a.could_extract_minus_sign():
                out += " − " + self.parenthesize(-a, PRECEDENCE["Add"], strict=False)
            else:
                out += " + " + self.parenthesize(a, PRECEDENCE["Add"], strict=True)
        return out

    def _print_Mul(self, expr):
        if expr.could_extract_minus_sign():
            return "−" + self.parenthesize(-expr, PRECEDENCE["Mul"], strict=True)
        numer, denom = sp.fraction(expr)
        if denom is not sp.S.One:
            return (self.parenthesize(numer, PRECEDENCE["Mul"], strict=True) + "/"
                    + self.parenthesize(denom, PRECEDENCE["Mul"], strict=False))
        coeff, factors = expr.as_coeff_mul()
        ordered = sorted(sp.Mul._from_args(factors).as_ordered_factors(), key=self._rank)
        if coeff != 1:
            ordered = [coeff, *ordered]
        return "·".join(self.parenthesize(f, PRECEDENCE["Mul"], strict=True) for f in ordered)

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp == sp.Rational(1, 2):
            return "√" + self._radicand(base)
        if exp == -1:
            return "1/" + self.parenthesize(base, PRECEDENCE["Mul"], strict=False)
        if exp == sp.Rational(-1, 2):
            return "1/√" + self._radicand(base)
        b = self.parenthesize(base, PRECEDENCE["Pow"], strict=False)
        e = self._print(exp).replace(" ", "")
        if set(e) <= _SUP_CHARS:
            return b + e.translate(_SUP)
        return f"{b}^{e}" if precedence(exp) >= PRECEDENCE["Atom"] else f"{b}^({e})"

    def _radicand(self, expr) -> str:
        text = self._print(expr)
        return text if precedence(expr) >= PRECEDENCE["Atom"] else f"({text})"

    def _print_Piecewise(self, expr):
        *branches, (last, cond) = expr.args
        tail = self._print(last) if cond is sp.true else f"{self._print(last)} if {self._print(cond)}"
        for value, c in reversed(branches):
            tail = f"{self._print(value)} if {self._print(c)} else {tail}"
        return f"({tail})"

    def _print_Relational(self, expr):
        ops = {"==": "=", "!=": "≠", ">=": "≥", "<=": "≤"}
        if expr.lhs in self.choices and expr.rhs.is_Integer and expr.rel_op == "==":
            return f"{self._print(expr.lhs)} = {json.dumps(self.choices[expr.lhs][int(expr.rhs)])}"
        op = ops.get(expr.rel_op, expr.rel_op)
        return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

    def _print_And(self, expr):
        return " and ".join(self.parenthesize(a, PRECEDENCE["And"]) for a in expr.args)

    def _print_Or(self, expr):
        return " or ".join(self.parenthesize(a, PRECEDENCE["Or"]) for a in expr.args)

    def _print_Not(self, expr):
        return "not " + self.parenthesize(expr.args[0], PRECEDENCE["Not"])

    def _print_Function(self, expr):
        fname = {"F32": "fl₃₂", "RowMean": "mean_j", "ColMean": "mean_i", "Mean": "mean"}.get(
            expr.func.__name__, expr.func.__name__.lower() if expr.func.__name__ in ("Max", "Min") else None)
        if fname is None:
            return super()._print_Function(expr)
        return f"{fname}({', '.join(self._print(a) for a in expr.args)})"

    _print_Max = _print_Min = _print_F32 = _print_RowMean = _print_ColMean = _print_Mean = _print_Function

    def _print_NewtonSchulz(self, expr):
        u, a, b, c, eps, k = (self._print(x) for x in expr.args)
        norm = f"‖{u}‖_F + {eps}" if getattr(expr, "eps_added", False) else f"max(‖{u}‖_F, {eps})"
        return f"NS_bf16^{k}({u}/({norm}); {a}, {b}, {c})"

    def _print_sign(self, expr):
        return f"sign({self._print(expr.args[0])})"

    def _print_Total(self, expr):
        return f"Σ_params({self._print(expr.args[0])})"

    def _print_BatchMeanByRow(self, expr):
        """Adafactor's mean_i(R) read from the batch indexed by the element's row (torch_optimizer)."""
        return f"mean_i({self._print(expr.args[0])})[batch i]"

    def _print_Abs(self, expr):
        return f"|{self._print(expr.args[0])}|"


def printer_for(rule: Rule) -> TextPrinter:
    choices = {hp.symbols: hp.choices for hp in rule.hyperparameters if hp.choices}
    return TextPrinter((s for hp in rule.hyperparameters for s in hp.symbol_tuple), choices)


def assignment_text(line: Assign, printer: TextPrinter | None = None) -> str:
    """``target ← expr`` on one line."""
    p = printer or TextPrinter()
    return f"{p.doprint(line.target)} ← {p.doprint(sp.sympify(line.expr))}"


def changed_lines_text(base: Rule, other: Rule) -> list[dict]:
    """The lines in which ``other`` differs from ``base``, as text (the golden index's ``lines``
    of a variant): label, what the line does, the spec's line and the variant's (None where the
    line is absent from one of them)."""
    printer = printer_for(base)
    out = []
    for before, after in changed_lines(base, other):
        line = before or after
        out.append({"label": line.label, "doc": line.doc,
                    "spec": None if before is None else assignment_text(before, printer),
                    "variant": None if after is None else assignment_text(after, printer)})
    return out
