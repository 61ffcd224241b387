"""The JSON Schemas of the golden vectors and of the report describe what the suite writes.

* both schemas are valid draft 2020-12 schemas, and every property in them is described;
* every shipped golden file validates against ``golden.schema.json``: with the schema compiled by
  fastjsonschema (the 713 files, 57 MB, take ~8× less than with jsonschema's interpreter, which
  lists the errors when a file fails); the two validators agree on every defective document below
  and on a shipped document of each kind, and the schema uses no keyword whose meaning differs
  between fastjsonschema's newest draft (2019-09) and 2020-12;
* the golden schema is not vacuous: a real spec document with one defect fails validation;
* a report written for a conforming and for failing candidates validates against
  ``report.schema.json``.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.diagnosis import diagnose
from optimizer_conformance.conformance.golden import index
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.report import CaseRecord, environment, report_document
from optimizer_conformance.conformance.runner import run_case
from optimizer_conformance.conformance.tolerance import CATCH_MARGIN, K

PACKAGE = resources.files("optimizer_conformance.conformance")
GOLDEN = PACKAGE / "golden"
SCHEMAS = {"golden": "golden.schema.json", "report": "report.schema.json"}


@cache
def schema(kind: str) -> dict:
    return json.loads((PACKAGE / "schemas" / SCHEMAS[kind]).read_text(encoding="utf-8"))


@cache
def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(schema(kind))


def golden_files() -> list[str]:
    """Every shipped golden file, as a "/"-separated path relative to ``golden/``."""
    out = []

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".json") and child.name != "MANIFEST.json":
                out.append(prefix + child.name)

    walk(GOLDEN, "")
    return sorted(out)  # <spec>/MANIFEST.json (digests, not golden documents): tests/test_bad_inputs.py


def golden(rel: str) -> dict:
    node = GOLDEN
    for part in rel.split("/"):
        node = node / part
    return json.loads(node.read_text(encoding="utf-8"))


def errors(kind: str, doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator(kind).iter_errors(doc)]


def assert_valid(kind: str, doc: dict) -> None:
    errs = errors(kind, doc)
    assert not errs, f"{len(errs)} schema error(s), e.g.:\n" + "\n".join(errs[:10])


@cache
def compiled(kind: str):
    """The schema compiled to Python by fastjsonschema: a function that raises on the first error."""
    import fastjsonschema

    return fastjsonschema.compile(schema(kind))


def compiled_accepts(kind: str, doc: dict) -> bool:
    import fastjsonschema

    try:
        compiled(kind)(doc)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


@cache
def shipped_errors(rel: str) -> tuple[str, ...]:
    """errors() of a shipped golden file, as shipped: computed once per process (several tests
    validate the same unmodified document). The compiled schema decides; only a document it
    rejects is walked by jsonschema, for the list of errors (and, were jsonschema to find none,
    the disagreement is reported instead of a pass)."""
    doc = golden(rel)
    if compiled_accepts("golden", doc):
        return ()
    return tuple(errors("golden", doc)) or ("fastjsonschema rejects what jsonschema accepts",)


def assert_shipped_valid(rel: str) -> None:
    errs = shipped_errors(rel)
    assert not errs, f"{rel}: {len(errs)} schema error(s), e.g.:\n" + "\n".join(errs[:10])


def rejects(kind: str, doc: dict) -> bool:
    """The schema finds at least one error in the document: ``bool(errors(kind, doc))``, but
    stops at the first error instead of listing every one (the defect tests need only that).
    Both validators must say so: the compiled one (which validates the shipped files) and
    jsonschema's (the reference implementation of draft 2020-12)."""
    reference = not validator(kind).is_valid(doc)
    assert reference == (not compiled_accepts(kind, doc)), (
        f"jsonschema {'rejects' if reference else 'accepts'} a document that fastjsonschema does not")
    return reference


# -- the schemas themselves ------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_schema_is_valid_draft_2020_12(kind):
    s = schema(kind)
    Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["$id"] == f"https://optimizer-conformance.invalid/schemas/{kind}/v1"
    assert s["title"] and s["description"]


def _resolve(root: dict, sub: dict) -> dict:
    while "description" not in sub and "$ref" in sub and sub["$ref"].startswith("#/"):
        node = root
        for part in sub["$ref"][2:].split("/"):
            node = node[part]
        sub = node
    return sub


def _undescribed(root: dict, node, where: str) -> list[str]:
    out = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if "description" not in _resolve(root, sub):
                out.append(f"{where}/properties/{name}")
        for key, value in node.items():
            out += _undescribed(root, value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _undescribed(root, value, f"{where}/{i}")
    return out


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_every_property_is_described(kind):
    assert _undescribed(schema(kind), schema(kind), "#") == []


def test_golden_schema_states_the_tolerance_constants():
    """Consumers in other languages read K and CATCH_MARGIN from the schema's description."""
    text = schema("golden")["description"]
    assert f"K = {K:g}" in text
    assert f"CATCH_MARGIN = {CATCH_MARGIN:g}" in text


def test_schema_ids_match_the_writers():
    from optimizer_conformance.conformance.golden import SCHEMA_ID as GOLDEN_ID
    from optimizer_conformance.conformance.report import REPORT_SCHEMA_ID

    assert schema("golden")["$defs"]["schema_id"]["const"] == GOLDEN_ID
    assert schema("report")["properties"]["schema"]["const"] == REPORT_SCHEMA_ID


# 2019-09 (fastjsonschema's newest draft) and 2020-12 differ in "items" given as an array (2020-12:
# "prefixItems"), "$recursiveRef"/"$dynamicRef" and "unevaluatedItems"; keywords beside a "$ref"
# apply in both (unlike draft 7).
DIFFERS_FROM_2019 = {"prefixItems", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor",
                     "unevaluatedItems"}


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_compiled_validator_reads_the_schema_as_2020_12_does(kind):
    found = []

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            found.extend(f"{path}/{k}" for k in node if k in DIFFERS_FROM_2019)
            if isinstance(node.get("items"), list):
                found.append(f"{path}/items (an array)")
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(schema(kind), "")
    assert not found, f"{SCHEMAS[kind]} uses keywords read differently by the compiled validator: {found}"


def test_both_validators_accept_a_shipped_document_of_each_kind():
    """index, spec, variant and compound documents: both validators accept them (the defect tests
    below check that both reject each defective one)."""
    docs = ["adam/index.json", SPEC_DOC, _variant_rel(), "adam/compound.json"]
    for rel in docs:
        doc = golden(rel)
        assert validator("golden").is_valid(doc), rel
        assert compiled_accepts("golden", doc), rel


# -- the shipped goldens ---------------------------------------------------------------------

FILES = golden_files()


def test_goldens_are_shipped():
    """Each spec's folder holds its index (of that spec alone), whose files are shipped, and
    nothing else is in the folder; no file of the golden folder lies outside a spec's folder."""
    folders = sorted({rel.split("/")[0] for rel in FILES})
    assert all("/" in rel for rel in FILES), [rel for rel in FILES if "/" not in rel]
    for spec_id in folders:
        index = golden(f"{spec_id}/index.json")
        assert list(index["specs"]) == [spec_id]
        meta = index["specs"][spec_id]
        listed = {f"{spec_id}/index.json", meta["file"], *(v["file"] for v in meta["variants"])}
        if f"{spec_id}/compound.json" in FILES:  # the combinations of its variants (compound.py)
            compound = golden(f"{spec_id}/compound.json")
            listed |= {f"{spec_id}/compound.json", *(c["file"] for c in compound["combinations"])}
        assert listed == {rel for rel in FILES if rel.startswith(f"{spec_id}/")}


@pytest.mark.parametrize("rel", FILES, ids=FILES)
def test_golden_file_validates(rel):
    assert_shipped_valid(rel)


DECIMAL = schema("golden")["$defs"]["decimal"]


@pytest.mark.parametrize("text", ["0", "0.0", "0.5", "-3.734375", "1e-08", "1.09", "1.25e+04",
                                  "982", "-0.5674062499877512433243964551365934312344", "6.31e+13"])
def test_decimal_pattern_accepts(text):
    assert Draft202012Validator(DECIMAL).is_valid(text)


# Not "1e-08\n": the pattern's "$" is ECMA-262's end of input, but Python's re (which jsonschema
# uses) also matches "$" before a final newline. A lookahead would close that gap but is not
# supported by RE2-style engines (Go, Rust) that consumers in other languages use.
@pytest.mark.parametrize("text", ["", "NaN", "nan", "inf", "-Infinity", "1.", ".5", "+1", "01",
                                  "-", "1e", "0x1p-3", "1,5", " 1", "1 ", "1_000", "1e-08 "])
def test_decimal_pattern_rejects(text):
    assert not Draft202012Validator(DECIMAL).is_valid(text)


@pytest.mark.parametrize("value", [0.5, 1, True, None, ["0.5"]])
def test_decimal_is_a_string(value):
    assert not Draft202012Validator(DECIMAL).is_valid(value)


# -- not vacuous: one defect in a real document is caught ------------------------------------

SPEC_DOC = "adam/spec.json"


def _variant_rel() -> str:
    return golden("adam/index.json")["specs"]["adam"]["variants"][0]["file"]


def _spec_doc() -> dict:
    return golden(SPEC_DOC)


def _variant_doc() -> dict:
    return golden(_variant_rel())


def _first_step(doc: dict) -> dict:
    return doc["cases"][0]["steps"][0]


def _first_param(doc: dict) -> str:
    return doc["cases"][0]["params"][0]["name"]


def _float_expected(doc):
    values = _first_step(doc)["expected"]["params"][_first_param(doc)]
    values[0] = float(values[0])  # a JSON number: rounded by every JSON parser


def _float_grad(doc):
    step = _first_step(doc)
    name = next(k for k, v in step["grads"].items() if v is not None)
    step["grads"][name][0] = float(step["grads"][name][0])


def _float_hyperparameter(doc):
    doc["cases"][0]["param_groups"][0]["hyperparameters"]["lr"] = 0.001


def _float_bound(doc):
    values = _first_step(doc)["bound"]["params"][_first_param(doc)]
    values[0] = float(values[0])


def _nan_expected(doc):
    _first_step(doc)["expected"]["params"][_first_param(doc)][0] = "NaN"


def _negative_bound(doc):
    _first_step(doc)["bound"]["params"][_first_param(doc)][0] = "-1.5"


def _missing_expected(doc):
    del _first_step(doc)["expected"]


def _missing_state(doc):
    del _first_step(doc)["expected"]["state"]


def _extra_step_key(doc):
    _first_step(doc)["tolerance"] = "1e-06"


def _extra_case_key(doc):
    doc["cases"][0]["comment"] = "not part of v1"


def _wrong_schema(doc):
    doc["schema"] = "optimizer-conformance/golden/v2"


def _missing_variant_key(doc):
    del doc["variant"]


def _counter_as_string(doc):
    state = _first_step(doc)["expected"]["state"]
    name = next(iter(state))
    state[name]["step"] = "1"


def _separation_one_dtype(doc):
    sep = doc["cases"][0]["separation"]
    del sep[next(iter(sep))]["float64"]


def _grads_not_a_list(doc):
    step = _first_step(doc)
    name = next(iter(step["grads"]))
    step["grads"][name] = "0.5"


def _reload_as_string(doc):
    _first_step(doc)["reload_before"] = "false"


def _change_group_negative(doc):
    _first_step(doc)["changes"].append({"group": -1, "name": "lr", "value": "0.5"})


SPEC_DEFECTS = [_float_expected, _float_grad, _float_hyperparameter, _float_bound, _nan_expected,
                _negative_bound, _missing_expected, _missing_state, _extra_step_key, _extra_case_key,
                _wrong_schema, _missing_variant_key, _counter_as_string, _separation_one_dtype,
                _grads_not_a_list, _reload_as_string, _change_group_negative]


def test_unmutated_spec_document_validates():
    assert_shipped_valid(SPEC_DOC)  # the document _spec_doc() returns, unmodified


@pytest.mark.parametrize("defect", SPEC_DEFECTS, ids=lambda f: f.__name__.lstrip("_"))
def test_defective_spec_document_fails(defect):
    doc = _spec_doc()
    defect(doc)
    assert rejects("golden", doc), f"{defect.__name__}: the schema accepted a defective document"


def _variant_with_catches(doc):
    doc["cases"][0]["catches"] = []


def _variant_with_state(doc):
    _first_step(doc)["expected"]["state"] = {}


def _variant_without_meta(doc):
    doc["variant"] = {"id": doc["variant"]["id"]}


def _variant_float_expected(doc):
    _float_expected(doc)


@pytest.mark.parametrize("defect", [_variant_with_catches, _variant_with_state, _variant_without_meta,
                                    _variant_float_expected], ids=lambda f: f.__name__.lstrip("_"))
def test_defective_variant_document_fails(defect):
    assert_shipped_valid(_variant_rel())  # the document _variant_doc() returns, unmodified
    doc = _variant_doc()
    defect(doc)
    assert rejects("golden", doc), f"{defect.__name__}: the schema accepted a defective document"


def _index_without_file(doc):
    del doc["specs"]["adam"]["file"]


def _index_float_default(doc):
    doc["specs"]["adam"]["hyperparameters"][0]["default"] = 0.001


def _index_extra_key(doc):
    doc["generated"] = "today"


@pytest.mark.parametrize("defect", [_index_without_file, _index_float_default, _index_extra_key],
                         ids=lambda f: f.__name__.lstrip("_"))
def test_defective_index_fails(defect):
    doc = copy.deepcopy(golden("adam/index.json"))
    defect(doc)
    assert rejects("golden", doc), f"{defect.__name__}: the schema accepted a defective index"


# -- the report ------------------------------------------------------------------------------

def _perturbed_adam(mode: str) -> type:
    import torch

    class PerturbedAdam(torch.optim.Adam):
        """torch's Adam, then one parameter element moved after every step()."""

        @torch.no_grad()
        def step(self, closure=None):
            loss = super().step(closure)
            p = self.param_groups[0]["params"][0]
            if mode == "nan":
                p.view(-1)[0] = float("nan")
            else:
                p.view(-1)[0] += 1e-3
            return loss

    PerturbedAdam.__name__ = PerturbedAdam.__qualname__ = f"PerturbedAdam_{mode}"
    return PerturbedAdam


def _candidate(which: str) -> Candidate:
    if which == "torch.optim.Adam":
        return Candidate.from_path("torch.optim.Adam", {})
    if which == "torch.optim.AdamW":  # decoupled weight decay: a catalogued variant of Adam
        return Candidate.from_path("torch.optim.AdamW", {})
    cls = _perturbed_adam(which)
    return Candidate(path=f"{__name__}.{cls.__name__}", target=cls, api="torch", kwargs={})


@cache
def report(which: str) -> dict:
    pytest.importorskip("torch")
    cand, spec, dtype = _candidate(which), load_spec("adam"), "float32"
    records = [CaseRecord.from_result(run_case(cand, spec, case, dtype)) for case in spec.cases]
    doc = report_document({"path": cand.path, "api": cand.api, "kwargs": cand.kwargs}, spec.id,
                          records, diagnose(records), environment("cpu", [dtype]))
    return json.loads(json.dumps(doc, allow_nan=False))


CANDIDATES = ["torch.optim.Adam", "offset", "nan", "torch.optim.AdamW"]


@pytest.mark.parametrize("which", CANDIDATES)
def test_report_validates(which):
    assert_valid("report", report(which))


def test_report_of_a_conforming_candidate():
    doc = report("torch.optim.Adam")
    assert doc["diagnosis"]["verdict"] == "conforms"
    assert doc["summary"]["failed"] == 0 and doc["summary"]["passed"] == len(doc["cases"])


@pytest.mark.parametrize("which", ["offset", "nan"])
def test_report_of_a_failing_candidate_has_divergences(which):
    """The failing-record shape (first_divergence, first_divergent_step) is really exercised."""
    doc = report(which)
    failing = [c for c in doc["cases"] if c["outcome"] == "failed"]
    assert failing and doc["diagnosis"]["verdict"] != "conforms"
    assert all(c["first_divergence"] is not None for c in failing)
    assert all(c["first_divergent_step"] == c["first_divergence"]["step"] for c in failing)
    if which == "nan":  # JSON has no NaN: the report writes null, which the schema allows
        assert any(c["first_divergence"]["actual"] is None for c in failing)
        assert any(c["max_error"] is None for c in failing)


def _report_defect(doc: dict, what: str) -> None:
    case = next(c for c in doc["cases"] if c["first_divergence"] is not None)
    if what == "verdict":
        doc["diagnosis"]["verdict"] = "mostly fine"
    elif what == "outcome":
        case["outcome"] = "xfailed"
    elif what == "divergence-extra-key":
        case["first_divergence"]["ratio"] = 2.0
    elif what == "divergence-index":
        case["first_divergence"]["index"] = "[0]"
    elif what == "nan-string":
        case["max_error"] = "NaN"
    elif what == "schema":
        doc["schema"] = "optimizer-conformance/report/v0"
    elif what == "summary":
        del doc["summary"]["skipped"]


@pytest.mark.parametrize("what", ["verdict", "outcome", "divergence-extra-key", "divergence-index",
                                  "nan-string", "schema", "summary"])
def test_defective_report_fails(what):
    doc = copy.deepcopy(report("offset"))
    _report_defect(doc, what)
    assert rejects("report", doc), f"{what}: the schema accepted a defective report"


def test_report_written_by_the_plugin_validates(pytester):
    """End to end: the file ``pytest --optimizer=... --optimizer-report=PATH`` writes."""
    pytest.importorskip("torch")
    path = pytester.path / "report.json"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--optimizer=torch.optim.SGD",
                                          "--optimizer-dtype=float32", f"--optimizer-report={path}")
    result.assert_outcomes(passed=len(load_spec("sgd").cases))
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert_valid("report", doc)
    assert doc["diagnosis"]["verdict"] == "conforms"


def test_readme_lists_every_spec_and_variant():
    """The README's table of what the suite checks is the golden index's, row by row (no drift)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines()
            if line.startswith("| `")}
    for spec_id, meta in index()["specs"].items():
        assert spec_id in rows, f"README has no row for spec {spec_id}"
        row = rows[spec_id]
        if meta["torch_class"] is not None:
            assert f"`{meta['torch_class']}`" in row, spec_id
        for v in meta["variants"]:
            assert f"`{v['id']}`" in row, f"README row {spec_id} lacks {v['id']}"
