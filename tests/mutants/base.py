"""What the readable torch transcriptions share: one ``step`` that visits every parameter with a
gradient and hands it to the subclass's ``_state`` (created on first use) and ``_update``."""

from __future__ import annotations

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
