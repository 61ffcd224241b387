"""Adan as the official code (sail-sg/Adan, timm) computes it, and one mutant per catalogued variant.

:class:`Adan` is a readable single-tensor transcription of ``_single_tensor_adan`` (official
code; timm's is a copy): state ``exp_avg``, ``exp_avg_diff``, ``exp_avg_sq``, ``neg_pre_grad``
and, unlike the official code (a per-group counter), a per-parameter ``step`` as the spec counts
it. Each mutant overrides the one method holding the formula its variant changes (see
``derivations/adan.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import GlobalStepCounter, PerParameterOptimizer


class Adan(PerParameterOptimizer):
    """The spec: Adan with proximal weight decay, d₁ = 0."""

    def __init__(self, params, lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            state["exp_avg_diff"] = torch.zeros_like(p)
            state["neg_pre_grad"] = self._initial_neg_pre_grad(p.grad)
        return state

    def _initial_neg_pre_grad(self, grad: Tensor) -> Tensor:
        """−g: the first difference is 0."""
        return -grad.clone()

    def _betas(self, group: dict) -> tuple[float, float, float]:
        return group["betas"]

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2, beta3 = self._betas(group)
        state["step"] += 1
        t = state["step"].item()
        diff = state["neg_pre_grad"].add_(grad)  # g − g_prev, in place
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["exp_avg_diff"].mul_(beta2).add_(diff, alpha=1 - beta2)
        nesterov = diff.mul_(beta2).add_(grad)
        state["exp_avg_sq"].mul_(beta3).addcmul_(nesterov, nesterov, value=1 - beta3)
        denom = (state["exp_avg_sq"].sqrt() / math.sqrt(1 - beta3**t)).add_(group["eps"])
        step_size = group["lr"] / (1 - beta1**t)
        step_size_diff = self._diff_step_size(group["lr"], beta2, t)
        self._descend(p, state["exp_avg"], state["exp_avg_diff"], denom, step_size, step_size_diff,
                      group["lr"] * group["weight_decay"])
        state["neg_pre_grad"].zero_().add_(grad, alpha=-1.0)

    def _diff_step_size(self, lr: float, beta2: float, t: float) -> float:
        """γ·β₂/(1 − β₂ᵗ)."""
        return lr * beta2 / (1 - beta2**t)

    def _descend(self, p, m, v, denom, step_size, step_size_diff, lr_wd):
        """θ ← (θ − step·m/den − step_diff·v/den)/(1 + γλ)."""
        p.addcdiv_(m, denom, value=-step_size)
        p.addcdiv_(v, denom, value=-step_size_diff)
        p.div_(1 + lr_wd)


class AdanNoProx(Adan):
    """adan.no_prox: θ ← θ(1 − γλ) first, then the steps (timm no_prox=True)."""

    def _descend(self, p, m, v, denom, step_size, step_size_diff, lr_wd):
        p.mul_(1 - lr_wd)
        p.addcdiv_(m, denom, value=-step_size)
        p.addcdiv_(v, denom, value=-step_size_diff)


class AdanZeroInitialPrev(Adan):
    """adan.zero_initial_prev: the previous gradient starts at 0, so d₁ = g₁."""

    def _initial_neg_pre_grad(self, grad):
        return torch.zeros_like(grad)


class AdanNoDiffBiasCorrection(Adan):
    """adan.no_diff_bias_correction: the difference step is γ·β₂, not γ·β₂/(1 − β₂ᵗ)."""

    def _diff_step_size(self, lr, beta2, t):
        return lr * beta2


class AdanPaperBetas(Adan):
    """adan.paper_beta_convention: the given betas are the paper's, the rule uses 1 − β."""

    def _betas(self, group):
        return tuple(1 - b for b in group["betas"])


class AdanGroupStep(GlobalStepCounter, Adan):
    """adan.group_step: the bias corrections read the number of step() calls (timm's and
    pytorch_optimizer's group['step']); the first difference is still 0 (the state is created then)."""


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"adan": Adan}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("adan", "adan.no_prox"): AdanNoProx,
    ("adan", "adan.zero_initial_prev"): AdanZeroInitialPrev,
    ("adan", "adan.no_diff_bias_correction"): AdanNoDiffBiasCorrection,
    ("adan", "adan.paper_beta_convention"): AdanPaperBetas,
    ("adan", "adan.group_step"): AdanGroupStep,
}
