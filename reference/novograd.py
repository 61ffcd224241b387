"""NovoGrad, in plain NumPy.

Ginsburg et al. (arXiv:1905.11286), Algorithm 1. Each parameter tensor is one layer with one scalar
second moment. For a parameter theta with gradient g, at its t-th step::

    n2 = sum(g**2)                                   (the tensor's squared norm)
    v = n2                               if t == 1
    v = beta2 * v + (1 - beta2) * n2     otherwise
    d = g / (sqrt(v) + eps) + weight_decay * theta
    m = d                                if t == 1
    m = beta1 * m + c * d                otherwise   (c = 1 - beta1 with grad_averaging, else 1)
    theta = theta - lr * m
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


class NovoGrad(NumpyOptimizer):
    """NovoGrad with the paper's first step (v₁ = ‖g₁‖², m₁ = d₁) and optional grad averaging.

    The per-tensor second moment is kept as a 0-d array ``exp_avg_sq``.
    """

    conformance_spec = "novograd"

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "grad_averaging")

    def __init__(self, params, lr=1e-3, betas=(0.95, 0.98), eps=1e-8, weight_decay=0.0,
                 grad_averaging=False):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        betas_in_range(betas)
        super().__init__(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            grad_averaging=grad_averaging,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        lr = float(self.lr)
        beta1, beta2 = (float(b) for b in self.betas)
        eps = float(self.eps)
        weight_decay = float(self.weight_decay)

        for theta, g, state in self._gradients(grads):
            first = not state
            if first:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros((), dtype=theta.dtype)
            state["step"] += 1
            n2 = np.sum(g * g)
            if first:
                state["exp_avg_sq"] = np.asarray(n2, dtype=theta.dtype)
            else:
                state["exp_avg_sq"] = np.asarray(beta2 * state["exp_avg_sq"] + (1 - beta2) * n2,
                                                 dtype=theta.dtype)
            d = g / (np.sqrt(state["exp_avg_sq"]) + eps)
            if weight_decay != 0:
                d = d + weight_decay * theta
            m = state["exp_avg"]
            if first:
                m[...] = d
            else:
                c = (1 - beta1) if self.grad_averaging else 1.0
                m[...] = beta1 * m + c * d
            theta -= lr * m
