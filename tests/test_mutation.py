"""The mutation test's generator (conformance/mutation.py), not the run (that is ``nox -s mutation``).

Mutation points are enumerated for every target, with unique ids that do not change from one
parse to the next; an applied mutant is valid Python whose class runs the mutated for-loop
function; code outside the checked configuration is not mutated; the written equivalence reasons
name current mutants; and the committed report (docs/mutation-report.json) is a run of the current
generator, its page counted from it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter

import pytest
import torch
from optimizer_conformance.conformance import mutation, mutation_report, mutation_run
from optimizer_conformance.conformance.mutation import OPERATORS, TARGETS

BY_MODULE = {t.module: t for t in TARGETS}


def _point(target, operator: str, needle_before: str, needle_after: str) -> str:
    """The id of the one point of this operator whose diff turns a line holding needle_before
    into needle_after."""
    hits = []
    for p in mutation.points(target):
        if p.operator != operator:
            continue
        lines = mutation.diff(target, p.id).splitlines()
        if any(line.startswith("-") and needle_before in line for line in lines[2:]) and any(
                line.startswith("+") and needle_after in line for line in lines[2:]):
            hits.append(p.id)
    assert len(hits) == 1, hits
    return hits[0]


def _load(tmp_path, target, mutant_id, name):
    path = tmp_path / f"{name}.py"
    path.write_text(mutation.mutant_module(target, mutant_id), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _steps(cls, n=3):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = cls([p], lr=0.1)
    for k in range(n):
        p.grad = torch.linspace(-1, 1, 5, dtype=torch.float64) * (k + 1)
        opt.step()
    return p.detach().clone(), opt


def test_every_target_has_points_with_unique_stable_ids():
    counts = {}
    for target in TARGETS:
        first = [p.id for p in mutation.points(target)]
        again = [p.id for p in mutation.points(target)]
        assert first == again, target.key  # a fresh parse gives the same ids, in the same order
        assert len(set(first)) == len(first), target.key
        assert all(i.startswith(target.key + ":") for i in first)
        counts[target.key] = len(first)
    assert all(n >= 20 for n in counts.values()), counts
    assert sum(counts.values()) >= 100
    kinds = Counter(p.kind for t in TARGETS for p in mutation.points(t))
    assert set(kinds) == set(OPERATORS), set(OPERATORS) ^ set(kinds)  # every operator is used somewhere


def test_step_counter_off_by_one_is_a_point():
    adam = BY_MODULE["adam"]
    _point(adam, "const:1->2", "step_t += 1", "step_t += 2")
    _point(adam, "const:1->0", "step_t += 1", "step_t += 0")
    _point(adam, "remove", "step_t += 1", "pass")  # the counter's update removed


def test_only_the_checked_configuration_is_mutated():
    """Adam's capturable branch spells its square root ``bias_correction2.sqrt()``, the plain
    branch ``bias_correction2 ** 0.5``: only the latter is a point."""
    adam = BY_MODULE["adam"]
    diffs = "\n".join(mutation.diff(adam, p.id) for p in mutation.points(adam) if p.kind in ("sqrt", "remove"))
    assert "-            bias_correction2_sqrt = bias_correction2 ** 0.5" in diffs
    assert "bias_correction2.sqrt()" not in diffs
    lines = {p.abs_line for p in mutation.points(adam)}
    text = mutation.source(adam).splitlines()
    assert not any("step_size_neg" in text[n - 1] or "view_as_real" in text[n - 1] for n in lines)


def test_the_unmutated_module_is_torchs_for_loop_and_a_mutant_changes_it(tmp_path):
    adam = BY_MODULE["adam"]
    base = _load(tmp_path, adam, None, "mutation_test_adam_base")
    expected, _ = _steps(lambda ps, lr: torch.optim.Adam(ps, lr=lr, foreach=False))
    got, opt = _steps(base.Adam)
    assert torch.equal(got, expected)
    assert opt.defaults["foreach"] is False and opt.defaults["fused"] is False
    got_w, _ = _steps(base.AdamW)  # the copied AdamW subclasses the module's Adam
    assert torch.equal(got_w, _steps(lambda ps, lr: torch.optim.AdamW(ps, lr=lr, foreach=False))[0])

    mutant_id = _point(adam, "const:1->2", "step_t += 1", "step_t += 2")
    mutant = _load(tmp_path, adam, mutant_id, "mutation_test_adam_mutant")
    got, opt = _steps(mutant.Adam)
    assert float(next(iter(opt.state.values()))["step"]) == 6.0  # 3 steps counted twice
    assert not torch.equal(got, expected)


def test_every_mutant_module_compiles():
    for target in TARGETS:
        for p in mutation.points(target)[::-1][:2]:  # two per target, the last two (the deepest lines)
            compile(mutation.mutant_module(target, p.id), f"<{p.id}>", "exec")


def test_equivalence_reasons_and_gap_notes_name_current_mutants():
    reasons, notes = mutation_run.equivalents(), mutation_run.gaps()
    ids = {p.id for t in TARGETS for p in mutation.points(t)}
    assert set(reasons) | set(notes) <= ids, sorted((set(reasons) | set(notes)) - ids)
    assert not set(reasons) & set(notes)  # equivalent or a gap, not both
    assert all(len(r.split()) >= 8 for r in [*reasons.values(), *notes.values()])  # a reason, not a word


def test_committed_report_is_a_run_of_this_generator():
    if not mutation_run.REPORT.exists():
        pytest.skip("no docs/mutation-report.json: run `nox -s mutation`")
    doc = mutation_report.load(mutation_run.REPORT)
    reasons, notes = mutation_run.equivalents(), mutation_run.gaps()
    assert doc["complete"]
    assert [m["id"] for m in doc["mutants"]] == [p.id for t in TARGETS for p in mutation.points(t)]
    assert doc["summary"] == mutation_run.summary(doc["mutants"])
    for m in doc["mutants"]:
        assert (m["status"] == "equivalent") == (m["id"] in reasons and m["status"] != "killed"), m["id"]
        assert m["reason"] == (reasons.get(m["id"], "") if m["status"] == "equivalent" else "")
        assert m["gap"] == (notes.get(m["id"], "") if m["status"] == "survived" else "")
    page = mutation_report.markdown(doc)
    s = doc["summary"]
    assert f"{s['killed']}/{s['mutants'] - s['equivalent']}" in page
    for m in doc["mutants"]:
        if m["status"] != "killed":
            assert m["id"] in page


def test_a_finding_the_unmutated_module_does_not_report_kills_the_mutant():
    """rprop's mutant without ``grad.clone()`` zeroes entries of p.grad and passes every case; the
    verdict's finding "step() modifies p.grad in place", absent from torch's code, kills it. A
    finding the unmutated module reports too (NAdam's acceptable float32 μ product) kills nothing."""
    rprop, nadam = BY_MODULE["rprop"], BY_MODULE["nadam"]
    grad_written = _point(rprop, "remove", "grad = grad.clone(", "")
    first = mutation.points(nadam)[0].id
    jobs = [mutation_run.Job(rprop, None, "base", "Rprop", "rprop", rc=0),
            mutation_run.Job(rprop, grad_written, "m1", "Rprop", "rprop", rc=0,
                             findings=["step() modifies p.grad in place"]),
            mutation_run.Job(nadam, None, "base", "NAdam", "nadam", rc=0, findings=["follows acceptable variant x"]),
            mutation_run.Job(nadam, first, "m2", "NAdam", "nadam", rc=0, findings=["follows acceptable variant x"])]
    records = {r["id"]: r for r in mutation_run.classify(jobs, {})}
    assert records[grad_written]["status"] == "killed"
    assert records[grad_written]["killed_by"] == "finding"
    assert records[grad_written]["new_findings"] == ["step() modifies p.grad in place"]
    assert records[first]["status"] == "survived" and records[first]["killed_by"] == ""
    assert mutation_run.summary(list(records.values()))["killed_by_finding"] == 1
