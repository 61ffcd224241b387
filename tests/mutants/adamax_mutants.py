"""Adamax as ``torch.optim.Adamax`` computes it, and one mutant per catalogued Adamax variant.

:class:`Adamax` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_adamax`` (capturable and differentiable off): the same state (``step`` as a
float32 0-d tensor, ``exp_avg``, ``exp_inf``), the same operations in the same order,
hyperparameters read from ``group[...]`` at every step. Each mutant overrides the one method
holding the formula its variant changes (see ``derivations/adamax.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .base import GlobalStepCounter, PerParameterOptimizer, keras_decay


class Adamax(PerParameterOptimizer):
    """The spec: PyTorch's Adamax, ε inside the maximum, L2 weight decay, maximize."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_inf"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        state["exp_avg"].lerp_(grad, 1 - beta1)
        self._infinity_norm(state["exp_inf"], grad, beta2, group["eps"])
        clr = group["lr"] / (1 - beta1 ** state["step"].item())
        self._descend(p, state["exp_avg"], state["exp_inf"], clr, group["eps"])

    def _infinity_norm(self, u: Tensor, grad: Tensor, beta2: float, eps: float) -> None:
        """u ← max(β₂·u, |g| + ε)."""
        torch.maximum(u.mul_(beta2), grad.abs().add_(eps), out=u)

    def _descend(self, p: Tensor, m: Tensor, u: Tensor, clr: float, eps: float) -> None:
        """θ ← θ − γ/(1 − β₁ᵗ) · m/u."""
        p.addcdiv_(m, u, value=-clr)


class AdamaxNoEps(Adamax):
    """adamax.no_eps: u ← max(β₂·u, |g|) (the paper's Algorithm 2)."""

    def _infinity_norm(self, u, grad, beta2, eps):
        torch.maximum(u.mul_(beta2), grad.abs(), out=u)


class AdamaxEpsOutsideMax(AdamaxNoEps):
    """adamax.eps_outside_max: u ← max(β₂·u, |g|); θ ← θ − γ·m/((1 − β₁ᵗ)·(u + ε)) (Keras)."""

    def _descend(self, p, m, u, clr, eps):
        p.addcdiv_(m, u + eps, value=-clr)


class AdamaxGlobalStepCounter(GlobalStepCounter, Adamax):
    """step.global_counter: t = the number of step() calls (pytorch_optimizer AdaMax, Keras)."""


class AdamaxKeras(GlobalStepCounter, AdamaxEpsOutsideMax):
    """adamax.keras: ε outside the maximum, the optimizer's step counter, the learning rate held in
    float32 and decoupled decay θ ← θ·(1 − fl₃₂(γ)·λ) before the update (Keras 3)."""

    def _update(self, p, grad, group, state):
        lr32 = float(np.float32(group["lr"]))
        keras_decay(p, lr32, group["weight_decay"])
        super()._update(p, grad, {**group, "lr": lr32, "weight_decay": 0.0}, state)


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"adamax": Adamax}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("adamax", "adamax.no_eps"): AdamaxNoEps,
    ("adamax", "adamax.eps_outside_max"): AdamaxEpsOutsideMax,
    ("adamax", "step.global_counter"): AdamaxGlobalStepCounter,
    ("adamax", "adamax.keras"): AdamaxKeras,
}
