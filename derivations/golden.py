"""Write the golden vectors: language-neutral JSON, decimal strings, one file per spec and variant.

Layout under the output folder (by default the conformance package's ``golden/``)::

    <spec>/index.json          the spec: hyperparameters, state, variants and files
    <spec>/MANIFEST.json       the SHA-256 of every other file of the folder (the plugin checks it)
    <spec>/spec.json           every case: inputs, expected params and state after every step,
                               and ``catches``: the variants the case separates from the spec
    <spec>/<variant id>.json   the same cases' inputs with the params that variant would produce

The format is described by ``conformance/schemas/golden.schema.json`` (its shared parts are
``golden_format.py``; a closed-loop spec's documents are ``closed_loop_golden.py``'s). Everything
here is deterministic: regenerating on a clean checkout changes no byte.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from mpmath.libmp import mpf_sub, round_nearest, to_float
from optimizer_conformance.conformance.tolerance import CATCH_MARGIN, tolerance

from .boundaries import document as boundaries_document
from .cases import CaseDesign, SparseGrad, exact_decimal
from .closed_loop_golden import spec_documents as closed_loop_documents
from .compound import SEPARATOR, Combination, combination_case, combinations, rule_lines
from .evaluate import Snapshot, evaluate, forget
from .feature_cases import all_cases, case_features, coverage
from .golden_format import (
    DIGITS,
    DTYPES,
    SCHEMA_ID,
    fmt,
    fmt_bound,
    forget_formatted,
    hyperparameters_document,
    state_declaration,
    variant_meta,
)
from .rule import Rule
from .spec import Spec
from .text import changed_lines_text


def _plain(value):
    if value is None or isinstance(value, (bool, int)):
        return value  # None, a flag, or a count (an integer hyperparameter)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def inputs(case: CaseDesign) -> dict:
    return {
        "params": [
            {"name": p.name, "shape": list(p.shape), "values": [exact_decimal(x) for x in p.values]}
            for p in case.params
        ],
        "param_groups": [
            {"params": list(gr.params), "hyperparameters": {k: _plain(v) for k, v in gr.hyperparameters.items()}}
            for gr in case.groups
        ],
        **({"initial_state": {name: {k: v if isinstance(v, int) else [exact_decimal(x) for x in v]
                                     for k, v in by_state.items()}
                              for name, by_state in case.initial_state.items()}} if case.initial_state else {}),
    }


def grad_document(grad) -> list | dict | None:
    if grad is None:
        return None
    if isinstance(grad, SparseGrad):
        # torch's COO layout: one list of indices per dimension
        ndim = len(grad.indices[0]) if grad.indices else 0
        return {"indices": [[ix[d] for ix in grad.indices] for d in range(ndim)],
                "values": [exact_decimal(x) for x in grad.values]}
    return [exact_decimal(x) for x in grad]


def steps(rule: Rule, case: CaseDesign, trajectory: list[Snapshot], with_state: bool) -> list[dict]:
    group_hps = [dict(gr.hyperparameters) for gr in case.groups]
    group_of = {name: i for i, gr in enumerate(case.groups) for name in gr.params}
    shapes = {p.name: p.shape for p in case.params}
    out = []
    for step, snap in zip(case.steps, trajectory, strict=True):
        for c in step.changes:
            group_hps[c.group][c.name] = c.value
        expected: dict = {"params": {k: [fmt(x) for x in vs] for k, vs in snap.params.items()}}
        bound: dict = {"params": {k: [fmt_bound(x) for x in vs] for k, vs in snap.param_bounds.items()}}
        if with_state:
            state, state_bound = {}, {}
            for name, st in snap.state.items():
                hps = group_hps[group_of[name]]
                kept = {}
                for sv in rule.state:
                    if not (sv.kept_when(hps) and sv.kept_for(shapes[name])):
                        continue
                    values = st[sv.name]
                    kept[sv.name] = int(values[0]) if sv.count else [fmt(x) for x in values]
                state[name] = kept
                state_bound[name] = {
                    k: [fmt_bound(x) for x in snap.state_bounds[name][k]]
                    for k in kept if not next(sv for sv in rule.state if sv.name == k).count
                }
            expected["state"] = state
            bound["state"] = state_bound
        if snap.param_fixed:  # only rules with a fixed-precision part (Muon's bfloat16 iteration)
            bound["fixed"] = {d: {"params": {k: [fmt_bound(x) for x in vs] for k, vs in by_param.items()}}
                              for d, by_param in snap.param_fixed.items()}
        for d, by_param in snap.state_fixed.items() if with_state else ():
            # compared state that carries the fixed-precision error too (SOAP's v)
            by_state = {name: {key: [fmt_bound(x) for x in by_param[name][key]]
                               for key in bound["state"].get(name, {}) if any(by_param[name][key])}
                        for name in by_param}
            by_state = {name: keys for name, keys in by_state.items() if keys}
            if by_state:
                bound.setdefault("fixed", {}).setdefault(d, {})["state"] = by_state
        out.append(
            {
                "changes": [{"group": c.group, "name": c.name, "value": _plain(c.value)} for c in step.changes],
                "reload_before": step.reload_before,
                **({"repeat": step.repeat} if step.repeat > 1 else {}),
                "grads": {k: grad_document(v) for k, v in step.grads.items()},
                "expected": expected,
                "bound": bound,
            }
        )
    return out


def _distance(a, b) -> float:
    """|a − b| for two mpf: the exact difference rounded once to the nearest double (no
    cancellation in float64); 0 at once for the same object (trajectories share the memoised values)."""
    if a is b:
        return 0.0
    return abs(to_float(mpf_sub(a._mpf_, b._mpf_, 53, round_nearest)))


def _tolerances(case: CaseDesign, traj: list[Snapshot]) -> dict[str, dict[str, np.ndarray]]:
    """Per param and dtype, the tolerance (steps × elements) along a reference trajectory, from its
    bounds: computed once per trajectory, the reference of every variant's and combination's
    separation from it (the memo holds the trajectory, so its id is not reused)."""
    if (hit := _TOLERANCES.get(id(traj))) is not None and hit[0] is traj:
        return hit[1]
    out = {}
    for p in case.params:
        bound = np.array([s.param_bounds[p.name] for s in traj])
        fixed = {d: np.array([s.param_fixed[d][p.name] for s in traj]) for d in traj[0].param_fixed}
        out[p.name] = {dtype: tolerance(bound, dtype, fixed) for dtype in DTYPES}
    _TOLERANCES[id(traj)] = (traj, out)
    return out


_TOLERANCES: dict[int, tuple[list[Snapshot], dict]] = {}  # id(trajectory) -> (it, its tolerances)


def separation(case: CaseDesign, spec_traj: list[Snapshot], var_traj: list[Snapshot]) -> dict[str, float]:
    """max |variant − spec| / tolerance over steps and elements, per dtype (params only)."""
    worst = dict.fromkeys(DTYPES, 0.0)
    tolerances = _tolerances(case, spec_traj)
    for p in case.params:
        diff = np.array(
            [list(map(_distance, sv.params[p.name], ss.params[p.name]))
             for sv, ss in zip(var_traj, spec_traj, strict=True)]
        )
        for dtype in DTYPES:
            worst[dtype] = max(worst[dtype], float((diff / tolerances[p.name][dtype]).max()))
    return worst


def spec_documents(spec: Spec) -> dict[str, dict]:
    """All documents of one spec: {relative path: JSON document}."""
    if getattr(spec, "kind", "update") == "closed_loop":  # L-BFGS: driven through a closure
        return closed_loop_documents(spec)
    forget()  # the previous spec's line results and printed values: none of them recur here
    forget_formatted()
    _TOLERANCES.clear()
    defaults = spec.defaults()
    cases = [builder.build(defaults) for builder in all_cases(spec)]
    met: dict[str, dict[str, set[str]]] = {c.id: {} for c in cases}
    spec_trajs = [evaluate(spec.rule, c, met[c.id]) for c in cases]
    _MET[spec.id] = met
    var_rules = {v.id: v.rule_for(spec.rule) for v in spec.variants}
    var_trajs = {vid: [evaluate(r, c) for c in cases] for vid, r in var_rules.items()}

    case_docs = []
    for i, case in enumerate(cases):
        seps = {vid: separation(case, spec_trajs[i], var_trajs[vid][i]) for vid in var_rules}
        case_docs.append(
            {
                "id": case.id,
                "title": case.title,
                "purpose": case.purpose,
                "features": sorted(case_features(spec, case)),
                "catches": sorted(vid for vid, s in seps.items()
                                  if min(s.values()) >= CATCH_MARGIN and not spec.variant(vid).acceptable),
                "separation": {vid: {d: f"{s[d]:.3g}" for d in DTYPES} for vid, s in seps.items()},
                **inputs(case),
                "steps": steps(spec.rule, case, spec_trajs[i], with_state=True),
            }
        )
    header = {
        "schema": SCHEMA_ID,
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
                {"id": case.id, **inputs(case), "steps": steps(var_rules[v.id], case, var_trajs[v.id][i], with_state=v.acceptable)}
                for i, case in enumerate(cases)
            ],
        }
    docs.update(compound_documents(spec, cases, spec_trajs, var_trajs, header))
    return docs


def combination_meta(combo: Combination) -> dict:
    """A combination as a variant document's ``variant``: its parts' texts joined."""
    parts = combo.parts
    return {"id": combo.id, "title": SEPARATOR.join(v.title for v in parts),
            "summary": "; ".join(v.summary for v in parts),
            "who": "; ".join(f"{v.id}: {v.who}" for v in parts), "acceptable": False,
            "sources": list(dict.fromkeys(s for v in parts for s in v.sources))}


def compound_documents(spec: Spec, cases: list[CaseDesign], spec_trajs: list, var_trajs: dict[str, list],
                       header: dict) -> dict[str, dict]:
    """``<spec>/compound.json`` (the spec's rule lines, and its compatible combinations of variants
    with their separation from the spec per case) and one variant document per combination under
    ``<spec>/compound/`` (see :mod:`.compound`). A combination whose trajectory is within the
    float64 tolerance of one of its smaller parts' on every case is left out (one of its deltas
    changes nothing on top of the others, e.g. ε̂ computes the step from m and v, so a change to the
    bias-corrected m̂ is lost): no run could tell it from the smaller one."""
    docs: dict[str, dict] = {}
    listed = []
    # only the spec's own step-by-step cases (derivations/compound.py: combination_case)
    keep = [i for i, c in enumerate(cases) if combination_case(spec, c)]
    cases = [cases[i] for i in keep]
    spec_trajs = [spec_trajs[i] for i in keep]
    var_trajs = {vid: [t[i] for i in keep] for vid, t in var_trajs.items()}
    # trajectories by the set of variant ids: the singles', then each combination's
    known = {frozenset([v.id]): var_trajs[v.id] for v in spec.variants}
    for combo in combinations(spec):
        trajs = [evaluate(combo.rule, c) for c in cases]
        ids = frozenset(v.id for v in combo.parts)
        smaller = [t for sub, t in known.items() if sub < ids]
        known[ids] = trajs
        if any(all(max(separation(c, sub[i], trajs[i]).values()) < 1.0 for i, c in enumerate(cases)) for sub in smaller):
            continue  # one of its deltas changes nothing on top of the others: the smaller one names it
        rel = f"{spec.id}/compound/{combo.file_name}"
        listed.append({
            "id": combo.id,
            "parts": [v.id for v in combo.parts],
            "file": rel,
            "lines": changed_lines_text(spec.rule, combo.rule),
            "separation": {case.id: {d: f"{s[d]:.3g}" for d in DTYPES}
                           for case, s in ((c, separation(c, spec_trajs[i], trajs[i])) for i, c in enumerate(cases))},
        })
        docs[rel] = {**header, "variant": combination_meta(combo),
                     "cases": [{"id": case.id, **inputs(case), "steps": steps(combo.rule, case, trajs[i], with_state=False)}
                               for i, case in enumerate(cases)]}
    docs[f"{spec.id}/compound.json"] = {"schema": SCHEMA_ID, "spec": spec.id, "rule_lines": rule_lines(spec.rule),
                                        "combinations": listed}
    return docs


# the branch sides each case's exact trajectory meets, by spec and case (filled by spec_documents)
_MET: dict[str, dict[str, dict[str, set[str]]]] = {}


def _met(spec: Spec, cases: list[CaseDesign]) -> dict[str, dict[str, set[str]]]:
    """The sides met, from this run's spec_documents or from the spec rule's trajectories alone."""
    if spec.id not in _MET:
        met: dict[str, dict[str, set[str]]] = {c.id: {} for c in cases}
        for c in cases:
            evaluate(spec.rule, c, met[c.id])
        _MET[spec.id] = met
    return _MET[spec.id]


def case_design(spec: Spec) -> dict:
    """The index's account of a spec's cases: each optional feature and the cases that exercise it
    alone; each boundary value and the cases on it and on each side (derivations/boundaries.py)."""
    cases = [b.build(spec.defaults()) for b in all_cases(spec)]
    return {"features_alone": {f: ids[0] if ids else None for f, ids in coverage(spec, cases).items()},
            **({"features_not_generated": dict(spec.ungenerated_features)} if spec.ungenerated_features else {}),
            **({"groups_share_state": spec.groups_share_state} if spec.groups_share_state else {}),
            "boundaries": boundaries_document(spec, cases, _met(spec, cases))}


def index_document(specs: Iterable[Spec]) -> dict:
    """The index of ``specs``, built from the specs (the boundaries' coverage evaluates the spec
    rule along its cases, unless this run's spec_documents did). Each spec's folder holds its own
    (``<spec>/index.json``, the index of that one spec), so that adding a spec adds a folder and
    changes no file of another."""
    out = {"schema": SCHEMA_ID, "specs": {}}
    for spec in specs:
        out["specs"][spec.id] = {
            "title": spec.title,
            "torch_class": spec.torch_class,
            "file": f"{spec.id}/spec.json",
            **({"kind": spec.kind} if getattr(spec, "kind", "update") != "update" else {}),  # closed_loop
            "hyperparameters": hyperparameters_document(spec),
            "implementations": [i.document() for i in spec.implementations],
            "cases": [c.id for c in all_cases(spec)] if getattr(spec, "kind", "update") == "update"
            else [c.id for c in spec.cases],
            "variants": [{**variant_meta(v), "file": f"{spec.id}/{v.id}.json",
                          "lines": changed_lines_text(spec.rule, v.rule_for(spec.rule))}
                         for v in spec.variants],
            **(case_design(spec) if getattr(spec, "kind", "update") == "update" else {}),
        }
    return out


# ``json.dumps(x, ensure_ascii=False)`` builds this encoder anew on every call; ``json.dumps(key)``
# (ASCII) reuses json's own default encoder, as here
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
_ENCODE_KEY = json.JSONEncoder().encode


def dumps(obj, indent: int = 0) -> str:
    """Deterministic JSON with one line per array of scalars (compact, diff-friendly)."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad} {_ENCODE_KEY(k)}: {dumps(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(x, (dict, list)) for x in obj):
            return _ENCODE(obj)
        items = [f"{pad} {dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return _ENCODE(obj)


@contextmanager
def _no_collections():
    """No runs of the cyclic garbage collector while a spec is evaluated and written: evaluating a
    spec allocates millions of small objects that hold no cycles (mpf values, (value, bound) pairs,
    the evaluator's memo), every one freed by reference counting, and the collector would walk
    them, and SymPy's objects, over and over for nothing (at the default thresholds a sixth of the
    time; at raised ones, with what was loaded frozen, still a twentieth). Whatever does hold a
    cycle is collected once the collector runs again, after the spec. Frees the same memory; changes
    no value. Leaves alone what someone else froze (the project's tests freeze what collection
    loaded: unfreezing it here would put it back in every later full collection's walk)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_all(specs: Iterable[Spec], out_dir: Path,
              progress: Callable[[Spec], object] | None = None) -> list[Path]:
    """Write the documents of ``specs``, each spec's index and each spec's manifest;
    ``progress(spec)`` is called as each spec's documents are computed."""
    written = []
    for spec in specs:
        with _no_collections():
            docs = spec_documents(spec)
            docs[f"{spec.id}/index.json"] = index_document([spec])
            # the evaluator's memos are not read again: freed now (by reference counting), they are
            # not walked by the collector while the documents are written, nor afterwards
            forget()
            forget_formatted()
            _TOLERANCES.clear()
            for rel, doc in sorted(docs.items()):
                path = out_dir / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(dumps(doc) + "\n", encoding="utf-8")
                written.append(path)
        written.append(write_manifest(out_dir / spec.id))
        if progress is not None:
            progress(spec)
    return written


def write_manifest(spec_dir: Path) -> Path:
    """``<spec>/MANIFEST.json``: the SHA-256 of every other golden file of a spec's folder (the
    plugin checks the files it reads against it). Deterministic: sorted paths relative to the
    golden folder."""
    from optimizer_conformance.conformance.golden import MANIFEST, manifest_document

    path = spec_dir / MANIFEST
    path.write_text(dumps(manifest_document(spec_dir)) + "\n", encoding="utf-8")
    return path
