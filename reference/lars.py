"""LARS (layer-wise adaptive rate scaling), in plain NumPy.

You, Gitman, Ginsburg, "Large Batch Training of Convolutional Networks" (arXiv:1708.03888),
Algorithm 1. Each parameter tensor is one layer. For a parameter theta with gradient g::

    local_lr = trust_coefficient * ||theta|| / (||g|| + weight_decay * ||theta||)
               (1 if ||theta|| or ||g|| is 0; ||.|| the norm of the whole tensor)
    velocity = momentum * velocity + lr * local_lr * (g + weight_decay * theta)    (velocity_0 = 0)
    theta = theta - velocity

The learning rate is inside the velocity, as in the paper (not torch SGD's buffer).
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, nonnegative


class LARS(NumpyOptimizer):
    """LARS, the paper's definition (η‖θ‖/(‖g‖ + λ‖θ‖) per tensor, learning rate inside the velocity).

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`; the
    hyperparameters are plain attributes and may be changed between steps.
    """

    conformance_spec = "lars"

    HYPERPARAMETERS = ("lr", "momentum", "weight_decay", "trust_coefficient")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
    ):
        nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient)
        super().__init__(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        momentum = float(self.momentum)
        weight_decay = float(self.weight_decay)
        trust_coefficient = float(self.trust_coefficient)

        for theta, g, state in self._gradients(grads):
            weight_norm = np.linalg.norm(theta)
            grad_norm = np.linalg.norm(g)
            if weight_norm == 0 or grad_norm == 0:
                local_lr = 1.0
            else:
                local_lr = trust_coefficient * weight_norm / (grad_norm + weight_decay * weight_norm)
            step = (lr * local_lr) * (g + weight_decay * theta)
            if momentum != 0:
                if "velocity" not in state:
                    state["velocity"] = np.zeros_like(theta)
                velocity = state["velocity"]
                velocity[...] = momentum * velocity + step
                step = velocity
            theta -= step
