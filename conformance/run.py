"""The run's bookkeeping: everything one ``pytest --optimizer=...`` run knows (the candidate, its
process, the spec, the options) and does across its cases (collection, records, the diagnosis,
the report, the summary). Registered as a pytest plugin by ``plugin.py`` when ``--optimizer`` is
given."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from .items import ITEM_NAME, PENDING, ConformanceSuite, item_id
from .options import (
    DEVICE,
    accepted,
    check_device,
    distributed,
    distributed_unavailable,
    dtypes,
    goldens,
    infer_spec,
    isolated,
    json_object,
    timeout,
    usage,
    xdist_controller,
)

if TYPE_CHECKING:
    from .golden import Case, Spec
    from .report import CaseRecord


class ConformanceRun:
    """Everything one ``pytest --optimizer=...`` run knows: candidate, spec, results."""

    def __init__(self, config: pytest.Config):
        from .candidates import Candidate, UsageError
        from .golden import spec_ids, verify_spec
        from .kinds import load_spec

        self.config = config
        self.worker = None  # the candidate process (isolation.py), None when the candidate runs here
        self.timeout = timeout(config)
        try:
            kwargs = json.loads(config.getoption("optimizer_kwargs") or "{}")
        except json.JSONDecodeError as exc:
            raise UsageError(f"--optimizer-kwargs is not valid JSON: {exc}") from None
        if not isinstance(kwargs, dict):
            raise UsageError("--optimizer-kwargs must be a JSON object, e.g. '{\"foreach\": false}'")
        self.dtypes = dtypes(config.getoption("optimizer_dtype"))
        device = config.getoption("optimizer_device")
        if not DEVICE.fullmatch(device):
            raise UsageError(f"--optimizer-device={device!r}: expected cpu, cuda or cuda:N")
        # the files and paths the run reads and writes, before the candidate is imported
        self._reporting_options(config)
        ids = goldens(spec_ids)
        path = config.getoption("optimizer")
        # the candidate imports from where the user stands, as under ``python -m pytest``
        search = tuple(dict.fromkeys(str(d) for d in (config.invocation_params.dir, config.rootpath)))
        # how the candidate names its settings, and whether optax runs under jit (names.py)
        args = json_object(config.getoption("optimizer_args"), "--optimizer-args")
        jit = not config.getoption("optimizer_no_jit")
        self.group = None  # the rank processes of --optimizer-distributed (distributed_group.py)
        self.distributed = distributed(config)
        self.distributed_unavailable = distributed_unavailable(self.distributed, device)
        if self.distributed and not self.distributed_unavailable:
            from .distributed_group import RankGroup

            wrapper, world = self.distributed
            self.group = RankGroup(path, kwargs, search, self.timeout, wrapper, world, device, args=args, jit=jit)
            kind, info = self.group.start()
            if kind != "ready":
                raise UsageError(info)
            self.candidate = Candidate(path, None, info["api"], dict(kwargs), info=info, args=args, jit=jit)
            declared = info["spec"]
        elif isolated(config, device) and not self.distributed:
            from .isolation import CandidateProcess, start_method

            method = start_method(device)
            hook = config.hook.pytest_optimizer_conformance_build
            self.worker = CandidateProcess(path, kwargs, search, self.timeout, args=args, jit=jit,
                                           hook=hook if hook.get_hookimpls() else None, method=method)
            kind, info = self.worker.start()
            if kind != "ready":
                raise UsageError(info)
            self.candidate = Candidate(path, None, info["api"], dict(kwargs), info=info, args=args, jit=jit)
            declared = info["spec"]
        else:
            self.candidate = Candidate.from_path(path, kwargs, search=search)
            self.candidate.args, self.candidate.jit = args, jit
            declared = getattr(self.candidate.target, "conformance_spec", None)  # a class may declare its spec
        self.candidate.hook = config.hook.pytest_optimizer_conformance_build  # a conftest may build it
        spec_id = config.getoption("optimizer_spec") or declared or infer_spec(self.candidate.name, ids)
        if not isinstance(spec_id, str) or spec_id not in ids:
            raise UsageError(f"--optimizer-spec={spec_id!r}: unknown spec; known specs: {', '.join(ids)}")
        self.spec: Spec = goldens(lambda: (verify_spec(spec_id), load_spec(spec_id))[1])
        from .names import AmbiguousName

        try:
            self.candidate.names_for(self.spec)
        except AmbiguousName as exc:
            if not self.candidate.hooked():  # a conftest hook builds it under names it knows
                raise UsageError(f"--optimizer={path}: {exc}") from None
        self.accept = accepted(config.getoption("optimizer_accept"), self.spec)
        self.device, self.unavailable = check_device(device, self.candidate)
        if self.distributed:
            if self.candidate.api != "torch":
                raise UsageError(f"--optimizer-distributed: torch.distributed runs torch candidates; "
                                 f"{path} is a {self.candidate.api} candidate")
            self.unavailable = self.distributed_unavailable or self.unavailable
        self._check_contract(config)
        if getattr(config, "workerinput", None) is None:  # checked once: not again in each xdist worker
            self._check_candidate()
        if self.worker is not None and xdist_controller(config):
            self.worker.stop()  # the controller runs no case
        if self.group is not None and xdist_controller(config):
            self.group.stop()
        self.records: list[CaseRecord] = []
        self.died: list[str] = []  # how the candidate process died, per case run
        self.crashed_workers: list[str] = []  # pytest-xdist workers that died running a case
        self.diagnosis = None
        self._frozen = False
        self._xfail_lines(config)
        self._write_report(None, provisional=True)

    def _check_candidate(self) -> None:
        """Protocol, --optimizer-kwargs and a first construction (preflight.py), where it runs."""
        from .candidates import UsageError

        if self.group is not None:
            kind, payload = self.group.check(self.spec.id)
            if kind != "ok":
                raise UsageError(payload)
            return
        if self.worker is None:
            from .preflight import check_candidate

            check_candidate(self.candidate, self.spec)
            return
        from .isolation import Died

        try:
            kind, payload = self.worker.ask(("check", self.spec.id), self.timeout)
        except TimeoutError:
            raise UsageError(f"--optimizer={self.candidate.path}: building the candidate did not finish "
                             f"within {self.timeout:g} s (--optimizer-timeout)") from None
        except Died as exc:
            raise UsageError(f"--optimizer={self.candidate.path}: the candidate process {exc} while the "
                             f"candidate was built") from None
        if kind != "ok":
            raise UsageError(payload)

    def _check_contract(self, config: pytest.Config) -> None:
        if not config.getoption("optimizer_contract"):
            return
        if self.candidate.api != "torch":
            raise usage(f"--optimizer-contract: the contract is torch.optim's (zero_grad, state_dict, hooks, "
                         f"...): {self.candidate.path} is a {self.candidate.api} candidate")
        if any(getattr(c, "closed_loop", False) for c in self.spec.cases):
            raise usage(f"--optimizer-contract: spec {self.spec.id!r} is driven through step(closure): "
                         f"the contract checks cover the stepwise specs only")

    def _reporting_options(self, config: pytest.Config) -> None:
        """--optimizer-xfails (read here; its unmatched lines in _xfail_lines), --optimizer-plots
        (a path relative to where pytest was invoked) and --optimizer-report (writable)."""
        from .plots import PlotsUnavailable, require_matplotlib
        from .report import check_writable
        from .xfails import read_xfails

        base = config.invocation_params.dir
        xfails = config.getoption("optimizer_xfails")
        self.xfails = read_xfails(xfails, base) if xfails else None
        report = config.getoption("optimizer_report")
        if report:
            check_writable(report)
        plots = config.getoption("optimizer_plots")
        self.plots = str(base / plots) if plots else None
        if plots:
            try:
                require_matplotlib()
            except PlotsUnavailable as exc:
                raise usage(str(exc)) from None

    def _xfail_lines(self, config: pytest.Config) -> None:
        """An --optimizer-xfails line that matches no case warns once: here, not in xdist workers."""
        self.xfails_unmatched = []
        if self.xfails is not None:
            ids = [item_id(c.id, d, self.device, m) for c, m in self.case_modes() for d in self.dtypes]
            self.xfails_unmatched = [self.xfails.describe(e) for e in self.xfails.unmatched(ids)]
            if getattr(config, "workerinput", None) is None:
                for msg in self.xfails_unmatched:
                    config.issue_config_time_warning(pytest.PytestWarning(msg), stacklevel=2)

    def freeze_imports(self) -> None:
        """After the first case (the candidate's framework fully imported: torch loads dynamo on
        the first optimizer it builds), move the long-lived import-time objects out of the
        garbage collector's sight with ``gc.freeze()``. pytest runs several full collections at
        the end of a session; with torch loaded each one walks millions of objects (~0.2 s)."""
        if not self._frozen:
            import gc

            gc.freeze()
            self._frozen = True

    def run_isolated(self, case: Case, dtype: str, mode: str):
        """One case in the candidate process; its death or a hang is the case's verdict."""
        from .isolation import Died
        from .scoring import CaseResult

        request = {"spec": self.spec.id, "case": case.id, "dtype": dtype, "device": self.device,
                   "accept": list(self.accept), "mode": mode}
        where = f"case {case.id} [{dtype}, {self.device}]"
        res = CaseResult(self.spec.id, case.id, dtype, self.device, "failed", mode=mode)
        res.params_conform = False
        try:
            kind, payload = self.worker.ask(("case", request), self.timeout)
        except TimeoutError:
            at = self.worker.step.value
            res.reason = (f"{case.id} [{dtype}, {self.device}]: {self.candidate.path} did not finish the case "
                          f"within {self.timeout:g} s (--optimizer-timeout): it hangs or is far too slow "
                          f"(killed at step {at})")
            res.steps_run = max(at - 1, 0)
            return res
        except Died as exc:
            at = self.worker.step.value
            res.reason = f"candidate process {exc} " + (f"at step {at} of {where}" if at else
                                                        f"while building the candidate for {where}")
            res.steps_run = max(at - 1, 0)
            self.died.append(res.reason)
            return res
        if kind == "result":
            return payload
        res.reason = f"the harness failed on this case (please report it): {payload}"
        return res

    def contract_isolated(self, check: str, dtype: str) -> tuple[str, str | None]:
        """One --optimizer-contract check in the candidate process: ("ok", None), ("skipped",
        why) or ("broken", message) — its death or a hang breaks the contract with that reason."""
        from .isolation import Died

        where = f"contract check {check} [{dtype}, {self.device}]"
        try:
            kind, payload = self.worker.ask(("contract", check, self.spec.id, dtype, self.device), self.timeout)
        except TimeoutError:
            return "broken", (f"contract {check} broken: {self.candidate.path} did not finish the check within "
                              f"{self.timeout:g} s (--optimizer-timeout)")
        except Died as exc:
            self.died.append(f"candidate process {exc} in {where}")
            return "broken", f"contract {check} broken: the candidate process {exc} in {where}"
        if kind in ("ok", "skipped", "broken"):
            return kind, payload
        return "broken", f"the harness failed on {where} (please report it): {payload}"

    def case_modes(self) -> list[tuple[Case, str]]:
        """(case, mode) pairs to run: every case eagerly; on CUDA, for a candidate with a
        capturable implementation, the cases a CUDA graph can replay once more as graph cases."""
        from .cuda_graph import MODE, candidate_ineligible, graph_ineligible

        if self.distributed:
            from .distributed import mode_name

            return [(c, mode_name(*self.distributed)) for c in self.spec.cases]
        out = [(c, "eager") for c in self.spec.cases]
        if not self.unavailable and candidate_ineligible(self.candidate, self.device) is None:
            out += [(c, MODE) for c in self.spec.cases if graph_ineligible(c) is None]
        return out

    # -- header, collection -------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from .report import environment

        env = environment(self.device, self.dtypes)
        versions = ", ".join(f"{k} {env[k]}" for k in ("torch", "numpy", "python") if env.get(k))
        kw = f" kwargs {json.dumps(self.candidate.kwargs)}" if self.candidate.kwargs else ""
        return [
            f"optimizer-conformance {env['optimizer-conformance']}: candidate {self.candidate.path} "
            f"({self.candidate.api}){kw}; spec {self.spec.id}; dtypes {','.join(self.dtypes)}; "
            f"device {self.device}; {versions}"
        ] + ([f"distributed: {self.distributed[0]} over {self.distributed[1]} ranks "
              f"({'nccl' if self.device.startswith('cuda') else 'gloo'})"] if self.distributed else [])

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool | None:
        if getattr(self.config, "workerinput", None) is None and self.config.getoption("dist", "no") != "no":
            return None  # the pytest-xdist controller: its workers collect
        suite = ConformanceSuite.from_parent(session, name="optimizer-conformance", run=self)
        hook = session.ihook
        hook.pytest_collectstart(collector=suite)
        rep = hook.pytest_make_collect_report(collector=suite)
        hook.pytest_collectreport(report=rep)
        session.items = list(rep.result or [])
        hook.pytest_collection_modifyitems(session=session, config=self.config, items=session.items)
        hook.pytest_collection_finish(session=session)
        session.testscollected = len(session.items)
        return True

    # -- results ----------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from .report import PROPERTY, CaseRecord

        if report.when == "???" and report.failed:  # pytest-xdist: the worker running it crashed
            self._crashed_worker(report)
            return
        if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
            return
        props = dict(report.user_properties)
        if PROPERTY in props:
            self.records.append(CaseRecord.from_json(props[PROPERTY]))
            self._write_report(None, provisional=True)  # a run killed outright keeps what it checked
        elif PENDING in props and report.failed:
            # the case never returned (timed out, or the harness was interrupted)
            reason = report.longreprtext.strip().splitlines()[-1] if report.longreprtext else "did not finish"
            self.records.append(CaseRecord(**props[PENDING], outcome="failed", reason=reason,
                                           params_conform=False))

    def _crashed_worker(self, report: pytest.TestReport) -> None:
        """A pytest-xdist worker died while running a case (only possible when the candidate runs
        in the worker itself, OPTIMIZER_CONFORMANCE_IN_PROCESS=1, or when something killed the
        worker): the case's verdict says so, and the run is marked incomplete."""
        from .report import CaseRecord

        name = report.nodeid.rsplit("::", 1)[-1]
        match = ITEM_NAME.fullmatch(name)
        why = (report.longreprtext.strip().splitlines() or ["a pytest-xdist worker crashed"])[-1]
        self.crashed_workers.append(f"{why} (pytest-xdist)")
        if match is None:  # a contract check's item
            return
        case, dtype, device, mode = match.groups()
        self.records.append(CaseRecord(spec=self.spec.id, case=case, dtype=dtype, device=device,
                                       mode=mode or "eager", outcome="failed", params_conform=False,
                                       reason=f"{why} (pytest-xdist): the case has no verdict"))

    def _diagnose(self, records):
        if self.distributed:
            from .distributed_variants import diagnose_distributed

            return diagnose_distributed(records)
        from .diagnosis import diagnose

        return diagnose(records)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.group is not None:
            self.group.stop()
        if getattr(self.config, "workerinput", None) is not None:
            return  # a pytest-xdist worker: the controller reports
        self.records.sort(key=lambda r: (r.case, r.mode, r.dtype))
        self.diagnosis = self._diagnose(self.records)
        if self.records and all(r.outcome == "skipped" for r in self.records) and not self.unavailable:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.incomplete = self._incomplete(session, exitstatus)
        self._write_report(self.incomplete)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.group is not None:
            self.group.stop()

    def _incomplete(self, session: pytest.Session, exitstatus: int) -> str:
        """Why the records are not the whole run ("" when they are)."""
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            return "interrupted (KeyboardInterrupt or pytest.exit): the cases after it did not run"
        if exitstatus == pytest.ExitCode.INTERNAL_ERROR:
            return "pytest stopped on an internal error"
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and not self.records:
            return "no case selected (-k/-m deselected every case): nothing was checked"
        if session.shouldstop:
            return f"stopped early: {session.shouldstop} (-x/--maxfail): the cases after it did not run"
        if session.shouldfail:
            return f"stopped early: {session.shouldfail}"
        if self.crashed_workers:
            return (f"{len(self.crashed_workers)} pytest-xdist worker crash(es), their cases have no "
                    f"verdict: {self.crashed_workers[0]}")
        if self.died:
            return f"the candidate process died in {len(self.died)} case run(s): {self.died[0]}"
        crashed = [r for r in self.records if r.reason.startswith("candidate process ")]
        if crashed:
            return f"the candidate process died in {len(crashed)} case run(s): {crashed[0].reason}"
        return ""

    def _write_report(self, incomplete: str | None, provisional: bool = False) -> None:
        """--optimizer-report: written when the run is configured ("complete": false, in case the
        pytest process itself is killed), rewritten with the cases so far after each case (still
        "complete": false; ~1 ms: a report is a few kB) and again when the run ends, whatever
        ended it."""
        from .report import environment, report_document, write_report

        path = self.config.getoption("optimizer_report")
        if not path or getattr(self.config, "workerinput", None) is not None:
            return
        cand = {"path": self.candidate.path, "api": self.candidate.api, "kwargs": self.candidate.kwargs,
                "accept": list(self.accept)}
        if provisional:
            records = sorted(getattr(self, "records", []), key=lambda r: (r.case, r.mode, r.dtype))
            diagnosis = self._diagnose(records)
            incomplete = (f"the run has not finished (or its pytest process was killed): "
                          f"{len(records)} case run(s) so far")
        else:
            records, diagnosis = self.records, self.diagnosis
        doc = report_document(cand, self.spec.id, records, diagnosis, environment(self.device, self.dtypes),
                              listed=self._listed(), incomplete=incomplete)
        try:
            write_report(path, doc)
        except OSError as exc:
            raise usage(f"--optimizer-report={path}: cannot write the report ({exc.strerror or exc})") from None

    def _listed(self):
        """Whether a record's item is listed in --optimizer-xfails (None without the option)."""
        if self.xfails is None:
            return None
        xf = self.xfails
        return lambda r: xf.listed(item_id(r.case, r.dtype, r.device, r.mode))

    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config) -> None:
        from .report import summary_counts

        if self.diagnosis is None:
            return
        tr = terminalreporter
        tr.section("optimizer conformance")
        if not self.records and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            tr.line("no case selected: -k/-m deselected every case of the run, nothing was checked "
                    "(exit status 5)", yellow=True)
            return
        counts = summary_counts(self.records, self._listed())
        if self.accept:
            tr.line(f"accepted conventions (--optimizer-accept): {', '.join(self.accept)}")
        extra = "".join(f", {counts[k]} {k}" for k in ("xfailed", "xpassed") if counts.get(k))
        tr.line(f"candidate {self.candidate.path} against spec {self.spec.id!r} "
                f"({', '.join(self.dtypes)} on {self.device}): "
                f"{counts['passed']} passed, {counts['failed']} failed{extra}, {counts['skipped']} skipped")
        if self.incomplete:
            tr.line(f"INCOMPLETE: {self.incomplete}", red=True)
        verdict = self.diagnosis
        if verdict.verdict == "conforms" and verdict.variants:
            tr.line("verdict: CONFORMS, ACCEPTABLE — every case within tolerance of the exact trajectory or of "
                    f"an acceptable/accepted variant ({', '.join(verdict.variants)}): see the findings", green=True)
        elif verdict.verdict == "conforms":
            tr.line("verdict: CONFORMS — every case within tolerance of the exact trajectory", green=True)
        elif verdict.verdict == "no cases ran" and self.unavailable:
            tr.line(f"verdict: NOT CHECKED — {self.unavailable}: every case skipped", yellow=True)
        elif verdict.verdict == "no cases ran":
            tr.line("verdict: FAILED — every case was skipped, nothing was checked", red=True)
        else:
            tr.line("verdict: DOES NOT CONFORM", red=True)
        for line in verdict.text.splitlines():
            tr.line(f"  {line}")
        findings = sorted({f for r in self.records for f in r.findings})
        for f in findings:
            where = sorted({f"{r.case}[{r.dtype}]" for r in self.records if f in r.findings})
            tr.line(f"finding (acceptable): {f} — in {len(where)} case run(s), e.g. {where[0]}", yellow=True)
        skipped = sorted({r.reason for r in self.records if r.outcome == "skipped"})
        for reason in skipped:
            tr.line(f"skipped: {reason}")
        self._feature_summary(tr)

    def _feature_summary(self, tr) -> None:
        """Features × outcomes (from the records: the same with pytest-xdist), and the
        --optimizer-xfails lines that matched no case."""
        from .summary import feature_table

        listed = None
        if self.xfails is not None:
            xf = self.xfails
            listed = lambda r: xf.listed(item_id(r.case, r.dtype, r.device, r.mode))  # noqa: E731
        features = {c.id: c.features for c in self.spec.cases}
        for line in feature_table(self.records, features, listed):
            tr.line(line)
        for msg in self.xfails_unmatched:
            tr.line(msg, yellow=True)
