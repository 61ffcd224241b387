"""RAdam as ``torch.optim.RAdam`` computes it, and one mutant per catalogued RAdam variant.

:class:`RAdam` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_radam`` (capturable and differentiable off): the same state (``step`` as a float32
0-d tensor, ``exp_avg``, ``exp_avg_sq``), the same operations in the same order, hyperparameters
read from ``group[...]`` at every step. Each mutant overrides the one attribute or method holding
the formula its variant changes (see ``derivations/radam.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import GlobalStepCounter, PerParameterOptimizer


class RAdam(PerParameterOptimizer):
    """The spec: PyTorch's RAdam (ρ_t > 5, ε on the raw √v), L2 or decoupled decay, maximize."""

    #: rectify when ρ_t exceeds this
    threshold = 5.0

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        lr, weight_decay = group["lr"], group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        step = state["step"].item()
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2**step) / (1 - beta2**step)
        if weight_decay != 0:
            grad = self._weight_decay(p, grad, group, rho_t)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        bias_corrected_exp_avg = exp_avg / bias_correction1
        if rho_t > self.threshold:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = self._adaptive_lr(exp_avg_sq, bias_correction2, group["eps"])
            p.add_(bias_corrected_exp_avg * lr * adaptive * rect, alpha=-1.0)
        else:
            self._unrectified_step(p, bias_corrected_exp_avg, lr)

    def _weight_decay(self, p: Tensor, grad: Tensor, group: dict, rho_t: float) -> Tensor:
        """Decoupled θ ← θ·(1 − γλ), or L2 g ← g + λ·θ."""
        if group["decoupled_weight_decay"]:
            p.mul_(1 - group["lr"] * group["weight_decay"])
            return grad
        return grad.add(p, alpha=group["weight_decay"])

    def _unrectified_step(self, p: Tensor, bias_corrected_exp_avg: Tensor, lr: float) -> None:
        """Below the threshold: SGD with the bias-corrected momentum, θ ← θ − γ·m̂."""
        p.add_(bias_corrected_exp_avg * lr, alpha=-1.0)

    def _adaptive_lr(self, exp_avg_sq: Tensor, bias_correction2: float, eps: float) -> Tensor:
        """√(1 − β₂ᵗ)/(√v + ε): ε on the raw √v."""
        return (bias_correction2**0.5) / exp_avg_sq.sqrt().add_(eps)


class RAdamThreshold4(RAdam):
    """radam.threshold_4: rectify when ρ_t > 4 (the paper)."""

    threshold = 4.0


class RAdamEpsPaperPlacement(RAdam):
    """radam.eps_paper_placement: 1/(√v̂ + ε) with v̂ = v/(1 − β₂ᵗ) (optax)."""

    def _adaptive_lr(self, exp_avg_sq, bias_correction2, eps):
        return 1 / (exp_avg_sq / bias_correction2).sqrt().add_(eps)


class RAdamDecoupledDecay(RAdam):
    """radam.decoupled_decay: θ ← θ·(1 − γλ) whatever decoupled_weight_decay says (timm RAdamLegacy)."""

    def _weight_decay(self, p, grad, group, rho_t):
        p.mul_(1 - group["lr"] * group["weight_decay"])
        return grad


class RAdamNoUnrectifiedStep(RAdam):
    """radam.no_unrectified_step: below the threshold θ stays, decoupled decay included
    (pytorch_optimizer, degenerated_to_sgd=False)."""

    def _weight_decay(self, p, grad, group, rho_t):
        if group["decoupled_weight_decay"] and rho_t <= self.threshold:
            return grad
        return super()._weight_decay(p, grad, group, rho_t)

    def _unrectified_step(self, p, bias_corrected_exp_avg, lr):
        pass


class RAdamPytorchOptimizer(RAdamNoUnrectifiedStep):
    """radam.decoupled_decay + radam.no_unrectified_step: pytorch_optimizer's RAdam (weight_decouple=True,
    degenerated_to_sgd=False; pytorch_optimizer/optimizer/radam.py RAdam._step_per_param): decoupled
    decay whatever is asked, and neither it nor a step before rectification."""

    def _weight_decay(self, p, grad, group, rho_t):
        return super()._weight_decay(p, grad, {**group, "decoupled_weight_decay": True}, rho_t)


class RAdamGlobalStepCounter(GlobalStepCounter, RAdam):
    """step.global_counter: t = the number of step() calls (pytorch_optimizer RAdam's group['step'])."""


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"radam": RAdam}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("radam", "radam.threshold_4"): RAdamThreshold4,
    ("radam", "radam.eps_paper_placement"): RAdamEpsPaperPlacement,
    ("radam", "radam.decoupled_decay"): RAdamDecoupledDecay,
    ("radam", "radam.no_unrectified_step"): RAdamNoUnrectifiedStep,
    ("radam", "step.global_counter"): RAdamGlobalStepCounter,
}

COMPOUND_MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("radam", "radam.decoupled_decay + radam.no_unrectified_step"): RAdamPytorchOptimizer,
}
