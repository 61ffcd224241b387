"""Combinations of a spec's catalogued variants: what real libraries implement (Keras's Adam is ε̂
and one step counter for the whole optimizer; timm's RMSpropTF is three RMSprop variants at once).

A variant is a delta of the spec's rule (:mod:`.rule`), so deltas compose: a *combination* of two
or three variants is their deltas applied one after the other. Two variants are *compatible* when
they change different rule lines (labels) and applying them in either order gives the same rule;
incompatible combinations (both replace the same line, or one removes a line the other rewrites)
are not combinations of anything a library could implement under those names and are skipped.
Deltas declared to rewrite only a part of their lines (``Variant.partial_lines``: a flag switched,
a term substituted, a line wrapped as found) may share a line: such a combination is compatible when
every order of its parts gives the same rule and each part still changes it (pytorch_optimizer's
RAdam: decoupled decay, and no decay before rectification, both in the ``decay`` line; timm's
Adafactor: ε₁ added to g², and small matrices unfactored, both in the ``variance`` line).

The golden generator (:mod:`.golden`) evaluates every compatible combination of up to
:data:`MAX_PARTS` variants like a variant and writes it under ``<spec>/compound/``, with
``<spec>/compound.json`` listing them and the spec's rule lines by the variable each computes
(the plugin names the line where a trajectory leaves the spec from it: :mod:`conformance.compound`).

Combinations are evaluated on the spec's own cases only (:func:`combination_case`), not on the
generated one-feature and boundary cases nor on a long horizon: a generated case puts one feature or
one setting on a special value to catch a single-point bug, while a library's combination already
fails, and is named, on the spec's own cases (a candidate lacking a feature still runs those without
it). Evaluating every combination on every case would double the compound goldens and the time to
check them. The plugin treats a combination as not evaluated on the other cases: neither matched nor
contradicted there (conformance/diagnosis.py: ``evaluated``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations as subsets
from itertools import permutations

from .rule import Rule, Variant, changed_lines, theta
from .spec import Spec
from .text import assignment_text, printer_for

MAX_PARTS = 3  # a failing run is explained by at most this many catalogued deltas at once
SEPARATOR = " + "  # a combination's id: its parts' ids in catalogue order, joined


@dataclass(frozen=True)
class Combination:
    parts: tuple[Variant, ...]
    rule: Rule

    @property
    def id(self) -> str:
        return SEPARATOR.join(v.id for v in self.parts)

    @property
    def file_name(self) -> str:
        return "+".join(v.id for v in self.parts) + ".json"


def touched(spec_rule: Rule, v: Variant) -> frozenset[str]:
    """The rule lines (labels; ``initial:<state>`` for a changed initial value) a variant changes."""
    out = set()
    for before, after in changed_lines(spec_rule, v.rule_for(spec_rule)):
        line = before or after
        out.add(f"initial:{line.target}" if line.label == "initial" else line.label)
    return frozenset(out)


def _compose(rule: Rule, parts) -> Rule | None:
    try:
        for v in parts:
            rule = v.delta(rule)
    except KeyError:  # a delta that needs a line an earlier one removed
        return None
    return rule


def _same(a: Rule | None, b: Rule) -> bool:
    return a is not None and a.body == b.body and a.state == b.state


def combinations(spec: Spec, max_parts: int = MAX_PARTS) -> list[Combination]:
    """The compatible combinations of 2..max_parts of the spec's variants, smallest first, each in
    catalogue order."""
    lines = {v.id: touched(spec.rule, v) for v in spec.variants}
    out = []
    for k in range(2, max_parts + 1):
        for parts in subsets(spec.variants, k):
            shared = [(a, b) for a, b in subsets(parts, 2) if lines[a.id] & lines[b.id]]
            if not all(a.partial_lines and b.partial_lines for a, b in shared):
                continue
            orders = list(permutations(parts)) if shared else [parts, tuple(reversed(parts))]
            rules = [_compose(spec.rule, order) for order in orders]
            rule = rules[0]
            if any(r is None or r.body != rule.body or r.state != rule.state for r in rules):
                continue
            if shared and any(_same(_compose(spec.rule, tuple(p for p in parts if p is not q)), rule)
                              for q in parts):
                continue  # a part the others overwrite: not a combination of all of them
            ids = "+".join(v.id for v in parts)
            out.append(Combination(parts, rule.renamed(f"{spec.rule.id}~{ids}", f"{spec.rule.title}, {ids}")))
    return out


def combination_case(spec: Spec, case) -> bool:
    """Whether combinations are evaluated on ``case`` (a built CaseDesign): one of the spec's own
    cases, stepped one step at a time from the initial state (no repeated step, no injected state)."""
    long = any(st.repeat > 1 for st in case.steps) or bool(case.initial_state)
    return case.id in {b.id for b in spec.cases} and not long


def rule_lines(rule: Rule) -> list[dict]:
    """The spec's rule lines in order, each with the torch name of what it computes (a state
    variable's name, ``"param"`` for θ, None for an intermediate such as m̂): a localisation names
    the line that computes the first variable to leave the spec."""
    names = {s.symbol: s.name for s in rule.state}
    names[theta] = "param"
    printer = printer_for(rule)
    return [{"label": line.label, "doc": line.doc, "computes": names.get(line.target),
             "text": assignment_text(line, printer)} for line in rule.body]
