"""Every ``torch.optim`` optimizer against its spec: ``python -m optimizer_conformance.conformance.sweep``.

For each spec of the golden index, the torch class it names is run in every implementation it
offers on the device — the for-loop (``foreach=False``), ``foreach=True`` and ``fused=True`` where
its constructor takes those flags, and on CUDA also ``capturable=True`` and the CUDA-graph mode
(conformance/cuda_graph.py: step() captured once and replayed, on the cases a graph can replay);
an implementation torch refuses on this device is reported as such — in float32 and float64,
through the same runner as ``pytest --optimizer``. Prints a
table (markdown with ``--markdown``) of verdicts with the acceptable findings named, and writes it
as JSON with ``--json PATH`` (the docs' conformance matrix is generated from that file). Exit 1 if
any run does not pass.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field

from .candidates import Candidate
from .cuda_graph import MODE as GRAPH
from .cuda_graph import graph_ineligible
from .golden import index
from .kinds import load_spec
from .runner import run_case

DTYPES = ("float32", "float64")
# How torch says an implementation does not exist for this device or dtype (every case refused
# before its first step): reported as "unsupported", not as a failure.
REFUSALS = ("not supported", "Could not run", "NotImplementedError", "supported devices")
# Specs whose torch class is checked a second way as well (same spec, another spelling).
ALSO = {"adamw": [("torch.optim.Adam", {"decoupled_weight_decay": True})]}


def implementations(cls: type, device: str = "cpu") -> list[tuple[str, dict]]:
    """(label, constructor flags) of the implementations a torch optimizer class offers on the
    device; the label ``cuda_graph`` is a mode (the driver adds capturable=True), not a flag."""
    params = inspect.signature(cls).parameters
    out = []
    if "foreach" in params:
        out += [("forloop", {"foreach": False}), ("foreach", {"foreach": True})]
    if "fused" in params:
        out.append(("fused", {"fused": True}))
    if device.startswith("cuda") and "capturable" in params:
        out += [("capturable", {"capturable": True}), (GRAPH, {})]
    return out or [("default", {})]


@dataclass
class Run:
    spec: str
    optimizer: str  # e.g. "torch.optim.Adam"
    implementation: str
    flags: dict
    dtype: str
    verdict: str  # "pass" | "fail" | "unsupported"
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    worst: float = 0.0  # worst error / tolerance over the cases that passed strictly
    findings: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # acceptable variants some case followed
    detail: str = ""
    seconds: float = 0.0


def sweep_spec(spec_id: str, device: str = "cpu") -> list[Run]:
    import torch

    spec = load_spec(spec_id)
    if spec.torch_class is None:
        return []  # torch has no class for this spec: the third-party board checks its libraries
    candidates = [(spec.torch_class, {})] + ALSO.get(spec_id, [])
    runs = []
    for path, extra in candidates:
        cls = Candidate.from_path(path).target
        for label, flags in implementations(cls, device):
            kwargs = {**extra, **flags}
            name = path + ("" if not extra else "(" + ", ".join(f"{k}={v}" for k, v in extra.items()) + ")")
            cand = Candidate(path, cls, "torch", kwargs)
            for dtype in DTYPES:
                start = time.perf_counter()
                try:
                    if label == GRAPH:
                        results = [run_case(cand, spec, case, dtype, device, mode=GRAPH)
                                   for case in spec.cases if graph_ineligible(case) is None]
                    else:
                        results = [run_case(cand, spec, case, dtype, device) for case in spec.cases]
                except (RuntimeError, torch.cuda.CudaError) as exc:  # pragma: no cover - defensive
                    runs.append(Run(spec_id, name, label, flags, dtype, "unsupported", detail=str(exc)))
                    continue
                run = Run(spec_id, name, label, flags, dtype, "pass", seconds=time.perf_counter() - start)
                for r in results:
                    run.passed += r.outcome == "passed"
                    run.failed += r.outcome == "failed"
                    run.skipped += r.outcome == "skipped"
                    run.findings = sorted({*run.findings, *r.findings})
                    if r.accepted:
                        run.accepted = sorted({*run.accepted, r.accepted})
                    if r.outcome == "passed":
                        run.worst = max(run.worst, r.accepted_ratio if r.accepted else r.max_ratio)
                refused = [r.reason for r in results if r.outcome == "failed" and r.steps_run == 0
                           and any(m in r.reason for m in REFUSALS)]
                if refused and len(refused) == len(results):
                    run.verdict, run.detail = "unsupported", refused[0]
                elif run.failed or not run.passed:
                    run.verdict = "fail"
                    run.detail = "; ".join(f"{r.case}: {r.reason or 'out of tolerance'}"
                                           for r in results if r.outcome == "failed")[:300]
                runs.append(run)
    return runs


def table(runs: list[Run], markdown: bool) -> str:
    rows = [("optimizer", "implementation", "float32", "float64", "findings (acceptable)")]
    keyed: dict[tuple[str, str], dict[str, Run]] = {}
    for r in runs:
        keyed.setdefault((r.optimizer, r.implementation), {})[r.dtype] = r
    for (opt, impl), per in keyed.items():
        cells = []
        for dtype in DTYPES:
            r = per.get(dtype)
            if r is None:
                cells.append("—")
            elif r.verdict == "pass":
                cells.append(f"pass{' (acceptable)' if r.accepted else ''} {r.passed}/{r.passed + r.failed}")
            else:
                cells.append(f"{r.verdict.upper()} {r.passed}/{r.passed + r.failed}")
        findings = sorted({f for r in per.values() for f in r.findings})
        rows.append((opt, impl, *cells, "; ".join(findings) or "—"))
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", action="append", help="only these specs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--json", metavar="PATH", help="write the runs as JSON here")
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available on this machine", file=sys.stderr)
        return 2

    from tqdm import tqdm

    start = time.perf_counter()
    runs = []
    # progress on stderr, shown on a terminal only (disable=None): captured output stays clean
    torch_specs = [sid for sid, meta in index()["specs"].items() if meta["torch_class"] is not None]
    with tqdm(args.spec or torch_specs, desc="sweep", unit="spec", disable=None, leave=False) as bar:
        for spec_id in bar:
            bar.set_postfix_str(spec_id)
            runs += sweep_spec(spec_id, args.device)
    wall = time.perf_counter() - start
    print(table(runs, args.markdown))
    bad = [r for r in runs if r.verdict == "fail"]
    print(f"\n{len(runs)} runs (optimizer × implementation × dtype) in {wall:.1f} s: "
          f"{sum(r.verdict == 'pass' for r in runs)} pass, {len(bad)} fail, "
          f"{sum(r.verdict == 'unsupported' for r in runs)} unsupported on {args.device}")
    for r in bad:
        print(f"  FAIL {r.optimizer} [{r.implementation}, {r.dtype}]: {r.detail}")
    if args.json:
        doc = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
               "device": args.device, "seconds": round(wall, 2), "runs": [asdict(r) for r in runs]}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
