"""GPUs: ``--optimizer-device=cuda``, torch's fused and capturable paths, and CUDA-graph cases.

Two halves:
- without a GPU (CI): the device option skips every case with the reason, the graph driver's
  bookkeeping (warm-up, static gradients, capture once, replay) runs on the CPU with an eager
  stand-in for the graph, and which cases and candidates get graph cases is checked;
- with a GPU (``torch.cuda.is_available()``; skipped with the reason elsewhere): torch.optim
  conforms on CUDA in every implementation, including ``capturable=True`` and graph capture, and
  an optimizer whose step counter lives on the host is caught when its step() is replayed.
"""

from __future__ import annotations

import json

import numpy as np
import optimizer_conformance.conformance.plugin  # noqa: F401  (in-process pytester keeps it)
import pytest
import torch
from optimizer_conformance.conformance import cuda_graph
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.runner import run_case

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
GRAPH_SPECS = ["adam", "adamw", "rmsprop", "adadelta", "adamax", "nadam", "radam", "asgd", "rprop"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


def _graph_cases(spec_id: str):
    return [c for c in load_spec(spec_id).cases if cuda_graph.graph_ineligible(c) is None]


# -- without a GPU ------------------------------------------------------------------------------
@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_cuda_without_cuda_skips_every_case_with_the_reason(pytester):
    result = _run(pytester, "--optimizer=torch.optim.Adam", "--optimizer-device=cuda", "--optimizer-contract", "-rs")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK
    runs = 2 * len(load_spec("adam").cases)  # every case in both dtypes
    assert outcomes.get("skipped", 0) == runs + 26 and "passed" not in outcomes and "failed" not in outcomes
    result.stdout.fnmatch_lines(["*verdict: NOT CHECKED*CUDA is not available*"])
    result.stdout.fnmatch_lines([f"SKIPPED [[]{runs}[]]*--optimizer-device=cuda: CUDA is not available on this machine"])


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_sweep_on_cuda_without_cuda_says_so(capsys):
    from optimizer_conformance.conformance import sweep

    assert sweep.main(["--spec", "adam", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_a_malformed_device_is_a_usage_error(pytester):
    result = _run(pytester, "--optimizer=torch.optim.Adam", "--optimizer-device=gpu0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --optimizer-device='gpu0'*"])


def test_numpy_candidates_are_cpu_only(pytester):
    result = _run(pytester, "--optimizer=optimizer_conformance.reference.adam.Adam", "--optimizer-device=cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *only torch candidates run on a device other than cpu*"])


@pytest.mark.parametrize("spec_id", GRAPH_SPECS)
def test_every_capturable_spec_has_graph_cases_and_says_why_others_are_not(spec_id):
    spec = load_spec(spec_id)
    eligible = _graph_cases(spec_id)
    assert len(eligible) >= 3, "graph mode would check too little of this spec"
    for case in spec.cases:
        why = cuda_graph.graph_ineligible(case)
        if case in eligible:
            continue
        assert why and ("no gradient" in why or "after the capture" in why or "steps" in why), (case.id, why)
        # the reason is true: that case has a None gradient, or a change/reload after the warm-up
        after = case.steps[cuda_graph.WARMUP:]
        assert (any(g is None for s in case.steps for g in s.grads.values())
                or any(s.changes or s.reload_before for s in after)
                or case.n_steps < cuda_graph.WARMUP + 2)


def test_closed_loop_and_sparse_cases_are_not_graph_cases():
    assert all("closure" in cuda_graph.graph_ineligible(c) for c in load_spec("lbfgs").cases)
    assert all("sparse" in cuda_graph.graph_ineligible(c) for c in load_spec("sparseadam").cases)


def test_which_candidates_get_graph_cases():
    adam = Candidate.from_path("torch.optim.Adam")
    assert cuda_graph.candidate_ineligible(adam, "cuda:0") is None
    assert "cuda" in cuda_graph.candidate_ineligible(adam, "cpu")
    assert "capturable=false" in cuda_graph.candidate_ineligible(
        Candidate.from_path("torch.optim.Adam", {"capturable": False}), "cuda")
    assert "no capturable flag" in cuda_graph.candidate_ineligible(Candidate.from_path("torch.optim.SGD"), "cuda")
    numpy_adam = Candidate.from_path("optimizer_conformance.reference.adam.Adam")
    assert "torch candidates" in cuda_graph.candidate_ineligible(numpy_adam, "cuda")


@pytest.fixture
def eager_graphs(monkeypatch):
    """The graph driver on the CPU: 'capture' records step(), 'replay' calls it; no capturable
    flag (torch refuses capturable=True for CPU params)."""
    stand_in = cuda_graph.EagerReplay()
    monkeypatch.setattr(cuda_graph, "CudaGraphs", lambda torch: stand_in)
    monkeypatch.setattr(cuda_graph, "FLAGS", {})
    return stand_in


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec_id", ["adam", "adamw", "rmsprop", "nadam", "radam", "rprop"])
def test_graph_driver_bookkeeping_on_the_cpu(eager_graphs, spec_id, dtype):
    """Warm-up steps eager, one capture, a replay per later step: the trajectory still conforms,
    and the record says it ran as a graph case."""
    spec = load_spec(spec_id)
    cand = Candidate.from_path(spec.torch_class)
    cases = _graph_cases(spec_id)
    for case in cases:
        res = run_case(cand, spec, case, dtype, "cpu", mode=cuda_graph.MODE)
        assert res.outcome == "passed", (case.id, res.reason, res.max_ratio)
        assert res.mode == cuda_graph.MODE and res.steps_run == case.n_steps
    assert eager_graphs.warmups == cuda_graph.WARMUP * len(cases)
    assert eager_graphs.captures == len(cases)
    assert eager_graphs.replays == sum(c.n_steps - cuda_graph.WARMUP for c in cases)


class _ReplacesGrad(torch.optim.Adam):
    """Swaps p.grad for a copy after each step: a captured graph would go on reading the old tensor."""

    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = p.grad.clone()
        return loss


def test_a_candidate_that_replaces_the_static_gradients_fails_the_graph_case(eager_graphs):
    spec = load_spec("adam")
    cand = Candidate("tests._ReplacesGrad", _ReplacesGrad, "torch", {})
    case = _graph_cases("adam")[0]
    assert run_case(cand, spec, case, "float64", "cpu").outcome == "passed"  # eagerly it conforms
    res = run_case(cand, spec, case, "float64", "cpu", mode=cuda_graph.MODE)
    assert res.outcome == "failed" and res.steps_run == 1
    assert "step 2: step() (eager warm-up, capturable=True) raised RuntimeError: step() replaced" in res.reason


def test_the_report_records_the_mode():
    from optimizer_conformance.conformance.report import CaseRecord

    rec = CaseRecord("adam", "adam/x", "float32", "cuda:0", "passed", mode=cuda_graph.MODE)
    assert CaseRecord.from_json(json.loads(json.dumps(rec.to_json()))).mode == cuda_graph.MODE


# -- with a GPU -----------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("kwargs", [{"foreach": False}, {"foreach": True}, {"fused": True}, {"capturable": True}],
                         ids=lambda k: json.dumps(k))
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_torch_optim_conforms_on_cuda_with_graph_cases(pytester, cls, kwargs):
    n_graph = 2 * len(_graph_cases(cls.lower()))
    result = _run(pytester, f"--optimizer=torch.optim.{cls}", "--optimizer-device=cuda",
                  f"--optimizer-kwargs={json.dumps(kwargs)}")
    # the graph cases are built with capturable=True on top of the given flags (fused Adam takes it)
    result.assert_outcomes(passed=2 * len(load_spec(cls.lower()).cases) + n_graph)
    result.stdout.fnmatch_lines(["*verdict: CONFORMS*", "*cuda_graph*"])


@needs_cuda
def test_sgd_on_cuda_has_no_graph_cases_and_conforms(pytester):
    for kwargs in ({"foreach": False}, {"foreach": True}, {"fused": True}):
        result = _run(pytester, "--optimizer=torch.optim.SGD", "--optimizer-device=cuda",
                      f"--optimizer-kwargs={json.dumps(kwargs)}")
        result.assert_outcomes(passed=2 * len(load_spec("sgd").cases))


@needs_cuda
def test_sweep_on_cuda_passes_every_implementation():
    from optimizer_conformance.conformance import sweep

    runs = [r for sid in ["sgd", *GRAPH_SPECS, "adagrad", "adafactor", "muon"] for r in sweep.sweep_spec(sid, "cuda")]
    assert {r.implementation for r in runs} >= {"forloop", "foreach", "fused", "capturable", cuda_graph.MODE}
    bad = [(r.optimizer, r.implementation, r.dtype, r.detail) for r in runs if r.verdict == "fail"]
    assert not bad


HOST_COUNTER = '''
import torch

class Adam(torch.optim.Adam):
    """Takes capturable but keeps the step count on the host: a graph freezes the bias correction
    of the step it captured."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                st = self.state[p]
                if not st:
                    st["n"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                st["n"] += 1
                g = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                st["exp_avg"].lerp_(g, 1 - beta1)
                st["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                bc1, bc2 = 1 - beta1 ** st["n"], 1 - beta2 ** st["n"]
                denom = (st["exp_avg_sq"] / bc2).sqrt_().add_(group["eps"])
                p.addcdiv_(st["exp_avg"], denom, value=-group["lr"] / bc1)
'''


@needs_cuda
def test_a_host_side_step_counter_is_caught_by_the_graph_cases(pytester):
    pytester.makepyfile(hostcounter=HOST_COUNTER)
    result = _run(pytester, "--optimizer=hostcounter.Adam", "--optimizer-spec=adam", "--optimizer-device=cuda",
                  "-k", "not amsgrad and not maximize")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 2  # graph cases: the captured bias correction is replayed
    result.stdout.fnmatch_lines(["*step() captured in a CUDA graph]: hostcounter.Adam does not conform*"])
    eager = _run(pytester, "--optimizer=hostcounter.Adam", "--optimizer-spec=adam", "--optimizer-device=cuda",
                 "-k", "not amsgrad and not maximize and not cuda_graph")
    assert "failed" not in eager.parseoutcomes()  # eagerly the same code conforms


@needs_cuda
def test_the_graph_replays_on_the_gpu():
    """The real CudaGraphs: a captured step replayed twice moves the params twice."""
    p = torch.zeros(3, device="cuda", requires_grad=True)
    p.grad = torch.ones(3, device="cuda")
    opt = torch.optim.Adam([p], lr=0.5, capturable=True)
    opt.step()
    opt.step()
    replay = cuda_graph.CudaGraphs(torch).capture(opt.step, p.device)
    before = p.detach().clone()
    replay()
    replay()
    assert not torch.equal(before, p.detach())
    assert np.isfinite(p.detach().cpu().numpy()).all()
