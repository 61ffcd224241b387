"""RMSprop as ``torch.optim.RMSprop`` computes it, and one mutant per catalogued RMSprop variant.

:class:`RMSprop` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_rmsprop`` (capturable and differentiable off): the same state (``step`` as a
float32 0-d tensor, ``square_avg``, ``momentum_buffer`` only with momentum, ``grad_avg`` only
when centered), the same operations in the same order, hyperparameters read from ``group[...]``
at every step. Each mutant overrides the one method holding the formula its variant changes (see
``derivations/rmsprop.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .base import PerParameterOptimizer, keras_decay


class RMSprop(PerParameterOptimizer):
    """The spec: PyTorch's RMSprop with centering, momentum, L2 weight decay and maximize."""

    # Where the momentum buffer is kept in ``optimizer.state[p]``.
    BUFFER = "momentum_buffer"

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, maximize=False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["square_avg"] = self._initial_mean_square(p)
            if group["momentum"] > 0:
                state[self.BUFFER] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _initial_mean_square(self, p: Tensor) -> Tensor:
        """v₀ = 0."""
        return torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        alpha = group["alpha"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        square_avg = state["square_avg"]
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg.lerp_(grad, 1 - alpha)
            variance = square_avg.addcmul(grad_avg, grad_avg, value=-1)
        else:
            variance = square_avg
        avg = self._denominator(variance, group["eps"])
        if group["momentum"] > 0:
            self._descend_with_momentum(p, grad, avg, group, state[self.BUFFER])
        else:
            p.addcdiv_(grad, avg, value=-group["lr"])

    def _denominator(self, variance: Tensor, eps: float) -> Tensor:
        """a = √ṽ + ε (a new tensor: ṽ is the state itself when not centered)."""
        return variance.sqrt().add_(eps)

    def _descend_with_momentum(self, p: Tensor, grad: Tensor, avg: Tensor, group: dict,
                               buf: Tensor) -> None:
        """b ← μ·b + g/a; θ ← θ − γ·b."""
        buf.mul_(group["momentum"]).addcdiv_(grad, avg)
        p.add_(buf, alpha=-group["lr"])


class RMSpropEpsInsideSqrt(RMSprop):
    """rmsprop.eps_inside_sqrt: a = √(ṽ + ε)."""

    def _denominator(self, variance, eps):
        return variance.add(eps).sqrt_()


class RMSpropInitialMsOne(RMSprop):
    """rmsprop.initial_ms_one: v₀ = 1."""

    def _initial_mean_square(self, p):
        return torch.ones_like(p, memory_format=torch.preserve_format)


class RMSpropLrInMomentumBuffer(RMSprop):
    """rmsprop.lr_in_momentum_buffer: b ← μ·b + γ·g/a; θ ← θ − b.

    The buffer holds the learning rate, so it is a different quantity from torch's
    ``momentum_buffer``; it is kept under Keras's name for it (``momentums`` there, one per
    variable), not under torch's.
    """

    BUFFER = "momentum"

    def _descend_with_momentum(self, p, grad, avg, group, buf):
        buf.mul_(group["momentum"]).addcdiv_(grad, avg, value=group["lr"])
        p.sub_(buf)


class RMSpropTF(RMSpropEpsInsideSqrt, RMSpropInitialMsOne, RMSpropLrInMomentumBuffer):
    """rmsprop.eps_inside_sqrt + rmsprop.initial_ms_one + rmsprop.lr_in_momentum_buffer: timm's
    RMSpropTF (timm/optim/rmsprop_tf.py: ``square_avg`` starts at ones, ``avg = (square_avg +
    eps).sqrt_()``, ``buf.mul_(momentum).addcdiv_(grad, avg, value=lr); p.add_(-buf)``)."""


class RMSpropKeras(RMSpropEpsInsideSqrt, RMSpropLrInMomentumBuffer):
    """rmsprop.keras (keras/src/optimizers/rmsprop.py): a = √(ṽ + ε), b ← μ·b + γ·g/a, θ ← θ − b, the
    learning rate held in float32 and decoupled decay θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) before the
    step, no L2."""

    def _update(self, p, grad, group, state):
        keras_decay(p, group["lr"], group["weight_decay"])
        super()._update(p, grad, {**group, "lr": float(np.float32(group["lr"])), "weight_decay": 0.0}, state)


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"rmsprop": RMSprop}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("rmsprop", "rmsprop.eps_inside_sqrt"): RMSpropEpsInsideSqrt,
    ("rmsprop", "rmsprop.initial_ms_one"): RMSpropInitialMsOne,
    ("rmsprop", "rmsprop.lr_in_momentum_buffer"): RMSpropLrInMomentumBuffer,
    ("rmsprop", "rmsprop.keras"): RMSpropKeras,
}

COMPOUND_MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("rmsprop", "rmsprop.eps_inside_sqrt + rmsprop.initial_ms_one + rmsprop.lr_in_momentum_buffer"): RMSpropTF,
}
