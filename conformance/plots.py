"""``--optimizer-plots=DIR``: a PNG per failing case, written by the process that ran the case.

Top panel: the expected and the actual trajectory of the first diverging parameter element over
the steps. Bottom panel: its |error| and its tolerance over the steps, log scale. matplotlib is
imported only here, lazily, and only its Agg canvas (pyplot and the global backend are left
alone).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from .golden import Case
from .scoring import CaseResult


class PlotsUnavailable(Exception):
    pass


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotsUnavailable("--optimizer-plots needs matplotlib (pip install matplotlib)") from None


def plot_name(case_id: str, dtype: str) -> str:
    """``adam/large_eps`` in float32 → ``adam.large_eps.float32.png``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", case_id.replace("/", ".")) + f".{dtype}.png"


def _tolerances(case: Case, dtype: str) -> dict[str, np.ndarray]:
    """Per param, (T, n): as the runner scores them (open_loop._score), bound_fixed included."""
    return {name: case.tolerance(name, dtype) for name in case.expected}


def diverging_element(res: CaseResult, case: Case, tol: dict[str, np.ndarray]) -> tuple[str, int] | None:
    """The parameter element to plot: the runner's first divergence when it is a parameter's; else
    the worst element of the first step where a parameter left its tolerance; else (only the state
    or the loss diverged) the parameter element closest to leaving it. None: no step ran."""
    steps = res.steps_run
    names = [n for n in case.expected if n in res.actual]
    if steps == 0 or not names:
        return None
    d = res.first_divergence
    if d is not None and d.quantity == "param" and d.param in names:
        shape = next(p.shape for p in case.params if p.name == d.param)
        return d.param, int(np.ravel_multi_index(d.index, shape)) if shape else 0
    ratios = {}
    for name in names:
        err = np.abs(res.actual[name][1 : steps + 1] - case.expected[name][1 : steps + 1])
        ratios[name] = np.where(np.isfinite(err), err / tol[name][:steps], np.inf)
    for s in range(steps):
        worst = max(names, key=lambda n: float(ratios[n][s].max()) if ratios[n].shape[1] else -1.0)
        if ratios[worst].shape[1] and ratios[worst][s].max() > 1.0:
            return worst, int(np.argmax(ratios[worst][s]))
    worst = max(names, key=lambda n: float(ratios[n].max()) if ratios[n].size else -1.0)
    if not ratios[worst].size:
        return None
    return worst, int(np.argmax(ratios[worst])) % ratios[worst].shape[1]


def write_case_plot(res: CaseResult, case: Case, directory: str | Path, candidate: str = "") -> Path:
    """Write the PNG of one failed case run into ``directory`` (created); returns its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / plot_name(case.id, res.dtype)
    tol = _tolerances(case, res.dtype)
    where = diverging_element(res, case, tol)
    fig = Figure(figsize=(7.5, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    title = f"{case.id} [{res.dtype}, {res.device}]" + (f": {candidate}" if candidate else "")
    fig.suptitle(title, fontsize=10)
    if where is None:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, f"no trajectory to plot\n{res.reason or 'no step ran'}", ha="center",
                va="center", wrap=True)
        fig.savefig(path, format="png", dpi=100)
        return path
    name, j = where
    shape = next(p.shape for p in case.params if p.name == name)
    label = name + ("[" + ", ".join(map(str, np.unravel_index(j, shape))) + "]" if shape else "")
    steps = res.steps_run
    exp = case.expected[name][:, j]
    act = res.actual[name][: steps + 1, j]
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(np.arange(len(exp)), exp, "-o", ms=3, label="expected (golden)")
    shown = np.where(np.isfinite(act), act, np.nan)
    top.plot(np.arange(len(act)), shown, "--x", ms=5, label="actual (candidate)")
    bad = np.flatnonzero(~np.isfinite(act))
    if bad.size:
        top.plot(bad, exp[bad], "rv", label="actual not finite")
    top.set_ylabel(label)
    top.set_title(f"trajectory of {label}", fontsize=9)
    top.legend(fontsize=8)
    t = np.arange(1, steps + 1)
    raw = np.abs(act[1:] - exp[1 : steps + 1])
    err = np.where(np.isfinite(raw) & (raw > 0), raw, np.nan)  # zero and non-finite: not on a log axis
    tl = tol[name][:steps, j]
    over = np.flatnonzero(~np.isfinite(raw) | (raw > tl))
    bottom.semilogy(t, tl, "-", color="grey", label="tolerance")
    bottom.semilogy(t, err, "o-", color="C3", ms=4, label="|actual − expected|")
    if over.size:
        bottom.axvline(t[over[0]], color="C3", lw=0.8, ls=":", label=f"first divergence (step {t[over[0]]})")
    bottom.set_xlabel("step")
    bottom.set_ylabel("|error|")
    bottom.set_title("error vs tolerance", fontsize=9)
    bottom.legend(fontsize=8)
    fig.savefig(path, format="png", dpi=100)
    return path


def plot_failure(res: CaseResult, case: Case, directory: str | Path, candidate: str = "") -> Path | None:
    """write_case_plot, but a plot that cannot be written is a warning, never a harness error."""
    try:
        return write_case_plot(res, case, directory, candidate)
    except Exception as exc:
        import pytest

        warnings.warn(pytest.PytestWarning(f"--optimizer-plots: no plot for {case.id} [{res.dtype}]: "
                                           f"{type(exc).__name__}: {exc}"), stacklevel=2)
        return None
