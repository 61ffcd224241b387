"""ASGD as ``torch.optim.ASGD`` computes it, and one mutant per catalogued ASGD variant.

:class:`ASGD` is a readable single-tensor (for-loop) transcription of torch's
``_single_tensor_asgd`` (capturable and differentiable off): the same state (``step``, ``eta``
and ``mu`` as float32 0-d tensors, ``ax``), the same operations in the same order,
hyperparameters read from ``group[...]`` at every step. Each mutant overrides the one method
holding the formula its variant changes (see ``derivations/asgd.py``).

The acceptable variants (``asgd.float32_eta_mu``, ``asgd.float32_eta_arithmetic``) have no
mutant: torch itself (forloop and foreach) and this control show them. The mutants keep η and μ
in the parameter's dtype instead (torch kept Python floats before pytorch/pytorch#71335): each
is then exactly its variant, in float64 too, and differs from the spec by its formula alone (a
float32 η would put a float64 mutant ~10⁷ tolerances off every exact trajectory, its variant's
included).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerParameterOptimizer


class ASGD(PerParameterOptimizer):
    """The spec: PyTorch's ASGD with L2 weight decay and maximize."""

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0,
                 maximize=False):
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _scalar_dtype(self, p: Tensor) -> torch.dtype:
        """The dtype of η and μ: float32 whatever the parameter's (torch's _get_scalar_dtype())."""
        return torch.float32

    def _store(self, scalar: Tensor, value: float) -> None:
        """η or μ ← a double computed in Python, through ``torch.as_tensor``: float32 (the default
        dtype), also after ``load_state_dict`` has cast the scalars to a float64 param's dtype."""
        scalar.copy_(torch.as_tensor(value))

    def _state(self, p: Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["eta"] = torch.as_tensor(group["lr"], dtype=self._scalar_dtype(p)).clone()
            state["mu"] = torch.ones((), dtype=self._scalar_dtype(p))
            state["ax"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _update(self, p: Tensor, grad: Tensor, group: dict, state: dict) -> None:
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        eta = state["eta"].item()  # a float32 value
        self._decay(p, group["lambd"], eta)
        p.add_(grad, alpha=-eta)
        mu, ax = state["mu"], state["ax"]
        if mu.item() != 1:
            ax.add_(p.sub(ax).mul_(mu))
        else:
            ax.copy_(p)
        step = state["step"].item()
        self._store(state["eta"], self._eta(group, step))
        self._store(state["mu"], 1 / max(1, step - group["t0"]))

    def _decay(self, p: Tensor, lambd: float, eta: float) -> None:
        """The decay term θ ← θ·(1 − λη)."""
        p.mul_(1 - lambd * eta)

    def _eta(self, group: dict, step: float) -> float:
        """The step size of the next step, γ/(1 + λγt)^α (in double precision)."""
        lr, lambd, alpha = group["lr"], group["lambd"], group["alpha"]
        return lr / ((1 + lambd * lr * step) ** alpha)


class _ExactScalars(ASGD):
    """η and μ in the parameter's dtype (the base of the mutants)."""

    def _scalar_dtype(self, p):
        return p.dtype

    def _store(self, scalar, value):
        scalar.fill_(value)  # one rounding, to the parameter's dtype


class ASGDAlphaOnStep(_ExactScalars):
    """asgd.alpha_on_step: η ← γ/(1 + λγ·t^α) (torch 2.1–2.3's foreach path)."""

    def _eta(self, group, step):
        lr, lambd, alpha = group["lr"], group["lambd"], group["alpha"]
        return lr / (1 + lambd * lr * step**alpha)


class ASGDNoDecayTerm(_ExactScalars):
    """asgd.no_decay_term: θ ← θ − ηg, without the factor (1 − λη)."""

    def _decay(self, p, lambd, eta):
        pass


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {"asgd": ASGD}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("asgd", "asgd.alpha_on_step"): ASGDAlphaOnStep,
    ("asgd", "asgd.no_decay_term"): ASGDNoDecayTerm,
}
