"""FSDP2 resume at another world size: a checkpoint saved by N ranks, loaded by M.

A resume case runs in two groups of rank processes (``distributed_group.py``): the first (N ranks)
runs the steps before the case's first resume and saves params and optimizer state with
``torch.distributed.checkpoint``; the second (M ranks, a fresh process group) builds a fresh FSDP2
module and optimizer, loads the checkpoint (DCP reshards it onto M) and runs the remaining steps.
The parameter trajectory of both halves is compared with the golden under the single-process
tolerances (conformance/distributed.py: ``run_segment``).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

from .distributed import mode_name
from .distributed_group import RankGroup
from .kinds import load_spec


@dataclass
class Resharded:
    case: str
    dtype: str
    saved_by: int
    loaded_by: int
    max_ratio: float  # worst |actual − expected| / tolerance over every step and param
    reason: str = ""  # what went wrong, when a half did not run

    @property
    def passed(self) -> bool:
        return not self.reason and self.max_ratio <= 1.0


def reshard_resume(optimizer: str, spec_id: str, case_id: str, dtype: str, saved_by: int, loaded_by: int,
                   timeout: float = 120) -> Resharded:
    spec = load_spec(spec_id)
    case = next(c for c in spec.cases if c.id == case_id)
    out = Resharded(case_id, dtype, saved_by, loaded_by, float("inf"))
    checkpoint = tempfile.mkdtemp(prefix="optimizer-conformance-reshard-")
    rows: list[dict[str, np.ndarray]] = []
    try:
        for part, world in (("before", saved_by), ("after", loaded_by)):
            group = RankGroup(optimizer, {}, (), timeout, "fsdp", world)
            kind, info = group.start()
            if kind != "ready":
                out.reason = f"{part}: {info}"
                return out
            try:
                answers, trouble = group.ask_all(("case", {
                    "spec": spec_id, "case": case_id, "dtype": dtype, "device": "cpu", "accept": [],
                    "mode": mode_name("fsdp", world), "part": part, "checkpoint": checkpoint}), timeout)
            finally:
                group.stop()
            bad = trouble + [a[1] for a in answers.values() if a[0] != "rows"]
            if bad:
                out.reason = f"{part} (world size {world}): {'; '.join(map(str, bad))}"
                return out
            rows += answers[0][1]
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
    worst = 0.0
    for name, exp in case.expected.items():
        actual = np.vstack([r[name] for r in rows])
        tol = case.tolerance(name, dtype)
        ratio = np.abs(actual - exp[1:]) / tol
        worst = max(worst, float(np.max(np.where(np.isfinite(ratio), ratio, np.inf), initial=0.0)))
    out.max_ratio = worst
    return out
