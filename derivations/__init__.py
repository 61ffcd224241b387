"""Each optimizer's update rule, written once in SymPy: the single source of truth.

Goldens, closed-form proofs and the formulas in the docs are all derived from the specs found
here. This package is for generation time: the pytest plugin never imports it.

Adding an optimizer is adding a module beside the others that defines ``SPEC`` (a
:class:`~.spec.Spec`): every module of this package that is not one of the shared building
blocks in :data:`INFRASTRUCTURE` is imported and must define one. Specs are listed by id, in
alphabetical order (the order of the golden index and of the docs).
"""

from __future__ import annotations

import importlib
import pkgutil

from .spec import Spec

# The shared building blocks: every other module of the package is one optimizer's derivation.
INFRASTRUCTURE = frozenset({
    "__main__", "boundaries", "cases", "closed_loop", "closed_loop_golden", "compound", "docs", "error_bound",
    "evaluate", "feature_cases", "golden", "golden_format", "keras_conventions", "proofs", "rule", "spec",
    "step_scope", "tensor", "text",
})


def spec_modules() -> list[str]:
    """The names of the modules that define a spec (discovered, not listed)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in INFRASTRUCTURE)


def spec_module(name: str) -> Spec:
    """The spec of one module of the package (a spec's id is its module's name), importing only
    that module (and what it imports): regenerating one spec need not import all of them."""
    spec = getattr(importlib.import_module(f"{__name__}.{name}"), "SPEC", None)
    if spec is None:  # a Spec, or a duck-typed one (closed_loop.ClosedLoopSpec)
        raise TypeError(f"{__name__}.{name} defines no SPEC: an optimizer module must define one "
                        f"(or, if it is a shared building block, be listed in INFRASTRUCTURE)")
    return spec


def _discover() -> dict[str, Spec]:
    found: dict[str, Spec] = {}
    for name in spec_modules():
        spec = spec_module(name)
        if spec.id in found:
            raise ValueError(f"spec id {spec.id!r} defined twice ({name} and another module)")
        found[spec.id] = spec
    return dict(sorted(found.items()))


SPECS: dict[str, Spec]  # every spec by id, discovered on first use (below)
MODULES: list[str] = spec_modules()


def __getattr__(name: str):
    """``SPECS`` is discovered on first use: importing every spec module takes a while."""
    if name == "SPECS":
        globals()["SPECS"] = specs = _discover()
        return specs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["INFRASTRUCTURE", "MODULES", "SPECS", "Spec", "spec_module", "spec_modules"]
