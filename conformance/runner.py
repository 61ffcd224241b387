"""Run one golden case against one fresh candidate: the front door of every kind of case.

The spec's kind (``kinds.py``) runs the case and scores every step against the goldens
(``scoring.py``); a failing case whose whole parameter trajectory ran is then matched against
the catalogued variants, their combinations and the float32-internal precision axis
(``diagnosis.py``, ``compound.py``).
"""

from __future__ import annotations

from .candidates import Candidate
from .diagnosis import matching_names
from .golden import Case, Spec
from .kinds import kind_of
from .scoring import CaseResult


def run_case(cand: Candidate, spec: Spec, case: Case, dtype: str, device: str = "cpu",
             accept: tuple[str, ...] = (), mode: str = "eager") -> CaseResult:
    """Run one case on a fresh candidate. ``accept``: catalogued variants the user declared as
    the candidate's convention (``--optimizer-accept``): a case following one passes as acceptable.
    ``mode="cuda_graph"``: step() captured in a CUDA graph and replayed (conformance/cuda_graph.py)."""
    res = kind_of(spec).run_case(cand, spec, case, dtype, device, accept=accept, mode=mode)
    if res.outcome == "failed" and res.steps_run == case.n_steps and not res.params_conform:
        res.matches = matching_names(spec, case, res.actual, dtype)
    return res
