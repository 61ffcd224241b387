"""Mutants: one ``torch.optim.Optimizer`` per catalogued variant, and the correct controls.

``MUTANTS[(spec_id, variant_id)]`` is the optimizer that implements the spec with exactly that
variant's formula; the core Adam variants are registered under both ``adam`` and ``adamw``.
``CONTROLS[spec_id]`` is the unmutated implementation of the spec.

Every module ``<name>_mutants.py`` of this package is found by discovery and defines
``CONTROLS = {spec_id: cls}`` and ``MUTANTS = {(spec_id, variant_id): cls}``: adding an
optimizer's mutants is adding one such module.
"""

from __future__ import annotations

import importlib
import pkgutil

import torch

CONTROLS: dict[str, type[torch.optim.Optimizer]] = {}
MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {}

# contract_mutants.py holds mutants of the optimizer contract (tests/test_contract.py), and
# distributed_mutants.py those of the distributed variants (tests/test_distributed.py): not of specs
OTHERS = ("contract_mutants", "distributed_mutants")
MODULES: list[str] = sorted(m.name for m in pkgutil.iter_modules(__path__)
                            if m.name.endswith("_mutants") and m.name not in OTHERS)
for _name in MODULES:
    _module = importlib.import_module(f"{__name__}.{_name}")
    CONTROLS.update(_module.CONTROLS)
    MUTANTS.update(_module.MUTANTS)

__all__ = ["CONTROLS", "MODULES", "MUTANTS"]
