"""The generated docs: formulas from the derivations, no drift, and a site that renders.

The optimizer pages are generated at build time by ``derivations/docs.py`` (the mkdocs hook
``docs/hooks/generated_pages.py``); these tests call the generator directly, and one builds the
site and opens it in headless Chromium (skipped where Chromium, chromedriver or selenium is
missing).
"""

from __future__ import annotations

import difflib
import functools
import http.server
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

sp = pytest.importorskip("sympy")
from optimizer_conformance.derivations import SPECS, docs  # noqa: E402
from optimizer_conformance.derivations.rule import theta  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _torch_class(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _same(a, b) -> bool:
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str):
        return a == b
    return float(a) == float(b)


@pytest.mark.parametrize("spec_id", list(SPECS))
def test_hyperparameter_defaults_are_torchs(spec_id):
    """The defaults the pages (and the goldens) state are torch's constructor defaults."""
    pytest.importorskip("torch")
    spec = SPECS[spec_id]
    if spec.torch_class is None:
        pytest.skip(f"{spec_id}: not in torch.optim (its defaults are its reference implementation's)")
    params = inspect.signature(_torch_class(spec.torch_class)).parameters
    for hp in spec.rule.hyperparameters:
        assert hp.name in params, f"{spec.torch_class} has no argument {hp.name!r}"
        default = params[hp.name].default
        assert default is not inspect.Parameter.empty, f"{spec.torch_class}({hp.name}) has no default"
        assert _same(hp.default, default), f"{spec_id}.{hp.name}: spec {hp.default!r}, torch {default!r}"


def test_a_changed_derivation_changes_the_page_exactly_there():
    """No drift possible: change one line of Adam's rule and the page changes in that line (the
    algorithm, and the variants that show it), and nowhere else."""
    spec = SPECS["adam"]
    update = spec.rule.assignment("update")
    changed = replace(spec, rule=spec.rule.replace("update", update.expr.xreplace({theta: 2 * theta})))
    before = docs.spec_page(spec, plot=False).markdown.splitlines()
    after = docs.spec_page(changed, plot=False).markdown.splitlines()
    diff = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert diff, "the page did not change with the rule"
    for line in diff:
        assert 'data-label="update"' in line, f"a line changed that is not the update line: {line[:200]}"
    # the new formula (2θ − ...) is on the page: a 2 multiplying θ right after the arrow
    new = docs.assignment_math(changed.rule.assignment("update"), docs.printer_for(changed.rule))
    assert new in "\n".join(after) and new not in "\n".join(before)
    # the algorithm section and every variant replacing the update line show it
    n_update = sum("update" in {b.label if b else None for b, _ in docs.changed_lines(spec.rule, v.rule_for(spec.rule))}
                   for v in spec.variants)
    assert sum(new in line for line in after) == 1 + n_update


def test_every_rule_line_is_an_equation_on_its_page():
    for spec in SPECS.values():
        page = docs.spec_page(spec, plot=False).markdown
        assert page.count("<math") >= len(spec.rule.body), spec.id
        for line in spec.rule.body:
            assert f'data-label="{line.label}"' in page, (spec.id, line.label)
        assert "\\" not in re.sub(r"`[^`]*`", "", page.split("## Hyperparameters")[0].split("## Algorithm")[1]), \
            f"{spec.id}: TeX left in the algorithm"


def test_symbols_read_as_math():
    p = docs.MathPrinter()
    assert "&#946;" in docs.math(sp.Symbol("beta_1"), p)  # β with subscript 1
    hat = docs.math(sp.Symbol(r"\hat{m}"), p)
    assert "<mover" in hat and "\\" not in hat
    assert "<mtable" in docs.math(sp.Piecewise((1, sp.Symbol("amsgrad")), (0, True)), p)


def test_schema_and_matrix_pages():
    schema = docs.schema_page().markdown
    assert "### `spec_case`" in schema and "{#def-spec-case}" in schema
    pytest.importorskip("torch")
    matrix = docs.matrix_page(["sgd"]).markdown
    assert "torch.optim.SGD" in matrix and "device **cpu**" in matrix


# -- the built site in a browser -------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    if shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {"OPTIMIZER_CONFORMANCE_DOCS_QUICK": "1", "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
                   cwd=ROOT, check=True, env={**os.environ, **env})

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _wait(predicate, timeout=60.0):  # generous: CI machines are slow and loaded
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_site_renders_math_navigates_and_searches(request):
    driver = _browser()
    url = request.getfixturevalue("site")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    try:
        driver.get(url + "optimizers/adam/")
        boxes = driver.execute_script("""
            return [...document.querySelectorAll('math[display="block"]')].map(m => {
              const r = m.getBoundingClientRect(); return [r.width, r.height, getComputedStyle(m).display];
            });""")
        assert len(boxes) >= len(SPECS["adam"].rule.body)
        assert all(w > 0 and h > 0 for w, h, _ in boxes), boxes
        assert all("math" in display for _, _, display in boxes), "MathML not laid out as math"
        # a fraction is laid out stacked: numerator above denominator
        stacked = driver.execute_script("""
            const f = document.querySelector('math[data-label="update"] mfrac');
            const [n, d] = f.children;
            return n.getBoundingClientRect().bottom <= d.getBoundingClientRect().top + 1;""")
        assert stacked, "mfrac not rendered as a fraction"
        text = driver.find_element(By.TAG_NAME, "article").text
        for tex in ("\\frac", "\\hat", "\\beta", "$$", "\\left"):
            assert tex not in text
        # navigation: a nav link changes the page
        link = driver.find_element(By.CSS_SELECTOR, 'nav.md-nav--primary a[href$="sgd/"]')
        link.click()
        assert _wait(lambda: driver.current_url.rstrip("/").endswith("optimizers/sgd"))
        assert _wait(lambda: driver.find_element(By.TAG_NAME, "h1").text.strip() == "SGD")
        # search: type in the material search box, results appear
        driver.find_element(By.CSS_SELECTOR, "label.md-search__icon, .md-search__input").click()
        box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
        _wait(lambda: box.is_displayed())
        box.send_keys("bias correction")
        results = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".md-search-result__item"))
        assert results, "no search results"
        box.send_keys(Keys.ESCAPE)
    finally:
        driver.quit()
