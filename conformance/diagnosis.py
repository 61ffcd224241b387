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
from functools import cache

import numpy as np

from .golden import Case, Spec
from .kinds import load_spec, load_variant
from .tolerance import CATCH_MARGIN, tolerance


def separated(spec: Spec, case: Case, variant: str, dtype: str) -> bool:
    """Whether this case tells the variant apart from the spec in this dtype: by at least
    CATCH_MARGIN tolerances. The goldens store the separation for float32 and float64; for the
    low-precision dtypes (bfloat16, float16) it is computed here from the two trajectories."""
    if dtype in case.separation.get(variant, {}):
        return case.separated(variant, dtype)
    return _separation(spec.id, case.id, variant, dtype) >= CATCH_MARGIN


@cache
def _separation(spec_id: str, case_id: str, variant: str, dtype: str) -> float:
    case = next(c for c in load_spec(spec_id).cases if c.id == case_id)
    other = load_variant(spec_id, variant)[case_id]
    worst = 0.0
    for name, exp in case.expected.items():
        tol = tolerance(case.bound[name], dtype, getattr(case, "bound_fixed", {}).get(name))
        diff = np.abs(other.expected[name][1:] - exp[1:])
        # steps a long horizon does not check are NaN: not compared
        worst = max(worst, float(np.max(np.nan_to_num(diff / tol, nan=0.0), initial=0.0)))
    return worst


def matching_variants(spec: Spec, case: Case, actual: dict[str, np.ndarray], dtype: str) -> list[str]:
    out = []
    for vid in spec.catalogued:
        if not separated(spec, case, vid, dtype):
            continue
        golden = load_variant(spec.id, vid)[case.id]
        ok = True
        for name, exp in golden.expected.items():
            tol = tolerance(golden.bound[name], dtype, golden.bound_fixed.get(name))
            act = actual[name]
            if act.shape != exp.shape or not np.all((np.abs(act[1:] - exp[1:]) <= tol) | np.isnan(exp[1:])):
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
    """``results``: CaseResult or CaseRecord objects of one spec."""
    results = list(results)
    ran = [r for r in results if r.outcome != "skipped"]
    if not ran:
        return Diagnosis("no cases ran", text="every case was skipped: nothing was checked")
    failed = [r for r in ran if r.outcome == "failed"]
    if not failed:
        text = f"conforms: {len(ran)} case runs within tolerance of the spec"
        accepted = sorted({r.accepted for r in ran if getattr(r, "accepted", "")})
        if accepted:
            n = sum(1 for r in ran if getattr(r, "accepted", ""))
            text += (f", {n} of them within tolerance of an acceptable or accepted variant instead "
                     f"({', '.join(accepted)})")
        return Diagnosis("conforms", variants=accepted, text=text)
    spec = load_spec(failed[0].spec)
    cases = {c.id: c for c in spec.cases}
    wrong_params = [r for r in failed if not r.params_conform]
    state_only = [r for r in failed if r.params_conform]
    explaining = []
    for vid in spec.catalogued:
        supported = [r for r in wrong_params if vid in r.matches]
        contradicted = [r for r in ran if separated(spec, cases[r.case], vid, r.dtype) and vid not in r.matches]
        if supported and not contradicted:
            explaining.append(vid)
    unexplained = sorted({f"{r.case}[{r.dtype}]" for r in wrong_params if not set(r.matches) & set(explaining)})
    lines = []
    for vid in explaining:
        v = spec.variants[vid]
        lines.append(f"trajectory matches {vid}: {v.title} — {v.summary} ({v.who}; {', '.join(v.sources)})")
    if unexplained:
        first = min((r for r in wrong_params if f"{r.case}[{r.dtype}]" in unexplained),
                    key=lambda r: r.first_divergent_step or 0)
        where = ""
        if first.first_divergence is not None:
            d = first.first_divergence
            where = f"; first divergence in {first.case}[{first.dtype}] at step {d.step}, {d.where()}"
        elif first.reason:
            where = f"; {first.case}[{first.dtype}]: {first.reason}"
        lines.append(f"no known variant explains {', '.join(unexplained)}{where}")
    if state_only:
        keys = sorted({r.first_divergence.quantity for r in state_only if r.first_divergence})
        where = ", ".join(f"{r.case}[{r.dtype}]" for r in state_only)
        if "loss" in keys:  # closed loop (LBFGS): the value step(closure) returns
            lines.append(f"parameters follow the spec, but the loss step(closure) returns differs in {where}")
            keys.remove("loss")
        if keys:
            lines.append(f"parameters follow the spec, but the state kept under torch's name(s) "
                         f"{', '.join(keys)} differs in {where}")
    if explaining:
        verdict = "variant"
    elif wrong_params:
        verdict = "unknown"
    else:
        verdict = "state differs"
    return Diagnosis(verdict, explaining, unexplained, "\n".join(lines))
