"""RMSprop with centering, momentum, L2 weight decay and maximize, in plain NumPy.

Hinton's RMSprop, centered as in Graves (arXiv:1308.0850), as ``torch.optim.RMSprop``
implements it (see its documentation and ``_single_tensor_rmsprop`` in torch/optim/rmsprop.py).
For each parameter theta with gradient g, at its t-th step::

    g = -g                        if maximize
    g = g + weight_decay * theta                         (L2 weight decay)
    v = alpha * v + (1 - alpha) * g**2                   (mean square, v_0 = 0)
    if centered:
        g_avg = alpha * g_avg + (1 - alpha) * g          (mean gradient, g_avg_0 = 0)
        a = sqrt(v - g_avg**2) + eps
    else:
        a = sqrt(v) + eps                                (eps outside the square root)
    if momentum > 0:
        b = momentum * b + g / a                         (b_0 = 0)
        theta = theta - lr * b                           (lr outside the buffer)
    else:
        theta = theta - lr * g / a

TensorFlow/Keras put eps inside the square root, start the mean square at 1 (TF1) and put the
learning rate inside the momentum buffer: each is a different optimizer from this one.
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, nonnegative


class RMSprop(NumpyOptimizer):
    """RMSprop, PyTorch's definition.

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "rmsprop"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    HYPERPARAMETERS = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay, momentum=momentum)
        if not 0 <= alpha <= 1:
            raise ValueError(f"invalid alpha: {alpha}")
        super().__init__(
            params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered, maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        alpha = float(self.alpha)
        eps = float(self.eps)
        weight_decay = float(self.weight_decay)
        momentum = float(self.momentum)

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            if weight_decay != 0:
                g = g + weight_decay * theta

            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(theta)
            if momentum > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = np.zeros_like(theta)
            if self.centered and "grad_avg" not in state:
                state["grad_avg"] = np.zeros_like(theta)
            state["step"] += 1

            v = state["square_avg"]  # updated in place
            v[...] = alpha * v + (1 - alpha) * (g * g)
            if self.centered:
                g_avg = state["grad_avg"]
                g_avg[...] = alpha * g_avg + (1 - alpha) * g
                denom = np.sqrt(v - g_avg * g_avg) + eps  # the variance estimate
            else:
                denom = np.sqrt(v) + eps

            if momentum > 0:
                buf = state["momentum_buffer"]
                buf[...] = momentum * buf + g / denom
                theta -= lr * buf
            else:
                theta -= lr * (g / denom)
