"""SOAP as the official code defines it, and one mutant per catalogued SOAP variant.

:class:`Soap` is a readable torch transcription of the spec (``derivations/soap.py``): per-param
state ``step`` (gradients seen), ``exp_avg`` (parameter's basis), ``exp_avg_sq`` (eigenbasis),
``GG`` (one factor per dimension of a ≥ 2-D param) and ``Q`` (their eigenbases); the first step only
builds the preconditioner; refreshes by one power-iteration step and QR, v re-sorted. Each mutant
overrides the one method (or flag) holding what its variant changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerParameterOptimizer


def _rotate(x: Tensor, bases: list, back: bool = False) -> Tensor:
    for d, q in enumerate(bases):
        if q is not None:
            x = torch.movedim(torch.tensordot(x, q.T if back else q, dims=([d], [0])), -1, d)
    return x


def _outer(g: Tensor, d: int) -> Tensor:
    unfolded = torch.movedim(g, d, 0).reshape(g.shape[d], -1)
    return unfolded @ unfolded.T


class Soap(PerParameterOptimizer):
    """The spec: the official SOAP (first step skipped, per-param counts, power-step refresh)."""

    early_init = False  # build the preconditioner before the step (pytorch_optimizer's init_group)

    def __init__(self, params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=None, eps=1e-8, weight_decay=0.01,
                 precondition_frequency=10, correct_bias=True, normalize_grads=False):
        super().__init__(params, dict(lr=lr, betas=betas, shampoo_beta=shampoo_beta, eps=eps,
                                      weight_decay=weight_decay, precondition_frequency=precondition_frequency,
                                      correct_bias=correct_bias, normalize_grads=normalize_grads))
        self.calls = 0

    def step(self, closure=None):
        self.calls += 1
        return super().step(closure)

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        return state

    # -- what the variants change -------------------------------------------------------------
    def _skip(self, state) -> bool:
        """Whether this step only builds the preconditioner."""
        return state["step"] == 1

    def _bias_k(self, state) -> int:
        return state["step"] - 1

    def _refresh_k(self, state) -> int:
        return state["step"] - 1

    def _active(self, state) -> bool:
        """Whether the preconditioner accumulates this step's gradient (after the step)."""
        return True

    def _has_factor(self, grad: Tensor) -> list[bool]:
        return [False] if grad.dim() == 1 else [True] * grad.dim()

    def _new_basis(self, factor: Tensor, basis: Tensor) -> tuple[Tensor, Tensor | None]:
        """One power-iteration step from the sorted basis, and the sort."""
        product = factor @ basis
        order = torch.argsort((basis * product).sum(0), descending=True)
        return torch.linalg.qr(product[:, order])[0], order

    def _normalise(self, u: Tensor, group) -> Tensor:
        return u / (1e-30 + u.square().mean().sqrt())

    def _decay(self, p: Tensor, group, before: bool) -> None:
        if not before:
            p.mul_(1 - group["lr"] * group["weight_decay"])

    # -- the algorithm ------------------------------------------------------------------------
    def _init(self, grad: Tensor, state: dict, beta_s: float) -> None:
        state["GG"] = [torch.zeros(n, n, dtype=grad.dtype) if on else None
                       for n, on in zip(grad.shape, self._has_factor(grad), strict=True)]
        self._accumulate(grad, state, beta_s)
        state["Q"] = [None if f is None else torch.linalg.eigh(f)[1].flip(1) for f in state["GG"]]

    def _accumulate(self, grad: Tensor, state: dict, beta_s: float) -> None:
        for d, factor in enumerate(state["GG"]):
            if factor is not None:
                factor.lerp_(_outer(grad, d), 1 - beta_s)

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        beta1, beta2 = group["betas"]
        beta_s = beta2 if group["shampoo_beta"] is None else group["shampoo_beta"]
        state["step"] += 1
        if self.early_init and "GG" not in state:
            self._init(grad, state, beta_s)
        bases = state.get("Q") or []
        if not self._skip(state):
            m, v = state["exp_avg"], state["exp_avg_sq"]
            g_rotated = _rotate(grad, bases)
            m.mul_(beta1).add_(grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g_rotated, g_rotated, value=1 - beta2)
            update = _rotate(_rotate(m, bases) / (v.sqrt() + group["eps"]), bases, back=True)
            if group["normalize_grads"]:
                update = self._normalise(update, group)
            k = self._bias_k(state)
            step_size = group["lr"] * ((1 - beta2**k) ** 0.5 / (1 - beta1**k) if group["correct_bias"] else 1.0)
            self._decay(p, group, before=True)
            p.add_(update, alpha=-step_size)
            self._decay(p, group, before=False)
        if "GG" not in state:
            self._init(grad, state, beta_s)
        elif self._active(state):
            self._accumulate(grad, state, beta_s)
            k = self._refresh_k(state)
            if k > 0 and k % group["precondition_frequency"] == 0:
                for d, factor in enumerate(state["GG"]):
                    if factor is not None:
                        state["Q"][d], order = self._new_basis(factor, state["Q"][d])
                        if order is not None:
                            state["exp_avg_sq"] = state["exp_avg_sq"].index_select(d, order)


class SoapEighRefresh(Soap):
    """soap.eigh_refresh: Q ← eigh(L) at every refresh, v not re-sorted."""

    def _new_basis(self, factor, basis):
        return torch.linalg.eigh(factor)[1].flip(1), None


class SoapAdamFirstStep(Soap):
    """soap.adam_first_step: the first step is an unrotated Adam step; bias correction with k = t."""

    def _skip(self, state):
        return False

    def _bias_k(self, state):
        return state["step"]


class SoapDecayBeforeStep(Soap):
    """soap.decay_before_step: θ(1 − γλ) before the step."""

    def _decay(self, p, group, before):
        if before:
            p.mul_(1 - group["lr"] * group["weight_decay"])


class SoapGroupStep(Soap):
    """soap.group_step: pytorch_optimizer's count of step() calls for the skip, the bias correction
    and the refresh; a param's first gradient builds its preconditioner before the step (kept with
    the optimizer, so a reload keeps the count)."""

    early_init = True

    def _skip(self, state):
        return self.calls == 1

    def _bias_k(self, state):
        return self.calls - 1

    def _refresh_k(self, state):
        return self.calls - 1

    def _active(self, state):
        return self.calls > 1

    def state_dict(self):
        sd = super().state_dict()
        sd["param_groups"][0]["calls"] = self.calls
        return sd

    def load_state_dict(self, state_dict):
        self.calls = state_dict["param_groups"][0].get("calls", 0)
        super().load_state_dict(state_dict)


class SoapNormalizeEps(Soap):
    """soap.normalize_eps: U / (rms(U) + ε)."""

    def _normalise(self, u, group):
        return u / (u.square().mean().sqrt() + group["eps"])


class SoapPrecondition1d(Soap):
    """soap.precondition_1d: a vector gets a factor and is rotated too."""

    def _has_factor(self, grad):
        return [True] * grad.dim()


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"soap": Soap}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("soap", "soap.eigh_refresh"): SoapEighRefresh,
    ("soap", "soap.adam_first_step"): SoapAdamFirstStep,
    ("soap", "soap.decay_before_step"): SoapDecayBeforeStep,
    ("soap", "soap.group_step"): SoapGroupStep,
    ("soap", "soap.normalize_eps"): SoapNormalizeEps,
    ("soap", "soap.precondition_1d"): SoapPrecondition1d,
}
