"""LAMB (layer-wise adaptive moments for batch training), in plain NumPy.

You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes"
(arXiv:1904.00962, v5, Algorithm 2) with φ the identity. Each parameter tensor is one layer. For a
parameter theta with gradient g, at its t-th step::

    m = beta1 * m + (1 - beta1) * g                    (m_0 = 0)
    v = beta2 * v + (1 - beta2) * g**2                 (v_0 = 0)
    r = (m / (1 - beta1**t)) / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    u = r + weight_decay * theta
    ratio = ||theta|| / ||u||      (1 if either norm is 0; ||.|| the norm of the whole tensor)
    theta = theta - lr * ratio * u
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


class Lamb(NumpyOptimizer):
    """LAMB, the paper's definition (bias-corrected Adam direction, λθ inside the trust ratio, no clamp).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`; the
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps its
    own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "lamb"

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        betas_in_range(betas)
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        beta1, beta2 = (float(b) for b in self.betas)
        eps = float(self.eps)
        weight_decay = float(self.weight_decay)

        for theta, g, state in self._gradients(grads):
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]

            m[...] = beta1 * m + (1 - beta1) * g
            v[...] = beta2 * v + (1 - beta2) * g * g

            # the bias corrections are scalars, computed in double precision
            bias_correction1 = 1 - beta1**t
            sqrt_bias_correction2 = np.sqrt(1 - beta2**t)
            r = (m / bias_correction1) / (np.sqrt(v) / sqrt_bias_correction2 + eps)
            update = r + weight_decay * theta

            weight_norm = np.linalg.norm(theta)
            update_norm = np.linalg.norm(update)
            ratio = 1.0 if weight_norm == 0 or update_norm == 0 else weight_norm / update_norm
            theta -= (lr * ratio) * update
