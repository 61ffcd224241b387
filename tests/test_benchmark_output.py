"""The benchmark's verdict is derived from its target lines; the startup summary's arithmetic.

Pure functions, and one measurement of a real NumPy reference; nothing is timed here."""

from __future__ import annotations

import statistics

import pytest
from optimizer_conformance.conformance.benchmark import (
    CORRECT_TARGET,
    VARIANT_TARGET,
    VERDICT_SECONDS,
    Row,
    Target,
    VerdictRun,
    correct_target,
    format_targets,
    variant_target,
    verdict_targets,
)
from optimizer_conformance.conformance.startup import (
    FLOOR,
    IMPORT,
    MEASURES,
    VERDICT,
    format_summary,
    round_order,
    summarise,
)


def _ok(name: str) -> Target:
    return Target(name, "worst |error| / tolerance", 0.1, "<=", CORRECT_TARGET)


def test_all_targets_met_says_so_and_exits_zero():
    lines, status = format_targets([_ok("correct/sgd"), Target("variants/sgd", "least", 200.0, ">=", 10.0)])
    assert status == 0
    assert [line.split()[0] for line in lines[:-1]] == ["PASS", "PASS"]
    assert lines[-1] == "2 of 2 enforced targets met"


def test_a_failing_target_fails_the_summary_and_the_exit_status():
    bad = Target("variants/adam", "least variant separation", 3.0, ">=", VARIANT_TARGET, unit="×")
    lines, status = format_targets([_ok("correct/sgd"), bad, _ok("correct/adam")])
    assert status == 1
    assert lines[1].startswith("FAIL  variants/adam") and "3× ≥ 10×" in lines[1]
    assert lines[-1] == "1 of 3 enforced targets FAILED: variants/adam"
    assert "met" not in lines[-1]


def test_a_failed_case_fails_a_target_whose_value_is_within_threshold():
    rows = [Row("adam", "torch.optim.Adam(foreach=False)", "float32", 0.1, "adam/defaults", 0),
            Row("adam", "torch.optim.Adam(foreach=True)", "float64", 0.05, "adam/defaults", 2)]
    target = correct_target("adam", rows)
    assert target.value == 0.1 and not target.met
    lines, status = format_targets([target])
    assert status == 1 and lines[0].startswith("FAIL")
    assert "2 case(s) did not pass" in lines[0]
    assert lines[-1] == "1 of 1 enforced targets FAILED: correct/adam"


def test_the_summary_counts_the_lines_it_follows():
    targets = [_ok(f"correct/s{i}") for i in range(10)]
    targets += [Target("correct/x", "m", 0.3, "<=", CORRECT_TARGET), Target("variants/y", "m", 9.9, ">=", 10.0)]
    lines, status = format_targets(targets)
    body = lines[:-1]
    assert len(body) == 12
    failed = [line.split()[1] for line in body if line.startswith("FAIL")]
    assert failed == ["correct/x", "variants/y"]
    assert lines[-1] == f"{len(failed)} of {len(body)} enforced targets FAILED: {', '.join(failed)}"
    assert status == 1


def test_advisory_wall_clock_targets_are_reported_not_enforced_unless_asked():
    runs = [VerdictRun("torch.optim.SGD", 4.0, 0, ""), VerdictRun("torch.optim.Muon", 6.5, 0, "")]
    targets = [_ok("correct/sgd"), *verdict_targets(runs)]
    lines, status = format_targets(targets)
    muon = next(line for line in lines if "verdict-time/torch.optim.Muon" in line)
    assert muon.startswith("FAIL") and "advisory" in muon and f"6.5 s ≤ {VERDICT_SECONDS:g} s" in muon
    assert status == 0
    assert lines[-1] == ("2 of 2 enforced targets met; 1 of 2 advisory targets met (not enforced), "
                         "missed: verdict-time/torch.optim.Muon")
    lines, status = format_targets([_ok("correct/sgd"), *verdict_targets(runs, enforce_time=True)])
    assert status == 1
    assert lines[-1] == "1 of 4 enforced targets FAILED: verdict-time/torch.optim.Muon"


def test_a_verdict_that_exits_non_zero_fails_an_enforced_target():
    runs = [VerdictRun("torch.optim.SGD", 4.0, 0, ""), VerdictRun("torch.optim.Adam", 3.0, 1, "1 failed")]
    lines, status = format_targets(verdict_targets(runs))
    assert status == 1
    assert lines[0].startswith("FAIL  verdict/exit") and "torch.optim.Adam exited 1" in lines[0]
    assert lines[-1].startswith("1 of 1 enforced targets FAILED: verdict/exit")


def test_nothing_enforced_measured_is_a_failure():
    lines, status = format_targets([])
    assert status == 1 and "FAILED" in lines[-1]


def test_a_value_printed_like_its_threshold_gets_more_digits():
    lines, _ = format_targets([Target("correct/z", "m", 0.25004, "<=", 0.25)])
    assert lines[0].startswith("FAIL") and "0.25004 ≤ 0.25" in lines[0]


def test_the_variant_target_is_the_least_separation_over_variants_and_dtypes():
    margins = {"v1": {"float32": (50.0, "c1"), "float64": (1e12, "c2")},
               "v2": {"float32": (12.0, "c3"), "float64": (1e10, "c3")}}
    t = variant_target("s", margins)
    assert (t.value, t.met) == (12.0, True)
    assert t.detail.startswith("v2 float32, c3")


def test_startup_summary_medians_and_ratios():
    rounds = [
        {IMPORT: 1.0, VERDICT: 4.0, FLOOR: 2.0},
        {IMPORT: 1.2, VERDICT: 3.0, FLOOR: 2.4},
        {IMPORT: 0.8, VERDICT: 5.0, FLOOR: 1.6},
        {IMPORT: 1.1, VERDICT: 3.3, FLOOR: 2.2},
        {IMPORT: 5.0, VERDICT: 30.0, FLOOR: 9.0},  # a loaded moment: the median ignores it
    ]
    s = summarise(rounds)
    assert s["rounds"] == 5
    assert s["median_seconds"] == {IMPORT: 1.1, VERDICT: 4.0, FLOOR: 2.2}
    assert s["min_seconds"][VERDICT] == 3.0 and s["max_seconds"][VERDICT] == 30.0
    assert s["ratio_vs_import"] == pytest.approx(4.0 / 1.1)
    assert s["ratio_vs_floor"] == pytest.approx(4.0 / 2.2)
    assert s["floor_vs_import"] == pytest.approx(2.2 / 1.1)
    assert s["target_met"] is False  # 3.64× > 1.3×
    assert s["median_round_ratio_vs_import"] == pytest.approx(statistics.median([4.0, 2.5, 6.25, 3.0, 6.0]))
    assert s["median_round_ratio_vs_floor"] == pytest.approx(
        statistics.median([2.0, 1.25, 3.125, 1.5, 30 / 9]))
    lines = format_summary(s, "torch.optim.Adam")
    assert lines[-1].startswith("startup: verdict 4.00 s = 3.64× import torch (1.10 s), "
                                "1.82× torch's floor (2.20 s: import, construct, one step)")
    assert "target verdict ≤ 1.3× import torch: NOT met (3.64×)" in lines
    met = summarise([{IMPORT: 2.0, VERDICT: 2.5, FLOOR: 2.2}] * 5)
    assert met["target_met"] is True and "target verdict ≤ 1.3× import torch: met (1.25×)" in format_summary(met, "x")
    assert "medians of 5 rounds" in lines[-1]
    with pytest.raises(ValueError):
        summarise([])


def test_startup_rounds_rotate_the_order():
    orders = [round_order(i) for i in range(len(MEASURES))]
    for position in range(len(MEASURES)):
        assert sorted(o[position] for o in orders) == sorted(MEASURES)


def test_a_case_the_protocol_cannot_express_is_a_listed_skip_not_a_failure():
    """The NumPy reference of Prodigy cannot run a two-group case (one optimizer per group cannot
    share D across groups): the benchmark lists the skip with its reason and the target holds;
    a failing case would not (measured on the real reference, a few seconds)."""
    from optimizer_conformance.conformance.benchmark import measure_correct, reference_path
    from optimizer_conformance.conformance.candidates import Candidate

    ref = reference_path("prodigy")
    rows = measure_correct("prodigy", False, impls=[(ref, Candidate.from_path(ref))])
    assert [r.dtype for r in rows] == ["float32", "float64"]
    for r in rows:
        assert r.failed == 0, r
        assert [s.split(" ")[0] for s in r.skipped] == ["prodigy/only_param_groups"], r
        assert "share" in r.skipped[0], r
    assert correct_target("prodigy", rows).met
    failing = [Row(r.spec, r.implementation, r.dtype, r.worst, r.where, 1, r.skipped) for r in rows]
    assert not correct_target("prodigy", failing).met
