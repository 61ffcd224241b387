"""Every digit a golden prints is the exact value's (docs/golden-vectors.md): the trajectories
evaluated again at a higher working precision (120 digits instead of 80) print the very same
40-digit strings as the shipped goldens. A golden whose values were rounded to a double before
printing (what derivations/golden_format.fmt did until it printed the working-precision value)
agrees with the exact value in about 17 digits only and fails here."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import mpmath
import pytest
from optimizer_conformance.derivations import SPECS
from optimizer_conformance.derivations import evaluate as evaluation
from optimizer_conformance.derivations.feature_cases import all_cases
from optimizer_conformance.derivations.golden_format import DIGITS, fmt

GOLDEN = Path(__file__).resolve().parent.parent / "conformance" / "golden"


def _shipped(spec_id: str) -> dict[str, list]:
    doc = json.loads((GOLDEN / spec_id / "spec.json").read_text(encoding="utf-8"))
    return {case["id"]: case["steps"] for case in doc["cases"]}


def _agree(ours: str, shipped: str) -> bool:
    """The same 40 significant digits, or one unit of the last apart (the exact value within
    10⁻⁸⁰ of a rounding boundary: the two precisions may round it to either side)."""
    if ours == shipped:
        return True
    a, b = Decimal(ours), Decimal(shipped)
    return abs(a - b) <= Decimal(1).scaleb(a.adjusted() - DIGITS + 1)


def test_fmt_prints_the_value_as_computed_not_its_double():
    with mpmath.workdps(80):
        third = mpmath.mpf(1) / 3
    assert fmt(third) == "0." + "3" * DIGITS
    assert fmt(0.1) == "0.1000000000000000055511151231257827021182"  # a float is exact as it is
    assert fmt(2**70 + 1) == "1180591620717411303425.0"  # so is an int
    with pytest.raises(TypeError):
        fmt("0.1")


@pytest.mark.parametrize("spec_id", ["adamw", "nadam"])
def test_shipped_digits_are_the_exact_values_digits(spec_id, monkeypatch):
    spec = SPECS[spec_id]
    cases = {c.id: c for c in (b.build(spec.defaults()) for b in all_cases(spec))}
    shipped = _shipped(spec_id)
    monkeypatch.setattr(evaluation, "WORKING_DPS", 120)
    evaluation.forget()  # no line result of another precision is reused
    try:
        compared = 0
        for case_id in ("adamw/defaults", "adamw/resume", "nadam/defaults", "nadam/long_horizon"):
            if case_id not in cases:
                continue
            trajectory = evaluation.evaluate(spec.rule, cases[case_id])
            for step, snap in zip(shipped[case_id], trajectory, strict=True):  # a long horizon: 10³ steps
                for name, values in snap.params.items():
                    for x, printed in zip(values, step["expected"]["params"][name], strict=True):
                        assert _agree(fmt(x), printed), (case_id, name, fmt(x), printed)
                        compared += 1
        assert compared > 20
    finally:
        evaluation.forget()
