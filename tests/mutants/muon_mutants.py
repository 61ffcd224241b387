"""Muon as ``torch.optim.Muon`` computes it, and one mutant per catalogued variant.

:class:`Muon` transcribes ``_single_tensor_muon`` and ``_zeropower_via_newtonschulz``
(torch/optim/_muon.py): the same state (``momentum_buffer``), the same bfloat16 Newton–Schulz
iteration and the same operations in the same order. Each mutant overrides the one method that
holds its variant's formula.
"""

from __future__ import annotations

import math

import torch


class Muon(torch.optim.Optimizer):
    """The spec: PyTorch's Muon."""

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                                      ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                                      adjust_lr_fn=adjust_lr_fn))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                update = self._direction(p.grad, state, group)
                update = self._newton_schulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
                adjusted_lr = self._adjust_lr(group["lr"], group["adjust_lr_fn"], p.shape)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-adjusted_lr)

    def _direction(self, grad, state, group):
        buf = state["momentum_buffer"]
        buf.lerp_(grad, 1 - group["momentum"])
        return grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf

    def _normalise(self, X, eps):
        return X.div_(X.norm().clamp(min=eps))

    def _newton_schulz(self, grad, ns_coefficients, ns_steps, eps):
        a, b, c = ns_coefficients
        X = grad.bfloat16()
        if grad.size(0) > grad.size(1):
            X = X.T
        X = self._normalise(X, eps)
        for _ in range(ns_steps):
            A = X @ X.T
            B = torch.addmm(A, A, A, beta=b, alpha=c)
            X = torch.addmm(X, B, X, beta=a)
        if grad.size(0) > grad.size(1):
            X = X.T
        return X

    def _adjust_lr(self, lr, adjust_lr_fn, shape):
        A, B = shape[:2]
        if adjust_lr_fn is None or adjust_lr_fn == "original":
            return lr * math.sqrt(max(1, A / B))
        if adjust_lr_fn == "match_rms_adamw":
            return lr * 0.2 * math.sqrt(max(A, B))
        return lr


class SumMomentum(Muon):
    """muon.sum_momentum: B ← μB + g; U = g + μB (Nesterov) or B."""

    def _direction(self, grad, state, group):
        buf = state["momentum_buffer"]
        buf.mul_(group["momentum"]).add_(grad)
        return grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf


class BiasCorrectedMomentum(Muon):
    """muon.bias_corrected_momentum: optax's bias-corrected (NAdam-style) direction."""

    def _direction(self, grad, state, group):
        mu = group["momentum"]
        state["step"] = state.get("step", 0) + 1
        t = state["step"]
        buf = state["momentum_buffer"]
        buf.lerp_(grad, 1 - mu)
        if group["nesterov"]:
            return buf * (mu / (1 - mu ** (t + 1))) + grad * ((1 - mu) / (1 - mu**t))
        return buf / (1 - mu**t)


class EpsAddedToNorm(Muon):
    """muon.eps_added_to_norm: X / (‖X‖_F + ε)."""

    def _normalise(self, X, eps):
        return X.div_(X.norm() + eps)


class MatchRmsAdamW(Muon):
    """muon.match_rms_adamw: lr·0.2·√max(A, B)."""

    def _adjust_lr(self, lr, adjust_lr_fn, shape):
        return lr * 0.2 * math.sqrt(max(shape[0], shape[1]))


class MaxDimScale(Muon):
    """muon.max_dim_scale: lr·√max(A, B)."""

    def _adjust_lr(self, lr, adjust_lr_fn, shape):
        return lr * math.sqrt(max(shape[0], shape[1]))


class LrAdjustmentTransposed(Muon):
    """muon.lr_adjustment_transposed: lr·√max(1, B/A)."""

    def _adjust_lr(self, lr, adjust_lr_fn, shape):
        return lr * math.sqrt(max(1, shape[1] / shape[0]))


CONTROLS = {"muon": Muon}
class OptaxMuon(BiasCorrectedMomentum, EpsAddedToNorm):
    """muon.bias_corrected_momentum + muon.eps_added_to_norm: optax.contrib.muon (scale_by_muon's
    bias-corrected momentum, orthogonalize_via_newton_schulz's X / (‖X‖ + ε))."""


MUTANTS = {
    ("muon", "muon.sum_momentum"): SumMomentum,
    ("muon", "muon.bias_corrected_momentum"): BiasCorrectedMomentum,
    ("muon", "muon.eps_added_to_norm"): EpsAddedToNorm,
    ("muon", "muon.match_rms_adamw"): MatchRmsAdamW,
    ("muon", "muon.max_dim_scale"): MaxDimScale,
    ("muon", "muon.lr_adjustment_transposed"): LrAdjustmentTransposed,
}

COMPOUND_MUTANTS = {
    ("muon", "muon.bias_corrected_momentum + muon.eps_added_to_norm"): OptaxMuon,
}
