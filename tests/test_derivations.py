"""The derivations: closed forms proved symbolically; goldens reproduce byte for byte."""

from __future__ import annotations

import pytest
import sympy as sp
from optimizer_conformance.derivations import SPECS
from optimizer_conformance.derivations.__main__ import main as regenerate
from optimizer_conformance.derivations.proofs import ClosedForm, prove, residual
from optimizer_conformance.derivations.rule import changed_lines, theta

CLOSED = [(s.id, cf) for s in SPECS.values() for cf in s.closed_forms]


@pytest.mark.parametrize(("spec_id", "cf"), CLOSED, ids=[f"{s}-{cf.name}" for s, cf in CLOSED])
def test_closed_form_is_proved(spec_id, cf):
    proof = prove(cf)
    assert proof.holds, f"{spec_id}/{cf.name}: base {proof.base_case}, step {proof.induction_step}"


@pytest.mark.parametrize("spec_id", sorted(SPECS))
def test_each_spec_proves_at_least_two_closed_forms(spec_id):
    assert len(SPECS[spec_id].closed_forms) >= 2


def test_a_false_closed_form_is_not_proved():
    """The prover can fail: a wrong formula (θ_t = θ₀ − t·γ·g, no normalisation) is rejected."""
    adam = SPECS["adam"]
    good = next(cf for cf in adam.closed_forms if cf.name == "parameter_constant_gradient")
    from optimizer_conformance.derivations import adam as A

    wrong = ClosedForm(
        name="wrong", statement="", rule=good.rule, given=good.given,
        closed={**good.closed, theta: A.theta0 - sp.Symbol("t") * A.lr * A.g0},
        initial=good.initial,
    )
    assert not prove(wrong).holds


def test_residual_is_zero_exactly_for_equal_expressions():
    """The rational normal form sees b**(n + 1) = b·b**n and |g|/√(g²) = 1 (through simplify), and
    reduces nothing that is not an identity to zero."""
    b, g = sp.Symbol("b", positive=True), sp.Symbol("g", real=True)
    n = sp.Symbol("n", integer=True, positive=True)
    assert residual(b ** (n + 1) / (1 - b ** (n + 1)), b * b**n / (1 - b * b**n)) == 0
    assert residual(g / sp.sqrt(g**2 * (1 - b**n) / (1 - b**n)), g / sp.Abs(g)) == 0
    assert residual(b ** (n + 1), b**n) != 0
    assert residual(g / sp.sqrt(g**2), 1) != 0  # g may be negative


@pytest.mark.parametrize("spec_id", sorted(SPECS))
def test_every_variant_is_a_small_named_delta(spec_id):
    spec = SPECS[spec_id]
    assert len({v.id for v in spec.variants}) == len(spec.variants)
    for v in spec.variants:
        diff = changed_lines(spec.rule, v.rule_for(spec.rule))
        assert 1 <= len(diff) <= (5 if v.bundle else 3), f"{v.id}: {len(diff)} lines differ"
        assert v.sources and v.who and v.summary


@pytest.mark.long
@pytest.mark.parametrize("spec_id", sorted(SPECS))
def test_goldens_regenerate_byte_for_byte(spec_id, capsys):
    """Every file of the spec's folder, combinations included; one test per spec, so that the
    workers of ``pytest -n`` share the regeneration. With the test below, this is the whole
    ``--check`` (which CI therefore does not run a second time)."""
    assert regenerate(["--check", "--spec", spec_id, "--jobs", "1"]) == 0, capsys.readouterr().out


def test_the_golden_folder_holds_the_specs_folders_and_nothing_else():
    """What the whole ``--check`` compares beyond each spec's folder: no JSON file outside a spec's
    folder, no folder of a spec that no longer exists, and a folder for every spec."""
    from optimizer_conformance.derivations.__main__ import _shipped_dir

    shipped = _shipped_dir()
    files = [p.relative_to(shipped).as_posix() for p in shipped.rglob("*.json")]
    outside = [rel for rel in files if "/" not in rel or rel.split("/")[0] not in SPECS]
    assert not outside, f"golden files outside the folder of a spec in SPECS: {outside[:10]}"
    assert {rel.split("/")[0] for rel in files} == set(SPECS)


def test_a_changed_golden_is_found_by_the_check(tmp_path, monkeypatch, capsys):
    """The check can fail: one changed byte in a shipped golden is reported with its path."""
    import shutil

    from optimizer_conformance.derivations import __main__ as cli

    shipped = tmp_path / "golden"
    shutil.copytree(cli._shipped_dir() / "sgd", shipped / "sgd")
    spec_file = shipped / "sgd" / "spec.json"
    spec_file.write_text(spec_file.read_text(encoding="utf-8").replace('"', "'", 1), encoding="utf-8")
    monkeypatch.setattr(cli, "_shipped_dir", lambda: shipped)
    assert regenerate(["--check", "--spec", "sgd", "--jobs", "1"]) == 1
    assert "sgd/spec.json" in capsys.readouterr().out


def test_a_changed_initial_value_is_a_changed_line():
    """A variant that only starts a state elsewhere (TF1's RMSprop ms₀ = 1) is a one-line delta."""
    rule = SPECS["adam"].rule
    diff = changed_lines(rule, rule.with_initial("exp_avg_sq", 1))
    assert len(diff) == 1
    before, after = diff[0]
    assert before.label == after.label == "initial" and after.expr == 1
