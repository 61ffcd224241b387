"""What is checked about the candidate before the first case runs (a usage error, exit 4, if not):
it follows one of the protocols, ``--optimizer-kwargs`` names parameters it takes and no setting
the cases vary, and it can be built with the spec's default settings (the spec's first case it can
express, in float64 on the CPU). Runs where the candidate runs (the candidate process, see
``isolation.py``)."""

from __future__ import annotations

from .candidates import Candidate, CaseSkipped, UsageError, check_kwargs, check_protocol
from .golden import Spec
from .scoring import exc_line


def check_candidate(cand: Candidate, spec: Spec) -> None:
    check_protocol(cand)
    check_kwargs(cand, spec)
    if cand.hooked():
        return  # a conftest builds it, per case
    case = next((c for c in spec.cases if cand.unsupported(spec, c, "float64") is None), None)
    if case is None:
        return  # every case is skipped, with its reason: the verdict says so
    try:
        build(cand, spec, case)
    except CaseSkipped:
        return  # the case's verdict says why
    except Exception as exc:  # the candidate's constructor
        raise UsageError(f"--optimizer={cand.path}: cannot be built with the settings of {case.id} "
                         f"(the spec's defaults): {exc_line(exc)}") from None


def build(cand: Candidate, spec: Spec, case) -> None:
    """Build the candidate for a case (in float64 on the CPU) as the case's kind does; step nothing."""
    if getattr(case, "closed_loop", False):
        from .closed_loop import NumpyClosedLoop, TorchClosedLoop

        (TorchClosedLoop if cand.api == "torch" else NumpyClosedLoop)(cand, spec, case, "float64", "cpu")
    else:
        from .open_loop import driver

        driver(cand, spec, case, "float64", "cpu")
