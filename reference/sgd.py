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

from typing import Any

import numpy as np


class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum, PyTorch's definition.

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps.
    """

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
        if lr < 0:
            raise ValueError(f"invalid learning rate: {lr}")
        if momentum < 0:
            raise ValueError(f"invalid momentum: {momentum}")
        if weight_decay < 0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.params = _check_params(params)
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.weight_decay = weight_decay
        self.nesterov = nesterov
        self.maximize = maximize
        # Per parameter: {} until momentum is used, then {"momentum_buffer": b}.
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradients, got {len(grads)}")
        lr = float(self.lr)
        momentum = float(self.momentum)
        dampening = float(self.dampening)
        weight_decay = float(self.weight_decay)

        for theta, grad, state in zip(self.params, grads, self.state, strict=True):
            if grad is None:
                continue  # no gradient: neither the parameter nor its buffer moves
            # g is only read, never written: the caller's gradient is an input.
            g = np.asarray(grad, dtype=theta.dtype)
            if g.shape != theta.shape:
                raise ValueError(f"gradient shape {g.shape} != parameter shape {theta.shape}")
            if self.maximize:
                g = -g
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

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state, as independent copies."""
        return {
            "hyperparameters": {name: getattr(self, name) for name in self.HYPERPARAMETERS},
            "state": [{k: v.copy() for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (for the same list of parameters)."""
        for name in self.HYPERPARAMETERS:
            setattr(self, name, state_dict["hyperparameters"][name])
        saved = state_dict["state"]
        if len(saved) != len(self.params):
            raise ValueError(f"state of {len(saved)} params for {len(self.params)} params")
        self.state = [
            {k: np.array(v, dtype=p.dtype).reshape(p.shape) for k, v in s.items()}
            for s, p in zip(saved, self.params, strict=True)
        ]


def _check_params(params: list[np.ndarray]) -> list[np.ndarray]:
    params = list(params)
    for p in params:
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
            raise TypeError(f"params must be floating-point np.ndarray, got {type(p).__name__}")
    return params
