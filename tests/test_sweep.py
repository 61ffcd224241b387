"""The torch.optim sweep: implementations found from the signatures, verdicts and findings."""

from __future__ import annotations

import torch
from optimizer_conformance.conformance.sweep import implementations, sweep_spec, table


def test_implementations_follow_the_constructor_flags():
    assert [label for label, _ in implementations(torch.optim.Adam)] == ["forloop", "foreach", "fused"]
    assert [label for label, _ in implementations(torch.optim.RMSprop)] == ["forloop", "foreach"]
    assert implementations(torch.optim.SparseAdam) == [("default", {})]


def test_asgd_passes_everywhere_and_names_its_acceptable_variants():
    runs = sweep_spec("asgd")
    assert {(r.implementation, r.dtype) for r in runs} == {
        (i, d) for i in ("forloop", "foreach") for d in ("float32", "float64")}
    assert all(r.verdict == "pass" and r.failed == 0 and r.worst <= 1 for r in runs)
    f64 = {r.implementation: r.accepted for r in runs if r.dtype == "float64"}
    assert f64["forloop"] == ["asgd.float32_eta_mu"]
    # foreach computes η in float32 arithmetic; on a case where the two acceptable variants agree
    # within tolerance (a generated one) the first listed is reported as well
    assert "asgd.float32_eta_arithmetic" in f64["foreach"]
    assert set(f64["foreach"]) <= {"asgd.float32_eta_arithmetic", "asgd.float32_eta_mu"}
    text = table(runs, markdown=True)
    assert "pass (acceptable)" in text and "asgd.float32_eta_mu" in text


def test_on_cuda_the_capturable_implementation_and_graph_mode_are_listed():
    labels = [label for label, _ in implementations(torch.optim.Adam, "cuda:0")]
    assert labels == ["forloop", "foreach", "fused", "capturable", "cuda_graph"]
    assert [label for label, _ in implementations(torch.optim.SGD, "cuda")] == ["forloop", "foreach", "fused"]


class _FusedMissingHere(torch.optim.SGD):
    """An implementation torch does not have for this device: every step raises as torch does."""

    def step(self, closure=None):
        if self.defaults.get("fused"):
            raise NotImplementedError("Could not run 'aten::_fused_sgd_' with arguments from the 'CUDA' backend.")
        return super().step(closure)


def test_an_implementation_torch_refuses_is_unsupported_not_failed(monkeypatch):
    from optimizer_conformance.conformance import sweep
    from optimizer_conformance.conformance.candidates import Candidate

    real = Candidate.from_path
    monkeypatch.setattr(Candidate, "from_path", staticmethod(
        lambda path, kwargs=None: Candidate(path, _FusedMissingHere, "torch", kwargs or {})
        if path == "torch.optim.SGD" else real(path, kwargs)))
    runs = {(r.implementation, r.dtype): r for r in sweep.sweep_spec("sgd")}
    assert runs[("fused", "float32")].verdict == "unsupported"
    assert "Could not run" in runs[("fused", "float32")].detail
    assert runs[("forloop", "float32")].verdict == "pass"
