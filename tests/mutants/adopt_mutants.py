"""ADOPT as the official code (iShohei220/adopt, v2) computes it, and one mutant per catalogued variant.

:class:`ADOPT` is a readable single-tensor transcription of the official ``_single_tensor_adopt``
(clip_lambda = step**0.25 of the 0-based count, i.e. (t − 1)^¼ of the 1-based one): the same state
(``step`` as a float32 0-d tensor, ``exp_avg``, ``exp_avg_sq``), the same operations in the same
order. Each mutant overrides the one method holding the formula its variant changes (see
``derivations/adopt.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class ADOPT(PerParameterOptimizer):
    """The spec: ADOPT v2, clip (t − 1)^¼, L2 or decoupled (from t = 2) decay, maximize."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.9999), eps=1e-6, weight_decay=0.0,
                 weight_decouple=False, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      weight_decouple=weight_decouple, maximize=maximize))

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        t = int(state["step"].item())
        if wd != 0 and not group["weight_decouple"]:
            grad = grad.add(p, alpha=wd)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        if self._first_step_decay() and wd != 0 and group["weight_decouple"]:
            p.add_(p, alpha=-lr * wd)
        if t == 1:
            exp_avg_sq.addcmul_(grad, grad)
            return
        if not self._first_step_decay() and wd != 0 and group["weight_decouple"]:
            p.add_(p, alpha=-lr * wd)
        self._before_normalise(exp_avg_sq, grad, beta2)
        normed = grad.div(torch.clamp(exp_avg_sq.sqrt(), group["eps"]))
        clip = self._clip(t)
        if clip is not None:
            normed.clamp_(-clip, clip)
        exp_avg.lerp_(normed, 1 - beta1)
        p.add_(exp_avg, alpha=-lr)
        self._after_update(exp_avg_sq, grad, beta2)

    def _first_step_decay(self) -> bool:
        """Whether decoupled decay also acts at t = 1 (it does not)."""
        return False

    def _clip(self, t: int) -> float | None:
        """c_t = (t − 1)^¼ (the official clip_lambda of the 0-based count)."""
        return (t - 1) ** 0.25

    def _before_normalise(self, v: Tensor, grad: Tensor, beta2: float) -> None:
        """Nothing: v is the previous step's."""

    def _after_update(self, v: Tensor, grad: Tensor, beta2: float) -> None:
        """v ← β₂·v + (1 − β₂)·g², after its use."""
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)


class ADOPTClipStepPlusOne(ADOPT):
    """adopt.clip_step_plus_one: c = t^¼ (pytorch_optimizer's default clip_lambda)."""

    def _clip(self, t):
        return t**0.25


class ADOPTClipExp0333(ADOPT):
    """adopt.clip_exp_0333: c = (t − 1)^0.333 (timm's default clip_exp)."""

    def _clip(self, t):
        return (t - 1) ** 0.333


class ADOPTNoClip(ADOPT):
    """adopt.no_clip: ADOPT v1, no clipping."""

    def _clip(self, t):
        return None


class ADOPTDecoupledDecayAtFirstStep(ADOPT):
    """adopt.decoupled_decay_at_first_step: θ ← θ − γλθ at t = 1 too (pytorch_optimizer)."""

    def _first_step_decay(self):
        return True


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"adopt": ADOPT}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("adopt", "adopt.clip_step_plus_one"): ADOPTClipStepPlusOne,
    ("adopt", "adopt.clip_exp_0333"): ADOPTClipExp0333,
    ("adopt", "adopt.no_clip"): ADOPTNoClip,
    ("adopt", "adopt.decoupled_decay_at_first_step"): ADOPTDecoupledDecayAtFirstStep,
}
