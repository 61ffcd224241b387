"""The pytest items of a conformance run: one per golden case, dtype and mode
(``adam/amsgrad[float32-cpu]``), and one per ``--optimizer-contract`` check. Each item asks the
run (``run.py``) to run its case and turns the record into pytest's outcome and failure text."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from .options import DTYPES

if TYPE_CHECKING:
    from .golden import Case
    from .report import CaseRecord
    from .run import ConformanceRun

PENDING = "optimizer_conformance_case"  # user_properties key: which case an item runs


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
