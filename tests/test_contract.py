"""The optimizer contract (conformance/contract.py): torch.optim passes every check, each contract
mutant (tests/mutants/contract_mutants.py) fails exactly its own, and the plugin collects the
checks with --optimizer-contract."""

from __future__ import annotations

import numpy  # noqa: F401  (in-process pytester restores sys.modules: import these up front)
import optimizer_conformance.conformance.contract as contract
import optimizer_conformance.conformance.plugin
import optimizer_conformance.conformance.report  # noqa: F401
import pytest
import torch  # noqa: F401
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.golden import index
from optimizer_conformance.conformance.kinds import load_spec

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.mutants import contract_mutants
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path (rootdir-relative)
    from mutants import contract_mutants

DTYPES = ("float32", "float64")
NAMES = [c.name for c in contract.CHECKS]
IMPLS = {"forloop": {"foreach": False}, "foreach": {"foreach": True}}


def _outcome(name: str, cand: Candidate, spec_id: str, dtype: str) -> tuple[str, str]:
    try:
        contract.run_check(name, cand, load_spec(spec_id), dtype)
    except contract.ContractSkipped as exc:
        return "skipped", str(exc)
    except contract.ContractBroken as exc:
        return "failed", str(exc)
    return "passed", ""


def test_every_item_of_the_issue_has_a_check_and_a_mutant():
    assert list(contract_mutants.MUTANTS) == NAMES
    assert len(set(NAMES)) == len(NAMES) == 13


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cls", ["Adam", "SGD", "AdamW"])
def test_torch_optim_keeps_the_contract(cls, impl, dtype):
    cand = Candidate.from_path(f"torch.optim.{cls}", IMPLS[impl])
    outcomes = {name: _outcome(name, cand, cls.lower(), dtype) for name in NAMES}
    failed = {n: why for n, (o, why) in outcomes.items() if o == "failed"}
    assert not failed
    skipped = {n: why for n, (o, why) in outcomes.items() if o == "skipped"}
    if cls in ("Adam", "AdamW") and impl == "foreach":
        # torch 2.x: "lr as a Tensor is not supported for capturable=False and foreach=True"
        assert list(skipped) == ["tensor_lr"] and "tensor lr" in skipped["tensor_lr"]
    else:
        assert not skipped


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("own", NAMES)
def test_each_mutant_breaks_exactly_its_own_contract(own, dtype):
    cls = contract_mutants.MUTANTS[own]
    cand = Candidate(f"contract_mutants.{cls.__name__}", cls, "torch")
    outcomes = {name: _outcome(name, cand, "adam", dtype) for name in NAMES}
    outcome, message = outcomes.pop(own)
    assert outcome == "failed", message
    assert message.startswith(f"contract {own} broken: ")
    assert {n: o for n, (o, _) in outcomes.items() if o != "passed"} == {}


def test_a_failed_check_says_what_happened():
    cand = Candidate("m", contract_mutants.StepReturnsNone, "torch")
    with pytest.raises(contract.ContractBroken, match=r"^contract step_closure broken: step\(closure\) returned "
                       "None, not the closure's loss$"):
        contract.run_check("step_closure", cand, load_spec("adam"), "float32")


def test_specs_torch_refuses_complex_skip_the_complex_check():
    cand = Candidate.from_path("torch.optim.Adafactor")
    outcome, why = _outcome("complex", cand, "adafactor", "float32")
    assert outcome == "skipped" and "refuses complex" in why


def test_the_contract_is_for_stepwise_torch_candidates_only():
    assert contract.applies(Candidate.from_path("torch.optim.Adam"), load_spec("adam"))
    assert not contract.applies(Candidate.from_path("torch.optim.LBFGS"), load_spec("lbfgs"))
    numpy_cand = Candidate("np_adam.Adam", object, "numpy")
    assert not contract.applies(numpy_cand, load_spec("adam"))
    with pytest.raises(contract.ContractSkipped, match="torch candidates only"):
        contract.run_check("zero_grad", numpy_cand, load_spec("adam"), "float32")


@pytest.mark.parametrize("cls", ["Adam", "SGD"])
def test_torch_fused_cpu_steps_a_strided_param_wrongly(cls):
    """torch 2.13: fused=True on the CPU ignores a non-dense param's strides (a strided slice of
    a bigger tensor; autograd's grad for it is contiguous): a finding of the layout check."""
    cand = Candidate.from_path(f"torch.optim.{cls}", {"fused": True})
    outcome, why = _outcome("layout", cand, cls.lower(), "float64")
    assert outcome == "failed" and "non-contiguous vector" in why
    assert _outcome("complex", cand, cls.lower(), "float64")[0] == "skipped"  # fused refuses complex


def test_torch_nadam_float64_state_dict_round_trip_is_not_exact():
    """torch 2.13: NAdam keeps mu_product in float32; load_state_dict casts it to the param's
    float64, so the resumed trajectory leaves the original's."""
    outcome, why = _outcome("state_dict", Candidate.from_path("torch.optim.NAdam"), "nadam", "float64")
    assert outcome == "failed" and "expected exactly" in why
    assert _outcome("state_dict", Candidate.from_path("torch.optim.NAdam"), "nadam", "float32")[0] == "passed"


# -- the plugin --------------------------------------------------------------------------------
def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


def test_plugin_collects_the_contract_checks(pytester):
    result = _run(pytester, "--optimizer=torch.optim.Adam", "--optimizer-contract", "-v")
    result.assert_outcomes(passed=2 * len(index()["specs"]["adam"]["cases"]) + 2 * len(NAMES))
    result.stdout.fnmatch_lines(["*adam/contract/zero_grad?float32-cpu? PASSED*",
                                 "*adam/contract/requires_grad_false?float64-cpu? PASSED*",
                                 "*verdict: CONFORMS*"])


def test_plugin_without_the_option_has_no_contract_items(pytester):
    result = _run(pytester, "--optimizer=torch.optim.SGD", "--collect-only", "-q")
    assert "contract" not in result.stdout.str()


def test_plugin_selects_contract_items_by_keyword(pytester):
    result = _run(pytester, "--optimizer=torch.optim.SGD", "--optimizer-contract", "-k", "contract and float64")
    result.assert_outcomes(passed=len(NAMES))


def test_plugin_reports_a_broken_contract(pytester):
    path = f"{contract_mutants.__name__}.StateDictMissingKey"
    result = _run(pytester, f"--optimizer={path}", "--optimizer-spec=adam", "--optimizer-contract",
                  "-k", "contract and float32")
    result.assert_outcomes(passed=len(NAMES) - 1, failed=1)
    result.stdout.fnmatch_lines([f"*{path} ?float32, cpu?: contract state_dict broken: step() of the fresh "
                                 "instance loaded from state_dict() after step * raised KeyError: 'exp_avg_sq'*"])


def test_plugin_skips_the_contract_for_closed_loop_specs(pytester):
    result = _run(pytester, "--optimizer=torch.optim.LBFGS", "--optimizer-contract", "--collect-only", "-q")
    assert "contract" not in result.stdout.str()


# -- a third-party signature: the checks build the candidate through the hook or the factory ------
# torch's Adam behind other names (beta1/beta2, epsilon, decay), in its constructor and in the
# groups it is given (add_param_group maps them): it keeps every contract torch's Adam keeps.
NAMED_ADAM = '''
import torch

def torch_named(group, defaults):
    group = dict(group)
    if "beta1" in group or "beta2" in group:
        b1, b2 = defaults["betas"]
        group["betas"] = (group.pop("beta1", b1), group.pop("beta2", b2))
    for mine, theirs in (("epsilon", "eps"), ("decay", "weight_decay")):
        if mine in group:
            group[theirs] = group.pop(mine)
    return group

class NamedAdam(torch.optim.Adam):
    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, decay=0.0, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr=lr, betas=(beta1, beta2), eps=epsilon, weight_decay=decay,
                         amsgrad=amsgrad, maximize=maximize)

    def add_param_group(self, param_group):
        super().add_param_group(torch_named(param_group, self.defaults))

def third_party(lr, betas, eps, weight_decay, **rest):
    """torch's names -> NamedAdam's (every one required: a missing setting is a TypeError)."""
    return dict(rest, lr=lr, beta1=betas[0], beta2=betas[1], epsilon=eps, decay=weight_decay)

def make_named_adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                    maximize=False):
    """The factory form: torch's names, each group's settings over the factory's."""
    first = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
    return NamedAdam([third_party(**{**first, **group}) for group in params])
'''

# BREAK selects a deliberate breakage of the hook's optimizer; every call is counted in calls.txt.
NAMED_HOOK_CONFTEST = '''
from pathlib import Path

from named_adam import NamedAdam, third_party

BREAK = {breakage!r}

def pytest_optimizer_conformance_build(spec, case, params, hyperparameters, dtype, device):
    assert spec.id == "adam" and hyperparameters == {{k: v for k, v in params[0].items() if k != "params"}}
    with open(Path(__file__).parent / "calls.txt", "a") as f:
        f.write(sorted(hyperparameters)[0] + "\\n")
    if BREAK == "per_group":  # every group gets the first group's settings
        return NamedAdam([third_party(**{{**hyperparameters, "params": g["params"]}}) for g in params])
    opt = NamedAdam([third_party(**group) for group in params])
    if BREAK == "zero_grad":  # zero_grad() does nothing
        opt.zero_grad = lambda set_to_none=True: None
    return opt
'''


def _named_run(pytester: pytest.Pytester, optimizer: str, keyword: str = "contract") -> pytest.RunResult:
    pytester.makepyfile(named_adam=NAMED_ADAM)
    pytester.syspathinsert()
    return _run(pytester, f"--optimizer={optimizer}", "--optimizer-spec=adam", "--optimizer-contract",
                "-k", keyword, "-rs")


def test_torch_adam_on_the_cpu_keeps_every_contract():
    """The reference for the third-party runs below: torch's Adam with its defaults (no foreach on
    the CPU) skips no check, so neither may they."""
    cand = Candidate.from_path("torch.optim.Adam")
    assert {n: _outcome(n, cand, "adam", dt)[0] for n in NAMES for dt in DTYPES} == \
        {n: "passed" for n in NAMES}


def test_third_party_names_through_the_conftest_hook_keep_the_contract(pytester):
    pytester.makeconftest(NAMED_HOOK_CONFTEST.format(breakage=None))
    result = _named_run(pytester, "named_adam.NamedAdam")
    result.assert_outcomes(passed=2 * len(NAMES))
    # the hook built the optimizers, from every setting under torch's names
    calls = (pytester.path / "calls.txt").read_text().split()
    assert len(calls) >= 2 * len(NAMES) and set(calls) == {"amsgrad"}


def test_third_party_names_through_a_factory_keep_the_contract(pytester):
    result = _named_run(pytester, "named_adam:make_named_adam")
    result.assert_outcomes(passed=2 * len(NAMES))


@pytest.mark.parametrize("broken", ["zero_grad", "per_group"])
def test_the_checks_check_the_optimizer_the_hook_built(pytester, broken):
    pytester.makeconftest(NAMED_HOOK_CONFTEST.format(breakage=broken))
    result = _named_run(pytester, "named_adam.NamedAdam")
    result.assert_outcomes(passed=2 * (len(NAMES) - 1), failed=2)
    result.stdout.fnmatch_lines([f"*named_adam.NamedAdam ?float32, cpu?: contract {broken} broken: *",
                                 f"*named_adam.NamedAdam ?float64, cpu?: contract {broken} broken: *"])


def test_a_case_the_hook_skips_skips_the_checks_with_its_reason(pytester):
    pytester.makeconftest('''
from optimizer_conformance.conformance.candidates import CaseSkipped

def pytest_optimizer_conformance_build(spec, case, params, hyperparameters, dtype, device):
    raise CaseSkipped("NamedAdam is not built here")
''')
    result = _named_run(pytester, "named_adam.NamedAdam")
    result.assert_outcomes(skipped=2 * len(NAMES))
    result.stdout.fnmatch_lines(["*contract zero_grad: NamedAdam is not built here*"])


def test_a_hook_returning_none_falls_back_to_the_class(pytester):
    """torch's Adam under a conftest hook that builds nothing: the default construction, every
    check passing; a third-party signature with an ambiguous name ('decay') cannot be mapped by the
    default construction: skipped with the reason, never run with a guess."""
    pytester.makeconftest("def pytest_optimizer_conformance_build(spec, case, params, hyperparameters, "
                          "dtype, device):\n    return None\n")
    _named_run(pytester, "torch.optim.Adam").assert_outcomes(passed=2 * len(NAMES))
    result = _named_run(pytester, "named_adam.NamedAdam")
    result.assert_outcomes(skipped=2 * len(NAMES))
    result.stdout.fnmatch_lines(["*contract zero_grad: the default construction cannot map the candidate's "
                                 "arguments: the candidate takes 'decay'*"])


def test_a_construction_that_raises_is_a_broken_contract(pytester):
    pytester.makeconftest('''
def pytest_optimizer_conformance_build(spec, case, params, hyperparameters, dtype, device):
    raise ValueError("no such optimizer")
''')
    result = _named_run(pytester, "named_adam.NamedAdam", "contract and float32")
    # as for a class that raises: tensor_lr takes a ValueError for "no tensor lr" and skips
    result.assert_outcomes(failed=len(NAMES) - 1, skipped=1)
    result.stdout.fnmatch_lines(["*contract zero_grad broken: constructing the candidate raised ValueError: "
                                 "no such optimizer*"])
