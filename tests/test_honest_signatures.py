"""Honest signatures: whether a candidate takes a setting is decided by what it does.

A ``**kwargs`` constructor receives the settings its signature does not name. One that swallows
them (pytorch_optimizer stores unknown names in its param groups and never reads them) lacks the
feature: a case that turns it on is skipped with the reason, found by a probe (the case run again
with the setting neutral gives the same trajectory), never reported as a deviation. One that
refuses them (heavyball, Keras) skips those cases with its error. A candidate that cannot be built
with a case's settings fails that case with "cannot construct: <error>"; when no case can be built
the run is a usage error (exit 4) with that message.

Real candidates run: torch's Adam and the NumPy reference Adam behind such constructors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer_conformance.conformance.candidates import Candidate, UsageError
from optimizer_conformance.conformance.diagnosis import diagnose
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.preflight import check_candidate
from optimizer_conformance.conformance.runner import run_case
from optimizer_conformance.reference import Adam as NumpyAdam

DTYPES = ("float32", "float64")


class SwallowingTorchAdam(torch.optim.Adam):
    """torch's Adam behind a pytorch_optimizer-style constructor: amsgrad and maximize are not in
    the signature, and whatever comes in **kwargs is accepted and never used (pytorch_optimizer
    keeps such names in its defaults, unread; torch's Adam would read these two, so they are dropped)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        for group in self.param_groups:  # whatever the param group dicts said
            group.update(amsgrad=False, maximize=False)


class SwallowingNumpyAdam(NumpyAdam):
    """The NumPy reference Adam with ``maximize`` swallowed by a **kwargs."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class RefusingTorchAdam(torch.optim.Adam):
    """torch's Adam behind a heavyball-style constructor: any name it does not know is an error."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kwargs):
        if kwargs:
            raise TypeError(f"unexpected keyword arguments: {sorted(kwargs)}")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class NeverBuilds(torch.optim.Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        raise RuntimeError("needs a CUDA device")


class BuildsOnlyWithoutDecay(torch.optim.Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        if weight_decay:
            raise ValueError("weight_decay is not supported on this build")
        super().__init__(params, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, maximize=maximize)


def candidate(cls: type, api: str = "torch") -> Candidate:
    return Candidate(path=f"{cls.__module__}.{cls.__name__}", target=cls, api=api)


def run_all(cls: type, dtype: str, api: str = "torch"):
    spec, cand = load_spec("adam"), candidate(cls, api)
    return {case.id: run_case(cand, spec, case, dtype) for case in spec.cases}


def turns_on(case_id: str, name: str) -> bool:
    case = next(c for c in load_spec("adam").cases if c.id == case_id)
    return any(g.hyperparameters.get(name) for g in case.groups)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_swallowed_setting_skips_its_cases_with_the_reason(dtype):
    results = run_all(SwallowingTorchAdam, dtype)
    swallowed = {cid for cid in results if turns_on(cid, "amsgrad") or turns_on(cid, "maximize")}
    assert swallowed, "the adam cases turn amsgrad and maximize on"
    assert not [cid for cid, res in results.items() if res.outcome == "failed"], results
    skipped = {cid for cid, res in results.items() if res.outcome == "skipped"}
    # a case whose golden the candidate still follows without the feature passes (the feature is
    # invisible there); every other case that turns it on is skipped with the reason
    assert skipped and skipped <= swallowed, (skipped, swallowed)
    for cid in skipped:
        reason = results[cid].reason
        assert reason.startswith(("candidate ignores 'amsgrad'", "candidate ignores 'maximize'")), reason
        assert "takes it through **kwargs" in reason and "not implemented" in reason, reason
    assert diagnose(results.values()).verdict == "conforms"


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_swallowing_numpy_candidate_is_probed_too(dtype):
    results = run_all(SwallowingNumpyAdam, dtype, api="numpy")
    maximize = {cid for cid in results if turns_on(cid, "maximize")}
    assert maximize
    for cid in maximize:
        res = results[cid]
        assert res.outcome == "skipped", (cid, res.outcome, res.reason)
        assert res.reason.startswith("candidate ignores 'maximize'"), res.reason
    assert all(results[c].outcome == "passed" for c in results if c not in maximize)


def test_an_honoured_kwargs_setting_is_not_skipped():
    """A real deviation behind **kwargs stays a failure: the probe sees the setting change the
    trajectory. torch's Adam with maximize honoured but the L2 term decoupled (AdamW's decay)."""

    class DecouplingAdam(torch.optim.AdamW):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, **kwargs):
            super().__init__(params, lr=lr, betas=betas, eps=eps, **kwargs)

    spec, cand = load_spec("adam"), candidate(DecouplingAdam)
    case = next(c for c in spec.cases if c.id == "adam/weight_decay_maximize")
    res = run_case(cand, spec, case, "float64")
    assert res.outcome == "failed", res.reason
    assert "adam.decoupled_decay" in res.matches


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_refused_setting_skips_its_cases_with_the_error(dtype):
    results = run_all(RefusingTorchAdam, dtype)
    refused = {cid for cid in results if turns_on(cid, "amsgrad") or turns_on(cid, "maximize")}
    assert not [cid for cid, res in results.items() if res.outcome == "failed"], results
    skipped = {cid for cid, res in results.items() if res.outcome == "skipped"}
    # a case that turns a setting on in its second param group only sends it in that group's dict
    # (torch's Adam reads it there): the constructor never sees it, and the case runs
    assert skipped and skipped <= refused, (skipped, refused)
    for cid in skipped:
        assert "its constructor refused it through **kwargs (TypeError: unexpected keyword" in results[cid].reason


def test_a_case_that_cannot_be_built_says_cannot_construct():
    spec, cand = load_spec("adam"), candidate(BuildsOnlyWithoutDecay)
    check_candidate(cand, spec)  # some cases build: no usage error
    results = {case.id: run_case(cand, spec, case, "float32") for case in spec.cases}
    decay = {cid for cid in results if turns_on(cid, "weight_decay")}
    assert decay
    for cid in decay:
        assert results[cid].outcome == "failed"
        assert results[cid].reason.startswith("cannot construct: ValueError: weight_decay is not supported on "
                                              "this build at "), results[cid].reason
    assert all(results[c].outcome == "passed" for c in results if c not in decay)


def test_a_candidate_no_case_can_build_is_a_usage_error():
    with pytest.raises(UsageError, match=r"NeverBuilds: cannot construct: RuntimeError: needs a CUDA device .*"
                                         r"\(no case of spec 'adam' can be built with its settings; the first "
                                         r"tried: adam/defaults\)"):
        check_candidate(candidate(NeverBuilds), load_spec("adam"))


def test_a_run_where_no_case_can_build_exits_4(pytester):
    pytester.makepyfile(never='''
import torch

class Adam(torch.optim.Adam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        raise RuntimeError("needs a CUDA device")
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--optimizer=never.Adam")
    assert result.ret == 4
    errors = [line for line in result.outlines + result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "cannot construct: RuntimeError: needs a CUDA device" in errors[0], errors


def test_the_probe_compares_against_the_neutral_setting():
    """The probe runs the case with the setting neutral: a swallowing candidate's two runs agree
    bit for bit, and both differ from the golden (the reason the case failed)."""
    from optimizer_conformance.conformance.open_loop import _final_params, _neutralised

    spec, cand = load_spec("adam"), candidate(SwallowingTorchAdam)
    case = next(c for c in spec.cases if c.id == "adam/amsgrad_shrinking_gradients")
    on = _final_params(cand, spec, case, "float64", "cpu")
    off = _final_params(cand, spec, _neutralised(case, "amsgrad", False), "float64", "cpu")
    assert all(np.array_equal(on[k], off[k]) for k in on)
    assert not all(np.allclose(on[k], case.expected[k][-1]) for k in on)


def test_the_probe_needs_the_setting_to_matter_in_the_case():
    """AMSGrad changes nothing while v only grows: in such a case a candidate that implements it
    gives the same trajectory with it off, and the probe must not call the setting ignored (a
    failing candidate would be skipped instead of failing). The spec's reference decides."""
    from optimizer_conformance.conformance.kinds import load_spec
    from optimizer_conformance.conformance.open_loop import _matters

    adamw = load_spec("adamw")
    cases = {c.id: c for c in adamw.cases}
    assert _matters(adamw, cases["adamw/amsgrad_shrinking_gradients"], "amsgrad", False)
    assert not _matters(adamw, cases["adamw/resume"], "amsgrad", False)


# -- a setting the candidate lacks, at the spec's default ------------------------------------------


class NAdamWithoutPsi(torch.optim.NAdam):
    """torch's NAdam without a ``momentum_decay`` argument: ψ hard-wired to torch's default 0.004
    (as a library without the knob hard-wires its own behaviour)."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)


class NAdamRefusingPsi(torch.optim.NAdam):
    """The same behind a Keras-style ``**kwargs`` that refuses every name it does not know."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, maximize=False, **kwargs):
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)


class NAdamConstantMuWithoutPsi(NAdamWithoutPsi):
    """A candidate without the knob that does not do the default either: μ_t = β₁ (optax's nadam)."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            group["momentum_decay"] = 1e9  # 0.96^(tψ) = 0: μ_t = β₁·(1 − 0) = β₁
        return super().step(closure)


def psi_values(case) -> set:
    return {g.hyperparameters["momentum_decay"] for g in case.groups}


@pytest.mark.parametrize("cls", [NAdamWithoutPsi, NAdamRefusingPsi])
def test_a_setting_the_candidate_lacks_runs_the_cases_at_the_spec_default(cls):
    """A candidate without ``momentum_decay`` runs the cases that set it to the spec's default (torch's
    ψ = 0.004) — there it should do what the spec does — and skips the others with the reason."""
    spec, cand = load_spec("nadam"), candidate(cls)
    default = spec.default("momentum_decay")
    assert default == 0.004 and spec.neutral("momentum_decay") is None
    results = {case.id: (case, run_case(cand, spec, case, "float64")) for case in spec.cases}
    at_default = {cid for cid, (case, _) in results.items() if psi_values(case) == {default}}
    assert at_default and len(at_default) < len(results), at_default
    for cid, (_, res) in results.items():
        if cid in at_default:
            assert res.outcome == "passed", (cid, res.outcome, res.reason)
        else:
            assert res.outcome == "skipped", (cid, res.outcome)
            assert "'momentum_decay'" in res.reason, res.reason


def test_a_candidate_that_lacks_the_setting_and_its_default_behaviour_is_diagnosed():
    """Running the default cases is not a pass by construction: a candidate without the knob that
    hard-wires another behaviour (optax's nadam: no μ schedule) fails them and is named. (In float32:
    torch's float32 μ product, an acceptable variant of its own, is then the parameter's dtype.)"""
    spec, cand = load_spec("nadam"), candidate(NAdamConstantMuWithoutPsi)
    results = [run_case(cand, spec, case, "float32") for case in spec.cases]
    failed = [r for r in results if r.outcome == "failed"]
    assert failed, [(r.case, r.outcome, r.reason) for r in results]
    diag = diagnose(results)
    assert diag.verdict == "variant" and diag.variants == ["nadam.constant_mu"], diag.text


class NAdamNeverBuilds(torch.optim.NAdam):
    """A **kwargs constructor whose error names the setting for another reason: it raises whatever it
    is given, so leaving the setting out changes nothing."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, maximize=False, **kwargs):
        raise RuntimeError("momentum_decay schedules need a CUDA device")


def test_an_error_that_names_a_setting_at_its_default_does_not_drop_it():
    spec, cand = load_spec("nadam"), candidate(NAdamNeverBuilds)
    case = next(c for c in spec.cases if c.id == "nadam/defaults")
    res = run_case(cand, spec, case, "float64")
    # the refusal stands as it is (the case is skipped with the constructor's error), and the setting
    # is still sent: nothing showed that the candidate runs without it
    assert res.outcome == "skipped" and "refused it through **kwargs (RuntimeError" in res.reason, res.reason
    assert cand.accepts("momentum_decay", spec)


# -- a factory that forwards **kwargs --------------------------------------------------------------


def forwarding_adamw(params, **hyperparameters):
    """A factory that names nothing and forwards everything to torch's AdamW (whose default
    weight_decay is 0.01, not the feature off)."""
    return torch.optim.AdamW(params, **hyperparameters)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_forwarding_factory_gets_the_settings_at_their_neutral_value(dtype):
    """The cases at weight_decay = 0 (the one-feature cases) reach AdamW as 0: every case passes."""
    spec, cand = load_spec("adamw"), Candidate(path=f"{__name__}:forwarding_adamw", target=forwarding_adamw,
                                               api="torch")
    at_neutral = [c for c in spec.cases if all(g.hyperparameters["weight_decay"] == 0 for g in c.groups)]
    assert at_neutral
    results = {case.id: run_case(cand, spec, case, dtype) for case in spec.cases}
    assert all(r.outcome == "passed" for r in results.values()), \
        {cid: r.reason for cid, r in results.items() if r.outcome != "passed"}
