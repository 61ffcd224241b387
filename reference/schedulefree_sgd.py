"""Schedule-Free SGD, in plain NumPy.

Defazio et al., "The Road Less Scheduled" (arXiv:2405.15682), as the reference implementation
``schedulefree.SGDScheduleFreeReference`` states it (explicit x, y and z; weight decay at y). One
instance is one param group; its step count k, largest scheduled lr and sum of weights advance on
every ``step()`` (see :class:`~.schedulefree_adamw.ScheduleFreeGroup`: scheduled lr_k with linear
warmup, c = weight/weight_sum with weight = k**r * lr_max**weight_lr_power). For every parameter
y with gradient g (z = x = y before its first step)::

    z = z - lr_k * (g + weight_decay * y)
    x = (1 - c) * x + c * z
    y = momentum * x + (1 - momentum) * z

The parameter array holds y (the library's parameter in train mode); x and z are in ``state``.
"""

from __future__ import annotations

import numpy as np

from .base import nonnegative
from .schedulefree_adamw import ScheduleFreeGroup


class ScheduleFreeSGD(ScheduleFreeGroup):
    """Schedule-Free SGD (schedulefree's reference algorithm; weight decay at y).

    ``params`` is a list of floating-point arrays (they hold y) updated in place by :meth:`step`.
    Hyperparameters are plain attributes and may be changed between steps.
    """

    conformance_spec = "schedulefree_sgd"

    HYPERPARAMETERS = ("lr", "momentum", "weight_decay", "warmup_steps", "r", "weight_lr_power")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
    ):
        nonnegative(lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps)
        if not 0 < momentum < 1:
            raise ValueError(f"momentum must be in (0, 1): {momentum}")
        super().__init__(params, warmup_steps, r, weight_lr_power)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One step of the group: every parameter with a gradient moves (in place)."""
        self._check_grads(grads)
        lr, c = self._advance()
        momentum, weight_decay = float(self.momentum), float(self.weight_decay)

        for y, g, state in self._gradients(grads):
            if not state:
                state["z"] = y.copy()
                state["x"] = y.copy()
            z, x = state["z"], state["x"]  # updated in place

            z -= lr * (g + weight_decay * y)
            x[...] = (1 - c) * x + c * z
            y[...] = momentum * x + (1 - momentum) * z
