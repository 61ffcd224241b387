"""Adagrad with lr decay, an initial accumulator, L2 weight decay and maximize, in plain NumPy.

Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
Optimization" (JMLR 12, 2011), diagonal version, as ``torch.optim.Adagrad`` implements it (see
its documentation and ``_single_tensor_adagrad`` in torch/optim/adagrad.py). For each parameter
theta with gradient g, at its t-th step::

    g = -g                        if maximize
    g = g + weight_decay * theta                        (L2 weight decay)
    clr = lr / (1 + (t - 1) * lr_decay)                 (decayed learning rate)
    G = G + g**2                  (G_0 = initial_accumulator_value, torch's "sum")
    theta = theta - clr * g / (sqrt(G) + eps)           (eps outside the square root)

Keras, optax and d2l put eps inside the square root, and Keras/optax start the accumulator at
0.1 by default: each is a different optimizer from this one.
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, nonnegative


class Adagrad(NumpyOptimizer):
    """Adagrad, PyTorch's definition.

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps
    (``initial_accumulator_value`` is read when a parameter takes its first step). Each parameter
    keeps its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "adagrad"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps",
                       "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                    initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(
            params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        lr_decay = float(self.lr_decay)
        weight_decay = float(self.weight_decay)
        eps = float(self.eps)

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            if weight_decay != 0:
                g = g + weight_decay * theta

            if not state:
                state["step"] = 0
                state["sum"] = np.full_like(theta, float(self.initial_accumulator_value))
            state["step"] += 1
            t = state["step"]

            # The decayed learning rate is a scalar, computed in Python floats (double precision).
            clr = lr / (1 + (t - 1) * lr_decay)
            accumulator = state["sum"]  # updated in place
            accumulator += g * g
            theta -= clr * (g / (np.sqrt(accumulator) + eps))
