"""A spec: one optimizer's rule, its catalogued variants, its cases and its closed forms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .cases import CaseBuilder
from .proofs import ClosedForm
from .rule import Rule, Variant


@dataclass(frozen=True)
class Implementation:
    """A library's implementation of a spec, as the third-party board runs it
    (``python -m optimizer_conformance.conformance.board``)."""

    library: str  # the distribution's name on the package index ("pytorch-optimizer")
    path: str  # what --optimizer takes ("pytorch_optimizer.Lion")
    # constructor settings that select the spec's convention where the library offers several
    kwargs: Mapping[str, object] = field(default_factory=dict)
    note: str = ""  # the library's source for the mapping: file and function
    # the library's argument names that mean one of the spec's (--optimizer-args): its name -> torch's
    args: Mapping[str, str] = field(default_factory=dict)

    def document(self) -> dict:
        return {"library": self.library, "path": self.path, "kwargs": dict(self.kwargs), "args": dict(self.args),
                "note": self.note}


@dataclass(frozen=True)
class Spec:
    id: str
    title: str
    rule: Rule
    variants: tuple[Variant, ...]
    cases: tuple[CaseBuilder, ...]
    closed_forms: tuple[ClosedForm, ...]
    # the torch.optim class that defines the spec, if torch has one (most new specs: None)
    torch_class: str | None = None
    # implementations in other libraries (the board checks each)
    implementations: tuple[Implementation, ...] = ()
    # boundary sides no case can reach, by "<boundary key> <side>" (derivations/boundaries.py): the reason
    unreachable_boundaries: Mapping[str, str] = field(default_factory=dict)
    # why the generated grad_none case may drop gradients on the last step only (a known limit of
    # the derivation: see docs/findings.md), or "" (it drops them mid-trajectory)
    grad_none_last_step_only: str = ""
    # optional features (feature_cases.py) no generated case exercises alone: feature -> why
    ungenerated_features: Mapping[str, str] = field(default_factory=dict)
    # why the optimizer keeps state shared by its param groups (Prodigy's one D), or "": a candidate
    # protocol that builds one optimizer per group (NumPy, optax) cannot run a case with two groups
    groups_share_state: str = ""
    # the second group's settings in the generated param_groups case, where another learning rate
    # (the default) is not allowed (prodigyopt requires one lr for every group)
    second_group: Mapping[str, object] = field(default_factory=dict)
    # generated cases (feature_cases.py, boundaries.py) drawn with another seed than their place
    # gives them: case id -> (seed, why), e.g. a draw that breaks a precondition of the derivation
    reseeded: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    def defaults(self) -> dict[str, object]:
        """torch's defaults, as case inputs (decimals as strings)."""
        out: dict[str, object] = {}
        for hp in self.rule.hyperparameters:
            v = hp.default
            if isinstance(v, tuple):
                out[hp.name] = [None if x is None else repr(float(x)) for x in v]
            elif v is None or isinstance(v, (bool, str)):
                out[hp.name] = v  # None (the documented default behaviour), a flag, a named choice
            elif hp.integer:
                out[hp.name] = int(v)
            else:
                out[hp.name] = repr(float(v))
        return out

    def variant(self, id: str) -> Variant:
        for v in self.variants:
            if v.id == id:
                return v
        raise KeyError(id)
