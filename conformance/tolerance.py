"""The tolerance model: how far a *correct* implementation may be from the exact trajectory.

An implementation that evaluates the rule in a floating-point type with unit roundoff ``u``
makes, at each step it touches an element ``x`` (a parameter or a state entry), rounding errors
of the order of ``u`` times the magnitudes involved in that step: the value it starts from,
``|x_{s-1}|``, and the change it adds, ``|x_s − x_{s-1}|`` (computed through a handful of
operations, each rounding once). The gradients are fixed inputs (open loop), so earlier errors
are carried forward but never amplified: the update maps of every spec here are contractions or
translations in the state. Summing the per-step bound gives, for each element after step ``t``,

    tol_t = K · u · S_t,    S_t = Σ_{touched steps s ≤ t} ( |x_{s-1}| + |x_s − x_{s-1}| )

— ``S_t`` is how far the element travelled (|x₀| + Σ|Δx|) accumulated over the steps that moved
it. ``u`` is the dtype's unit roundoff (2⁻⁵³ for float64, 2⁻²⁴ for float32); ``K`` counts the
roundings per step with a safety margin, and is fixed from measurements of correct
implementations (torch's forloop, foreach and fused kernels, and the NumPy references) so that
their worst error stays at or below a quarter of the tolerance; the measured margins are
published by ``nox -s benchmark`` and in the docs. A floor of the dtype's smallest normal number
keeps an exactly-zero expectation from demanding an exactly-zero answer after subnormal noise.

This module is plain NumPy: the plugin and the golden generator share it.
"""

from __future__ import annotations

import numpy as np

UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "bfloat16": 2.0**-8,
    "float16": 2.0**-11,
}

SMALLEST_NORMAL: dict[str, float] = {
    "float64": 2.0**-1022,
    "float32": 2.0**-126,
    "bfloat16": 2.0**-126,
    "float16": 2.0**-14,
}

# Roundings per step, with margin (see the module docstring and docs/tolerances.md).
K = 32.0

# A variant is "caught" by a case when it leaves the spec's trajectory by at least this many
# tolerances somewhere in float32 (and so, a fortiori, in float64).
CATCH_MARGIN = 10.0


def travel(trajectory: np.ndarray, touched: np.ndarray) -> np.ndarray:
    """S_t for each step t ≥ 1 and element.

    ``trajectory``: shape (T + 1, n), the exact values before the first step and after each.
    ``touched``: shape (T,), whether step t moved this tensor (it had a gradient).
    """
    prev = np.abs(trajectory[:-1])
    delta = np.abs(np.diff(trajectory, axis=0))
    per_step = np.where(np.asarray(touched, dtype=bool)[:, None], prev + delta, 0.0)
    return np.cumsum(per_step, axis=0)


def tolerance(trajectory: np.ndarray, touched: np.ndarray, dtype: str) -> np.ndarray:
    """The tolerance for each step t ≥ 1 and element: shape (T, n)."""
    return K * UNIT_ROUNDOFF[dtype] * travel(trajectory, touched) + SMALLEST_NORMAL[dtype]
