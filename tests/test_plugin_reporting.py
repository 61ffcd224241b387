"""The plugin's selection and reporting options end to end: --optimizer-xfails, the report
header, the end-of-run feature table (the same with pytest-xdist) and --optimizer-plots."""

from __future__ import annotations

import json
import sys

import numpy  # noqa: F401  (in-process pytester restores sys.modules: import these up front)
import optimizer_conformance.conformance.plugin
import optimizer_conformance.conformance.report
import optimizer_conformance.conformance.summary
import optimizer_conformance.conformance.xfails  # noqa: F401
import pytest
import torch  # noqa: F401

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.plugin_only import plugins, set_env
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path (rootdir-relative)
    from plugin_only import plugins, set_env
from optimizer_conformance.conformance.golden import index

try:  # --optimizer-plots draws with matplotlib's Agg canvas
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import optimizer_conformance.conformance.plots  # noqa: F401

    HAVE_MPL = True
except ImportError:  # pragma: no cover - matplotlib is in the test extra
    HAVE_MPL = False



needs_mpl = pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed")

# the Keras-style Adam (adam.eps_hat), and torch warmed up once per process: shared with
# tests/test_plugin.py (in-process pytester runs drop modules imported inside them)
try:  # run from the repository root: tests/ is a namespace package
    from tests.test_plugin import MUTANT_MODULE
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path
    from test_plugin import MUTANT_MODULE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The Keras-style mutant (ε̂) against spec adam: which case runs it fails. In float32 the
# difference is below the tolerance where ε is small against √v; in float64 it never is.
MUTANT_FAILS = {
    "adam/large_eps[float32-cpu]", "adam/large_eps_small_beta2[float32-cpu]",
    "adam/groups_and_missing_grads[float32-cpu]",
    *(f"adam/{c}[float64-cpu]" for c in (
        "defaults", "large_eps", "large_eps_small_beta2", "amsgrad_shrinking_gradients",
        "weight_decay_maximize", "weight_decay_lr_schedule", "groups_and_missing_grads", "resume")),
}

MUTANT_TABLE = """\
case runs (case × dtype) by feature:
feature                 passed   failed  skipped
------------------------------------------------
amsgrad                      2        4        0
grad_none                    0        2        0
hyperparameter_change        1        1        0
maximize                     1        1        0
param_groups                 0        2        0
state_dict_resume            1        1        0
weight_decay                 3        3        0
(no feature)                 1        5        0
all                          5       11        0"""


# The Keras-style mutant's expected outcomes below are those of Adam's hand-written cases; the
# generated ones (one feature per case, boundary values, long horizons: derivations/feature_cases.py)
# are deselected, so that these reporting tests do not move with the case design.
HAND_WRITTEN = ("-k", "not only_ and not boundary_ and not long_horizon and not resumed_at_large_t")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


def _mutant(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(keras_adam=MUTANT_MODULE)
    pytester.syspathinsert()


def _table(out: str) -> str:
    lines = out.splitlines()
    start = lines.index("case runs (case × dtype) by feature:")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("all "))
    return "\n".join(lines[start : end + 1])


def _xfailed_ids(out: str) -> set[str]:
    """The ids -rx lists as XFAIL (with the reason the plugin gives)."""
    ids = set()
    for line in out.splitlines():
        if line.startswith("XFAIL "):
            nodeid, _, reason = line[len("XFAIL ") :].partition(" - ")
            assert reason.startswith("listed in xfails.txt"), line
            ids.add(nodeid.rsplit("::", 1)[-1])
    return ids


# -- --optimizer-xfails ------------------------------------------------------------------------
def test_xfails_file_marks_exactly_the_listed_prefixes(pytester):
    _mutant(pytester)
    pytester.makefile(".txt", xfails="# Keras-style ε̂: expected\n\nadam/large_eps   # both large-ε cases\n"
                                     "adam/defaults[float64-cpu]\n")
    result = _run(pytester, *HAND_WRITTEN, "--optimizer=keras_adam.Adam", "--optimizer-xfails=xfails.txt", "-rx")
    listed = {i for i in MUTANT_FAILS if i.startswith(("adam/large_eps", "adam/defaults[float64-cpu]"))}
    assert len(listed) == 5
    result.assert_outcomes(passed=5, failed=len(MUTANT_FAILS) - 5, xfailed=5)
    assert _xfailed_ids(result.stdout.str()) == listed
    assert result.ret == 1  # the failures not listed still fail the run
    result.stdout.fnmatch_lines(["feature *passed*failed*xfailed*skipped",
                                 "all *5 *6 *5 *0"])
    assert "matches no case" not in result.stdout.str()


def test_all_failures_listed_exits_zero(pytester):
    _mutant(pytester)
    pytester.makefile(".txt", xfails="adam/\n")
    result = _run(pytester, *HAND_WRITTEN, "--optimizer=keras_adam.Adam", "--optimizer-dtype=float64",
                  "--optimizer-xfails=xfails.txt", "-rx")
    result.assert_outcomes(xfailed=8)
    assert result.ret == 0
    assert _xfailed_ids(result.stdout.str()) == {i for i in MUTANT_FAILS if "float64" in i}


def test_listed_case_that_passes_fails_strictly(pytester):
    pytester.makefile(".txt", xfails="adam/defaults[float32\n")
    result = _run(pytester, "--optimizer=torch.optim.Adam", "--optimizer-xfails=xfails.txt", "-k", "defaults")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*[[]XPASS(strict)[]] listed in xfails.txt*"])


def test_xfails_line_matching_nothing_warns(pytester):
    pytester.makefile(".txt", xfails="adam/defaults\nadam/no_such_case\n# a comment\nsgd/\n")
    result = _run(pytester, "--optimizer=torch.optim.Adam", "--optimizer-xfails=xfails.txt",
                  "--optimizer-dtype=float64", "-k", "large_eps_small_beta2")
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    for n, entry in ((2, "adam/no_such_case"), (4, "sgd/")):
        msg = f"--optimizer-xfails: xfails.txt:{n}: {entry!r} matches no case of this run"
        assert f"PytestWarning: {msg}" in out  # the warnings summary
        assert f"\n{msg}\n" in out  # the optimizer conformance section
    assert "'adam/defaults'" not in out  # matches a case (deselected here by -k)
    deselected = len(index()["specs"]["adam"]["cases"]) - 1
    result.stdout.fnmatch_lines([f"*1 passed, {deselected} deselected, 2 warnings*"])


def test_xfails_missing_file_is_a_usage_error(pytester):
    result = _run(pytester, "--optimizer=torch.optim.Adam", "--optimizer-xfails=nope.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --optimizer-xfails=nope.txt: cannot read the file*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_xfails_parsing(tmp_path):
    from optimizer_conformance.conformance.xfails import XfailEntry, read_xfails

    (tmp_path / "xf.txt").write_text("  # header\n\nadam/large_eps  # why\n  sgd/defaults[float32-cpu]\n")
    xf = read_xfails("xf.txt", base=tmp_path)
    assert xf.entries == (XfailEntry(3, "adam/large_eps"), XfailEntry(4, "sgd/defaults[float32-cpu]"))
    assert xf.reason == "listed in xf.txt"
    assert xf.listed("adam/large_eps_small_beta2[float64-cpu]") and not xf.listed("adam/defaults[float32-cpu]")
    assert xf.unmatched(["adam/large_eps[float32-cpu]"]) == [XfailEntry(4, "sgd/defaults[float32-cpu]")]


# -- header ------------------------------------------------------------------------------------
def test_header_names_candidate_spec_and_environment(pytester):
    result = _run(pytester, "--optimizer=torch.optim.Adam", '--optimizer-kwargs={"foreach": false}',
                  "--optimizer-dtype=float64", "-k", "defaults")
    py = ".".join(map(str, sys.version_info[:2]))
    result.stdout.fnmatch_lines([
        "optimizer-conformance *: candidate torch.optim.Adam (torch) kwargs {\"foreach\": false}; spec adam; "
        f"dtypes float64; device cpu; torch *, numpy *, python {py}.*"
    ])
    assert sum("optimizer-conformance" in line and "candidate" in line
               for line in result.stdout.lines) == 1  # one header line


# -- the feature table -------------------------------------------------------------------------
def test_feature_table_counts(pytester):
    _mutant(pytester)
    result = _run(pytester, *HAND_WRITTEN, "--optimizer=keras_adam.Adam")
    result.assert_outcomes(passed=5, failed=11)
    assert _table(result.stdout.str()) == MUTANT_TABLE


@pytest.mark.skipif(sys.platform != "linux", reason="timing measured on the CI machine kind")
def test_feature_table_unit():
    from optimizer_conformance.conformance.report import CaseRecord
    from optimizer_conformance.conformance.summary import feature_table

    recs = [CaseRecord("s", "s/a", "float32", "cpu", "passed"), CaseRecord("s", "s/a", "float64", "cpu", "failed"),
            CaseRecord("s", "s/b", "float32", "cpu", "skipped"), CaseRecord("s", "s/c", "float32", "cpu", "failed")]
    feats = {"s/a": ["x", "y"], "s/b": ["y"], "s/c": []}
    lines = feature_table(recs, feats)
    rows = {ln[:12].strip(): [int(x) for x in ln[12:].split()] for ln in lines[3:]}
    assert rows == {"x": [1, 1, 0], "y": [1, 1, 1], "(no feature)": [0, 1, 0], "all": [1, 2, 1]}
    with_xf = feature_table(recs, feats, lambda r: r.case == "s/c")
    assert with_xf[1].split() == ["feature", "passed", "failed", "xfailed", "skipped"]
    assert with_xf[-1].split() == ["all", "1", "1", "1", "1"]
    assert feature_table([], feats) == []


# -- --optimizer-plots -------------------------------------------------------------------------
@needs_mpl
def test_plots_written_for_failing_cases_only(pytester):
    from optimizer_conformance.conformance.plots import plot_name

    _mutant(pytester)
    report = pytester.path / "r.json"
    result = _run(pytester, *HAND_WRITTEN, "--optimizer=keras_adam.Adam", "--optimizer-plots=out/plots",
                  f"--optimizer-report={report}")
    result.assert_outcomes(passed=5, failed=11)
    doc = json.loads(report.read_text())
    failed = {plot_name(c["id"], c["dtype"]) for c in doc["cases"] if c["outcome"] == "failed"}
    passed = {plot_name(c["id"], c["dtype"]) for c in doc["cases"] if c["outcome"] == "passed"}
    assert len(failed) == 11 and len(passed) == 5
    files = list((pytester.path / "out" / "plots").iterdir())
    assert {p.name for p in files} == failed  # none for a passing case
    for p in files:
        data = p.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, p.name


def test_plots_not_imported_without_the_option(pytester):
    """matplotlib stays out of a run that does not ask for plots (a NumPy candidate: torch
    imports nothing of matplotlib, but keep the check framework-free)."""
    pytester.makeconftest(
        "import sys\n"
        "def pytest_sessionfinish(session):\n"
        "    print('MPL:', 'matplotlib' in sys.modules)\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-s",
                                           "--optimizer=optimizer_conformance.reference.Adam", "-k", "defaults")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*MPL: False*"])


def test_reports_are_byte_identical_run_to_run_and_xdist_gives_the_same_table_and_plots(pytester, monkeypatch):
    """The same failing candidate checked twice, and once more under -n 2: the three JSON reports
    are the same bytes (no timestamps, no durations, records sorted). Under pytest-xdist the
    controller builds the feature table from the workers' records (the same table), and the
    workers that ran the failing cases write their plots."""
    pytest.importorskip("xdist")
    _mutant(pytester)
    set_env(monkeypatch)  # the run and its workers load the plugin and xdist only
    plots = ["--optimizer-plots=plots"] if HAVE_MPL else []
    reports, outputs = [], []
    for i, extra in enumerate([plugins(), plugins(), ["-n", "2", *plugins(xdist=True), *plots]]):
        path = pytester.path / f"r{i}.json"
        result = _run(pytester, *HAND_WRITTEN, "--optimizer=keras_adam.Adam", "--optimizer-spec=adam",
                      f"--optimizer-report={path}", *extra)
        result.assert_outcomes(passed=5, failed=11)
        reports.append(path.read_bytes())
        outputs.append(result.stdout.str())
    assert json.loads(reports[0])["cases"] and json.loads(reports[0])["diagnosis"]["verdict"] == "variant"
    assert reports[0] == reports[1] == reports[2]
    assert _table(outputs[0]) == _table(outputs[2]) == MUTANT_TABLE
    if HAVE_MPL:
        from optimizer_conformance.conformance.plots import plot_name

        written = {p.name for p in (pytester.path / "plots").iterdir()}
        assert written == {plot_name(i.split("[")[0], i.split("[")[1].split("-")[0]) for i in MUTANT_FAILS}
