"""Adafactor in plain NumPy: factored second moment, relative step size, update clipping.

Shazeer & Stern (arXiv:1804.04235) without first moment, as ``torch.optim.Adafactor`` defines it.
For each parameter theta (n elements) with gradient g, at its t-th step::

    g = -g                                   if maximize
    w = t ** beta2_decay                     (1 - beta2_hat_t; 1 at t = 1)
    rho = min(lr, 1 / sqrt(t))
    alpha = max(eps2, rms(theta)) * rho      rms(x) = sqrt(mean(x**2)), theta before the decay
    theta = theta * (1 - lr * weight_decay)
    if theta has >= 2 dimensions:            factor the last two dimensions
        R = R + w * (mean(g**2, axis=-1) - R)            row means,    shape (..., m, 1)
        C = C + w * (mean(g**2, axis=-2) - C)            column means, shape (..., 1, n)
        V_hat = R @ C / max(mean(R, axis=-2), eps1)
    else:
        V = V + w * (g**2 - V)
        V_hat = V
    u = g / sqrt(max(V_hat, eps1**2))
    theta = theta - alpha / max(1, rms(u) / d) * u

eps1 = None means the dtype's machine epsilon (numpy.finfo(theta.dtype).eps), as in torch.
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, nonnegative


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


class Adafactor(NumpyOptimizer):
    """Adafactor, PyTorch's definition; ``params`` updated in place by :meth:`step`."""

    conformance_spec = "adafactor"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "beta2_decay", "eps", "d", "weight_decay", "maximize")

    def __init__(self, params: list[np.ndarray], lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0,
                 maximize: bool = False):
        nonnegative(lr=lr, weight_decay=weight_decay, eps2=eps[1])
        if eps[0] is not None:
            nonnegative(eps1=eps[0])
        if beta2_decay > 0:
            raise ValueError(f"beta2_decay must be <= 0, got {beta2_decay}")
        if d < 1:
            raise ValueError(f"clipping threshold d must be >= 1, got {d}")
        super().__init__(
            params, lr=lr, beta2_decay=beta2_decay, eps=tuple(eps), d=d, weight_decay=weight_decay,
            maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        lr, d, wd = float(self.lr), float(self.d), float(self.weight_decay)
        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            eps1 = np.finfo(theta.dtype).eps if self.eps[0] is None else float(self.eps[0])
            eps2 = float(self.eps[1])
            factored = theta.ndim >= 2
            if not state:
                state["step"] = 0
                if factored:
                    state["row_var"] = np.zeros(theta.shape[:-1] + (1,), dtype=theta.dtype)
                    state["col_var"] = np.zeros(theta.shape[:-2] + (1,) + theta.shape[-1:], dtype=theta.dtype)
                else:
                    state["variance"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            w = t ** float(self.beta2_decay)
            rho = min(lr, 1 / t**0.5)
            alpha = max(eps2, rms(theta)) * rho
            if wd != 0:
                theta *= 1 - lr * wd
            g2 = g * g
            if factored:
                row, col = state["row_var"], state["col_var"]
                row += w * (g2.mean(axis=-1, keepdims=True) - row)
                col += w * (g2.mean(axis=-2, keepdims=True) - col)
                v_hat = (row @ col) / np.maximum(row.mean(axis=-2, keepdims=True), eps1)
            else:
                v = state["variance"]
                v += w * (g2 - v)
                v_hat = v
            u = g / np.sqrt(np.maximum(v_hat, eps1 * eps1))
            theta -= (alpha / max(1.0, rms(u) / d)) * u
