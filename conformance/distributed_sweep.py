"""Every ``torch.optim`` optimizer under every distributed wrapper:
``python -m optimizer_conformance.conformance.distributed_sweep --markdown``.

For each wrapper (ddp, zero, fsdp; conformance/distributed.py) and world size (2, 3), one group of
rank processes (conformance/distributed_group.py) runs every golden case of every spec that
torch.optim implements, in float32 and float64, the optimizer class sent with each case. A cell is
the verdict over the spec's cases: ``pass k/n``, ``FAIL k/n`` (with the variants the diagnosis
names), or ``not supported by torch`` with torch's own error when the wrapper refused every case
(cases it refused among others are counted as skipped and their reasons listed below the table).
A case in which a rank crashed (:data:`CRASHES`) runs once more on new ranks; its second run is
its record, and the crash is listed below the table (see :func:`run_rerun_on_crash`).
``--timing`` also measures the verdict time of one optimizer under each wrapper against the
single-process run (both from a fresh process: what ``pytest --optimizer=...`` costs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from .distributed import UNSUPPORTED, mode_name
from .distributed_group import RankGroup
from .distributed_variants import diagnose_distributed
from .golden import index
from .kinds import load_spec
from .report import CaseRecord

WRAPPERS = ("ddp", "zero", "fsdp")
WORLDS = (2, 3)
DTYPES = ("float32", "float64")


# Cells that fail because of torch itself, each documented in docs/distributed.md: they are printed
# as findings and do not fail the sweep; a listed cell that passes (torch fixed it) does, as a
# strict xfail does, so that the list cannot go stale. (optimizer, wrapper, dtype) -> why.
KNOWN_FAILURES: dict[tuple[str, str, str], str] = {
    ("torch.optim.NAdam", "zero", "float64"):
        "ZeroRedundancyOptimizer.load_state_dict copies the state without torch.optim's dtype cast "
        "(_recursive_copy_to_device): NAdam's float32 mu_product stays float32 after the resume",
    **{("torch.optim.LBFGS", "zero", dtype):
       "ZeroRedundancyOptimizer accepts any optimizer_class and steps a local one per rank on that rank's "
       "partition of the params; L-BFGS's direction, line search and curvature pairs span the whole "
       "parameter vector, so each rank runs another algorithm on its block (params off the golden at step 1); "
       "a rank given no param raises IndexError in LBFGS.step (self._params[0], torch/optim/lbfgs.py); ranks "
       "whose local L-BFGS call the closure a different number of times leave DDP's all-reduce out of step "
       "(the collective timeout ends the case)"
       for dtype in ("float32", "float64")},
}


# How a rank that crashed inside native code ends: the sweep runs torch.optim's own classes, so
# such a crash is torch's (DDP over gloo with several sparse-gradient params corrupts a rank's
# heap now and then, docs/distributed.md), not a verdict on the optimizer's update rule.
CRASHES = ("SIGSEGV", "SIGABRT", "SIGBUS")


def run_rerun_on_crash(group: RankGroup, request: dict, timeout: float | None = None):
    """One case on ``group`` (``timeout`` as for :meth:`RankGroup.run`); if a rank crashed
    (:data:`CRASHES`), once more on new ranks (the group starts them after a rank died).

    Returns the last run's result and the crash (the first run's reason, or ``""``). A second
    crash is the case's verdict."""
    res = group.run(request, timeout=timeout)
    if not any(how.endswith(CRASHES) for how in group.died.values()):
        return res, ""
    return group.run(request, timeout=timeout), res.reason


@dataclass
class Cell:
    optimizer: str
    wrapper: str
    world: int
    dtype: str
    verdict: str  # pass | fail | unsupported | not run
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    variants: list[str] = field(default_factory=list)
    detail: str = ""
    skips: list[str] = field(default_factory=list)
    skip_counts: dict[str, int] = field(default_factory=dict)  # reason -> cases skipped with it
    reruns: list[str] = field(default_factory=list)  # "case: the crash" of each case run again


def sweep(world: int, specs: list[str], wrappers: tuple[str, ...] = WRAPPERS, timeout: float = 40) -> list[Cell]:
    """Every case of ``specs`` under each of ``wrappers``, on one group of ``world`` ranks (the
    wrapper is sent with each case: the ranks import torch once for all wrappers). ``timeout``: per
    case, per 100 steps for a long horizon (a case takes well under a second, a long horizon a few
    seconds); half of it is the collective timeout that ends a case whose ranks fell out of step, as
    L-BFGS behind ZeRO does."""
    group = RankGroup("torch.optim.SGD", {}, (), timeout, wrappers[0], world)
    kind, info = group.start()
    if kind != "ready":
        raise SystemExit(f"world size {world}: {info}")
    cells = []
    try:
        for wrapper in wrappers:
            start = time.perf_counter()
            for spec_id in specs:
                spec = load_spec(spec_id)
                for dtype in DTYPES:
                    records, reruns = [], []
                    for case in spec.cases:
                        res, crash = run_rerun_on_crash(
                            group, {"spec": spec_id, "case": case.id, "dtype": dtype, "device": "cpu", "accept": [],
                                    "mode": mode_name(wrapper, world), "wrapper": wrapper, "path": spec.torch_class},
                            timeout=timeout * max(1, case.n_steps // 100))
                        records.append(CaseRecord.from_result(res))
                        if crash:
                            reruns.append(f"{case.id}: {crash}")
                    cells.append(_cell(spec.torch_class, wrapper, world, dtype, records, reruns))
            print(f"{wrapper} × {world}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    finally:
        group.stop()
    return cells


def sweep_worlds(worlds: tuple[int, ...], specs: list[str], wrappers: tuple[str, ...], jobs: int) -> list[Cell]:
    """:func:`sweep` at each world size; up to ``jobs`` world sizes at once, each in a process of
    its own (``--json``: its cells come back as JSON). A long horizon is 10³ steps with a few
    collectives each, and a rank spends most of it waiting on a peer: two groups of ranks overlap
    their waits on the same cores."""
    if jobs <= 1 or len(worlds) == 1:
        return [c for world in worlds for c in sweep(world, specs, wrappers)]
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="optimizer-conformance-sweep-") as tmp:
        running: list = []
        try:
            _start_each(worlds, specs, wrappers, jobs, tmp, running)
            for _, proc, _ in running:
                proc.wait()
        except BaseException:  # e.g. Ctrl-C: no sweep is left running
            for _, proc, _ in running:
                proc.kill()
                proc.wait()
            raise
        for world, proc, out in running:
            if not os.path.exists(out):
                raise SystemExit(f"world size {world}: the sweep ended with exit status {proc.returncode} and no result")
            with open(out, encoding="utf-8") as fh:
                cells += [Cell(**c) for c in json.load(fh)["cells"]]
    return cells


def _start_each(worlds, specs, wrappers, jobs, tmp, running) -> None:
    """Start the sweep of each world size in a process of its own, at most ``jobs`` at once."""
    for world in worlds:
        busy = [proc for _, proc, _ in running if proc.poll() is None]
        if len(busy) >= jobs:
            busy[0].wait()
        out = os.path.join(tmp, f"ws{world}.json")
        cmd = [sys.executable, "-m", "optimizer_conformance.conformance.distributed_sweep", "--jobs", "1",
               "--world-size", str(world), "--json", out, *[f"--spec={s}" for s in specs],
               *[f"--wrapper={w}" for w in wrappers]]
        running.append((world, subprocess.Popen(cmd, stdout=subprocess.DEVNULL), out))


def _cell(optimizer: str, wrapper: str, world: int, dtype: str, records: list[CaseRecord],
          reruns: list[str] = ()) -> Cell:
    cell = Cell(optimizer, wrapper, world, dtype, "pass", reruns=list(reruns))
    for r in records:
        cell.passed += r.outcome == "passed"
        cell.failed += r.outcome == "failed"
        cell.skipped += r.outcome == "skipped"
    skips = sorted({r.reason for r in records if r.outcome == "skipped"})
    cell.skips = skips
    for r in records:
        if r.outcome == "skipped":
            cell.skip_counts[r.reason] = cell.skip_counts.get(r.reason, 0) + 1
    if not cell.passed and not cell.failed:
        refused = [s for s in skips if s.startswith(UNSUPPORTED)]
        cell.verdict = "unsupported" if refused else "not run"
        cell.detail = (refused or skips or ["no case"])[0]
        return cell
    if cell.failed:
        diag = diagnose_distributed(records)
        cell.verdict, cell.variants = "fail", diag.variants
        cell.detail = diag.text.splitlines()[0] if diag.text else ""
    return cell


def table(cells: list[Cell], markdown: bool) -> str:
    cols = [(w, n, d) for w in WRAPPERS for n in WORLDS for d in DTYPES]
    head = ("optimizer", *[f"{w} ×{n} {d.replace('float', 'f')}" for w, n, d in cols])
    keyed = {(c.optimizer, c.wrapper, c.world, c.dtype): c for c in cells}
    rows = [head]
    for opt in dict.fromkeys(c.optimizer for c in cells):
        row = [opt]
        for w, n, d in cols:
            c = keyed.get((opt, w, n, d))
            row.append("—" if c is None else _text(c))
        rows.append(tuple(row))
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _text(c: Cell) -> str:
    n = c.passed + c.failed
    if c.verdict == "pass":
        notes = []
        if c.skipped:
            notes.append(f"{c.skipped} skipped")
        if c.reruns:
            notes.append(f"{len(c.reruns)} rerun")
        return f"pass {c.passed}/{n}" + (f" ({', '.join(notes)})" if notes else "")
    if c.verdict == "fail":
        return f"FAIL {c.passed}/{n}" + (f" {', '.join(c.variants)}" if c.variants else "")
    return "not supported by torch" if c.verdict == "unsupported" else "not run"


def timing(optimizer: str, spec: str | None = None) -> dict[str, float]:
    """Wall seconds of ``pytest --optimizer=OPTIMIZER`` (single process, then each wrapper at
    world size 2), each from a fresh process: the verdict as a user waits for it."""
    out = {}
    for label, extra in [("single process", []), *[(w, [f"--optimizer-distributed={w}"]) for w in WRAPPERS]]:
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--optimizer={optimizer}", *extra]
        if spec:
            cmd.append(f"--optimizer-spec={spec}")
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        out[label] = round(time.perf_counter() - start, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", action="append", help="only these specs")
    parser.add_argument("--wrapper", action="append", choices=WRAPPERS, help="only these wrappers")
    parser.add_argument("--world-size", action="append", type=int, help="only these world sizes")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--json", metavar="PATH", help="write the cells as JSON here")
    parser.add_argument("--timing", metavar="OPTIMIZER", help="also time a verdict, e.g. torch.optim.AdamW")
    parser.add_argument("--jobs", type=int, default=2, help="world sizes swept at once, each in a process of its "
                        "own (default 2: a rank mostly waits on a collective, so two groups share the cores)")
    args = parser.parse_args(argv)
    specs = args.spec or [sid for sid, m in index()["specs"].items() if m["torch_class"] is not None]
    start = time.perf_counter()
    cells: list[Cell] = []
    cells += sweep_worlds(tuple(args.world_size or WORLDS), specs, tuple(args.wrapper or WRAPPERS), args.jobs)
    wall = time.perf_counter() - start
    print(table(cells, args.markdown))
    known = [(c, KNOWN_FAILURES[k]) for c in cells if (k := (c.optimizer, c.wrapper, c.dtype)) in KNOWN_FAILURES]
    bad = [c for c in cells if c.verdict == "fail" and not any(c is k for k, _ in known)]
    stale = [c for c, _ in known if c.verdict == "pass"]
    findings = [c for c, _ in known if c.verdict == "fail"]
    print(f"\n{len(cells)} cells (optimizer × wrapper × world size × dtype) in {wall:.1f} s: "
          f"{sum(c.verdict == 'pass' for c in cells)} pass, {len(bad)} fail, "
          f"{len(findings)} fail as known torch findings, "
          f"{sum(c.verdict == 'unsupported' for c in cells)} not supported by torch, "
          f"{sum(c.verdict == 'not run' for c in cells)} not run")
    reasons: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for c in cells:
        for s in c.skips:
            reasons.setdefault(s, set()).add(f"{c.optimizer.rsplit('.', 1)[-1]}/{c.wrapper}")
            counts[s] = counts.get(s, 0) + c.skip_counts.get(s, 0)
    print(f"{sum(c.passed + c.failed for c in cells)} case runs passed or failed, {sum(counts.values())} skipped, "
          f"by reason:")
    for reason, where in sorted(reasons.items()):
        print(f"  skipped {counts[reason]}× ({', '.join(sorted(where))}): {reason}")
    for c in cells:
        for rerun in c.reruns:
            print(f"  rerun {c.optimizer} [{c.wrapper} ×{c.world}, {c.dtype}]: a rank crashed inside torch, the case "
                  f"ran again on new ranks: {rerun}")
    for c in bad:
        print(f"  FAIL {c.optimizer} [{c.wrapper} ×{c.world}, {c.dtype}]: {c.detail}")
    for c, why in known:
        if c.verdict == "fail":
            print(f"  finding (torch) {c.optimizer} [{c.wrapper} ×{c.world}, {c.dtype}]: {why}")
    for c in stale:
        print(f"  PASSES NOW (remove it from KNOWN_FAILURES) {c.optimizer} [{c.wrapper} ×{c.world}, {c.dtype}]")
    timed = timing(args.timing) if args.timing else None
    if timed:
        print(f"\nverdict time of {args.timing} (pytest from a fresh process, world size 2): " +
              ", ".join(f"{k} {v:.1f} s" for k, v in timed.items()))
    if args.json:
        import torch

        doc = {"torch": torch.__version__, "python": platform.python_version(), "seconds": round(wall, 2),
               "timing": timed, "cells": [asdict(c) for c in cells]}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
    return 1 if bad or stale else 0


if __name__ == "__main__":
    sys.exit(main())
