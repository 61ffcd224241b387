"""Mutants: one ``torch.optim.Optimizer`` per catalogued variant, and the correct controls.

``MUTANTS[(spec_id, variant_id)]`` is the optimizer that implements the spec with exactly that
variant's formula; the core Adam variants are registered under both ``adam`` and ``adamw``.
``CONTROLS[spec_id]`` is the unmutated implementation of the spec.

Each module of :data:`MODULES` after the first two defines ``CONTROLS = {spec_id: cls}`` and
``MUTANTS = {(spec_id, variant_id): cls}``; add one line per module.
"""

from __future__ import annotations

import importlib

import torch

from . import adam_mutants, sgd_mutants

CONTROLS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": sgd_mutants.CONTROL,
    **adam_mutants.CONTROLS,
}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    **{("sgd", vid): cls for vid, cls in sgd_mutants.MUTANTS.items()},
    **{("adam", vid): cls for vid, cls in adam_mutants.ADAM_MUTANTS.items()},
    **{("adamw", vid): cls for vid, cls in adam_mutants.ADAMW_MUTANTS.items()},
}

MODULES: list[str] = []
MODULES += ["rmsprop_mutants", "adagrad_mutants", "adadelta_mutants"]
MODULES += ["adamax_mutants", "nadam_mutants", "radam_mutants"]
MODULES += ["asgd_mutants", "rprop_mutants"]
MODULES += ["sparseadam_mutants", "adafactor_mutants", "muon_mutants", "lbfgs_mutants"]

for _name in MODULES:
    _module = importlib.import_module(f"{__name__}.{_name}")
    CONTROLS.update(_module.CONTROLS)
    MUTANTS.update(_module.MUTANTS)

__all__ = ["CONTROLS", "MUTANTS"]
