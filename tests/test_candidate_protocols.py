"""Candidate protocols end to end (pytester): a third-party signature mapped by a factory or by
the conftest hook ``pytest_optimizer_conformance_build``, NumPy and functional (init/update)
candidates, and cases skipped with their reason rather than run with other settings."""

from __future__ import annotations

import numpy  # noqa: F401  (in-process pytester restores sys.modules: import these up front)
import optimizer_conformance.conformance.candidates
import optimizer_conformance.conformance.hookspecs
import optimizer_conformance.conformance.plugin  # noqa: F401
import pytest
import torch
from optimizer_conformance.conformance.candidates import Candidate, detect_api
from optimizer_conformance.conformance.kinds import load_spec

_p = torch.zeros(2, requires_grad=True)
_p.grad = torch.ones(2)
torch.optim.Adam([_p], lr=0.1).step()  # torch imports dynamo lazily on the first optimizer

# A torch optimizer with its own names: beta1/beta2, epsilon, decay (state m, v, t: not torch's).
THIRD_PARTY = '''
import torch

class ThirdPartyAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, decay=0.0,
                 amsgrad=False, maximize=False):
        super().__init__(params, dict(lr=lr, beta1=beta1, beta2=beta2, epsilon=epsilon, decay=decay,
                                      amsgrad=amsgrad, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["beta1"], group["beta2"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if group["decay"]:
                    g = g.add(p, alpha=group["decay"])
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"], st["vmax"] = 0, torch.zeros_like(p), torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                t = st["t"]
                st["m"].lerp_(g, 1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                v = st["v"]
                if group["amsgrad"]:
                    torch.maximum(st["vmax"], v, out=st["vmax"])
                    v = st["vmax"]
                denom = (v.sqrt() / (1 - b2**t) ** 0.5).add_(group["epsilon"])
                p.addcdiv_(st["m"], denom, value=-group["lr"] / (1 - b1**t))
'''

# The factory form: torch-named keyword arguments (what the harness passes), mapped per group.
ADAPTERS = '''
from thirdparty import ThirdPartyAdam

def _named(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **rest):
    return dict(rest, lr=lr, beta1=betas[0], beta2=betas[1], epsilon=eps, decay=weight_decay)

def make_adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False):
    return ThirdPartyAdam([_named(**group) for group in params])

def make_adam_no_amsgrad(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
    return ThirdPartyAdam([_named(**group) for group in params])
'''

HOOK_CONFTEST = '''
from optimizer_conformance.conformance.candidates import CaseSkipped
from thirdparty import ThirdPartyAdam

def _named(lr, betas, eps, weight_decay, **rest):
    return dict(rest, lr=lr, beta1=betas[0], beta2=betas[1], epsilon=eps, decay=weight_decay)

def pytest_optimizer_conformance_build(spec, case, params, hyperparameters, dtype, device):
    assert spec.id == "adam" and hyperparameters == {k: v for k, v in params[0].items() if k != "params"}
    if SKIP_AMSGRAD and any(group["amsgrad"] for group in params):
        raise CaseSkipped("ThirdPartyAdam is used here without amsgrad")
    return ThirdPartyAdam([_named(**group) for group in params])
'''

NUMPY_THIRD_PARTY = '''
import numpy as np

class NpAdam:
    """NumPy Adam with its own names; state_dict()/load_state_dict() for resume cases."""

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, decay=0.0,
                 amsgrad=False, maximize=False):
        self.params, self.lr, self.beta1, self.beta2, self.epsilon = params, lr, beta1, beta2, epsilon
        self.decay, self.amsgrad, self.maximize = decay, amsgrad, maximize
        self.t = [0] * len(params)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.vmax = [np.zeros_like(p) for p in params]

    def step(self, grads):
        b1, b2 = self.beta1, self.beta2
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            g = -g if self.maximize else g
            if self.decay:
                g = g + self.decay * p
            self.t[i] += 1
            t = self.t[i]
            self.m[i] = self.m[i] + (g - self.m[i]) * (1 - b1)
            self.v[i] = self.v[i] * b2 + g * g * (1 - b2)
            v = self.v[i]
            if self.amsgrad:
                self.vmax[i] = np.maximum(self.vmax[i], v)
                v = self.vmax[i]
            denom = np.sqrt(v) / (1 - b2**t) ** 0.5 + self.epsilon
            p -= self.lr / (1 - b1**t) * self.m[i] / denom

    def state_dict(self):
        return {"t": self.t, "m": self.m, "v": self.v, "vmax": self.vmax}

    def load_state_dict(self, sd):
        self.t, self.m, self.v, self.vmax = (list(sd[k]) for k in ("t", "m", "v", "vmax"))

def make_adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False):
    return NpAdam(params, lr=lr, beta1=betas[0], beta2=betas[1], epsilon=eps, decay=weight_decay,
                  amsgrad=amsgrad, maximize=maximize)
'''

# A functional (optax-shaped) Adam: hyperparameters at construction, state under torch's names.
FUNCTIONAL = '''
from types import SimpleNamespace

import numpy as np

def adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False):
    b1, b2 = betas

    def init(params):
        state = {"step": [0.0] * len(params), "exp_avg": [np.zeros_like(p) for p in params],
                 "exp_avg_sq": [np.zeros_like(p) for p in params]}
        if amsgrad:
            state["max_exp_avg_sq"] = [np.zeros_like(p) for p in params]
        return state

    def update(grads, state, params):
        state = {k: list(v) for k, v in state.items()}
        new_params = []
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                new_params.append(p)
                continue
            g = -g if maximize else g
            if weight_decay:
                g = g + weight_decay * p
            t = state["step"][i] = state["step"][i] + 1
            m = state["exp_avg"][i] = state["exp_avg"][i] + (g - state["exp_avg"][i]) * (1 - b1)
            v = state["exp_avg_sq"][i] = state["exp_avg_sq"][i] * b2 + g * g * (1 - b2)
            if amsgrad:
                v = state["max_exp_avg_sq"][i] = np.maximum(state["max_exp_avg_sq"][i], v)
            new_params.append(p - lr / (1 - b1**t) * m / (np.sqrt(v) / (1 - b2**t) ** 0.5 + eps))
        return new_params, state

    return SimpleNamespace(init=init, update=update)

def adam_no_amsgrad(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
    return adam(lr, betas, eps, weight_decay, False, maximize)
'''

# These tests are about how a candidate is built and driven: they run Adam's hand-written cases
# (the generated ones, derivations/feature_cases.py, are deselected and tested in test_case_design.py).
GENERATED = ("/only_", "/boundary_", "long_horizon", "resumed_at_large_t")
HAND_WRITTEN = ("-k", "not only_ and not boundary_ and not long_horizon and not resumed_at_large_t")
_HAND = [c for c in load_spec("adam").cases if not any(g in c.id for g in GENERATED)]
ADAM_ITEMS = 2 * len(_HAND)  # every hand-written adam case, float32 and float64
AMSGRAD_CASES = sum("amsgrad" in c.features for c in _HAND)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(thirdparty=THIRD_PARTY, adapters=ADAPTERS, np_thirdparty=NUMPY_THIRD_PARTY,
                        functional_adam=FUNCTIONAL)
    pytester.syspathinsert()
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs", *HAND_WRITTEN, *args)


def _conforms(result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=ADAM_ITEMS)
    result.stdout.fnmatch_lines(["*verdict: CONFORMS*"])


# -- torch: a third-party signature --------------------------------------------------------------
def test_third_party_torch_optimizer_through_a_factory(pytester):
    result = _run(pytester, "--optimizer=adapters:make_adam")
    result.stdout.fnmatch_lines(["*candidate adapters:make_adam (torch)*spec adam*"])
    _conforms(result)


def test_third_party_torch_optimizer_through_the_conftest_hook(pytester):
    pytester.makeconftest(HOOK_CONFTEST.replace("SKIP_AMSGRAD", "False"))
    _conforms(_run(pytester, "--optimizer=thirdparty.ThirdPartyAdam"))


def test_without_the_hook_the_third_party_names_are_skipped_not_guessed(pytester):
    """The hook returning None falls back to the default construction: beta1/beta2/epsilon are
    common spellings it maps, but 'decay' is ambiguous (weight or learning-rate decay), so every
    case is skipped saying so — never run with a guess. Without a hook the same is a usage error."""
    pytester.makeconftest("def pytest_optimizer_conformance_build(spec, case, params, hyperparameters, "
                          "dtype, device):\n    return None\n")
    result = _run(pytester, "--optimizer=thirdparty.ThirdPartyAdam")
    result.assert_outcomes(skipped=16)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*skipped: the default construction cannot map the candidate's arguments: "
                                 "the candidate takes 'decay'*--optimizer-args*"])


@pytest.mark.parametrize("how", ["factory", "hook"])
def test_a_candidate_without_amsgrad_skips_those_cases_with_the_reason(pytester, how):
    if how == "hook":
        pytester.makeconftest(HOOK_CONFTEST.replace("SKIP_AMSGRAD", "True"))
        result = _run(pytester, "--optimizer=thirdparty.ThirdPartyAdam")
        reason = "ThirdPartyAdam is used here without amsgrad"
    else:
        result = _run(pytester, "--optimizer=adapters:make_adam_no_amsgrad")
        reason = "candidate does not accept 'amsgrad' (this case sets amsgrad=True)"
    result.assert_outcomes(passed=ADAM_ITEMS - 2 * AMSGRAD_CASES, skipped=2 * AMSGRAD_CASES)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*verdict: CONFORMS*", f"*skipped: {reason}*"])


def test_a_change_the_candidate_cannot_take_is_skipped(pytester):
    """A torch candidate whose groups keep the learning rate under another name: the lr schedule
    case is skipped (the harness cannot change it), not run with the old rate."""
    pytester.makepyfile(renamed='''
from thirdparty import ThirdPartyAdam

class RenamedAdam(ThirdPartyAdam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr, betas[0], betas[1], eps, weight_decay, amsgrad, maximize)
        for group in self.param_groups:
            group["learning_rate"] = group.pop("lr")
            group["beta1"], group["beta2"] = group.pop("betas", (group["beta1"], group["beta2"]))
            group["epsilon"] = group.pop("eps", group["epsilon"])
            group["decay"] = group.pop("weight_decay", group["decay"])

    def step(self, closure=None):
        for group in self.param_groups:
            group["lr"] = group["learning_rate"]
        super().step()
        for group in self.param_groups:
            del group["lr"]
''')
    result = _run(pytester, "--optimizer=renamed.RenamedAdam", "-k", "lr_schedule")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*skipped: the candidate's param_groups[[]0[]] has no 'lr' to change*"])


# -- NumPy and functional candidates -------------------------------------------------------------
def test_numpy_candidate_through_a_factory_with_state_dict_resume(pytester):
    result = _run(pytester, "--optimizer=np_thirdparty:make_adam")
    result.stdout.fnmatch_lines(["*candidate np_thirdparty:make_adam (numpy)*"])
    _conforms(result)


def test_numpy_factory_without_state_dict_skips_resume(pytester):
    pytester.makepyfile(np_nosd='''
from np_thirdparty import NpAdam

class Plain(NpAdam):
    state_dict = load_state_dict = property(lambda self: (_ for _ in ()).throw(AttributeError("no")))

def make_adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False):
    return Plain(params, lr, betas[0], betas[1], eps, weight_decay, amsgrad, maximize)
''')
    result = _run(pytester, "--optimizer=np_nosd:make_adam", "-k", "resume and not only_ and not resumed_at_large_t")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*skipped: NumPy candidate has no state_dict()/load_state_dict()*"])


def test_functional_candidate_conforms(pytester):
    """init/update with the state pytree: lr changes rebuild it, resume deep-copies the state,
    and the state it keeps under torch's names is compared."""
    report = pytester.path / "r.json"
    result = _run(pytester, "--optimizer=functional_adam:adam", f"--optimizer-report={report}")
    result.stdout.fnmatch_lines(["*candidate functional_adam:adam (functional)*spec adam*"])
    _conforms(result)
    import json

    doc = json.loads(report.read_text())
    compared = {s for c in doc["cases"] for s in c.get("compared_state", [])}
    assert {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"} <= compared, compared
    # the report of a functional candidate is valid against the published schema
    from importlib import resources

    from jsonschema import Draft202012Validator

    schema = json.loads(resources.files("optimizer_conformance.conformance").joinpath(
        "schemas", "report.schema.json").read_text(encoding="utf-8"))
    assert doc["candidate"]["api"] == "functional"
    assert not list(Draft202012Validator(schema).iter_errors(doc))


def test_functional_candidate_without_amsgrad_skips_with_the_reason(pytester):
    result = _run(pytester, "--optimizer=functional_adam:adam_no_amsgrad")
    result.assert_outcomes(passed=ADAM_ITEMS - 2 * AMSGRAD_CASES, skipped=2 * AMSGRAD_CASES)
    result.stdout.fnmatch_lines(["*skipped: candidate does not accept 'amsgrad'*"])


def test_functional_candidate_built_by_the_hook(pytester):
    pytester.makeconftest('''
from functional_adam import adam

def pytest_optimizer_conformance_build(spec, case, params, hyperparameters, dtype, device):
    assert isinstance(params, list) and device == "cpu"
    return adam(**hyperparameters)
''')
    _conforms(_run(pytester, "--optimizer=functional_adam:adam"))


def test_api_detection_and_declaration():
    ns: dict = {}
    exec(FUNCTIONAL, ns)
    assert detect_api(ns["adam"]) == "functional"

    class Declared:
        conformance_api = "functional"

        def __init__(self, lr=0.1):
            self.lr = lr

        def step(self, grads):
            pass

    assert detect_api(Declared) == "functional"
    assert detect_api(torch.optim.Adam) == "torch"
    assert Candidate("x.y", Declared, "numpy").hooked() is False
