"""The open-loop kind of case (every spec but L-BFGS): the harness feeds the gradients.

A golden case of this kind holds initial params, param groups, and per step the gradients to
feed, the setting changes and state_dict reloads before it, and the expected params and state
after it. This module owns the kind: loading its documents (:func:`load_spec`,
:func:`load_variant`), running a case on a candidate (:func:`run_case`, through a driver of
``drivers.py``, or the CUDA-graph driver of ``cuda_graph.py``), and scoring every step against
the goldens (params and the state kept under torch's names). It is registered in ``kinds.py``.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np

from .candidates import Candidate, CaseSkipped
from .cuda_graph import MODE as GRAPH
from .cuda_graph import WARMUP, GraphDriver
from .drivers import Driver, eager_driver
from .golden import (
    Case,
    Change,
    Group,
    SparseGrad,
    Spec,
    Step,
    VariantInfo,
    floats,
    hyperparameter_value,
    param_inputs,
    read_document,
    variant_infos,
)
from .scoring import (
    CandidateBroke,
    CaseResult,
    Divergence,
    build_driver,
    checked_params,
    compare,
    exc_line,
    first_divergence,
    score_params,
    step_started,
)
from .tolerance import tolerance

NAME = "open_loop"

# -- loading -------------------------------------------------------------------------------------


def _grad(raw) -> np.ndarray | SparseGrad | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        return SparseGrad(np.array(raw["indices"], dtype=np.int64).reshape(len(raw["indices"]), -1),
                          floats(raw["values"]))
    return floats(raw)


def _expanded(steps: list[dict]) -> list[dict]:
    """The steps one by one: a step taken ``repeat`` times (a long horizon) becomes that many, the
    changes and reload on the first, the expected values on the last (the others: None, not compared)."""
    out = []
    for s in steps:
        n = s.get("repeat", 1)
        if n == 1:
            out.append(s)
            continue
        out.append({**s, "expected": None, "bound": None})
        out += [{**s, "changes": [], "reload_before": False, "expected": None, "bound": None}] * (n - 2)
        out.append({**s, "changes": [], "reload_before": False})
    return out


def _declared(doc: dict, flag: str) -> frozenset[str]:
    """The state entries the document's header declares with ``flag`` (``count``, ``per_param``)."""
    return frozenset(s["name"] for s in doc["state"] if s.get(flag))


def _case(spec_id: str, doc: dict, counters: frozenset[str], with_state: bool,
          per_param: frozenset[str] = frozenset()) -> Case:
    params = param_inputs(doc)
    groups = [
        Group(list(g["params"]), {k: hyperparameter_value(v) for k, v in g["hyperparameters"].items()},
              dict(g["hyperparameters"]))
        for g in doc["param_groups"]
    ]
    steps, traj = [], {p.name: [p.initial] for p in params}
    bound: dict[str, list] = {p.name: [] for p in params}
    fixed: dict[str, dict[str, list]] = {p.name: {} for p in params}
    state: dict[str, dict[str, list]] = {p.name: {} for p in params}
    state_b: dict[str, dict[str, list]] = {p.name: {} for p in params}
    state_f: dict[str, dict[str, dict[str, list]]] = {p.name: {} for p in params}  # key -> fixed dtype -> rows
    n = {p.name: p.initial.size for p in params}
    nan = {name: np.full(k, np.nan) for name, k in n.items()}  # rows vstack copies: one is enough
    repeated: dict[int, Step] = {}  # a long horizon's repeated step: parsed once (_expanded shares it)
    for t, s in enumerate(_expanded(doc["steps"]), start=1):
        step = repeated.get(id(s))
        if step is None:
            step = Step(
                changes=[Change(c["group"], c["name"], hyperparameter_value(c["value"]), c["value"])
                         for c in s["changes"]],
                reload_before=s["reload_before"],
                grads={k: _grad(v) for k, v in s["grads"].items()},
            )
            if s["expected"] is None:
                repeated[id(s)] = step
        steps.append(step)
        if s["expected"] is None:  # a repeated step before its last: nothing to compare
            for name in traj:
                traj[name].append(nan[name])
                bound[name].append(nan[name])
                for rows in fixed[name].values():
                    rows.append(nan[name])
                for rows in state[name].values():
                    rows.append(nan[name])
                for brows in state_b[name].values():
                    brows.append(nan[name])
                for by_dtype in state_f[name].values():  # the state's fixed-precision bounds too
                    for frows in by_dtype.values():
                        frows.append(nan[name])
            continue
        for name, values in s["expected"]["params"].items():
            traj[name].append(floats(values))
            bound[name].append(floats(s["bound"]["params"][name]))
            for fixed_dtype, by_param in s["bound"].get("fixed", {}).items():
                fixed[name].setdefault(fixed_dtype, []).append(floats(by_param["params"][name]))
        if not with_state:
            continue
        for name, st in s["expected"].get("state", {}).items():
            for key, values in st.items():
                rows = state[name].setdefault(key, [np.full(n[name], np.nan)] * t)
                rows.append(np.full(n[name], float(values)) if key in counters else floats(values))
                brows = state_b[name].setdefault(key, [np.full(n[name], np.nan)] * (t - 1))
                b = s["bound"]["state"][name].get(key)
                brows.append(np.zeros(n[name]) if b is None else floats(b))
                for fixed_dtype, by_kind in s["bound"].get("fixed", {}).items():
                    fb = by_kind.get("state", {}).get(name, {}).get(key)
                    frows = state_f[name].setdefault(key, {}).setdefault(fixed_dtype, [np.full(n[name], np.nan)] * (t - 1))
                    frows.append(np.zeros(n[name]) if fb is None else floats(fb))
        for name in state:  # state that did not advance this step keeps its rows aligned
            for rows in state[name].values():
                if len(rows) < t + 1:
                    rows.append(rows[-1])
            for brows in state_b[name].values():
                if len(brows) < t:
                    brows.append(brows[-1])
            for by_dtype in state_f[name].values():
                for frows in by_dtype.values():
                    if len(frows) < t:
                        frows.append(frows[-1])
    return Case(
        spec=spec_id,
        id=doc["id"],
        title=doc.get("title", ""),
        purpose=doc.get("purpose", ""),
        features=list(doc.get("features", [])),
        catches=list(doc.get("catches", [])),
        separation={v: {d: float(x) for d, x in s.items()} for v, s in doc.get("separation", {}).items()},
        params=params,
        groups=groups,
        steps=steps,
        expected={k: np.vstack(v) for k, v in traj.items()},
        bound={k: np.vstack(v) for k, v in bound.items()},
        bound_fixed={k: {d: np.vstack(rows) for d, rows in by_dtype.items()} for k, by_dtype in fixed.items()
                     if by_dtype},
        expected_state={k: {s: np.vstack(r) for s, r in st.items()} for k, st in state.items()},
        state_bound={k: {s: np.vstack(r) for s, r in st.items()} for k, st in state_b.items()},
        state_bound_fixed={k: {s: {d: np.vstack(r) for d, r in by_dtype.items()} for s, by_dtype in st.items()}
                           for k, st in state_f.items() if st},
        counters=frozenset(counters),
        per_param=per_param,
        initial_state={name: {k: v if isinstance(v, int) else floats(v) for k, v in by_state.items()}
                       for name, by_state in doc.get("initial_state", {}).items()},
    )


def load_spec(spec_id: str, meta: dict, doc: dict) -> Spec:
    """The spec document of an open-loop spec (``meta``: its entry in the index)."""
    counters, per_param = _declared(doc, "count"), _declared(doc, "per_param")
    return Spec(
        id=spec_id,
        title=meta["title"],
        torch_class=meta["torch_class"],
        hyperparameters=doc["hyperparameters"],
        cases=[_case(spec_id, c, counters, with_state=True, per_param=per_param) for c in doc["cases"]],
        variants=variant_infos(meta),
        kind=NAME,
        groups_share_state=meta.get("groups_share_state", ""),
    )


def load_variant(spec_id: str, info: VariantInfo) -> dict[str, Case]:
    """The params a variant would produce (``expected``, ``bound``), by case id.

    An acceptable variant's file also holds its state (compared like the spec's)."""
    return _variant_cases(spec_id, info.file, info.acceptable)


def variant_cases(spec_id: str, file: str) -> dict[str, Case]:
    """The params (not the state) of a variant document by its file, by case id (also a
    combination's: ``compound.py``)."""
    return _variant_cases(spec_id, file, False)


@cache
def _variant_cases(spec_id: str, file: str, with_state: bool) -> dict[str, Case]:
    doc = read_document(file)
    counters, per_param = _declared(doc, "count"), _declared(doc, "per_param")
    return {c["id"]: _case(spec_id, c, counters, with_state=with_state, per_param=per_param) for c in doc["cases"]}


# -- running -------------------------------------------------------------------------------------


def driver(cand: Candidate, spec: Spec, case: Case, dtype: str, device: str, mode: str = "eager") -> Driver:
    """The driver of a case run: eager in the candidate's interface, or ``mode="cuda_graph"``."""
    if mode == GRAPH:
        return GraphDriver(cand, spec, case, dtype, device)
    if cand.api == "optax":  # imported only for such a candidate: JAX stays out of other runs
        from .drivers_optax import OptaxDriver

        return OptaxDriver(cand, spec, case, dtype, device)
    if cand.api == "keras":
        from .drivers_keras import KerasDriver

        return KerasDriver(cand, spec, case, dtype, device)
    return eager_driver(cand, spec, case, dtype, device)


def _as_elements(value: np.ndarray, shape: tuple[int, ...], n: int) -> np.ndarray:
    """State as one value per parameter element: a per-parameter scalar (NAdam's μ product) or a
    factored row/column statistic (Adafactor) is broadcast; anything else is not comparable (NaN)."""
    if value.size == n:
        return value.reshape(-1)
    if value.size == 1:
        return np.full(n, float(value.reshape(-1)[0]))
    if value.ndim == len(shape):
        try:
            return np.broadcast_to(value, shape).reshape(-1).copy()
        except ValueError:
            pass
    return np.full(n, np.nan)


def run_case(cand: Candidate, spec: Spec, case: Case, dtype: str, device: str = "cpu",
             accept: tuple[str, ...] = (), mode: str = "eager", make_driver=None) -> CaseResult:
    """Run one case on a fresh candidate and score it (not yet matched against the variants:
    ``runner.run_case`` does that). ``accept``: catalogued variants the user declared as the
    candidate's convention (``--optimizer-accept``): a case following one passes as acceptable.
    ``mode="cuda_graph"``: step() captured in a CUDA graph and replayed (conformance/cuda_graph.py).
    ``make_driver``: a driver factory with :func:`driver`'s arguments, for a mode defined elsewhere
    (the distributed wrappers of conformance/distributed.py run every rank's case through here)."""
    res = CaseResult(spec.id, case.id, dtype, device, mode=mode)
    why = cand.unsupported(spec, case, dtype)
    if why:
        res.outcome, res.reason = "skipped", why
        return res
    shapes = {p.name: p.shape for p in case.params}
    # Row t holds what the candidate has after step t (row 0: the initial values); NaN where
    # nothing was read: a long horizon's unchecked steps, state not created (yet), steps not run.
    rows_total = case.n_steps + 1
    actual = {p.name: np.full((rows_total, case.expected[p.name].shape[1]), np.nan) for p in case.params}
    for p in case.params:
        actual[p.name][0] = p.initial.reshape(-1)
    state_rows: dict[str, dict[str, np.ndarray]] = {p.name: {} for p in case.params}
    drv = build_driver(res, lambda: (make_driver or driver)(cand, spec, case, dtype, device, mode))
    if drv is None:
        return res
    if case.initial_state:
        try:
            drv.inject_state(case.initial_state)
        except CaseSkipped as exc:
            res.outcome, res.reason = "skipped", str(exc)
            return res
        except Exception as exc:  # the candidate's load_state_dict
            res.outcome, res.reason = "failed", f"load_state_dict of the injected state raised {exc_line(exc)}"
            res.params_conform = False
            return res
    unchecked = {t for t in range(1, case.n_steps + 1)
                 if all(np.isnan(e[t]).all() for e in case.expected.values())}
    for t, step in enumerate(case.steps, start=1):
        step_started(t)
        try:
            if step.reload_before:
                drv.reload()
            for c in step.changes:
                drv.set_hyperparameter(c.group, c.name, c.value)
            drv.step(step.grads)
            if t in unchecked:  # a long horizon's repeated step before its last: nothing to compare
                res.steps_run = t
                continue
            params = checked_params(drv.params(), case.expected)
            state = drv.state()
        except CaseSkipped as exc:
            res.outcome, res.reason = "skipped", str(exc)
            return res
        except CandidateBroke as exc:
            res.outcome, res.reason = "failed", f"step {t}: {exc}"
            break
        except (Exception, SystemExit, GeneratorExit) as exc:  # the candidate's code
            action = "state_dict/load_state_dict" if step.reload_before else "step()"
            if mode == GRAPH and action == "step()":
                action += " (captured in a CUDA graph)" if t == WARMUP + 1 else \
                    " (replayed from the CUDA graph)" if t > WARMUP else " (eager warm-up, capturable=True)"
            res.outcome, res.reason = "failed", f"step {t}: {action} raised {exc_line(exc)}"
            break
        res.steps_run = t
        for name, rows in actual.items():
            rows[t] = params[name]
            for key, value in state.get(name, {}).items():
                n = rows.shape[1]
                if key not in state_rows[name]:
                    state_rows[name][key] = np.full((rows_total, n), np.nan)
                state_rows[name][key][t] = _as_elements(value, shapes[name], n)
    res.findings = sorted(getattr(drv, "findings", ()))
    kept = res.steps_run + 1  # the rows of the steps run
    res.actual = {k: v[:kept] for k, v in actual.items()}
    state_rows = {name: {key: v[:kept] for key, v in by_key.items()} for name, by_key in state_rows.items()}
    _score(res, case, dtype, shapes, state_rows)
    if res.outcome == "passed" and res.max_ratio > 1.0:
        res.outcome = "failed"
        _accept(res, spec, case, dtype, shapes, state_rows, accept)
    if res.outcome == "failed" and not res.reason and getattr(drv, "aliases", None):
        verb = "shares" if len(drv.aliases) == 1 else "share"
        res.reason = (f"step() keeps p.grad itself as state: {', '.join(sorted(drv.aliases))} {verb} memory "
                      "with the param's .grad, so the next gradient written into p.grad (backward after "
                      "zero_grad(set_to_none=False), as this harness does) overwrites it: store a copy "
                      "(torch.clone(grad))")
    if res.outcome == "failed" and res.steps_run < case.n_steps:
        res.params_conform = False
    if res.outcome == "failed" and res.steps_run == case.n_steps and mode != GRAPH:
        ignored = ignored_settings(cand, spec, case, dtype, device, res.actual)
        if ignored:
            res.outcome, res.reason = "skipped", ignored
    return res


# -- honest signatures: a setting taken through **kwargs must change something ---------------------


def ignored_settings(cand: Candidate, spec: Spec, case: Case, dtype: str, device: str,
                     actual: dict[str, np.ndarray]) -> str | None:
    """Why this failing case is skipped because the candidate ignores a setting it turns on, or None.

    A setting the signature does not name reaches a ``**kwargs`` constructor, which may swallow it
    (pytorch_optimizer stores unknown names in the param groups and never reads them): then the
    candidate lacks the feature, and its failure would be mistaken for a deviation. Probe: run the
    case again with that setting at its neutral value; the same trajectory, bit for bit, means the
    setting changed nothing — provided the setting changes something in this case at all: the
    spec's NumPy reference must end elsewhere without it (AMSGrad changes nothing while v only
    grows), else the probe proves nothing and the failure stands."""
    for name in cand.turned_on_via_kwargs(spec, case):
        neutral = spec.neutral(name)
        probe = _final_params(cand, spec, _neutralised(case, name, neutral), dtype, device)
        if probe is not None and all(np.array_equal(probe[k], actual[k][-1]) for k in actual) \
                and _matters(spec, case, name, neutral):
            values = [g.hyperparameters[name] for g in case.groups if g.hyperparameters.get(name, neutral) != neutral]
            value = (values + [c.value for s in case.steps for c in s.changes if c.name == name])[0]
            return (f"candidate ignores {name!r}: its constructor takes it through **kwargs, but {name}={value!r} "
                    f"gives the same trajectory as {name}={neutral!r} (the feature is not implemented)")
    return None


def _matters(spec: Spec, case: Case, name: str, neutral) -> bool:
    """Whether the setting changes this case's trajectory for the spec's NumPy reference (float64;
    True where the spec has no reference: then the probe alone decides, as before)."""
    from optimizer_conformance.reference import REFERENCES

    cls = REFERENCES.get(spec.id)
    if cls is None:
        return True
    ref = Candidate(f"{cls.__module__}.{cls.__name__}", cls, "numpy")
    with_it = _final_params(ref, spec, case, "float64", "cpu")
    without = _final_params(ref, spec, _neutralised(case, name, neutral), "float64", "cpu")
    if with_it is None or without is None:
        return True
    return any(not np.array_equal(with_it[k], without[k]) for k in with_it)


def _neutralised(case: Case, name: str, neutral) -> Case:
    """The case with one setting held at its neutral value throughout."""
    groups = [replace(g, hyperparameters={**g.hyperparameters, name: neutral}) for g in case.groups]
    steps = [replace(s, changes=[c for c in s.changes if c.name != name]) for s in case.steps]
    return replace(case, groups=groups, steps=steps)


def _final_params(cand: Candidate, spec: Spec, case: Case, dtype: str, device: str) -> dict[str, np.ndarray] | None:
    """The params after the case's last step on a fresh candidate (None if it cannot get there)."""
    try:
        drv = driver(cand, spec, case, dtype, device)
        for step in case.steps:
            if step.reload_before:
                drv.reload()
            for c in step.changes:
                drv.set_hyperparameter(c.group, c.name, c.value)
            drv.step(step.grads)
        return checked_params(drv.params(), case.expected)
    except Exception:  # noqa: BLE001 - the probe's own run failed: no evidence either way
        return None


# -- scoring -------------------------------------------------------------------------------------

ACCEPTED = "follows acceptable variant"  # the finding of a case passed through an acceptable variant
CONVENTION = "follows the accepted convention"  # ... through a variant the user accepted


def _accept(res: CaseResult, spec: Spec, case: Case, dtype: str, shapes, state_rows,
            accept: tuple[str, ...] = ()) -> None:
    """A failed case passes when the candidate follows an acceptable variant (params and state),
    or a catalogued variant the user accepted as its convention (params; its state is not
    compared, since a convention may keep other quantities under torch's names), or a combination
    of those. With the precision axis accepted (``precision.float32_internal``), a float64 run may
    follow the spec, or any of those, within the float32 tolerance instead."""
    if res.steps_run < case.n_steps:
        return
    from .compound import PRECISION, compound, describe, join

    allowed = {*spec.acceptable, *accept}
    goldens = [(vid, load_variant(spec.id, spec.variants[vid])[case.id]) for vid in [*spec.acceptable, *accept]
               if vid != PRECISION]
    goldens += [(c.id, variant_cases(spec.id, c.file)[case.id]) for c in compound(spec.id).combinations.values()
                if set(c.parts) <= allowed and set(c.parts) & set(accept)]
    tries = [(vid, golden, dtype) for vid, golden in goldens]
    if PRECISION in accept and dtype == "float64":
        tries += [(PRECISION, case, "float32")] + [(join(vid, PRECISION), g, "float32") for vid, g in goldens]
    for vid, golden, tol_dtype in tries:
        alt = CaseResult(res.spec, res.case, dtype, res.device)
        alt.actual, alt.steps_run = res.actual, res.steps_run
        _score(alt, golden, tol_dtype, shapes, state_rows)
        if alt.max_ratio <= 1.0:
            res.outcome, res.accepted, res.accepted_ratio = "passed", vid, alt.max_ratio
            acceptable = vid in spec.variants and spec.variants[vid].acceptable
            label = ACCEPTED if acceptable else f"{CONVENTION} (--optimizer-accept)"
            res.findings = sorted({*res.findings, f"{label} {vid}: {describe(spec, vid).title}"})
            return


def _score(res: CaseResult, case: Case, dtype: str, shapes, state_rows) -> None:
    steps = res.steps_run
    if steps == 0:
        return
    per_step: list[list[Divergence]] = [[] for _ in range(steps)]
    compared = set()
    for name, expected in case.expected.items():
        tol = case.tolerance(name, dtype)
        score_params(res, name, shapes[name], expected, tol, per_step)
        for key, exp_state in case.expected_state.get(name, {}).items():
            rows = state_rows[name].get(key)
            if rows is None:
                continue  # the candidate keeps no state under torch's name: trajectory only
            compared.add(key)
            act_state = rows
            if key in case.counters:
                tol_s = np.full_like(exp_state[1:], 0.5)  # a count: exact
            else:
                fixed_s = case.state_bound_fixed.get(name, {}).get(key, {})
                tol_s = tolerance(np.nan_to_num(case.state_bound[name][key]), dtype,
                                  {d: np.nan_to_num(b) for d, b in fixed_s.items()})
            ratio, worst = compare(name, key, shapes[name], exp_state, act_state, tol_s, steps)
            # state the candidate has not created (yet) is not compared
            ratio = np.where(np.isnan(act_state[1 : steps + 1]) & ~np.isnan(exp_state[1 : steps + 1]), 0.0, ratio)
            if ratio.size:
                res.max_ratio = max(res.max_ratio, float(ratio.max()))
            for s, d in enumerate(worst):
                if d and not np.isnan(d.actual):
                    per_step[s].append(d)
    res.compared_state = sorted(compared)
    res.first_divergence = first_divergence(per_step)
    res.first_step_divergences = next((list(divs) for divs in per_step if divs), [])
