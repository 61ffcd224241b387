"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize, in plain NumPy.

The update rule is PyTorch's (``torch.optim.SGD``; see its documentation and
``_single_tensor_sgd`` in torch/optim/sgd.py). For each parameter theta with gradient g, at its
t-th step::

    g = -g                       if maximize
    g = g + weight_decay * theta                  (L2 weight decay)
    if momentum != 0:
        b = g                                     on the parameter's first step (no dampening)
        b = momentum * b + (1 - dampening) * g    on later steps
        d = g + momentum * b     if nesterov
        d = b                    otherwise
    else:
        d = g
    theta = theta - lr * d

The learning rate multiplies the buffer at each step; it is not inside it (unlike the
Sutskever/Keras form v = mu * v - lr * g, which differs as soon as lr changes).
"""

from __future__ import annotations

import numpy as np

from .base import NumpyOptimizer, nonnegative


class SGD(NumpyOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, PyTorch's definition.

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps.
    """

    conformance_spec = "sgd"  # the spec this class implements (how the registry finds it)

    HYPERPARAMETERS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(
            params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        momentum = float(self.momentum)
        dampening = float(self.dampening)
        weight_decay = float(self.weight_decay)

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            if weight_decay != 0:
                g = g + weight_decay * theta

            if momentum != 0:
                if "momentum_buffer" not in state:
                    buf = np.array(g, dtype=theta.dtype)  # a copy of the first gradient, undampened
                    state["momentum_buffer"] = buf
                else:
                    buf = state["momentum_buffer"]
                    buf[...] = momentum * buf + (1 - dampening) * g  # in place
                direction = g + momentum * buf if self.nesterov else buf
            else:
                direction = g

            theta -= lr * direction
