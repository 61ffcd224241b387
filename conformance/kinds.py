"""The kinds of golden case, keyed by the golden document's ``kind``, and the loaders.

A *kind* owns how its cases are loaded, run and scored:

* ``open_loop`` (``open_loop.py``; a document without ``"kind"``) — the harness feeds the
  gradients, step by step; every spec but L-BFGS;
* ``closed_loop`` (``closed_loop.py``) — the candidate calls a closure the harness evaluates
  (torch's ``step(closure)``): L-BFGS.

:func:`load_spec` and :func:`load_variant` read a spec's documents through its kind; the runner
(``runner.run_case``) runs a case through its spec's kind. Nothing else branches on the kind:
a new kind is a module with the three functions of :class:`Kind`, registered in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from . import closed_loop, open_loop
from .golden import Case, Spec, VariantInfo, read_document, spec_index
from .scoring import CaseResult

DEFAULT = open_loop.NAME  # the kind of a golden document that names none


@dataclass(frozen=True)
class Kind:
    name: str
    # (spec id, its entry in the index, its spec document) -> the Spec
    load_spec: Callable[[str, dict, dict], Spec]
    # (spec id, one of its variants) -> that variant's cases (expected params and bounds), by case id
    load_variant: Callable[[str, VariantInfo], dict[str, Case]]
    # (candidate, spec, case, dtype, device, accept=(), mode="eager") -> the scored result
    run_case: Callable[..., CaseResult]


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(open_loop.NAME, open_loop.load_spec, open_loop.load_variant, open_loop.run_case),
        Kind(closed_loop.NAME, closed_loop.load_spec, closed_loop.load_variant, closed_loop.run_case),
    )
}


def kind_of(spec: Spec) -> Kind:
    return KINDS[spec.kind]


@cache
def load_spec(spec_id: str) -> Spec:
    """The spec ``spec_id`` (see ``golden.spec_ids()``), loaded by the kind its document names."""
    meta = spec_index(spec_id)
    doc = read_document(meta["file"])
    return KINDS[doc.get("kind", DEFAULT)].load_spec(spec_id, meta, doc)


def load_variant(spec_id: str, variant_id: str) -> dict[str, Case]:
    """The params a variant would produce (``expected``, ``bound``), by case id.

    An acceptable variant's file also holds its state (compared like the spec's)."""
    spec = load_spec(spec_id)
    return kind_of(spec).load_variant(spec_id, spec.variants[variant_id])
