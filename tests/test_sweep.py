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
    assert f64 == {"forloop": ["asgd.float32_eta_mu"], "foreach": ["asgd.float32_eta_arithmetic"]}
    text = table(runs, markdown=True)
    assert "pass (acceptable)" in text and "asgd.float32_eta_mu" in text
