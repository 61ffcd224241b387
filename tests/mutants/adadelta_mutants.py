"""Adadelta as ``torch.optim.Adadelta`` computes it, and one mutant per catalogued Adadelta variant.

:class:`Adadelta` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_adadelta`` (capturable and differentiable off): the same state (``step`` as a
float32 0-d tensor, ``square_avg``, ``acc_delta``), the same operations in the same order,
hyperparameters read from ``group[...]`` at every step. The mutant overrides the one method
holding the formula its variant changes (see ``derivations/adadelta.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .base import PerParameterOptimizer, keras_decay


class Adadelta(PerParameterOptimizer):
    """The spec: PyTorch's Adadelta with a learning rate, L2 weight decay and maximize."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        rho, eps = group["rho"], group["eps"]
        state["step"] += 1
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        std = square_avg.add(eps).sqrt_()
        delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)  # √(u + ε)/√(v + ε)·g, old u
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        self._descend(p, delta, group["lr"])

    def _descend(self, p: Tensor, delta: Tensor, lr: float) -> None:
        """θ ← θ − γ·Δ."""
        p.add_(delta, alpha=-lr)


class AdadeltaNoLr(Adadelta):
    """adadelta.no_lr: θ ← θ − Δ (the learning rate is ignored)."""

    def _descend(self, p, delta, lr):
        p.sub_(delta)


class AdadeltaKeras(Adadelta):
    """adadelta.keras (keras/src/optimizers/adadelta.py): torch's formula with the learning rate held
    in float32 and decoupled decay θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) before the step, no L2."""

    def _update(self, p, grad, group, state):
        keras_decay(p, group["lr"], group["weight_decay"])
        super()._update(p, grad, {**group, "lr": float(np.float32(group["lr"])), "weight_decay": 0.0}, state)


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"adadelta": Adadelta}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("adadelta", "adadelta.no_lr"): AdadeltaNoLr,
    ("adadelta", "adadelta.keras"): AdadeltaKeras,
}
