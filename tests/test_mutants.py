"""The suite catches and names every catalogued variant, and passes the correct implementations.

For each spec and each of its variants (as listed in the golden index), a mutant optimizer
(``tests/mutants``) implements the spec with exactly that variant's formula. Running every golden
case of the spec against it must fail at least one case and diagnose that variant, and only it —
in float32 and in float64. The unmutated controls must conform, and agree bit for bit with
``torch.optim`` (single-tensor path), so that a mutant differs from torch in its formula only.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from functools import cache

import numpy as np
import pytest
import torch
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.diagnosis import diagnose
from optimizer_conformance.conformance.golden import index
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.runner import run_case
from optimizer_conformance.conformance.scoring import CaseResult

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.mutants import CONTROLS, MUTANTS
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path (rootdir-relative)
    from mutants import CONTROLS, MUTANTS

DTYPES = ("float32", "float64")
SPECS = tuple(index()["specs"])
TORCH_SPECS = tuple(sid for sid in SPECS if index()["specs"][sid]["torch_class"] is not None)
INDEXED = [(spec, v["id"]) for spec in SPECS for v in index()["specs"][spec]["variants"] if not v["acceptable"]]
ACCEPTABLE = [(spec, v["id"]) for spec in SPECS for v in index()["specs"][spec]["variants"] if v["acceptable"]]
PAIRS = sorted(MUTANTS)
PAIR_IDS = [f"{spec}-{variant}" for spec, variant in PAIRS]

# These variants keep Sutskever's velocity v = −γ·b under torch's ``momentum_buffer``: on the
# constant-lr cases their parameters follow the spec and only that state differs, which the
# diagnosis reports as such (not as an unexplained failure).
STATE_CONVENTION = {("sgd", "sgd.momentum_lr_in_buffer"), ("sgd", "sgd.nesterov_lookahead"), ("sgd", "sgd.keras")}
# Muon's sum form keeps 1/(1 − μ) times torch's EMA under ``momentum_buffer``: away from the ε clamp
# the normalisation hides the factor, so its parameters follow the spec and only that state differs.
STATE_CONVENTION |= {("muon", "muon.sum_momentum")}

# Variants that change a state's value where the parameters cannot show it: Keras's Adamax adds ε
# outside the maximum, u ← max(β₂·u, |g|) and u + ε in the step, where torch keeps max(β₂·u, |g| + ε)
# under ``exp_inf``. Whenever |g| wins the maximum both give the same step, so on a case where it
# wins throughout (adamax/only_param_groups in float32) only ``exp_inf`` differs: a state-only
# failure, reported as such, not an unexplained one.
STATE_ONLY_ON_SOME_CASES = {("adamax", "adamax.eps_outside_max"): "exp_inf", ("adamax", "adamax.keras"): "exp_inf"}
# SOAP's eigh refresh on soap/long_horizon: one gradient G repeated for 998 steps, so the bases
# refreshed at k = 250, 500, 750 approach G's singular vectors, where G̃ = Q_Lᵀ G Q_R and the
# rotated m are nearly diagonal; the eigh refresh leaves v's off-diagonal entries different
# (exp_avg_sq[0, 1] at t = 999: 0.057 for 1.2e-4), where the step divides next to nothing: the
# params stay within tolerance and only exp_avg_sq shows it (the other cases fail on the params).
STATE_ONLY_ON_SOME_CASES |= {("soap", "soap.eigh_refresh"): "exp_avg_sq"}


def candidate(cls: type, **kwargs) -> Candidate:
    path = f"{cls.__module__}.{cls.__name__}"
    return Candidate(path=path, target=cls, api="torch", kwargs=kwargs)


def run_spec(cls: type, spec_id: str, dtype: str, **kwargs) -> list[CaseResult]:
    cand, spec = candidate(cls, **kwargs), load_spec(spec_id)
    return [run_case(cand, spec, case, dtype) for case in spec.cases]


@cache
def run_mutant(spec_id: str, variant_id: str, dtype: str):
    """(case results, diagnosis, description) of the mutant: run once, shared by the tests."""
    results = run_spec(MUTANTS[(spec_id, variant_id)], spec_id, dtype)
    diag = diagnose(results)
    head = f"{spec_id} / {variant_id} / {dtype}: {diag.verdict} {diag.variants}"
    detail = f"{head}\n{describe(results)}\n{diag.text}"
    return results, diag, detail


@cache
def run_control(spec_id: str, dtype: str) -> list[CaseResult]:
    """The control's case results: run once, shared by test_control_conforms and
    test_control_is_bitwise_torch (neither modifies them)."""
    return run_spec(CONTROLS[spec_id], spec_id, dtype)


def describe(results: list[CaseResult]) -> str:
    return "\n".join(
        f"  {r.case}: {r.outcome} matches={r.matches} max_ratio={r.max_ratio:.3g}"
        + (f" reason={r.reason!r}" if r.reason else "")
        for r in results
    )


def test_every_indexed_variant_has_a_mutant():
    missing = sorted(set(INDEXED) - set(MUTANTS))
    assert not missing, f"variants in the golden index without a mutant in tests/mutants: {missing}"
    stale = sorted(set(MUTANTS) - set(INDEXED))
    assert not stale, f"mutants for variants the golden index does not list: {stale}"
    assert set(CONTROLS) == set(SPECS)


def test_mutants_are_torch_optimizers():
    for cls in [*MUTANTS.values(), *CONTROLS.values()]:
        assert issubclass(cls, torch.optim.Optimizer), cls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("spec_id", "variant_id"), PAIRS, ids=PAIR_IDS)
def test_mutant_is_caught_and_named(spec_id, variant_id, dtype):
    """The mutant fails, is named by its variant alone, and every failing case matches that
    variant: none is left unexplained. (One test, not two: under ``pytest -n`` two tests of one
    mutant often ran on different workers, each running the mutant's cases again.)"""
    results, diag, detail = run_mutant(spec_id, variant_id, dtype)
    assert not [r for r in results if r.outcome == "skipped"], detail
    assert [r for r in results if r.outcome == "failed"], "no case failed: " + detail
    assert diag.verdict == "variant", detail
    assert diag.variants == [variant_id], detail
    assert variant_id in diag.text, diag.text
    # every failure explained
    assert not diag.unexplained, detail
    state_only = [r for r in results if r.outcome == "failed" and r.params_conform]
    if (spec_id, variant_id) in STATE_CONVENTION:
        assert state_only, detail
        assert "momentum_buffer" in diag.text and "parameters follow the spec" in diag.text, detail
    elif (spec_id, variant_id) in STATE_ONLY_ON_SOME_CASES:
        assert all(r.first_divergence.quantity == STATE_ONLY_ON_SOME_CASES[(spec_id, variant_id)]
                   for r in state_only), detail
    else:
        assert not state_only, detail


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec_id", SPECS)
def test_control_conforms(spec_id, dtype):
    results = run_control(spec_id, dtype)
    diag = diagnose(results)
    assert all(r.outcome == "passed" for r in results), describe(results)
    assert diag.verdict == "conforms", diag.text


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec_id", TORCH_SPECS)
def test_control_is_bitwise_torch(spec_id, dtype):
    torch_class = getattr(torch.optim, index()["specs"][spec_id]["torch_class"].rpartition(".")[2])
    ours = run_control(spec_id, dtype)
    forloop = {"foreach": False} if "foreach" in inspect.signature(torch_class).parameters else {}
    theirs = run_spec(torch_class, spec_id, dtype, **forloop)
    for a, b in zip(ours, theirs, strict=True):
        assert a.outcome == b.outcome == "passed", (a.case, a.reason, b.reason)
        for name in b.actual:
            np.testing.assert_array_equal(a.actual[name], b.actual[name], err_msg=a.case)


# -- acceptable variants: torch's documented deviations ------------------------------------------


@cache
def not_installed(spec_id: str) -> list[str]:
    """The libraries of the spec's implementations (the board's) that are not installed here: the
    optional third-party ones (``.ci/board-libraries.txt``, not in any extra)."""
    paths = [impl["path"] for impl in index()["specs"][spec_id]["implementations"]]
    return [path for path in paths if importlib.util.find_spec(path.split(":")[0].split(".")[0]) is None]


@cache
def torch_runs(spec_id: str) -> list[tuple[str, str, list[CaseResult]]]:
    """(implementation, dtype, results) of torch's class for the spec, every CPU implementation; for
    a spec torch has no class of, its library implementations (the board's) that are installed
    and run on torch (an optax or Keras one is checked by the board and tests/test_ecosystems.py;
    compiling it for every case here took most of this function's time)."""
    from optimizer_conformance.conformance.sweep import implementations

    meta = index()["specs"][spec_id]
    if meta["torch_class"] is None:
        spec, runs = load_spec(spec_id), []
        for impl in meta["implementations"]:
            if impl["path"] in not_installed(spec_id):
                continue
            cand = Candidate.from_path(impl["path"], impl["kwargs"])
            if cand.api != "torch":
                continue
            cand = dataclasses.replace(cand, args=dict(impl.get("args", {})))
            runs += [(impl["path"], dtype, [run_case(cand, spec, case, dtype) for case in spec.cases])
                     for dtype in DTYPES]
        return runs
    cls = getattr(torch.optim, meta["torch_class"].rpartition(".")[2])
    return [(label, dtype, run_spec(cls, spec_id, dtype, **flags))
            for label, flags in implementations(cls) for dtype in DTYPES]


@pytest.mark.parametrize(("spec_id", "variant_id"), ACCEPTABLE, ids=[f"{s}-{v}" for s, v in ACCEPTABLE])
def test_acceptable_variant_is_real_and_accepted(spec_id, variant_id):
    """Some torch implementation follows the acceptable variant where the exact spec alone would
    fail it (the finding is real), passes as acceptable, and the finding names the variant."""
    accepted = [(label, dtype, r) for label, dtype, results in torch_runs(spec_id) for r in results
                if r.accepted == variant_id]
    if not accepted and index()["specs"][spec_id]["torch_class"] is None and not_installed(spec_id):
        pytest.skip(f"{variant_id} is shown by an implementation of {spec_id} from a library that is not "
                    f"installed: {', '.join(not_installed(spec_id))} (pip install -r .ci/board-libraries.txt)")
    assert accepted, f"no torch implementation of {spec_id} needed {variant_id}"
    for label, dtype, r in accepted:
        assert r.outcome == "passed" and r.max_ratio > 1.0 and r.accepted_ratio <= 1.0, (label, dtype, r.case)
        assert any(variant_id in f for f in r.findings), r.findings


@pytest.mark.parametrize("spec_id", sorted({s for s, _ in ACCEPTABLE}))
def test_acceptable_variants_do_not_hide_a_wrong_candidate(spec_id):
    """A mutant of a spec with acceptable variants still fails: accepting a documented deviation
    does not open the door to the catalogued mistakes."""
    mutants = [(v, cls) for (s, v), cls in MUTANTS.items() if s == spec_id]
    assert mutants, spec_id
    for variant_id, _cls in mutants:
        results, _, _ = run_mutant(spec_id, variant_id, "float64")  # run_spec(cls, ...), shared
        assert any(r.outcome == "failed" for r in results), variant_id


# -- candidates that break rather than compute a variant -------------------------------------------


class RaisesInStep(CONTROLS["sgd"]):
    def step(self, closure=None):
        raise RuntimeError("boom in step")


class ReturnsNaN(CONTROLS["sgd"]):
    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.fill_(float("nan"))


class ConstructorRaises(CONTROLS["sgd"]):
    def __init__(self, params, **kwargs):
        raise ValueError("boom in __init__")


def run_first_sgd_case(cls: type, dtype: str) -> CaseResult:
    spec = load_spec("sgd")
    return run_case(candidate(cls), spec, spec.cases[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_candidate_raising_in_step_fails_with_the_exception(dtype):
    res = run_first_sgd_case(RaisesInStep, dtype)
    assert res.outcome == "failed"
    assert res.steps_run == 0
    assert res.reason.startswith("step 1: step() raised RuntimeError: boom in step"), res.reason


@pytest.mark.parametrize("dtype", DTYPES)
def test_candidate_whose_constructor_raises_fails_with_the_exception(dtype):
    res = run_first_sgd_case(ConstructorRaises, dtype)
    assert res.outcome == "failed"
    assert res.steps_run == 0
    expected = "cannot construct: ValueError: boom in __init__"
    assert res.reason.startswith(expected), res.reason


@pytest.mark.parametrize("dtype", DTYPES)
def test_candidate_returning_nan_fails_at_the_first_step(dtype):
    res = run_first_sgd_case(ReturnsNaN, dtype)
    assert res.outcome == "failed"
    assert res.max_ratio == float("inf")
    assert res.matches == []
    div = res.first_divergence
    assert div is not None and div.step == 1 and np.isnan(div.actual), div
    assert diagnose([res]).verdict == "unknown"
