"""The pytest plugin: ``pytest --optimizer=DOTTED.PATH`` checks a candidate against the goldens.

Registered through the ``pytest11`` entry point. Without ``--optimizer`` it adds its options and
does nothing else. With it, the run collects the conformance cases instead of the tests of the
current directory: one test item per golden case and dtype, each building a fresh candidate.

This module imports nothing heavy at import time (it is loaded in every pytest run of an
environment where the package is installed); NumPy and the candidate's framework are imported
when ``--optimizer`` is given. SymPy and mpmath are never imported: goldens are data.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .candidates import Candidate
    from .golden import Case, Spec
    from .report import CaseRecord

DTYPES = ("float32", "float64")
PENDING = "optimizer_conformance_case"  # user_properties key: which case an item runs
ALL_DTYPES = ("float64", "float32", "bfloat16", "float16")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("optimizer-conformance", "optimizer conformance (verified-reference goldens)")
    group.addoption("--optimizer", metavar="DOTTED.PATH",
                    help="the candidate: an optimizer class or factory, e.g. torch.optim.Adam or pkg.mod:make_adam")
    group.addoption("--optimizer-spec", metavar="NAME",
                    help="the spec to check against (a spec id such as adam, sgd, lbfgs); default: inferred from the class name")
    group.addoption("--optimizer-kwargs", metavar="JSON", default="{}",
                    help="""extra constructor kwargs for every case, e.g. '{"foreach": false}'""")
    group.addoption("--optimizer-args", metavar="JSON", default="{}",
                    help="""the candidate's argument names that differ from torch's, e.g. '{"decay": "weight_decay"}' """
                    "(candidate name -> torch name; common spellings such as learning_rate, b1/b2, beta_1/beta_2 "
                    "and epsilon are mapped without it)")
    group.addoption("--optimizer-no-jit", action="store_true",
                    help="optax candidates: run update() eagerly instead of under jax.jit")
    group.addoption("--optimizer-dtype", metavar="DTYPE", action="append",
                    help="dtype(s) to run in, repeatable or comma-separated (default: float32,float64)")
    group.addoption("--optimizer-device", metavar="DEVICE", default="cpu",
                    help="device for torch candidates: cpu (default), cuda, cuda:N")
    group.addoption("--optimizer-accept", metavar="VARIANT_ID", action="append",
                    help="accept a catalogued variant as the candidate's declared convention (e.g. adam.eps_hat "
                    "for a Keras-compatible Adam): cases that follow it pass as acceptable; repeatable")
    group.addoption("--optimizer-report", metavar="PATH", help="write a JSON report of the run here")
    group.addoption("--optimizer-timeout", metavar="SECONDS", default="60",
                    help="per-case time limit, a number > 0 (default 60): the candidate process is killed after it")
    group.addoption("--optimizer-xfails", metavar="FILE",
                    help="expected failures: a file of test-id prefixes (one per line, # comments), e.g. "
                    "adam/large_eps or adam/large_eps[float32-cpu]; listed cases are marked xfail(strict)")
    group.addoption("--optimizer-plots", metavar="DIR",
                    help="write a PNG per failing case here: expected vs actual trajectory of the first "
                    "diverging element, and its error vs the tolerance (needs matplotlib)")
    group.addoption("--optimizer-distributed", metavar="WRAPPER", choices=("ddp", "zero", "fsdp", "own"),
                    help="run every case in N processes of a torch.distributed group (gloo on the CPU, NCCL on "
                    "CUDA), the candidate behind a wrapper: ddp (DistributedDataParallel), zero "
                    "(ZeroRedundancyOptimizer), fsdp (FSDP2 fully_shard), or own (the candidate takes "
                    "process_group= and communicates itself); see docs/distributed.md")
    group.addoption("--optimizer-world-size", metavar="N", default="2",
                    help="the number of ranks of --optimizer-distributed (default 2)")
    group.addoption("--optimizer-contract", action="store_true",
                    help="also check the optimizer contract a training loop relies on (zero_grad, "
                    "step(closure), add_param_group, state_dict, hooks, ...): torch candidates only")


def infer_spec(name: str, spec_ids: list[str]) -> str:
    """The spec whose id the candidate's name contains (the longest such id wins)."""
    lowered = re.sub(r"[^a-z0-9]", "", name.lower())
    hits = [s for s in spec_ids if s in lowered]
    hits = [h for h in hits if not any(h != o and h in o for o in hits)]  # adamw beats adam
    if len(hits) == 1:
        return hits[0]
    listed = ", ".join(spec_ids)
    if not hits:
        raise _usage(f"cannot infer the spec from the name {name!r}; pass --optimizer-spec, one of: {listed}")
    raise _usage(f"the name {name!r} is ambiguous ({', '.join(hits)}); pass --optimizer-spec, one of: {listed}")


def _usage(msg: str) -> Exception:
    from .candidates import UsageError

    return UsageError(msg)


def _json_object(text: str | None, option: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise _usage(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _usage(f"{option} must be a JSON object of names, e.g. '{{\"decay\": \"weight_decay\"}}'")
    return value


def _dtypes(values: list[str] | None) -> list[str]:
    if not values:
        return list(DTYPES)
    out = []
    for v in values:
        for d in v.split(","):
            d = d.strip()
            if d not in ALL_DTYPES:
                raise _usage(f"--optimizer-dtype={d!r}: expected one of {', '.join(ALL_DTYPES)}")
            if d not in out:
                out.append(d)
    return out


def _accepted(values: list[str] | None, spec: Spec) -> tuple[str, ...]:
    """--optimizer-accept: catalogued variant ids of this spec, or the precision axis
    (usage error otherwise); accepting several accepts their combinations."""
    from .compound import PRECISION

    out: list[str] = []
    for v in values or []:
        for vid in (x.strip() for x in v.split(",")):
            if vid not in spec.catalogued and vid != PRECISION:
                known = ", ".join([*spec.catalogued, PRECISION])
                raise _usage(f"--optimizer-accept={vid!r}: not a catalogued variant of spec {spec.id!r} "
                             f"(its variants: {known})")
            if vid not in out:
                out.append(vid)
    return tuple(out)


DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def _check_device(device: str, cand: Candidate) -> tuple[str, str]:
    """The device, and why its cases are skipped on this machine ("" when they can run). A
    malformed device is a usage error; a CUDA device this machine lacks skips every case with
    the reason (as GPU tests do on a machine without one) and the verdict says nothing was checked."""
    if not DEVICE.fullmatch(device):
        raise _usage(f"--optimizer-device={device!r}: expected cpu, cuda or cuda:N")
    if device == "cpu":
        return device, ""
    if cand.api != "torch":
        raise _usage(f"--optimizer-device={device}: only torch candidates run on a device other than cpu")
    import torch

    if not torch.cuda.is_available():
        return device, f"--optimizer-device={device}: CUDA is not available on this machine"
    dev = torch.device(device)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        return device, f"--optimizer-device={device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return device, ""


def _goldens(load):
    """Load goldens: a file that is missing, tampered with or invalid is a usage error naming it."""
    from .golden import GoldenError

    try:
        return load()
    except GoldenError as exc:
        raise _usage(str(exc)) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OSError) as exc:
        raise _usage(f"the golden files cannot be loaded ({type(exc).__name__}: {exc}): reinstall the "
                     "package, or regenerate with python -m optimizer_conformance.derivations") from None


MAX_TIMEOUT = 1e6  # seconds (~11 days; poll() takes at most 2**31 ms): a larger --optimizer-timeout means the same


def _timeout(config: pytest.Config) -> float:
    import math

    given = config.getoption("optimizer_timeout")
    try:
        limit = float(given)
    except (TypeError, ValueError):
        limit = float("nan")
    if not (math.isfinite(limit) and limit > 0):
        raise _usage(f"--optimizer-timeout={given}: expected a number of seconds > 0")
    return min(limit, MAX_TIMEOUT)  # what select() and signal.setitimer can wait for


def _isolated(config: pytest.Config, device: str) -> bool:
    """Whether the candidate runs in a candidate process (isolation.py) rather than in pytest's:
    always, except when OPTIMIZER_CONFORMANCE_IN_PROCESS=1 asks for pytest's (debugging) and for
    a conftest-built candidate on CUDA (a conftest hook reaches only a forked process, and CUDA
    only a spawned one)."""
    import os

    from .isolation import IN_PROCESS_ENV, start_method

    if os.environ.get(IN_PROCESS_ENV, "") not in ("", "0"):
        return False
    hooked = bool(config.hook.pytest_optimizer_conformance_build.get_hookimpls())
    return not (hooked and start_method(device) != "fork")


def _distributed(config: pytest.Config) -> tuple[str, int] | None:
    """(wrapper, world size) of --optimizer-distributed, None without it."""
    wrapper = config.getoption("optimizer_distributed")
    given = config.getoption("optimizer_world_size")
    try:
        world = int(given)
    except (TypeError, ValueError):
        world = 0
    if world < 1:
        raise _usage(f"--optimizer-world-size={given}: expected a whole number of ranks >= 1")
    if wrapper is None:
        if given != "2":
            raise _usage("--optimizer-world-size needs --optimizer-distributed=ddp|zero|fsdp|own")
        return None
    return wrapper, world


def _distributed_unavailable(distributed: tuple[str, int] | None, device: str) -> str:
    """Why a distributed run cannot run on this machine ("" when it can): NCCL needs one CUDA
    device per rank."""
    if not distributed or not device.startswith("cuda"):
        return ""
    import torch

    wrapper, world = distributed
    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < world:
        return (f"--optimizer-distributed={wrapper} --optimizer-world-size={world} on {device}: NCCL runs one "
                f"rank per CUDA device, and this machine has {have}")
    if not torch.distributed.is_nccl_available():
        return f"--optimizer-distributed={wrapper} on {device}: this torch build has no NCCL"
    return ""


def _xdist_controller(config: pytest.Config) -> bool:
    return getattr(config, "workerinput", None) is None and config.getoption("dist", "no") != "no"


class ConformanceRun:
    """Everything one ``pytest --optimizer=...`` run knows: candidate, spec, results."""

    def __init__(self, config: pytest.Config):
        from .candidates import Candidate, UsageError
        from .golden import spec_ids, verify_spec
        from .kinds import load_spec

        self.config = config
        self.worker = None  # the candidate process (isolation.py), None when the candidate runs here
        self.timeout = _timeout(config)
        try:
            kwargs = json.loads(config.getoption("optimizer_kwargs") or "{}")
        except json.JSONDecodeError as exc:
            raise UsageError(f"--optimizer-kwargs is not valid JSON: {exc}") from None
        if not isinstance(kwargs, dict):
            raise UsageError("--optimizer-kwargs must be a JSON object, e.g. '{\"foreach\": false}'")
        self.dtypes = _dtypes(config.getoption("optimizer_dtype"))
        device = config.getoption("optimizer_device")
        if not DEVICE.fullmatch(device):
            raise UsageError(f"--optimizer-device={device!r}: expected cpu, cuda or cuda:N")
        # the files and paths the run reads and writes, before the candidate is imported
        self._reporting_options(config)
        ids = _goldens(spec_ids)
        path = config.getoption("optimizer")
        # the candidate imports from where the user stands, as under ``python -m pytest``
        search = tuple(dict.fromkeys(str(d) for d in (config.invocation_params.dir, config.rootpath)))
        # how the candidate names its settings, and whether optax runs under jit (names.py)
        args = _json_object(config.getoption("optimizer_args"), "--optimizer-args")
        jit = not config.getoption("optimizer_no_jit")
        self.group = None  # the rank processes of --optimizer-distributed (distributed_group.py)
        self.distributed = _distributed(config)
        self.distributed_unavailable = _distributed_unavailable(self.distributed, device)
        if self.distributed and not self.distributed_unavailable:
            from .distributed_group import RankGroup

            wrapper, world = self.distributed
            self.group = RankGroup(path, kwargs, search, self.timeout, wrapper, world, device, args=args, jit=jit)
            kind, info = self.group.start()
            if kind != "ready":
                raise UsageError(info)
            self.candidate = Candidate(path, None, info["api"], dict(kwargs), info=info, args=args, jit=jit)
            declared = info["spec"]
        elif _isolated(config, device) and not self.distributed:
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
        self.spec: Spec = _goldens(lambda: (verify_spec(spec_id), load_spec(spec_id))[1])
        from .names import AmbiguousName

        try:
            self.candidate.names_for(self.spec)
        except AmbiguousName as exc:
            if not self.candidate.hooked():  # a conftest hook builds it under names it knows
                raise UsageError(f"--optimizer={path}: {exc}") from None
        self.accept = _accepted(config.getoption("optimizer_accept"), self.spec)
        self.device, self.unavailable = _check_device(device, self.candidate)
        if self.distributed:
            if self.candidate.api != "torch":
                raise UsageError(f"--optimizer-distributed: torch.distributed runs torch candidates; "
                                 f"{path} is a {self.candidate.api} candidate")
            self.unavailable = self.distributed_unavailable or self.unavailable
        self._check_contract(config)
        if getattr(config, "workerinput", None) is None:  # checked once: not again in each xdist worker
            self._check_candidate()
        if self.worker is not None and _xdist_controller(config):
            self.worker.stop()  # the controller runs no case
        if self.group is not None and _xdist_controller(config):
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
            raise _usage(f"--optimizer-contract: the contract is torch.optim's (zero_grad, state_dict, hooks, "
                         f"...): {self.candidate.path} is a {self.candidate.api} candidate")
        if any(getattr(c, "closed_loop", False) for c in self.spec.cases):
            raise _usage(f"--optimizer-contract: spec {self.spec.id!r} is driven through step(closure): "
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
                raise _usage(str(exc)) from None

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
            raise _usage(f"--optimizer-report={path}: cannot write the report ({exc.strerror or exc})") from None

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


class ConformanceSuite(pytest.Collector):
    def __init__(self, *, run: ConformanceRun, **kw: Any):
        super().__init__(**kw)
        self.run = run

    def collect(self):
        for case, mode in self.run.case_modes():
            for dtype in self.run.dtypes:
                name = item_id(case.id, dtype, self.run.device, mode)
                item = ConformanceCase.from_parent(self, name=name, case=case, dtype=dtype, mode=mode)
                if self.run.xfails is not None and self.run.xfails.listed(name):  # --optimizer-xfails
                    item.add_marker(pytest.mark.xfail(reason=self.run.xfails.reason, strict=True))
                yield item
        yield from contract_items(self)


ITEM_NAME = re.compile(r"(.+)\[([a-z0-9]+)-(cpu|cuda(?::\d+)?)(?:-([a-z_]+))?\]")  # what item_id() writes


def item_id(case_id: str, dtype: str, device: str, mode: str = "eager") -> str:
    """The name of a case's item (what -k, --optimizer-xfails and the report call it):
    ``adam/amsgrad[float32-cpu]``; a CUDA-graph case ``adam/amsgrad[float32-cuda-cuda_graph]``."""
    return f"{case_id}[{dtype}-{device}]" if mode == "eager" else f"{case_id}[{dtype}-{device}-{mode}]"


class CaseFailure(Exception):
    def __init__(self, record: CaseRecord):
        super().__init__(record.case)
        self.record = record


class ConformanceCase(pytest.Item):
    def __init__(self, *, case: Case, dtype: str, mode: str = "eager", **kw: Any):
        super().__init__(**kw)
        self.case = case
        self.dtype = dtype
        self.mode = mode
        self.run = self.parent.run
        if self.run.worker is None and self.run.group is None:  # else its process is killed after the limit
            self.add_marker(pytest.mark.timeout(self.run.timeout))
        # -k can select by feature (amsgrad, weight_decay, grad_none, ...), dtype and mode
        self.extra_keyword_matches.update(case.features)
        self.extra_keyword_matches.update({dtype, mode})

    def runtest(self) -> None:
        from .report import PROPERTY, CaseRecord
        from .runner import run_case
        from .scoring import CaseResult

        self.user_properties.append((PENDING, {"spec": self.run.spec.id, "case": self.case.id,
                                               "dtype": self.dtype, "device": self.run.device,
                                               "mode": self.mode}))
        if self.run.unavailable:
            result = CaseResult(self.run.spec.id, self.case.id, self.dtype, self.run.device, "skipped",
                                self.run.unavailable, mode=self.mode)
        elif self.run.group is not None:
            result = self.run.group.run({"spec": self.run.spec.id, "case": self.case.id, "dtype": self.dtype,
                                         "device": self.run.device, "accept": list(self.run.accept),
                                         "mode": self.mode})
        elif self.run.worker is not None:
            result = self.run.run_isolated(self.case, self.dtype, self.mode)
        else:
            result = run_case(self.run.candidate, self.run.spec, self.case, self.dtype, self.run.device,
                              accept=self.run.accept, mode=self.mode)
        self.run.freeze_imports()
        record = CaseRecord.from_result(result)
        self.user_properties.append((PROPERTY, record.to_json()))
        if result.outcome == "skipped":
            pytest.skip(result.reason)
        if result.outcome == "failed":
            if self.run.plots:  # --optimizer-plots: the process that ran the case draws it
                from .plots import plot_failure

                plot_failure(result, self.case, self.run.plots, self.run.candidate.path)
            raise CaseFailure(record)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailure):
            from .report import failure_message

            return failure_message(excinfo.value.record, self.run.candidate.path)
        if excinfo.errisinstance(pytest.fail.Exception) and "Timeout" in str(excinfo.value):
            limit = self.run.timeout
            return (f"{self.case.id} [{self.dtype}, {self.run.device}]: {self.run.candidate.path} did not "
                    f"finish the case within {limit:g} s (--optimizer-timeout): it hangs or is far too slow")
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        graph = ", CUDA graph" if self.mode == "cuda_graph" else f", {self.mode}" if self.mode != "eager" else ""
        return self.path, None, f"{self.case.id} [{self.dtype}, {self.run.device}{graph}]"


def contract_items(suite: ConformanceSuite):
    """--optimizer-contract: one item per contract check and dtype (float32/float64), torch
    candidates of stepwise specs only (``adam/contract/zero_grad[float32-cpu]``)."""
    run = suite.run
    if not suite.config.getoption("optimizer_contract"):
        return
    from .contract import CHECKS, applies

    if not applies(run.candidate, run.spec):
        return
    for check in CHECKS:
        for dtype in (d for d in run.dtypes if d in DTYPES):
            name = item_id(f"{run.spec.id}/contract/{check.name}", dtype, run.device)
            yield ContractItem.from_parent(suite, name=name, check=check.name, dtype=dtype)


class ContractItem(pytest.Item):
    """One contract check (conformance/contract.py) in one dtype."""

    def __init__(self, *, check: str, dtype: str, **kw: Any):
        super().__init__(**kw)
        self.check, self.dtype, self.run = check, dtype, self.parent.run
        if self.run.worker is None:  # else the candidate process is killed after the limit
            self.add_marker(pytest.mark.timeout(self.run.timeout))
        self.extra_keyword_matches.update({"contract", check, dtype})

    def runtest(self) -> None:
        from .contract import ContractBroken, ContractSkipped, run_check

        if self.run.unavailable:
            pytest.skip(self.run.unavailable)
        if self.run.worker is not None:  # in the candidate process
            kind, message = self.run.contract_isolated(self.check, self.dtype)
            if kind == "skipped":
                pytest.skip(f"contract {self.check}: {message}")
            if kind != "ok":
                raise ContractBroken(message)
            return
        try:
            run_check(self.check, self.run.candidate, self.run.spec, self.dtype, self.run.device)
        except ContractSkipped as exc:
            pytest.skip(f"contract {self.check}: {exc}")

    def repr_failure(self, excinfo, style=None):
        from .contract import ContractBroken

        if isinstance(excinfo.value, ContractBroken):
            return f"{self.run.candidate.path} [{self.dtype}, {self.run.device}]: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.run.spec.id}/contract/{self.check} [{self.dtype}, {self.run.device}]"


# Plugins that serve only other tests and cost a conformance run time for nothing: Hypothesis'
# pytest plugin imports all of Hypothesis (~0.7 s) in its terminal summary of every run.
IDLE_PLUGINS = ("hypothesispytest",)


def _drop_idle_plugins(config: pytest.Config) -> None:
    """A conformance run collects only its own cases, none of them a Hypothesis test: leave out
    the plugins listed in IDLE_PLUGINS unless their library is already in use."""
    import sys

    if "hypothesis" in sys.modules:
        return
    for name in IDLE_PLUGINS:
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("optimizer", None):
        return
    _drop_idle_plugins(config)
    from .candidates import UsageError

    run = ConformanceRun.__new__(ConformanceRun)
    try:
        run.__init__(config)
    except UsageError as exc:
        if getattr(run, "worker", None) is not None:
            run.worker.stop()
        if getattr(run, "group", None) is not None:
            run.group.stop()
        raise pytest.UsageError(" ".join(str(exc).split("\n"))) from None
    config.pluginmanager.register(run, "optimizer-conformance-run")
