"""Lion with decoupled weight decay and maximize, in plain NumPy.

Chen et al., "Symbolic Discovery of Optimization Algorithms" (arXiv:2302.06675), Algorithm 2, as
the authors' code and lion-pytorch (``update_fn`` in lion_pytorch/lion_pytorch.py) compute it. For
each parameter theta with gradient g (negated first if maximize)::

    theta = theta * (1 - lr * weight_decay)            (decoupled decay, current lr)
    c = beta1 * m + (1 - beta1) * g                    (interpolation, m_0 = 0)
    theta = theta - lr * sign(c)                       (sign(0) = 0: no move)
    m = beta2 * m + (1 - beta2) * g                    (momentum, kept as "exp_avg")

There is no step counter and no bias correction.
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


class Lion(NumpyOptimizer):
    """Lion: the sign of an interpolation of momentum and gradient, decoupled weight decay.

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps; the decay always uses
    the current learning rate.
    """

    conformance_spec = "lion"

    HYPERPARAMETERS = ("lr", "betas", "weight_decay", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, weight_decay=weight_decay)
        betas_in_range(betas)
        super().__init__(
            params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        beta1, beta2 = (float(b) for b in self.betas)
        decay = 1.0 - lr * float(self.weight_decay)  # a Python float, as the libraries compute it

        for theta, g, state in self._gradients(grads):
            if not state:
                state["exp_avg"] = np.zeros_like(theta)
            m = state["exp_avg"]  # updated in place

            if decay != 1.0:
                theta *= decay
            direction = np.sign(beta1 * m + (1 - beta1) * g)  # np.sign(0) == 0
            theta -= lr * direction
            m[...] = beta2 * m + (1 - beta2) * g
