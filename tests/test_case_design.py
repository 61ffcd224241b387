"""Case design (issue 13): one feature per case, and boundary values generated from the rules.

1. Every optional feature of a spec (an event: missing gradient, a scheduler's change, param
   groups, a state_dict round trip; or a setting with a neutral value: weight decay, AMSGrad,
   maximize, momentum, ...) is exercised by a case that uses no other optional feature, so that a
   candidate lacking one feature keeps every other. Shown on a NumPy Adam that does not accept
   ``weight_decay`` (Keras/optax style): only the weight-decay cases are skipped.
2. Every boundary the rules and settings generate (derivations/boundaries.py) is covered by a case
   on each required side, or declared unreachable by the spec with a reason — and a new branch in
   a rule is a new boundary that no case covers yet.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.golden import index
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.runner import run_case
from optimizer_conformance.derivations import SPECS
from optimizer_conformance.derivations import adam as A
from optimizer_conformance.derivations.boundaries import branches, document, setting_values
from optimizer_conformance.derivations.evaluate import evaluate
from optimizer_conformance.derivations.feature_cases import all_cases, coverage, optional_features
from optimizer_conformance.reference import Adam

UPDATE_SPECS = sorted(sid for sid, s in SPECS.items() if getattr(s, "kind", "update") == "update")


def _designs(spec_id: str):
    spec = SPECS[spec_id]
    return [b.build(spec.defaults()) for b in all_cases(spec)]


# -- 1. one feature per case ---------------------------------------------------------------------


@pytest.mark.parametrize("spec_id", UPDATE_SPECS)
def test_every_optional_feature_is_covered_alone(spec_id: str) -> None:
    spec = SPECS[spec_id]
    cov = coverage(spec, _designs(spec_id))
    assert set(cov) == set(optional_features(spec))
    missing = [f for f, ids in cov.items() if not ids and f not in spec.ungenerated_features]
    assert not missing, f"{spec_id}: no case exercises {missing} alone"
    # the index prints the same account, and the goldens hold those cases
    shipped = index()["specs"][spec_id]
    assert shipped["features_alone"] == {f: ids[0] if ids else None for f, ids in cov.items()}
    assert shipped.get("features_not_generated", {}) == dict(spec.ungenerated_features)
    golden_ids = {c.id for c in load_spec(spec_id).cases}
    assert {ids[0] for ids in cov.values() if ids} <= golden_ids


class AdamWithoutWeightDecay(Adam):
    """The reference Adam minus its ``weight_decay`` argument, as Keras- or optax-style code is."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, maximize=maximize)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_candidate_without_weight_decay_keeps_every_other_feature(dtype: str) -> None:
    cand = Candidate(path=f"{__name__}.AdamWithoutWeightDecay", target=AdamWithoutWeightDecay, api="numpy")
    spec = load_spec("adam")
    ran: set[str] = set()
    for case in spec.cases:
        res = run_case(cand, spec, case, dtype)
        if "weight_decay" in case.features:
            assert res.outcome == "skipped" and "weight_decay" in res.reason, (case.id, res.outcome, res.reason)
            continue
        assert res.outcome == "passed", (case.id, res.outcome, res.reason, res.max_ratio)
        assert res.steps_run == case.n_steps
        ran |= set(case.features)
    others = set(optional_features(SPECS["adam"])) - {"weight_decay"}
    assert others <= ran, f"features that lost every case: {sorted(others - ran)}"


def test_the_full_reference_runs_the_weight_decay_cases_the_other_skips() -> None:
    """The control: the same cases run on the full reference, none skipped (the skips above are
    the missing argument's, not the cases')."""
    cand = Candidate.from_path("optimizer_conformance.reference.Adam")
    spec = load_spec("adam")
    wd = [c for c in spec.cases if "weight_decay" in c.features]
    assert wd
    for case in wd:
        assert run_case(cand, spec, case, "float64").outcome == "passed", case.id


# -- 2. boundary values --------------------------------------------------------------------------


@pytest.mark.parametrize("spec_id", UPDATE_SPECS)
def test_every_generated_boundary_is_covered(spec_id: str) -> None:
    spec = SPECS[spec_id]
    listed = index()["specs"][spec_id]["boundaries"]
    generated = [b.key for b in branches(spec.rule)] + [sv.key for sv in setting_values(spec)]
    assert [b["boundary"] for b in listed] == generated, "the index's list is not the rules' and settings'"
    uncovered, stale = [], []
    for b in listed:
        for side, case in b["cases"].items():
            declared = side in b["unreachable"]
            if case is None and not declared:
                uncovered.append(f"{b['boundary']} ({side})")
            if case is not None and declared:
                stale.append(f"{b['boundary']} ({side}) is covered by {case}: drop its unreachable reason")
    assert not uncovered, f"{spec_id}: no case on {uncovered}"
    assert not stale, stale
    keys = {f"{b['boundary']} {s}" for b in listed for s in b["cases"]}
    unknown = set(spec.unreachable_boundaries) - keys
    assert not unknown, f"{spec_id}: reasons for boundaries that do not exist: {sorted(unknown)}"


def test_a_new_branch_in_a_rule_is_a_boundary_no_case_covers() -> None:
    """Add ``if m̂ > 100`` to Adam's update: it is listed, and Adam's cases reach neither its
    boundary nor the side above it, so the coverage test above would fail until a case does."""
    spec = SPECS["adam"]
    new = A.RULE.assignment("update").expr
    rule = A.RULE.replace("update", sp.Piecewise((A.theta - A.lr * A.m_hat, A.m_hat > 100), (new, True)))
    keys = [b.key for b in branches(rule)]
    assert "update: \\hat{m} > 100" in keys
    designs = _designs("adam")
    met = {}
    for d in designs:
        met[d.id] = {}
        evaluate(rule, d, met[d.id])
    doc = {b["boundary"]: b for b in document(spec.__class__(**{**spec.__dict__, "rule": rule}), designs, met)}
    sides = doc["update: \\hat{m} > 100"]["cases"]
    assert sides["below"] is not None
    assert sides["on"] is None and sides["above"] is None


def test_a_setting_on_a_special_value_is_run() -> None:
    """The generated boundary cases put weight decay exactly on 1 and momentum near 1 (SGD)."""
    ids = {c.id: c for c in load_spec("sgd").cases}
    wd = ids["sgd/boundary_weight_decay_on_1"]
    assert [g.hyperparameters["weight_decay"] for g in wd.groups] == [1.0]
    mom = ids["sgd/boundary_momentum_on_0.9921875"]
    assert np.isclose(mom.groups[0].hyperparameters["momentum"], 0.9921875)


# -- 3. long horizons ----------------------------------------------------------------------------


def test_long_horizon_and_resume_cases_reach_their_t() -> None:
    """t = 10³ by stepping (a repeated step, compared after its last) and t = 10⁶ + k resumed
    through load_state_dict: the goldens' step counts say so."""
    for spec_id in ("adam", "adamw", "adagrad"):
        cases = {c.id: c for c in load_spec(spec_id).cases}
        long = cases[f"{spec_id}/long_horizon"]
        assert long.n_steps == 1000
        assert long.expected_state["scalar"]["step"][-1][0] == 1000
        checked = [t for t in range(1, long.n_steps + 1) if not np.isnan(long.expected["scalar"][t]).all()]
        assert checked == [1, 999, 1000]
        resumed = cases[f"{spec_id}/resumed_at_large_t"]
        assert resumed.initial_state["scalar"]["step"] == 10**6
        assert resumed.expected_state["vector"]["step"][-1][0] == 10**6 + resumed.n_steps


def test_torch_step_counter_stops_at_2_24() -> None:
    """The finding in docs/findings.md: torch's float32 ``step`` stops counting at 2²⁴, float64
    params included (why the resume cases stay at t = 10⁶)."""
    import torch

    for dtype in (torch.float32, torch.float64):
        p = torch.zeros(2, dtype=dtype, requires_grad=True)
        opt = torch.optim.Adam([p])
        sd = opt.state_dict()
        sd["state"][0] = {"step": torch.tensor(float(2**24 - 1)), "exp_avg": torch.zeros(2, dtype=dtype),
                          "exp_avg_sq": torch.ones(2, dtype=dtype)}
        opt.load_state_dict(sd)
        counts = []
        for _ in range(3):
            p.grad = torch.ones(2, dtype=dtype)
            opt.step()
            counts.append(int(opt.state[p]["step"].item()))
        assert counts == [2**24, 2**24, 2**24], counts


# -- the mutation test's survivors, and the published table --------------------------------------

# torch.optim's for-loop functions that test `if weight_decay != 0`: the mutation test's `!= 1`
# survivors (docs/mutation-report.json) needed a case with weight decay exactly 1
WEIGHT_DECAY_BRANCH = ("adadelta", "adagrad", "adam", "adamax", "asgd", "nadam", "radam", "rmsprop", "sgd")


@pytest.mark.parametrize("spec_id", WEIGHT_DECAY_BRANCH)
def test_weight_decay_exactly_one_is_a_case(spec_id: str) -> None:
    on_one = [c.id for c in load_spec(spec_id).cases
              if c.groups and all(g.hyperparameters.get("weight_decay") == 1.0 for g in c.groups)]
    assert on_one, f"{spec_id}: no case with weight_decay exactly 1"


def test_the_case_design_table_lists_every_spec_with_nothing_open() -> None:
    from optimizer_conformance.conformance.case_design import COLUMNS, row, table

    text = table()
    for spec_id in index()["specs"]:
        r = row(spec_id)
        assert f"| {spec_id} |" in text and len(r) == len(COLUMNS)
        if spec_id in UPDATE_SPECS:
            assert "open" not in r[COLUMNS.index("boundary sides covered")], r
            alone, of = (int(x) for x in r[COLUMNS.index("features alone")].split(" (")[0].split(" of "))
            assert alone + len(SPECS[spec_id].ungenerated_features) == of, r
    adam = row("adam")
    assert adam[COLUMNS.index("longest horizon")] == "1000 steps; resumed at t = 1\u202f000\u202f000"


def test_combinations_are_evaluated_on_the_spec_own_cases_only() -> None:
    """Compound goldens cover the spec's own step-by-step cases; elsewhere the diagnosis treats a
    combination as not evaluated (neither matched nor contradicted)."""
    from optimizer_conformance.conformance import compound
    from optimizer_conformance.conformance.diagnosis import evaluated

    spec = load_spec("adam")
    own = {c.id for c in spec.cases if not c.id.split("/", 1)[1].startswith(("only_", "boundary_"))
           and c.n_steps <= 20 and not c.initial_state}
    combos = compound.compound("adam").combinations
    assert combos
    for combo in combos.values():
        assert set(combo.separation) == own, combo.id
    some = next(iter(combos))
    assert evaluated(spec, some, "adam/defaults")
    assert not evaluated(spec, some, "adam/boundary_weight_decay_on_1")
    assert evaluated(spec, "adam.eps_hat", "adam/boundary_weight_decay_on_1")
