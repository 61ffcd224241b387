"""RAdam (rectified Adam), in plain NumPy.

Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (arXiv:1908.03265),
Algorithm 2, as ``torch.optim.RAdam`` implements it (see its documentation and
``_single_tensor_radam`` in torch/optim/radam.py): rectify when rho_t > 5 (the paper says 4), and
add eps to the raw sqrt(v) in the rectified step. For each parameter theta with gradient g, at
its t-th step::

    g = -g                        if maximize
    theta = theta * (1 - lr * weight_decay)            if decoupled_weight_decay (RAdamW)
    g = g + weight_decay * theta                       otherwise (L2)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    m_hat = m / (1 - beta1**t)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if rho_t > 5:
        r = sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        theta = theta - lr * r * m_hat * sqrt(1 - beta2**t) / (sqrt(v) + eps)
    else:
        theta = theta - lr * m_hat                     (SGD with bias-corrected momentum)

rho_t < t for every beta2, so the first rectified step is t = 6 at the earliest.
"""

from __future__ import annotations

import math

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative

#: rectify when the length of the approximated simple moving average exceeds this
THRESHOLD = 5.0


class RAdam(NumpyOptimizer):
    """RAdam, PyTorch's definition (threshold 5, eps on the raw sqrt(v); L2 or decoupled decay).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient, and decides its
    own branch.
    """

    conformance_spec = "radam"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        betas_in_range(betas)
        super().__init__(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        beta1, beta2 = (float(b) for b in self.betas)
        eps = float(self.eps)
        weight_decay = float(self.weight_decay)
        rho_inf = 2 / (1 - beta2) - 1

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            if weight_decay != 0:
                if self.decoupled_weight_decay:
                    theta *= 1 - lr * weight_decay  # RAdamW: shrink theta before the step
                else:
                    g = g + weight_decay * theta  # L2 penalty in the gradient

            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]  # updated in place

            m[...] = beta1 * m + (1 - beta1) * g
            v[...] = beta2 * v + (1 - beta2) * (g * g)

            # Scalars in Python floats (double precision), as torch computes them.
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            rho_t = rho_inf - 2 * t * beta2**t / bias_correction2
            if rho_t > THRESHOLD:
                rect = math.sqrt(
                    (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
                )
                step_size = lr * rect * math.sqrt(bias_correction2) / bias_correction1
                theta -= step_size * (m / (np.sqrt(v) + eps))
            else:
                theta -= lr * (m / bias_correction1)  # SGD with the bias-corrected momentum m_hat
