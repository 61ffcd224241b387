"""Lion as lion-pytorch and pytorch_optimizer compute it, and one mutant per catalogued Lion variant.

:class:`Lion` is a readable transcription of lion-pytorch's ``update_fn`` (decay with the current
lr, then the sign of the interpolation, then the momentum), with maximize as pytorch_optimizer and
timm have it; state ``exp_avg`` only. Each mutant overrides the one method holding the formula its
variant changes (see ``derivations/lion.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class Lion(PerParameterOptimizer):
    """The spec: θ ← θ(1 − γλ); θ ← θ − γ·sign(β₁m + (1 − β₁)g); m ← β₂m + (1 − β₂)g."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)
        self.init_lr = lr

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        if group["maximize"]:
            grad = -grad
        grad = self._decay(p, grad, group["lr"], group["weight_decay"])
        m = state["exp_avg"]
        c, m_new = self._moments(m, grad, beta1, beta2)
        p.add_(self._sign(c), alpha=-group["lr"])
        m.copy_(m_new)

    def _decay(self, p: Tensor, grad: Tensor, lr: float, wd: float) -> Tensor:
        """θ ← θ(1 − γλ); the gradient is returned as it is."""
        p.mul_(1 - lr * wd)
        return grad

    def _moments(self, m: Tensor, grad: Tensor, beta1: float, beta2: float) -> tuple[Tensor, Tensor]:
        """(c, m_new): c = β₁m + (1 − β₁)g, m_new = β₂m + (1 − β₂)g."""
        return m.lerp(grad, 1 - beta1), m.lerp(grad, 1 - beta2)

    def _sign(self, c: Tensor) -> Tensor:
        return c.sign()


class LionCoupledDecay(Lion):
    """lion.coupled_decay: g ← g + λθ before the interpolation and the momentum (pytorch_optimizer weight_decouple=False)."""

    def _decay(self, p, grad, lr, wd):
        return grad.add(p, alpha=wd) if wd != 0 else grad


class LionFixedDecay(Lion):
    """lion.fixed_decay: θ ← θ(1 − λ) (pytorch_optimizer fixed_decay=True)."""

    def _decay(self, p, grad, lr, wd):
        p.mul_(1 - wd)
        return grad


class LionDecayOverInitialLr(Lion):
    """lion.decay_over_initial_lr: θ ← θ(1 − γλ/γ_init) (lion-pytorch decoupled_weight_decay=True)."""

    def _decay(self, p, grad, lr, wd):
        p.mul_(1 - lr * wd / self.init_lr)
        return grad


class LionCorrectedDecay(Lion):
    """lion.corrected_decay: θ ← θ(1 − λγ²/γ_max) (timm corrected_weight_decay=True)."""

    def _decay(self, p, grad, lr, wd):
        p.mul_(1 - lr**2 / self.init_lr * wd)
        return grad


class LionBetasSwapped(Lion):
    """lion.betas_swapped: c with β₂, the momentum with β₁."""

    def _moments(self, m, grad, beta1, beta2):
        return m.lerp(grad, 1 - beta2), m.lerp(grad, 1 - beta1)


class LionSignOfNewMomentum(Lion):
    """lion.sign_of_new_momentum: m updated first, then θ ← θ − γ·sign(m)."""

    def _moments(self, m, grad, beta1, beta2):
        m_new = m.lerp(grad, 1 - beta2)
        return m_new, m_new


class LionSignOfZeroIsOne(Lion):
    """lion.sign_of_zero_is_one: a two-valued sign, +1 where c = 0."""

    def _sign(self, c):
        return torch.where(c >= 0, 1.0, -1.0).to(c.dtype)


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"lion": Lion}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("lion", "lion.coupled_decay"): LionCoupledDecay,
    ("lion", "lion.fixed_decay"): LionFixedDecay,
    ("lion", "lion.decay_over_initial_lr"): LionDecayOverInitialLr,
    ("lion", "lion.corrected_decay"): LionCorrectedDecay,
    ("lion", "lion.betas_swapped"): LionBetasSwapped,
    ("lion", "lion.sign_of_new_momentum"): LionSignOfNewMomentum,
    ("lion", "lion.sign_of_zero_is_one"): LionSignOfZeroIsOne,
}
