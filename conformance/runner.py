"""Run one golden case against one fresh candidate, and compare every step with the goldens."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import numpy as np

from .candidates import Candidate, CaseSkipped
from .golden import Case, Spec
from .tolerance import tolerance


@dataclass
class Divergence:
    """One compared number that is out of tolerance (the worst one of its step)."""

    step: int
    param: str
    quantity: str  # "param" or the state's name (e.g. "exp_avg")
    index: tuple[int, ...]
    expected: float
    actual: float
    error: float
    tolerance: float

    @property
    def ratio(self) -> float:
        return self.error / self.tolerance if self.tolerance > 0 else float("inf")

    def where(self) -> str:
        idx = "" if not self.index else "[" + ", ".join(map(str, self.index)) + "]"
        what = f"{self.param}{idx}" if self.quantity == "param" else f"state[{self.param}{idx}][{self.quantity!r}]"
        return what


@dataclass
class CaseResult:
    spec: str
    case: str
    dtype: str
    device: str
    outcome: str = "passed"  # passed | failed | skipped
    reason: str = ""  # why skipped, or what the candidate did wrong besides numbers
    steps_run: int = 0
    max_error: float = 0.0  # largest |actual − expected| over params
    max_ratio: float = 0.0  # largest error/tolerance over everything compared
    params_conform: bool = True  # the parameter trajectory alone is within tolerance
    tolerance_at_max: float = 0.0
    first_divergence: Divergence | None = None
    compared_state: list[str] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # acceptable, but worth knowing
    accepted: str = ""  # the acceptable variant a failing trajectory follows (then it passes)
    accepted_ratio: float = 0.0  # worst error / tolerance against that variant
    mode: str = "eager"  # or "cuda_graph": steps after the warm-up replay a captured step()
    actual: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def first_divergent_step(self) -> int | None:
        return None if self.first_divergence is None else self.first_divergence.step


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


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _compare(name, quantity, shape, expected, actual, tol, steps) -> tuple[np.ndarray, list[Divergence | None]]:
    """Ratios error/tol for steps 1..steps (rows), and the worst divergence of each step."""
    exp, act, tl = expected[1 : steps + 1], actual[1 : steps + 1], tol[:steps]
    err = np.abs(act - exp)
    ratio = np.where(np.isfinite(act), err / tl, np.inf)
    ratio = np.where(np.isnan(exp), 0.0, ratio)  # state that does not exist yet
    worst = []
    for s in range(ratio.shape[0]):
        j = int(np.argmax(ratio[s]))
        if ratio[s, j] > 1.0:
            worst.append(Divergence(s + 1, name, quantity, _unravel(j, shape), float(exp[s, j]),
                                    float(act[s, j]), float(err[s, j]), float(tl[s, j])))
        else:
            worst.append(None)
    return ratio, worst


def run_case(cand: Candidate, spec: Spec, case: Case, dtype: str, device: str = "cpu",
             accept: tuple[str, ...] = (), mode: str = "eager") -> CaseResult:
    """Run one case on a fresh candidate. ``accept``: catalogued variants the user declared as
    the candidate's convention (``--optimizer-accept``): a case following one passes as acceptable.
    ``mode="cuda_graph"``: step() captured in a CUDA graph and replayed (conformance/cuda_graph.py)."""
    if getattr(case, "closed_loop", False):  # L-BFGS: the candidate drives a closure
        from .closed_loop import run_closed_loop_case

        return run_closed_loop_case(cand, spec, case, dtype, device)
    res = CaseResult(spec.id, case.id, dtype, device, mode=mode)
    why = cand.unsupported(spec, case, dtype)
    if why:
        res.outcome, res.reason = "skipped", why
        return res
    shapes = {p.name: p.shape for p in case.params}
    actual = {p.name: [p.initial.copy()] for p in case.params}
    state_rows: dict[str, dict[str, list[np.ndarray]]] = {p.name: {} for p in case.params}
    try:
        driver = cand.driver(spec, case, dtype, device, mode)
    except CaseSkipped as exc:
        res.outcome, res.reason = "skipped", str(exc)
        return res
    except Exception as exc:  # the candidate's constructor
        res.outcome, res.reason = "failed", f"constructing the candidate raised {exc_line(exc)}"
        res.params_conform = False  # nothing ran: no trajectory to vouch for
        return res
    for t, step in enumerate(case.steps, start=1):
        try:
            if step.reload_before:
                driver.reload()
            for c in step.changes:
                driver.set_hyperparameter(c.group, c.name, c.value)
            driver.step(step.grads)
            params = driver.params()
            state = driver.state()
        except CaseSkipped as exc:
            res.outcome, res.reason = "skipped", str(exc)
            return res
        except Exception as exc:
            action = "state_dict/load_state_dict" if step.reload_before else "step()"
            if mode == "cuda_graph" and action == "step()":
                from .cuda_graph import WARMUP

                action += " (captured in a CUDA graph)" if t == WARMUP + 1 else \
                    " (replayed from the CUDA graph)" if t > WARMUP else " (eager warm-up, capturable=True)"
            res.outcome, res.reason = "failed", f"step {t}: {action} raised {exc_line(exc)}"
            break
        res.steps_run = t
        for name in actual:
            actual[name].append(params[name])
            for key, value in state.get(name, {}).items():
                n = case.expected[name].shape[1]
                rows = state_rows[name].setdefault(key, [np.full(n, np.nan)] * t)
                rows.append(_as_elements(value, shapes[name], n))
            for rows in state_rows[name].values():
                if len(rows) < t + 1:
                    rows.append(np.full_like(rows[0], np.nan))
    res.findings = sorted(getattr(driver, "findings", ()))
    res.actual = {k: np.vstack(v) for k, v in actual.items()}
    _score(res, case, dtype, shapes, state_rows)
    if res.outcome == "passed" and res.max_ratio > 1.0:
        res.outcome = "failed"
        _accept(res, spec, case, dtype, shapes, state_rows, accept)
    if res.outcome == "failed" and res.steps_run < case.n_steps:
        res.params_conform = False
    if res.outcome == "failed" and res.steps_run == case.n_steps and not res.params_conform:
        from .diagnosis import matching_variants

        res.matches = matching_variants(spec, case, res.actual, dtype)
    return res


ACCEPTED = "follows acceptable variant"  # the finding of a case passed through an acceptable variant
CONVENTION = "follows the accepted convention"  # ... through a variant the user accepted


def _accept(res: CaseResult, spec: Spec, case: Case, dtype: str, shapes, state_rows,
            accept: tuple[str, ...] = ()) -> None:
    """A failed case passes when the candidate follows an acceptable variant (params and state),
    or a catalogued variant the user accepted as its convention (params; its state is not
    compared, since a convention may keep other quantities under torch's names)."""
    if res.steps_run < case.n_steps:
        return
    from .golden import load_variant

    for vid in [*spec.acceptable, *accept]:
        alt = CaseResult(res.spec, res.case, dtype, res.device)
        alt.actual, alt.steps_run = res.actual, res.steps_run
        _score(alt, load_variant(spec.id, vid)[case.id], dtype, shapes, state_rows)
        if alt.max_ratio <= 1.0:
            v = spec.variants[vid]
            res.outcome, res.accepted, res.accepted_ratio = "passed", vid, alt.max_ratio
            label = ACCEPTED if v.acceptable else f"{CONVENTION} (--optimizer-accept)"
            res.findings = sorted({*res.findings, f"{label} {vid}: {v.title}"})
            return


def _score(res: CaseResult, case: Case, dtype: str, shapes, state_rows) -> None:
    steps = res.steps_run
    if steps == 0:
        return
    per_step: list[list[Divergence]] = [[] for _ in range(steps)]
    compared = set()
    for name, expected in case.expected.items():
        tol = tolerance(case.bound[name], dtype, case.bound_fixed.get(name))
        ratio, worst = _compare(name, "param", shapes[name], expected, res.actual[name], tol, steps)
        err = np.abs(res.actual[name][1 : steps + 1] - expected[1 : steps + 1])
        if err.size:
            res.max_error = max(res.max_error, float(np.nanmax(np.where(np.isfinite(err), err, np.inf))))
        if ratio.size and float(ratio.max()) > 1.0:
            res.params_conform = False
        if ratio.size and float(ratio.max()) >= res.max_ratio:
            res.max_ratio = float(ratio.max())
            res.tolerance_at_max = float(tol[:steps].flat[int(np.argmax(ratio))])
        for s, d in enumerate(worst):
            if d:
                per_step[s].append(d)
        for key, exp_state in case.expected_state.get(name, {}).items():
            rows = state_rows[name].get(key)
            if rows is None:
                continue  # the candidate keeps no state under torch's name: trajectory only
            compared.add(key)
            act_state = np.vstack(rows)
            if key in case.counters:
                tol_s = np.full_like(exp_state[1:], 0.5)  # a count: exact
            else:
                tol_s = tolerance(np.nan_to_num(case.state_bound[name][key]), dtype)
            ratio, worst = _compare(name, key, shapes[name], exp_state, act_state, tol_s, steps)
            # state the candidate has not created (yet) is not compared
            ratio = np.where(np.isnan(act_state[1 : steps + 1]) & ~np.isnan(exp_state[1 : steps + 1]), 0.0, ratio)
            if ratio.size:
                res.max_ratio = max(res.max_ratio, float(ratio.max()))
            for s, d in enumerate(worst):
                if d and not np.isnan(d.actual):
                    per_step[s].append(d)
    res.compared_state = sorted(compared)
    res.first_divergence = first_divergence(per_step)


def first_divergence(per_step: list[list[Divergence]]) -> Divergence | None:
    """The worst divergence of the first step that has one (a parameter's if any diverged)."""
    for divs in per_step:
        if divs:
            params_first = [d for d in divs if d.quantity == "param"] or divs
            return max(params_first, key=lambda d: d.ratio)
    return None


def exc_line(exc: BaseException) -> str:
    """An exception in one line, with where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
