"""Mutants: one ``torch.optim.Optimizer`` per catalogued variant, and the correct controls.

``MUTANTS[(spec_id, variant_id)]`` is the optimizer that implements the spec with exactly that
variant's formula; the core Adam variants are registered under both ``adam`` and ``adamw``.
``CONTROLS[spec_id]`` is the unmutated implementation of the spec.

Every module ``<name>_mutants.py`` of this package is found by discovery and defines
``CONTROLS = {spec_id: cls}`` and ``MUTANTS = {(spec_id, variant_id): cls}``: adding an
optimizer's mutants is adding one such module. A module may also define ``COMPOUND_MUTANTS``
(combinations of variants, named by the compound diagnosis) and ``LOCALISED`` (a deviation no
variant explains, which the diagnosis must localise): tests/test_compound.py.
"""

from __future__ import annotations

import importlib
import pkgutil

import torch

CONTROLS: dict[str, type[torch.optim.Optimizer]] = {}
MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {}
# a combination of catalogued variants (or the precision axis): (spec_id, the diagnosis's name) -> cls
COMPOUND_MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {}
# a deviation no variant explains: (spec_id, rule line label, state variable) the localisation names -> cls
LOCALISED: dict[tuple[str, str, str], type[torch.optim.Optimizer]] = {}
# explained in part: (spec_id, the name explaining a share, rule line label, state variable of what remains) -> cls
PARTIAL: dict[tuple[str, str, str, str], type[torch.optim.Optimizer]] = {}

# contract_mutants.py holds mutants of the optimizer contract (tests/test_contract.py), and
# distributed_mutants.py those of the distributed variants (tests/test_distributed.py): not of specs
OTHERS = ("contract_mutants", "distributed_mutants")
MODULES: list[str] = sorted(m.name for m in pkgutil.iter_modules(__path__)
                            if m.name.endswith("_mutants") and m.name not in OTHERS)
for _name in MODULES:
    _module = importlib.import_module(f"{__name__}.{_name}")
    CONTROLS.update(_module.CONTROLS)
    MUTANTS.update(_module.MUTANTS)
    COMPOUND_MUTANTS.update(getattr(_module, "COMPOUND_MUTANTS", {}))
    LOCALISED.update(getattr(_module, "LOCALISED", {}))
    PARTIAL.update(getattr(_module, "PARTIAL", {}))

__all__ = ["COMPOUND_MUTANTS", "CONTROLS", "LOCALISED", "MODULES", "MUTANTS", "PARTIAL"]
