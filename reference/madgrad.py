"""MADGRAD with L2 weight decay, in plain NumPy.

Defazio & Jelassi, "Adaptivity without Compromise: A Momentumized, Adaptive, Dual Averaged
Gradient Method for Stochastic Optimization" (arXiv:2101.11075), Algorithm 1, as the official
implementation (facebookresearch/madgrad, copied by timm) computes it. For each parameter theta
with gradient g, at its k-th step (k = 1, 2, ...)::

    g     = g + weight_decay * theta                       (L2 weight decay)
    lamb  = (lr + eps) * sqrt(k)                           (the learning rate is offset by eps)
    x0    = theta_0                                        (momentum != 0: kept from the first step)
          = theta + s / (grad_sum_sq**(1/3) + eps)         (momentum == 0: recomputed)
    grad_sum_sq = grad_sum_sq + lamb * g**2
    s           = s + lamb * g
    z     = x0 - s / (grad_sum_sq**(1/3) + eps)            (cube root)
    theta = momentum * theta + (1 - momentum) * z          (momentum == 0: theta = z)
"""

from __future__ import annotations

import math

import numpy as np

from .base import NumpyOptimizer, nonnegative


class MADGRAD(NumpyOptimizer):
    """MADGRAD, the official definition (lr + ε, cube root, iterate averaging, L2 weight decay).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "madgrad"

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "momentum", "weight_decay", "eps")

    def __init__(self, params: list[np.ndarray], lr: float = 1e-2, momentum: float = 0.9,
                 weight_decay: float = 0.0, eps: float = 1e-6):
        nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay, eps=eps)
        if momentum >= 1:
            raise ValueError(f"invalid momentum: {momentum}")
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, eps=eps)

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        eps = float(self.eps)
        lr = float(self.lr) + eps
        momentum = float(self.momentum)
        weight_decay = float(self.weight_decay)

        for theta, g, state in self._gradients(grads):
            if not state:
                state["step"] = 0
                state["grad_sum_sq"] = np.zeros_like(theta)
                state["s"] = np.zeros_like(theta)
                if momentum != 0:
                    state["x0"] = theta.copy()
            state["step"] += 1
            lamb = lr * math.sqrt(state["step"])  # a Python float, like the official code
            if weight_decay != 0:
                g = g + weight_decay * theta

            nu, s = state["grad_sum_sq"], state["s"]
            # without momentum x0 is not kept: it is recomputed from theta and the sums
            x0 = theta + s / (np.cbrt(nu) + eps) if momentum == 0 else state["x0"]
            nu += lamb * (g * g)
            s += lamb * g
            z = x0 - s / (np.cbrt(nu) + eps)
            if momentum == 0:
                theta[...] = z
            else:
                theta[...] = momentum * theta + (1 - momentum) * z
