"""LARS as the paper (Algorithm 1) defines it, and one mutant per catalogued LARS variant.

:class:`Lars` is a readable torch transcription of the spec (``derivations/lars.py``): per-tensor
local learning rate φ = η‖θ‖/(‖g‖ + λ‖θ‖) (1 if a norm is 0), velocity v ← μ·v + γ·φ·(g + λθ)
kept as state ``velocity`` (the learning rate inside it), θ ← θ − v. Each mutant overrides the one
method holding the formula its variant changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class Lars(PerParameterOptimizer):
    """The spec: LARS with the learning rate inside the velocity, ratio η‖θ‖/(‖g‖ + λ‖θ‖)."""

    BUFFER = "velocity"  # the state the momentum lives in

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=0.0, trust_coefficient=0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient))

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0 and group["momentum"] != 0:
            state[self.BUFFER] = torch.zeros_like(p)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        ratio = self._ratio(p, grad, group)
        u = self._decay(p, grad, group)
        self._apply(p, ratio * u, group, state)

    def _norms(self, p, grad) -> tuple[float, float]:
        return torch.linalg.vector_norm(p).item(), torch.linalg.vector_norm(grad).item()

    def _denominator(self, w, n, p, grad, group) -> float:
        """‖g‖ + λ‖θ‖."""
        return n + group["weight_decay"] * w

    def _ratio(self, p, grad, group) -> float:
        """η‖θ‖/(‖g‖ + λ‖θ‖), 1 if a norm is 0."""
        w, n = self._norms(p, grad)
        if w == 0 or n == 0:
            return 1.0
        return group["trust_coefficient"] * w / self._denominator(w, n, p, grad, group)

    def _decay(self, p, grad, group) -> Tensor:
        """u = g + λθ."""
        return grad.add(p, alpha=group["weight_decay"])

    def _apply(self, p, d, group, state) -> None:
        """v ← μ·v + γ·d; θ ← θ − v."""
        step = d.mul(group["lr"])
        if group["momentum"] != 0:
            state["velocity"].mul_(group["momentum"]).add_(step)
            step = state["velocity"]
        p.sub_(step)


class LarsLrOutsideBuffer(Lars):
    """lars.lr_outside_buffer: b ← μ·b + d; θ ← θ − γ·b (torch SGD's ``momentum_buffer``, as the libraries
    keep it; from 0, which with no dampening is torch's first-step clone)."""

    BUFFER = "momentum_buffer"

    def _apply(self, p, d, group, state):
        step = d
        if group["momentum"] != 0:
            state[self.BUFFER].mul_(group["momentum"]).add_(d)
            step = state[self.BUFFER]
        p.add_(step, alpha=-group["lr"])


class LarsDecayedGradientNorm(Lars):
    """lars.decayed_gradient_norm: η‖θ‖/‖g + λθ‖."""

    def _denominator(self, w, n, p, grad, group):
        return torch.linalg.vector_norm(grad.add(p, alpha=group["weight_decay"])).item()


class LarsEpsInDenominator(Lars):
    """lars.eps_in_denominator: η‖θ‖/(‖g‖ + λ‖θ‖ + 1e-8)."""

    def _denominator(self, w, n, p, grad, group):
        return n + group["weight_decay"] * w + 1e-8


class LarsMatricesOnly(Lars):
    """lars.matrices_only: tensors of < 2 dims get φ = 1 and u = g."""

    def _ratio(self, p, grad, group):
        return super()._ratio(p, grad, group) if p.ndim > 1 else 1.0

    def _decay(self, p, grad, group):
        return super()._decay(p, grad, group) if p.ndim > 1 else grad.clone()


class LarsTrustClip(Lars):
    """lars.trust_clip: min(φ/γ, 1)."""

    def _ratio(self, p, grad, group):
        return min(super()._ratio(p, grad, group) / group["lr"], 1.0)


class LarsNoRatioWithoutDecay(Lars):
    """lars.no_ratio_without_decay: φ = 1 when λ = 0."""

    def _ratio(self, p, grad, group):
        return 1.0 if group["weight_decay"] == 0 else super()._ratio(p, grad, group)


class LarsPytorchOptimizer(LarsMatricesOnly, LarsLrOutsideBuffer):
    """lars.pytorch_optimizer: matrices only, and the learning rate outside the buffer."""


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"lars": Lars}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("lars", "lars.lr_outside_buffer"): LarsLrOutsideBuffer,
    ("lars", "lars.decayed_gradient_norm"): LarsDecayedGradientNorm,
    ("lars", "lars.eps_in_denominator"): LarsEpsInDenominator,
    ("lars", "lars.matrices_only"): LarsMatricesOnly,
    ("lars", "lars.trust_clip"): LarsTrustClip,
    ("lars", "lars.no_ratio_without_decay"): LarsNoRatioWithoutDecay,
    ("lars", "lars.pytorch_optimizer"): LarsPytorchOptimizer,
}
