"""Adamax with L2 weight decay and maximize, in plain NumPy.

Kingma & Ba, "Adam: A Method for Stochastic Optimization" (arXiv:1412.6980), Algorithm 2, as
``torch.optim.Adamax`` implements it (see its documentation and ``_single_tensor_adamax`` in
torch/optim/adamax.py): ε is added to |g| *inside* the maximum, and the infinity norm is not
bias-corrected. For each parameter theta with gradient g, at its t-th step::

    g = -g                        if maximize
    g = g + weight_decay * theta                       (L2 weight decay)
    m = beta1 * m + (1 - beta1) * g                    (first moment, m_0 = 0)
    u = max(beta2 * u, |g| + eps)                      (infinity norm, u_0 = 0)
    theta = theta - (lr / (1 - beta1**t)) * m / u

The paper has no ε (u = max(beta2 * u, |g|)); Keras adds it outside: m / ((1 - beta1**t) * (u + eps)).
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


class Adamax(NumpyOptimizer):
    """Adamax, PyTorch's definition (ε inside the maximum; L2 weight decay added to the gradient).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "adamax"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
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
        weight_decay = float(self.weight_decay)

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            if weight_decay != 0:
                g = g + weight_decay * theta

            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_inf"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            m, u = state["exp_avg"], state["exp_inf"]  # updated in place

            m[...] = beta1 * m + (1 - beta1) * g
            u[...] = np.maximum(beta2 * u, np.abs(g) + eps)  # ε inside the maximum

            # The bias correction is a scalar, computed in a Python float (double precision).
            step_size = lr / (1 - beta1**t)
            theta -= step_size * (m / u)
