"""Which catalogued variant does a failing candidate implement?

For a failing case, the candidate's parameter trajectory is compared with the golden trajectory
of every variant that this case tells apart from the spec (in the candidate's dtype), under the
same tolerance model: the variants it stays within tolerance of are its ``matches``.

Across a run, a variant *explains* the failures when it matches in at least one failing case and
is contradicted nowhere (no case that tells it apart from the spec, failing or passing, shows the
candidate off that variant's trajectory).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .golden import Case, Spec, load_spec, load_variant
from .tolerance import tolerance


def matching_variants(spec: Spec, case: Case, actual: dict[str, np.ndarray], dtype: str) -> list[str]:
    out = []
    for vid in spec.variants:
        if not case.separated(vid, dtype):
            continue
        expected = load_variant(spec.id, vid)[case.id]
        ok = True
        for name, exp in expected.items():
            tol = tolerance(exp, case.touched(name), dtype)
            act = actual[name]
            if act.shape != exp.shape or not np.all(np.abs(act[1:] - exp[1:]) <= tol):
                ok = False
                break
        if ok:
            out.append(vid)
    return out


@dataclass
class Diagnosis:
    verdict: str  # "conforms" | "variant" | "unknown" | "no cases ran"
    variants: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)  # failing case ids no variant explains
    text: str = ""


def diagnose(results: Iterable) -> Diagnosis:
    """``results``: objects with spec, case, dtype, outcome, matches, first_divergence."""
    results = list(results)
    ran = [r for r in results if r.outcome != "skipped"]
    if not ran:
        return Diagnosis("no cases ran", text="every case was skipped: nothing was checked")
    failed = [r for r in ran if r.outcome == "failed"]
    if not failed:
        return Diagnosis("conforms", text=f"conforms: {len(ran)} case runs within tolerance of the spec")
    spec = load_spec(failed[0].spec)
    cases = {c.id: c for c in spec.cases}
    explaining = []
    for vid in spec.variants:
        supported = [r for r in failed if vid in r.matches]
        contradicted = [
            r for r in ran
            if cases[r.case].separated(vid, r.dtype) and vid not in r.matches
        ]
        if supported and not contradicted:
            explaining.append(vid)
    unexplained = sorted({f"{r.case}[{r.dtype}]" for r in failed if not set(r.matches) & set(explaining)})
    if explaining:
        lines = [f"trajectory matches {vid}: {spec.variants[vid].title} — {spec.variants[vid].summary} "
                 f"({spec.variants[vid].who}; {', '.join(spec.variants[vid].sources)})" for vid in explaining]
        if unexplained:
            lines.append("not explained by a known variant: " + ", ".join(unexplained))
        return Diagnosis("variant", explaining, unexplained, "\n".join(lines))
    first = min(failed, key=lambda r: (r.first_divergent_step or 0))
    where = ""
    if first.first_divergence is not None:
        d = first.first_divergence
        where = f"; first divergence in {first.case}[{first.dtype}] at step {d.step}, {d.where()}"
    return Diagnosis("unknown", [], unexplained,
                     f"no known variant matches the failing cases ({len(failed)} of {len(ran)} case runs){where}")
