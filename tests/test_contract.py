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
from optimizer_conformance.conformance.golden import load_spec

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
    result.assert_outcomes(passed=16 + 2 * len(NAMES))
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
