"""Adam with L2 weight decay, AMSGrad and maximize, in plain NumPy.

Kingma & Ba, "Adam: A Method for Stochastic Optimization" (arXiv:1412.6980), Algorithm 1, as
``torch.optim.Adam`` implements it (see its documentation and ``_single_tensor_adam`` in
torch/optim/adam.py). For each parameter theta with gradient g, at its t-th step::

    g = -g                        if maximize
    g = g + weight_decay * theta                       (L2 weight decay, Adam only)
    m = beta1 * m + (1 - beta1) * g                    (first moment, m_0 = 0)
    v = beta2 * v + (1 - beta2) * g**2                 (second moment, v_0 = 0)
    v_max = max(v_max, v)         if amsgrad           (the raw v, bias-corrected below)
    bc1 = 1 - beta1**t,  bc2 = 1 - beta2**t
    denom = sqrt(v_max or v) / sqrt(bc2) + eps         (eps added to the corrected sqrt)
    theta = theta - (lr / bc1) * m / denom

i.e. theta -= lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m / bc1, v_hat = v / bc2.
AdamW (``adamw.py``) is the same class with the L2 line replaced by decoupled decay.
"""

from __future__ import annotations

import math

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


class Adam(NumpyOptimizer):
    """Adam, PyTorch's definition (L2 weight decay added to the gradient).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "adam"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")

    #: False: weight decay is L2 (g += wd * theta). True: decoupled (theta *= 1 - lr * wd).
    decoupled_weight_decay = False

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        betas_in_range(betas)
        super().__init__(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
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
                if self.decoupled_weight_decay:
                    theta *= 1 - lr * weight_decay  # AdamW: shrink theta before the step
                else:
                    g = g + weight_decay * theta  # Adam: L2 penalty in the gradient

            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(theta)
                state["exp_avg_sq"] = np.zeros_like(theta)
            if self.amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]  # updated in place

            m[...] = beta1 * m + (1 - beta1) * g
            v[...] = beta2 * v + (1 - beta2) * (g * g)
            if self.amsgrad:
                v_max = state["max_exp_avg_sq"]
                v_max[...] = np.maximum(v_max, v)  # the maximum of the raw second moment
                v_used = v_max
            else:
                v_used = v

            # Bias corrections are scalars, computed in Python floats (double precision).
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            step_size = lr / bias_correction1
            denom = np.sqrt(v_used) / math.sqrt(bias_correction2) + eps
            theta -= step_size * (m / denom)
