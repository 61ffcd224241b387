"""AdaBelief as the official code and timm compute it (rectify off), and one mutant per catalogued
AdaBelief variant.

:class:`AdaBelief` is a readable transcription of timm's ``_single_tensor_adabelief`` with
``rectify=False`` (decoupled decay, ε added to ``exp_avg_var`` in place, denominator
√s/√(1 − β₂ᵗ) + ε), with maximize as pytorch_optimizer has it; state ``step`` (an int),
``exp_avg``, ``exp_avg_var``. Each mutant overrides the one method holding the formula its
variant changes (see ``derivations/adabelief.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class AdaBelief(PerParameterOptimizer):
    """The spec: official AdaBelief, ε accumulated, decoupled decay, no rectification."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0, maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_var"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        if group["maximize"]:
            grad = -grad
        grad = self._decay(p, grad, lr, group["weight_decay"])
        state["step"] += 1
        m, s = state["exp_avg"], state["exp_avg_var"]
        m.lerp_(grad, 1 - beta1)
        residual = grad - m
        s.mul_(beta2).addcmul_(residual, residual, value=1 - beta2)
        self._accumulate(s, eps)
        self._descend(p, m, s, lr, beta1, beta2, eps, self._t(state, group))

    def _t(self, state: dict, group: dict) -> int:
        return state["step"]

    def _decay(self, p: Tensor, grad: Tensor, lr: float, wd: float) -> Tensor:
        """θ ← θ(1 − γλ)."""
        p.mul_(1 - lr * wd)
        return grad

    def _accumulate(self, s: Tensor, eps: float) -> None:
        """s ← s + ε, in place."""
        s.add_(eps)

    def _descend(self, p, m, s, lr, beta1, beta2, eps, t) -> None:
        """θ ← θ − γ/(1 − β₁ᵗ)·m/(√s/√(1 − β₂ᵗ) + ε)."""
        denom = (s.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
        p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))


class AdaBeliefEpsNotAccumulated(AdaBelief):
    """adabelief.eps_not_accumulated: s without +ε."""

    def _accumulate(self, s, eps):
        pass


class AdaBeliefCoupledDecay(AdaBelief):
    """adabelief.coupled_decay: g ← g + λθ."""

    def _decay(self, p, grad, lr, wd):
        return grad.add(p, alpha=wd) if wd != 0 else grad


class AdaBeliefFixedDecay(AdaBelief):
    """adabelief.fixed_decay: θ ← θ(1 − λ)."""

    def _decay(self, p, grad, lr, wd):
        p.mul_(1 - wd)
        return grad


def _rho(beta2: float, t: int) -> tuple[float, float]:
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf, rho_inf - 2 * t * beta2**t / (1 - beta2**t)


class AdaBeliefRectified(AdaBelief):
    """adabelief.rectified: ρ_t ≥ 5 → γ·r_t/(1 − β₁ᵗ)·m/(√s + ε); else θ ← θ − γ/(1 − β₁ᵗ)·m (timm's default)."""

    sgd = True

    def _descend(self, p, m, s, lr, beta1, beta2, eps, t):
        rho_inf, rho = _rho(beta2, t)
        if rho >= 5:
            rt = math.sqrt((1 - beta2**t) * (rho - 4) / (rho_inf - 4) * (rho - 2) / rho * rho_inf / (rho_inf - 2))
            p.addcdiv_(m, s.sqrt().add_(eps), value=-lr * rt / (1 - beta1**t))
        elif self.sgd:
            p.add_(m, alpha=-lr / (1 - beta1**t))


class AdaBeliefRectifiedNoSgd(AdaBeliefRectified):
    """adabelief.rectified_no_sgd: no move while ρ_t < 5."""

    sgd = False


class AdaBeliefRectifiedThreshold4(AdaBelief):
    """adabelief.rectified_threshold_4: torch_optimizer's rectification (ρ_t > 4; SGD fallback θ ← θ − γ·m)."""

    def _descend(self, p, m, s, lr, beta1, beta2, eps, t):
        rho_inf, rho = _rho(beta2, t)
        if rho > 4:
            rt = math.sqrt((rho - 4) * (rho - 2) * rho_inf / (rho_inf - 4) / (rho_inf - 2) / rho)
            denom = (s.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
            p.addcdiv_(m, denom, value=-rt * lr / (1 - beta1**t))
        else:
            p.add_(m, alpha=-lr)


class AdaBeliefStepPerGroup(AdaBelief):
    """adabelief.step_per_group: bias corrections from the number of step() calls, kept in the
    param group (saved by state_dict) as pytorch_optimizer's group['step']."""

    def step(self, closure=None):
        for group in self.param_groups:
            group["step"] = group.get("step", 0) + 1
        return super().step(closure)

    def _t(self, state, group):
        return group["step"]


class AdaBeliefRectifiedStepPerGroup(AdaBeliefStepPerGroup, AdaBeliefRectified):
    """adabelief.rectified_step_per_group: the rectified update with the number of step() calls as t."""


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"adabelief": AdaBelief}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("adabelief", "adabelief.eps_not_accumulated"): AdaBeliefEpsNotAccumulated,
    ("adabelief", "adabelief.coupled_decay"): AdaBeliefCoupledDecay,
    ("adabelief", "adabelief.fixed_decay"): AdaBeliefFixedDecay,
    ("adabelief", "adabelief.rectified"): AdaBeliefRectified,
    ("adabelief", "adabelief.rectified_no_sgd"): AdaBeliefRectifiedNoSgd,
    ("adabelief", "adabelief.rectified_threshold_4"): AdaBeliefRectifiedThreshold4,
    ("adabelief", "adabelief.step_per_group"): AdaBeliefStepPerGroup,
    ("adabelief", "adabelief.rectified_step_per_group"): AdaBeliefRectifiedStepPerGroup,
}
