"""Adadelta with a learning rate, L2 weight decay and maximize, in plain NumPy.

Zeiler, "ADADELTA: An Adaptive Learning Rate Method" (arXiv:1212.5701), Algorithm 1, as
``torch.optim.Adadelta`` implements it (see its documentation and ``_single_tensor_adadelta`` in
torch/optim/adadelta.py). For each parameter theta with gradient g, at its t-th step::

    g = -g                        if maximize
    g = g + weight_decay * theta                        (L2 weight decay)
    v = rho * v + (1 - rho) * g**2                      (square_avg, v_0 = 0)
    delta = sqrt(u + eps) / sqrt(v + eps) * g           (u of the previous step, u_0 = 0)
    u = rho * u + (1 - rho) * delta**2                  (acc_delta)
    theta = theta - lr * delta

The paper has no learning rate (lr = 1, torch's default); lr scales the step only, it is not
accumulated in u.
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, nonnegative


class Adadelta(NumpyOptimizer):
    """Adadelta, PyTorch's definition.

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "adadelta"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "rho", "eps", "weight_decay", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0 <= rho <= 1:
            raise ValueError(f"invalid rho: {rho}")
        super().__init__(
            params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        rho = float(self.rho)
        eps = float(self.eps)
        weight_decay = float(self.weight_decay)

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            if weight_decay != 0:
                g = g + weight_decay * theta

            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(theta)
                state["acc_delta"] = np.zeros_like(theta)
            state["step"] += 1
            v, u = state["square_avg"], state["acc_delta"]  # updated in place

            v[...] = rho * v + (1 - rho) * (g * g)
            delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g  # RMS[delta]_{t-1} / RMS[g]_t * g
            u[...] = rho * u + (1 - rho) * (delta * delta)
            theta -= lr * delta
