"""The case design per spec, read off the shipped goldens (issue 13):
``python -m optimizer_conformance.conformance.case_design`` prints the table the docs' "Case design"
page shows.

Per spec: its cases (the spec's own, the generated one-feature cases ``only_*`` and boundary cases
``boundary_*``); the optional features exercised by a case that uses no other (of how many); the
boundary values of its rule and settings (derivations/boundaries.py) with every required side
covered by a case, declared unreachable by the spec (with its reason, in the golden index), or left
open; and its longest horizon: the most ``step()`` calls of a case, and the largest step count a
case starts from (a state injected through ``load_state_dict``).
"""

from __future__ import annotations

import sys

from .golden import generated_kind, index
from .kinds import load_spec

COLUMNS = ("spec", "cases: own + feature + boundary", "features alone", "boundary sides covered",
           "longest horizon")


def row(spec_id: str) -> tuple[str, ...]:
    meta = index()["specs"][spec_id]
    ids = meta["cases"]
    only = sum(1 for c in ids if generated_kind(c) == "one_feature")
    boundary = sum(1 for c in ids if generated_kind(c) == "boundary")
    features = meta.get("features_alone", {})
    alone = sum(1 for c in features.values() if c)
    covered = unreachable = open_ = 0
    for b in meta.get("boundaries", []):
        for side, case in b["cases"].items():
            if case:
                covered += 1
            elif side in b["unreachable"]:
                unreachable += 1
            else:
                open_ += 1
    cases = load_spec(spec_id).cases
    steps = max(c.n_steps for c in cases)
    start = max((int(st.get("step", 0)) for c in cases for st in getattr(c, "initial_state", {}).values()),
                default=0)
    horizon = f"{steps} steps" + (f"; resumed at t = {start:,}".replace(",", "\u202f") if start else "")
    return (spec_id, f"{len(ids)} ({len(ids) - only - boundary} + {only} + {boundary})",
            (f"{alone} of {len(features)}" + (f" ({len(meta['features_not_generated'])} not generated)"
                                               if meta.get("features_not_generated") else ""))
            if features else "—",
            (f"{covered} of {covered + unreachable + open_}" + (f"; {unreachable} unreachable" if unreachable else "")
             + (f"; {open_} open" if open_ else "")) if meta.get("boundaries") else "—",
            horizon)


def table() -> str:
    rows = [row(s) for s in index()["specs"]]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def page() -> str:
    """The docs' "Case design" page."""
    return ("# Case design\n\n"
            "Generated from the golden index (`python -m optimizer_conformance.conformance.case_design`). "
            "Each spec's own cases are joined by generated ones (derivations/feature_cases.py, "
            "derivations/boundaries.py): one case per optional feature that no case exercises alone, "
            "so that a candidate lacking one feature (weight decay, state_dict, ...) keeps every other; "
            "and cases that put the settings implementations special-case (weight decay exactly 1, "
            "momentum 0 and near 1, dampening 0 and 1, each setting's neutral value and default) on "
            "the value and on each side. The boundaries of the rules (every Max/Min, sign and "
            "Piecewise condition) are covered when a case's exact trajectory meets each side; the "
            "golden index lists every boundary with the case covering each side, or the spec's reason "
            "why none can. Long horizons reach t = 10³ by stepping (one repeated step, stored once) "
            "and t = 10⁶ by resuming from an injected state.\n\n"
            "Columns: the spec's cases, as its own + the one-feature ones + the boundary ones; the "
            "optional features exercised alone (a feature not generated has its reason in the index); "
            "the boundary sides a case stands on, of all, with those no case can reach (the spec's reason "
            "is in the index) and those still open; the most steps of a case, and the largest step count a case "
            "resumes from.\n\n" + table() + "\n")


def main() -> int:
    sys.stdout.write(table() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
