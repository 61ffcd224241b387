"""The third-party board: library optimizers checked against the specs they are named after.

``python -m optimizer_conformance.conformance.board [--json PATH] [--markdown] [--only LIB] [--spec ID]
[--jobs N]`` runs every entry of :func:`library_optimizers` whose library is installed, each in a fresh
``pytest --optimizer=... --optimizer-report=...`` process (third-party code never runs inside
this one, so a crash or a hang is that entry's verdict), and tabulates library × optimizer ×
dtype → verdict, diagnosis, findings and the library's version. Libraries that are not installed
are listed as such; nothing is mocked.

The curated list lives with each spec's derivation (``Spec.implementations``, written into the
golden index): per entry, which constructor settings select the spec's convention where a library
offers several (``kwargs``), and ``why``: the library's own source for the choice.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class LibraryOptimizer:
    """One implementation a library ships: ``path`` as ``--optimizer`` takes it."""

    library: str  # the distribution's name on the package index
    path: str
    spec: str
    kwargs: dict = field(default_factory=dict)
    why: str = ""  # the library's source for the kwargs / the mapping
    args: dict = field(default_factory=dict)  # --optimizer-args: the library's name -> the spec's


def library_optimizers() -> list[LibraryOptimizer]:
    """The curated list: every spec's ``implementations`` in the golden index (written from its
    derivation module, so adding an optimizer brings its library entries along). timm's are named
    by module (``timm.optim.lion.Lion``): its package __init__ imports torchvision (for its
    models), and :func:`preload` loads its optimizer modules where torchvision cannot be imported."""
    from .golden import index

    return [LibraryOptimizer(i["library"], i["path"], spec_id, dict(i["kwargs"]), i["note"], dict(i.get("args", {})))
            for spec_id, meta in index()["specs"].items() for i in meta.get("implementations", [])]


@dataclass
class BoardRun:
    library: str
    version: str | None
    optimizer: str
    spec: str
    kwargs: dict
    dtype: str
    verdict: str  # "conforms" | "does not conform" | "nothing checked" | "not installed" | "cannot run" | "crashed"
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    diagnosis: str = ""
    findings: list[str] = field(default_factory=list)
    why: str = ""
    seconds: float = 0.0


def version_of(library: str) -> str | None:
    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return None


def preload() -> None:
    """Make ``timm.optim.<module>`` importable where ``import timm`` fails on torchvision (the
    only torchvision wheels a CPU-only torch build may find are built against CUDA torch): the
    packages ``timm`` and ``timm.optim`` are entered without running their ``__init__``, so the
    optimizer modules themselves (which need only torch) load and run as shipped."""
    import importlib.util
    import types

    try:
        import timm  # noqa: F401
        return
    except Exception:  # torchvision missing or built against another torch
        for name in [m for m in sys.modules if m == "timm" or m.startswith("timm.")]:
            del sys.modules[name]
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, folder in (("timm", root), ("timm.optim", root / "optim")):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(folder)]
        pkg.__package__ = name
        sys.modules[name] = pkg


def run_entry(entry: LibraryOptimizer, dtypes=DTYPES, timeout: float = 600.0) -> list[BoardRun]:
    """One fresh ``pytest --optimizer`` process over every dtype (torch is imported once); a run
    per dtype: its cases' outcomes, and the diagnosis of the whole process."""
    version = version_of(entry.library)
    runs = [BoardRun(entry.library, version, entry.path, entry.spec, dict(entry.kwargs), d, "not installed",
                     why=entry.why) for d in dtypes]
    if version is None:
        return runs
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        (Path(tmp) / "conftest.py").write_text(
            "from optimizer_conformance.conformance.board import preload\npreload()\n", encoding="utf-8")
        # the plugin alone (no other installed plugin autoloaded: ~0.4 s a run here; the verdict
        # does not depend on them)
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "optimizer_conformance.conformance.plugin",
               "-q", f"--rootdir={tmp}",
               f"--optimizer={entry.path}", f"--optimizer-spec={entry.spec}", f"--optimizer-dtype={','.join(dtypes)}",
               f"--optimizer-kwargs={json.dumps(entry.kwargs)}", f"--optimizer-args={json.dumps(entry.args)}",
               f"--optimizer-report={report}"]
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        env.setdefault("KERAS_BACKEND", "torch")  # Keras 3 entries run on the torch backend
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            for run in runs:
                run.verdict, run.diagnosis = "crashed", f"did not finish within {timeout:g} s"
            return runs
        seconds = time.perf_counter() - start
        if proc.returncode == 4 or not report.exists():
            lines = [x for x in (proc.stderr + proc.stdout).strip().splitlines() if x.strip()]
            for run in runs:
                run.verdict = "cannot run"
                run.diagnosis = lines[-1].removeprefix("ERROR: ") if lines else f"exit {proc.returncode}"
            return runs
        doc = json.loads(report.read_text(encoding="utf-8"))
    diag = doc["diagnosis"]
    for run in runs:
        cases = [c for c in doc["cases"] if c["dtype"] == run.dtype]
        run.passed, run.failed, run.skipped = (sum(c["outcome"] == k for c in cases)
                                               for k in ("passed", "failed", "skipped"))
        run.seconds = seconds / len(runs)
        run.findings = sorted({f for c in cases for f in c.get("findings", [])})
        if run.failed:
            run.verdict = "does not conform"
            run.diagnosis = " ".join(diag["text"].split())
        elif run.passed:
            run.verdict = "conforms"
            run.diagnosis = ", ".join(sorted({c["accepted"] for c in cases if c.get("accepted")}))
        else:
            run.verdict, run.diagnosis = "nothing checked", "every case was skipped"
    return runs


def default_jobs() -> int:
    """Entries run at once: one per core this process may use (each is a single-threaded
    ``pytest`` process on tiny tensors), at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def board(entries=None, dtypes=DTYPES, progress=None, jobs: int = 1) -> list[BoardRun]:
    """Every entry's runs, in the order of ``entries`` whatever order they finish in; ``jobs``
    entries at once (each is its own process: the threads here only wait on them)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    entries = library_optimizers() if entries is None else entries
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_entry, entry, dtypes) for entry in entries]
        try:
            for future in as_completed(futures):
                for run in future.result() if progress is not None else ():
                    progress(run)
        except BaseException:  # e.g. Ctrl-C (the running entries' processes get it too): start no other
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [run for future in futures for run in future.result()]


def markdown(runs: list[BoardRun]) -> str:
    lines = ["| library | version | optimizer | spec | dtype | verdict | cases (pass/fail/skip) | diagnosis |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        kw = f" `{json.dumps(r.kwargs)}`" if r.kwargs else ""
        lines.append(f"| {r.library} | {r.version or '—'} | `{r.optimizer}`{kw} | `{r.spec}` | {r.dtype} | "
                     f"{r.verdict} | {r.passed}/{r.failed}/{r.skipped} | {r.diagnosis.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizer_conformance.conformance.board", description=__doc__)
    parser.add_argument("--json", metavar="PATH", help="write the runs as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--only", metavar="LIBRARY", action="append", help="only these libraries")
    parser.add_argument("--spec", action="append", help="only the implementations of these specs")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="entries run at once, each in its own process (default: one per core, at most 4)")
    args = parser.parse_args(argv)
    entries = [e for e in library_optimizers()
               if (not args.only or e.library in args.only) and (not args.spec or e.spec in args.spec)]
    from tqdm import tqdm

    start = time.perf_counter()
    # progress on stderr, shown on a terminal only (disable=None): captured output stays clean
    try:
        with tqdm(total=len(entries) * len(DTYPES), desc="board", unit="run", disable=None, leave=False) as bar:
            runs = board(entries, progress=lambda r: (bar.set_postfix_str(f"{r.optimizer} {r.verdict}"),
                                                      bar.update()), jobs=args.jobs)
    except KeyboardInterrupt:
        print("board: interrupted (no table written)", file=sys.stderr)
        return 130
    if args.json:
        import platform
        from datetime import date

        env = {"date": date.today().isoformat(), "python": platform.python_version(), "machine": platform.machine(),
               "torch": version_of("torch"), "seconds": time.perf_counter() - start, "jobs": args.jobs}
        doc = {"environment": env, "runs": [asdict(r) for r in runs]}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if args.markdown:
        print(markdown(runs))
    ran = [r for r in runs if r.verdict != "not installed"]
    print(f"{len(ran)} runs of {len({(r.library, r.optimizer) for r in ran})} library optimizers "
          f"in {time.perf_counter() - start:.1f} s ({args.jobs} at a time); "
          f"{sum(r.verdict == 'conforms' for r in ran)} conform")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
