"""Measure the tolerance model: ``python -m optimizer_conformance.conformance.benchmark``.

Prints, per spec × implementation × dtype, the worst error of a correct implementation as a
fraction of the tolerance, and per catalogued variant the factor by which its trajectory leaves
the tolerance in the case that separates it best, per dtype; then one line per target, with its
measured value, threshold and PASS/FAIL, and a final line derived from those lines:

* ``correct/<spec>``: the worst |error| / tolerance over every correct implementation (torch's
  for-loop, foreach and fused implementations, and the NumPy reference) and dtype ≤ 1/4, and
  none of their cases failing (a case an implementation's protocol cannot express, such as a
  two-group case of a spec whose groups share state for the NumPy protocol's one optimizer per
  group, is skipped with its reason, printed under its row; a run that skips every case fails);
* ``variants/<spec>``: the smallest, over the spec's catalogued variants and the dtypes, of the
  factor over the tolerance in the best-separating case ≥ 10×;
* ``verdict/exit``: ``pytest --optimizer=...`` exits 0 for every spec's torch class;
* ``verdict-time/<class>``: that verdict's wall time in a fresh process ≤ 5 s. Advisory: it
  depends on the machine and its load, so it is reported but not enforced unless
  ``--enforce-verdict-time`` is given.

Exit status 1 when an enforced target is missed (the final line names them).
"""

from __future__ import annotations

import argparse
import operator
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .candidates import Candidate
from .golden import spec_ids
from .kinds import load_spec
from .runner import run_case

CORRECT_TARGET = 0.25
VARIANT_TARGET = 10.0
DTYPES = ("float32", "float64")

VERDICT_SECONDS = 5.0


@dataclass(frozen=True)
class Target:
    """One target: a measured value against a threshold. ``problems`` fail it whatever the value
    (a correct implementation's case that failed outright); an advisory target is reported but
    does not decide the exit status."""

    name: str
    measure: str
    value: float
    op: str  # "<=" or ">="
    threshold: float
    unit: str = ""
    detail: str = ""
    problems: tuple[str, ...] = ()
    advisory: bool = False

    @property
    def met(self) -> bool:
        return {"<=": operator.le, ">=": operator.ge}[self.op](self.value, self.threshold) and not self.problems


def _num(x: float, unit: str, other: float | None = None) -> str:
    """Three significant digits, more when that would print a value equal to a threshold it is not."""
    digits = 3
    while other is not None and x != other and digits < 17 and f"{x:.{digits}g}" == f"{other:.{digits}g}":
        digits += 1
    return f"{x:.{digits}g}{unit}"


def format_targets(targets: Sequence[Target]) -> tuple[list[str], int]:
    """The target lines, then the final line derived from them alone, and the exit status.

    Pure: the verdict is a function of ``targets`` only (tests/test_benchmark_output.py)."""
    sym = {"<=": "≤", ">=": "≥"}
    width = max((len(t.name) for t in targets), default=0)
    mwidth = max((len(t.measure) for t in targets), default=0)
    lines = []
    for t in targets:
        status = "PASS" if t.met else "FAIL"
        line = (f"{status}  {t.name:{width}}  {t.measure:{mwidth}}  {_num(t.value, t.unit, t.threshold):>10} "
                f"{sym[t.op]} {_num(t.threshold, t.unit):6}")
        if t.advisory:
            line += "  [advisory: not enforced]"
        if t.problems:
            line += "  — " + "; ".join(t.problems)
        if t.detail:
            line += f"  ({t.detail})"
        lines.append(line)
    enforced = [t for t in targets if not t.advisory]
    advisory = [t for t in targets if t.advisory]
    failed = [t for t in enforced if not t.met]
    missed = [t for t in advisory if not t.met]
    if not enforced:
        final = "FAILED: no enforced target was measured"
    elif failed:
        final = f"{len(failed)} of {len(enforced)} enforced targets FAILED: {', '.join(t.name for t in failed)}"
    else:
        final = f"{len(enforced)} of {len(enforced)} enforced targets met"
    if advisory:
        final += (f"; {len(advisory) - len(missed)} of {len(advisory)} advisory targets met (not enforced)"
                  + (f", missed: {', '.join(t.name for t in missed)}" if missed else ""))
    lines.append(final)
    return lines, 1 if failed or not enforced else 0


@dataclass
class VerdictRun:
    optimizer: str
    seconds: float
    returncode: int
    output: str


def verdict_time(optimizer: str = "torch.optim.Adam") -> VerdictRun:
    """Wall time of ``pytest --optimizer=...`` (float32 + float64) in a fresh process, from an
    empty directory: what a user waits for."""
    import tempfile

    from .startup import timed, verdict_command

    with tempfile.TemporaryDirectory() as tmp:
        t = timed(verdict_command(optimizer, tmp), cwd=tmp)
    return VerdictRun(optimizer, t.seconds, t.returncode, t.output)


def reference_path(spec_id: str) -> str:
    """The NumPy reference of a spec (the class of our reference package that declares it)."""
    from optimizer_conformance.reference import REFERENCES

    return f"optimizer_conformance.reference.{REFERENCES[spec_id].__name__}"


@dataclass
class Row:
    spec: str
    implementation: str
    dtype: str
    worst: float  # max error / tolerance over every case, step and element
    where: str
    failed: int  # cases that failed or errored
    skipped: tuple[str, ...] = ()  # "case (reason)" of each case the implementation cannot run


def correct_candidates(spec_id: str, torch_available: bool) -> list[tuple[str, Candidate]]:
    """(label, candidate) of every correct implementation of a spec: torch's implementations of
    its class (and of the classes the sweep also checks it with) and the NumPy reference."""
    spec = load_spec(spec_id)
    impls: list[tuple[str, Candidate]] = []
    if torch_available and spec.torch_class is not None:
        from .sweep import ALSO, implementations

        for path, extra in [(spec.torch_class, {}), *ALSO.get(spec_id, [])]:
            for _impl, kw in implementations(Candidate.from_path(path).target):
                label = f"{path}({', '.join(f'{k}={v}' for k, v in {**extra, **kw}.items())})"
                impls.append((label, Candidate.from_path(path, {**extra, **kw})))
    ref = reference_path(spec_id)
    impls.append((f"{ref} (NumPy)", Candidate.from_path(ref)))
    return impls


def measure_correct(spec_id: str, torch_available: bool,
                    progress: Callable[[], object] | None = None,
                    impls: list[tuple[str, Candidate]] | None = None) -> list[Row]:
    """One row per implementation × dtype; ``progress()`` is called after each."""
    spec = load_spec(spec_id)
    if impls is None:
        impls = correct_candidates(spec_id, torch_available)
    rows = []
    for label, cand in impls:
        for dtype in DTYPES:
            results = [run_case(cand, spec, case, dtype) for case in spec.cases]
            # a case passing as an acceptable variant is measured against that variant
            ratio = {r.case: r.accepted_ratio if r.accepted else r.max_ratio for r in results}
            worst = max(results, key=lambda r: ratio[r.case])
            accepted = sorted({r.accepted for r in results if r.accepted})
            where = worst.case + (f" (acceptable: {', '.join(accepted)})" if accepted else "")
            # a case the implementation's protocol cannot express (the NumPy protocol's one
            # optimizer per group for a spec whose groups share state) is skipped with its reason,
            # shown on the row; every case skipped is a failure
            skipped = tuple(f"{r.case} ({r.reason})" for r in results if r.outcome == "skipped")
            failed = sum(r.outcome not in ("passed", "skipped") for r in results)
            rows.append(Row(spec_id, label, dtype, ratio[worst.case], where,
                            len(results) if len(skipped) == len(results) else failed, skipped))
            if progress is not None:
                progress()
    return rows


def variant_margins(spec_id: str) -> dict[str, dict[str, tuple[float, str]]]:
    """variant -> dtype -> (largest separation over cases, that case)."""
    spec = load_spec(spec_id)
    out: dict[str, dict[str, tuple[float, str]]] = {}
    for vid in spec.catalogued:
        out[vid] = {}
        for dtype in DTYPES:
            best = max(spec.cases, key=lambda c: c.separation[vid][dtype])
            out[vid][dtype] = (best.separation[vid][dtype], best.id)
    return out


def correct_target(spec_id: str, rows: Sequence[Row]) -> Target:
    worst = max(rows, key=lambda r: r.worst)
    problems = tuple(f"{r.implementation} {r.dtype}: {r.failed} case(s) did not pass" for r in rows if r.failed)
    return Target(f"correct/{spec_id}", "worst |error| / tolerance", worst.worst, "<=", CORRECT_TARGET,
                  detail=f"{worst.implementation} {worst.dtype}, {worst.where}; {len(rows)} runs",
                  problems=problems)


def variant_target(spec_id: str, margins: dict[str, dict[str, tuple[float, str]]]) -> Target:
    value, vid, dtype, case = min((sep, vid, dtype, case) for vid, per in margins.items()
                                  for dtype, (sep, case) in per.items())
    return Target(f"variants/{spec_id}", "least variant separation", value, ">=", VARIANT_TARGET, unit="×",
                  detail=f"{vid} {dtype}, {case}; {len(margins)} variant{'' if len(margins) == 1 else 's'}")


def verdict_targets(runs: Sequence[VerdictRun], enforce_time: bool = False) -> list[Target]:
    bad = [r for r in runs if r.returncode != 0]
    out = [Target("verdict/exit", "runs exiting non-zero", len(bad), "<=", 0,
                  detail=f"pytest --optimizer=... for {len(runs)} optimizers",
                  problems=tuple(f"{r.optimizer} exited {r.returncode}" for r in bad))]
    out += [Target(f"verdict-time/{r.optimizer}", "wall, fresh process", r.seconds, "<=", VERDICT_SECONDS,
                   unit=" s", advisory=not enforce_time) for r in runs]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", action="append", help="only these specs")
    parser.add_argument("--enforce-verdict-time", action="store_true",
                        help=f"fail when a verdict takes longer than {VERDICT_SECONDS:g} s (machine-dependent)")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401

        torch_available = True
    except ImportError:
        torch_available = False
    from tqdm import tqdm

    specs = args.spec or spec_ids()
    # Measure first (progress on stderr, shown on a terminal only), then print.
    impls = {spec_id: correct_candidates(spec_id, torch_available) for spec_id in specs}
    rows: dict[str, list[Row]] = {}
    with tqdm(total=sum(len(v) for v in impls.values()) * len(DTYPES), desc="correct implementations",
              unit="run", disable=None, leave=False) as bar:
        for spec_id in specs:
            bar.set_postfix_str(spec_id)
            rows[spec_id] = measure_correct(spec_id, torch_available, bar.update, impls[spec_id])
    margins = {spec_id: variant_margins(spec_id) for spec_id in specs}
    runs: list[VerdictRun] = []
    if torch_available:
        torch_classes = [c for c in (load_spec(spec_id).torch_class for spec_id in specs) if c is not None]
        for torch_class in tqdm(torch_classes, desc="verdict time", unit="optimizer", disable=None, leave=False):
            runs.append(verdict_time(torch_class))

    print(f"Correct implementations: worst |error| / tolerance (target ≤ {CORRECT_TARGET:g})")
    print(f"{'spec':10} {'implementation':70} {'dtype':8} {'worst':>8}  worst case")
    for spec_id in specs:
        for r in rows[spec_id]:
            flag = "" if r.worst <= CORRECT_TARGET and not r.failed else "  <-- MISSED"
            print(f"{r.spec:10} {r.implementation:70} {r.dtype:8} {r.worst:8.3f}  {r.where}{flag}")
            for why in r.skipped:
                print(f"{'':10} {'':70} {'':8} {'':8}  skipped: {why}")
    print()
    print(f"Catalogued variants: factor over the tolerance in the best-separating case (target ≥ {VARIANT_TARGET:g}×)")
    print(f"{'spec':10} {'variant':36} {'float32':>10} {'float64':>10}  case (float32)")
    for spec_id in specs:
        for vid, per in margins[spec_id].items():
            f32, f64 = per["float32"][0], per["float64"][0]
            flag = "" if min(f32, f64) >= VARIANT_TARGET else "  <-- MISSED"
            print(f"{spec_id:10} {vid:36} {f32:10.3g} {f64:10.3g}  {per['float32'][1]}{flag}")
    acceptable = [(spec_id, vid) for spec_id in specs for vid in load_spec(spec_id).acceptable]
    if acceptable:
        print()
        print("Acceptable variants (documented deviations of torch's design): distance from the exact spec,")
        print("in tolerances, in the case that shows it best (> 1: the strict check alone would fail torch there)")
        for spec_id, vid in acceptable:
            spec = load_spec(spec_id)
            f32, f64 = (max(c.separation[vid][d] for c in spec.cases) for d in DTYPES)
            print(f"{spec_id:10} {vid:36} {f32:10.3g} {f64:10.3g}")
    for r in runs:
        if r.returncode != 0:
            print(f"\npytest --optimizer={r.optimizer} exited {r.returncode}; its output ends:\n{r.output[-2000:]}")

    targets = [correct_target(spec_id, rows[spec_id]) for spec_id in specs]
    targets += [variant_target(spec_id, margins[spec_id]) for spec_id in specs if margins[spec_id]]
    targets += verdict_targets(runs, args.enforce_verdict_time)
    lines, status = format_targets(targets)
    print()
    print("Targets (verdict time: pytest --optimizer=..., float32 + float64, in a fresh process from an empty "
          "directory, wall clock: " + ("enforced, --enforce-verdict-time)" if args.enforce_verdict_time
                                       else "advisory, as it depends on the machine and its load; "
                                            "--enforce-verdict-time enforces it)"))
    print(*lines[:-1], sep="\n")
    print()
    print(lines[-1])
    return status


if __name__ == "__main__":
    sys.exit(main())
