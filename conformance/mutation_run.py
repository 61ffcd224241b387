"""The suite's mutation test: ``python -m optimizer_conformance.conformance.mutation_run`` (``nox -s mutation``).

Every mutant of conformance/mutation.py is written as a module (torch's module source, one point
changed, the classes on their for-loop path) and checked by the plugin exactly as a user would:
``pytest --optimizer=<mutant module>.<Class> --optimizer-spec=<spec>``, in float32 and float64.
A mutant is *killed* when a case of some class that calls the function fails (or when the
verdict reports a finding that the unmutated module's does not: see :func:`classify`), *survived* when
every case passes. A survivor listed in ``mutation_equivalent.toml`` with a ``reason`` (keyed by mutant id:
why no input can tell it from torch's code) is *equivalent*; the others are gaps of the suite
(the file may hold a ``gap`` note for one: the input that would kill it). Score = killed / (mutants − equivalent). Before the mutants, each unmutated module
must pass (else the harness, not the suite, is broken: exit 2).

Each run is ``pytest.main`` in a process forked from this one after torch, pytest and the plugin
are imported (a fresh process per mutant, without paying ``import torch`` each time); at most
``--jobs`` (default 2) at once. The report (``--json``; docs/mutation-report.json after a complete run) holds every
mutant with its diff, verdict and the cases that killed it, and the wall time; the docs' page
"Mutation test" is generated from it (conformance/mutation_report.py). Exit 1 when a
non-equivalent mutant survives.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import mutation
from .mutation import TARGETS, Target

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10: the tomli backport
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = Path(__file__).resolve().parent / "mutation_equivalent.toml"
REPORT = ROOT / "docs" / "mutation-report.json"
LIMIT_S = 300.0  # one mutant's whole pytest run (cases are limited by --optimizer-timeout)


@dataclass
class Job:
    target: Target
    mutant_id: str | None  # None: the unmutated module (the baseline)
    module: str  # importable name of the written module
    cls: str
    spec: str
    rc: int | None = None
    failed: list[str] = field(default_factory=list)  # "case[float32,float64]": the failing cases
    cases: int = 0
    findings: list[str] = field(default_factory=list)  # what the run reported without failing a case
    seconds: float = 0.0
    log: str = ""


def _entries(path: Path) -> dict[str, dict]:
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def equivalents(path: Path = EQUIVALENT) -> dict[str, str]:
    """mutant id → the written reason it is equivalent."""
    return {key: entry["reason"] for key, entry in _entries(path).items() if "reason" in entry}


def gaps(path: Path = EQUIVALENT) -> dict[str, str]:
    """mutant id → the written note of a survivor that is a gap: what input would kill it."""
    return {key: entry["gap"] for key, entry in _entries(path).items() if "gap" in entry}


def _write_modules(workdir: Path, targets: list[Target], limit: int | None,
                   only: set[str] | None = None) -> list[Job]:
    (workdir / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # no rootdir config
    jobs = []
    for target in targets:
        ids = [p.id for p in mutation.points(target) if only is None or p.id in only][:limit]
        if not ids:
            continue
        ids = [None, *ids]
        for n, mutant_id in enumerate(ids):
            name = f"mutant_{target.module}_{'base' if mutant_id is None else n}"
            (workdir / f"{name}.py").write_text(mutation.mutant_module(target, mutant_id), encoding="utf-8")
            jobs += [Job(target, mutant_id, name, cls, spec) for cls, spec in target.classes]
    return jobs


def _child(job: Job, workdir: Path, out: Path) -> None:
    """In the forked process: the plugin's verdict on the mutant; never returns."""
    rc = 3
    try:
        os.chdir(workdir)
        sys.path.insert(0, str(workdir))
        fd = os.open(out.with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        import pytest

        rc = int(pytest.main(["-q", "-p", "no:cacheprovider", "-c", str(workdir / "pytest.ini"),
                              f"--optimizer={job.module}.{job.cls}", f"--optimizer-spec={job.spec}",
                              "--optimizer-timeout=60", f"--optimizer-report={out}"]))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def _read(job: Job, out: Path) -> None:
    try:
        report = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = {"cases": []}
    job.cases = len(report["cases"])
    dtypes: dict[str, list[str]] = {}
    for c in report["cases"]:
        if c["outcome"] == "failed":
            dtypes.setdefault(c["id"], []).append(c["dtype"])
    job.failed = [f"{case}[{','.join(d)}]" for case, d in dtypes.items()]
    job.findings = sorted({f for c in report["cases"] for f in c.get("findings", [])})
    if job.rc not in (0, 1):
        log = out.with_suffix(".log")
        job.log = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""


def run_jobs(jobs: list[Job], workdir: Path, parallel: int, progress=None) -> None:
    """Each job in a forked process, ``parallel`` at a time; fills rc, failed, seconds."""
    pending = list(enumerate(jobs))
    running: dict[int, tuple[int, float]] = {}  # pid → (job index, start)
    while pending or running:
        while pending and len(running) < parallel:
            i, job = pending.pop(0)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child never returns
                _child(job, workdir, workdir / f"run{i}.json")
            running[pid] = (i, time.perf_counter())
        time.sleep(0.02)
        for pid, (i, start) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            elapsed = time.perf_counter() - start
            if not done and elapsed > LIMIT_S:
                os.kill(pid, 9)
                done, status = os.waitpid(pid, 0)
            if done:
                del running[pid]
                job = jobs[i]
                job.rc, job.seconds = os.waitstatus_to_exitcode(status), elapsed
                _read(job, workdir / f"run{i}.json")
                if progress is not None:
                    progress(job)


def classify(jobs: list[Job], reasons: dict[str, str], notes: dict[str, str] | None = None) -> list[dict]:
    """One record per mutant: killed (a case of some class failed, or its verdict reports a finding
    the unmutated module's does not), equivalent (all passed, and a reason is written), survived
    (all passed, no reason: a gap), error (a run did not finish).

    A finding is the verdict's account of behaviour that is acceptable but that a user should know
    of (``step() modifies p.grad in place``: torch's own foreach SGD does it with Nesterov, so it
    cannot fail a case, docs/findings.md); a mutant that makes the verdict report one which torch's
    code does not has been told apart from torch's code by the suite, and is killed by it
    (``killed_by``: "finding")."""
    base = {(j.target.key, j.cls): set(j.findings) for j in jobs if j.mutant_id is None}
    by_id: dict[str, list[Job]] = {}
    for job in jobs:
        if job.mutant_id is not None:
            by_id.setdefault(job.mutant_id, []).append(job)
    records = []
    for point_id, runs in by_id.items():
        target = runs[0].target
        new_findings = sorted({f for j in runs if j.rc == 0 for f in set(j.findings) - base.get((target.key, j.cls), set())})
        failed = any(j.rc == 1 for j in runs)
        killed = failed or bool(new_findings)
        if killed:
            status = "killed"
        elif any(j.rc != 0 for j in runs):
            status = "error"
        elif point_id in reasons:
            status = "equivalent"
        else:
            status = "survived"
        records.append({
            "id": point_id, "target": target.key, "operator": point_id.split(":", 3)[3],
            "kind": point_id.split(":", 3)[3].split(":")[0].split("#")[0],
            "status": status, "killed_by": ("failure" if failed else "finding") if killed else "",
            "new_findings": new_findings if killed and not failed else [],
            "reason": reasons.get(point_id, "") if status != "killed" else "",
            "gap": (notes or {}).get(point_id, "") if status == "survived" else "",
            "stale_reason": status == "killed" and point_id in reasons,
            "runs": [{"class": j.cls, "spec": j.spec, "rc": j.rc, "cases": j.cases, "failed": j.failed,
                      "findings": j.findings,
                      "seconds": round(j.seconds, 2), **({"log": j.log} if j.log else {})} for j in runs],
            "diff": mutation.diff(target, point_id),
        })
    return records


def summary(records: list[dict]) -> dict:
    count = {s: sum(r["status"] == s for r in records) for s in ("killed", "survived", "equivalent", "error")}
    scored = len(records) - count["equivalent"]
    return {"mutants": len(records), **count,
            "killed_by_finding": sum(r.get("killed_by") == "finding" for r in records),
            "score": round(count["killed"] / scored, 4) if scored else 1.0}


def _warm(torch, targets: list[Target]) -> None:
    """Construct and step each torch class once here, before any fork: the first construction of
    a torch optimizer imports torch._dynamo & co. (seconds), which every forked run then inherits;
    so are pytest's plugins."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="pytest11"):  # pytest's plugins: imported once, here
        with contextlib.suppress(Exception):
            entry.load()
    for target in targets:
        for cls, _spec in target.classes:
            param = torch.nn.Parameter(torch.ones(2))
            param.grad = torch.ones(2)
            getattr(torch.optim, cls)([param], foreach=False).step()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", action="append", metavar="MODULE",
                        help="only these torch.optim modules (adam, sgd, ...); repeatable")
    parser.add_argument("--jobs", type=int, default=2, help="mutants checked at once (default 2)")
    parser.add_argument("--limit", type=int, help="only the first N mutants of each target (a smoke run)")
    parser.add_argument("--id", action="append", metavar="MUTANT_ID",
                        help="only these mutants (e.g. the survivors, after adding a case); repeatable")
    parser.add_argument("--json", metavar="PATH",
                        help="write the report here (default: docs/mutation-report.json after a complete "
                        "run, none after a partial one; '-' for none)")
    parser.add_argument("--keep", metavar="DIR", help="write the mutant modules and logs here (kept)")
    args = parser.parse_args(argv)
    start = time.perf_counter()  # the whole run: imports, warm-up, writing the mutants, the runs
    load_before = os.getloadavg()[0]  # the machine's load: the wall time depends on it
    targets = [t for t in TARGETS if not args.target or t.module in args.target]
    unknown = set(args.target or ()) - {t.module for t in targets}
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}; one of: {', '.join(t.module for t in TARGETS)}")
    import pytest  # noqa: F401 - imported once here, inherited by every forked run
    import torch

    from . import items, options, plugin, run, runner  # noqa: F401 - the same

    torch.set_num_threads(1)
    _warm(torch, targets)
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mutation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    only = set(args.id) if args.id else None
    if only:
        known = {p.id for t in targets for p in mutation.points(t)}
        if only - known:
            parser.error(f"no such mutant(s): {', '.join(sorted(only - known))}")
    jobs = _write_modules(workdir, targets, args.limit, only)
    baseline = [j for j in jobs if j.mutant_id is None]
    run_jobs(baseline, workdir, args.jobs)
    broken = [j for j in baseline if j.rc != 0]
    for j in broken:
        print(f"harness broken: the unmutated {j.module}.{j.cls} does not pass ({j.rc}): {j.failed or j.log}",
              file=sys.stderr)
    if broken:
        return 2
    mutants = [j for j in jobs if j.mutant_id is not None]
    done = [0]

    def progress(job: Job) -> None:
        done[0] += 1
        if sys.stderr.isatty():
            print(f"\r{done[0]}/{len(mutants)} runs", end="", file=sys.stderr, flush=True)

    run_jobs(mutants, workdir, args.jobs, progress)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - start
    records = classify(jobs, equivalents(), gaps())
    total = summary(records)
    print(f"\n{total['mutants']} mutants of {len(targets)} functions ({len(mutants)} plugin runs, "
          f"{args.jobs} at once) in {wall:.0f} s: {total['killed']} killed ({total['killed_by_finding']} by a finding), "
          f"{total['equivalent']} equivalent, "
          f"{total['survived']} survived, {total['error']} errors; score {total['killed']}/"
          f"{total['mutants'] - total['equivalent']} = {100 * total['score']:.1f} %")
    for r in records:
        if r["status"] in ("survived", "error"):
            print(f"\n{r['status'].upper()} {r['id']}\n{r['diff']}")
            for run in r["runs"]:
                if run.get("log"):
                    print(run["log"][-600:])
        if r["stale_reason"]:
            print(f"\nKILLED but listed as equivalent (remove it from {EQUIVALENT.name}): {r['id']}")
    complete = args.limit is None and not args.target and not only
    out = args.json or (str(REPORT) if complete else "-")
    if out != "-":
        doc = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
               "cpus": os.cpu_count(), "jobs": args.jobs, "seconds": round(wall, 1),
               "cpu_seconds": round(sum(os.times()[:4]), 1),  # this process and its runs, user + system
               "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
               "complete": complete,
               "operators": mutation.OPERATORS,
               "scope": {"known": {k: repr(v) for k, v in mutation.KNOWN.items()},
                         "known_calls": mutation.KNOWN_CALLS, "known_attrs": mutation.KNOWN_ATTRS},
               "targets": [{"function": t.key, "classes": [f"{c} ({s})" for c, s in t.classes],
                            "mutants": sum(r["target"] == t.key for r in records)} for t in targets],
               "summary": total, "mutants": records}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if total["survived"] or total["error"] else 0


if __name__ == "__main__":
    sys.exit(main())

