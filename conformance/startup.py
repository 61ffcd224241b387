"""What a verdict costs over importing torch:
``python -m optimizer_conformance.conformance.startup [--pairs N] [--optimizer torch.optim.Adam]``.

Times, in fresh processes of this interpreter (wall clock, ``time.perf_counter``), in the same run:

1. ``python -c "import torch"``: the floor any torch user pays;
2. ``python -m pytest -q -p no:cacheprovider --optimizer=...`` in a fresh empty temporary
   directory (``--rootdir`` there: no project conftest or configuration is picked up): the
   verdict, float32 + float64, as a user runs it;
3. ``python -c "import torch; ...; torch.optim.Adam([p]).step()"``: torch's own floor for any check
   of its optimizer, one construction and one step. Both import ``torch._dynamo`` (about as costly as
   ``import torch``): the construction through ``torch._disable_dynamo`` (``add_param_group``), and
   every ``step()`` through ``_use_grad_for_differentiable``, whose body begins with
   ``import torch._dynamo`` (torch/optim/optimizer.py). A cost of the candidate itself, which a
   harness that runs even one step cannot avoid.

After ``--warmup`` untimed runs of each command (default 1: the first run after a while reads
torch from disk), N rounds (default 7, at least 5), each running the three commands once, the
order rotated from round to round so that no command always runs first (or after the same one). Prints the per-round
numbers, then one line per measure (medians, and the ratios verdict / import torch and
verdict / torch's floor), the floor's own ratio to import torch, the target (verdict ≤ 1.3×
import torch) with whether it is met, then a final line; ``--json PATH`` writes the numbers.
Exit status 1 if the verdict command does not exit 0 (its output is shown). No time threshold is
enforced: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

IMPORT = "import torch"
FLOOR = "torch's floor"
VERDICT = "verdict"
MEASURES = (IMPORT, VERDICT, FLOOR)  # the order of round 0; later rounds rotate it
MIN_PAIRS = 5
DEFAULT_PAIRS = 7


def verdict_command(optimizer: str, rootdir: str) -> list[str]:
    """``pytest --optimizer=...`` as a user runs it, confined to ``rootdir`` (run it with cwd there)."""
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--optimizer={optimizer}",
            f"--rootdir={rootdir}"]


IMPORT_COMMAND = [sys.executable, "-c", "import torch"]
FLOOR_COMMAND = [sys.executable, "-c", "import torch; p = torch.zeros(1, requires_grad=True); "
                     "p.grad = torch.ones(1); torch.optim.Adam([p]).step()"]
TARGET = 1.3  # verdict / import torch (issue 15)


@dataclass
class Timed:
    seconds: float
    returncode: int
    output: str


def timed(command: Sequence[str], cwd: str | None = None) -> Timed:
    start = time.perf_counter()
    proc = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return Timed(seconds, proc.returncode, proc.stdout + proc.stderr)


def run_measure(measure: str, optimizer: str) -> Timed:
    if measure == IMPORT:
        return timed(IMPORT_COMMAND)
    if measure == FLOOR:
        return timed(FLOOR_COMMAND)
    with tempfile.TemporaryDirectory(prefix="optimizer-conformance-startup-") as tmp:
        return timed(verdict_command(optimizer, tmp), cwd=tmp)


def round_order(i: int) -> tuple[str, ...]:
    """Round i runs the measures rotated by i: each command runs first, second and third equally often."""
    k = i % len(MEASURES)
    return MEASURES[k:] + MEASURES[:k]


def summarise(rounds: Sequence[Mapping[str, float]]) -> dict:
    """Per-round seconds {measure: s} → medians, ratios of the medians, and per-round ratios.

    Pure: no clock, no process. The ratios are verdict / import torch and
    verdict / torch's floor, and the floor's own ratio to import torch (what the verdict's ratio
    cannot go below)."""
    if not rounds:
        raise ValueError("no rounds to summarise")
    med = {m: statistics.median(r[m] for r in rounds) for m in MEASURES}
    per_round = [{"vs_import": r[VERDICT] / r[IMPORT], "vs_floor": r[VERDICT] / r[FLOOR]} for r in rounds]
    return {
        "rounds": len(rounds),
        "median_seconds": med,
        "min_seconds": {m: min(r[m] for r in rounds) for m in MEASURES},
        "max_seconds": {m: max(r[m] for r in rounds) for m in MEASURES},
        # the ratio of the medians (what is reported), and the median of the paired per-round ratios
        "ratio_vs_import": med[VERDICT] / med[IMPORT],
        "ratio_vs_floor": med[VERDICT] / med[FLOOR],
        "floor_vs_import": med[FLOOR] / med[IMPORT],
        "target_vs_import": TARGET,
        "target_met": med[VERDICT] / med[IMPORT] <= TARGET,
        "median_round_ratio_vs_import": statistics.median(p["vs_import"] for p in per_round),
        "median_round_ratio_vs_floor": statistics.median(p["vs_floor"] for p in per_round),
        "per_round_ratios": per_round,
    }


def format_rounds(rounds: Sequence[Mapping[str, float]], orders: Sequence[Sequence[str]]) -> list[str]:
    lines = [f"{'round':>5}  {'import torch':>12}  {'verdict':>9}  {'torch floor':>16}  "
             f"{'v/import':>8}  {'v/floor':>11}  order"]
    for i, (r, order) in enumerate(zip(rounds, orders, strict=True), start=1):
        lines.append(f"{i:>5}  {r[IMPORT]:10.2f} s  {r[VERDICT]:7.2f} s  {r[FLOOR]:14.2f} s  "
                     f"{r[VERDICT] / r[IMPORT]:7.2f}×  {r[VERDICT] / r[FLOOR]:10.2f}×  {' → '.join(order)}")
    return lines


def format_summary(summary: Mapping, optimizer: str) -> list[str]:
    """One line per measure, then the final line."""
    med, lo, hi = summary["median_seconds"], summary["min_seconds"], summary["max_seconds"]
    labels = {IMPORT: 'python -c "import torch"',
              FLOOR: 'python -c "import torch; ...; torch.optim.Adam([p]).step()"',
              VERDICT: f"pytest -q --optimizer={optimizer}"}
    width = max(len(v) for v in labels.values())
    lines = [f"{'measure':{width}}  {'median':>9}  {'min':>7}  {'max':>7}"]
    for m in (IMPORT, FLOOR, VERDICT):
        lines.append(f"{labels[m]:{width}}  {med[m]:7.2f} s  {lo[m]:5.2f} s  {hi[m]:5.2f} s")
    lines.append(f"{'ratio verdict / import torch':{width}}  {summary['ratio_vs_import']:8.2f}×"
                 f"  (median of per-round ratios {summary['median_round_ratio_vs_import']:.2f}×)")
    lines.append(f"{'ratio verdict / torch floor':{width}}  {summary['ratio_vs_floor']:8.2f}×"
                 f"  (median of per-round ratios {summary['median_round_ratio_vs_floor']:.2f}×)")
    lines.append(f"{'ratio torch floor / import torch':{width}}  {summary['floor_vs_import']:8.2f}×"
                 "  (the least a verdict that runs one step of torch's optimizer can cost)")
    met = "met" if summary["target_met"] else "NOT met"
    lines.append(f"target verdict ≤ {summary['target_vs_import']}× import torch: {met} "
                 f"({summary['ratio_vs_import']:.2f}×)")
    lines.append(f"startup: verdict {med[VERDICT]:.2f} s = {summary['ratio_vs_import']:.2f}× import torch "
                 f"({med[IMPORT]:.2f} s), {summary['ratio_vs_floor']:.2f}× torch's floor "
                 f"({med[FLOOR]:.2f} s: import, construct, one step); medians of {summary['rounds']} rounds")
    return lines


def _pairs(text: str) -> int:
    n = int(text)
    if n < MIN_PAIRS:
        raise argparse.ArgumentTypeError(f"at least {MIN_PAIRS} pairs (a median of fewer rounds is noise)")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizer_conformance.conformance.startup",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=_pairs, default=DEFAULT_PAIRS,
                        help=f"rounds of (import torch, verdict, torch floor); default {DEFAULT_PAIRS}, "
                             f"at least {MIN_PAIRS}")
    parser.add_argument("--warmup", type=lambda t: max(0, int(t)), default=1, help="untimed runs of each command first (default 1)")
    parser.add_argument("--optimizer", default="torch.optim.Adam", help="the candidate of the verdict command")
    parser.add_argument("--json", metavar="PATH", help="write the numbers as JSON here")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    rounds: list[dict[str, float]] = []
    orders: list[tuple[str, ...]] = []
    total = (args.warmup + args.pairs) * len(MEASURES)
    with tqdm(total=total, desc="startup", unit="run", disable=None, leave=False) as bar:
        for i in range(-args.warmup, args.pairs):
            order = round_order(i) if i >= 0 else MEASURES
            times: dict[str, float] = {}
            for measure in order:
                bar.set_postfix_str(f"{'warm-up' if i < 0 else f'round {i + 1}'}: {measure}")
                t = run_measure(measure, args.optimizer)
                if t.returncode != 0:
                    bar.close()
                    what = {IMPORT: IMPORT_COMMAND, FLOOR: FLOOR_COMMAND}.get(
                        measure, verdict_command(args.optimizer, "<fresh temporary directory>"))
                    print(f"{' '.join(what)}\nexited {t.returncode}; its output ends:\n{t.output[-3000:]}")
                    print(f"startup: FAILED: the {measure} command exited {t.returncode} "
                          f"({'warm-up' if i < 0 else f'round {i + 1}'})")
                    return 1
                times[measure] = t.seconds
                bar.update()
            if i >= 0:
                rounds.append(times)
                orders.append(order)

    summary = summarise(rounds)
    print(f"Startup of a verdict, fresh processes of {sys.executable} (Python {platform.python_version()}), "
          f"wall clock, {args.pairs} rounds after {args.warmup} untimed warm-up round(s)")
    print(*format_rounds(rounds, orders), sep="\n")
    print()
    print(*format_summary(summary, args.optimizer), sep="\n")
    if args.json:
        from importlib import metadata

        try:
            torch_version = metadata.version("torch")
        except metadata.PackageNotFoundError:
            torch_version = None
        doc = {"optimizer": args.optimizer, "warmup": args.warmup, "python": platform.python_version(),
               "torch": torch_version,
               "machine": platform.machine(), "commands": {
                   IMPORT: IMPORT_COMMAND, FLOOR: FLOOR_COMMAND,
                   VERDICT: verdict_command(args.optimizer, "<fresh temporary directory>")},
               "rounds": [{"order": list(o), "seconds": r} for o, r in zip(orders, rounds, strict=True)],
               **{k: v for k, v in summary.items() if k != "rounds"}}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
