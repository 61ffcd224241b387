"""NovoGrad as the paper (Algorithm 1) defines it, and one mutant per catalogued NovoGrad variant.

:class:`NovoGrad` is a readable torch transcription of the spec (``derivations/novograd.py``): state
``step``, ``exp_avg`` and a 0-d per-tensor ``exp_avg_sq``; v₁ = ‖g₁‖² and m₁ = d₁ on the first
step. Each mutant overrides the one method holding the formula its variant changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class NovoGrad(PerParameterOptimizer):
    """The spec."""

    def __init__(self, params, lr=1e-3, betas=(0.95, 0.98), eps=1e-8, weight_decay=0.0, grad_averaging=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      grad_averaging=grad_averaging))

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros((), dtype=p.dtype)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        state["step"] += 1
        first = state["step"] == 1
        state["exp_avg_sq"] = self._second_moment(state["exp_avg_sq"], grad, beta2, first)
        d = self._normalise(p, grad, state["exp_avg_sq"], group)
        c = (1 - beta1) if group["grad_averaging"] else 1.0
        self._first_moment(state["exp_avg"], d, beta1, c, first)
        self._descend(p, state["exp_avg"], group)

    def _second_moment(self, v, grad, beta2, first) -> Tensor:
        n2 = grad.pow(2).sum()
        return n2 if first else v * beta2 + (1 - beta2) * n2

    def _normalise(self, p, grad, v, group) -> Tensor:
        return (grad / (v.sqrt() + group["eps"])).add(p, alpha=group["weight_decay"])

    def _first_moment(self, m, d, beta1, c, first) -> None:
        if first:
            m.copy_(d)
        else:
            m.mul_(beta1).add_(d, alpha=c)

    def _descend(self, p, m, group) -> None:
        p.add_(m, alpha=-group["lr"])


class NovoGradAveragingAtFirstStep(NovoGrad):
    """novograd.averaging_at_first_step: m from 0, m = β₁m + c·d on every step."""

    def _first_moment(self, m, d, beta1, c, first):
        m.mul_(beta1).add_(d, alpha=c)


class NovoGradZeroInitV(NovoGrad):
    """novograd.zero_init_v: v = β₂v + (1 − β₂)‖g‖² from v₀ = 0."""

    def _second_moment(self, v, grad, beta2, first):
        return v * beta2 + (1 - beta2) * grad.pow(2).sum()


class NovoGradElementwiseV(NovoGrad):
    """novograd.elementwise_v: v per element, v₁ = g₁²."""

    def _second_moment(self, v, grad, beta2, first):
        return grad.pow(2) if first else v * beta2 + (1 - beta2) * grad.pow(2)


class NovoGradDecoupledDecay(NovoGrad):
    """novograd.decoupled_decay: d = g/(√v + ε); θ ← θ(1 − γλ) − γm."""

    def _normalise(self, p, grad, v, group):
        return grad / (v.sqrt() + group["eps"])

    def _descend(self, p, m, group):
        p.mul_(1 - group["lr"] * group["weight_decay"]).add_(m, alpha=-group["lr"])


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"novograd": NovoGrad}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("novograd", "novograd.averaging_at_first_step"): NovoGradAveragingAtFirstStep,
    ("novograd", "novograd.zero_init_v"): NovoGradZeroInitV,
    ("novograd", "novograd.elementwise_v"): NovoGradElementwiseV,
    ("novograd", "novograd.decoupled_decay"): NovoGradDecoupledDecay,
}
