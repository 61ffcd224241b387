"""Schedule-Free SGD as schedulefree's reference class computes it, and one mutant per variant.

:class:`ScheduleFreeSGD` is a readable transcription of
``schedulefree.SGDScheduleFreeReference.step`` (explicit ``x``, ``y`` and ``z``; weight decay at
y, added to the gradient), already in train mode: the parameter holds y. ``k``, ``lr_max`` and
``weight_sum`` live in the param group, as in the library. Each mutant overrides the one method
holding the formula its variant changes (see ``derivations/schedulefree_sgd.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor


class ScheduleFreeSGD(torch.optim.Optimizer):
    """The spec: schedulefree's reference Schedule-Free SGD (decay at y), in train mode."""

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0, r=0.0,
                 weight_lr_power=2.0):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_steps=warmup_steps,
                        r=r, weight_lr_power=weight_lr_power, k=0, lr_max=-1.0, weight_sum=0.0)
        super().__init__(params, defaults)

    # -- the formulas the variants change --------------------------------------------------------
    def _scheduled_lr(self, group: dict, k: int) -> float:
        """γ·min(k/W, 1) for the k-th step (k ≥ 1)."""
        sched = k / group["warmup_steps"] if k < group["warmup_steps"] else 1.0
        return group["lr"] * sched

    def _z_lr(self, group: dict, k: int, lr: float) -> float:
        """The lr the z step uses: the scheduled lr."""
        return lr

    def _weight(self, group: dict, k: int, lr: float, lr_max: float) -> float:
        """w = kʳ·γ_maxᴾ."""
        return (k ** group["r"]) * (lr_max ** group["weight_lr_power"])

    def _direction(self, group: dict, grad: Tensor, y: Tensor, z: Tensor) -> Tensor:
        """g + λ·y."""
        return grad.add(y, alpha=group["weight_decay"]) if group["weight_decay"] != 0 else grad

    # -- the step -----------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            momentum = group["momentum"]
            k = group["k"] + 1
            lr = self._scheduled_lr(group, k)
            lr_max = group["lr_max"] = max(lr, group["lr_max"])
            weight = self._weight(group, k, lr, lr_max)
            weight_sum = group["weight_sum"] = group["weight_sum"] + weight
            ckp = weight / weight_sum
            z_lr = self._z_lr(group, k, lr)
            for y in group["params"]:
                if y.grad is None:
                    continue
                state = self.state[y]
                if len(state) == 0:
                    state["z"] = y.clone()
                    state["x"] = y.clone()
                z, x = state["z"], state["x"]
                z.sub_(self._direction(group, y.grad, y, z), alpha=z_lr)
                x.mul_(1 - ckp).add_(z, alpha=ckp)
                y.copy_(x.mul(momentum).add_(z, alpha=1 - momentum))
            group["k"] = k
        return loss


class DecayAtZ(ScheduleFreeSGD):
    """schedulefree_sgd.decay_at_z: z ← z − γ·(g + λ·z) (ScheduleFreeWrapper around a decaying SGD)."""

    def _direction(self, group, grad, y, z):
        return grad.add(z, alpha=group["weight_decay"]) if group["weight_decay"] != 0 else grad


class NoR(ScheduleFreeSGD):
    """schedulefree_sgd.no_r: w = γ_maxᴾ (optax)."""

    def _weight(self, group, k, lr, lr_max):
        return lr_max ** group["weight_lr_power"]


class ZeroBasedWarmup(ScheduleFreeSGD):
    """schedulefree_sgd.zero_based_warmup: the z step uses γ·min((t − 1)/W, 1) (optax)."""

    def _z_lr(self, group, k, lr):
        return self._scheduled_lr(group, k - 1)


class CurrentLrWeight(ScheduleFreeSGD):
    """schedulefree_sgd.current_lr_weight: w = tʳ·γ_tᴾ (heavyball)."""

    def _weight(self, group, k, lr, lr_max):
        return (k ** group["r"]) * (lr ** group["weight_lr_power"])


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"schedulefree_sgd": ScheduleFreeSGD}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("schedulefree_sgd", "schedulefree_sgd.decay_at_z"): DecayAtZ,
    ("schedulefree_sgd", "schedulefree_sgd.no_r"): NoR,
    ("schedulefree_sgd", "schedulefree_sgd.zero_based_warmup"): ZeroBasedWarmup,
    ("schedulefree_sgd", "schedulefree_sgd.current_lr_weight"): CurrentLrWeight,
}
