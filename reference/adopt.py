"""ADOPT with clipping (v2), in plain NumPy.

Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any β₂ with the Optimal Rate"
(arXiv:2411.02853v2), as the authors' code computes it (github.com/iShohei220/adopt,
``_single_tensor_adopt``; timm's ``Adopt`` with ``clip_exp=0.25``). For each parameter theta
with gradient g, at its t-th step (t from 1)::

    g = -g                                   if maximize
    g = g + weight_decay * theta             unless weight_decouple (L2, at every step)
    t == 1:  v = g * g                       and nothing else
    t >= 2:  theta = theta - lr * weight_decay * theta          if weight_decouple
             c = (t - 1) ** 0.25
             g_hat = clip(g / max(sqrt(v), eps), -c, c)         (v of the previous step)
             m = beta1 * m + (1 - beta1) * g_hat
             theta = theta - lr * m
             v = beta2 * v + (1 - beta2) * g * g
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


class ADOPT(NumpyOptimizer):
    """ADOPT, the official code's definition (clip value (t − 1)^¼, v used one step late).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "adopt"

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "weight_decouple", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.9999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        weight_decouple: bool = False,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        betas_in_range(betas)
        super().__init__(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            weight_decouple=weight_decouple, maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        beta1, beta2 = (float(b) for b in self.betas)
        eps = float(self.eps)
        weight_decay = float(self.weight_decay)

        for theta, g, state in self._gradients(grads):
            if weight_decay != 0 and not self.weight_decouple:
                g = g + weight_decay * theta

            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]

            if t == 1:  # the first gradient only initialises the second moment
                v[...] = g * g
                continue

            if weight_decay != 0 and self.weight_decouple:
                theta -= (lr * weight_decay) * theta

            clip = (t - 1) ** 0.25
            g_hat = np.clip(g / np.maximum(np.sqrt(v), eps), -clip, clip)
            m[...] = beta1 * m + (1 - beta1) * g_hat
            theta -= lr * m
            v[...] = beta2 * v + (1 - beta2) * (g * g)
