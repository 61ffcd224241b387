"""The harness cannot be crashed or fooled: bad candidates, bad options, bad and tampered goldens.

Every case asserts the exit status, the one line that says what is wrong (for a usage error: the
only ``ERROR:`` line, exit 4) and the absence of INTERNALERROR and of any traceback. Candidates
that kill their process, hang or raise BaseException run in the candidate process
(``conformance/isolation.py``) and get a verdict; the run, its summary and its report go on.

Runs are in-process (pytester.runpytest_inprocess: the candidate process is forked from the test
process), except the tampered goldens, which need their own copy of the package (a subprocess
with that copy first on PYTHONPATH). ``python tests/test_bad_inputs.py`` prints the table of the
cases by category.
"""

from __future__ import annotations

import json
import multiprocessing.heap  # noqa: F401  (the spawned candidate process pickles shared memory)
import multiprocessing.popen_spawn_posix  # noqa: F401
import multiprocessing.sharedctypes  # noqa: F401
import os
import subprocess
from pathlib import Path

import numpy  # noqa: F401  (in-process pytester restores sys.modules: import these up front)
import optimizer_conformance.conformance.isolation
import optimizer_conformance.conformance.plugin
import optimizer_conformance.conformance.preflight
import optimizer_conformance.conformance.report
import optimizer_conformance.conformance.runner
import optimizer_conformance.reference  # noqa: F401
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.plugin_only import ENV, pytest_command
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path (rootdir-relative)
    from plugin_only import ENV, pytest_command

for _kw in ({}, {"foreach": True}):  # torch imports dynamo on its first optimizer: once, up front
    _p = torch.zeros(2, requires_grad=True)
    _p.grad = torch.ones(2)
    torch.optim.Adam([_p], lr=0.1, **_kw).step()

ONE = ["-k", "defaults and float32"]  # one case: adam/defaults[float32-cpu]

# -- candidates ------------------------------------------------------------------------------------
TORCH_HEAD = "import os, sys, signal, time, ctypes, torch\n"


def torch_step(body: str, after: str = "") -> str:
    """A torch.optim.Adam whose step() runs ``body`` (``n``: the step number, from 1)."""
    return (TORCH_HEAD + "class Adam(torch.optim.Adam):\n"
            "    n = 0\n"
            "    def step(self, closure=None):\n"
            "        type(self).n += 1\n        n = type(self).n\n"
            + "".join(f"        {line}\n" for line in body.splitlines())
            + "        out = super().step(closure)\n"
            + "".join(f"        {line}\n" for line in after.splitlines())
            + "        return out\n")


NP_HEAD = "import os, sys, numpy as np\nfrom optimizer_conformance.reference import Adam as _Ref\n"


def numpy_step(body: str) -> str:
    """The NumPy reference Adam whose step() runs ``body`` after the real step (``arrays``: its params)."""
    return (NP_HEAD + "class Adam(_Ref):\n"
            "    def __init__(self, params, **kw):\n        super().__init__(params, **kw)\n"
            "        self.arrays = params\n"
            "    def step(self, grads):\n        out = super().step(grads)\n"
            + "".join(f"        {line}\n" for line in body.splitlines())
            + "        return out\n")


DIED = "candidate process died with"
FAILED = "verdict: DOES NOT CONFORM"

# (id, module source, extra args, exit status, text of the verdict or error line)
RUNTIME = [
    ("raise-RuntimeError", torch_step("raise RuntimeError('boom')"), [], 1, "step 1: step() raised RuntimeError: boom"),
    ("raise-at-step-3", torch_step("if n == 3: raise ValueError('late')"), [], 1, "step 3: step() raised ValueError"),
    ("sys-exit-0", torch_step("sys.exit(0)"), [], 1, "step() raised SystemExit"),
    ("sys-exit-3", torch_step("sys.exit(3)"), [], 1, "step() raised SystemExit: 3"),
    ("KeyboardInterrupt", torch_step("raise KeyboardInterrupt"), [], 1, "the candidate raised KeyboardInterrupt"),
    ("GeneratorExit", torch_step("raise GeneratorExit"), [], 1, "step() raised GeneratorExit"),
    ("BaseException", torch_step("raise BaseException('odd')"), [], 1, "the candidate raised BaseException: odd"),
    ("RecursionError", torch_step("def f(): return f()\nf()"), [], 1, "step() raised RecursionError"),
    ("MemoryError", torch_step("raise MemoryError"), [], 1, "step() raised MemoryError"),
    ("os-exit-0", torch_step("os._exit(0)"), [], 1, f"{DIED.replace(' died with', '')} exited with status 0 at step 1"),
    ("os-exit-7-at-3", torch_step("if n == 3: os._exit(7)"), [], 1, "exited with status 7 at step 3 of case adam/defaults"),
    ("SIGSEGV-kill", torch_step("os.kill(os.getpid(), signal.SIGSEGV)"), [], 1, f"{DIED} SIGSEGV at step 1"),
    ("SIGSEGV-null-read", torch_step("if n == 2: ctypes.string_at(0)"), [], 1, f"{DIED} SIGSEGV at step 2"),
    ("SIGKILL", torch_step("os.kill(os.getpid(), signal.SIGKILL)"), [], 1, f"{DIED} SIGKILL at step 1"),
    ("SIGABRT", torch_step("os.abort()"), [], 1, f"{DIED} SIGABRT at step 1"),
    ("SIGTERM", torch_step("os.kill(os.getpid(), signal.SIGTERM)"), [], 1, f"{DIED} SIGTERM at step 1"),
    ("SIGBUS", torch_step("os.kill(os.getpid(), signal.SIGBUS)"), [], 1, f"{DIED} SIGBUS at step 1"),
    ("SIGFPE", torch_step("os.kill(os.getpid(), signal.SIGFPE)"), [], 1, f"{DIED} SIGFPE at step 1"),
    ("SIGINT-self", torch_step("os.kill(os.getpid(), signal.SIGINT)"), [], 0, "verdict: CONFORMS"),
    ("sleep-hang", torch_step("time.sleep(60)"), ["--optimizer-timeout=1"], 1, "did not finish the case within 1 s"),
    ("busy-hang-at-2", torch_step("while n == 2: pass"), ["--optimizer-timeout=1"], 1, "(killed at step 2)"),
    ("shape-change", torch_step("", "for g in self.param_groups:\n    for p in g['params']:\n"
                                "        p.data = torch.zeros(7, dtype=p.dtype)"), [], 1,
     "step 1: step() changed param"),
    ("nan-params", torch_step("", "for g in self.param_groups:\n    for p in g['params']:\n"
                              "        p.data.fill_(float('nan'))"), [], 1, "non-finite value (nan)"),
    ("inf-params", torch_step("", "for g in self.param_groups:\n    for p in g['params']:\n"
                              "        p.data.fill_(float('inf'))"), [], 1, "non-finite value (inf)"),
    ("wrong-numbers", torch_step("", "for g in self.param_groups:\n    for p in g['params']:\n"
                                 "        p.data.add_(1e-3)"), [], 1, FAILED),
    ("returns-junk", torch_step("", "out = 'junk'"), [], 0, "verdict: CONFORMS"),
    ("prints-a-lot", torch_step("print('x' * 10000)"), [], 0, "verdict: CONFORMS"),
    ("closes-stdout", torch_step("os.close(1) if n == 5 else None"), [], 0, "verdict: CONFORMS"),
    ("grad-set-None", torch_step("", "for g in self.param_groups:\n    for p in g['params']:\n"
                                 "        p.grad = None"), [], 0, "verdict: CONFORMS"),
    ("np-wrong-size", numpy_step("self.arrays[0].resize(0, refcheck=False) if False else None\n"
                                 "return [np.zeros(3)] * len(self.arrays)"), [], 1, "changed param"),
    ("np-returns-strings", numpy_step("return ['a'] * len(self.arrays)"), [], 1, "step 1: step() raised"),
    ("np-sys-exit", numpy_step("sys.exit(1)"), [], 1, "step() raised SystemExit"),
    ("np-os-exit", numpy_step("os._exit(1)"), [], 1, "exited with status 1 at step 1"),
    ("np-wrong-numbers", numpy_step("for a in self.arrays:\n    a += 1e-3"), [], 1, FAILED),
    ("ctor-raises-on-amsgrad", TORCH_HEAD + "class Adam(torch.optim.Adam):\n"
     "    def __init__(self, params, amsgrad=False, **kw):\n"
     "        if amsgrad: raise RuntimeError('no amsgrad')\n"
     "        super().__init__(params, amsgrad=amsgrad, **kw)\n", ["-k", "amsgrad and float32"], 1,
     "cannot construct: RuntimeError: no amsgrad"),
    ("state-dict-raises", TORCH_HEAD + "class Adam(torch.optim.Adam):\n"
     "    def state_dict(self): raise RuntimeError('no state')\n", ["-k", "resume and float32"], 1,
     "state_dict/load_state_dict raised RuntimeError: no state"),
]

IMPORT = [
    ("SyntaxError", "def (:\n", [], "SyntaxError: invalid syntax"),
    ("RuntimeError-at-import", "raise RuntimeError('no import')\n", [], "raised RuntimeError: no import"),
    ("sys-exit-0-at-import", "import sys\nsys.exit(0)\n", [], "raised SystemExit"),
    ("sys-exit-2-at-import", "import sys\nsys.exit(2)\n", [], "raised SystemExit: 2"),
    ("KeyboardInterrupt-at-import", "raise KeyboardInterrupt\n", [], "raised KeyboardInterrupt"),
    ("GeneratorExit-at-import", "raise GeneratorExit\n", [], "GeneratorExit"),
    ("BaseException-at-import", "raise BaseException('odd')\n", [], "BaseException: odd"),
    ("ImportError-of-a-dependency", "import no_such_dependency_xyz\n", [], "no_such_dependency_xyz"),
    ("os-exit-at-import", "import os\nos._exit(3)\n", [], "exited with status 3 while importing"),
    ("SIGSEGV-at-import", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", [],
     "died with SIGSEGV while importing"),
    ("sleep-at-import", "import time\ntime.sleep(60)\n", ["--optimizer-timeout=1"],
     "importing the candidate did not finish within 1 s"),
    ("busy-loop-at-import", "while True:\n    pass\n", ["--optimizer-timeout=1"],
     "importing the candidate did not finish within 1 s"),
    ("RecursionError-at-import", "def f(): return f()\nf()\n", [], "RecursionError"),
    ("ctor-TypeError", TORCH_HEAD + "class Adam(torch.optim.Adam):\n"
     "    def __init__(self, params, **kw): raise TypeError('bad ctor')\n", [], "cannot construct: TypeError: bad ctor"),
    ("ctor-os-exit", TORCH_HEAD + "class Adam(torch.optim.Adam):\n"
     "    def __init__(self, params, **kw): os._exit(5)\n", [], "exited with status 5 while the candidate was built"),
    ("ctor-SystemExit", TORCH_HEAD + "class Adam(torch.optim.Adam):\n"
     "    def __init__(self, params, **kw): sys.exit(5)\n", [], "building the candidate raised SystemExit"),
    ("ctor-hang", TORCH_HEAD + "class Adam(torch.optim.Adam):\n"
     "    def __init__(self, params, **kw): time.sleep(60)\n", ["--optimizer-timeout=1"],
     "building the candidate did not finish within 1 s"),
    ("no-step-class", "class Adam:\n    def __init__(self, params, lr=0.1): pass\n", [], "class Adam has no step()"),
    ("factory-returns-None", "def Adam(params, lr=0.1):\n    return None\n", [], "returned a NoneType with no step()"),
    ("factory-returns-int", "def Adam(params, lr=0.1):\n    return 3\n", [], "returned a int with no step()"),
    ("conformance_api-bogus", "class Adam:\n    conformance_api = 'bogus'\n    def step(self, g): pass\n", [],
     "declares conformance_api='bogus'"),
    ("conformance_api-int", "class Adam:\n    conformance_api = 42\n    def step(self, g): pass\n", [],
     "declares conformance_api=42"),
    ("conformance_spec-unknown", "class Adam:\n    conformance_spec = 'nope'\n    def step(self, g): pass\n", [],
     "--optimizer-spec='nope': unknown spec"),
    ("conformance_spec-int", "class Adam:\n    conformance_spec = 12\n    def step(self, g): pass\n", [],
     "--optimizer-spec=12: unknown spec"),
    ("not-callable", "Adam = 3\n", [], "int object is not callable"),
]

NOT_AN_OPTIMIZER = [  # (id, --optimizer, error text)
    ("OrderedDict", "collections.OrderedDict", "not an optimizer"),
    ("print", "builtins.print", "not an optimizer"),
    ("dict", "builtins.dict", "not an optimizer"),
    ("Fraction", "fractions.Fraction", "not an optimizer"),
    ("missing-module", "no_such_module_xyz.Adam", "cannot import module 'no_such_module_xyz'"),
    ("missing-attribute", "collections.NoSuchAdam", "has no attribute 'NoSuchAdam'"),
    ("no-dot", "Adam", "expected a dotted path"),
    ("trailing-dot", "torch.optim.", "expected a dotted path"),
    ("empty-factory", "torch.optim:", "expected a dotted path"),
    ("name-infers-no-spec", "collections.Counter", "cannot infer the spec"),
]

ADAM = ["--optimizer=torch.optim.Adam"]
OPTIONS = [  # (id, args, exit status, error text)
    ("timeout-0", [*ADAM, "--optimizer-timeout=0"], 4, "--optimizer-timeout=0: expected a number of seconds > 0"),
    ("timeout-negative", [*ADAM, "--optimizer-timeout=-1"], 4, "expected a number of seconds > 0"),
    ("timeout-nan", [*ADAM, "--optimizer-timeout=nan"], 4, "expected a number of seconds > 0"),
    ("timeout-inf", [*ADAM, "--optimizer-timeout=inf"], 4, "expected a number of seconds > 0"),
    ("timeout-text", [*ADAM, "--optimizer-timeout=abc"], 4, "--optimizer-timeout=abc: expected a number"),
    ("kwargs-not-json", [*ADAM, "--optimizer-kwargs={foreach: 1}"], 4, "--optimizer-kwargs is not valid JSON"),
    ("kwargs-a-list", [*ADAM, "--optimizer-kwargs=[1]"], 4, "must be a JSON object"),
    ("kwargs-a-string", [*ADAM, '--optimizer-kwargs="x"'], 4, "must be a JSON object"),
    ("kwargs-unknown-key", [*ADAM, '--optimizer-kwargs={"foo": 1}'], 4, "Adam does not accept 'foo'"),
    ("kwargs-typo", [*ADAM, '--optimizer-kwargs={"forach": false}'], 4, "does not accept 'forach'"),
    ("kwargs-lr", [*ADAM, '--optimizer-kwargs={"lr": 5}'], 4, "'lr' is a setting of spec 'adam'"),
    ("kwargs-betas", [*ADAM, '--optimizer-kwargs={"betas": [0.5, 0.5]}'], 4, "'betas' is a setting"),
    ("kwargs-amsgrad", [*ADAM, '--optimizer-kwargs={"amsgrad": true}'], 4, "'amsgrad' is a setting"),
    ("kwargs-weight-decay", [*ADAM, '--optimizer-kwargs={"weight_decay": 1}'], 4, "'weight_decay' is a setting"),
    ("kwargs-params", [*ADAM, '--optimizer-kwargs={"params": []}'], 4, "cannot construct"),
    ("kwargs-numpy-unknown", ["--optimizer=optimizer_conformance.reference.Adam",
                              '--optimizer-kwargs={"foreach": false}'], 4, "Adam does not accept 'foreach'"),
    ("kwargs-bad-value", [*ADAM, '--optimizer-kwargs={"foreach": "maybe", "fused": "x"}'], 4, "cannot construct"),
    ("device-meta", [*ADAM, "--optimizer-device=meta"], 4, "--optimizer-device='meta': expected cpu, cuda or cuda:N"),
    ("device-xyz", [*ADAM, "--optimizer-device=xyz"], 4, "expected cpu, cuda or cuda:N"),
    ("device-empty", [*ADAM, "--optimizer-device="], 4, "expected cpu, cuda or cuda:N"),
    ("device-CPU", [*ADAM, "--optimizer-device=CPU"], 4, "expected cpu, cuda or cuda:N"),
    ("device-cuda-x", [*ADAM, "--optimizer-device=cuda:x"], 4, "expected cpu, cuda or cuda:N"),
    ("device-numpy-cuda", ["--optimizer=optimizer_conformance.reference.Adam", "--optimizer-device=cuda"], 4,
     "only torch candidates run on a device other than cpu"),
    ("dtype-float8", [*ADAM, "--optimizer-dtype=float8"], 4, "--optimizer-dtype='float8': expected one of"),
    ("dtype-int32", [*ADAM, "--optimizer-dtype=float32,int32"], 4, "--optimizer-dtype='int32'"),
    ("spec-unknown", [*ADAM, "--optimizer-spec=nope"], 4, "--optimizer-spec='nope': unknown spec"),
    ("accept-unknown", [*ADAM, "--optimizer-accept=adam.nope"], 4, "not a catalogued variant of spec 'adam'"),
    ("accept-other-spec", [*ADAM, "--optimizer-accept=sgd.nesterov_dampening"], 4, "not a catalogued variant"),
    ("report-missing-dir", [*ADAM, "--optimizer-report=no/such/dir/r.json"], 4, "does not exist"),
    ("report-is-a-dir", [*ADAM, "--optimizer-report=."], 4, "is a directory"),
    ("xfails-missing", [*ADAM, "--optimizer-xfails=nope.txt"], 4, "cannot read the file"),
    ("xfails-a-dir", [*ADAM, "--optimizer-xfails=."], 4, "cannot read the file"),
    ("xfails-not-utf8", [*ADAM, "--optimizer-xfails=latin1.txt"], 4, "not UTF-8 text"),
    ("contract-numpy", ["--optimizer=optimizer_conformance.reference.Adam", "--optimizer-contract"], 4,
     "--optimizer-contract: the contract is torch.optim's"),
    ("contract-lbfgs", ["--optimizer=torch.optim.LBFGS", "--optimizer-contract"], 4, "step(closure)"),
    ("k-selects-nothing", [*ADAM, "-k", "no_such_case_xyz"], 5, "no case selected"),
]

# The candidate process in the modes that once ran the candidate in pytest's own process: a
# conftest that builds the candidate, the --optimizer-contract checks, and a spawned process (the
# CUDA path, forced on the CPU by OPTIMIZER_CONFORMANCE_START_METHOD=spawn).
HOOK_CONFTEST = ("import os, signal, torch\n"
                 "def pytest_optimizer_conformance_build(spec, case, params, hyperparameters, dtype, device):\n"
                 "    class Adam(torch.optim.Adam):\n"
                 "        def step(self, closure=None):\n"
                 "            {body}\n"
                 "            return super().step(closure)\n"
                 "    return Adam(params)\n")
ZERO_GRAD_DIES = TORCH_HEAD + ("class Adam(torch.optim.Adam):\n"
                               "    def zero_grad(self, set_to_none=True):\n"
                               "        {body}\n")
MODES = [  # (id, conftest or None, module source, env, extra args, status, text)
    ("hook-SIGSEGV", HOOK_CONFTEST.format(body="os.kill(os.getpid(), signal.SIGSEGV)"), "from torch.optim import Adam\n",
     {}, [], 1, f"{DIED} SIGSEGV at step 1 of case adam/defaults"),
    ("hook-os-exit", HOOK_CONFTEST.format(body="os._exit(9)"), "from torch.optim import Adam\n",
     {}, [], 1, "exited with status 9 at step 1 of case adam/defaults"),
    ("hook-sys-exit", HOOK_CONFTEST.format(body="raise SystemExit(2)"), "from torch.optim import Adam\n",
     {}, [], 1, "step 1: step() raised SystemExit: 2"),
    ("contract-SIGSEGV", None, ZERO_GRAD_DIES.format(body="os.kill(os.getpid(), signal.SIGSEGV)"), {},
     ["--optimizer-contract", "-k", "zero_grad and float32"], 1,
     "contract zero_grad broken: the candidate process died with SIGSEGV in contract check zero_grad"),
    ("contract-sys-exit", None, ZERO_GRAD_DIES.format(body="sys.exit(3)"), {},
     ["--optimizer-contract", "-k", "zero_grad and float32"], 1,
     "contract zero_grad broken: the candidate raised SystemExit: 3"),
    ("contract-hang", None, ZERO_GRAD_DIES.format(body="time.sleep(60)"), {},
     ["--optimizer-contract", "-k", "zero_grad and float32", "--optimizer-timeout=1"], 1,
     "did not finish the check within 1 s"),
    ("spawn-SIGSEGV", None, torch_step("if n == 2: os.kill(os.getpid(), signal.SIGSEGV)"),
     {"OPTIMIZER_CONFORMANCE_START_METHOD": "spawn"}, [], 1, f"{DIED} SIGSEGV at step 2 of case adam/defaults"),
    ("spawn-conforms", None, "from torch.optim import Adam\n",
     {"OPTIMIZER_CONFORMANCE_START_METHOD": "spawn"}, [], 0, "verdict: CONFORMS"),
]

CATEGORIES = {
    "run-time candidate (verdict)": [c[0] for c in RUNTIME],
    "conftest hook / contract / spawned process (verdict)": [c[0] for c in MODES],
    "import/build-time candidate (exit 4)": [c[0] for c in IMPORT],
    "not an optimizer / bad path (exit 4)": [c[0] for c in NOT_AN_OPTIMIZER],
    "bad option (exit 4 / 5)": [c[0] for c in OPTIONS],
}


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


def _one_case(args: list[str]) -> list[str]:
    """The case's own options, on one case (adam/defaults[float32-cpu]) unless they select cases
    themselves: a candidate that hangs costs the timeout once, not once per case."""
    return [*args, *ONE] if "-k" not in args else list(args)


def assert_clean(result: pytest.RunResult, status: int, text: str) -> None:
    """The exit status; for a usage error the one ERROR line holding ``text``, else ``text`` in a
    line of the output; never INTERNALERROR or a traceback."""
    out, err = result.stdout.str(), result.stderr.str()
    assert "INTERNALERROR" not in out + err, out + err
    assert "Traceback (most recent call last)" not in out + err, out + err
    assert result.ret == status, out + err
    if status == 4:
        errors = [line for line in err.splitlines() if line.startswith("ERROR:")]
        assert len(errors) == 1, err
        assert text in errors[0], err
        assert [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("ERROR:", "  "))] == [], err
    else:
        assert any(text in line for line in out.splitlines()), out


@pytest.mark.parametrize(("source", "args", "status", "text"),
                         [pytest.param(*c[1:], id=c[0]) for c in RUNTIME])
def test_runtime_candidate_gets_a_verdict(pytester, source, args, status, text):
    pytester.makepyfile(bad_adam=source)
    pytester.syspathinsert()
    report = pytester.path / "r.json"
    result = _run(pytester, "--optimizer=bad_adam.Adam", "--optimizer-spec=adam", *_one_case(args),
                  f"--optimizer-report={report}")
    assert_clean(result, status, text)
    doc = json.loads(report.read_text())
    assert doc["cases"], doc  # the report has the case's verdict
    if DIED in text or "exited with status" in text:
        assert doc["complete"] is False and doc["reason"].startswith("the candidate process died in")


@pytest.mark.parametrize(("conftest", "source", "env", "args", "status", "text"),
                         [pytest.param(*c[1:], id=c[0]) for c in MODES])
def test_candidate_process_in_every_mode(pytester, monkeypatch, conftest, source, env, args, status, text):
    """A conftest-built candidate, a contract check and a spawned candidate process: a crash is
    the verdict of its case or check, never the end of the run."""
    if conftest:
        pytester.makeconftest(conftest)
    pytester.makepyfile(bad_adam=source)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    report = pytester.path / "r.json"
    result = _run(pytester, "--optimizer=bad_adam.Adam", "--optimizer-spec=adam", *_one_case(args),
                  f"--optimizer-report={report}")
    assert_clean(result, status, text)
    doc = json.loads(report.read_text())
    if DIED in text or "exited with status" in text:
        assert doc["complete"] is False and doc["reason"].startswith("the candidate process died in")


@pytest.mark.parametrize(("source", "args", "text"), [pytest.param(*c[1:], id=c[0]) for c in IMPORT])
def test_import_or_build_time_failure_is_a_usage_error(pytester, source, args, text):
    pytester.makepyfile(bad_adam=source)
    pytester.syspathinsert()
    result = _run(pytester, "--optimizer=bad_adam.Adam", *args)
    assert_clean(result, 4, text)


@pytest.mark.parametrize(("path", "text"), [pytest.param(*c[1:], id=c[0]) for c in NOT_AN_OPTIMIZER])
def test_not_an_optimizer_is_refused(pytester, path, text):
    result = _run(pytester, f"--optimizer={path}", "--optimizer-spec=adam" if "Counter" not in path else "-q")
    assert_clean(result, 4, text)


@pytest.mark.parametrize(("args", "status", "text"), [pytest.param(*c[1:], id=c[0]) for c in OPTIONS])
def test_bad_option(pytester, args, status, text):
    (pytester.path / "latin1.txt").write_bytes("adam/défaults\n".encode("latin-1"))
    result = _run(pytester, *args)
    assert_clean(result, status, text)


def test_killed_candidate_leaves_a_complete_run_and_an_incomplete_report(pytester):
    """Three cases, the candidate process dies in the second: the first and third still get
    their verdicts (the process is restarted), the report says it is incomplete and why."""
    pytester.makepyfile(bad_adam=TORCH_HEAD + "class Adam(torch.optim.Adam):\n"
                        "    def step(self, closure=None):\n"
                        "        if any(p.dtype == torch.float64 for g in self.param_groups for p in g['params']):\n"
                        "            os.kill(os.getpid(), signal.SIGSEGV)\n"
                        "        return super().step(closure)\n")
    pytester.syspathinsert()
    report = pytester.path / "r.json"
    result = _run(pytester, "--optimizer=bad_adam.Adam", "-k", "defaults or amsgrad",
                  f"--optimizer-report={report}")
    assert_clean(result, 1, "INCOMPLETE: the candidate process died in")
    doc = json.loads(report.read_text())
    outcomes = {(c["id"], c["dtype"]): c["outcome"] for c in doc["cases"]}
    assert {o for (_, d), o in outcomes.items() if d == "float32"} == {"passed"}
    assert {o for (_, d), o in outcomes.items() if d == "float64"} == {"failed"}
    assert doc["complete"] is False
    assert "died with SIGSEGV at step 1 of case" in doc["reason"]


DIES_IN_FLOAT64 = TORCH_HEAD + ("class Adam(torch.optim.Adam):\n"
                                 "    def step(self, closure=None):\n"
                                 "        if any(p.dtype == torch.float64 for g in self.param_groups for p in g['params']):\n"
                                 "            {body}\n"
                                 "        return super().step(closure)\n")


def test_crashed_xdist_worker_marks_its_cases_and_the_report(pytester):
    """With the candidate in the worker itself (OPTIMIZER_CONFORMANCE_IN_PROCESS=1), os._exit
    kills the pytest-xdist worker: its case is failed with the worker's crash as the reason, the
    verdict is not CONFORMS, and the report says it is incomplete and why."""
    pytester.makepyfile(bad_adam=DIES_IN_FLOAT64.format(body="os._exit(3)"))
    report = pytester.path / "r.json"
    env = {**os.environ, **ENV, "OPTIMIZER_CONFORMANCE_IN_PROCESS": "1", "PYTHONPATH": str(pytester.path)}
    proc = subprocess.run(pytest_command("-n", "1", "--optimizer=bad_adam.Adam", "-k", "defaults",
                                         f"--optimizer-report={report}", xdist=True),
                          cwd=pytester.path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "INTERNALERROR" not in out and "verdict: CONFORMS" not in out, out
    assert "INCOMPLETE: 1 pytest-xdist worker crash(es)" in out, out
    doc = json.loads(report.read_text())
    outcomes = {c["dtype"]: c["outcome"] for c in doc["cases"]}
    assert outcomes == {"float32": "passed", "float64": "failed"}, doc["cases"]
    assert doc["complete"] is False and "crashed while running" in doc["reason"], doc["reason"]


def test_report_of_a_killed_run_keeps_the_cases_so_far(pytester):
    """pytest itself killed with SIGKILL mid-run: the report, rewritten as cases come in, holds
    the cases already checked and says the run did not finish; no candidate process is left."""
    pytester.makepyfile(bad_adam=TORCH_HEAD + "class Adam(torch.optim.Adam):\n"
                        "    def step(self, closure=None):\n"
                        "        if any(p.dtype == torch.float64 for g in self.param_groups for p in g['params']):\n"
                        "            open('hanging', 'w').close(); time.sleep(600)\n"
                        "        return super().step(closure)\n")
    report = pytester.path / "r.json"
    env = {**os.environ, **ENV, "PYTHONPATH": str(pytester.path)}
    proc = subprocess.Popen(pytest_command("--optimizer=bad_adam.Adam", "-k", "defaults", "--optimizer-timeout=600",
                                           f"--optimizer-report={report}"),
                            cwd=pytester.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time

        deadline = time.monotonic() + 120
        while not (pytester.path / "hanging").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (pytester.path / "hanging").exists(), "the float64 case never started"
        candidate = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                     text=True).stdout.split()]
    finally:
        proc.kill()
        proc.wait(30)
    doc = json.loads(report.read_text())
    assert doc["complete"] is False and doc["reason"].startswith("the run has not finished"), doc["reason"]
    assert [(c["dtype"], c["outcome"]) for c in doc["cases"]] == [("float32", "passed")]
    time.sleep(0.5)
    alive = [pid for pid in candidate if Path(f"/proc/{pid}").exists()
             and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]
    assert candidate and alive == [], f"candidate process(es) left behind: {alive}"


def test_exitfirst_report_is_marked_incomplete(pytester):
    pytester.makepyfile(bad_adam=torch_step("raise RuntimeError('x')"))
    pytester.syspathinsert()
    report = pytester.path / "r.json"
    result = _run(pytester, "--optimizer=bad_adam.Adam", "-x", f"--optimizer-report={report}")
    assert result.ret == 1
    doc = json.loads(report.read_text())
    assert doc["complete"] is False and doc["reason"].startswith("stopped early")
    assert len(doc["cases"]) == 1


def test_xfails_are_counted_as_such(pytester):
    pytester.makepyfile(bad_adam=torch_step("raise RuntimeError('x')"))
    pytester.syspathinsert()
    pytester.makefile(".txt", xfails="adam/defaults[float32\n")
    report = pytester.path / "r.json"
    result = _run(pytester, "--optimizer=bad_adam.Adam", "-k", "defaults",
                  "--optimizer-xfails=xfails.txt", f"--optimizer-report={report}")
    result.assert_outcomes(failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*0 passed, 1 failed, 1 xfailed, 0 skipped*"])
    assert json.loads(report.read_text())["summary"] == {"passed": 0, "failed": 1, "skipped": 0,
                                                         "xfailed": 1, "xpassed": 0}


# -- tampered goldens: a copy of the package whose golden folder is symlinks, one file replaced -----
PKG = Path(optimizer_conformance.conformance.plugin.__file__).resolve().parents[1]  # the source tree
GOLDEN = PKG / "conformance" / "golden"
BAD_NUMPY = numpy_step("for a in self.arrays:\n    a += 1e-3")  # fails every case, by 1e-3


TAMPERED_SPECS = ("adam", "sgd")  # the golden folders whose files the tests below replace


def _package_copy(root: Path) -> Path:
    """``root/optimizer_conformance``: conformance/ of symlinks, the rest linked. In golden/, the
    folders of TAMPERED_SPECS are real folders of file links (replacing a file there replaces the
    link, never the file it points to); every other spec's folder is one link (not one per file:
    700 fewer links a copy, ~0.25 s each time here)."""
    pkg = root / "optimizer_conformance"
    (pkg / "conformance").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("derivations", "reference"):
        (pkg / name).symlink_to(PKG / name)
    source = PKG / "conformance"
    for top, dirs, files in os.walk(source):
        here = Path(top)
        out = pkg / "conformance" / here.relative_to(source)
        out.mkdir(exist_ok=True)
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if here == GOLDEN:
            for d in dirs:
                if d not in TAMPERED_SPECS:
                    (out / d).symlink_to(here / d, target_is_directory=True)
            dirs[:] = [d for d in dirs if d in TAMPERED_SPECS]
        for f in files:
            (out / f).symlink_to(here / f)
    return pkg / "conformance" / "golden"


def _replace(golden: Path, rel: str, data: bytes | None) -> None:
    target = golden / rel
    assert not target.parent.is_symlink(), f"{rel}: in a linked folder: replacing it would change the source"
    target.unlink()
    if data is not None:
        target.write_bytes(data)


def _json_edit(rel: str, edit) -> tuple[str, bytes]:
    doc = json.loads((GOLDEN / rel).read_text(encoding="utf-8"))
    edit(doc)
    return rel, json.dumps(doc, indent=1, ensure_ascii=False).encode()


def _first_digit_changed(rel: str, marker: str) -> tuple[str, bytes]:
    text = (GOLDEN / rel).read_text(encoding="utf-8")
    i = text.index(marker) + len(marker)
    while not text[i].isdigit() or text[i] == "0":
        i += 1
    return rel, (text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]).encode()


def _scale_bounds(doc: dict) -> None:
    """Every error bound ×10¹² (the tolerances with them)."""
    def scale(x):
        if isinstance(x, str):
            return repr(float(x) * 1e12)
        if isinstance(x, list):
            return [scale(v) for v in x]
        if isinstance(x, dict):
            return {k: scale(v) for k, v in x.items()}
        return x

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "bound":
                    x[k] = scale(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(doc)


def _acceptable(doc: dict) -> None:
    for v in doc["specs"]["adam"]["variants"]:
        v["acceptable"] = True


def _lr(doc: dict) -> None:
    doc["cases"][0]["param_groups"][0]["hyperparameters"]["lr"] = "0.5"


SPEC, INDEX, MANIFEST = "adam/spec.json", "adam/index.json", "adam/MANIFEST.json"
TAMPERINGS = [  # (id, file, new bytes or None to delete, text of the refusal)
    ("expected-digit", *_first_digit_changed(SPEC, '"expected"'), "adam/spec.json does not match"),
    ("case-lr", *_json_edit(SPEC, _lr), "adam/spec.json does not match"),
    ("bounds-x1e12", *_json_edit(SPEC, _scale_bounds), "adam/spec.json does not match"),
    ("index-acceptable", *_json_edit(INDEX, _acceptable), "adam/index.json does not match"),
    ("spec-truncated", SPEC, (GOLDEN / SPEC).read_bytes()[:1000], "adam/spec.json does not match"),
    ("spec-empty", SPEC, b"", "adam/spec.json does not match"),
    ("spec-deleted", SPEC, None, "adam/spec.json cannot be read"),
    ("spec-not-utf8", SPEC, b"\xff\xfe" + (GOLDEN / SPEC).read_bytes(), "adam/spec.json does not match"),
    ("spec-reschemad", SPEC, (GOLDEN / SPEC).read_bytes().replace(b"golden/v1", b"golden/v9", 1),
     "adam/spec.json does not match"),
    ("spec-trailing-space", SPEC, (GOLDEN / SPEC).read_bytes() + b" ", "adam/spec.json does not match"),
    ("variant-edited", *_first_digit_changed("adam/adam.eps_hat.json", '"expected"'), "adam.eps_hat.json does not match"),
    ("variant-deleted", "adam/adam.eps_hat.json", None, "adam/adam.eps_hat.json cannot be read"),
    ("index-truncated", INDEX, (GOLDEN / INDEX).read_bytes()[:500], "adam/index.json does not match"),
    ("index-deleted", INDEX, None, "adam/index.json cannot be read"),
    ("index-names-missing-file", *_json_edit(INDEX, lambda d: d["specs"]["adam"].update(file="adam/x.json")),
     "adam/index.json does not match"),
    ("manifest-deleted", MANIFEST, None, "adam/MANIFEST.json cannot be read"),
    ("manifest-truncated", MANIFEST, (GOLDEN / MANIFEST).read_bytes()[:200], "not a valid manifest"),
    ("manifest-reschemad", *_json_edit(MANIFEST, lambda d: d.update(schema="x")), "not a valid manifest"),
    ("manifest-drops-spec", *_json_edit(MANIFEST, lambda d: d["files"].pop(SPEC)),
     "adam/spec.json is not listed in adam/MANIFEST.json"),
    ("manifest-digest-changed", *_json_edit(MANIFEST, lambda d: d["files"].update({SPEC: "0" * 64})),
     "adam/spec.json does not match"),
    ("manifest-vouches-other-spec", *_json_edit(MANIFEST, lambda d: d["files"].update({"sgd/spec.json": "0" * 64})),
     "adam/MANIFEST.json is not a valid manifest"),
    # a file this run does not read: not verified (only the spec's files are), same verdict
    ("other-spec-edited", *_first_digit_changed("sgd/spec.json", '"expected"'), FAILED),
]


@pytest.fixture
def tampered_run(tmp_path):
    golden = _package_copy(tmp_path / "pkg")
    (tmp_path / "bad_np.py").write_text(BAD_NUMPY)

    def run(changes: list[tuple[str, bytes | None]], *args: str) -> subprocess.CompletedProcess:
        for rel, data in changes:
            _replace(golden, rel, data)
        env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path / "pkg"), str(tmp_path)])}
        return subprocess.run(pytest_command("--optimizer=bad_np.Adam", "--optimizer-spec=adam",
                                             "-k", "defaults and float64", f"--rootdir={tmp_path}", *args),
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return run


def _assert_refused(proc: subprocess.CompletedProcess, text: str) -> None:
    out = proc.stdout + proc.stderr
    assert "INTERNALERROR" not in out and "Traceback (most recent call last)" not in out, out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert proc.returncode == 4 and len(errors) == 1 and text in errors[0], out


@pytest.mark.parametrize(("rel", "data", "text"), [pytest.param(*c[1:], id=c[0]) for c in TAMPERINGS])
def test_tampered_golden_is_refused(tampered_run, rel, data, text):
    proc = tampered_run([(rel, data)])
    if text == FAILED:  # not a file of this run: the known-bad candidate still fails
        assert proc.returncode == 1 and FAILED in proc.stdout, proc.stdout + proc.stderr
        return
    _assert_refused(proc, text)


# -- property tests --------------------------------------------------------------------------------
MUTABLE = [INDEX, SPEC, "adam/adam.eps_hat.json"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rel=st.sampled_from(MUTABLE), where=st.floats(0, 1), byte=st.integers(0, 255),
       op=st.sampled_from(["replace", "insert", "delete", "truncate"]))
def test_any_golden_mutation_is_refused_or_changes_nothing(tmp_path_factory, rel, where, byte, op):
    """A mutated golden byte: refused (exit 4, naming the file), or the bytes are unchanged and so is
    the verdict (the known-bad candidate fails); never a pass, never a crash."""
    root = tmp_path_factory.mktemp("mut")
    golden = _package_copy(root / "pkg")
    (root / "bad_np.py").write_text(BAD_NUMPY)
    data = (GOLDEN / rel).read_bytes()
    i = min(int(where * len(data)), len(data) - 1)
    mutated = {"replace": data[:i] + bytes([byte]) + data[i + 1:], "insert": data[:i] + bytes([byte]) + data[i:],
               "delete": data[:i] + data[i + 1:], "truncate": data[:i]}[op]
    _replace(golden, rel, mutated)
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([str(root / "pkg"), str(root)])}
    proc = subprocess.run(pytest_command("--optimizer=bad_np.Adam", "--optimizer-spec=adam", "-k", "defaults and float64",
                                         f"--rootdir={root}"), cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    if mutated == data:
        assert proc.returncode == 1 and FAILED in proc.stdout
    else:
        _assert_refused(proc, rel)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=4),
                       lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=6), c, max_size=2),
                       max_leaves=4)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kwargs=st.one_of(st.dictionaries(st.sampled_from(["lr", "eps", "foreach", "maximize", "x", "params",
                                                         "differentiable", "capturable"]), JSONISH, max_size=2),
                        JSONISH),
       device=st.sampled_from(["cpu", "meta", "", "cuda:-1", "cpu:0", "xla", "cpu "]),
       timeout=st.sampled_from(["60", "0", "-0.5", "1e308", "nan", "1e-9x"]),
       dtype=st.sampled_from(["float32", "float64", "float8", "bfloat16", "float32,float16", "", ","]))
@example(kwargs={}, device="cpu", timeout="1e308", dtype="float32")  # found: select() overflowed
def test_fuzzed_options_never_crash(pytester, kwargs, device, timeout, dtype):
    """Any option values: a usage error (one line) or a run with a verdict; never a crash. With a
    known-conforming candidate (the NumPy reference) a run that runs conforms or skips."""
    result = _run(pytester, "--optimizer=optimizer_conformance.reference.Adam", "-k", "defaults and float64",
                  f"--optimizer-kwargs={json.dumps(kwargs)}", f"--optimizer-device={device}",
                  f"--optimizer-timeout={timeout}", f"--optimizer-dtype={dtype}")
    out, err = result.stdout.str(), result.stderr.str()
    assert "INTERNALERROR" not in out + err and "Traceback (most recent call last)" not in out + err, out + err
    assert result.ret in (0, 1, 4, 5), out + err  # 5: the -k and the dtypes select nothing
    if result.ret == 4:
        assert len([ln for ln in err.splitlines() if ln.startswith("ERROR:")]) == 1, err


def _table() -> None:
    rows = [(name, len(ids)) for name, ids in CATEGORIES.items()]
    rows += [("tampered golden (exit 4, or same verdict)", len(TAMPERINGS)),
             ("run survives / report / xfail counts", 5),  # killed candidate, xdist crash, killed run, -x, xfails
             ("property tests (hypothesis: golden bytes, option values)", 2)]
    for name, n in rows:
        print(f"{name:45} {n:4}")
    print(f"{'total':45} {sum(n for _, n in rows):4}")


if __name__ == "__main__":
    _table()
