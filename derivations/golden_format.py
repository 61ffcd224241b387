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
    """A value of a trajectory as a decimal string with DIGITS significant digits, correctly
    rounded from the value as the evaluator computed it (an mpf of the working precision, 80
    digits: all DIGITS digits are the exact value's, up to the last one's rounding). Never
    re-rounded to the context's precision first: the goldens are written outside the working
    precision, where ``mpmath.mpf(x)`` would round to a double (53 bits) and print the double's
    digits. A plain number (an int, a float) is exact as it is. Memoised by value: a spec's
    documents print the same values many times over (every variant and combination shares the
    spec's trajectory up to where its delta takes effect)."""
    key = x._mpf_ if isinstance(x, mpmath.mpf) else _exactly(x)
    if (out := _FORMATTED.get(key)) is None:
        out = _FORMATTED[key] = mpmath.libmp.to_str(key, DIGITS)
    return out


def _exactly(x) -> tuple:
    """A plain number as an mpf tuple without rounding (an int of any size, a float)."""
    if isinstance(x, int):
        return mpmath.libmp.from_int(x)
    if isinstance(x, float):
        return mpmath.libmp.from_float(x)
    raise TypeError(f"a golden value must be an mpf, an int or a float, not {type(x).__name__}")


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
