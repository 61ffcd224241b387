"""mkdocs hook: the pages generated from the derivations (``derivations/docs.py``), at build time.

Adds every generated page (one per optimizer, the conformance matrix from a real run of the
sweep, the golden JSON Schema reference, the mutation test's page from docs/mutation-report.json) to the site as virtual files, and the optimizer pages
to the nav's "Optimizers" section. Nothing generated is committed.

``OPTIMIZER_CONFORMANCE_DOCS_QUICK=1`` skips the two slow parts (re-proving the closed forms and
running the sweep) for a quick preview; ``nox -s docs`` and CI build the full site.
``OPTIMIZER_CONFORMANCE_DOCS_SWEEP=adamw,asgd`` runs the sweep for those specs only (the
conformance matrix then has just their tables; ``tests/test_docs.py`` builds the site so, to lay
out the widest tables in a few seconds). ``OPTIMIZER_CONFORMANCE_BOARD=board.json`` renders the
third-party board from a run of ``python -m optimizer_conformance.conformance.board --json``.

Every page's table cells get a ``<wbr>`` (a line-break opportunity, invisible, not copied) after
the ``.``, ``/``, ``(``, ``_``, ``=`` and ``,`` of a long token, so that a cell holding
``torch.optim.Adam(decoupled_weight_decay=True)`` can wrap there and its table fit the column,
instead of being cut at the column's edge; a short cell (``pass 8/8``) stays on one line.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

from mkdocs.structure.files import File

QUICK = os.environ.get("OPTIMIZER_CONFORMANCE_DOCS_QUICK", "") not in ("", "0")
BOARD = os.environ.get("OPTIMIZER_CONFORMANCE_BOARD", "")  # a board --json file: the third-party page
SWEEP = [s.strip() for s in os.environ.get("OPTIMIZER_CONFORMANCE_DOCS_SWEEP", "").split(",") if s.strip()]


def on_config(config):
    from optimizer_conformance.derivations import docs

    nav = config["nav"]
    for i, entry in enumerate(nav or []):
        if isinstance(entry, dict) and entry.get("Optimizers") == f"{docs.OPTIMIZERS_DIR}/index.md":
            nav[i] = {"Optimizers": docs.nav_optimizers()}
    return config


def on_files(files, config):
    from optimizer_conformance.derivations import docs

    pages = docs.pages(proofs=not QUICK, sweep=not QUICK and not SWEEP, board_json=BOARD or None)
    if SWEEP:
        matrix = docs.matrix_page(SWEEP)
        note = (f'!!! warning "Partial run"\n    This build ran the sweep for {", ".join(SWEEP)} only '
                "(`OPTIMIZER_CONFORMANCE_DOCS_SWEEP`).\n\n")
        head, _, rest = matrix.markdown.partition("\n\n")
        matrix.markdown = f"{head}\n\n{note}{rest}"
        pages = [matrix if p.path == matrix.path else p for p in pages]
    from optimizer_conformance.conformance import mutation_report

    report = Path(config["docs_dir"]) / "mutation-report.json"
    mutation = mutation_report.page(report)  # the mutation test's page, from its committed report
    if mutation is not None:
        files.append(File.generated(config, mutation_report.PAGE, content=mutation))
    for page in pages:
        files.append(File.generated(config, page.path, content=page.markdown))
        for path, content in page.assets.items():
            files.append(File.generated(config, path, content=content))
    return files


_ROW = re.compile(r"<tr\b[^>]*>.*?</tr>", re.S)
_CELL = re.compile(r"(<td\b[^>]*>)(.*?)(</td>)", re.S)
_TAG = re.compile(r"(<[^>]*>)")
_LONG = re.compile(r"[^\s<>]{24,}")  # a token long enough to be worth breaking
_AFTER = re.compile(r"(?<=[./(_=,])(?=[^\s./(_=,)\]])")
_SHORT = 16  # a plain-text cell this short keeps its spaces unbroken


def _breakable(cell: str, first: bool) -> str:
    if "<math" in cell or "<pre" in cell:  # no HTML element inside MathML; a code block keeps its lines
        return cell
    if len(cell) <= _SHORT and "<" not in cell and "&" not in cell:
        return cell.strip().replace(" ", "&nbsp;")
    parts = _TAG.split(cell)  # text at even indices, tags at odd ones
    in_code = False
    for i, part in enumerate(parts):
        if i % 2:
            in_code = part.startswith("<code") or (in_code and not part.startswith("</code"))
        elif not (first and in_code):  # an option name in the first column stays whole (layout.css)
            parts[i] = _LONG.sub(lambda m: _AFTER.sub("<wbr>", m.group()), part)
    return "".join(parts)


def _row(row: str) -> str:
    n = itertools.count()
    return _CELL.sub(lambda m: m.group(1) + _breakable(m.group(2), first=next(n) == 0) + m.group(3), row)


def on_page_content(html, page, config, files):
    return _ROW.sub(lambda m: _row(m.group()), html)
