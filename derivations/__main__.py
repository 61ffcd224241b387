"""Regenerate the golden vectors: ``python -m optimizer_conformance.derivations [--check] [--out DIR]``.

Without options the goldens shipped in the conformance package are rewritten in place
(``--spec ID``, repeatable: only those specs' folders), each spec's folder with its index and its
``MANIFEST.json``: the SHA-256 of every other file of the folder, which the plugin verifies. With
``--check`` they are generated into a temporary folder and compared byte for byte with the
shipped ones: exit 1 and the differing files on any difference (what ``nox -s golden`` runs, and the
project's tests spec by spec, in CI too; with ``--spec``, only those specs' folders are compared). Specs are independent, so ``--jobs N``
(default: every core) generates them in N processes; each spec's bytes do not depend on N.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from . import spec_module, spec_modules
from .golden import write_all
from .spec import Spec


def _shipped_dir() -> Path:
    from optimizer_conformance import conformance

    return Path(conformance.__file__).resolve().parent / "golden"


def compare(a: Path, b: Path) -> list[str]:
    """Relative paths that differ between two golden folders (missing on either side included)."""
    files_a = {p.relative_to(a).as_posix() for p in a.rglob("*.json")}
    files_b = {p.relative_to(b).as_posix() for p in b.rglob("*.json")}
    diffs = sorted(files_a ^ files_b)
    for rel in sorted(files_a & files_b):
        if not filecmp.cmp(a / rel, b / rel, shallow=False):
            diffs.append(rel)
    return diffs


def _write_one(spec_id: str, out: Path) -> list[Path]:
    return write_all([spec_module(spec_id)], out)


def _write_with_progress(specs: list[Spec], out: Path, jobs: int = 1) -> list[Path]:
    """``write_all`` over ``jobs`` processes, with a progress bar on stderr (shown on a terminal
    only: ``disable=None``), so that logs and captured output stay clean."""
    from tqdm import tqdm

    with tqdm(total=len(specs), desc="goldens", unit="spec", disable=None, leave=False) as bar:
        if jobs <= 1 or len(specs) == 1:
            return write_all(specs, out, progress=lambda spec: (bar.set_postfix_str(spec.id), bar.update()))
        written: list[Path] = []
        with ProcessPoolExecutor(max_workers=min(jobs, len(specs))) as pool:
            futures = {spec.id: pool.submit(_write_one, spec.id, out) for spec in specs}
            for spec_id, future in futures.items():
                written += future.result()
                bar.set_postfix_str(spec_id)
                bar.update()
        return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizer_conformance.derivations", description=__doc__)
    parser.add_argument("--out", type=Path, help="write here instead of the shipped golden folder")
    parser.add_argument("--check", action="store_true", help="regenerate to a temporary folder and compare")
    parser.add_argument("--spec", action="append", choices=spec_modules(), help="only these specs")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="processes to generate specs in (default: every core)")
    args = parser.parse_args(argv)
    if args.spec:  # only those specs' modules are imported
        specs = [spec_module(s) for s in args.spec]
    else:
        from . import SPECS

        specs = list(SPECS.values())
    shipped = _shipped_dir()
    start = time.perf_counter()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            _write_with_progress(specs, Path(tmp), args.jobs)
            if args.spec:  # only those specs' folders
                diffs = [f"{s.id}/{rel}" for s in specs for rel in compare(Path(tmp) / s.id, shipped / s.id)]
            else:
                diffs = compare(Path(tmp), shipped)
        if diffs:
            print("golden vectors differ from a fresh regeneration:", *diffs, sep="\n  ")
            print("regenerate with: python -m optimizer_conformance.derivations")
            return 1
        print(f"golden vectors reproduce byte for byte ({time.perf_counter() - start:.1f} s)")
        return 0
    out = args.out or shipped
    if out == shipped and out.exists():
        # drop files of removed variants (only the regenerated specs' folders with --spec)
        for folder in [out / s.id for s in specs] if args.spec else [out]:
            if folder.exists():
                shutil.rmtree(folder)
    written = _write_with_progress(specs, out, args.jobs)
    print(f"wrote {len(written)} files to {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
