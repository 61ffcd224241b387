"""Compound diagnoses: combinations of catalogued variants, and the float32-internal precision axis.

A real library often combines several catalogued deviations (Keras's Adam: ε̂ and one step
counter for the whole optimizer; timm's RMSpropTF: three RMSprop variants). The golden generator
writes every compatible combination of up to three variants of a spec as a variant document under
``<spec>/compound/``, listed with its separation from the spec in ``<spec>/compound.json``
(``derivations/compound.py``). This module reads them (plain JSON → NumPy) and ``diagnosis.py``
matches a failing case against them; nothing reads them for a case that passed, so a conforming run
never pays for them.

A *name* is what a case matches and what a run is explained by: a variant id
(``adam.eps_hat``), a combination (``adam.eps_hat + adam.step_global``), or either with the
precision axis appended (``… + precision.float32_internal``), or that axis alone.

The precision axis: an implementation that computes in float32 internally for float64 params
(timm's RAdamLegacy casts grad and param to float32 in ``step``) is a faithful float32 evaluation
of its formula, so by the tolerance model it lies within the *float32* tolerance of that formula's
exact trajectory (K·u₃₂·B), while it fails the float64 tolerance. No extra evaluation is needed:
the float64 case is compared with the spec's (or a variant's, or a combination's) golden under the
float32 tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

from .golden import Case, GoldenError, Spec, read_document

SEPARATOR = " + "
PRECISION = "precision.float32_internal"


@dataclass(frozen=True)
class Known:
    """What a name stands for, as the messages show it (a variant's ``VariantInfo`` fields)."""

    id: str
    title: str
    summary: str
    who: str
    sources: list[str]
    lines: list[dict] = field(default_factory=list)
    acceptable: bool = False


PRECISION_INFO = Known(
    id=PRECISION,
    title="internal float32 arithmetic for float64 params",
    summary="the update is computed in float32 (param, gradient and state cast to float32) and "
    "written back to the float64 param: within the float32 tolerance of the rule, not the float64 one",
    who="timm RAdamLegacy (timm/optim/radam.py RAdamLegacy.step: grad = p.grad.float(), p_fp32 = p.float()); "
    "several libraries' float32 state",
    sources=("timm/optim/radam.py RAdamLegacy.step",),
)


@dataclass(frozen=True)
class Combination:
    id: str
    parts: tuple[str, ...]
    file: str
    lines: list[dict]
    separation: dict[str, dict[str, float]]  # case id -> dtype -> tolerances


@dataclass(frozen=True)
class Compound:
    """A spec's ``compound.json``: its rule lines and its combinations."""

    rule_lines: list[dict]
    combinations: dict[str, Combination]


@cache
def compound(spec_id: str) -> Compound:
    """The spec's compound document (an empty one for a spec that has none, e.g. closed-loop)."""
    try:
        doc = read_document(f"{spec_id}/compound.json")
    except GoldenError:
        return Compound([], {})
    combos = {c["id"]: Combination(c["id"], tuple(c["parts"]), c["file"], c["lines"],
                                   {k: {d: float(x) for d, x in s.items()} for k, s in c["separation"].items()})
              for c in doc["combinations"]}
    return Compound(doc["rule_lines"], combos)


def parts(name: str) -> tuple[str, ...]:
    return tuple(name.split(SEPARATOR)) if name else ()


def join(*names: str) -> str:
    return SEPARATOR.join(n for n in names if n)


def size(name: str) -> int:
    return len(parts(name))


def without_precision(name: str) -> str:
    return join(*(p for p in parts(name) if p != PRECISION))


def describe(spec: Spec, name: str) -> Known:
    """Title, summary, who, sources and changed rule lines of a name (see the module docstring)."""
    if name == PRECISION:
        return PRECISION_INFO
    if name in spec.variants:
        v = spec.variants[name]
        return Known(name, v.title, v.summary, v.who, list(v.sources), list(v.lines), v.acceptable)
    base = without_precision(name)
    infos = [describe(spec, p) for p in parts(base)]
    lines = compound(spec.id).combinations[base].lines if base in compound(spec.id).combinations else \
        [line for i in infos for line in i.lines]
    if base != name:
        infos.append(PRECISION_INFO)
    return Known(name, " + ".join(i.title for i in infos), "; ".join(i.summary for i in infos),
                 "; ".join(f"{i.id}: {i.who}" for i in infos),
                 list(dict.fromkeys(s for i in infos for s in i.sources)), lines)


def within(golden: Case, actual: dict[str, np.ndarray], dtype: str) -> bool:
    """Whether the parameter trajectory is within the tolerance (of ``dtype``) of ``golden``'s.
    The last step first: a trajectory that leaves the golden's is almost always still away from it
    at the end, so most of the names a diagnosis tries are ruled out on one row."""
    names = golden.expected
    if any(actual[name].shape != exp.shape for name, exp in names.items()):
        return False
    last = [(actual[name][-1:], exp[-1:], golden.tolerance(name, dtype)[-1:]) for name, exp in names.items()]
    if not all(_rows_within(*rows) for rows in last if len(rows[1]) and len(rows[2])):
        return False
    return all(_rows_within(actual[name][1:], exp[1:], golden.tolerance(name, dtype)) for name, exp in names.items())


def _rows_within(act: np.ndarray, exp: np.ndarray, tol: np.ndarray) -> bool:
    # steps a long horizon does not check are NaN in the golden: not compared
    return bool(np.all((np.abs(act - exp) <= tol) | np.isnan(exp)))


def minimal(names: list[str]) -> list[str]:
    """The names no other of which is a part-wise subset (what a case message shows)."""
    sets = {n: set(parts(n)) for n in names}
    return [n for n in names if not any(sets[o] < sets[n] for o in names)]
