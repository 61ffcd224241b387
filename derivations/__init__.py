"""Each optimizer's update rule, written once in SymPy: the single source of truth.

Goldens, closed-form proofs and the formulas in the docs are all derived from the specs listed
here. This package is for generation time: the pytest plugin never imports it.
"""

from __future__ import annotations

import importlib

from .spec import Spec

# One module per optimizer, each defining SPEC; this order is the order of the index and the docs.
MODULES: list[str] = ["sgd", "adam", "adamw"]
MODULES += ["rmsprop", "adagrad", "adadelta"]
MODULES += ["adamax", "nadam", "radam"]
MODULES += ["asgd", "rprop"]
MODULES += ["sparseadam", "adafactor", "muon", "lbfgs"]

SPECS: dict[str, Spec] = {}
for _name in MODULES:
    _spec = importlib.import_module(f"{__name__}.{_name}").SPEC
    SPECS[_spec.id] = _spec

__all__ = ["MODULES", "SPECS", "Spec"]
