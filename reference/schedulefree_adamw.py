"""Schedule-Free AdamW, in plain NumPy.

Defazio et al., "The Road Less Scheduled" (arXiv:2405.15682), as the reference implementation
``schedulefree.AdamWScheduleFreeReference`` states it (explicit x, y and z; weight decay at y).
One instance is one param group: the step count k, the largest scheduled lr and the sum of the
averaging weights belong to the group and advance on every ``step()``. At the group's k-th step
(k = 1, 2, ...)::

    lr_k   = lr * k / warmup_steps   if k < warmup_steps,  else lr
    lr_max = max(lr_max, lr_k)                               (lr_max starts at -1)
    weight = k**r * lr_max**weight_lr_power
    weight_sum += weight;  c = weight / weight_sum

and for every parameter y with gradient g (z = x = y before its first step, v = 0)::

    v = beta2 * v + (1 - beta2) * g**2
    z = z - lr_k * (g / (sqrt(v / (1 - beta2**k)) + eps) + weight_decay * y)
    x = (1 - c) * x + c * z
    y = beta1 * x + (1 - beta1) * z

The parameter array holds y (the library's parameter in train mode); x and z are kept in
``state`` under the names schedulefree uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import NumpyOptimizer, betas_in_range, nonnegative


def scheduled_lr(lr: float, k: int, warmup_steps: int) -> float:
    """The learning rate of the k-th step (k ≥ 1): linear warmup over ``warmup_steps`` steps."""
    return lr * k / warmup_steps if k < warmup_steps else lr


class ScheduleFreeGroup(NumpyOptimizer):
    """What both Schedule-Free references share: the group's counters and the averaging weight."""

    GROUP_STATE = ("k", "lr_max", "weight_sum")

    def __init__(self, params: list[np.ndarray], warmup_steps: int, r: float, weight_lr_power: float):
        super().__init__(
            params, warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power, k=0,
            lr_max=-1.0, weight_sum=0.0,
        )

    def _advance(self) -> tuple[float, float]:
        """Count the group's step; returns (scheduled lr, averaging coefficient c)."""
        self.k += 1
        lr = scheduled_lr(float(self.lr), self.k, int(self.warmup_steps))
        self.lr_max = max(self.lr_max, lr)
        weight = self.k ** float(self.r) * self.lr_max ** float(self.weight_lr_power)
        self.weight_sum += weight
        return lr, weight / self.weight_sum

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["group"] = {name: getattr(self, name) for name in self.GROUP_STATE}
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for name in self.GROUP_STATE:
            setattr(self, name, state_dict["group"][name])


class ScheduleFreeAdamW(ScheduleFreeGroup):
    """Schedule-Free AdamW (schedulefree's reference algorithm; weight decay at y).

    ``params`` is a list of floating-point arrays (they hold y) updated in place by :meth:`step`.
    Hyperparameters are plain attributes and may be changed between steps.
    """

    conformance_spec = "schedulefree_adamw"

    HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "warmup_steps", "r", "weight_lr_power")

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
    ):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps)
        betas_in_range(betas)
        super().__init__(params, warmup_steps, r, weight_lr_power)
        self.lr = lr
        self.betas = tuple(betas)
        self.eps = eps
        self.weight_decay = weight_decay

    def step(self, grads: list[np.ndarray | None]) -> None:
        """One step of the group: every parameter with a gradient moves (in place)."""
        self._check_grads(grads)
        lr, c = self._advance()
        beta1, beta2 = (float(b) for b in self.betas)
        eps, weight_decay = float(self.eps), float(self.weight_decay)
        bias_correction2 = 1 - beta2**self.k

        for y, g, state in self._gradients(grads):
            if not state:
                state["z"] = y.copy()
                state["x"] = y.copy()
                state["exp_avg_sq"] = np.zeros_like(y)
            z, x, v = state["z"], state["x"], state["exp_avg_sq"]  # updated in place

            v[...] = beta2 * v + (1 - beta2) * g * g
            direction = g / (np.sqrt(v / bias_correction2) + eps) + weight_decay * y
            z -= lr * direction
            x[...] = (1 - c) * x + c * z
            y[...] = beta1 * x + (1 - beta1) * z
