"""Rprop as ``torch.optim.Rprop`` computes it, and one mutant per catalogued Rprop variant.

:class:`Rprop` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_rprop`` (capturable and differentiable off): the same state (``step`` as a float32
0-d tensor, ``prev``, ``step_size``), the same operations in the same order, hyperparameters read
from ``group[...]`` at every step. Each mutant overrides the one method holding the formula its
variant changes (see ``derivations/rprop.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class Rprop(PerParameterOptimizer):
    """The spec: PyTorch's Rprop (iRprop−) with maximize."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False):
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, maximize=maximize)
        super().__init__(params, defaults)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["prev"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step_size"] = torch.full_like(p, group["lr"])  # the lr of the first step
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        prev, step_size = state["prev"], state["step_size"]
        factor = self._factors(grad, prev, group)
        self._backtrack(p, grad, prev, step_size)
        self._adapt(step_size, factor, group)
        grad = self._zero_after_sign_change(grad, factor, group)
        p.addcmul_(grad.sign(), step_size, value=-1)
        prev.copy_(grad)

    def _factors(self, grad: Tensor, prev: Tensor, group: dict) -> Tensor:
        """η₊ where g·prev > 0, η₋ where g·prev < 0, 1 where g·prev = 0."""
        etaminus, etaplus = group["etas"]
        sign = grad.mul(prev).sign()
        sign[sign.gt(0)] = etaplus
        sign[sign.lt(0)] = etaminus
        sign[sign.eq(0)] = 1
        return sign

    def _backtrack(self, p: Tensor, grad: Tensor, prev: Tensor, step_size: Tensor) -> None:
        """No weight backtracking (iRprop−)."""

    def _adapt(self, step_size: Tensor, factor: Tensor, group: dict) -> None:
        """Δ ← clamp(Δ·factor, Γmin, Γmax): both bounds, whatever the factor."""
        step_size_min, step_size_max = group["step_sizes"]
        step_size.mul_(factor).clamp_(step_size_min, step_size_max)

    def _zero_after_sign_change(self, grad: Tensor, factor: Tensor, group: dict) -> Tensor:
        """g ← 0 where the sign changed: no move now, no adaptation at the next step."""
        grad = grad.clone(memory_format=torch.preserve_format)
        grad[factor.eq(group["etas"][0])] = 0
        return grad


class RpropNoZeroingAfterFlip(Rprop):
    """rprop.no_zeroing_after_flip (Rprop−): after a sign change θ moves and prev ← g."""

    def _zero_after_sign_change(self, grad, factor, group):
        return grad.clone(memory_format=torch.preserve_format)


class RpropWeightBacktracking(Rprop):
    """rprop.weight_backtracking (Rprop+): after a sign change θ ← θ + sign(prev)·Δ_prev."""

    def _backtrack(self, p, grad, prev, step_size):
        changed = grad.mul(prev).lt(0)
        p.add_(torch.where(changed, prev.sign() * step_size, 0))


class RpropOneSidedClamp(Rprop):
    """rprop.one_sided_clamp: min(Δη₊, Γmax) on the same sign, max(Δη₋, Γmin) on a sign change."""

    def _adapt(self, step_size, factor, group):
        etaminus, etaplus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        scaled = step_size * factor
        new = torch.where(factor.eq(etaplus), scaled.clamp(max=step_size_max), step_size)
        new = torch.where(factor.eq(etaminus), scaled.clamp(min=step_size_min), new)
        step_size.copy_(new)


class RpropGrowOnZeroProduct(Rprop):
    """rprop.grow_on_zero_product (FANN): η₊ also where g·prev = 0."""

    def _factors(self, grad, prev, group):
        etaminus, etaplus = group["etas"]
        sign = grad.mul(prev).sign()
        sign[sign.ge(0)] = etaplus
        sign[sign.lt(0)] = etaminus
        return sign


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"rprop": Rprop}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("rprop", "rprop.no_zeroing_after_flip"): RpropNoZeroingAfterFlip,
    ("rprop", "rprop.weight_backtracking"): RpropWeightBacktracking,
    ("rprop", "rprop.one_sided_clamp"): RpropOneSidedClamp,
    ("rprop", "rprop.grow_on_zero_product"): RpropGrowOnZeroProduct,
}
