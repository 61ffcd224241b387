"""The golden format every kind of spec writes: schema id, number formatting, and the header
parts (hyperparameters, variants) that open-loop (``golden.py``) and closed-loop
(``closed_loop_golden.py``) documents share."""

from __future__ import annotations

import mpmath

from .rule import Hyperparameter, StateVar, Variant
from .spec import Spec

SCHEMA_ID = "optimizer-conformance/golden/v1"
DIGITS = 40
DTYPES = ("float32", "float64")


def fmt(x) -> str:
    """An mpf as a decimal string with DIGITS significant digits, of ``mpmath.mpf(x)``: the value
    rounded to the context's precision (the default 53 bits where the goldens are written).
    Memoised by (value, precision): a spec's documents print the same values many times over (every
    variant and combination shares the spec's trajectory up to where its delta takes effect)."""
    key = (getattr(x, "_mpf_", x), mpmath.mp.prec)
    if (out := _FORMATTED.get(key)) is None:
        out = _FORMATTED[key] = mpmath.libmp.to_str(mpmath.mpf(x)._mpf_, DIGITS)
    return out


_FORMATTED: dict = {}


def forget_formatted() -> None:
    """Empty :func:`fmt`'s memo (the generator does, spec by spec)."""
    _FORMATTED.clear()


def fmt_bound(x: float) -> str:
    """An error bound: three significant digits are plenty."""
    return f"{x:.3g}"


def variant_meta(v: Variant) -> dict:
    return {"id": v.id, "title": v.title, "summary": v.summary, "who": v.who,
            "acceptable": v.acceptable, "sources": list(v.sources)}


def state_declaration(s: StateVar) -> dict:
    """A state entry in a document's header; ``per_param`` only where it is one number per parameter."""
    return {"name": s.name, "count": s.count, **({"per_param": True} if s.per_param else {}), "doc": s.doc}


def _declared(hp: Hyperparameter, value) -> object:
    """A declared default or neutral value: numbers as decimal strings unless the setting is a count."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, tuple):
        return [_declared(hp, x) for x in value]
    return int(value) if hp.integer else str(value)


def hyperparameters_document(spec: Spec) -> list[dict]:
    return [
        {"name": hp.name, "default": _declared(hp, hp.default), "neutral": _declared(hp, hp.neutral), "doc": hp.doc}
        for hp in spec.rule.hyperparameters
    ]
