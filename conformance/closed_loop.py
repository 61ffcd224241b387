"""Closed-loop cases (L-BFGS): the candidate calls a closure, the harness evaluates the objective.

A closed-loop golden case holds an objective (a kind and exact coefficients), initial params,
one param group, and per ``step(closure)`` call the expected params, the loss the call returns and
torch's counters ``func_evals`` and ``n_iter`` (kept in ``state[first param]``). The closure is
the harness's: it evaluates the objective and its gradient **in the dtype under test**, at the
candidate's current params, every time the candidate calls it. The objectives (the flat vector
``x`` is the case's ``variables`` params, flattened and concatenated in order)::

    quadratic    f(x) = ½·xᵀAx − bᵀx                        ∇f(x) = Ax − b
    rosenbrock   f(x) = Σᵢ b·(xᵢ₊₁ − xᵢ²)² + (a − xᵢ)²       (i = 0 … n−2)

Params not in ``variables`` have no gradient: the closure leaves ``p.grad`` None.

Candidate protocols (as for the other specs, see ``candidates.py``):

* **torch** — built as ``Cls(param_groups, **settings, **optimizer_kwargs)``; each step is
  ``loss = opt.step(closure)`` where ``closure()`` sets ``p.grad`` of every param and returns the
  loss as a 0-d tensor. ``opt.state[first param]["func_evals"]`` / ``["n_iter"]`` are compared
  where present.
* **numpy** — ``Cls(params: list[np.ndarray], **settings)``; each step is
  ``loss = opt.step(closure)`` where ``closure()`` returns ``(loss, grads)``: the loss as a NumPy
  scalar and ``grads`` a list aligned with ``params`` (``None`` for a param without gradient),
  computed from the arrays the candidate was given, which it must update **in place**. Counters
  are compared where ``opt.state[0]`` is a dict holding them. A hyperparameter change is
  ``setattr(opt, name, value)``; a resume case needs ``state_dict()``/``load_state_dict()``.

The comparison: params and the returned loss within the tolerance ``K·u·B`` of the golden bound
(``conformance/tolerance.py``; ``B`` is the first-order rounding-error bound of the whole closed
loop, see ``derivations/closed_loop.py``), counters exactly. A failing case is matched against the
variants' parameter trajectories (``diagnosis.py``, by ``runner.run_case``), as for every spec.

This module owns the kind: loading its documents (:func:`load_spec`, :func:`load_variant`),
running a case (:func:`run_case`) and scoring it; it is registered in ``kinds.py``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from .candidates import Candidate, CaseSkipped
from .golden import (
    Case,
    Change,
    Group,
    Spec,
    Step,
    VariantInfo,
    floats,
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

NAME = "closed_loop"
COUNTERS = ("func_evals", "n_iter")


def hyperparameter_value(raw: Any) -> Any:
    """JSON → the value a candidate receives: decimal strings → float, integers stay integers,
    null → None, names (``"strong_wolfe"``) stay strings."""
    if raw is None or isinstance(raw, (bool, int)):
        return raw
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


@dataclass
class ClosedLoopCase(Case):
    """A golden case driven through a closure; params as in :class:`~.golden.Case` (so that the
    diagnosis and the report read it unchanged), plus the loss, the counters and the objective."""

    objective: dict = field(default_factory=dict)  # kind, variables, coefficients (floats)
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (T,) the loss step() returns
    loss_bound: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (T,)
    expected_counters: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T,) int
    decision_margin: dict[str, float] = field(default_factory=dict)
    closed_loop: bool = True

    @property
    def first_param(self) -> str:
        return self.params[0].name


def _objective(raw: dict) -> dict:
    coeffs = {}
    for k, v in raw["coefficients"].items():
        coeffs[k] = np.array(v, dtype=object).astype(float) if isinstance(v, list) else float(v)
    return {"kind": raw["kind"], "variables": list(raw["variables"]), "coefficients": coeffs}


def _case(spec_id: str, doc: dict, with_state: bool) -> ClosedLoopCase:
    params = param_inputs(doc)
    groups = [Group(list(g["params"]), {k: hyperparameter_value(v) for k, v in g["hyperparameters"].items()},
                    dict(g["hyperparameters"])) for g in doc["param_groups"]]
    objective = _objective(doc["objective"])
    closure_grad = {p.name: (np.empty(0) if p.name in objective["variables"] else None) for p in params}
    steps, traj = [], {p.name: [p.initial] for p in params}
    bound: dict[str, list] = {p.name: [] for p in params}
    loss, loss_bound = [], []
    counters: dict[str, list[int]] = {}
    for s in doc["steps"]:
        steps.append(Step([Change(c["group"], c["name"], hyperparameter_value(c["value"]), c["value"])
                           for c in s["changes"]], s["reload_before"], dict(closure_grad)))
        for name, values in s["expected"]["params"].items():
            traj[name].append(floats(values))
            bound[name].append(floats(s["bound"]["params"][name]))
        loss.append(float(s["expected"]["loss"]))
        loss_bound.append(float(s["bound"]["loss"]))
        if with_state:
            for key, value in s["expected"]["state"][params[0].name].items():
                counters.setdefault(key, []).append(int(value))
    margin = doc.get("decision_margin", {})
    return ClosedLoopCase(
        spec=spec_id, id=doc["id"], title=doc.get("title", ""), purpose=doc.get("purpose", ""),
        features=list(doc.get("features", [])), catches=list(doc.get("catches", [])),
        separation={v: {d: float(x) for d, x in s.items()} for v, s in doc.get("separation", {}).items()},
        params=params, groups=groups, steps=steps,
        expected={k: np.vstack(v) for k, v in traj.items()},
        bound={k: np.vstack(v) for k, v in bound.items()},
        objective=objective, loss=np.array(loss), loss_bound=np.array(loss_bound),
        expected_counters={k: np.array(v) for k, v in counters.items()},
        decision_margin={d: float(margin[d]) for d in ("float32", "float64") if d in margin},
    )


def load_spec(spec_id: str, meta: dict, doc: dict) -> Spec:
    """The spec document of a closed-loop spec (``"kind": "closed_loop"``; ``meta``: its entry
    in the index)."""
    return Spec(
        id=spec_id, title=meta["title"], torch_class=meta["torch_class"],
        hyperparameters=doc["hyperparameters"],
        cases=[_case(spec_id, c, with_state=True) for c in doc["cases"]],
        variants=variant_infos(meta),
        kind=NAME,
    )


def load_variant(spec_id: str, info: VariantInfo) -> dict[str, ClosedLoopCase]:
    """A variant document's cases (params and loss of the variant; no counters), by case id."""
    return _variant_cases(spec_id, info.file)


@cache
def _variant_cases(spec_id: str, file: str) -> dict[str, ClosedLoopCase]:
    return {c["id"]: _case(spec_id, c, with_state=False) for c in read_document(file)["cases"]}


# -- the objectives, in any array namespace (NumPy, torch) ----------------------------------------


def value_and_grad(kind: str, coefficients: dict, x, xp) -> tuple[Any, Any]:
    """f(x) and ∇f(x) with the array namespace ``xp`` (``numpy`` or ``torch``), in x's dtype.
    ``coefficients`` are already arrays/scalars of that namespace and dtype."""
    if kind == "quadratic":
        A, b = coefficients["A"], coefficients["b"]
        Ax = A @ x
        return 0.5 * (x @ Ax) - b @ x, Ax - b
    if kind == "rosenbrock":
        a, b = coefficients["a"], coefficients["b"]
        head, tail = x[:-1], x[1:]
        r = tail - head * head
        f = (b * (r * r) + (a - head) * (a - head)).sum()
        g = xp.zeros_like(x)
        g[:-1] = -4 * b * head * r - 2 * (a - head)
        g[1:] = g[1:] + 2 * b * r
        return f, g
    raise ValueError(f"unknown objective kind {kind!r}")


# -- drivers ------------------------------------------------------------------------------------


class _Driver:
    findings: set[str]

    def _layout(self, case: ClosedLoopCase) -> None:
        self.case = case
        self.variables = case.objective["variables"]
        self.sizes = {p.name: int(np.prod(p.shape, dtype=int)) for p in case.params}


class TorchClosedLoop(_Driver):
    def __init__(self, cand: Candidate, spec: Spec, case: ClosedLoopCase, dtype: str, device: str):
        import torch

        self.torch, self.cand, self.spec = torch, cand, spec
        self._layout(case)
        self.dtype, self.device = getattr(torch, dtype), torch.device(device)
        self.tensors = {p.name: torch.tensor(p.initial, dtype=self.dtype, device=self.device)
                        .reshape(p.shape).requires_grad_(True) for p in case.params}
        co = case.objective["coefficients"]
        self.coefficients = {k: torch.tensor(v, dtype=self.dtype, device=self.device) if isinstance(v, np.ndarray)
                             else v for k, v in co.items()}
        self.group = dict(case.groups[0].hyperparameters)
        self.findings = set()
        self.opt = self._build()

    def _build(self):
        settings = self.cand.settings(self.spec, self.group)
        # None means "the constructor's default" (max_eval: max_iter·5//4): a constructor argument
        # only, since a param group's None would override what the constructor derives from it
        given = {k: v for k, v in settings.items() if v is not None}
        groups = [{"params": [self.tensors[p.name] for p in self.case.params], **given}]
        return self.cand.target(groups, **{**settings, **self.cand.kwargs})

    def closure(self):
        torch = self.torch
        with torch.no_grad():
            x = torch.cat([self.tensors[v].detach().reshape(-1) for v in self.variables])
            f, g = value_and_grad(self.case.objective["kind"], self.coefficients, x, torch)
        offset = 0
        for p in self.case.params:
            t = self.tensors[p.name]
            if p.name in self.variables:
                n = self.sizes[p.name]
                t.grad = g[offset: offset + n].reshape(t.shape).clone()
                offset += n
            else:
                t.grad = None
        return f

    def set_hyperparameter(self, name: str, value: Any) -> None:
        self.group[name] = value
        self.opt.param_groups[0][name] = value

    def reload(self) -> None:
        sd = copy.deepcopy(self.opt.state_dict())
        self.opt = self._build()
        self.opt.load_state_dict(sd)

    def step(self) -> float:
        loss = self.opt.step(self.closure)
        return float("nan") if loss is None else float(loss)

    def params(self) -> dict[str, np.ndarray]:
        return {n: t.detach().to("cpu", self.torch.float64).numpy().reshape(-1).copy() for n, t in self.tensors.items()}

    def counters(self) -> dict[str, int]:
        st = self.opt.state.get(self.tensors[self.case.first_param], {})
        return {k: int(st[k]) for k in COUNTERS if isinstance(st.get(k), int) and not isinstance(st.get(k), bool)}


class NumpyClosedLoop(_Driver):
    def __init__(self, cand: Candidate, spec: Spec, case: ClosedLoopCase, dtype: str, device: str):
        if device != "cpu":
            raise CaseSkipped(f"NumPy candidates run on the CPU, not {device}")
        self.cand, self.spec = cand, spec
        self._layout(case)
        self.dtype = np.dtype(dtype)
        self.arrays = [p.initial.astype(self.dtype).reshape(p.shape) for p in case.params]
        co = case.objective["coefficients"]
        self.coefficients = {k: v.astype(self.dtype) if isinstance(v, np.ndarray) else v for k, v in co.items()}
        self.group = dict(case.groups[0].hyperparameters)
        self.findings = set()
        self.opt = self._build()

    def _build(self):
        return self.cand.target(list(self.arrays), **self.cand.settings(self.spec, self.group), **self.cand.kwargs)

    def closure(self):
        names = [p.name for p in self.case.params]
        x = np.concatenate([self.arrays[names.index(v)].reshape(-1) for v in self.variables])
        f, g = value_and_grad(self.case.objective["kind"], self.coefficients, x, np)
        grads, offset = [], 0
        for p, a in zip(self.case.params, self.arrays, strict=True):
            if p.name in self.variables:
                n = self.sizes[p.name]
                grads.append(g[offset: offset + n].reshape(a.shape).copy())
                offset += n
            else:
                grads.append(None)
        return f, grads

    def set_hyperparameter(self, name: str, value: Any) -> None:
        if not hasattr(self.opt, name):
            raise CaseSkipped(f"NumPy candidate has no attribute {name!r} to change between steps")
        setattr(self.opt, name, value)
        self.group[name] = value

    def reload(self) -> None:
        if not (hasattr(self.opt, "state_dict") and hasattr(self.opt, "load_state_dict")):
            raise CaseSkipped("NumPy candidate has no state_dict()/load_state_dict(): resume cases need them")
        sd = copy.deepcopy(self.opt.state_dict())
        self.opt = self._build()
        self.opt.load_state_dict(sd)

    def step(self) -> float:
        loss = self.opt.step(self.closure)
        return float("nan") if loss is None else float(loss)

    def params(self) -> dict[str, np.ndarray]:
        return {p.name: np.asarray(a, dtype=np.float64).reshape(-1).copy()
                for p, a in zip(self.case.params, self.arrays, strict=True)}

    def counters(self) -> dict[str, int]:
        state = getattr(self.opt, "state", None)
        first = state[0] if isinstance(state, list) and state and isinstance(state[0], dict) else {}
        return {k: int(first[k]) for k in COUNTERS if isinstance(first.get(k), (int, np.integer))}


# -- running and scoring ----------------------------------------------------------------------------


class LossDivergence(Divergence):
    def where(self) -> str:
        return "the loss step() returned"


def run_case(cand: Candidate, spec: Spec, case: ClosedLoopCase, dtype: str, device: str = "cpu",
             accept: tuple[str, ...] = (), mode: str = "eager", make_driver=None) -> CaseResult:
    """Run one case on a fresh candidate and score it (not yet matched against the variants:
    ``runner.run_case`` does that). A closed-loop case runs eagerly (a CUDA graph cannot call a
    closure: ``cuda_graph.graph_ineligible``) and against the spec only: ``accept`` is the
    open-loop kind's and changes nothing here. ``make_driver``: a driver factory with the
    drivers' arguments, for a mode defined elsewhere (the distributed wrappers of
    ``distributed_closed_loop.py``; the result then carries that ``mode``)."""
    res = CaseResult(spec.id, case.id, dtype, device, mode=mode if make_driver else "eager")
    why = cand.unsupported(spec, case, dtype)
    if why:
        res.outcome, res.reason = "skipped", why
        return res
    driver = build_driver(res, lambda: (make_driver or (TorchClosedLoop if cand.api == "torch" else NumpyClosedLoop))(
        cand, spec, case, dtype, device))
    if driver is None:
        return res
    actual = {p.name: [p.initial.copy()] for p in case.params}
    losses: list[float] = []
    counters: dict[str, list[float]] = {}
    for t, step in enumerate(case.steps, start=1):
        step_started(t)
        try:
            if step.reload_before:
                driver.reload()
            for c in step.changes:
                driver.set_hyperparameter(c.name, c.value)
            loss = driver.step()
            params, kept = checked_params(driver.params(), case.expected), driver.counters()
        except CaseSkipped as exc:
            res.outcome, res.reason = "skipped", str(exc)
            return res
        except CandidateBroke as exc:
            res.outcome, res.reason = "failed", f"step {t}: {exc}"
            break
        except (Exception, SystemExit, GeneratorExit) as exc:  # the candidate's code
            action = "state_dict/load_state_dict" if step.reload_before else "step(closure)"
            res.outcome, res.reason = "failed", f"step {t}: {action} raised {exc_line(exc)}"
            break
        res.steps_run = t
        for name in actual:
            actual[name].append(params[name])
        losses.append(loss)
        for k in COUNTERS:
            counters.setdefault(k, []).append(float(kept[k]) if k in kept else np.nan)
    res.findings = sorted(driver.findings)
    res.actual = {k: np.vstack(v) for k, v in actual.items()}
    _score(res, case, dtype, losses, counters)
    if res.outcome == "passed" and res.max_ratio > 1.0:
        res.outcome = "failed"
    if res.outcome == "failed" and res.steps_run < case.n_steps:
        res.params_conform = False
    return res


def _score(res: CaseResult, case: ClosedLoopCase, dtype: str, losses: list[float],
           counters: dict[str, list[float]]) -> None:
    steps = res.steps_run
    if steps == 0:
        return
    per_step: list[list[Divergence]] = [[] for _ in range(steps)]
    shapes = {p.name: p.shape for p in case.params}
    for name, expected in case.expected.items():
        score_params(res, name, shapes[name], expected, case.tolerance(name, dtype), per_step)
    # the loss each call returned (a (T + 1, 1) trajectory with an unused row 0)
    exp_loss = np.concatenate([[np.nan], case.loss]).reshape(-1, 1)
    act_loss = np.concatenate([[np.nan], losses]).reshape(-1, 1)
    tol = tolerance(case.loss_bound, dtype).reshape(-1, 1)
    ratio, worst = compare("step()", "loss", (), exp_loss, act_loss, tol, steps)
    res.max_ratio = max(res.max_ratio, float(ratio.max()))
    for s, d in enumerate(worst):
        if d:
            per_step[s].append(LossDivergence(**vars(d)))
    compared = ["loss"]
    for key, exp in case.expected_counters.items():
        act = np.array(counters.get(key, [np.nan] * steps)[:steps])
        if np.all(np.isnan(act)):
            continue  # the candidate keeps no counter under torch's name
        compared.append(key)
        exp_rows = np.concatenate([[np.nan], exp]).reshape(-1, 1).astype(float)
        act_rows = np.concatenate([[np.nan], act]).reshape(-1, 1)
        ratio, worst = compare(case.first_param, key, (), exp_rows, act_rows, np.full((steps, 1), 0.5), steps)
        res.max_ratio = max(res.max_ratio, float(ratio.max()))
        for s, d in enumerate(worst):
            if d:
                per_step[s].append(d)
    res.compared_state = sorted(compared)
    res.first_divergence = first_divergence(per_step)
