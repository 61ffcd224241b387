"""Measure the tolerance model: ``python -m optimizer_conformance.conformance.benchmark``.

Prints, per spec × implementation × dtype, the worst error of a correct implementation as a
fraction of the tolerance (target ≤ 1/4), and per catalogued variant the factor by which its
trajectory leaves the tolerance in the case that separates it best, per dtype (target ≥ 10×).
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from .candidates import Candidate
from .golden import spec_ids
from .kinds import load_spec
from .runner import run_case

CORRECT_TARGET = 0.25
VARIANT_TARGET = 10.0
DTYPES = ("float32", "float64")

VERDICT_SECONDS = 5.0


def verdict_time(optimizer: str = "torch.optim.Adam") -> float:
    """Wall time of ``pytest --optimizer=...`` (float32 + float64) in a fresh process, from an
    empty directory: what a user waits for."""
    import subprocess
    import tempfile
    import time

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--optimizer={optimizer}"], cwd=tmp, check=True, capture_output=True)
        return time.perf_counter() - start


def reference_path(torch_class: str) -> str:
    """The NumPy reference of a spec: the class named like torch's, in our reference package."""
    return f"optimizer_conformance.reference.{torch_class.rpartition('.')[2]}"


@dataclass
class Row:
    spec: str
    implementation: str
    dtype: str
    worst: float  # max error / tolerance over every case, step and element
    where: str
    failed: int


def measure_correct(spec_id: str, torch_available: bool) -> list[Row]:
    spec = load_spec(spec_id)
    impls: list[tuple[str, Candidate]] = []
    if torch_available:
        from .sweep import ALSO, implementations

        for path, extra in [(spec.torch_class, {}), *ALSO.get(spec_id, [])]:
            for _impl, kw in implementations(Candidate.from_path(path).target):
                label = f"{path}({', '.join(f'{k}={v}' for k, v in {**extra, **kw}.items())})"
                impls.append((label, Candidate.from_path(path, {**extra, **kw})))
    ref = reference_path(spec.torch_class)
    impls.append((f"{ref} (NumPy)", Candidate.from_path(ref)))
    rows = []
    for label, cand in impls:
        for dtype in DTYPES:
            results = [run_case(cand, spec, case, dtype) for case in spec.cases]
            # a case passing as an acceptable variant is measured against that variant
            ratio = {r.case: r.accepted_ratio if r.accepted else r.max_ratio for r in results}
            worst = max(results, key=lambda r: ratio[r.case])
            accepted = sorted({r.accepted for r in results if r.accepted})
            where = worst.case + (f" (acceptable: {', '.join(accepted)})" if accepted else "")
            rows.append(Row(spec_id, label, dtype, ratio[worst.case], where,
                            sum(r.outcome != "passed" for r in results)))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", action="append", help="only these specs")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401

        torch_available = True
    except ImportError:
        torch_available = False
    ok = True
    specs = args.spec or spec_ids()
    print(f"Correct implementations: worst |error| / tolerance (target ≤ {CORRECT_TARGET:g})")
    print(f"{'spec':10} {'implementation':70} {'dtype':8} {'worst':>8}  worst case")
    for spec_id in specs:
        for r in measure_correct(spec_id, torch_available):
            flag = "" if r.worst <= CORRECT_TARGET and not r.failed else "  <-- MISSED"
            ok &= not flag
            print(f"{r.spec:10} {r.implementation:70} {r.dtype:8} {r.worst:8.3f}  {r.where}{flag}")
    print()
    print(f"Catalogued variants: factor over the tolerance in the best-separating case (target ≥ {VARIANT_TARGET:g}×)")
    print(f"{'spec':10} {'variant':36} {'float32':>10} {'float64':>10}  case (float32)")
    for spec_id in specs:
        for vid, per in variant_margins(spec_id).items():
            f32, f64 = per["float32"][0], per["float64"][0]
            flag = "" if min(f32, f64) >= VARIANT_TARGET else "  <-- MISSED"
            ok &= not flag
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
    if torch_available:
        print()
        print(f"Verdict time: pytest --optimizer=... (float32+float64), fresh process, wall (target ≤ {VERDICT_SECONDS:g} s;"
              " depends on machine load, not enforced)")
        for spec_id in specs:
            torch_class = load_spec(spec_id).torch_class
            wall = verdict_time(torch_class)
            note = "" if wall <= VERDICT_SECONDS else "  (over target)"
            print(f"  {torch_class:28} {wall:5.2f} s{note}")
    print()
    print("all targets met" if ok else "some targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
