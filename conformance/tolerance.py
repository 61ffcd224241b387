"""The tolerance model: how far a *correct* implementation may be from the exact trajectory.

Every golden step carries, for each parameter and state element, a bound ``B`` (``bound`` in the
JSON): the first-order running error bound of the spec's own formula evaluated along the exact
trajectory, derived from the SymPy rule by ``derivations/error_bound.py`` (Wilkinson's running
error analysis: each operation adds one rounding of its result, errors of the operands are
carried through with the operation's sensitivities; inputs are exact). An implementation that
evaluates the formula in a floating-point type with unit roundoff ``u`` (2⁻⁵³ for float64, 2⁻²⁴
for float32) is within ``u·B`` of the exact value to first order. ``B`` grows with the distance
the parameters travelled (each step adds ``|θ|`` and ``|Δθ|``) and with the conditioning of the
step (``1 − β₂ᵗ`` at small ``t``, cancellation in ``g + λθ``).

The tolerance is

    tol = K · u · B + (smallest normal number of the dtype)

``K`` allows for implementations that evaluate the same formula in another order or fuse
operations (a different order has a different, similar-sized bound). It is set from the measured
error of correct implementations — torch's forloop, foreach and fused kernels and the NumPy
references, in float32 and float64 — so that they stay at or below a quarter of the tolerance;
``nox -s benchmark`` prints the measured margins and docs/tolerances.md records them. The floor
keeps an exactly-zero expectation from demanding an exactly-zero answer after subnormal noise.

A spec may define part of its computation in a fixed floating-point type, whatever the dtype under
test (Muon's Newton–Schulz iteration runs in bfloat16). Its goldens then carry, per element, a
second bound ``B_f`` in units of that type's unit roundoff ``u_f`` (``bound.fixed``), and the
tolerance gets ``K · u_f · B_f`` on top.

This module is plain NumPy: the plugin and the golden generator share it.
"""

from __future__ import annotations

from collections.abc import Mapping

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

# Safety factor over the first-order bound (see the module docstring and docs/tolerances.md).
K = 5.0

# A variant is "caught" by a case when it leaves the spec's trajectory by at least this many
# tolerances somewhere in float32 (and so, a fortiori, in float64).
CATCH_MARGIN = 10.0


def tolerance(bound: np.ndarray, dtype: str, fixed: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The tolerance, elementwise, from the golden's error bound ``B`` and its fixed-precision
    bounds ``fixed`` ({fixed dtype: B_f}, same layout; none for most specs)."""
    tol = K * UNIT_ROUNDOFF[dtype] * np.asarray(bound, dtype=np.float64) + SMALLEST_NORMAL[dtype]
    for fixed_dtype, b in (fixed or {}).items():
        tol = tol + K * UNIT_ROUNDOFF[fixed_dtype] * np.asarray(b, dtype=np.float64)
    return tol
