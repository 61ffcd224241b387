"""Muon (MomentUm Orthogonalized by Newton–Schulz) for matrix parameters, in plain NumPy.

The update rule is PyTorch's (``torch.optim.Muon``; see its documentation and
``_single_tensor_muon`` in torch/optim/_muon.py). For each A×B parameter theta with gradient g::

    B = B + (1 - momentum) * (g - B)              (EMA momentum buffer, B starts at 0)
    U = g + momentum * (B - g)   if nesterov
    U = B                        otherwise
    O = NS(U)                    (below)
    theta = theta * (1 - lr * weight_decay)       (decoupled weight decay)
    theta = theta - lr * s * O,  s = sqrt(max(1, A / B))          adjust_lr_fn None / "original"
                                 s = 0.2 * sqrt(max(A, B))         adjust_lr_fn "match_rms_adamw"

NS(U) with ns_coefficients (a, b, c): transpose U if it is tall, X = U / max(||U||_F, eps), then
ns_steps times ``A = X Xᵀ; X = a X + (b A + c A A) X``, and transpose back.

torch runs NS in bfloat16; this reference runs it in float64 (the exact map to ~1e-15), which is
well inside the spec's bfloat16 tolerance. Only 2-D parameters are accepted, as in torch.
"""

from __future__ import annotations

import math

import numpy as np

from .base import NumpyOptimizer, nonnegative


def newton_schulz(u: np.ndarray, coefficients: tuple[float, float, float], steps: int, eps: float) -> np.ndarray:
    """The Newton–Schulz orthogonalisation of a matrix, in float64."""
    a, b, c = (float(x) for x in coefficients)
    tall = u.shape[0] > u.shape[1]
    x = np.array(u.T if tall else u, dtype=np.float64)
    x = x / max(float(np.linalg.norm(x)), eps)
    for _ in range(int(steps)):
        gram = x @ x.T
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x.T if tall else x


class Muon(NumpyOptimizer):
    """Muon, PyTorch's definition, for a list of 2-D floating-point arrays updated in place.

    The hyperparameters are plain attributes and may be changed between steps.
    """

    conformance_spec = "muon"  # the spec this class implements (how the registry finds it)

    HYPERPARAMETERS = ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps",
                       "adjust_lr_fn")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
    ):
        nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if adjust_lr_fn not in (None, "original", "match_rms_adamw"):
            raise ValueError(f"unknown adjust_lr_fn: {adjust_lr_fn!r}")
        super().__init__(params)
        for p in self.params:
            if p.ndim != 2:
                raise ValueError(f"Muon takes 2-D parameters only, got shape {p.shape}")
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.nesterov = nesterov
        self.ns_coefficients = tuple(ns_coefficients)
        self.eps = eps
        self.ns_steps = ns_steps
        self.adjust_lr_fn = adjust_lr_fn

    def _scale(self, shape: tuple[int, ...]) -> float:
        rows, cols = shape
        if self.adjust_lr_fn == "match_rms_adamw":
            return 0.2 * math.sqrt(max(rows, cols))
        return math.sqrt(max(1, rows / cols))

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        momentum = float(self.momentum)
        weight_decay = float(self.weight_decay)

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            buf = state.setdefault("momentum_buffer", np.zeros_like(theta))
            buf += (1 - momentum) * (g - buf)  # in place
            direction = g + momentum * (buf - g) if self.nesterov else buf
            o = newton_schulz(direction, self.ns_coefficients, self.ns_steps, float(self.eps))
            theta *= 1 - lr * weight_decay
            theta -= (lr * self._scale(theta.shape) * o).astype(theta.dtype)
