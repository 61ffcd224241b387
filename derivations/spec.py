"""A spec: one optimizer's rule, its catalogued variants, its cases and its closed forms."""

from __future__ import annotations

from dataclasses import dataclass

from .cases import CaseBuilder
from .proofs import ClosedForm
from .rule import Rule, Variant


@dataclass(frozen=True)
class Spec:
    id: str
    title: str
    torch_class: str
    rule: Rule
    variants: tuple[Variant, ...]
    cases: tuple[CaseBuilder, ...]
    closed_forms: tuple[ClosedForm, ...]

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
