"""The spec table of the README, generated from the golden index (never typed by hand).

``python -m optimizer_conformance.conformance.catalogue`` prints it; ``--write README.md``
replaces the table between the README's ``<!-- specs:begin -->`` and ``<!-- specs:end -->``
markers; tests/test_readme.py fails when the README's table is not the generated one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .golden import index

BEGIN, END = "<!-- specs:begin -->", "<!-- specs:end -->"


def _also(spec_id: str) -> list[str]:
    """torch spellings the sweep also checks a spec with (sweep.ALSO), without importing torch."""
    from .sweep import ALSO

    return [f"{path}({', '.join(f'{k}={v}' for k, v in kw.items())})" for path, kw in ALSO.get(spec_id, [])]


def spec_table() -> str:
    rows = ["| spec | torch.optim | other libraries (the board) | catalogued variants it names | acceptable findings |",
            "|---|---|---|---|---|"]
    for spec_id, meta in index()["specs"].items():
        torch = [meta["torch_class"], *_also(spec_id)] if meta["torch_class"] else []
        libs = [i["path"] for i in meta.get("implementations", [])]
        named = [v["id"] for v in meta["variants"] if not v["acceptable"]]
        accepted = [v["id"] for v in meta["variants"] if v["acceptable"]]

        def cell(items: list[str]) -> str:
            return ", ".join(f"`{x}`" for x in items) or "—"

        rows.append(f"| `{spec_id}` | {cell(torch)} | {cell(libs)} | {cell(named)} | {cell(accepted)} |")
    return "\n".join(rows)


def with_table(readme: str) -> str:
    """``readme`` with the generated table between the markers."""
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not (sep and sep2):
        raise ValueError(f"the README has no {BEGIN} ... {END} markers")
    return f"{head}{BEGIN}\n{spec_table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizer_conformance.conformance.catalogue",
                                     description=__doc__)
    parser.add_argument("--write", metavar="README", type=Path, help="replace the table in this file")
    args = parser.parse_args(argv)
    if args.write:
        args.write.write_text(with_table(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.stdout.write(spec_table() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
