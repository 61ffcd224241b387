"""What the readable torch transcriptions share: one ``step`` that visits every parameter with a
gradient and hands it to the subclass's ``_state`` (created on first use) and ``_update``."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class PerParameterOptimizer(torch.optim.Optimizer):
    """``step(closure)``: the closure's loss (evaluated with grad enabled), one ``_update`` per
    parameter that has a gradient; a parameter without one is left alone, state included."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, group, self._state(p, group))
        return loss

    def _state(self, p: Tensor, group: dict) -> dict:
        raise NotImplementedError

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        raise NotImplementedError


class GlobalStepCounter:
    """Mixin for step.global_counter: one step count per param group, advanced on every ``step()``
    call whether or not a param has a gradient (pytorch_optimizer's ``group['step']``, Keras's
    ``iterations``). The count lives in the param group, so it survives a state_dict round trip;
    before the spec's ``_update`` advances the param's ``step`` by one, that ``step`` is set to the
    calls before this one, so that the update reads the number of calls."""

    def step(self, closure=None):
        for group in self.param_groups:
            group["step_calls"] = group.get("step_calls", 0) + 1
        return super().step(closure)

    def _update(self, p, grad, group, state):
        state["step"].fill_(group["step_calls"] - 1)
        super()._update(p, grad, group, state)


def keras_decay(p, lr: float, weight_decay: float) -> None:
    """Keras's decoupled decay on the torch backend: θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) (the
    factor is a float32 tensor: the float32 learning-rate variable times the Python float)."""
    if weight_decay != 0:
        f32 = np.float32
        p.mul_(float(f32(f32(1) - f32(f32(weight_decay) * f32(lr)))))
