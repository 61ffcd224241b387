"""Which catalogued variant, or combination of variants, does a failing candidate implement?

For a failing case, the candidate's parameter trajectory is compared with the golden trajectory
of every variant and every compatible combination of up to three variants (``compound.py``),
under the same tolerance model: the names it stays within tolerance of are its ``matches``. A float64 run is also compared under
the float32 tolerance (the precision axis ``precision.float32_internal``).

Across a run, a name *explains* the failures when it matches in every failing case with wrong
parameters and is contradicted nowhere (no case that tells it apart from the spec, failing or
passing, shows the candidate off its trajectory); the smallest such names are the diagnosis.
When none explains them all, the names that explain some are given (largest share first) and
what remains is *localised*: the first step, parameter, element and quantity (a state variable
under torch's name, or the parameter) that leaves the spec, and the rule line computing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from . import compound
from .compound import PRECISION, describe, minimal, parts, size, without_precision
from .golden import Case, Spec
from .kinds import load_spec, load_variant
from .open_loop import variant_cases
from .tolerance import CATCH_MARGIN


def load_combination(spec_id: str, combo: compound.Combination) -> dict[str, Case]:
    """A combination's params by case id (combinations are open-loop documents)."""
    return variant_cases(spec_id, combo.file)


def variant_separated(spec: Spec, case: Case, variant: str, dtype: str) -> bool:
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
        tol = case.tolerance(name, dtype)
        diff = np.abs(other.expected[name][1:] - exp[1:])
        # steps a long horizon does not check are NaN: not compared
        worst = max(worst, float(np.max(np.nan_to_num(diff / tol, nan=0.0), initial=0.0)))
    return worst


def name_separated(spec: Spec, case: Case, name: str, dtype: str) -> bool:
    """Whether the case tells the name's trajectory apart from the spec in this dtype. The precision
    axis changes only the tolerance: a name with it is separated where its variant part is in
    float32 (the tolerance its float64 runs are matched with); the axis alone is never (a run that
    passes does not contradict it)."""
    base = without_precision(name)
    if base != name:
        dtype = "float32"
    if not base:
        return False
    if base in spec.variants:
        return variant_separated(spec, case, base, dtype)
    combo = compound.compound(spec.id).combinations.get(base)
    if combo is None:
        return False
    return combo.separation.get(case.id, {}).get(dtype, 0.0) >= CATCH_MARGIN


def evaluated(spec: Spec, name: str, case_id: str) -> bool:
    """Whether the name has a golden on the case: a variant (and the precision axis) on every case,
    a combination on the spec's own cases only (derivations/compound.py:
    combination_case); elsewhere it is neither matched nor contradicted."""
    base = without_precision(name)
    if not base or base in spec.variants:
        return True
    combo = compound.compound(spec.id).combinations.get(base)
    return combo is not None and case_id in combo.separation


def matching_combinations(spec: Spec, case: Case, actual: dict[str, np.ndarray], dtype: str) -> list[str]:
    """The combinations whose trajectory the candidate follows in this (failing) case."""
    out = []
    for combo in compound.compound(spec.id).combinations.values():
        if case.id in combo.separation and compound.within(load_combination(spec.id, combo)[case.id], actual, dtype):
            out.append(combo.id)
    return out


def matching_float32_internal(spec: Spec, case: Case, actual: dict[str, np.ndarray], dtype: str,
                              matched: list[str]) -> list[str]:
    """For a float64 run: the names the candidate follows within the float32 tolerance (not already
    matched in float64), each with the precision axis appended; the spec itself gives the axis alone."""
    if dtype != "float64":
        return []
    out = []
    if compound.within(case, actual, "float32"):
        out.append(PRECISION)
    for vid in spec.catalogued:
        if vid not in matched and compound.within(load_variant(spec.id, vid)[case.id], actual, "float32"):
            out.append(compound.join(vid, PRECISION))
    for combo in compound.compound(spec.id).combinations.values():
        if combo.id not in matched and case.id in combo.separation and \
                compound.within(load_combination(spec.id, combo)[case.id], actual, "float32"):
            out.append(compound.join(combo.id, PRECISION))
    return out


def matching_variants(spec: Spec, case: Case, actual: dict[str, np.ndarray], dtype: str) -> list[str]:
    out = []
    for vid in spec.catalogued:
        if compound.within(load_variant(spec.id, vid)[case.id], actual, dtype):
            out.append(vid)
    return out


def matching_names(spec: Spec, case: Case, actual: dict[str, np.ndarray], dtype: str) -> list[str]:
    """Every name the failing case matches: variants, combinations, and (float64 runs) those
    followed within the float32 tolerance with the precision axis appended. A name this case does
    not tell apart from the spec is matched too when the trajectory follows it: a combination one
    of whose parts changes nothing in this case (timm's NvNovoGrad's m₀ = 0 without grad
    averaging) is then still the name of the run, not a smaller one case by case; only a case
    that separates a name can contradict it (:func:`explain`)."""
    names = matching_variants(spec, case, actual, dtype)
    names += matching_combinations(spec, case, actual, dtype)
    return names + matching_float32_internal(spec, case, actual, dtype, names)


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
    explaining, unexplained = explain(spec, cases, ran, wrong_params)
    lines = []
    for name in explaining:
        k = describe(spec, name)
        # a full explanation also accounts for the runs where the name has no golden (a
        # combination on a generated case); a partial one lists those as what remains
        covered = [r for r in wrong_params
                   if _follows(name, r) or (not unexplained and not evaluated(spec, name, r.case))]
        share = "" if len(covered) == len(wrong_params) else \
            f" [explains {len(covered)} of {len(wrong_params)} failing runs]"
        lines.append(f"trajectory matches {name}{share}: {k.title} — {k.summary} ({k.who}; {', '.join(k.sources)})")
        unevaluated = [r for r in covered if not evaluated(spec, name, r.case)]
        if unevaluated:
            lines.append(f"  ({len(unevaluated)} of those runs are on cases where combinations are not evaluated, "
                         "generated or long ones: they contradict it nowhere)")
    if unexplained:
        rest = [r for r in wrong_params if f"{r.case}[{r.dtype}]" in unexplained]
        what = "what remains" if explaining else "no known variant explains"
        lines.append(f"{what}: {', '.join(unexplained)}")
        lines += localise(spec, rest)
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


def _follows(name: str, r) -> bool:
    """Whether run ``r`` matched ``name``; in a run of another dtype than float64 the precision
    axis changes nothing (its variant part alone is what that run can match)."""
    if r.dtype != "float64":
        name = without_precision(name)
    return bool(name) and name in r.matches


def explain(spec: Spec, cases: dict[str, Case], ran: list, wrong_params: list) -> tuple[list[str], list[str]]:
    """(explaining names, unexplained runs "<case>[<dtype>]"): the smallest names that every failing
    run follows and no run contradicts; else, greedily, the names no run with the spec's parameters
    contradicts that account for the most failing runs (without the precision axis, then smaller,
    first on a tie), and the runs none accounts for."""
    names = sorted({n for r in wrong_params for n in r.matches}, key=lambda n: (size(n), n))

    def contradicted(name: str, runs: list) -> bool:
        return any(name_separated(spec, cases[r.case], name, r.dtype) and not _follows(name, r) for r in runs)

    def accounts(name: str, r) -> bool:  # followed, or not evaluated on that case
        return _follows(name, r) or not evaluated(spec, name, r.case)

    full = [n for n in names if all(accounts(n, r) for r in wrong_params) and not contradicted(n, ran)]
    # the precision axis only where no name in the runs' own precision explains them: a variant
    # that float64 separates but float32 does not also lies within the float32 band of the spec
    full = [n for n in full if PRECISION not in parts(n)] or full
    if full:
        k = size(full[0])
        return [n for n in full if size(n) == k], []
    # a part of the explanation: contradicted by no run that follows the spec's parameters (a
    # failing run it does not match has another deviation on top: it is what remains)
    wrong = {id(r) for r in wrong_params}
    ok = [n for n in names if not contradicted(n, [r for r in ran if id(r) not in wrong])]
    explaining: list[str] = []
    left = list(wrong_params)
    while left:
        best = max(ok, key=lambda n: (sum(_follows(n, r) for r in left), PRECISION not in parts(n), -size(n)),
                   default=None)
        if best is None or not any(_follows(best, r) for r in left):
            break
        explaining.append(best)
        left = [r for r in left if not _follows(best, r)]
    return explaining, sorted({f"{r.case}[{r.dtype}]" for r in left})


def shown_matches(names: list[str]) -> list[str]:
    """A case's matches as its message shows them: the smallest (no other is a subset of it); names
    with the precision axis only when there is no other."""
    names = [n for n in names if PRECISION not in parts(n)] or names
    return sorted(minimal(names), key=lambda n: (size(n), n))


def localise(spec: Spec, runs: list) -> list[str]:
    """Where the earliest-diverging of ``runs`` leaves the spec: step, parameter, element, and the
    first quantity in rule order out of tolerance at that step (a state variable the candidate keeps
    under torch's name, else the parameter), with the rule line computing it."""
    runs = [r for r in runs if r.first_divergence is not None]
    if not runs:
        return []
    first = min(runs, key=lambda r: r.first_divergence.step)
    rule = compound.compound(spec.id).rule_lines
    divs = getattr(first, "first_step_divergences", []) or [first.first_divergence]
    order: dict[str, int] = {}
    for i, line in enumerate(rule):
        if line["computes"]:
            order.setdefault(line["computes"], i)
    state = [d for d in divs if d.quantity != "param"]
    at = min(state, key=lambda d: order.get(d.quantity, len(rule))) if state else first.first_divergence
    out = [f"leaves the spec first: {first.case}[{first.dtype}] at step {at.step}, {at.where()}: expected "
           f"{at.expected:.17g}, got {at.actual:.17g} ({at.ratio:.3g}× the tolerance)"]
    fine = [s for s in first.compared_state if s not in {d.quantity for d in divs}]
    if fine:
        out.append(f"  still within tolerance at that step: {', '.join(fine)}")
    lines = [line for line in rule if line["computes"] == at.quantity]
    if at.quantity == "param" and lines:
        # the parameter's own update: what it reads after the last state found on the spec (lines
        # computing an intermediate, the parameter, or a state the candidate does not keep under
        # torch's name) is where it left the spec
        last_state = max((i for i, line in enumerate(rule) if line["computes"] in first.compared_state), default=-1)
        lines = [line for line in rule[last_state + 1:]
                 if line["computes"] in (None, "param") or line["computes"] not in first.compared_state] or lines
    for line in lines:
        out.append(f"  rule line {line['label']} ({line['doc']}): {line['text']}")
    return out


separated = variant_separated  # the name the tests and older callers use
