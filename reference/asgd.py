"""ASGD (averaged stochastic gradient descent) with weight decay and maximize, in plain NumPy.

Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging" (1992), in the form
``torch.optim.ASGD`` implements (see its documentation and ``_single_tensor_asgd`` in
torch/optim/asgd.py; the form goes back to Bottou's sgd code and Lua torch's ``optim.asgd``).
Each parameter keeps a step size eta (eta = lr before its first step), an averaging weight mu
(mu = 1 before its first step) and the average ``ax`` of its iterates (ax = 0). At its t-th step,
with gradient g::

    g = -g                       if maximize
    g = g + weight_decay * theta                   (L2 weight decay)
    theta = theta * (1 - lambd * eta)              (decay term)
    theta = theta - eta * g
    ax = ax + mu * (theta - ax)                    (ax = theta while mu == 1)
    eta = lr / (1 + lambd * lr * t) ** alpha       (for the next step)
    mu = 1 / max(1, t - t0)                        (for the next step)

So the step size of step t is lr / (1 + lambd * lr * (t - 1)) ** alpha, computed with the learning
rate of step t - 1, and ``ax`` is the running mean of the iterates from step floor(t0) + 2 on.
eta and mu are Python floats (double precision) here; torch keeps them as float32 scalars.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import NumpyOptimizer, nonnegative


class ASGD(NumpyOptimizer):
    """Averaged SGD, PyTorch's definition.

    ``params`` is a list of floating-point arrays updated in place by :meth:`step`. The
    hyperparameters are plain attributes and may be changed between steps. Each parameter keeps
    its own step count, which advances only on steps where it has a gradient.
    """

    conformance_spec = "asgd"  # the spec this class implements (how the registry finds it)

    COUNTERS = ("step",)
    SCALARS = ("eta", "mu")  # per-parameter scalars, kept as Python floats
    HYPERPARAMETERS = ("lr", "lambd", "alpha", "t0", "weight_decay", "maximize")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ):
        nonnegative(lr=lr, weight_decay=weight_decay)
        super().__init__(
            params, lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
            maximize=maximize,
        )

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One update of every parameter whose gradient is not None (in place)."""
        lr = float(self.lr)
        lambd = float(self.lambd)
        alpha = float(self.alpha)
        t0 = float(self.t0)
        weight_decay = float(self.weight_decay)

        # params without a gradient are skipped: their value, state and step count stay
        for theta, g, state in self._gradients(grads):
            if weight_decay != 0:
                g = g + weight_decay * theta

            if not state:
                state["step"] = 0
                state["eta"] = lr  # the learning rate at the parameter's first step
                state["mu"] = 1.0
                state["ax"] = np.zeros_like(theta)
            state["step"] += 1
            t = state["step"]
            eta, mu, ax = state["eta"], state["mu"], state["ax"]

            theta *= 1 - lambd * eta  # decay term
            theta -= eta * g
            if mu != 1:
                ax += mu * (theta - ax)
            else:
                ax[...] = theta  # averaging has not started: ax follows theta

            # The step size and the averaging weight of the next step, from the new count.
            state["eta"] = lr / (1 + lambd * lr * t) ** alpha
            state["mu"] = 1 / max(1.0, t - t0)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As :meth:`NumpyOptimizer.load_state_dict`, with eta and mu kept as Python floats."""
        saved = state_dict["state"]
        scalars = [{k: float(s[k]) for k in self.SCALARS if k in s} for s in saved]
        arrays = [{k: v for k, v in s.items() if k not in self.SCALARS} for s in saved]
        super().load_state_dict({**state_dict, "state": arrays})
        for state, extra in zip(self.state, scalars, strict=True):
            state.update(extra)
