"""Adan (adaptive Nesterov momentum), in plain NumPy.

Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models"
(arXiv:2208.06677), as the authors' code computes it (sail-sg/Adan ``adan.py``, copied into timm
as ``timm.optim.Adan``), with the libraries' betas (the paper writes 1 − beta). For each
parameter theta with gradient g, at its t-th step::

    d = g - g_prev                   (0 at the first step: the previous gradient is g itself)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * d
    n = beta3 * n + (1 - beta3) * (g + beta2 * d)**2
    den = sqrt(n) / sqrt(1 - beta3**t) + eps
    theta = theta - lr / (1 - beta1**t) * m / den - lr * beta2 / (1 - beta2**t) * v / den
    theta = theta / (1 + lr * weight_decay)           (proximal weight decay)

The previous gradient is kept negated, as ``neg_pre_grad`` (the official code's state key).
Here every parameter counts its own steps; the official code counts per param group, which is
the same as long as no parameter skips a step and resumes.
"""

from __future__ import annotations

import math

import numpy as np

from .base import NumpyOptimizer, nonnegative


class Adan(NumpyOptimizer):
    """Adan, the official code's definition (proximal weight decay, d₁ = 0).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps.
    """

    conformance_spec = "adan"

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if len(betas) != 3 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid betas: {betas}")
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        beta1, beta2, beta3 = (float(b) for b in self.betas)
        eps = float(self.eps)
        weight_decay = float(self.weight_decay)

        for theta, g, state in self._gradients(grads):
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_diff"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros_like(theta)
                state["neg_pre_grad"] = -g  # so that the first difference is 0
            state["step"] += 1
            t = state["step"]
            m, v, n = state["exp_avg"], state["exp_avg_diff"], state["exp_avg_sq"]

            diff = g + state["neg_pre_grad"]
            m[...] = beta1 * m + (1 - beta1) * g
            v[...] = beta2 * v + (1 - beta2) * diff
            nesterov = g + beta2 * diff
            n[...] = beta3 * n + (1 - beta3) * nesterov * nesterov

            # scalars in Python floats (double precision), as the official code computes them
            den = np.sqrt(n) / math.sqrt(1 - beta3**t) + eps
            step_size = lr / (1 - beta1**t)
            step_size_diff = lr * beta2 / (1 - beta2**t)
            theta -= step_size * (m / den)
            theta -= step_size_diff * (v / den)
            theta /= 1 + lr * weight_decay

            state["neg_pre_grad"] = -g
