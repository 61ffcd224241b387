"""The main job pays for nothing it does not use: a verdict on torch.optim.Adam, run as a user runs
it (a fresh process in an empty folder), loads no generation-time or optional heavy library beyond
those torch itself loads when it builds its first optimizer (torch._dynamo brings SymPy, mpmath
and tqdm), and Hypothesis' pytest plugin (installed with the [test] extra) does not import
Hypothesis into it.
Timings are measured by ``python -m optimizer_conformance.conformance.startup``, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
