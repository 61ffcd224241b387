"""Schedule-Free AdamW as schedulefree's reference class computes it, and one mutant per variant.

:class:`ScheduleFreeAdamW` is a readable transcription of
``schedulefree.AdamWScheduleFreeReference.step`` (explicit ``x``, ``y`` and ``z``; weight decay at
y), already in train mode: the parameter holds y. The step count ``k``, ``lr_max`` and
``weight_sum`` live in the param group, as in the library. Each mutant overrides the one method
holding the formula its variant changes (see ``derivations/schedulefree_adamw.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class ScheduleFreeAdamW(torch.optim.Optimizer):
    """The spec: schedulefree's reference Schedule-Free AdamW (decay at y), in train mode."""

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 warmup_steps=0, r=0.0, weight_lr_power=2.0):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps,
                        r=r, weight_lr_power=weight_lr_power, k=0, lr_max=-1.0, weight_sum=0.0)
        super().__init__(params, defaults)

    # -- the formulas the variants change --------------------------------------------------------
    def _scheduled_lr(self, group: dict, k: int) -> float:
        """γ·min(k/W, 1) (k ≥ 1), computed as schedulefree does: (k + 1)/W for the 0-based k."""
        sched = k / group["warmup_steps"] if k < group["warmup_steps"] else 1.0
        return group["lr"] * sched

    def _z_lr(self, group: dict, k: int, lr: float) -> float:
        """The lr the z step (gradient and decay) uses: the scheduled lr."""
        return lr

    def _weight(self, group: dict, k: int, lr: float, lr_max: float) -> float:
        """w = kʳ·γ_maxᴾ."""
        return (k ** group["r"]) * (lr_max ** group["weight_lr_power"])

    def _ckp(self, weight: float, weight_sum: float, k: int) -> float:
        """c = w/Σw."""
        return weight / weight_sum

    def _second_moment_hat(self, v: Tensor, bias_correction2: float) -> Tensor:
        """v/(1 − β₂ᵏ)."""
        return v.div(bias_correction2)

    def _decay(self, group: dict, y: Tensor, z: Tensor, x: Tensor, lr: float) -> None:
        """z ← z − γλ·y (decay at y)."""
        if group["weight_decay"] != 0:
            z.sub_(y, alpha=lr * group["weight_decay"])

    def _recover_x(self, y: Tensor, z: Tensor, x: Tensor, beta1: float) -> None:
        """x is kept, not recovered from y (nothing to do)."""

    # -- the step -----------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            k = group["k"] + 1
            lr = self._scheduled_lr(group, k)
            lr_max = group["lr_max"] = max(lr, group["lr_max"])
            weight = self._weight(group, k, lr, lr_max)
            weight_sum = group["weight_sum"] = group["weight_sum"] + weight
            ckp = self._ckp(weight, weight_sum, k)
            bias_correction2 = 1 - beta2**k
            z_lr = self._z_lr(group, k, lr)
            for y in group["params"]:
                if y.grad is None:
                    continue
                state = self.state[y]
                if len(state) == 0:
                    state["z"] = y.clone()
                    state["x"] = y.clone()
                    state["exp_avg_sq"] = torch.zeros_like(y)
                z, x, v = state["z"], state["x"], state["exp_avg_sq"]
                self._decay(group, y, z, x, z_lr)
                v.mul_(beta2).addcmul_(y.grad, y.grad, value=1 - beta2)
                denom = self._second_moment_hat(v, bias_correction2).sqrt_().add_(group["eps"])
                z.addcdiv_(y.grad, denom, value=-z_lr)
                self._recover_x(y, z, x, beta1)
                x.mul_(1 - ckp).add_(z, alpha=ckp)
                y.copy_(x.mul(beta1).add_(z, alpha=1 - beta1))
            group["k"] = k
        return loss


class PaperBiasCorrection(ScheduleFreeAdamW):
    """schedulefree_adamw.paper_bias_correction: γ_t = γ·sched·√(1 − β₂ᵗ); denominator √v + ε."""

    def _scheduled_lr(self, group, k):
        return super()._scheduled_lr(group, k) * math.sqrt(1 - group["betas"][1] ** k)

    def _second_moment_hat(self, v, bias_correction2):
        return v.clone()


class UniformAverage(ScheduleFreeAdamW):
    """schedulefree_adamw.uniform_average: c = 1/t (Keras)."""

    def _ckp(self, weight, weight_sum, k):
        return 1.0 / k


class KerasTorchNewZ(UniformAverage):
    """schedulefree_adamw.keras_torch_new_z: c = 1/t, and x recovered from y with the updated z
    (Keras on the torch backend: momentum_old aliases the z updated in place)."""

    def _recover_x(self, y, z, x, beta1):
        x.copy_((y - (1 - beta1) * z) / beta1)


class CurrentLrWeight(ScheduleFreeAdamW):
    """schedulefree_adamw.current_lr_weight: w = tʳ·γ_tᴾ (heavyball)."""

    def _weight(self, group, k, lr, lr_max):
        return (k ** group["r"]) * (lr ** group["weight_lr_power"])


class DecayAtZ(ScheduleFreeAdamW):
    """schedulefree_adamw.decay_at_z: z ← z − γλ·z (the Reference class's decay_at_z=True)."""

    def _decay(self, group, y, z, x, lr):
        if group["weight_decay"] != 0:
            z.sub_(z, alpha=lr * group["weight_decay"])


class NoR(ScheduleFreeAdamW):
    """schedulefree_adamw.no_r: w = γ_maxᴾ (optax)."""

    def _weight(self, group, k, lr, lr_max):
        return lr_max ** group["weight_lr_power"]


class ZeroBasedWarmup(ScheduleFreeAdamW):
    """schedulefree_adamw.zero_based_warmup: the z step (decay included) uses γ·min((t − 1)/W, 1)
    (optax: add_decayed_weights, then scale_by_learning_rate counting from 0)."""

    def _z_lr(self, group, k, lr):
        return self._scheduled_lr(group, k - 1)


class EpsRoot(ScheduleFreeAdamW):
    """schedulefree_adamw.eps_root: √(v̂ + 10⁻¹⁵) + ε (pytorch_optimizer's apply_ams_bound)."""

    def _second_moment_hat(self, v, bias_correction2):
        return v.div(bias_correction2).add_(1e-15)


class KerasDecay(ScheduleFreeAdamW):
    """schedulefree_adamw.keras_decay: y ← y − γλ·y before the step (un-warmed γ), x recovered from
    the decayed y, z not decayed (Keras)."""

    def _decay(self, group, y, z, x, lr):
        if group["weight_decay"] != 0:
            beta1 = group["betas"][0]
            y.sub_(y, alpha=group["lr"] * group["weight_decay"])
            x.copy_((y - (1 - beta1) * z) / beta1)


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"schedulefree_adamw": ScheduleFreeAdamW}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("schedulefree_adamw", "schedulefree_adamw.paper_bias_correction"): PaperBiasCorrection,
    ("schedulefree_adamw", "schedulefree_adamw.uniform_average"): UniformAverage,
    ("schedulefree_adamw", "schedulefree_adamw.keras_torch_new_z"): KerasTorchNewZ,
    ("schedulefree_adamw", "schedulefree_adamw.current_lr_weight"): CurrentLrWeight,
    ("schedulefree_adamw", "schedulefree_adamw.decay_at_z"): DecayAtZ,
    ("schedulefree_adamw", "schedulefree_adamw.no_r"): NoR,
    ("schedulefree_adamw", "schedulefree_adamw.zero_based_warmup"): ZeroBasedWarmup,
    ("schedulefree_adamw", "schedulefree_adamw.eps_root"): EpsRoot,
    ("schedulefree_adamw", "schedulefree_adamw.keras_decay"): KerasDecay,
}
