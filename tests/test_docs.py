"""The generated docs: formulas from the derivations, no drift, and a site that renders.

The optimizer pages are generated at build time by ``derivations/docs.py`` (the mkdocs hook
``docs/hooks/generated_pages.py``); these tests call the generator directly. The site is built
once per test session (``built_site``) and checked to load nothing from outside itself: statically
from its files, and in headless Chromium from a local server, page by page, with every network
request recorded (the page's log, and a trap set as the browser's proxy for what a worker asks); the browser tests (also: math, navigation, search, no page wider than 1280 px)
share one headless Chromium (``browser``) and skip where Chromium, chromedriver or selenium is
missing.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import html.parser
import http.server
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

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
        pytest.skip(f"{spec_id}: torch has no class (its library implementations are run by the board)")
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


# -- the built site: static checks, and in a browser ----------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# A site already built (e.g. the full one, with proofs and the whole sweep): checked instead of
# building one. Without it, one quick build per test session (shared by the xdist workers): no
# re-proving of closed forms, and the sweep of the two specs whose matrix tables are the widest.
SITE_ENV = "OPTIMIZER_CONFORMANCE_DOCS_SITE"
BUILD_ENV = {"OPTIMIZER_CONFORMANCE_DOCS_QUICK": "1", "OPTIMIZER_CONFORMANCE_DOCS_SWEEP": "adamw,asgd",
             "NO_MKDOCS_2_WARNING": "1"}
WIDTH = 1280  # the window width at which no page may be wider than the window


class _OutsideTrap:
    """What the browser sends outside the local server, caught where no page log can miss it.

    Chromium is started with this as its proxy (``--proxy-server``). Chromium never proxies
    loopback, so the local server's pages load directly; any other request, whoever makes it (a
    page, an iframe, a web or service worker: the CDP network log of the page holds only the page's
    own), arrives here as ``GET http://host/...`` or ``CONNECT host:443``. The trap writes down its
    first line and answers 403, so nothing leaves the machine. :meth:`take` returns what came in
    since the last call."""

    def __init__(self):
        seen, lock = [], threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one_request(self):
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline:
                    self.close_connection = True
                    return
                line = self.raw_requestline.decode("latin-1").strip()
                with lock:
                    seen.append(line)
                self.close_connection = True
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

            def log_message(self, *args):
                pass

        self._seen, self._lock = seen, lock
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def take(self) -> list[str]:
        """The request lines that reached the trap since the last call ("CONNECT host:443 HTTP/1.1")."""
        with self._lock:
            out = list(self._seen)
            self._seen.clear()
        return out

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def _browser(trap: _OutsideTrap):
    """Headless Chromium at 1280 px, its Chrome DevTools Protocol Network events logged (read with
    driver.get_log("performance")), every request to a host other than the local server sent to
    `trap`."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WIDTH},900",
                # Chromium's own traffic (updates, sign-in, sync, autofill and optimisation hints,
                # network time) would reach the trap too, indistinguishable there from a page's: off,
                # or sent to a closed local port (loopback: not proxied, refused at once)
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--gaia-url=http://127.0.0.1:9/",
                "--component-updater=url-source=http://127.0.0.1:9/",
                "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate,"
                "NetworkTimeServiceQuerying",
                # every request that is not to the local server goes to the trap (loopback is never
                # proxied), which records it and refuses it: nothing reaches out or hangs the page
                f"--proxy-server=http://{trap.address}",
                # and should anything bypass the proxy: no host but the local server resolves
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="module")
def outside_trap():
    """The proxy that every browser request leaving the local server reaches (see _OutsideTrap)."""
    trap = _OutsideTrap()
    try:
        yield trap
    finally:
        trap.close()


@pytest.fixture(scope="module")
def browser(outside_trap):
    """One Chromium for the module's browser tests (starting one costs about a second each time);
    each test opens its own pages. Skips where there is no browser."""
    driver = _browser(outside_trap)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The built site's directory: built once per test session, whatever the number of workers."""
    if os.environ.get(SITE_ENV):
        given = Path(os.environ[SITE_ENV])
        assert (given / "index.html").is_file(), f"{SITE_ENV}={given}: no built site there"
        return given
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs or mkdocs-material is not installed (pip install -e '.[docs]')")
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this session
    out, failed = root / "docs-site", root / "docs-site.failed"
    try:
        from filelock import FileLock
        lock = FileLock(str(root / "docs-site.lock"))
    except ImportError:  # without filelock (it comes with torch), each worker builds its own site
        out, failed = (p.with_name(f"{p.name}-{os.getpid()}") for p in (out, failed))
        lock = contextlib.nullcontext()
    with lock:
        if not (out / "index.html").is_file() and not failed.exists():
            proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                                   "--site-dir", str(out)], cwd=ROOT, env={**os.environ, **BUILD_ENV},
                                  capture_output=True, text=True)
            if proc.returncode:
                failed.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if failed.exists():
        pytest.fail(f"mkdocs build --strict failed:\n{failed.read_text(encoding='utf-8')[-4000:]}")
    return out


def _pages(site: Path) -> list[str]:
    """Every page of the built site, as the path of its URL ('' for the home page)."""
    paths = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    return [p[: -len("index.html")] if p.endswith("index.html") else p for p in paths]


@contextlib.contextmanager
def _served(directory: Path, replaced: dict[str, bytes] | None = None):
    """`directory` served on 127.0.0.1 (an ephemeral port), as the URL of its root; `replaced`:
    the JSON body served instead of a file's, by the file's URL path."""
    replaced = replaced or {}

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = replaced.get(urlsplit(self.path).path)
            if body is None:
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def site(built_site):
    """The built site served on 127.0.0.1 (an ephemeral port) while the module's tests run."""
    with _served(built_site) as url:
        yield url


SEARCH_INDEX = "search/search_index.json"  # material's search index: fetched by every page


@pytest.fixture(scope="module")
def site_without_search_documents(built_site):
    """The built site served as by `site`, but for its search index: the same JSON without its
    documents (its "config" unchanged). Every page fetches the index and hands it to material's
    search worker, which loads what the config asks for (lunr's language support; nothing for
    English) and indexes every document of the site: about 0.3 s of CPU a page, for an index that
    no test loading every page searches (test_site_renders_math_navigates_and_searches searches
    the whole one). The pages make the same requests as with the whole index, the index's too."""
    index = built_site / SEARCH_INDEX
    replaced = {}
    if index.is_file():
        replaced["/" + SEARCH_INDEX] = json.dumps({**json.loads(index.read_text(encoding="utf-8")),
                                                    "docs": []}).encode()
    with _served(built_site, replaced) as url:
        yield url


# -- no request leaves the site: statically, from the built files --------------------------------
_OUTSIDE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, wss://, //host
# <link rel=...> values that name a relation without loading anything
_NOT_LOADED = {"alternate", "author", "bookmark", "canonical", "external", "help", "license", "me", "next",
               "nofollow", "noopener", "noreferrer", "prev", "search", "tag"}
_LOADS = {"script": ("src",), "img": ("src", "srcset"), "source": ("src", "srcset"), "iframe": ("src",),
          "frame": ("src",), "embed": ("src",), "object": ("data",), "video": ("src", "poster"),
          "audio": ("src",), "track": ("src",), "input": ("src",), "image": ("href", "xlink:href"),
          "use": ("href", "xlink:href")}
_CSS_LOADS = re.compile(r"""@import\s+(?:url\(\s*)?["']?([^"'()\s;]+)|url\(\s*["']?([^"'()\s]+)""")
_JS_LOADS = re.compile(r"""(?:\bimport\s*\(\s*|\bfrom\s*|\bimportScripts\s*\(\s*|\bnew\s+(?:Shared)?Worker\s*\(\s*)"""
                       r"""["'`]([^"'`]+)""")


def _css_loads(text: str) -> list[str]:
    return [a or b for a, b in _CSS_LOADS.findall(text)]


class _Loads(html.parser.HTMLParser):
    """What an HTML page loads by itself: (URL, what asks for it)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        for name in _LOADS.get(tag, ()):
            for url in (a.get(name, "").split(",") if name == "srcset" else [a.get(name, "")]):
                if url.strip():
                    self.found.append((url.split()[0], f"<{tag} {name}>"))
        rels = set(a.get("rel", "").lower().split())
        if tag == "link" and a.get("href") and not rels <= _NOT_LOADED:
            self.found.append((a["href"], f"<link rel={a.get('rel')}>"))
        self.found += [(url, f"<{tag} style=url()>") for url in _css_loads(a.get("style", ""))]
        classes = a.get("class", "").split()
        if "mermaid" in classes:  # material's bundle then loads mermaid from unpkg.com
            self.found.append(("https://unpkg.com/mermaid", f"<{tag} class=mermaid> (material loads mermaid)"))
        if "md-source" in classes and re.match(r"https?://(www\.)?(github|gitlab)\.com/", a.get("href", "")):
            self.found.append(("https://api.github.com/repos/", "<a class=md-source> (material fetches the "
                               "repository's facts)"))
        self._in = tag if tag in ("style", "script") and not a.get("src") and "json" not in a.get("type", "") else None

    def handle_data(self, data):
        if self._in == "style":
            self.found += [(url, "<style>") for url in _css_loads(data)]
        elif self._in == "script":
            self.found += [(url, "<script> import") for url in _JS_LOADS.findall(data)]

    def handle_endtag(self, tag):
        self._in = None


def _static_loads(site: Path) -> list[tuple[str, str, str]]:
    """(file, URL, what asks for it) for every load from outside the site in its HTML, CSS and JS."""
    found = []
    for path in sorted(site.rglob("*")):
        if path.suffix not in (".html", ".css", ".js"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".html":
            parser = _Loads()
            parser.feed(text)
            loads = parser.found
        else:  # a stylesheet's @import/url(); a script's import/importScripts/Worker, and url() in its CSS
            loads = [(url, "@import/url()") for url in _css_loads(text)]
            if path.suffix == ".js":
                loads += [(url, "import") for url in _JS_LOADS.findall(text)]
        found += [(path.relative_to(site).as_posix(), url, why) for url, why in loads if _OUTSIDE.match(url)]
    return found


def _report(rows: list[tuple[str, ...]], limit: int = 30) -> str:
    lines = [" → ".join(row) for row in rows]
    return "\n  ".join(lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else []))


@pytest.mark.long
def test_built_files_load_nothing_from_outside_the_site(built_site):
    """No browser needed: every <script src>, loading <link href>, <img src>/srcset, <iframe src>,
    <style>/style= url() and @import in the built HTML, and every @import/url()/import in its CSS and
    JS, stays on the site (no fonts.googleapis.com, no unpkg.com, no CDN); a plain <a href> is a
    link, not a request. Also no element that makes material's bundle fetch from outside (a mermaid
    block: unpkg.com; a GitHub/GitLab repository link: its API)."""
    assert _pages(built_site), f"no page in {built_site}"
    outside = _static_loads(built_site)
    if outside:
        pytest.fail(f"{len(outside)} load(s) from outside the site (file → URL → what asks for it):\n  "
                    + _report(outside))


# -- no request leaves the site, and no page is wider than the window: in a browser ---------------
def _requests(driver) -> list[tuple[str, str]]:
    """(the page that asked, URL) of every request since the last call (CDP Network events)."""
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            out.append((params.get("documentURL", ""), params["request"]["url"]))
        elif message.get("method") == "Network.webSocketCreated":
            out.append(("(a WebSocket)", params["url"]))
    return out


def _settle(driver, since: float, quiet: float = 0.15, timeout: float = 10.0) -> list[tuple[str, str]]:
    """The requests made since the last call, once none has been made for `quiet` seconds: counted
    from `since` (a time.monotonic() by which the page had loaded and its requests had been read)
    or from the last request seen, whichever is later (lazy loads included: material starts its
    own, such as mermaid's, as the page is set up). The log is polled every 30 ms: the wait ends
    within that of the quiet period (the width check of the page runs inside it). A request made
    later still is credited to its page by its documentURL when it is read."""
    seen = _requests(driver)
    end, last = time.monotonic() + timeout, since
    while time.monotonic() < end and time.monotonic() - last < quiet:
        time.sleep(0.03)
        new = _requests(driver)
        if new:
            seen, last = seen + new, time.monotonic()
    return seen


# What sticks out of its page at the window's width: the page wider than the window; an element in
# the text that reaches past the content column without a box of its own that scrolls sideways; a
# table that does not fit the column (its last columns hidden until one scrolls its box). A code
# block is allowed to scroll inside its own box.
_TOO_WIDE = """
const root = document.documentElement, out = [];
if (root.scrollWidth > root.clientWidth)
  out.push(`the page is ${root.scrollWidth} px wide in a ${root.clientWidth} px window`);
const column = document.querySelector('.md-content'), article = document.querySelector('article');
if (!column || !article) return out;
const edge = column.getBoundingClientRect().right;
const text = e => e.textContent.trim().replace(/\\s+/g, ' ').slice(0, 60);
const under = e => {  // the heading the element is under
  for (let h = e; h && h !== article; h = h.previousElementSibling || h.parentElement)
    if (/^H[1-6]$/.test(h.tagName) && h.id) return `#${h.id}`;
  return 'the top';
};
for (const e of article.querySelectorAll('*')) {
  const r = e.getBoundingClientRect();
  if (!r.width || r.right <= edge + 1) continue;
  let scrolls = false;
  for (let a = e.parentElement; a && a !== article && !scrolls; a = a.parentElement)
    scrolls = ['auto', 'scroll'].includes(getComputedStyle(a).overflowX);
  if (!scrolls)
    out.push(`<${e.tagName.toLowerCase()}> "${text(e)}" under ${under(e)} reaches ${Math.round(r.right - edge)} px `
             + 'past the text column');
}
for (const w of article.querySelectorAll('.md-typeset__scrollwrap'))
  if (w.scrollWidth > w.clientWidth + 1)
    out.push(`the table under ${under(w)} is ${w.scrollWidth} px wide in a ${w.clientWidth} px column `
             + `(columns ${[...w.querySelector('tr').cells].map(text).join(' | ')})`);
return out.slice(0, 10);
"""


@pytest.mark.long
def test_every_page_requests_nothing_outside_and_fits_the_window(browser, outside_trap, request):
    """Every page of the built site, opened in headless Chromium from a local server: every request
    it makes (Chrome DevTools Protocol Network events, lazy ones included) is to that server; and
    at 1280 px nothing makes the page wider than the window or sticks out of the text column, and
    every table fits the column: only inner boxes (code blocks, wide formulas) scroll sideways.
    The pages get the search index without its documents (site_without_search_documents): their
    search worker is set up as with the whole index, without indexing the site once per page.
    What a web worker requests after its script is not in the page's log (Chromium logs it in the
    worker's own target): the outside-request trap (_OutsideTrap, the browser's proxy) sees every
    request that leaves the local server, whoever makes it; it is read after each page."""
    driver = browser  # skips before building where there is no browser
    built_site = request.getfixturevalue("built_site")
    url = request.getfixturevalue("site_without_search_documents")  # the site not indexed per page
    local = urlsplit(url).netloc
    requests, too_wide = [], []
    _requests(driver)  # what another test's pages asked for: not this test's pages
    trapped = [("(an earlier test's page)", line) for line in outside_trap.take()]
    assert driver.execute_script("return window.innerWidth") == WIDTH
    for page in _pages(built_site):
        driver.get(url + page)
        found = _requests(driver)  # those of the load
        read = time.monotonic()  # every request made before this has been read
        too_wide += [f"{page or '/'}: {what}" for what in driver.execute_script(_TOO_WIDE)]
        found += _settle(driver, since=read)
        requests += [(document or url + page, target) for document, target in found]
        trapped += [(page or "/", line) for line in outside_trap.take()]
    requests += _settle(driver, since=time.monotonic(), quiet=0.5)  # late ones, of the last page
    trapped += [(page or "/", line) for line in outside_trap.take()]
    assert len(requests) >= len(_pages(built_site)), "the network log missed pages"
    outside = list(dict.fromkeys((document.removeprefix(url) or "/", target) for document, target in requests
                                 if urlsplit(target).scheme in ("http", "https", "ws", "wss", "ftp")
                                 and urlsplit(target).netloc != local))
    problems = []
    if outside:
        problems.append(f"{len(outside)} request(s) leave the local server {local} (page → URL):\n  "
                        + _report(outside))
    if trapped:
        problems.append(f"{len(trapped)} request(s) reached the outside-request trap, the browser's proxy "
                        "(page being read → request; a worker's included):\n  " + _report(trapped))
    if too_wide:
        problems.append(f"at {WIDTH} px, wider than the window or cut (page: what):\n  "
                        + _report([(w,) for w in too_wide]))
    if problems:
        pytest.fail("\n".join(problems))


def _wait(predicate, timeout=60.0):  # generous: CI machines are slow and loaded
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_the_trap_sees_what_a_worker_requests_from_outside(browser, outside_trap, tmp_path):
    """The trap can fail the every-page test where the page's network log cannot: a web worker's
    fetch to outside hosts (https and plain http) reaches it, named by host, and nothing else does."""
    (tmp_path / "index.html").write_text("<!doctype html><title>w</title><script>new Worker('w.js')</script>")
    (tmp_path / "w.js").write_text("fetch('https://worker-https.invalid/a').catch(() => 0);\n"
                                   "fetch('http://worker-http.invalid/b').catch(() => 0);\n")
    outside_trap.take()
    with _served(tmp_path) as url:
        browser.get(url)
        seen = []
        _wait(lambda: seen.extend(outside_trap.take()) or len(seen) >= 2, timeout=30)
    assert sorted(line.split()[:2] for line in seen) == [["CONNECT", "worker-https.invalid:443"],
                                                         ["GET", "http://worker-http.invalid/b"]], seen


def test_site_renders_math_navigates_and_searches(browser, request):
    driver = browser
    url = request.getfixturevalue("site")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

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
    link = driver.find_element(By.CSS_SELECTOR, 'nav.md-nav--primary a[href$="/sgd/"]')
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


def test_board_cells_name_combinations_and_say_when_they_explain_part():
    """The third-party page's diagnosis cell: a combination is named whole, a partial explanation
    says how much it explains, and nothing named says so."""
    def run(text):
        return {"diagnosis": text}

    whole = run("trajectory matches a.x + a.y: title — summary (who; src)")
    assert docs._short_diagnosis([whole, whole]) == "matches a.x + a.y"
    part = run("trajectory matches a.x [explains 8 of 12 failing runs]: t — s (w; s)\nwhat remains: c[float32]")
    assert docs._short_diagnosis([part]) == "partly matches a.x (8 of 12 failing runs); the rest localised"
    assert docs._short_diagnosis([run("no known variant explains c[float32]")]) == "no catalogued variant explains it"
