"""MADGRAD as the official facebookresearch/madgrad code computes it, and one mutant per variant.

:class:`MADGRAD` is a readable transcription of the official ``MADGRAD.step`` (dense path; timm's
copy is the same): per-parameter ``step``, ``grad_sum_sq``, ``s`` and ``x0`` (kept when momentum ≠ 0),
λ_k = (γ + ε)·√k, the cube root, and θ averaged toward z. Each mutant overrides the one method
holding the formula its variant changes (see ``derivations/madgrad.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class MADGRAD(PerParameterOptimizer):
    """The spec: official MADGRAD, L2 weight decay."""

    def __init__(self, params, lr=1e-2, momentum=0.9, weight_decay=0.0, eps=1e-6):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eps=eps))

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["grad_sum_sq"] = torch.zeros_like(p)
            state["s"] = torch.zeros_like(p)
            if group["momentum"] != 0:
                state["x0"] = p.detach().clone()
        return state

    def _weight(self, group: dict, state: dict) -> float:
        """λ_k = (γ + ε)·√k."""
        return (group["lr"] + group["eps"]) * math.sqrt(state["step"])

    def _rms(self, nu: Tensor, eps: float) -> Tensor:
        """ν^{1/3} + ε."""
        return nu.pow(1 / 3).add_(eps)

    def _decay_before(self, p: Tensor, grad: Tensor, group: dict) -> Tensor:
        """L2: g ← g + λθ."""
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        return grad

    def _decay_after(self, p: Tensor, p_old: Tensor, group: dict) -> None:
        pass

    def _average(self, p: Tensor, z: Tensor, momentum: float, state: dict) -> None:
        """θ ← μ·θ + (1 − μ)·z."""
        p.mul_(momentum).add_(z, alpha=1 - momentum)

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        momentum, eps = group["momentum"], group["eps"]
        state["step"] += 1
        lamb = self._weight(group, state)
        grad = self._decay_before(p, grad, group)
        nu, s = state["grad_sum_sq"], state["s"]
        x0 = p.addcdiv(s, self._rms(nu, eps)) if momentum == 0 else state["x0"]
        nu.addcmul_(grad, grad, value=lamb)
        s.add_(grad, alpha=lamb)
        z = x0.addcdiv(s, self._rms(nu, eps), value=-1)
        p_old = p.clone()
        if momentum == 0:
            p.copy_(z)
        else:
            self._average(p, z, momentum, state)
        self._decay_after(p, p_old, group)


class MADGRADSqrt(MADGRAD):
    """madgrad.sqrt_denominator: √ν + ε."""

    def _rms(self, nu, eps):
        return nu.sqrt().add_(eps)


class MADGRADNoLrEps(MADGRAD):
    """madgrad.no_lr_eps: λ_k = γ·√k."""

    def _weight(self, group, state):
        return group["lr"] * math.sqrt(state["step"])


class MADGRADGlobalStep(MADGRAD):
    """madgrad.global_step: λ_k = (γ + ε)·√(number of step() calls), one counter kept in
    ``self.state["k"]`` (saved by state_dict) as pytorch_optimizer does."""

    def step(self, closure=None):
        self.state["k"] = self.state.get("k", 0) + 1
        return super().step(closure)

    def _weight(self, group, state):
        return (group["lr"] + group["eps"]) * math.sqrt(self.state["k"])


class MADGRADDecoupledAfter(MADGRAD):
    """madgrad.decoupled_decay_after: θ ← θ_new − (γ + ε)·λ·θ_old (pytorch_optimizer)."""

    def _decay_before(self, p, grad, group):
        return grad

    def _decay_after(self, p, p_old, group):
        p.add_(p_old, alpha=-(group["lr"] + group["eps"]) * group["weight_decay"])


class MADGRADDecoupledBefore(MADGRAD):
    """madgrad.decoupled_decay_before: θ ← θ·(1 − γλ) before the step (timm decoupled_decay)."""

    def _decay_before(self, p, grad, group):
        p.mul_(1 - group["lr"] * group["weight_decay"])
        return grad


class MADGRADMomentumBuffer(MADGRAD):
    """madgrad.momentum_buffer: b ← μ·b + (1 − μ)·z from b = 0; θ ← b."""

    def _average(self, p, z, momentum, state):
        b = state.setdefault("momentum_buffer", torch.zeros_like(p))
        b.mul_(momentum).add_(z, alpha=1 - momentum)
        p.copy_(b)


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"madgrad": MADGRAD}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("madgrad", "madgrad.sqrt_denominator"): MADGRADSqrt,
    ("madgrad", "madgrad.no_lr_eps"): MADGRADNoLrEps,
    ("madgrad", "madgrad.global_step"): MADGRADGlobalStep,
    ("madgrad", "madgrad.decoupled_decay_after"): MADGRADDecoupledAfter,
    ("madgrad", "madgrad.decoupled_decay_before"): MADGRADDecoupledBefore,
    ("madgrad", "madgrad.momentum_buffer"): MADGRADMomentumBuffer,
}
