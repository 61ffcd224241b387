"""NAdam (Nesterov-accelerated Adam) with momentum decay, in plain NumPy.

Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop), as ``torch.optim.NAdam``
implements it (see its documentation and ``_single_tensor_nadam`` in torch/optim/nadam.py). For
each parameter theta with gradient g, at its t-th step::

    g = -g                        if maximize
    theta = theta * (1 - lr * weight_decay)            if decoupled_weight_decay (NAdamW)
    g = g + weight_decay * theta                       otherwise (L2)
    mu      = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))        (momentum cache)
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    mu_product = mu_product * mu                       (one number per parameter, starts at 1)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    denom = sqrt(v / (1 - beta2**t)) + eps
    theta = theta - lr * (1 - mu) / (1 - mu_product) * g / denom
                  - lr * mu_next / (1 - mu_product * mu_next) * m / denom

The caches and their product are Python floats (double precision): this is the exact rule. torch
keeps ``mu_product`` as a float32 0-d tensor instead, which the conformance suite reports as the
acceptable finding ``nadam.float32_mu_product`` in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


class NAdam(NumpyOptimizer):
    """NAdam, PyTorch's definition (momentum decay schedule; L2 or decoupled weight decay).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count and μ product, which advance only on steps where it has a gradient.
    """

    conformance_spec = "nadam"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "momentum_decay",
                       "decoupled_weight_decay", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay)
        betas_in_range(betas)
        super().__init__(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        beta1, beta2 = (float(b) for b in self.betas)
        eps = float(self.eps)
        weight_decay = float(self.weight_decay)
        momentum_decay = float(self.momentum_decay)

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            if weight_decay != 0:
                if self.decoupled_weight_decay:
                    theta *= 1 - lr * weight_decay  # NAdamW: shrink theta before the step
                else:
                    g = g + weight_decay * theta  # L2 penalty in the gradient

            if not state:
                state["step"] = 0
                state["mu_product"] = 1.0  # a Python float: the exact product of the caches
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]  # updated in place

            mu = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
            mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
            state["mu_product"] *= mu
            mu_product = state["mu_product"]

            m[...] = beta1 * m + (1 - beta1) * g
            v[...] = beta2 * v + (1 - beta2) * (g * g)
            denom = np.sqrt(v / (1 - beta2**t)) + eps
            # m_hat = mu_next * m / (1 - mu_product * mu_next) + (1 - mu) * g / (1 - mu_product)
            theta -= (lr * (1 - mu) / (1 - mu_product)) * (g / denom)
            theta -= (lr * mu_next / (1 - mu_product * mu_next)) * (m / denom)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As the base class, keeping each parameter's μ product a Python float."""
        products = [s.get("mu_product") for s in state_dict["state"]]
        arrays = [{k: v for k, v in s.items() if k != "mu_product"} for s in state_dict["state"]]
        super().load_state_dict({**state_dict, "state": arrays})
        for s, product in zip(self.state, products, strict=True):
            if product is not None:
                s["mu_product"] = float(product)
