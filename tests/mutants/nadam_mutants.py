"""NAdam as ``torch.optim.NAdam`` computes it, and one mutant per catalogued NAdam variant.

:class:`NAdam` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_nadam`` (capturable and differentiable off): the same state (``step`` and
``mu_product`` as float32 0-d tensors, ``exp_avg``, ``exp_avg_sq``), the same operations in the
same order, hyperparameters read from ``group[...]`` at every step. Like torch it keeps the μ
product in float32 whatever the parameter's dtype, so in float64 it passes through the acceptable
variant ``nadam.float32_mu_product`` (a named finding), exactly as torch does.

The mutants implement their variant's formula *exactly*: they hold the μ product in the
parameter's dtype (:class:`ExactProduct`). A mutant that also rounded the product to float32 would
follow neither its variant's golden nor the acceptable one in float64, and could not be named
there (the diagnosis matches one deviation at a time). Each mutant overrides the one method
holding the formula its variant changes (see ``derivations/nadam.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class NAdam(PerParameterOptimizer):
    """The spec: PyTorch's NAdam with momentum decay, L2 or decoupled weight decay, maximize."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["mu_product"] = torch.tensor(1.0, dtype=self._product_dtype(p))
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _product_dtype(self, p: Tensor) -> torch.dtype:
        """torch keeps the μ product as a float32 0-d tensor, whatever the parameter's dtype."""
        return torch.float32

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        lr, weight_decay = group["lr"], group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        step = state["step"].item()
        bias_correction2 = 1 - beta2**step
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                p.mul_(1 - lr * weight_decay)
            else:
                grad = grad.add(p, alpha=weight_decay)
        mu, mu_next = self._caches(step, beta1, group["momentum_decay"])
        mu_product = state["mu_product"]
        mu_product *= mu
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.div(bias_correction2).sqrt().add_(group["eps"])
        product = mu_product.item()
        p.addcdiv_(grad, denom, value=-lr * (1.0 - mu) / (1.0 - product))
        p.addcdiv_(exp_avg, denom, value=self._momentum_coefficient(lr, mu, mu_next, product))

    def _caches(self, step: float, beta1: float, momentum_decay: float) -> tuple[float, float]:
        """μ_t = β₁·(1 − ½·0.96^(tψ)) and μ_{t+1}."""
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
        return mu, mu_next

    def _momentum_coefficient(self, lr: float, mu: float, mu_next: float, product: float) -> float:
        """−γ·μ_{t+1}/(1 − Π_t·μ_{t+1})."""
        return (-lr * mu_next) / (1.0 - product * mu_next)


class ExactProduct(NAdam):
    """Base of the mutants: the μ product in the parameter's dtype (their formula, exactly)."""

    def _product_dtype(self, p):
        return p.dtype


class NAdamKerasSchedule(ExactProduct):
    """nadam.keras_schedule: μ_t = β₁·(1 − ½·0.96ᵗ), without the momentum decay ψ."""

    def _caches(self, step, beta1, momentum_decay):
        return super()._caches(step, beta1, 1.0)


class NAdamConstantMu(ExactProduct):
    """nadam.constant_mu: μ_t = μ_{t+1} = β₁ (optax)."""

    def _caches(self, step, beta1, momentum_decay):
        return beta1, beta1


class NAdamMuCountedTwice(ExactProduct):
    """nadam.mu_counted_twice: −γ·μ_{t+1}/(1 − Π_t·μ_t·μ_{t+1}) (torch before PR #92699)."""

    def _momentum_coefficient(self, lr, mu, mu_next, product):
        return (-lr * mu_next) / (1.0 - product * mu * mu_next)


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"nadam": NAdam}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("nadam", "nadam.keras_schedule"): NAdamKerasSchedule,
    ("nadam", "nadam.constant_mu"): NAdamConstantMu,
    ("nadam", "nadam.mu_counted_twice"): NAdamMuCountedTwice,
}
