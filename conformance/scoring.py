"""Scoring, shared by every kind of case: a trajectory against the goldens within tolerance.

What one case run produces (:class:`CaseResult`), the numbers out of tolerance
(:class:`Divergence`), the comparison of a trajectory with its expected values (:func:`compare`,
:func:`score_params`), the first divergence of a run, and an exception in one line. The kinds of
case (``open_loop.py``, ``closed_loop.py``) drive the candidate and score with these.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import numpy as np

# the reason of a case whose candidate could not be built with the case's settings
CANNOT_CONSTRUCT = "cannot construct"


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
    # every quantity out of tolerance at the first divergent step (the worst element of each)
    first_step_divergences: list[Divergence] = field(default_factory=list)
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


def unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def compare(name, quantity, shape, expected, actual, tol, steps) -> tuple[np.ndarray, list[Divergence | None]]:
    """Ratios error/tol for steps 1..steps (rows), and the worst divergence of each step."""
    exp, act, tl = expected[1 : steps + 1], actual[1 : steps + 1], tol[:steps]
    err = np.abs(act - exp)
    ratio = np.where(np.isfinite(act), err / tl, np.inf)
    ratio = np.where(np.isnan(exp), 0.0, ratio)  # state that does not exist yet
    worst: list[Divergence | None] = [None] * ratio.shape[0]
    if ratio.size:
        cols = np.argmax(ratio, axis=1)  # each step's worst element (a NaN ratio counts as worst)
        for s in np.flatnonzero(ratio[np.arange(ratio.shape[0]), cols] > 1.0).tolist():
            j = int(cols[s])
            worst[s] = Divergence(s + 1, name, quantity, unravel(j, shape), float(exp[s, j]),
                                  float(act[s, j]), float(err[s, j]), float(tl[s, j]))
    return ratio, worst


def score_params(res: CaseResult, name: str, shape: tuple[int, ...], expected: np.ndarray,
                 tol: np.ndarray, per_step: list[list[Divergence]]) -> None:
    """Score one parameter's trajectory (``res.actual[name]``, steps 1..``res.steps_run``) against
    ``expected`` within ``tol``: the largest error and ratio, whether the params conform, and each
    step's worst divergence appended to ``per_step``."""
    steps = res.steps_run
    ratio, worst = compare(name, "param", shape, expected, res.actual[name], tol, steps)
    err = np.abs(res.actual[name][1 : steps + 1] - expected[1 : steps + 1])
    err = np.where(np.isnan(expected[1 : steps + 1]), 0.0, err)  # steps a long horizon does not check
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


def first_divergence(per_step: list[list[Divergence]]) -> Divergence | None:
    """The worst divergence of the first step that has one (a parameter's if any diverged)."""
    for divs in per_step:
        if divs:
            params_first = [d for d in divs if d.quantity == "param"] or divs
            return max(params_first, key=lambda d: d.ratio)
    return None


# Called with the step number before each step of a case (the candidate process reports it, so that
# a death is placed at its step: isolation.py). Empty in the pytest process.
STEP_HOOKS: list = []


def step_started(t: int) -> None:
    for hook in STEP_HOOKS:
        hook(t)


class CandidateBroke(Exception):
    """What the candidate left cannot be compared (a param of another size, not a number)."""


def checked_params(params: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The candidate's params after a step, refused (CandidateBroke) unless each has the golden's
    number of elements: a harness error must never come out of the candidate's doing."""
    for name, exp in expected.items():
        got = params.get(name)
        if got is None:
            raise CandidateBroke(f"param {name!r} is gone after the step")
        if np.shape(got) != (exp.shape[1],):
            raise CandidateBroke(f"step() changed param {name!r} from {exp.shape[1]} elements to "
                                 f"{int(np.size(got))}")
    return params


def exc_line(exc: BaseException) -> str:
    """An exception in one line, with where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def build_driver(res: CaseResult, build):
    """``build()`` (a driver: the candidate built with the case's settings), or None with ``res``
    settled: skipped with the driver's reason (:class:`~.candidates.CaseSkipped`), or failed with
    "cannot construct: <error>" when the candidate's constructor raised (nothing ran)."""
    from .candidates import CaseSkipped

    try:
        return build()
    except CaseSkipped as exc:
        res.outcome, res.reason = "skipped", str(exc)
    except Exception as exc:  # the candidate's constructor
        res.outcome, res.reason = "failed", f"{CANNOT_CONSTRUCT}: {exc_line(exc)}"
        res.params_conform = False  # nothing ran: no trajectory to vouch for
    return None

