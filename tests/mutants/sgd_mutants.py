"""SGD as ``torch.optim.SGD`` computes it, and one mutant per catalogued SGD variant.

:class:`SGD` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_sgd``: the same state (``momentum_buffer``, only when momentum ≠ 0), the same
operations in the same order, hyperparameters read from ``group[...]`` at every step. Each mutant
overrides the one method holding the formula its variant changes (see
``derivations/sgd.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .base import keras_decay


class SGD(torch.optim.Optimizer):
    """The spec: PyTorch's SGD with momentum, dampening, Nesterov, L2 weight decay, maximize."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:  # a param without a gradient is left alone, state included
                    self._update(p, p.grad, group, self.state[p])
        return loss

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        grad = self._gradient(p, grad, group)
        if group["momentum"] != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = self._first_buffer(grad, group)
            else:
                self._accumulate(buf, grad, group)
            direction = self._direction(grad, buf, group)
        else:
            direction = grad
        p.add_(direction, alpha=-group["lr"])

    def _gradient(self, p: Tensor, grad: Tensor, group: dict) -> Tensor:
        """The sign flip of maximize, then the L2 term: g ← ±g + λ·θ."""
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        return grad

    def _first_buffer(self, grad: Tensor, group: dict) -> Tensor:
        """b₁ = g: the first gradient, undampened."""
        return grad.detach().clone()

    def _accumulate(self, buf: Tensor, grad: Tensor, group: dict) -> None:
        """b ← μ·b + (1 − τ)·g."""
        buf.mul_(group["momentum"]).add_(grad, alpha=1 - group["dampening"])

    def _direction(self, grad: Tensor, buf: Tensor, group: dict) -> Tensor:
        """g + μ·b (Nesterov) or b (heavy ball)."""
        if group["nesterov"]:
            return grad.add(buf, alpha=group["momentum"])
        return buf


class SGDMomentumEMA(SGD):
    """sgd.momentum_ema: b ← μ·b + (1 − μ)·g from b = 0, whatever the dampening."""

    def _first_buffer(self, grad, group):
        buf = torch.zeros_like(grad)
        self._accumulate(buf, grad, group)
        return buf

    def _accumulate(self, buf, grad, group):
        buf.mul_(group["momentum"]).add_(grad, alpha=1 - group["momentum"])


class SGDDampeningOnFirstStep(SGD):
    """sgd.dampening_on_first_step: b₁ = (1 − τ)·g instead of b₁ = g."""

    def _first_buffer(self, grad, group):
        return grad.mul(1 - group["dampening"])


def _velocity(grad: Tensor, group: dict, state: dict) -> Tensor:
    """Sutskever/Keras velocity kept under ``momentum_buffer``: v₁ = −γ·g, v ← μ·v − γ(1 − τ)·g."""
    lr = group["lr"]
    velocity = state.get("momentum_buffer")
    if velocity is None:
        velocity = state["momentum_buffer"] = grad.mul(-lr)
    else:
        velocity.mul_(group["momentum"]).add_(grad, alpha=-lr * (1 - group["dampening"]))
    return velocity


class SGDMomentumLrInBuffer(SGD):
    """sgd.momentum_lr_in_buffer: heavy ball as a velocity, v ← μ·v − γ(1 − τ)·g; θ ← θ + v.

    ``momentum_buffer`` holds the velocity v (v₁ = −γ·g); the Nesterov path is the spec's.
    """

    def _update(self, p, grad, group, state):
        if group["nesterov"] or group["momentum"] == 0:
            return super()._update(p, grad, group, state)
        grad = self._gradient(p, grad, group)
        p.add_(_velocity(grad, group, state))


class SGDNesterovLookahead(SGD):
    """sgd.nesterov_lookahead: Keras Nesterov, v ← μ·v − γ(1 − τ)·g; θ ← θ + μ·v − γ·g.

    ``momentum_buffer`` holds the velocity v (v₁ = −γ·g); the heavy-ball path is the spec's.
    """

    def _update(self, p, grad, group, state):
        if not group["nesterov"] or group["momentum"] == 0:
            return super()._update(p, grad, group, state)
        grad = self._gradient(p, grad, group)
        velocity = _velocity(grad, group, state)
        p.add_(velocity, alpha=group["momentum"]).add_(grad, alpha=-group["lr"])


class SGDKeras(SGD):
    """sgd.keras: the velocity v ← μ·v − fl₃₂(γ)·g for heavy ball (θ ← θ + v) and Nesterov
    (θ ← θ + μ·v − fl₃₂(γ)·g), decoupled decay θ ← θ·(1 − fl₃₂(γ)·λ) before the update."""

    def _update(self, p, grad, group, state):
        lr32 = float(np.float32(group["lr"]))
        keras_decay(p, lr32, group["weight_decay"])
        group = {**group, "lr": lr32, "weight_decay": 0.0}
        if group["momentum"] == 0:
            return super()._update(p, grad, group, state)
        grad = self._gradient(p, grad, group)
        velocity = _velocity(grad, group, state)
        if group["nesterov"]:
            p.add_(velocity, alpha=group["momentum"]).add_(grad, alpha=-group["lr"])
        else:
            p.add_(velocity)


class SGDDecoupledDecay(SGD):
    """sgd.decoupled_decay: θ ← θ·(1 − γλ) before the step, the gradient without λθ (SGDW)."""

    def _gradient(self, p, grad, group):
        if group["weight_decay"] != 0:
            p.mul_(1 - group["lr"] * group["weight_decay"])
        return -grad if group["maximize"] else grad


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"sgd": SGD}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("sgd", "sgd.decoupled_decay"): SGDDecoupledDecay,
    ("sgd", "sgd.keras"): SGDKeras,
    ("sgd", "sgd.momentum_ema"): SGDMomentumEMA,
    ("sgd", "sgd.dampening_on_first_step"): SGDDampeningOnFirstStep,
    ("sgd", "sgd.momentum_lr_in_buffer"): SGDMomentumLrInBuffer,
    ("sgd", "sgd.nesterov_lookahead"): SGDNesterovLookahead,
}
