"""The main job pays for nothing it does not use: a verdict on torch.optim.Adam, run as a user runs
it (a fresh process in an empty folder), loads no generation-time or optional heavy library beyond
those torch itself loads when it builds its first optimizer (torch._dynamo brings SymPy, mpmath
and tqdm), and Hypothesis' pytest plugin (installed with the [test] extra) does not import
Hypothesis into it.
Timings are measured by ``python -m optimizer_conformance.conformance.startup``, not here.

And the README's main job works with what its own line installs: run where the README runs it (the
repository root, whose pytest configuration loads tests/conftest.py), with every library that
``pip install -e ".[torch]"`` would not bring made unimportable."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.test_readme import readme_commands
    from tests.test_tutorial import _pytest_script
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path (rootdir-relative)
    from test_readme import readme_commands
    from test_tutorial import _pytest_script

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("sympy", "mpmath", "hypothesis", "matplotlib", "jsonschema", "tqdm", "jax", "keras", "tensorflow",
         "selenium")

CONFTEST = f'''
import json, sys

def pytest_unconfigure(config):
    with open("loaded.json", "w") as fh:
        json.dump(sorted(m for m in {HEAVY!r} if m in sys.modules), fh)
'''


def _loaded_by_torch_itself() -> set[str]:
    code = ("import json, sys, torch; torch.optim.Adam([torch.zeros(1, requires_grad=True)]); "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return set(json.loads(out.stdout))


def test_a_verdict_loads_no_heavy_library(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             "--optimizer=torch.optim.Adam", "-k", "defaults"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: CONFORMS" in result.stdout
    loaded = set(json.loads((tmp_path / "loaded.json").read_text()))
    assert "hypothesis" not in loaded
    assert loaded - _loaded_by_torch_itself() == set()


def test_a_numpy_verdict_does_not_import_torch(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST.replace(f"{HEAVY!r}", repr(HEAVY + ("torch",))),
                                          encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             "--optimizer=optimizer_conformance.reference.Adam"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: CONFORMS" in result.stdout
    assert json.loads((tmp_path / "loaded.json").read_text()) == []


def _installed_by(project: str, extras: set[str]) -> set[str]:
    """The distributions that ``pip install project[extras]`` brings, as installed here: the
    project's requirements for those extras, and theirs, transitively (canonical names)."""
    seen, todo = set(), [(project, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        key = (canonicalize_name(name), wanted)
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # an optional dependency of a dependency, not installed here
        for text in requires:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


# A sitecustomize.py that leaves installed only the distributions named in ONLY_INSTALLED (a JSON
# list of canonical names): behind it, the import system finds no top-level module that only other
# distributions provide (an import fails, importlib.util.find_spec gives None), and
# importlib.metadata lists none of the others (so pytest autoloads only their plugins). It says so
# on stderr, and lists there what the run tried to import and did not find, for a failure's message.
_ONLY_INSTALLED = """
import importlib.metadata as md, json, os, re, sys
allowed = set(json.loads(os.environ['ONLY_INSTALLED']))
canonical = lambda name: re.sub(r'[-_.]+', '-', name).lower()
absent = {m for m, dists in md.packages_distributions().items() if not any(canonical(d) in allowed for d in dists)}
class OnlyInstalled:
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in absent:
            print('not installed:', name, file=sys.stderr)
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target) if hasattr(finder, 'find_spec') else None
            if spec is not None:
                return spec
        return None
    def find_distributions(self, *args, **kwargs):
        for finder in self.finders:
            for dist in getattr(finder, 'find_distributions', lambda *a, **k: ())(*args, **kwargs):
                if canonical(dist.metadata['Name'] or '') in allowed:
                    yield dist
sys.meta_path[:] = [OnlyInstalled(list(sys.meta_path))]
print(f'only installed: {len(allowed)} distributions', file=sys.stderr)
"""


def test_the_readme_main_job_runs_with_what_its_line_installs(tmp_path):
    """`pip install -e ".[torch]" && pytest --optimizer=torch.optim.Adam` in a clone: the
    README's first line, with only what it installs. Found on a fresh virtual environment: the
    project's conftest imported Hypothesis (the [test] extra) and the main job ended with exit 4."""
    install, _, command = readme_commands()[0].partition("&&")
    extras = set(re.search(r'-e "\.\[([^\]]*)\]"', install).group(1).split(","))
    allowed = _installed_by("optimizer-conformance", extras)
    assert {"torch", "numpy", "pytest"} <= allowed and "hypothesis" not in allowed, sorted(allowed)
    (tmp_path / "sitecustomize.py").write_text(_ONLY_INSTALLED, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    env.update(PYTHONPATH=str(tmp_path), ONLY_INSTALLED=json.dumps(sorted(allowed)))
    argv = command.split()
    assert argv[0] == "pytest", command
    result = subprocess.run([_pytest_script(), *argv[1:], "-k", "defaults", "-p", "no:cacheprovider"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert f"only installed: {len(allowed)} distributions" in result.stderr, out  # in force
    assert result.returncode == 0, out
    assert "verdict: CONFORMS" in result.stdout, out
