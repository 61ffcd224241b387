"""NumPy reference implementations of the specified optimizers.

Plain, readable NumPy written from the update rules (PyTorch's definitions), independently of the
SymPy derivations; one class per optimizer, named like torch's. Each class follows the NumPy
candidate protocol (see ``optimizer_conformance.conformance.candidates``): ``Cls(params,
**hyperparameters)``, ``step(grads)`` updating the arrays in place, hyperparameters as plain
attributes, ``state_dict()`` and ``load_state_dict()``. :class:`LBFGS` follows the closed-loop
protocol instead (``step(closure)``, see ``optimizer_conformance.conformance.closed_loop``).

Adding a reference is adding a module here whose class declares ``conformance_spec = "<spec id>"``:
the classes are found by discovery (:data:`REFERENCES`, spec id → class) and exported under their
own names (``optimizer_conformance.reference.Adam``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from .base import NumpyOptimizer


def _discover() -> dict[str, type[NumpyOptimizer]]:
    found: dict[str, type[NumpyOptimizer]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            spec = getattr(obj, "conformance_spec", None)
            if inspect.isclass(obj) and obj.__module__ == module.__name__ and spec is not None:
                if spec in found:
                    raise ValueError(f"two references of spec {spec!r}: {found[spec].__name__}, {obj.__name__}")
                found[spec] = obj
    return dict(sorted(found.items()))


#: spec id -> the NumPy reference class of that spec
REFERENCES: dict[str, type[NumpyOptimizer]] = _discover()
globals().update({cls.__name__: cls for cls in REFERENCES.values()})

__all__ = ["REFERENCES", *sorted(cls.__name__ for cls in REFERENCES.values())]
