"""The documentation pages generated from the derivations, at docs build time (``nox -s docs``).

Nothing here is typed by hand: every formula on an optimizer's page is the SymPy rule of its spec
printed as presentation MathML (rendered natively by the browser, no script, no CDN); the
hyperparameters, the state, the closed forms (proved again by :func:`.proofs.prove` while the
page is built), the variants with the lines they change (:func:`.rule.changed_lines`) and the
trajectory plot (from the shipped goldens) all come from the code the suite checks against. The
conformance matrix is a real run of :func:`optimizer_conformance.conformance.sweep.sweep_spec`,
and the golden-format reference is the JSON Schema the goldens are validated against.

The mkdocs hook ``docs/hooks/generated_pages.py`` adds :func:`pages` to the site as virtual files;
the tests call the functions below directly (``tests/test_docs.py``).
"""

from __future__ import annotations

import html
import io
import json
import platform
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from xml.dom.minidom import Element

import sympy as sp
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import PRECEDENCE

from . import SPECS
from .proofs import prove
from .rule import Assign, Rule, changed_lines, t

OPTIMIZERS_DIR = "optimizers"
MATRIX_PAGE = "conformance-matrix.md"
BOARD_PAGE = "third-party.md"
SCHEMA_PAGE = "golden-schema.md"
FINDINGS = "findings.md"  # the hand-written page on acceptable variants

# -- symbols --------------------------------------------------------------------------------------
_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "zeta": "ζ", "eta": "η",
    "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ",
    "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "chi": "χ",
    "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
# words used as subscripts that read better as signs
_SUBSCRIPTS = {"minus": "−", "plus": "+"}
_ACCENTS = {"hat": "^", "bar": "¯", "tilde": "~"}
_PRODUCT_RANK_NUMBER, _PRODUCT_RANK_SETTING, _PRODUCT_RANK_OTHER = 0, 1, 2


class MathPrinter(MathMLPresentationPrinter):
    """SymPy's presentation-MathML printer, made to read like an algorithm box.

    * symbols: Greek letters, subscripts (``beta_1`` → β₁, ``eta_minus`` → η₋), accents
      (``\\hat{m}`` → m̂), the few TeX-named symbols of the rules (‖g‖₁, yᵀs), and torch's
      flag names (``maximize``, ``amsgrad``) as upright words;
    * ``Piecewise`` as cases (``{ … if …; … otherwise``), a named choice as its value;
    * products with numbers and settings first (γ·m̂, (1 − β₁)·g), sums with their positive
      terms first (θ − γ·…, 1 − β₁ᵗ);
    * the tensor functions (means, Newton–Schulz, float32 rounding) in their usual notation.
    """

    def __init__(self, settings_symbols: Iterable[sp.Symbol] = (), choices: Mapping = None) -> None:
        super().__init__({"mul_symbol": None})
        self.settings_symbols = frozenset(settings_symbols) | {t}
        self.choices = dict(choices or {})  # symbol -> its choices (a named choice's index)
        self.assignments: dict[Assign, str] = {}  # a rule line's <math>, printed once (assignment_math)

    # -- elements ------------------------------------------------------------------------
    def _el(self, tag: str, *children, text: str | None = None, **attrs) -> Element:
        e = self.dom.createElement(tag)
        for k, v in attrs.items():
            e.setAttribute(k.rstrip("_").replace("_", "-"), v)
        if text is not None:
            e.appendChild(self.dom.createTextNode(text))
        for c in children:
            e.appendChild(c)
        return e

    def _mo(self, text: str, **attrs) -> Element:
        return self._el("mo", text=text, **attrs)

    def _mi(self, text: str) -> Element:
        return self._el("mi", text=text)

    def _name_node(self, name: str) -> Element:
        """A name without TeX: Greek, a letter with subscripts, or an upright word."""
        head, *subs = name.split("_")
        if head not in _GREEK and len(head) != 1:
            return self._mi(name)  # a flag or a torch name (amsgrad, max_iter, ax): upright
        base = self._mi(_GREEK.get(head, head))
        if not subs:
            return base
        parts = [_SUBSCRIPTS.get(s, _GREEK.get(s, s)) for s in subs]
        sub = self._el("mrow")
        for i, part in enumerate(parts):
            if i:
                sub.appendChild(self._mo(","))
            sub.appendChild(self._mn_or_mi(part))
        return self._el("msub", base, sub)

    def symbol_node(self, name: str) -> Element:
        m = re.fullmatch(r"\\(hat|bar|tilde)\{(\w+)\}", name)
        if m:
            return self._el("mover", self._name_node(m.group(2)), self._mo(_ACCENTS[m.group(1)]), accent="true")
        m = re.fullmatch(r"\\\|(\w+)\\\|_(\w+)", name)  # \|g\|_1
        if m:
            return self._el("msub", self._el("mrow", self._mo("‖"), self._name_node(m.group(1)), self._mo("‖")),
                            self._mn_or_mi(m.group(2)))
        m = re.fullmatch(r"(\w)\^\\top (\w)", name)  # y^\top s
        if m:
            return self._el("mrow", self._el("msup", self._mi(m.group(1)), self._mi("⊤")), self._mi(m.group(2)))
        return self._name_node(name.replace("\\", "").replace("{", "").replace("}", ""))

    def _mn_or_mi(self, s: str) -> Element:
        return self._el("mn", text=s) if s.isdigit() else self._mi(s)

    def _print_Symbol(self, sym, style="plain"):
        return self.symbol_node(sym.name)

    _print_Dummy = _print_Symbol

    def _print_Pow(self, e):
        # β₁ᵗ as one msubsup (not the superscript hung on the subscript)
        if isinstance(e.base, sp.Symbol) and not (e.exp.is_Rational and (e.exp.q != 1 or e.exp.is_negative)):
            base = self.symbol_node(e.base.name)
            if base.tagName == "msub":
                return self._el("msubsup", *list(base.childNodes), self._print(e.exp))
        return super()._print_Pow(e)

    # -- cases ----------------------------------------------------------------------------
    def _print_Piecewise(self, expr):
        rows = []
        for value, cond in expr.args:
            if cond is sp.true:
                when = self._el("mtext", text="otherwise")
            else:
                when = self._el("mrow", self._el("mtext", text="if\u00a0"), self._print(cond))
            rows.append(self._el("mtr", self._el("mtd", self._print(value)), self._el("mtd", when)))
        return self._el("mrow", self._mo("{", stretchy="true"), self._el("mtable", *rows, class_="oc-cases"))

    def _print_Relational(self, e):
        if e.lhs in self.choices and e.rhs.is_Integer and e.rel_op == "==":
            value = self.choices[e.lhs][int(e.rhs)]
            return self._el("mrow", self._print(e.lhs), self._mo("="), self._el("mtext", text=json.dumps(value)))
        return super()._print_Relational(e)

    def _print_And(self, expr):
        row = self._el("mrow")
        for i, a in enumerate(expr.args):
            if i:
                row.appendChild(self._el("mtext", text="\u00a0and\u00a0"))
            row.appendChild(self._print(a))
        return row

    def _print_Not(self, expr):
        return self._el("mrow", self._el("mtext", text="not\u00a0"), self._print(expr.args[0]))

    def _print_bool(self, e):
        return self._mi(str(bool(e)))

    _print_BooleanTrue = _print_BooleanFalse = _print_bool

    # -- sums and products -------------------------------------------------------------------
    def _print_Add(self, expr, order=None):
        terms = sorted(expr.as_ordered_terms(), key=lambda a: a.could_extract_minus_sign())
        row = self._el("mrow", self._print(terms[0]))
        for a in terms[1:]:
            if a.could_extract_minus_sign():
                row.appendChild(self._mo("−"))
                row.appendChild(self._print(-a))
            else:
                row.appendChild(self._mo("+"))
                row.appendChild(self._print(a))
        return row

    def _rank(self, factor: sp.Expr) -> int:
        if factor.is_number:
            return _PRODUCT_RANK_NUMBER
        if factor.free_symbols and factor.free_symbols <= self.settings_symbols:
            return _PRODUCT_RANK_SETTING
        return _PRODUCT_RANK_OTHER

    def _print_Mul(self, expr):
        row = self._el("mrow")
        if expr.could_extract_minus_sign():
            row.appendChild(self._mo("−"))
            expr = -expr
        numer, denom = sp.fraction(expr)
        if denom is not sp.S.One:
            row.appendChild(self._el("mfrac", self._print(numer), self._print(denom)))
            return row
        coeff, factors = expr.as_coeff_mul()
        factors = sorted(sp.Mul._from_args(factors).as_ordered_factors(), key=self._rank)
        if coeff != 1:
            factors = [coeff, *factors]
        for i, f in enumerate(factors):
            if i and isinstance(f, sp.Function) and not isinstance(f, sp.Piecewise):
                row.appendChild(self._el("mspace", width="0.1667em"))  # γ min(…), as \operatorname
            elif i:
                row.appendChild(self._mo("\u2062"))  # invisible times
            row.appendChild(self.parenthesize(f, PRECEDENCE["Mul"]))
        return row

    # -- functions ----------------------------------------------------------------------------
    def _applied(self, name: Element, *args: Element) -> Element:
        inner = self._el("mrow")
        for i, a in enumerate(args):
            if i:
                inner.appendChild(self._mo(","))
            inner.appendChild(a)
        return self._el("mrow", name, self._mo("\u2061"), self._mo("("), inner, self._mo(")"))

    def _hprint_variadic_function(self, expr):
        return self._applied(self._mi(str(expr.func).lower()), *(self._print(a) for a in expr.args))

    _print_Min = _print_Max = _hprint_variadic_function

    def _print_sign(self, expr):
        return self._applied(self._mi("sign"), self._print(expr.args[0]))

    def _print_F32(self, expr):
        return self._applied(self._el("msub", self._mi("fl"), self._el("mn", text="32")), self._print(expr.args[0]))

    def _print_RowMean(self, expr):
        return self._applied(self._el("msub", self._mi("mean"), self._mi("j")), self._print(expr.args[0]))

    def _print_ColMean(self, expr):
        return self._applied(self._el("msub", self._mi("mean"), self._mi("i")), self._print(expr.args[0]))

    def _print_Mean(self, expr):
        return self._applied(self._mi("mean"), self._print(expr.args[0]))

    def _print_BatchMeanByRow(self, expr):
        """mean_i(R) of the batch indexed by the element's row: mean with "i, batch i" under it."""
        sub = self._el("mrow", self._mi("i"), self._mo(","), self._el("mtext", text="batch\u00a0"), self._mi("i"))
        return self._applied(self._el("msub", self._mi("mean"), sub), self._print(expr.args[0]))

    def _print_Total(self, expr):
        """Σ over every element of every parameter of the step: a Σ with "params" under it."""
        return self._applied(self._el("munder", self._mo("∑"), self._el("mtext", text="params")), self._print(expr.args[0]))

    def _print_NewtonSchulz(self, expr):
        u, a, b, c, eps, k = (self._print(x) for x in expr.args)
        frob = self._el("msub", self._el("mrow", self._mo("‖"), self._mo("·"), self._mo("‖")), self._mi("F"))
        if getattr(expr, "eps_added", False):
            norm = self._el("mrow", frob, self._mo("+"), eps)
        else:
            norm = self._applied(self._mi("max"), frob, eps)
        name = self._el("msubsup", self._mi("NS"), k, self._el("mtext", text="bf16"))
        return self._el("mrow", name, self._mo("\u2061"), self._mo("("), u, self._mo(";"), a, self._mo(","), b,
                        self._mo(","), c, self._mo(";"), norm, self._mo(")"))

    # -- output ---------------------------------------------------------------------------------
    def node(self, expr) -> Element:
        return self._print(sp.sympify(expr))

    def to_math(self, node: Element, display: bool = True, label: str | None = None) -> str:
        attrs = {"display": "block"} if display else {}
        if label is not None:
            attrs["data_label"] = label
        root = self._el("math", node, **attrs)
        return root.toxml().encode("ascii", "xmlcharrefreplace").decode().replace("&amp;", "&")


def printer_for(rule: Rule) -> MathPrinter:
    settings = [s for hp in rule.hyperparameters for s in hp.symbol_tuple]
    choices = {hp.symbols: hp.choices for hp in rule.hyperparameters if hp.choices}
    return MathPrinter(settings, choices)


def math(expr, printer: MathPrinter | None = None, display: bool = True) -> str:
    """``<math>`` for one SymPy expression."""
    p = printer or MathPrinter()
    return p.to_math(p.node(expr), display)


def assignment_math(line: Assign, printer: MathPrinter) -> str:
    """``<math display="block">`` for one line of a rule: target ← expr. Printed once per printer: a
    spec's page shows a line in its algorithm and again beside each variant that changes it."""
    if line not in printer.assignments:
        node = printer._el("mrow", printer.node(line.target), printer._mo("←"), printer.node(line.expr))
        printer.assignments[line] = printer.to_math(node, label=line.label)
    return printer.assignments[line]


def equation_math(lhs, rhs, printer: MathPrinter, label: str | None = None, display: bool = True) -> str:
    node = printer._el("mrow", printer.node(lhs), printer._mo("="), printer.node(rhs))
    return printer.to_math(node, display=display, label=label)


# -- pages ------------------------------------------------------------------------------------------
def _at_a_time(meta: dict) -> str:
    """The board's parallelism, where its JSON records it (``--jobs``)."""
    jobs = meta.get("jobs")
    return f" ({jobs} at a time)" if jobs and jobs > 1 else ""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _md_cell(text: object) -> str:
    return _e(text).replace("|", "\\|").replace("\n", " ")


def _line_block(line: Assign | None, printer: MathPrinter, role: str = "") -> str:
    if line is None:
        return f'<div class="oc-line oc-absent"><p class="oc-doc">{_e(role)}: no such line</p></div>'
    who = f"<strong>{_e(role)}</strong> " if role else ""
    return (f'<div class="oc-line" id="{_e(role + "-" if role else "")}line-{_e(line.label)}">'
            f'<p class="oc-doc">{who}<code>{_e(line.label)}</code> {_e(line.doc)}</p>'
            f'<div class="oc-math">{assignment_math(line, printer)}</div></div>')


def _default(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_default(v) for v in value) + ")"
    return repr(value)


def _symbols_math(hp, printer: MathPrinter) -> str:
    syms = hp.symbol_tuple
    if len(syms) == 1:
        return math(syms[0], printer, display=False)
    row = printer._el("mrow", printer._mo("("))
    for i, s in enumerate(syms):
        if i:
            row.appendChild(printer._mo(","))
        row.appendChild(printer.node(s))
    row.appendChild(printer._mo(")"))
    return printer.to_math(row, display=False)


@dataclass
class Page:
    path: str  # relative to docs/
    markdown: str
    assets: dict[str, str] = field(default_factory=dict)  # path relative to docs/ -> content


def _algorithm(rule: Rule, printer: MathPrinter, closed_loop: bool) -> list[str]:
    out = ["## Algorithm", ""]
    if closed_loop:
        out += ["L-BFGS is a *closed-loop* spec: one `step(closure)` evaluates the objective several "
                "times, so the suite runs torch's algorithm (`derivations/lbfgs.py`, transcribed from "
                "`torch/optim/lbfgs.py` over a generic number type) and takes from the rule below the "
                "formula lines a variant can change: step sizes, the curvature test and the scaling "
                "of the initial inverse Hessian. These are those lines, in the order the algorithm "
                "uses them.", ""]
    else:
        out += ["One `optimizer.step()`, for one element θ of a parameter and its gradient g; each "
                "line sees the values the lines above it gave (an arrow is an assignment).", ""]
    for line in rule.body:
        out += [_line_block(line, printer), ""]
    return out


def _hyperparameters(rule: Rule, printer: MathPrinter) -> list[str]:
    out = ["## Hyperparameters", "", "| torch name | symbol | default | meaning |", "|---|---|---|---|"]
    for hp in rule.hyperparameters:
        extra = f" (one of {', '.join(map(repr, hp.choices))})" if hp.choices else ""
        out.append(f"| `{hp.name}` | {_symbols_math(hp, printer)} | `{_default(hp.default)}` | "
                   f"{_md_cell(hp.doc)}{_md_cell(extra)} |")
    return [*out, ""]


def _state(rule: Rule, printer: MathPrinter) -> list[str]:
    out = ["## State", "", "Per parameter, in `optimizer.state[p]` under torch's names (compared with the "
           "golden wherever the candidate uses these names).", "",
           "| torch name | symbol | initial value | meaning |", "|---|---|---|---|"]
    for s in rule.state:
        out.append(f"| `{s.name}` | {math(s.symbol, printer, display=False)} | "
                   f"{math(s.initial, printer, display=False)} | {_md_cell(s.doc)} |")
    return [*out, ""]


def _closed_forms(spec, printer: MathPrinter, proofs: bool) -> list[str]:
    if not spec.closed_forms:
        return []
    out = ["## Closed forms", ""]
    if proofs:
        out += ["Each result below was proved again while this page was built: SymPy applies the rule "
                "above symbolically to the closed form (`derivations/proofs.py`), by induction over the "
                "step count t — the base case (one step from the initial state gives the formula at "
                "t = 1) and the induction step (one step from the formula at n gives it at n + 1), "
                "each simplifying to exactly zero.", ""]
    else:
        out += ["Each result below is proved by SymPy by induction over the step count t "
                "(`derivations/proofs.py`; run by `tests/test_derivations.py`): the base case and the "
                "induction step each simplify to exactly zero.", ""]
    for cf in spec.closed_forms:
        status = ""
        if proofs:
            status = " — proved ✓" if prove(cf).holds else " — **NOT PROVED**"
        out += [f"### `{cf.name}`{status}", "", _e(cf.statement), ""]
        given = [equation_math(k, v, printer, display=False) for k, v in {**cf.given, **cf.initial}.items()]
        if given:
            out += ['<p class="oc-doc">with ' + ", ".join(given) + ", after t steps:</p>", ""]
        else:
            out += ['<p class="oc-doc">after t steps:</p>', ""]
        out += ['<div class="oc-math">' + "".join(equation_math(k, v, printer) for k, v in cf.closed.items())
                + "</div>", ""]
    return out


def _variants(spec, printer: MathPrinter) -> list[str]:
    out = ["## Variants", "",
           "Each catalogued variant is a named delta of the rule above; a failing candidate that stays "
           "within tolerance of a variant's golden trajectory is told it implements that variant. "
           f"An *acceptable* variant is a deviation by design that passes, reported as a named finding "
           f"([Findings](../{FINDINGS})).", ""]
    for v in spec.variants:
        tag = " (acceptable)" if v.acceptable else ""
        out += [f"### `{v.id}`{tag}", "", f"**{_e(v.title)}.** {_e(v.summary)}", ""]
        if v.acceptable:
            out += ['!!! note "Acceptable variant"', f"    Matching it passes, reported as the finding "
                    f"`{v.id}`: see [Findings](../{FINDINGS}).", ""]
        out += [f"Implemented by: {_e(v.who)}.", "", "Sources:", ""]
        out += [f"- {_e(s)}" for s in v.sources] + [""]
        out += ["What changes:", ""]
        for before, after in changed_lines(spec.rule, v.rule_for(spec.rule)):
            out += ['<div class="oc-diff">', _line_block(before, printer, "spec"),
                    _line_block(after, printer, "variant"), "</div>", ""]
    return out


def _closed_loop_objectives(spec, printer: MathPrinter) -> list[str]:
    if not hasattr(spec, "algorithm"):
        return []
    out = ["## Objectives", "", "The closures the cases call, written once in SymPy (the gradient is "
           "their `sympy.diff`); the goldens store each as a kind and exact coefficients.", ""]
    seen: dict[str, list[str]] = {}
    for case in spec.cases:
        key = sp.srepr(case.objective.f)
        seen.setdefault(key, [case.objective, []])[1].append(case.id)
    for objective, ids in seen.values():
        f = sp.Symbol("f")
        out += [f"`{objective.kind}` {_e(dict(objective.coefficients)) if objective.kind != 'quadratic' else ''}"
                f" — cases {', '.join(f'`{i}`' for i in ids)}", "",
                '<div class="oc-math">' + equation_math(f, objective.f, printer) + "</div>", ""]
    return out


def _plot(spec) -> tuple[list[str], dict[str, str]]:
    """A golden trajectory next to a variant's: the (variant, case, element) that differ most."""
    try:
        import matplotlib
        import numpy as np
        from optimizer_conformance.conformance.kinds import load_spec, load_variant

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError as exc:  # pragma: no cover - docs extra missing
        return [f"*(no trajectory plot: {_e(exc)})*", ""], {}
    golden = load_spec(spec.id)
    best = None
    for vid in golden.variants:
        cases = load_variant(spec.id, vid)
        for case in golden.cases:
            if case.id not in cases:
                continue
            for p in case.params:
                a, b = case.expected[p.name][:, 0], cases[case.id].expected[p.name][:, 0]
                scale = max(np.ptp(a), abs(a).max(), 1e-300)
                score = float(np.max(np.abs(a - b)) / scale)
                if best is None or score > best[0]:
                    best = (score, vid, case, p.name, a, b)
    if best is None:
        return [], {}
    _, vid, case, pname, a, b = best
    matplotlib.rcParams.update({"svg.hashsalt": "optimizer-conformance", "svg.fonttype": "none"})
    fig, ax = plt.subplots(figsize=(5.5, 2.8))
    steps = np.arange(len(a))
    ax.plot(steps, a, "o-", label=f"spec {spec.id}", color="#3f51b5")
    ax.plot(steps, b, "s--", label=vid, color="#e65100")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{pname}[0]")
    ax.set_title(f"{case.id}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    # laid out once: without this, savefig would draw the figure a second time for the layout
    # placeholder tight_layout leaves behind (the same SVG bytes either way)
    fig.set_layout_engine(None)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    name = f"{spec.id}-trajectory.svg"
    lines = ["## A golden trajectory and a variant's", "",
             f"From the shipped goldens: element 0 of param `{_e(pname)}` in case `{_e(case.id)}` "
             f"(*{_e(case.title)}*), as the spec computes it (80-digit arithmetic) and as the variant "
             f"`{vid}` would; of every variant, case and param, the one where the two differ most.", "",
             f"![trajectory of {pname}[0] in {case.id}: spec and {vid}]({name}){{ .oc-plot }}", ""]
    return lines, {f"{OPTIMIZERS_DIR}/{name}": buf.getvalue()}


def spec_page(spec, proofs: bool = False, plot: bool = True) -> Page:
    """The page of one spec (a :class:`.spec.Spec` or the closed-loop spec of L-BFGS)."""
    printer = printer_for(spec.rule)
    closed_loop = hasattr(spec, "algorithm")
    module = spec.id
    out = [f"# {_e(spec.title)}", "",
           f"{_defined_by(spec)} · spec id `{spec.id}` · rule: {_e(spec.rule.title)}", "",
           '!!! info "Generated"', f"    This page is generated at build time from `derivations/{module}.py`"
           f" (`derivations/docs.py`): the formulas are the SymPy rule the goldens are computed from.",
           "", f"Check an implementation against it: `pytest --optimizer=... --optimizer-spec={spec.id}`.", ""]
    out += _algorithm(spec.rule, printer, closed_loop)
    out += _hyperparameters(spec.rule, printer)
    out += _state(spec.rule, printer)
    out += _closed_loop_objectives(spec, printer)
    out += _closed_forms(spec, printer, proofs)
    out += _variants(spec, printer)
    out += _implementations(spec)
    assets: dict[str, str] = {}
    if plot:
        lines, assets = _plot(spec)
        out += lines
    return Page(f"{OPTIMIZERS_DIR}/{spec.id}.md", "\n".join(out) + "\n", assets)


def _defined_by(spec) -> str:
    return f"`{spec.torch_class}`" if spec.torch_class else "not in torch.optim"


def _implementations(spec) -> list[str]:
    """The library implementations the third-party board checks against this spec."""
    if not spec.implementations:
        return []
    out = ["## Implementations in other libraries", "",
           "The third-party board (`python -m optimizer_conformance.conformance.board`) checks each of these "
           "against this spec:", "", "| library | optimizer | settings | source |", "|---|---|---|---|"]
    for i in spec.implementations:
        settings = ", ".join(f"`{k}={v!r}`" for k, v in i.kwargs.items()) or "—"
        out.append(f"| {_md_cell(i.library)} | `{_md_cell(i.path)}` | {settings} | {_md_cell(i.note)} |")
    return out + [""]


def optimizers_index() -> Page:
    out = ["# Optimizers", "", "One page per spec, generated at build time from `derivations/`.", "",
           "| spec | torch class | rule lines | variants (acceptable) | closed forms |", "|---|---|---|---|---|"]
    for spec in SPECS.values():
        acc = sum(v.acceptable for v in spec.variants)
        out.append(f"| [{spec.title}]({spec.id}.md) | {_defined_by(spec)} | {len(spec.rule.body)} | "
                   f"{len(spec.variants)} ({acc}) | {len(spec.closed_forms)} |")
    return Page(f"{OPTIMIZERS_DIR}/index.md", "\n".join(out) + "\n")


def matrix_page(specs: Iterable[str] | None = None) -> Page:
    """The conformance matrix: a real in-process run of the sweep, at build time."""
    out = ["# Conformance matrix", "",
           '!!! info "Generated"', "    This page is a real run of the suite, made while the site was built "
           "(`optimizer_conformance.conformance.sweep.sweep_spec` for every spec; `derivations/docs.py`). "
           "Reproduce it with `python -m optimizer_conformance.conformance.sweep --markdown`.", ""]
    try:
        import torch
        from optimizer_conformance.conformance import sweep
        from optimizer_conformance.conformance.golden import spec_ids
    except ImportError as exc:
        out += ['!!! warning "Not run"', f"    torch is not importable where the docs were built ({_e(exc)}), "
                "so no conformance run is shown.", ""]
        return Page(MATRIX_PAGE, "\n".join(out) + "\n")
    ids = list(specs) if specs is not None else [s for s in spec_ids() if SPECS[s].torch_class is not None]
    start = time.perf_counter()
    runs = {sid: sweep.sweep_spec(sid, "cpu") for sid in ids}
    wall = time.perf_counter() - start
    flat = [r for rs in runs.values() for r in rs]
    n_pass = sum(r.verdict == "pass" for r in flat)
    n_fail = sum(r.verdict == "fail" for r in flat)
    n_unsup = sum(r.verdict == "unsupported" for r in flat)
    out += [f"torch **{_e(torch.__version__)}** · Python {platform.python_version()} · "
            f"{_e(platform.machine())} · device **cpu** · dtypes {', '.join(sweep.DTYPES)} · "
            f"{len(flat)} runs (optimizer × implementation × dtype) in {wall:.1f} s: "
            f"**{n_pass} pass**, {n_fail} fail, {n_unsup} unsupported.", "",
            "A cell reads verdict and cases passed / run; *(acceptable)* marks a run in which some case "
            f"followed an acceptable variant, named under findings ([Findings]({FINDINGS})).", ""]
    out += _matrix_tables(runs, "##", sweep)
    out += ["## CUDA", ""]
    if not torch.cuda.is_available():
        out += ['!!! warning "Not run: no CUDA device"',
                "    The machine that built this site has no CUDA device (`torch.cuda.is_available()` is "
                "False), so this page has no CUDA rows. Built on a GPU machine, the same page adds them: "
                "every implementation torch offers there (for-loop, foreach, fused, `capturable=True`) and "
                "the CUDA-graph mode (`step()` captured once and replayed; see "
                "[Check your optimizer](check-your-optimizer.md#gpus-and-cuda-graphs)). Print them with "
                "`python -m optimizer_conformance.conformance.sweep --device cuda --markdown`.", ""]
        return Page(MATRIX_PAGE, "\n".join(out) + "\n")
    start = time.perf_counter()
    cuda = {sid: sweep.sweep_spec(sid, "cuda") for sid in ids}
    wall = time.perf_counter() - start
    flat = [r for rs in cuda.values() for r in rs]
    out += [f"Device **{_e(torch.cuda.get_device_name())}** (CUDA {_e(torch.version.cuda)}) · "
            f"{len(flat)} runs in {wall:.1f} s: **{sum(r.verdict == 'pass' for r in flat)} pass**, "
            f"{sum(r.verdict == 'fail' for r in flat)} fail, {sum(r.verdict == 'unsupported' for r in flat)} "
            "unsupported. The `cuda_graph` rows run only the cases a graph can replay.", ""]
    out += _matrix_tables(cuda, "###", sweep)
    return Page(MATRIX_PAGE, "\n".join(out) + "\n")


def _matrix_tables(runs: Mapping[str, list], level: str, sweep) -> list[str]:
    out = []
    for sid, rs in runs.items():
        out += [f"{level} [`{sid}`]({OPTIMIZERS_DIR}/{sid}.md)", "", sweep.table(rs, markdown=True), ""]
        bad = [r for r in rs if r.verdict != "pass"]
        out += [f"- **{r.verdict}** {r.optimizer} [{r.implementation}, {r.dtype}]: {_e(r.detail)}" for r in bad]
        if bad:
            out.append("")
    return out


# -- the golden JSON Schema ----------------------------------------------------------------------
def _anchor(name: str) -> str:
    return "def-" + name.replace("_", "-")


def _schema_type(node: Mapping) -> str:
    if "$ref" in node:
        m = re.fullmatch(r"#/\$defs/(\w+)", node["$ref"])
        return f"[`{m.group(1)}`](#{_anchor(m.group(1))})" if m else f"`{node['$ref']}`"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    for key in ("oneOf", "anyOf"):
        if key in node:
            return " or ".join(_schema_type(n) for n in node[key])
    typ = node.get("type")
    if isinstance(typ, list):
        typ = " \\| ".join(typ)
    if typ == "array" and isinstance(node.get("items"), Mapping):
        return f"array of {_schema_type(node['items'])}"
    if typ == "object" and isinstance(node.get("additionalProperties"), Mapping):
        return f"object of {_schema_type(node['additionalProperties'])}"
    if "pattern" in node:
        return f"`{typ or 'string'}` matching `{_md_cell(node['pattern'])}`"
    return f"`{typ}`" if typ else "any"


def schema_page() -> Page:
    ref = resources.files("optimizer_conformance.conformance").joinpath("schemas", "golden.schema.json")
    schema = json.loads(ref.read_text(encoding="utf-8"))
    out = ["# Golden JSON Schema", "",
           '!!! info "Generated"', "    Rendered at build time from `conformance/schemas/golden.schema.json` "
           "(`derivations/docs.py`), the schema every shipped golden is validated against "
           "(JSON Schema 2020-12). See [Golden vectors](golden-vectors.md) for a walk-through.", "",
           f"**{_e(schema.get('title', ''))}** — `$id` `{_e(schema.get('$id', ''))}`", "",
           _e(schema.get("description", "")), "", "## Definitions", ""]
    for name, node in schema.get("$defs", {}).items():
        out += [f"### `{name}` {{#{_anchor(name)}}}", ""]
        if node.get("description"):
            out += [_e(node["description"]), ""]
        props = node.get("properties")
        if props:
            required = set(node.get("required", []))
            out += ["| property | type | required | description |", "|---|---|---|---|"]
            for pname, pnode in props.items():
                out.append(f"| `{pname}` | {_schema_type(pnode)} | {'yes' if pname in required else ''} | "
                           f"{_md_cell(pnode.get('description', ''))} |")
            out.append("")
        else:
            out += [f"Type: {_schema_type(node)}", ""]
    out += ["## The whole schema", "", '??? note "golden.schema.json"', "",
            "    ```json", *("    " + line for line in json.dumps(schema, indent=2, ensure_ascii=False).splitlines()),
            "    ```", ""]
    return Page(SCHEMA_PAGE, "\n".join(out) + "\n")


def _short_verdict(run: dict) -> str:
    return {"conforms": "**pass**", "does not conform": "fail", "nothing checked": "not checked",
            "cannot run": "cannot run"}.get(run["verdict"], run["verdict"])


def _short_diagnosis(runs: list[dict]) -> str:
    """The variants named (``adopt.clip_step_plus_one + ...``), or why nothing was checked, in a line."""
    texts = [r["diagnosis"] for r in runs if r["diagnosis"]]
    if not texts:
        return "—"
    found = re.findall(r"trajectory matches ([\w. +]+?)(?: \[explains (\d+) of (\d+) failing runs\])?:",
                       " ".join(texts))
    if found:
        whole = [name for name, k, _ in found if not k]
        if whole and not any(k for _, k, _ in found):
            return "matches " + "; ".join(dict.fromkeys(whole))
        parts = [f"{name} ({k} of {n} failing runs)" if k else name for name, k, n in found]
        return "partly matches " + "; ".join(dict.fromkeys(parts)) + "; the rest localised"
    text = texts[0]
    if text.startswith("no known variant explains"):
        return "no catalogued variant explains it" + ("" if "state" not in text else " (state differs)")
    return text if len(text) <= 140 else text[:137] + "..."


def board_page(board_json: str | None) -> Page:
    """The third-party board: a real run of ``python -m optimizer_conformance.conformance.board``
    (its ``--json`` file, named by ``OPTIMIZER_CONFORMANCE_BOARD`` when the site is built)."""
    out = ["# Third-party conformance", "",
           "Library implementations checked against the spec they are named after, each in a fresh "
           "`pytest --optimizer=... --optimizer-report=...` process: the libraries' own code, installed from "
           "the package index, run on the goldens. The list of implementations is part of each spec "
           "(`implementations` in `derivations/<spec>.py`, written into the golden index).", ""]
    if not board_json:
        out += ['!!! warning "Not run in this build"',
                "    Build with `OPTIMIZER_CONFORMANCE_BOARD=board.json` after "
                "`python -m optimizer_conformance.conformance.board --json board.json` (CI does).", ""]
        return Page(BOARD_PAGE, "\n".join(out) + "\n")
    with open(board_json, encoding="utf-8") as fh:
        doc = json.load(fh)
    runs, meta = doc["runs"], doc["environment"]
    ran = [r for r in runs if r["verdict"] != "not installed"]
    entries = sorted({(r["library"], r["optimizer"]) for r in ran})
    out += [f"Run on {_e(meta['date'])}: torch {_e(meta.get('torch') or '—')} · Python {_e(meta['python'])} · "
            f"{_e(meta['machine'])} · {len(ran)} runs of {len(entries)} implementations in "
            f"{meta['seconds']:.0f} s{_at_a_time(meta)}: **{sum(r['verdict'] == 'conforms' for r in ran)} conform**.", ""]
    missing = sorted({r["library"] for r in runs if r["verdict"] == "not installed"})
    if missing:
        out += [f"Not installed where this was built (not run): {', '.join(missing)}.", ""]
    out += ["One row per implementation; a cell reads verdict and cases passed/failed/skipped per dtype. The "
            "diagnosis names the catalogued variant(s) the trajectory matches (the spec's page shows the rule "
            "line each changes and who implements it), or says that none explains it.", "",
            "| spec | optimizer (library version) | float32 · float64 | diagnosis |", "|---|---|---|---|"]
    by_entry: dict[tuple, list] = {}
    for r in ran:
        by_entry.setdefault((r["library"], r["version"], r["optimizer"], r["spec"], json.dumps(r["kwargs"])), []).append(r)
    for (library, version, optimizer, spec_id, _), rs in by_entry.items():
        kw = "".join(f" `{k}={v!r}`" for k, v in rs[0]["kwargs"].items())
        cells = {r["dtype"]: f"{_short_verdict(r)} {r['passed']}/{r['failed']}/{r['skipped']}" for r in rs}
        out.append(f"| [`{spec_id}`]({OPTIMIZERS_DIR}/{spec_id}.md) | "
                   f"`{_md_cell(optimizer)}`{kw} ({_md_cell(library)} {_md_cell(version)}) | {cells.get('float32', '—')} · "
                   f"{cells.get('float64', '—')} | {_md_cell(_short_diagnosis(rs))} |")
    out += ["", "Where an implementation deviates, the spec's page names the catalogued variant it matches, with "
            "the rule line it changes and the library source that implements it.", ""]
    return Page(BOARD_PAGE, "\n".join(out) + "\n")


# -- the site --------------------------------------------------------------------------------------
def pages(proofs: bool = True, sweep: bool = True, plot: bool = True, board_json: str | None = None) -> list[Page]:
    """Every generated page (and its assets): what the mkdocs hook adds to the site."""
    out = [optimizers_index(), board_page(board_json)]
    out += [spec_page(spec, proofs=proofs, plot=plot) for spec in SPECS.values()]
    if sweep:
        out.append(matrix_page())
    else:
        out.append(Page(MATRIX_PAGE, "# Conformance matrix\n\n!!! warning \"Not run\"\n    This build skipped the "
                        "sweep (`OPTIMIZER_CONFORMANCE_DOCS_QUICK`).\n"))
    out.append(schema_page())
    from optimizer_conformance.conformance.case_design import page as case_design_page

    out.append(Page("case-design.md", case_design_page()))
    return out


def nav_optimizers() -> list[dict[str, str] | str]:
    """The nav entries of the optimizer pages (the section's index first)."""
    return [f"{OPTIMIZERS_DIR}/index.md"] + [{spec.title: f"{OPTIMIZERS_DIR}/{spec.id}.md"} for spec in SPECS.values()]
