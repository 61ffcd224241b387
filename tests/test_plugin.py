"""The pytest plugin end to end, as a user runs it (pytester: a fresh directory per test)."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy  # noqa: F401  (in-process pytester restores sys.modules: import these up front)
import optimizer_conformance.conformance as conformance_pkg
import optimizer_conformance.conformance.plugin
import optimizer_conformance.conformance.report
import optimizer_conformance.reference  # noqa: F401
import pytest
import torch  # noqa: F401
from optimizer_conformance.conformance.diagnosis import shown_matches
from optimizer_conformance.conformance.golden import index
from optimizer_conformance.conformance.kinds import load_spec

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.plugin_only import plugins, set_env
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path (rootdir-relative)
    from plugin_only import plugins, set_env

TORCH_IMPLS = [{"foreach": False}, {"foreach": True}, {"fused": True}]



# the hand-written cases (the generated ones are tested in test_case_design.py)
GENERATED = ("/only_", "/boundary_", "long_horizon", "resumed_at_large_t")
HAND_WRITTEN = "not only_ and not boundary_ and not long_horizon and not resumed_at_large_t"


def _items(spec_id: str) -> int:
    """The verdict's items for a spec: every case in float32 and float64."""
    return 2 * len(index()["specs"][spec_id]["cases"])

def _warm_up_torch() -> None:
    """Build and step every optimizer once: torch imports dynamo and friends lazily on first use,
    and an in-process pytester run drops modules imported inside it."""
    for cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.ASGD):
        for kw in TORCH_IMPLS if cls is not torch.optim.ASGD else TORCH_IMPLS[:2]:
            p = torch.zeros(2, requires_grad=True)
            p.grad = torch.ones(2)
            cls([p], lr=0.1, **kw).step()


_warm_up_torch()

MUTANT_MODULE = '''
import torch

class Adam(torch.optim.Adam):
    """Keras-style: eps added to the raw sqrt(v), bias corrections folded into the step."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.neg() if group["maximize"] else p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        st["max_exp_avg_sq"] = torch.zeros_like(p)
                st["step"] += 1
                t = st["step"].item()
                st["exp_avg"].lerp_(g, 1 - beta1)
                st["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                v = st["exp_avg_sq"]
                if group["amsgrad"]:
                    torch.maximum(st["max_exp_avg_sq"], v, out=st["max_exp_avg_sq"])
                    v = st["max_exp_avg_sq"]
                step_size = group["lr"] * (1 - beta2**t) ** 0.5 / (1 - beta1**t)
                p.addcdiv_(st["exp_avg"], v.sqrt().add_(group["eps"]), value=-step_size)
'''

NUMPY_NO_AMSGRAD = '''
import numpy as np

class Adam:
    """A minimal NumPy Adam without amsgrad/weight_decay/maximize/state_dict support."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = [0] * len(params)

    def step(self, grads):
        b1, b2 = self.betas
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            self.t[i] += 1
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            mhat = self.m[i] / (1 - b1 ** self.t[i])
            vhat = self.v[i] / (1 - b2 ** self.t[i])
            p -= self.lr * mhat / (np.sqrt(vhat) + self.eps)
'''


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


# -- must show 1: torch.optim passes in every CPU implementation and both dtypes ---------------
@pytest.mark.parametrize("kwargs", TORCH_IMPLS, ids=lambda k: json.dumps(k))
@pytest.mark.parametrize("cls", ["SGD", "Adam", "AdamW"])
def test_torch_optim_conforms(pytester, cls, kwargs):
    result = _run(pytester, f"--optimizer=torch.optim.{cls}", f"--optimizer-kwargs={json.dumps(kwargs)}")
    result.assert_outcomes(passed=_items(cls.lower()))
    result.stdout.fnmatch_lines(["*verdict: CONFORMS*"])


@pytest.mark.parametrize("kwargs", TORCH_IMPLS, ids=lambda k: json.dumps(k))
def test_adam_with_decoupled_weight_decay_is_adamw(pytester, kwargs):
    kw = json.dumps({"decoupled_weight_decay": True, **kwargs})
    result = _run(pytester, "--optimizer=torch.optim.Adam", "--optimizer-spec=adamw", f"--optimizer-kwargs={kw}")
    result.assert_outcomes(passed=_items("adamw"))


def test_foreach_sgd_grad_mutation_is_reported_as_a_finding(pytester):
    """torch 2.13's foreach SGD with nesterov adds μ·b into p.grad in place: visible, not fatal."""
    report = pytester.path / "r.json"
    result = _run(pytester, "--optimizer=torch.optim.SGD", '--optimizer-kwargs={"foreach": true}',
                  f"--optimizer-report={report}")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*finding (acceptable): step() modifies p.grad in place*"])
    doc = json.loads(report.read_text())
    assert doc["findings"] == ["step() modifies p.grad in place"]


def test_acceptable_variant_passes_with_a_named_finding(pytester):
    """torch's ASGD keeps η and μ as float32 scalars even for float64 params: off the exact
    trajectory by far more than the float64 tolerance, on the documented acceptable variant's.
    The run passes, and the summary and the report name the finding."""
    report = pytester.path / "r.json"
    result = _run(pytester, "--optimizer=torch.optim.ASGD", "--optimizer-dtype=float64",
                  '--optimizer-kwargs={"foreach": false}', f"--optimizer-report={report}")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*verdict: CONFORMS*",
                                 "*finding (acceptable): follows acceptable variant asgd.float32_eta_mu: *"])
    doc = json.loads(report.read_text())
    assert any(f.startswith("follows acceptable variant asgd.float32_eta_mu") for f in doc["findings"])
    accepted = [c for c in doc["cases"] if c["findings"]]
    assert accepted and all(c["outcome"] == "passed" and c["max_ratio"] > 1 for c in accepted)
    assert {c["accepted"] for c in accepted} == {"asgd.float32_eta_mu"}


def test_accepting_a_convention_turns_a_keras_style_adam_acceptable(pytester):
    """--optimizer-accept=adam.eps_hat: a Keras-compatible Adam is certified against its declared
    convention. Without the option it fails (see the next test); with it every case passes, the
    cases that follow ε̂ instead of the spec say so, and the report records the option."""
    pytester.makepyfile(keras_adam=MUTANT_MODULE)
    pytester.syspathinsert()
    report = pytester.path / "report.json"
    result = _run(pytester, "--optimizer=keras_adam.Adam", "--optimizer-accept=adam.eps_hat",
                  f"--optimizer-report={report}")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*accepted conventions (--optimizer-accept): adam.eps_hat*",
        "*verdict: CONFORMS, ACCEPTABLE*adam.eps_hat*",
        "*finding (acceptable): follows the accepted convention (--optimizer-accept) adam.eps_hat: *",
    ])
    doc = json.loads(report.read_text())
    assert doc["candidate"]["accept"] == ["adam.eps_hat"]
    accepted = [c for c in doc["cases"] if c["accepted"]]
    assert accepted and {c["accepted"] for c in accepted} == {"adam.eps_hat"}
    assert all(c["outcome"] == "passed" for c in doc["cases"])
    assert all(c["max_ratio"] > 1 for c in accepted)  # off the exact trajectory, on the convention's


def test_accepting_another_convention_does_not_hide_the_variant(pytester):
    """Accepting a convention the candidate does not follow changes nothing: it still fails, named."""
    pytester.makepyfile(keras_adam=MUTANT_MODULE)
    pytester.syspathinsert()
    result = _run(pytester, "--optimizer=keras_adam.Adam", "--optimizer-accept=adam.eps_inside_sqrt")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*verdict: DOES NOT CONFORM*", "*trajectory matches adam.eps_hat*"])


def test_accepting_an_unknown_variant_is_a_usage_error(pytester):
    result = _run(pytester, "--optimizer=torch.optim.Adam", "--optimizer-accept=adam.no_such_thing")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--optimizer-accept='adam.no_such_thing': not a catalogued variant of spec 'adam'*"])


# -- failures are diagnoses -------------------------------------------------------------------
def test_keras_style_adam_fails_and_is_named(pytester):
    pytester.makepyfile(keras_adam=MUTANT_MODULE)
    pytester.syspathinsert()
    report = pytester.path / "report.json"
    result = _run(pytester, "--optimizer=keras_adam.Adam", f"--optimizer-report={report}")
    assert result.ret == 1
    out = result.stdout.str()
    # the failure message: case, step, element, expected vs actual, error vs tolerance, variant
    assert "adam/large_eps [float32, cpu]: keras_adam.Adam does not conform to spec 'adam'" in out
    assert "first divergence: step 1 of 4, " in out
    assert "expected  " in out and "actual    " in out
    assert "× the tolerance)" in out
    assert "trajectory matches variant adam.eps_hat" in out
    assert "verdict: DOES NOT CONFORM" in out
    doc = json.loads(report.read_text())
    assert doc["diagnosis"]["verdict"] == "variant"
    assert doc["diagnosis"]["variants"] == ["adam.eps_hat"]
    failed = [c for c in doc["cases"] if c["outcome"] == "failed"]
    # each case matches ε̂ (and the combinations with a delta that case cannot see); shown: ε̂
    assert failed and all("adam.eps_hat" in c["matches"] for c in failed)
    assert all("adam.eps_hat" in shown_matches(c["matches"]) for c in failed)
    assert all(c["first_divergent_step"] >= 1 and c["max_error"] > c["tolerance"] for c in failed)
    assert doc["environment"]["torch"] and doc["candidate"]["path"] == "keras_adam.Adam"


# -- NumPy candidates --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_reference_passes_as_a_numpy_candidate(pytester, name):
    result = _run(pytester, f"--optimizer=optimizer_conformance.reference.{name}")
    result.assert_outcomes(passed=_items(name.lower()))


def test_numpy_candidate_missing_features_skips_with_reasons(pytester):
    pytester.makepyfile(np_adam=NUMPY_NO_AMSGRAD)
    pytester.syspathinsert()
    result = _run(pytester, "--optimizer=np_adam.Adam", "-rs", "-k", HAND_WRITTEN)
    out = result.stdout.str()
    assert result.ret == 0, out
    assert "candidate does not accept 'amsgrad' (this case sets amsgrad=True)" in out
    assert "candidate does not accept 'weight_decay' (this case sets weight_decay=0.25)" in out
    # cases whose features it lacks are skipped (with the reason); the others must pass
    hand = [c for c in load_spec("adam").cases if not any(g in c.id for g in GENERATED)]
    lacking = 2 * sum(bool({"amsgrad", "weight_decay"} & set(c.features)) for c in hand)
    result.assert_outcomes(passed=2 * len(hand) - lacking, skipped=lacking)
    result.stdout.fnmatch_lines(["*verdict: CONFORMS*"])


def test_candidate_with_every_case_skipped_fails(pytester):
    pytester.makepyfile(np_adam=NUMPY_NO_AMSGRAD)
    pytester.syspathinsert()
    result = _run(pytester, "--optimizer=np_adam.Adam", "--optimizer-dtype=bfloat16")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*every case was skipped*"])


# -- usage errors: one line, no traceback ------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizer=nosuchmodule.Adam"], "*cannot import module 'nosuchmodule'*looked in*PYTHONPATH"),
        (["--optimizer=torch.optim.NoSuchAdam"], "*has no attribute 'NoSuchAdam'*"),
        (["--optimizer=torch.optim.Optimizer"], "*cannot infer the spec*one of: *adadelta, adafactor, adagrad, adam,*"),
        (["--optimizer=torch.optim.Adam", "--optimizer-spec=nosuchspec"],
         "*unknown spec*adadelta, adafactor, adagrad, adam,*"),
        (["--optimizer=torch.optim.Adam", "--optimizer-kwargs={nope"], "*not valid JSON*"),
        (["--optimizer=torch.optim.Adam", "--optimizer-kwargs=[1]"], "*must be a JSON object*"),
        (["--optimizer=torch.optim.Adam", "--optimizer-dtype=float8"], "*expected one of*"),
    ],
)
def test_usage_errors_are_one_clear_line(pytester, args, message):
    result = _run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("raise RuntimeError('no GPU found')", "*importing module 'bad_at_import' raised RuntimeError: no GPU found"),
        ("def broken(:\n    pass", "*importing module 'bad_at_import' raised SyntaxError: *bad_at_import.py, line 1)"),
        ("import sys\nsys.exit(3)", "*importing module 'bad_at_import' raised SystemExit: 3"),
        ("import no_such_dependency_xyz", "*importing module 'bad_at_import' failed: ModuleNotFoundError*"),
    ],
)
def test_a_module_failing_at_import_is_a_usage_error(pytester, source, message):
    """Whatever the candidate's module raises while importing, the run stops before any case
    with one line naming the error (the folder pytest runs in is importable, as under
    ``python -m pytest``: no sys.path set-up here)."""
    pytester.makepyfile(bad_at_import=source)
    result = _run(pytester, "--optimizer=bad_at_import.Adam")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_ambiguous_name_is_a_usage_error():
    from optimizer_conformance.conformance.candidates import UsageError
    from optimizer_conformance.conformance.options import infer_spec

    assert infer_spec("MyAdamW", ["sgd", "adam", "adamw"]) == "adamw"
    assert infer_spec("numpy_adam", ["sgd", "adam", "adamw"]) == "adam"
    with pytest.raises(UsageError, match="ambiguous"):
        infer_spec("AdamOrSGD", ["sgd", "adam", "adamw"])


# -- without --optimizer the plugin changes nothing ------------------------------------------------
def test_plugin_is_inert_without_the_option(pytester):
    pytester.makepyfile(test_user="def test_one():\n    assert 1 + 1 == 2\n")
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    assert "optimizer conformance" not in result.stdout.str()


def test_option_replaces_the_user_tests(pytester):
    pytester.makepyfile(test_user="def test_one():\n    raise AssertionError('must not run')\n")
    result = _run(pytester, "--optimizer=torch.optim.SGD", "-k", "momentum and float64")
    # every case with the momentum feature or named after it, float64 only
    result.assert_outcomes(passed=sum("momentum" in c.features or "momentum" in c.id for c in load_spec("sgd").cases))


# -- generation-time libraries stay out of the checking path ---------------------------------------
def test_checking_a_candidate_imports_neither_sympy_nor_mpmath(pytester):
    """A NumPy candidate (torch itself imports sympy when it builds an optimizer)."""
    pytester.makeconftest(
        "import sys\n"
        "def pytest_sessionfinish(session):\n"
        "    leaked = sorted(m for m in ('sympy', 'mpmath') if m in sys.modules)\n"
        "    print('LEAKED:', ','.join(leaked) or 'none')\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-s",
                                           "--optimizer=optimizer_conformance.reference.Adam")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*LEAKED: none*"])


def test_conformance_package_never_imports_generation_code():
    root = Path(conformance_pkg.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for n in names:
                assert n.split(".")[0] not in ("sympy", "mpmath"), f"{path.name} imports {n}"
                assert "derivations" not in n, f"{path.name} imports {n}"


@pytest.mark.skipif(sys.platform != "linux", reason="timing measured on the CI machine kind")
def test_xdist_gives_the_same_verdict(pytester, monkeypatch):
    pytest.importorskip("xdist")
    set_env(monkeypatch)  # the run and its workers load the plugin and xdist only
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *plugins(xdist=True), "-n", "2",
                                          "--optimizer=torch.optim.Adam")
    n = _items("adam")
    result.assert_outcomes(passed=n)
    result.stdout.fnmatch_lines([f"*{n} passed, 0 failed, 0 skipped*", "*verdict: CONFORMS*"])


# -- a misbehaving candidate gets a verdict, never a crash of the harness --------------------------
HANG = "import time, torch\nclass Adam(torch.optim.Adam):\n    def step(self, closure=None):\n        time.sleep(60)\n"
NAN = (
    "import torch\nclass Adam(torch.optim.Adam):\n    def step(self, closure=None):\n"
    "        super().step()\n        for g in self.param_groups:\n            for p in g['params']:\n"
    "                p.data.fill_(float('nan'))\n"
)


def test_hanging_candidate_times_out_with_a_verdict(pytester):
    pytester.makepyfile(hang=HANG)
    pytester.syspathinsert()
    report = pytester.path / "r.json"
    result = _run(pytester, "--optimizer=hang.Adam", "--optimizer-timeout=0.5", "-k", "defaults and float32",
                  f"--optimizer-report={report}")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*did not finish the case within 0.5 s*", "*verdict: DOES NOT CONFORM*"])
    doc = json.loads(report.read_text())
    assert doc["summary"] == {"passed": 0, "failed": 1, "skipped": 0}


def test_nan_candidate_is_told_so(pytester):
    pytester.makepyfile(nanadam=NAN)
    pytester.syspathinsert()
    result = _run(pytester, "--optimizer=nanadam.Adam", "-k", "defaults and float32")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*first divergence: step 1 of 5*", "*the candidate produced a non-finite value (nan)*"])
