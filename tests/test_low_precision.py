"""bfloat16 and float16: torch's SGD, Adam and AdamW pass in every CPU implementation, and the
diagnosis only names a variant where the low-precision tolerance can tell it apart."""

from __future__ import annotations

import pytest
import torch
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.diagnosis import _separation, separated
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.runner import run_case
from optimizer_conformance.conformance.sweep import implementations

LOW = ("bfloat16", "float16")
TORCH = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
RUNS = [(spec, label, flags) for spec, cls in TORCH.items() for label, flags in implementations(cls)]


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize(("spec_id", "label", "flags"), RUNS, ids=[f"{s}-{lab}" for s, lab, _ in RUNS])
def test_torch_passes_in_low_precision(spec_id, label, flags, dtype):
    cls = TORCH[spec_id]
    cand = Candidate(f"torch.optim.{cls.__name__}", cls, "torch", flags)
    spec = load_spec(spec_id)
    results = [run_case(cand, spec, case, dtype) for case in spec.cases]
    bad = [(r.case, r.reason, round(r.max_ratio, 3)) for r in results if r.outcome != "passed"]
    assert not bad, bad
    assert max(r.max_ratio for r in results) <= 0.25


def test_computed_separation_agrees_with_the_stored_one():
    """The runtime computation (used for bfloat16/float16) reproduces the goldens' float32 and
    float64 separations, which the generator computed in 80-digit arithmetic."""
    spec = load_spec("adam")
    for case in spec.cases:
        for vid in spec.catalogued:
            for dtype in ("float32", "float64"):
                stored = case.separation[vid][dtype]
                if stored > 1e-3:
                    assert _separation("adam", case.id, vid, dtype) == pytest.approx(stored, rel=0.01)


def test_low_precision_separation_is_smaller_by_the_unit_roundoff_ratio():
    spec = load_spec("adam")
    case = next(c for c in spec.cases if c.id == "adam/large_eps")
    assert separated(spec, case, "adam.eps_hat", "float32")
    f32 = case.separation["adam.eps_hat"]["float32"]
    bf16 = _separation("adam", case.id, "adam.eps_hat", "bfloat16")
    assert bf16 == pytest.approx(f32 * 2.0**-16, rel=0.05)
    assert not separated(spec, case, "adam.eps_hat", "bfloat16")
