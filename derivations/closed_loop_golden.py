"""The golden documents of a closed-loop spec (L-BFGS), written from its exact runs.

The spec, its cases and the exact trajectories with their bounds and decision margins are
``closed_loop.py``'s; this module turns them into the documents ``derivations/golden.py``
writes (``"kind": "closed_loop"``), in the format every spec shares (``golden_format.py``):
per ``step(closure)`` call the expected params, the loss it returns and the counters, with
their bounds; per case the decision margins and the separation of every variant. A trajectory
in which a decision is too close to flipping is refused (:func:`check_margins`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
from optimizer_conformance.conformance.tolerance import CATCH_MARGIN, tolerance

from .cases import exact_decimal
from .closed_loop import DECISION_MARGIN, ClosedLoopCase, Trajectory
from .golden_format import (
    DIGITS,
    DTYPES,
    SCHEMA_ID,
    fmt,
    fmt_bound,
    hyperparameters_document,
    state_declaration,
    variant_meta,
)


def separation(case: ClosedLoopCase, spec: Trajectory, variant: Trajectory) -> dict[str, float]:
    """max |variant − spec| / tolerance (the spec's) over steps and param elements, per dtype."""
    worst = dict.fromkeys(DTYPES, 0.0)
    for p in case.params:
        diff = np.array([[float(abs(a - b)) for a, b in zip(sv[p.name], ss[p.name], strict=True)]
                         for sv, ss in zip(variant.params, spec.params, strict=True)])
        bound = np.array([pb[p.name] for pb in spec.param_bounds])
        for dtype in DTYPES:
            worst[dtype] = max(worst[dtype], float((diff / tolerance(bound, dtype)).max()))
    return worst


def _margin_document(traj: Trajectory) -> dict:
    # null: no comparison of the run can be affected by rounding
    return {"decisions": traj.decisions,
            **{d: None if math.isinf(traj.margin[d]) else fmt_bound(traj.margin[d]) for d in DTYPES}}


def _inputs(case: ClosedLoopCase, defaults: Mapping[str, object], plain: Callable) -> dict:
    return {
        "objective": case.objective.document(case.variables),
        "params": [{"name": p.name, "shape": list(p.shape), "values": [exact_decimal(v) for v in p.values]}
                   for p in case.params],
        "param_groups": [{"params": [p.name for p in case.params],
                          "hyperparameters": {k: plain(v) for k, v in case.group(defaults).items()}}],
    }


def _steps(case: ClosedLoopCase, traj: Trajectory, plain: Callable, with_state: bool) -> list[dict]:
    first = case.params[0].name
    out = []
    for s in range(case.steps):
        expected: dict = {"params": {k: [fmt(x) for x in vs] for k, vs in traj.params[s].items()},
                          "loss": fmt(traj.loss[s])}
        bound: dict = {"params": {k: [fmt_bound(x) for x in vs] for k, vs in traj.param_bounds[s].items()},
                       "loss": fmt_bound(traj.loss_bounds[s])}
        if with_state:
            expected["state"] = {first: dict(traj.counters[s])}
        out.append({
            "changes": [{"group": 0, "name": c.name, "value": plain(c.value)} for c in case.changes.get(s + 1, ())],
            "reload_before": (s + 1) in case.reload_before,
            "expected": expected,
            "bound": bound,
        })
    return out


def check_margins(what: str, traj: Trajectory) -> None:
    if traj.margin["float32"] < DECISION_MARGIN:
        raise ValueError(
            f"{what}: a decision is {traj.margin['float32']:.3g} tolerances from flipping in float32 "
            f"(need {DECISION_MARGIN:g}): {traj.tightest}; redesign the case")


def spec_documents(spec) -> dict[str, dict]:
    """All documents of a closed-loop spec: {relative path: JSON document}."""
    defaults = spec.defaults()
    plain = spec.plain
    spec_trajs = {c.id: spec.trajectory(spec.rule, c) for c in spec.cases}
    for c in spec.cases:
        check_margins(c.id, spec_trajs[c.id])
    var_rules = {v.id: v.rule_for(spec.rule) for v in spec.variants}
    var_trajs = {vid: {c.id: spec.trajectory(r, c) for c in spec.cases} for vid, r in var_rules.items()}
    for vid, trajs in var_trajs.items():
        for cid, traj in trajs.items():
            check_margins(f"{cid} under {vid}", traj)

    case_docs = []
    for case in spec.cases:
        seps = {vid: separation(case, spec_trajs[case.id], var_trajs[vid][case.id]) for vid in var_rules}
        case_docs.append({
            "id": case.id,
            "title": case.title,
            "purpose": case.purpose,
            "features": spec.features(case),
            "catches": sorted(vid for vid, s in seps.items()
                              if min(s.values()) >= CATCH_MARGIN and not spec.variant(vid).acceptable),
            "separation": {vid: {d: fmt_bound(s[d]) for d in DTYPES} for vid, s in seps.items()},
            "decision_margin": _margin_document(spec_trajs[case.id]),
            **_inputs(case, defaults, plain),
            "steps": _steps(case, spec_trajs[case.id], plain, with_state=True),
        })
    header = {
        "schema": SCHEMA_ID,
        "kind": "closed_loop",
        "spec": spec.id,
        "title": spec.rule.title,
        "torch_class": spec.torch_class,
        "digits": DIGITS,
        "hyperparameters": hyperparameters_document(spec),
        "state": [state_declaration(s) for s in spec.rule.state],
    }
    docs = {f"{spec.id}/spec.json": {**header, "variant": None, "cases": case_docs}}
    for v in spec.variants:
        docs[f"{spec.id}/{v.id}.json"] = {
            **header,
            "variant": variant_meta(v),
            "cases": [
                {"id": case.id, "decision_margin": _margin_document(var_trajs[v.id][case.id]),
                 **_inputs(case, defaults, plain),
                 "steps": _steps(case, var_trajs[v.id][case.id], plain, with_state=False)}
                for case in spec.cases
            ],
        }
    return docs
