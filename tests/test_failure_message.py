"""A failure names the rule line where the candidate's variant leaves the spec: the spec's line
and the variant's, one above the other, the differing part marked (from the golden index, so the
plugin needs no SymPy)."""

from __future__ import annotations

import unicodedata

import pytest
from optimizer_conformance.conformance.golden import index, spec_ids
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.report import rule_line_diff


def _columns(text: str) -> list[str]:
    """The characters of ``text`` by terminal column (a combining accent joins its base)."""
    cols: list[str] = []
    for c in text:
        if unicodedata.combining(c) and cols:
            cols[-1] += c
        else:
            cols.append(c)
    return cols


def test_markers_stand_under_exactly_the_differing_columns():
    line = {"label": "bias_correction_v", "doc": "bias-corrected second moment",
            "spec": "v̂ ← v/(1 − β₂ᵗ)", "variant": "v̂ ← v"}
    head, spec, marks, variant = rule_line_diff(line)
    assert head == "rule line bias_correction_v (bias-corrected second moment):"
    assert spec == "  spec     v̂ ← v/(1 − β₂ᵗ)" and variant == "  variant  v̂ ← v"
    spec_cols, mark_cols = _columns(spec), list(marks)
    marked = "".join(spec_cols[i] for i, m in enumerate(mark_cols) if m == "^")
    assert marked == "/(1 − β₂ᵗ)"


def test_both_lines_marked_where_both_differ():
    line = {"label": "update", "doc": "", "spec": "θ ← θ − γ·m̂/(√v̂ + ε)", "variant": "θ ← θ − γ·m̂/√(v̂ + ε)"}
    out = rule_line_diff(line)
    assert out[0] == "rule line update:"
    assert out[1].startswith("  spec") and set(out[2].strip()) == {"^"}
    assert out[3].startswith("  variant") and set(out[4].strip()) == {"^"}


@pytest.mark.parametrize(("spec_text", "variant_text", "expected"), [
    (None, "G ← (0.1 if t = 1 else G)", "(no such line)"),
    ("g ← g + λ·θ", None, "(no such line: removed)"),
    ("θ ← θ·(1 − γ·λ)", "θ ← θ·(1 − γ·λ)", "the same line, at another place in the algorithm"),
])
def test_added_removed_and_moved_lines_are_said_in_words(spec_text, variant_text, expected):
    out = rule_line_diff({"label": "x", "doc": "d", "spec": spec_text, "variant": variant_text})
    assert any(expected in line for line in out) and not any(set(line.strip()) == {"^"} for line in out)


def test_every_catalogued_variant_names_the_lines_it_changes():
    for sid in spec_ids():
        for v in index()["specs"][sid]["variants"]:
            assert v["lines"], f"{v['id']} of {sid}: no changed line in the index"
            for line in v["lines"]:
                assert line["spec"] is not None or line["variant"] is not None
                assert "\\" not in (line["spec"] or "") + (line["variant"] or ""), line  # no raw TeX


def test_loaded_variants_carry_their_lines():
    v = load_spec("adam").variants["adam.uncorrected_second_moment"]
    (line,) = v.lines
    assert line["label"] == "bias_correction_v"
    assert line["spec"].endswith("/(1 − β₂ᵗ)") and not line["variant"].endswith("/(1 − β₂ᵗ)")
