"""What is checked about the candidate before the first case runs (a usage error, exit 4, if not):
it follows one of the protocols, ``--optimizer-kwargs`` names parameters it takes and no setting
the cases vary, and it can be built with the settings of at least one case it can express (in
float64 on the CPU; the cases are tried in order, the spec's defaults first, until one builds). Runs where the candidate runs (the candidate process, see
``isolation.py``)."""

from __future__ import annotations

from .candidates import Candidate, CaseSkipped, UsageError, check_kwargs, check_protocol
from .golden import Spec
from .scoring import CANNOT_CONSTRUCT, exc_line


def check_candidate(cand: Candidate, spec: Spec) -> None:
    check_protocol(cand)
    check_kwargs(cand, spec)
    if cand.hooked():
        return  # a conftest builds it, per case
    failed = None  # (case, exception) of the first case whose construction raised
    for case in (c for c in spec.cases if cand.unsupported(spec, c, "float64") is None):
        try:
            build(cand, spec, case)
        except CaseSkipped:
            continue  # the case's verdict says why
        except Exception as exc:  # the candidate's constructor
            failed = failed or (case, exc)
            continue
        return  # one case can be built: a case that cannot is its own finding ("cannot construct")
    if failed is not None:
        case, exc = failed
        raise UsageError(f"--optimizer={cand.path}: {CANNOT_CONSTRUCT}: {exc_line(exc)} (no case of spec "
                         f"{spec.id!r} can be built with its settings; the first tried: {case.id})")


def build(cand: Candidate, spec: Spec, case) -> None:
    """Build the candidate for a case (in float64 on the CPU) as the case's kind does; step nothing."""
    if getattr(case, "closed_loop", False):
        from .closed_loop import NumpyClosedLoop, TorchClosedLoop

        (TorchClosedLoop if cand.api == "torch" else NumpyClosedLoop)(cand, spec, case, "float64", "cpu")
    else:
        from .open_loop import driver

        driver(cand, spec, case, "float64", "cpu")
