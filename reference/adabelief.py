"""AdaBelief with decoupled weight decay and maximize, in plain NumPy.

Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients"
(arXiv:2010.07468), Algorithm 2, as the official code (adabelief_pytorch, rectify off) and timm's
``_single_tensor_adabelief`` compute it. For each parameter theta with gradient g (negated first
if maximize), at its t-th step::

    theta = theta * (1 - lr * weight_decay)                    (decoupled decay)
    m = beta1 * m + (1 - beta1) * g                            (m_0 = 0, "exp_avg")
    s = beta2 * s + (1 - beta2) * (g - m)**2 + eps             (s_0 = 0, "exp_avg_var": eps stays in s)
    theta = theta - lr / (1 - beta1**t) * m / (sqrt(s) / sqrt(1 - beta2**t) + eps)

The residual g - m uses the updated m. No rectification.
"""

from __future__ import annotations

import math

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


class AdaBelief(NumpyOptimizer):
    """AdaBelief: Adam whose second moment is that of the residual g − m, ε accumulated in it.

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "adabelief"

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-16,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        betas_in_range(betas)
        super().__init__(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        beta1, beta2 = (float(b) for b in self.betas)
        eps = float(self.eps)
        decay = 1.0 - lr * float(self.weight_decay)

        for theta, g, state in self._gradients(grads):
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_var"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            m, s = state["exp_avg"], state["exp_avg_var"]  # updated in place

            if decay != 1.0:
                theta *= decay
            m[...] = beta1 * m + (1 - beta1) * g
            residual = g - m
            s[...] = beta2 * s + (1 - beta2) * residual * residual
            s += eps  # in place: ε accumulates in the state

            # scalars in Python floats (double precision), as the libraries compute them
            bias_correction1 = 1 - beta1**t
            sqrt_bias_correction2 = math.sqrt(1 - beta2**t)
            denom = np.sqrt(s) / sqrt_bias_correction2 + eps
            theta -= (lr / bias_correction1) * (m / denom)
