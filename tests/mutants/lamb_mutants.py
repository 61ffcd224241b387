"""LAMB as the paper (v5, Algorithm 2) defines it, and one mutant per catalogued LAMB variant.

:class:`Lamb` is a readable torch transcription of the spec (``derivations/lamb.py``): per-param
state ``step`` (an int), ``exp_avg``, ``exp_avg_sq``; the bias-corrected Adam direction; λθ added
before the per-tensor trust ratio ‖θ‖/‖u‖ (1 if a norm is 0). Each mutant overrides the one method
holding the formula its variant changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class Lamb(PerParameterOptimizer):
    """The spec: LAMB with bias correction, λθ inside ‖u‖, no clamp, a step count per param."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.calls = 0

    def step(self, closure=None):
        self.calls += 1
        return super().step(closure)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        return state

    def _count(self, state: dict) -> int:
        state["step"] += 1
        return state["step"]

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        t = self._count(state)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        r = self._direction(m, v, t, beta1, beta2, group["eps"])
        u = self._decay(p, r, group)
        ratio = self._ratio(p, u, group)
        p.add_(u, alpha=-self._step_size(group["lr"], t, beta1) * ratio)

    def _step_size(self, lr, t, beta1) -> float:
        """γ."""
        return lr

    def _direction(self, m, v, t, beta1, beta2, eps) -> Tensor:
        """r = m̂/(√v̂ + ε)."""
        return (m / (1 - beta1**t)) / (v.sqrt() / (1 - beta2**t) ** 0.5 + eps)

    def _decay(self, p, r, group) -> Tensor:
        """u = r + λθ."""
        return r.add(p, alpha=group["weight_decay"])

    def _norms(self, p, u) -> tuple[float, float]:
        return torch.linalg.vector_norm(p).item(), torch.linalg.vector_norm(u).item()

    def _ratio(self, p, u, group) -> float:
        """‖θ‖/‖u‖, 1 if a norm is 0."""
        w, n = self._norms(p, u)
        return 1.0 if w == 0 or n == 0 else w / n


class LambNormClamp(Lamb):
    """lamb.norm_clamp: min(‖θ‖, 10)/‖u‖."""

    def _ratio(self, p, u, group):
        w, n = self._norms(p, u)
        return 1.0 if w == 0 or n == 0 else min(w, 10.0) / n


class LambMCorrectedOnly(Lamb):
    """lamb.m_corrected_only: r = m/(√v + ε); step size γ/(1 − β₁ᵗ) outside the trust ratio."""

    def _direction(self, m, v, t, beta1, beta2, eps):
        return m / (v.sqrt() + eps)

    def _step_size(self, lr, t, beta1):
        return lr / (1 - beta1**t)


class LambNoBiasCorrection(Lamb):
    """lamb.no_bias_correction: r = m/(√v + ε)."""

    def _direction(self, m, v, t, beta1, beta2, eps):
        return m / (v.sqrt() + eps)


class LambDecoupledDecay(Lamb):
    """lamb.decoupled_decay: θ ← θ(1 − γλ) first; u = r."""

    def _decay(self, p, r, group):
        p.mul_(1 - group["lr"] * group["weight_decay"])
        return r


class LambEpsInRatio(Lamb):
    """lamb.eps_in_ratio: ‖θ‖/(‖u‖ + ε)."""

    def _ratio(self, p, u, group):
        w, n = self._norms(p, u)
        return 1.0 if w == 0 or n == 0 else w / (n + group["eps"])


class LambTrustClip(Lamb):
    """lamb.trust_clip: min(‖θ‖/‖u‖, 1)."""

    def _ratio(self, p, u, group):
        return min(super()._ratio(p, u, group), 1.0)


class LambNoRatioWithoutDecay(Lamb):
    """lamb.no_ratio_without_decay: ratio 1 when λ = 0."""

    def _ratio(self, p, u, group):
        return 1.0 if group["weight_decay"] == 0 else super()._ratio(p, u, group)


class LambGroupStep(Lamb):
    """lamb.group_step: t counts optimizer.step() calls (kept with the optimizer, so a reload keeps it)."""

    def _count(self, state):
        state["step"] += 1
        return self.calls

    def state_dict(self):
        sd = super().state_dict()
        sd["param_groups"][0]["calls"] = self.calls
        return sd

    def load_state_dict(self, state_dict):
        self.calls = state_dict["param_groups"][0].get("calls", 0)
        super().load_state_dict(state_dict)


class LambPytorchOptimizer(LambGroupStep, LambMCorrectedOnly):
    """lamb.pytorch_optimizer: group step, r = m/(√v + ε), step size γ/(1 − β₁ᵗ),
    ratio min(‖θ‖, 10)/(‖u‖ + ε)."""

    def _ratio(self, p, u, group):
        w, n = self._norms(p, u)
        return 1.0 if w == 0 or n == 0 else min(w, 10.0) / (n + group["eps"])


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"lamb": Lamb}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("lamb", "lamb.norm_clamp"): LambNormClamp,
    ("lamb", "lamb.m_corrected_only"): LambMCorrectedOnly,
    ("lamb", "lamb.no_bias_correction"): LambNoBiasCorrection,
    ("lamb", "lamb.decoupled_decay"): LambDecoupledDecay,
    ("lamb", "lamb.eps_in_ratio"): LambEpsInRatio,
    ("lamb", "lamb.trust_clip"): LambTrustClip,
    ("lamb", "lamb.no_ratio_without_decay"): LambNoRatioWithoutDecay,
    ("lamb", "lamb.group_step"): LambGroupStep,
    ("lamb", "lamb.pytorch_optimizer"): LambPytorchOptimizer,
}
