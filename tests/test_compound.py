"""Compound diagnoses: combinations of catalogued variants are named, the float32-internal precision
axis is named and can be accepted, and a deviation no variant explains is localised to a rule line.

Each combination mutant (``COMPOUND_MUTANTS`` in tests/mutants) implements a spec with several
catalogued deltas at once, as a real library does (timm's RMSpropTF, optax's contrib.muon); the
diagnosis of its run must be exactly that combination, and every failing case must match it (the
per-case messages and the end of the run agree).
"""

from __future__ import annotations

from functools import cache

import pytest
from optimizer_conformance.conformance.compound import PRECISION, compound, parts, without_precision
from optimizer_conformance.conformance.diagnosis import diagnose, evaluated, shown_matches
from optimizer_conformance.conformance.golden import index
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.report import CaseRecord, failure_message
from optimizer_conformance.conformance.runner import run_case

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.mutants import COMPOUND_MUTANTS, CONTROLS, LOCALISED, PARTIAL
    from tests.test_mutants import candidate, describe
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path
    from mutants import COMPOUND_MUTANTS, CONTROLS, LOCALISED, PARTIAL
    from test_mutants import candidate, describe

DTYPES = ("float32", "float64")
COMBOS = sorted(COMPOUND_MUTANTS)


@cache
def run(cls: type, spec_id: str, dtype: str, accept: tuple[str, ...] = ()):
    cand, spec = candidate(cls), load_spec(spec_id)
    results = [run_case(cand, spec, case, dtype, accept=accept) for case in spec.cases]
    diag = diagnose(results)
    return results, diag, f"{spec_id} / {cls.__name__} / {dtype}: {diag.verdict} {diag.variants}\n" \
                          f"{describe(results)}\n{diag.text}"


def test_every_family_has_a_combination_mutant():
    families = {spec for spec, name in COMBOS if len(parts(name)) >= 2}
    assert {"adam", "rmsprop", "muon", "adafactor"} <= families, families


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("spec_id", "name"), COMBOS, ids=[f"{s}-{n}" for s, n in COMBOS])
def test_combination_mutant_is_named(spec_id, name, dtype):
    results, diag, detail = run(COMPOUND_MUTANTS[(spec_id, name)], spec_id, dtype)
    if PRECISION in parts(name) and dtype != "float64":
        # float32 arithmetic is what a float32 run asks for: the precision axis is invisible there
        assert diag.verdict == "conforms", detail
        return
    wrong = [r for r in results if r.outcome == "failed" and not r.params_conform]
    assert wrong, "no case failed: " + detail
    assert diag.verdict == "variant" and diag.variants == [name], detail
    assert f"trajectory matches {name}:" in diag.text, diag.text
    assert not diag.unexplained, detail
    spec = load_spec(spec_id)
    for r in wrong:  # the per-case diagnosis agrees with the end of the run
        if not evaluated(spec, name, r.case):
            # a generated or long case: combinations are not evaluated there; the case matches one
            # of the name's parts (which the whole is not told apart from there), never only others
            assert any(set(parts(without_precision(m))) <= set(parts(name)) for m in r.matches) \
                or not r.matches, (r.case, r.matches)
            continue
        assert name in r.matches, f"{r.case}: {r.matches}\n{detail}"
        shown = shown_matches(r.matches)
        assert any(set(parts(s)) <= set(parts(name)) for s in shown), (r.case, shown)


def test_combination_message_names_it_with_its_rule_lines():
    spec_id, name = "adam", "adam.eps_hat + adam.decoupled_decay"
    results, _, detail = run(COMPOUND_MUTANTS[(spec_id, name)], spec_id, "float64")
    msgs = [failure_message(CaseRecord.from_result(r), "mutant") for r in results
            if r.outcome == "failed" and name in shown_matches(r.matches)]
    assert msgs, detail
    assert f"trajectory matches combination {name}" in msgs[0], msgs[0]
    assert "rule line update" in msgs[0] and "rule line weight_decay" in msgs[0], msgs[0]


def test_precision_axis_can_be_accepted():
    spec_id, name = "adam", PRECISION
    results, diag, detail = run(COMPOUND_MUTANTS[(spec_id, name)], spec_id, "float64", accept=(PRECISION,))
    assert diag.verdict == "conforms", detail
    accepted = [r for r in results if r.accepted]
    assert accepted and all(r.accepted == PRECISION for r in accepted), detail
    assert all(any(PRECISION in f for f in r.findings) for r in accepted), detail


def test_the_spec_does_not_pass_as_the_precision_axis():
    """A control (float64 arithmetic) conforms without the axis: it matches nothing."""
    results, diag, detail = run(CONTROLS["adam"], "adam", "float64")
    assert diag.verdict == "conforms", detail


@pytest.mark.parametrize(("spec_id", "label", "state"), sorted(LOCALISED))
def test_unexplained_deviation_is_localised(spec_id, label, state):
    results, diag, detail = run(LOCALISED[(spec_id, label, state)], spec_id, "float64")
    assert diag.verdict == "unknown" and not diag.variants, detail
    assert "no known variant explains" in diag.text, diag.text
    lines = diag.text.splitlines()
    first = next(x for x in lines if x.startswith("leaves the spec first:"))
    assert f"[{state!r}]" in first and "at step 1," in first, diag.text
    rule_line = next(x for x in compound(spec_id).rule_lines if x["label"] == label)
    assert f"  rule line {label} ({rule_line['doc']}): {rule_line['text']}" in lines, diag.text
    # the same localisation in each failing case's message
    rec = next(r for r in results if r.outcome == "failed")
    msg = failure_message(CaseRecord.from_result(rec), "mutant")
    assert f"rule line {label}" in msg and "matches no catalogued variant" in msg, msg


@pytest.mark.parametrize(("spec_id", "name", "label", "state"), sorted(PARTIAL))
def test_what_remains_is_localised(spec_id, name, label, state):
    """A name explains the runs it matches, and what remains is listed and localised."""
    results, diag, detail = run(PARTIAL[(spec_id, name, label, state)], spec_id, "float64")
    assert diag.verdict == "variant" and diag.variants == [name], detail
    remain = sorted(f"{r.case}[{r.dtype}]" for r in results
                    if r.outcome == "failed" and not r.params_conform and name not in r.matches)
    assert remain and diag.unexplained == remain, detail
    lines = diag.text.splitlines()
    assert f"  trajectory matches {name} [explains " in "\n  ".join(["", *lines]), diag.text
    assert f"what remains: {', '.join(remain)}" in lines, diag.text
    first = next(x for x in lines if x.startswith("leaves the spec first:"))
    assert f"[{state!r}]" in first, diag.text
    assert any(x.startswith(f"  rule line {label} (") for x in lines), diag.text


@pytest.mark.parametrize("spec_id", sorted(s for s in index()["specs"] if compound(s).combinations))
def test_combinations_change_different_rule_lines(spec_id):
    """Only compatible combinations are catalogued: the combination changes exactly the union of its
    parts' lines, and two parts change the same line only where each rewrites a part of it: the
    combined line is then neither part's own (pytorch_optimizer's RAdam: decoupled decay, gated by
    rectification), so that no part is overwritten by another."""
    variants = {v["id"]: v for v in index()["specs"][spec_id]["variants"]}
    for combo in compound(spec_id).combinations.values():
        key = lambda line: (line["label"], line["spec"])  # noqa: E731 (an initial value: its spec line)
        labels = [{key(line) for line in variants[p]["lines"]} for p in combo.parts]
        assert {key(line) for line in combo.lines} == set().union(*labels), combo.id
        combined = {key(line): line["variant"] for line in combo.lines}
        for i, a in enumerate(labels):
            for j, b in enumerate(labels[i + 1:], i + 1):
                for shared in a & b:
                    own = {line["variant"] for p in (combo.parts[i], combo.parts[j])
                           for line in variants[p]["lines"] if key(line) == shared}
                    assert combined[shared] not in own, (combo.id, shared)
