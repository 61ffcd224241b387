"""Adagrad as ``torch.optim.Adagrad`` computes it, and one mutant per catalogued Adagrad variant.

:class:`Adagrad` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_adagrad`` (dense gradients, differentiable off): the same state (``step`` as a
float32 0-d tensor and ``sum``, both created in the constructor for every parameter, from the
constructor's ``initial_accumulator_value``), the same operations in the same order,
hyperparameters read from ``group[...]`` at every step. Each mutant overrides the one method
holding the formula its variant changes (see ``derivations/adagrad.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .base import keras_decay


class Adagrad(torch.optim.Optimizer):
    """The spec: PyTorch's Adagrad: lr decay, an initial accumulator, L2 weight decay, maximize."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, maximize=False):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults)
        # torch creates the state of every parameter here, from the constructor's argument
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p)

    def _init_state(self, p: Tensor) -> None:
        state = self.state[p]
        state["step"] = torch.tensor(0.0, dtype=torch.float32)
        state["sum"] = self._initial_sum(p, self.defaults["initial_accumulator_value"])

    def _initial_sum(self, p: Tensor, value: float) -> Tensor:
        """G₀ = initial_accumulator_value."""
        return torch.full_like(p, value, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:  # a param without a gradient is left alone, state included
                    if len(self.state[p]) == 0:
                        self._init_state(p)
                    self._update(p, p.grad, group, self.state[p])
        return loss

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        state["step"] += 1
        step = state["step"].item()
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        state_sum = state["sum"]
        state_sum.addcmul_(grad, grad, value=1)
        std = self._denominator(state_sum, group["eps"])
        p.addcdiv_(grad, std, value=-clr)

    def _denominator(self, state_sum: Tensor, eps: float) -> Tensor:
        """√G + ε."""
        return state_sum.sqrt().add_(eps)


class AdagradEpsInsideSqrt(Adagrad):
    """adagrad.eps_inside_sqrt: √(G + ε)."""

    def _denominator(self, state_sum, eps):
        return state_sum.add(eps).sqrt_()


class AdagradInitialAccumulator01(Adagrad):
    """adagrad.initial_accumulator_0.1: G₀ = 0.1 whatever initial_accumulator_value."""

    def _initial_sum(self, p, value):
        return torch.full_like(p, 0.1, memory_format=torch.preserve_format)


class AdagradKeras(AdagradEpsInsideSqrt):
    """adagrad.keras (keras/src/optimizers/adagrad.py): √(G + ε), the learning rate held in float32
    and decoupled decay θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) before the step, no L2."""

    def _update(self, p, grad, group, state):
        keras_decay(p, group["lr"], group["weight_decay"])
        super()._update(p, grad, {**group, "lr": float(np.float32(group["lr"])), "weight_decay": 0.0}, state)


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"adagrad": Adagrad}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("adagrad", "adagrad.eps_inside_sqrt"): AdagradEpsInsideSqrt,
    ("adagrad", "adagrad.initial_accumulator_0.1"): AdagradInitialAccumulator01,
    ("adagrad", "adagrad.keras"): AdagradKeras,
}
