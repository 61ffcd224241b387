"""Boundary values, generated from the rule: where implementations branch, and where cases must stand.

Two sources, both read off the spec, never listed by hand:

* **the rule's branches** — every ``Max``/``Min`` (a clamp, AMSGrad's maximum), ``sign``, and every
  atom of a ``Piecewise`` condition (a comparison such as RAdam's ``ρ_t > 5``, or a flag such as
  ``amsgrad``) in the spec's rule. A comparison ``a ? b`` is covered on a side when a case's exact
  trajectory evaluates ``a − b`` with that sign *where the branch is taken* (inside the Piecewise
  branches that lead to it); a flag, when it is evaluated true and false. :func:`probes` compiles
  these for :func:`~.evaluate.evaluate`, which records the signs it meets.
* **the settings' special values** — each numeric hyperparameter's neutral value and default, and
  the values constructors commonly special-case (:data:`COMMON`: weight decay exactly 1,
  momentum 0 and near 1, dampening 0 and 1; lr = 0 and β = 0 not yet, see there). Covered *on* the value when a case sets it
  exactly, and, for a neutral or common value (a branch point: ``if weight_decay != 0``),
  *below*/*above* when a case sets it lower/higher, where the setting's range (:data:`RANGES`)
  allows that side; a default is stood on only.

:func:`boundary_cases` adds the cases that put uncovered settings on their values and on each side
(settings without a neutral value together in one case, an optional one alone: one feature per
case). :func:`document` is the list the golden index prints per spec: value, where it comes from,
which cases cover it, and, for a side no case can reach, the spec's stated reason
(:attr:`Spec.unreachable_boundaries`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import sympy as sp

from .cases import CaseBuilder, CaseDesign
from .rule import Hyperparameter, Rule
from .spec import Spec
from .tensor import TensorFunction

# Values constructors special-case, by torch's name of the setting (beside its neutral value and default).
# Not yet: lr = 0 and β = 0. With lr = 0 the params cannot move, so a wrong candidate fails on its
# state only, which the variant goldens (params only) cannot name; β = 0 puts several variants
# between 1 and CATCH_MARGIN tolerances from the spec (a failure no variant explains). Both need
# the diagnosis to compare state first (docs/findings.md).
COMMON: Mapping[str, tuple[str, ...]] = {
    "weight_decay": ("1",),
    "momentum": ("0", "0.9921875"),  # 0 and near 1 (1 − 2⁻⁷, exact in every dtype)
    "dampening": ("0", "1"),
}
# Closed ranges of settings bounded on both sides (others: [0, ∞) when a special value is 0).
RANGES: Mapping[str, tuple[str, str]] = {
    "momentum": ("0", "1"), "dampening": ("0", "1"), "betas": ("0", "1"),
}
SIDES = ("below", "on", "above")
# The reason shared by every rule that tests the step count after counting the step.
COUNTED = "t ≥ 1: the rule reads the step count after counting the step"


@dataclass(frozen=True)
class Branch:
    """One comparison or flag of the rule. ``diff``: ``a − b`` of a comparison (its sign is the
    side), or the flag itself; ``path``: the condition under which the rule evaluates it."""

    key: str
    line: str
    kind: str  # "comparison" or "flag"
    diff: sp.Expr
    path: sp.Basic
    # the sides a case must reach: a Max/Min gives the same value on its boundary whichever
    # argument wins, so only its two sides matter; a condition (> or ≥?) and sign(0) need "on" too
    sides: tuple[str, ...] = SIDES

    def required(self) -> tuple[str, ...]:
        """The sides to cover, less those the symbols' declared assumptions exclude (μ ≥ 0)."""
        if self.kind == "flag":
            return ("false", "true")
        return tuple(s for s in self.sides if not (s == "below" and self.diff.is_nonnegative)
                     and not (s == "above" and self.diff.is_nonpositive)
                     and not (s == "on" and (self.diff.is_positive or self.diff.is_negative)))


def _atoms(cond: sp.Basic) -> Iterable[sp.Basic]:
    if cond in (sp.true, sp.false):
        return
    if isinstance(cond, (sp.And, sp.Or, sp.Not)):
        for a in cond.args:
            yield from _atoms(a)
    else:
        yield cond


def _branch(line: str, atom: sp.Basic, path: sp.Basic) -> Branch:
    if isinstance(atom, sp.core.relational.Relational):
        return Branch(f"{line}: {sp.sstr(atom)}", line, "comparison", atom.lhs - atom.rhs, path)
    return Branch(f"{line}: {sp.sstr(atom)}", line, "flag", atom, path)


def _walk(line: str, expr: sp.Basic, path: sp.Basic, out: list[Branch]) -> None:
    if isinstance(expr, TensorFunction) or not isinstance(expr, sp.Basic):
        return
    if isinstance(expr, sp.Piecewise):
        taken_before = sp.true  # the earlier branches' conditions were false
        for e, c in expr.args:
            for atom in _atoms(c):
                out.append(_branch(line, atom, sp.And(path, taken_before)))
            _walk(line, e, sp.And(path, taken_before, c), out)
            taken_before = sp.And(taken_before, sp.Not(c))
        return
    if isinstance(expr, (sp.Max, sp.Min)):
        first, *rest = expr.args
        for other in rest:
            out.append(Branch(f"{line}: {sp.sstr(expr)}" + (f" [{sp.sstr(other)}]" if len(rest) > 1 else ""),
                              line, "comparison", first - other, path, ("below", "above")))
    if isinstance(expr, sp.sign):
        out.append(Branch(f"{line}: {sp.sstr(expr)}", line, "comparison", expr.args[0], path))
    for a in expr.args:
        _walk(line, a, path, out)


def branches(rule: Rule) -> tuple[Branch, ...]:
    """The rule's comparisons and flags, in the order of its lines (each key once)."""
    out: list[Branch] = []
    for line in rule.body:
        _walk(line.label, sp.sympify(line.expr), sp.true, out)
    seen, unique = set(), []
    for b in out:
        if b.key not in seen:
            seen.add(b.key)
            unique.append(b)
    return tuple(unique)


def probes(rule: Rule, line_label: str, replaced: Callable[[sp.Expr], sp.Expr]) -> tuple[tuple[str, str, sp.Expr, sp.Basic], ...]:
    """The branches of one line as (key, kind, diff, path), tensor functions replaced by the
    symbols the compiled line uses (``replaced``)."""
    return tuple((b.key, b.kind, replaced(b.diff), replaced(b.path))
                 for b in branches(rule) if b.line == line_label)


def side(kind: str, value) -> str:
    """The side a probe value stands on: a comparison's sign, or a flag's truth."""
    if kind == "flag":
        return "true" if bool(value) else "false"
    return "below" if value < 0 else "above" if value > 0 else "on"


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingValue:
    name: str  # torch's name
    index: int | None  # the element of a tuple setting (betas[0]), or None
    value: str  # a decimal string
    source: str  # "neutral", "default", "common"

    @property
    def key(self) -> str:
        where = self.name if self.index is None else f"{self.name}[{self.index}]"
        return f"{where} = {self.value}"

    def sides(self) -> tuple[str, ...]:
        """The value itself, and for a neutral or common value the sides the setting's range
        allows (a default is a value to stand on, not a branch point: on it only)."""
        if self.source == "default":
            return ("on",)
        lo, hi = RANGES.get(self.name, ("0", None))
        v = Decimal(self.value)
        return tuple(s for s in SIDES if not (s == "below" and v <= Decimal(lo))
                     and not (s == "above" and hi is not None and v >= Decimal(hi)))


def _numeric(hp: Hyperparameter) -> bool:
    return not (hp.boolean or hp.choices or hp.integer)


def setting_values(spec: Spec) -> tuple[SettingValue, ...]:
    """The special values of the spec's numeric settings (neutral, default, :data:`COMMON`)."""
    out: dict[str, SettingValue] = {}
    for hp in spec.rule.hyperparameters:
        if not _numeric(hp):
            continue
        n = len(hp.symbol_tuple)
        for i in range(n):
            index = i if isinstance(hp.symbols, tuple) else None
            candidates = []
            if hp.neutral is not None:
                candidates.append((hp.neutral[i] if isinstance(hp.neutral, tuple) else hp.neutral, "neutral"))
            default = hp.default[i] if isinstance(hp.default, tuple) else hp.default
            candidates.append((default, "default"))
            candidates += [(v, "common") for v in COMMON.get(hp.name, ())]
            for value, source in candidates:
                if value is None:
                    continue  # "the dtype's epsilon" (Adafactor's ε₁): no single value
                sv = SettingValue(hp.name, index, _decimal(value), source)
                out.setdefault(sv.key, sv)
    return tuple(out.values())


def _decimal(value) -> str:
    d = Decimal(repr(float(value))) if not isinstance(value, str) else Decimal(value)
    return format(d.normalize(), "f")


def _values_in(case: CaseDesign, sv: SettingValue) -> list[Decimal]:
    out = []
    values = [gr.hyperparameters[sv.name] for gr in case.groups]
    values += [c.value for s in case.steps for c in s.changes if c.name == sv.name]
    for v in values:
        x = v[sv.index] if sv.index is not None else v
        if x is not None:
            out.append(Decimal(str(x)))
    return out


def setting_sides(case: CaseDesign, sv: SettingValue) -> set[str]:
    target = Decimal(sv.value)
    return {"below" if x < target else "above" if x > target else "on" for x in _values_in(case, sv)}


# -- generated cases -----------------------------------------------------------------------------


def _near(sv: SettingValue, which: str) -> str:
    """A value just below/above a special value, inside the setting's range (exact decimals)."""
    v = Decimal(sv.value)
    lo, hi = RANGES.get(sv.name, ("0", None))
    if which == "below":
        return str(v / 2 if v > 0 else v - 1) if Decimal(lo) < v / 2 or v <= 0 else str((v + Decimal(lo)) / 2)
    if hi is not None:
        return str((v + Decimal(hi)) / 2)
    return str(v * 2 if v > 0 else Decimal(1))


def _set(hps: dict, sv: SettingValue, value: str) -> None:
    if sv.index is None:
        hps[sv.name] = value
    else:
        xs = list(hps[sv.name])
        xs[sv.index] = value
        hps[sv.name] = xs


def boundary_cases(spec: Spec, builders: Sequence[CaseBuilder], minimal: Mapping[str, object]) -> tuple[CaseBuilder, ...]:
    """Cases that put every special value of a setting no case covers on it and on each side:
    settings without a neutral value several at a time, an optional setting alone."""
    defaults = spec.defaults()
    designs = [b.build(defaults) for b in builders]
    base = builders[0]
    optional = {hp.name for hp in spec.rule.hyperparameters if hp.neutral is not None}
    todo: list[tuple[SettingValue, str]] = []
    for sv in setting_values(spec):
        covered = set().union(*(setting_sides(d, sv) for d in designs))
        todo += [(sv, s) for s in sv.sides() if s not in covered and f"{sv.key} {s}" not in spec.unreachable_boundaries]
    out: list[CaseBuilder] = []
    shared: list[dict] = []  # cases of non-optional settings: one value per setting element each
    for sv, s in todo:
        value = sv.value if s == "on" else _near(sv, s)
        if sv.name in optional:
            hps = dict(_turned_on(spec, designs, sv.name) or minimal)
            _set(hps, sv, value)
            out.append(_case(spec, base, f"{sv.name}{'' if sv.index is None else sv.index}_{s}_{sv.value}",
                             hps, f"{sv.key}: {s}", len(out)))
            continue
        slot = next((h for h in shared if (sv.name, sv.index) not in h["_set"]), None)
        if slot is None:
            slot = {"_set": set(), "hps": dict(minimal), "what": []}
            shared.append(slot)
        slot["_set"].add((sv.name, sv.index))
        _set(slot["hps"], sv, value)
        slot["what"].append(f"{sv.key}: {s}")
    for k, slot in enumerate(shared, start=1):
        out.append(_case(spec, base, f"settings_{k}", slot["hps"], "; ".join(slot["what"]), len(out)))
    return tuple(out)


def _turned_on(spec: Spec, designs: Sequence[CaseDesign], name: str) -> dict | None:
    """The settings of the first group of the spec's cases that turns ``name`` on (its learning
    rate makes the setting visible), every other optional setting at its neutral value."""
    hp = spec.rule.hyperparameter(name)
    for d in designs:
        for gr in d.groups:
            if float(gr.hyperparameters[name]) != float(hp.neutral):
                out = dict(gr.hyperparameters)
                for other in spec.rule.hyperparameters:
                    if other.neutral is not None and other.name != name and name not in other.requires \
                            and other.name not in hp.requires:
                        out[other.name] = other.neutral if other.boolean or other.integer else str(other.neutral)
                return out
    return None


def _case(spec: Spec, base: CaseBuilder, name: str, hps: dict, what: str, k: int) -> CaseBuilder:
    case_id = f"{spec.id}/boundary_{name}"
    seed = spec.reseeded[case_id][0] if case_id in spec.reseeded else base.seed * 100 + 50 + k
    return replace(base, id=case_id, title=f"boundary values: {what}",
                   purpose="settings on the values implementations special-case, and on each side "
                   "(generated from the spec: derivations/boundaries.py)",
                   hyperparameters=hps, seed=seed, features=tuple(base.features),
                   no_grad={}, changes={}, reload_before=(), groups=None)


# -- the index's list ----------------------------------------------------------------------------


def document(spec: Spec, designs: Sequence[CaseDesign], met: Mapping[str, Mapping[str, set[str]]]) -> list[dict]:
    """Every boundary of the spec: value, where it comes from, the cases on each side.
    ``met[case id][branch key]``: the sides the case's exact trajectory met."""
    out = []
    for b in branches(spec.rule):
        sides = b.required()
        covered = {s: next((d.id for d in designs if s in met.get(d.id, {}).get(b.key, ())), None) for s in sides}
        out.append({"boundary": b.key, "value": "true/false" if b.kind == "flag" else f"{sp.sstr(b.diff)} = 0",
                    "from": f"rule line '{b.line}' ({b.kind})", "cases": covered,
                    "unreachable": {s: spec.unreachable_boundaries[f"{b.key} {s}"] for s in sides
                                    if f"{b.key} {s}" in spec.unreachable_boundaries}})
    for sv in setting_values(spec):
        covered = {s: next((d.id for d in designs if s in setting_sides(d, sv)), None) for s in sv.sides()}
        out.append({"boundary": sv.key, "value": sv.value, "from": f"setting {sv.name} ({sv.source})",
                    "cases": covered,
                    "unreachable": {s: spec.unreachable_boundaries[f"{sv.key} {s}"] for s in sv.sides()
                                    if f"{sv.key} {s}" in spec.unreachable_boundaries}})
    return out
