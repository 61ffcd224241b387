"""L-BFGS, the closed-loop spec: derivation, goldens, harness, NumPy reference, torch.

1. The harness's objectives (``conformance/closed_loop.py``, NumPy/torch) are the SymPy
   objectives of the derivation, and their gradients are ``sp.diff`` — checked symbolically.
2. The derivation's algorithm (``derivations/lbfgs.py``) run on doubles follows
   ``torch.optim.LBFGS`` in float64 on every case: same counters, params within a few ulps of
   the path; the closed forms are proved and the prover can fail.
3. The goldens: every decision far from flipping, every variant caught by a wide margin, the
   closed-loop documents rejected by the schema when defective.
4. The control mutant is torch bit for bit (params, returned loss and counters).
5. The NumPy reference passes every case and has the properties the closed forms state, for
   random inputs.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.closed_loop import value_and_grad
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.runner import run_case
from optimizer_conformance.derivations import lbfgs as L
from optimizer_conformance.derivations.closed_loop import (
    DECISION_MARGIN,
    Lines,
    Undecided,
    closure_of,
)
from optimizer_conformance.derivations.proofs import ClosedForm, prove
from optimizer_conformance.reference import LBFGS as NumpyLBFGS

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.mutants.lbfgs_mutants import LBFGS as Control
except ModuleNotFoundError:
    from mutants.lbfgs_mutants import LBFGS as Control

DTYPES = ("float32", "float64")
SPEC = load_spec("lbfgs")
CASE_IDS = [c.id for c in SPEC.cases]


def _golden_doc(rel: str) -> dict:
    node = resources.files("optimizer_conformance.conformance").joinpath("golden", *rel.split("/"))
    return json.loads(node.read_text(encoding="utf-8"))


def _design(case_id: str):
    return next(c for c in L.SPEC.cases if c.id == case_id)


# -- 1. the harness's objectives are the derivation's -------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_harness_objective_is_the_sympy_objective(case_id):
    """value_and_grad on SymPy symbols (NumPy object arrays) gives f and sp.diff(f) exactly."""
    design = _design(case_id)
    objective = design.objective
    raw = SPEC.cases[CASE_IDS.index(case_id)].objective
    coefficients = {k: (np.array([[sp.Rational(float(x)) for x in row] for row in v], dtype=object) if np.ndim(v) == 2
                        else np.array([sp.Rational(float(x)) for x in v], dtype=object) if np.ndim(v) == 1
                        else sp.Rational(float(v)))
                    for k, v in raw["coefficients"].items()}
    x = np.array(objective.symbols, dtype=object)
    f, g = value_and_grad(raw["kind"], coefficients, x, np)
    assert sp.expand(f - objective.f) == 0
    for gi, expected in zip(g, objective.gradient, strict=True):
        assert sp.expand(gi - expected) == 0


# -- 2. the derivation's algorithm -----------------------------------------------------------------


def _torch_run(case_id: str, cls=torch.optim.LBFGS, dtype=torch.float64):
    """(params, losses, counters) per step of ``cls`` on a golden case, through the harness."""
    from optimizer_conformance.conformance.closed_loop import TorchClosedLoop

    case = SPEC.cases[CASE_IDS.index(case_id)]
    cand = Candidate(path=f"{cls.__module__}.{cls.__name__}", target=cls, api="torch")
    drv = TorchClosedLoop(cand, SPEC, case, str(dtype).rpartition(".")[2], "cpu")
    out = []
    for step in case.steps:
        if step.reload_before:
            drv.reload()
        for c in step.changes:
            drv.set_hyperparameter(c.name, c.value)
        loss = drv.step()
        out.append((drv.params(), loss, drv.counters()))
    return out


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_algorithm_on_doubles_follows_torch(case_id):
    """The transcription, run on Python floats, takes torch's path: same counters every call,
    params within 1e-12 (the float64 paths differ by rounding only)."""
    design = _design(case_id)
    n = sum(len(p.values) for p in design.params)
    offsets = np.cumsum([0] + [len(p.values) for p in design.params])
    where = [int(offsets[i]) + j for i, p in enumerate(design.params) if p.name in design.variables
             for j in range(len(p.values))]
    closure = closure_of(design.objective, n, where)
    x = [float(v) for p in design.params for v in p.values]
    group = {k: _value(v) for k, v in design.group(L.SPEC.defaults()).items()}
    L.prepare(group)
    state: dict = {}
    theirs = _torch_run(case_id)
    for s, (params, loss, counters) in enumerate(theirs, start=1):
        for c in design.changes.get(s, ()):
            group[c.name] = _value(c.value)
        ours_loss = L.lbfgs_step(x, closure, state, group, Lines(L.RULE, L.FIXED))
        flat = np.concatenate([params[p.name] for p in design.params])
        np.testing.assert_allclose(x, flat, rtol=1e-12, atol=1e-12, err_msg=f"{case_id} step {s}")
        assert abs(ours_loss - loss) <= 1e-12 * max(1.0, abs(loss))
        assert counters == {"func_evals": state["func_evals"], "n_iter": state["n_iter"]}, (case_id, s)


def _value(v):
    if v is None or isinstance(v, (bool, int)):
        return v
    try:
        return float(v)
    except ValueError:
        return v


@pytest.mark.parametrize("cf", L.CLOSED_FORMS[:1], ids=lambda cf: cf.name)
def test_a_false_closed_form_is_not_proved(cf):
    """The prover can fail: the same run with one more evaluation claimed is rejected."""
    wrong = ClosedForm(cf.name, "", cf.rule, cf.given, {**cf.closed, L.FUNC_EVALS: L.t + 3}, cf.initial)
    assert not prove(wrong).holds


def test_a_wrong_contraction_rate_fails_the_induction_step():
    """The residuals computed in the field of rational functions can be nonzero: claiming one factor
    1 − γ per call instead of two (x_t − c = (1 − γ)^t·e₁, d_t = −(1 − γ)^(t−1)·e₁) agrees with the
    true closed form at t = 1, so the base case holds, and the induction step rejects it."""
    good = L.CLOSED_FORMS[1]
    rule, r, e1 = good.rule, L._R, L._E1
    closed = {
        **good.closed,
        **{th: ci + r**L.t * e for th, ci, e in zip(rule.theta, L._c2, e1, strict=True)},
        **{di: -(r ** (L.t - 1)) * e for di, e in zip(rule.d, e1, strict=True)},
        **{gi: L._A2 * r ** (L.t - 1) * e for gi, e in zip(rule.prev, e1, strict=True)},
    }
    proof = prove(ClosedForm("wrong_rate", "", rule, good.given, closed, good.initial))
    assert all(v == 0 for v in proof.base_case.values()), proof.base_case
    wrong = {k for k, v in proof.induction_step.items() if v != 0}
    assert wrong == {str(s) for s in (*rule.theta, *rule.d, *rule.prev)}, proof.induction_step


def test_a_variant_does_not_contract_the_isotropic_quadratic():
    """With H₀ = I (optax's scale_init_precond=False) the contraction cannot be proved: already the
    first step's outcome depends on a·γ, which the symbolic run refuses to guess."""
    good = L.CLOSED_FORMS[1]
    identity = L.SPEC.variant("lbfgs.identity_initial_hessian").rule_for(L.RULE)
    wrong = ClosedForm(good.name, "", L.StepCall(L._ISO, good.rule.group, identity), good.given,
                       good.closed, good.initial)
    with pytest.raises(Undecided):
        prove(wrong)


# -- 3. the goldens -------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_no_decision_is_close_to_flipping(case_id):
    """Every comparison of the spec's and every variant's trajectory is at least DECISION_MARGIN
    tolerances from flipping in float32 (as the generator checked)."""
    docs = [_golden_doc("lbfgs/spec.json")] + [_golden_doc(f"lbfgs/{v}.json") for v in SPEC.variants]
    for doc in docs:
        case = next(c for c in doc["cases"] if c["id"] == case_id)
        m = case["decision_margin"]
        assert m["decisions"] > 0
        for dtype in DTYPES:
            assert m[dtype] is None or float(m[dtype]) >= DECISION_MARGIN, (doc["variant"], m)


def test_every_variant_is_caught_by_a_wide_margin():
    for vid in SPEC.catalogued:
        best = {d: max(c.separation[vid][d] for c in SPEC.cases) for d in DTYPES}
        assert any(vid in c.catches for c in SPEC.cases), vid
        assert best["float32"] >= 1e3 and best["float64"] >= 1e3 * 2.0**29, (vid, best)


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(resources.files("optimizer_conformance.conformance").joinpath(
        "schemas", "golden.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def _schema_errors(doc: dict) -> list[str]:
    return [e.message for e in _validator().iter_errors(doc)]


@cache
def _shipped_errors(rel: str) -> tuple[str, ...]:
    """_schema_errors of a shipped golden document, unmodified: computed once per process."""
    return tuple(_schema_errors(_golden_doc(rel)))


def _rejected(doc: dict) -> bool:
    """bool(_schema_errors(doc)), stopping at the first error."""
    return not _validator().is_valid(doc)


def _float_loss(doc):
    doc["cases"][0]["steps"][0]["expected"]["loss"] = float(doc["cases"][0]["steps"][0]["expected"]["loss"])


def _counter_as_string(doc):
    state = doc["cases"][0]["steps"][0]["expected"]["state"]
    state[next(iter(state))]["n_iter"] = "1"


def _no_objective(doc):
    del doc["cases"][0]["objective"]


def _unknown_objective(doc):
    doc["cases"][0]["objective"]["kind"] = "beale"


def _two_groups(doc):
    doc["cases"][0]["param_groups"].append(copy.deepcopy(doc["cases"][0]["param_groups"][0]))


def _missing_counters(doc):
    del doc["cases"][0]["steps"][0]["expected"]["state"]


@pytest.mark.parametrize("defect", [_float_loss, _counter_as_string, _no_objective, _unknown_objective,
                                    _two_groups, _missing_counters], ids=lambda f: f.__name__.lstrip("_"))
def test_defective_closed_loop_document_fails(defect):
    assert not _shipped_errors("lbfgs/spec.json")  # the document below, before the defect
    doc = _golden_doc("lbfgs/spec.json")
    defect(doc)
    assert _rejected(doc), defect.__name__


def test_variant_document_holds_no_counters():
    rel = f"lbfgs/{SPEC.catalogued[0]}.json"
    assert not _shipped_errors(rel)  # the document below, before the change
    doc = _golden_doc(rel)
    doc["cases"][0]["steps"][0]["expected"]["state"] = {"x": {"func_evals": 1, "n_iter": 1}}
    assert _rejected(doc)


# -- 4. the control is torch ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=DTYPES)
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_control_is_torch_bit_for_bit(case_id, dtype):
    """Params, the loss step() returns and the counters, every call (test_mutants compares params)."""
    for (p1, l1, c1), (p2, l2, c2) in zip(_torch_run(case_id, Control, dtype), _torch_run(case_id, dtype=dtype),
                                          strict=True):
        assert l1 == l2 and c1 == c2
        for name in p2:
            np.testing.assert_array_equal(p1[name], p2[name])


# -- 5. the NumPy reference ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_reference_passes_through_the_runner(case_id, dtype):
    cand = Candidate.from_path("optimizer_conformance.reference.LBFGS")
    assert cand.api == "numpy"
    res = run_case(cand, SPEC, SPEC.cases[CASE_IDS.index(case_id)], dtype)
    assert res.outcome == "passed", (res.reason, res.first_divergence)
    assert set(res.compared_state) == {"func_evals", "loss", "n_iter"}
    assert res.max_ratio <= 0.25


def _quadratic_closure(params: list[np.ndarray], a, c):
    """f = Σ a/2·(x − c)² over the concatenated params, and its gradient."""

    def closure():
        x = np.concatenate([p.ravel() for p in params])
        r = x - c
        grads, offset = [], 0
        for p in params:
            grads.append((a * r[offset: offset + p.size]).reshape(p.shape))
            offset += p.size
        return 0.5 * a * float(r @ r), grads

    return closure


dyadic = st.integers(-64, 64).map(lambda k: k / 16)
positive = st.integers(4, 64).map(lambda k: k / 16)


@settings(max_examples=60, deadline=None)
@given(a=positive, c=dyadic, e=st.integers(17, 96).map(lambda k: k / 16), sign=st.sampled_from([-1.0, 1.0]))
def test_reference_secant_step_lands_on_the_minimum(a, c, e, sign):
    """Closed form secant_step_lands_on_minimum: with lr = 1 and |f′(x₀)| > 1, one call ends on c
    after two iterations and three evaluations; later calls return after one evaluation."""
    if a * e <= 1.0625:
        return  # outside the closed form's hypothesis |f′(x₀)| > 1 (with a margin)
    x = np.array([c + sign * e])
    opt = NumpyLBFGS([x])
    closure = _quadratic_closure([x], a, np.array([c]))
    opt.step(closure)
    assert abs(x[0] - c) <= 1e-12 * max(1.0, abs(c), e)
    assert (opt.state[0]["func_evals"], opt.state[0]["n_iter"]) == (3, 2)
    opt.step(closure)
    assert (opt.state[0]["func_evals"], opt.state[0]["n_iter"]) == (4, 2)


@settings(max_examples=40, deadline=None)
@given(a=positive, c=st.tuples(dyadic, dyadic), e=st.tuples(positive, positive),
       signs=st.tuples(st.sampled_from([-1.0, 1.0]), st.sampled_from([-1.0, 1.0])),
       gamma=st.integers(1, 12).map(lambda k: k / 16))
def test_reference_isotropic_contraction(a, c, e, signs, gamma):
    """Closed form isotropic_contraction: x_t − c = (1 − γ)^(2t−1)·(1 − γ/‖e₀‖₁)·e₀ (2-D,
    max_iter 2, history 1) when a·‖e₀‖₁ > 1 and γ ≠ ‖e₀‖₁ — and, by symmetry, for any signs of
    e₀. The closed form holds while the thresholds stay below the quantities they test: γ ≤ 3/4 keeps yᵀs above
    1e-10 for three calls; the tolerances are 0."""
    e0 = np.array(signs) * np.array(e)
    if a * np.abs(e0).sum() <= 1.0625:
        return
    c = np.array(c)
    x = c + e0
    opt = NumpyLBFGS([x], lr=gamma, max_iter=2, max_eval=4, history_size=1, tolerance_grad=0.0,
                     tolerance_change=0.0)
    closure = _quadratic_closure([x], a, c)
    e1 = (1 - gamma / np.abs(e0).sum()) * e0
    # γ = ‖e₀‖₁ is outside the closed form: in exact arithmetic the first iteration lands on c and
    # the call ends on g = 0; in floating point whether it lands exactly depends on rounding order.
    assume(gamma != np.abs(e0).sum())
    for t in range(1, 4):
        opt.step(closure)
        expected = (1 - gamma) ** (2 * t - 1) * e1
        np.testing.assert_allclose(x - c, expected, rtol=1e-9, atol=1e-12 * (1 + np.abs(c).max()))
        assert opt.state[0]["func_evals"] == opt.state[0]["n_iter"] == 2 * t


@settings(max_examples=25, deadline=None)
@given(x0=st.tuples(dyadic, dyadic, dyadic), k=st.integers(1, 3),
       line_search=st.sampled_from([None, "strong_wolfe"]))
def test_reference_state_dict_round_trip_changes_nothing(x0, k, line_search):
    """A fresh instance loaded from state_dict after k calls continues bit for bit."""
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 0.5]])
    b = np.array([1.0, -0.5, 0.25])

    def run(reload: bool) -> np.ndarray:
        x = np.array(x0)
        opt = NumpyLBFGS([x], lr=0.5, max_iter=2, history_size=2, line_search_fn=line_search)

        def closure():
            Ax = A @ x
            return 0.5 * float(x @ Ax) - float(b @ x), [Ax - b]

        for s in range(4):
            if reload and s == k:
                sd = copy.deepcopy(opt.state_dict())
                opt = NumpyLBFGS([x])
                opt.load_state_dict(sd)
            opt.step(closure)
        return x.copy()

    np.testing.assert_array_equal(run(False), run(True))


# -- the plugin, end to end ---------------------------------------------------------------------------


def test_plugin_gives_a_verdict_on_torch_lbfgs(pytester):
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--optimizer=torch.optim.LBFGS")
    result.assert_outcomes(passed=2 * len(SPEC.cases))
    result.stdout.fnmatch_lines(["*verdict: CONFORMS*"])

