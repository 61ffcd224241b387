"""The distributed variants: bugs of data-parallel and sharded optimizers, named by the diagnosis.

A catalogued variant has goldens (derivations/); these do not need any, because each is the spec
itself run on other inputs or with its state handled otherwise. Their trajectories are computed
when a distributed case fails, by the spec's NumPy reference (``optimizer_conformance.reference``,
verified against the goldens by tests/test_reference_*.py) in float64, through the same
open-loop runner — no SymPy, no mpmath at check time:

- ``distributed.grads_summed``: the ranks' gradients summed instead of averaged (the gradient ×N);
- ``distributed.step_per_rank``: the step count advanced once per rank (shard) on every step (N
  per step: bias corrections and schedules run N times too fast);
- ``distributed.weight_decay_per_rank``: weight decay contributed by every rank to a replicated
  param and summed (the weight decay ×N);
- ``distributed.state_lost_on_resume``: the state not gathered into the checkpoint, so that a
  resumed optimizer starts afresh (step 0, empty moments) from the saved params.

The reference's own error is within one tolerance of the exact trajectory, so a candidate matches
a computed variant when it stays within two tolerances of it; a variant counts in a case only if
it is at least CATCH_MARGIN tolerances away from the spec there (as catalogued variants must be).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .candidates import Candidate
from .diagnosis import Diagnosis, diagnose
from .drivers import NumpyDriver
from .golden import Case, Change, Group, Spec, Step
from .open_loop import run_case
from .tolerance import CATCH_MARGIN

PREFIX = "distributed."
MATCH_TOLERANCES = 2.0  # the candidate's rounding plus the reference's


@dataclass(frozen=True)
class DistributedVariant:
    id: str
    title: str
    summary: str


VARIANTS = {
    v.id: v
    for v in (
        DistributedVariant("distributed.grads_summed", "gradients summed instead of averaged",
                           "the all-reduce adds the N ranks' gradients and never divides by the world size: "
                           "the update sees N times the gradient"),
        DistributedVariant("distributed.step_per_rank", "step counted once per rank",
                           "every rank (shard) advances the shared step count: it grows by N per step, so "
                           "bias corrections and step-dependent schedules run N times too fast"),
        DistributedVariant("distributed.weight_decay_per_rank", "weight decay applied on every rank",
                           "each rank applies the weight decay of a replicated param and the contributions "
                           "are summed: the decay is N times too strong"),
        DistributedVariant("distributed.state_lost_on_resume", "state not gathered on resume",
                           "the checkpoint holds no optimizer state (it stayed sharded on the ranks): the "
                           "resumed optimizer starts afresh from the saved params"),
    )
}


def _scaled(case: Case, name: str, factor: float) -> Case | None:
    """The case with the hyperparameter ``name`` ×factor (initial settings and changes), or None
    when the case never sets it away from 0."""
    if not any(g.hyperparameters.get(name) for g in case.groups) and \
            not any(c.name == name and c.value for s in case.steps for c in s.changes):
        return None
    groups = [Group(g.params, {**g.hyperparameters, **({name: g.hyperparameters[name] * factor}
                                                         if name in g.hyperparameters else {})}, g.raw)
              for g in case.groups]
    steps = [dataclasses.replace(s, changes=[Change(c.group, c.name, c.value * factor if c.name == name
                                                    else c.value, c.raw) for c in s.changes])
             for s in case.steps]
    return dataclasses.replace(case, groups=groups, steps=steps)


def _grads_scaled(case: Case, factor: float) -> Case:
    steps = [Step(s.changes, s.reload_before, {k: None if g is None else g * factor for k, g in s.grads.items()})
             for s in case.steps]
    return dataclasses.replace(case, steps=steps)


class _StepPerRank(NumpyDriver):
    world = 1

    def step(self, grads):
        super().step(grads)
        for group, opt in zip(self.case.groups, self.opts, strict=True):
            for name, st in zip(group.params, opt.state, strict=True):
                if grads[name] is not None and "step" in st:
                    st["step"] += self.world - 1


class _StateLost(NumpyDriver):
    def reload(self) -> None:
        for i in range(len(self.opts)):
            self.opts[i] = self._build(i)
            for k, v in self.groups[i].items():
                if hasattr(self.opts[i], k):
                    setattr(self.opts[i], k, v)


def _reference(spec: Spec) -> Candidate | None:
    from optimizer_conformance.reference import REFERENCES

    cls = REFERENCES.get(spec.id)
    if cls is None:
        return None
    return Candidate(f"{cls.__module__}.{cls.__name__}", cls, "numpy")


def trajectory(spec: Spec, case: Case, variant: str, world: int) -> dict[str, np.ndarray] | None:
    """The params the variant produces in this case (float64, by the NumPy reference), or None
    where it does not apply (no weight decay, no resume, no step count, no reference)."""
    ref = _reference(spec)
    if ref is None or world < 2:
        return None
    make = None
    if variant == "distributed.grads_summed":
        run = _grads_scaled(case, world)
    elif variant == "distributed.weight_decay_per_rank":
        run = _scaled(case, "weight_decay", world)
    elif variant == "distributed.step_per_rank":
        if "step" not in getattr(ref.target, "COUNTERS", ()):
            return None
        run = case

        def make(cand, spec, case, dtype, device, mode):
            drv = _StepPerRank(cand, spec, case, dtype, device)
            drv.world = world
            return drv
    elif variant == "distributed.state_lost_on_resume":
        run = case if any(s.reload_before for s in case.steps) else None

        def make(cand, spec, case, dtype, device, mode):
            return _StateLost(cand, spec, case, dtype, device)
    else:
        raise KeyError(variant)
    if run is None:
        return None
    res = run_case(ref, spec, run, "float64", make_driver=make)
    if res.steps_run != case.n_steps:
        return None
    return res.actual


def distributed_matches(spec: Spec, case: Case, actual: dict[str, np.ndarray], dtype: str, world: int) -> list[str]:
    """The distributed variants this failing case's trajectory follows (and that this case tells
    apart from the spec by CATCH_MARGIN tolerances)."""
    out = []
    for vid in VARIANTS:
        other = trajectory(spec, case, vid, world)
        if other is None:
            continue
        far, near = 0.0, True
        for name, exp in case.expected.items():
            tol = case.tolerance(name, dtype)
            far = max(far, float(np.max(np.abs(other[name][1:] - exp[1:]) / tol, initial=0.0)))
            act = actual[name]
            near = near and act.shape == exp.shape and bool(
                np.all(np.abs(act[1:] - other[name][1:]) <= MATCH_TOLERANCES * tol))
        if far >= CATCH_MARGIN and near:
            out.append(vid)
    return out


def diagnose_distributed(records) -> Diagnosis:
    """The diagnosis of a distributed run: the failures a distributed variant explains are named
    by it; the rest go through the catalogued diagnosis (``diagnosis.diagnose``)."""
    records = list(records)
    failing = [r for r in records if r.outcome == "failed" and not r.params_conform]
    named = sorted({m for r in failing for m in r.matches if m in VARIANTS})
    if not named:
        return diagnose(records)
    explained = {id(r) for r in failing if any(m in VARIANTS for m in r.matches)}
    rest = diagnose([r for r in records if id(r) not in explained])
    lines = [f"trajectory matches {vid}: {VARIANTS[vid].title} — {VARIANTS[vid].summary} "
             f"(a distributed variant: computed from the spec's reference)" for vid in named]
    if rest.verdict not in ("conforms", "no cases ran"):
        lines += rest.text.splitlines()
    return Diagnosis("variant", sorted({*rest.variants, *named}), rest.unexplained, "\n".join(lines))
