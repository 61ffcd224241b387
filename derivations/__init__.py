"""Each optimizer's update rule, written once in SymPy: the single source of truth.

Goldens, closed-form proofs and the formulas in the docs are all derived from the specs listed
here. This package is for generation time: the pytest plugin never imports it.
"""

from __future__ import annotations

from . import adam, adamw, sgd
from .spec import Spec

SPECS: dict[str, Spec] = {s.id: s for s in (sgd.SPEC, adam.SPEC, adamw.SPEC)}

__all__ = ["SPECS", "Spec"]
