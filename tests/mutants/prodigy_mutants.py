"""Prodigy as prodigyopt defines it, and one mutant per catalogued Prodigy variant.

:class:`Prodigy` is a readable torch transcription of the spec (``derivations/prodigy.py``): one
estimate D, numerator r and call count for the whole optimizer (kept in every param group, as
prodigyopt does); per param ``step``, ``p0``, ``s``, ``exp_avg``, ``exp_avg_sq``. The sums over all
params are accumulated as Python floats (double precision). Each mutant overrides the one method
holding the formula its variant changes.
"""

from __future__ import annotations

import math

import torch

from .base import PerParameterOptimizer


class Prodigy(PerParameterOptimizer):
    """The spec: Prodigy with D = max(D, d_coef·r/Σ‖s‖₁) over every param, growth_rate = ∞."""

    def __init__(self, params, lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decouple=True, d0=1e-6,
                 d_coef=1.0, use_bias_correction=False, safeguard_warmup=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decouple=decouple,
                                      d0=d0, d_coef=d_coef, use_bias_correction=use_bias_correction,
                                      safeguard_warmup=safeguard_warmup, d=d0, d_numerator=0.0, k=0))

    def _bias(self, group, k) -> float:
        """c = √(1 − β₂ᵏ)/(1 − β₁ᵏ) with bias correction, else 1."""
        beta1, beta2 = group["betas"]
        return math.sqrt(1 - beta2**k) / (1 - beta1**k) if group["use_bias_correction"] else 1.0

    def _gradient(self, p, group):
        """g, plus λθ for L2 decay."""
        grad = p.grad
        return grad if group["decouple"] else grad.add(p, alpha=group["weight_decay"])

    def _decay(self, p, group, dlr) -> None:
        """θ ← θ − λ·η·θ (decoupled)."""
        if group["decouple"]:
            p.add_(p, alpha=-group["weight_decay"] * dlr)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        first = self.param_groups[0]
        beta1, beta2 = first["betas"]
        beta3 = math.sqrt(beta2)
        d, d0, k = first["d"], first["d0"], first["k"] + 1
        dlr = d * first["lr"] * self._bias(first, k)
        numerator = beta3 * first["d_numerator"]
        denominator = 0.0
        active = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = self._gradient(p, group)
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["p0"] = p.clone()
                    state["s"] = torch.zeros_like(p)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                numerator += (d / d0) * dlr * torch.dot(grad.flatten(), (state["p0"] - p).flatten()).item()
                state["exp_avg"].mul_(beta1).add_(grad, alpha=d * (1 - beta1))
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=d * d * (1 - beta2))
                weight = d if group["safeguard_warmup"] else dlr
                state["s"].mul_(beta3).add_(grad, alpha=(d / d0) * weight)
                denominator += state["s"].abs().sum().item()
                active.append((p, group, state))
        for group in self.param_groups:
            group["d_numerator"], group["k"] = numerator, k
        if denominator == 0:
            return loss  # as prodigyopt: the params' step counts stay when S = 0
        d = max(d, first["d_coef"] * numerator / denominator)
        for group in self.param_groups:
            group["d"] = d
        for p, group, state in active:
            state["step"] += 1
            self._decay(p, group, dlr)
            denom = state["exp_avg_sq"].sqrt().add_(d * group["eps"])
            p.addcdiv_(state["exp_avg"], denom, value=-dlr)
        return loss


class ProdigyBiasCorrectionAlways(Prodigy):
    """prodigy.bias_correction_always: c = √(1 − β₂ᵏ)/(1 − β₁ᵏ) whatever the flag."""

    def _bias(self, group, k):
        beta1, beta2 = group["betas"]
        return math.sqrt(1 - beta2**k) / (1 - beta1**k)


class ProdigyCoupledDecayIgnored(Prodigy):
    """prodigy.coupled_decay_ignored: decouple=False leaves g unchanged."""

    def _gradient(self, p, group):
        return p.grad


class ProdigyFixedDecay(Prodigy):
    """prodigy.fixed_decay: θ ← θ·(1 − λ), not scaled by η."""

    def _decay(self, p, group, dlr):
        if group["decouple"]:
            p.mul_(1 - group["weight_decay"])


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"prodigy": Prodigy}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("prodigy", "prodigy.bias_correction_always"): ProdigyBiasCorrectionAlways,
    ("prodigy", "prodigy.coupled_decay_ignored"): ProdigyCoupledDecayIgnored,
    ("prodigy", "prodigy.fixed_decay"): ProdigyFixedDecay,
}
