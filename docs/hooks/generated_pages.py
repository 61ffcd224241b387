"""mkdocs hook: the pages generated from the derivations (``derivations/docs.py``), at build time.

Adds every generated page (one per optimizer, the conformance matrix from a real run of the
sweep, the golden JSON Schema reference) to the site as virtual files, and the optimizer pages
to the nav's "Optimizers" section. Nothing generated is committed.

``OPTIMIZER_CONFORMANCE_DOCS_QUICK=1`` skips the two slow parts (re-proving the closed forms and
running the sweep) for a quick preview; ``nox -s docs`` and CI build the full site.
"""

from __future__ import annotations

import os

from mkdocs.structure.files import File

QUICK = os.environ.get("OPTIMIZER_CONFORMANCE_DOCS_QUICK", "") not in ("", "0")


def on_config(config):
    from optimizer_conformance.derivations import docs

    nav = config["nav"]
    for i, entry in enumerate(nav or []):
        if isinstance(entry, dict) and entry.get("Optimizers") == f"{docs.OPTIMIZERS_DIR}/index.md":
            nav[i] = {"Optimizers": docs.nav_optimizers()}
    return config


def on_files(files, config):
    from optimizer_conformance.derivations import docs

    for page in docs.pages(proofs=not QUICK, sweep=not QUICK):
        files.append(File.generated(config, page.path, content=page.markdown))
        for path, content in page.assets.items():
            files.append(File.generated(config, path, content=content))
    return files
