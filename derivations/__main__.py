"""Regenerate the golden vectors: ``python -m optimizer_conformance.derivations [--check] [--out DIR]``.

Without options the goldens shipped in the conformance package are rewritten in place
(``--spec ID``, repeatable: only those specs' folders), each spec's folder with its index and its
``MANIFEST.json``: the SHA-256 of every other file of the folder, which the plugin verifies. With
``--check`` they are generated into a temporary folder and compared byte for byte with the
shipped ones: exit 1 and the differing files on any difference (what ``nox -s golden`` and CI run).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import SPECS
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


def _write_with_progress(specs: list[Spec], out: Path) -> list[Path]:
    """``write_all`` with a progress bar on stderr (shown on a terminal only: ``disable=None``), so
    that logs and captured output stay clean."""
    from tqdm import tqdm

    with tqdm(total=len(specs), desc="goldens", unit="spec", disable=None, leave=False) as bar:
        return write_all(specs, out, progress=lambda spec: (bar.set_postfix_str(spec.id), bar.update()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizer_conformance.derivations", description=__doc__)
    parser.add_argument("--out", type=Path, help="write here instead of the shipped golden folder")
    parser.add_argument("--check", action="store_true", help="regenerate to a temporary folder and compare")
    parser.add_argument("--spec", action="append", choices=sorted(SPECS), help="only these specs")
    args = parser.parse_args(argv)
    specs = [SPECS[s] for s in (args.spec or SPECS)]
    if args.spec and args.check:
        parser.error("--check compares every spec: drop --spec")
    shipped = _shipped_dir()
    start = time.perf_counter()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            _write_with_progress(specs, Path(tmp))
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
    written = _write_with_progress(specs, out)
    print(f"wrote {len(written)} files to {out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
