"""Factories for library optimizers the harness cannot build from param groups as they are, named
as ``--optimizer=optimizer_conformance.conformance.wrappers:<factory>``. They only construct and
switch on; none computes anything of the algorithm itself.

**Wrappers (Lookahead).**

The libraries' Lookahead wraps an optimizer *instance*, so the harness cannot build it from param
groups directly. Each factory here builds the inner torch optimizer from the param groups and the
settings it is given (torch's names), and wraps it in the library's Lookahead with ``k`` and
``alpha``; it computes nothing itself. ``k`` and ``alpha`` are taken from the keyword arguments
(the harness passes the first group's settings) and removed from the groups, where the inner
optimizer has no use for them. Use them as ``--optimizer=optimizer_conformance.conformance.wrappers:<name>``.

* ``pytorch_optimizer_lookahead_{sgd,adam}``: ``pytorch_optimizer.Lookahead`` (pullback_momentum
  passes through, default ``'none'``). It refuses α = 1 (``validate_range(alpha, 'alpha', 0.0, 1.0)``
  in ``Lookahead.__init__``, a half-open range [0, 1)): that refusal is reported as a skipped case
  (the library cannot express the setting), never as a pass.
* ``timm_lookahead_{sgd,adam}``: ``timm.optim.lookahead.Lookahead`` (its default k is 6: every case
  sets k).
* ``torch_optimizer_lookahead_{sgd,adam}``: ``torch_optimizer.Lookahead``.

**Adafactor under torch's names.** ``timm_adafactor`` (timm's Adafactor with the learning rate
given: its absolute step), ``timm_adafactor_relative_step`` (``lr=None``: the fairseq / Hugging Face
relative step) and ``torch_optimizer_adafactor`` (its default ``relative_step=True``) take
``torch.optim.Adafactor``'s settings and pass them under the library's names (``decay_rate``,
``clip_threshold``, ``eps``/``eps_scale`` or ``eps2``); nothing else.

**pytorch_optimizer's Muon** (``pytorch_optimizer_muon``): its constructor requires ``use_muon`` in
every param group (Muon for ``True``, its AdamW for ``False``); the factory sets it to ``True`` in
each group and passes every setting as given.

**Optimizers built in eval mode (schedulefree).**

schedulefree's optimizers (``AdamWScheduleFree``, ``SGDScheduleFree``, their ``Reference``
classes, ...) are built in *eval* mode and raise on ``step()`` until ``optimizer.train()`` is
called (``schedulefree/adamw_schedulefree.py``, ``step``: "Optimizer was not in train mode").
The harness constructs and steps a candidate directly, so the board names them through this
module::

    --optimizer=optimizer_conformance.conformance.wrappers:schedulefree.AdamWScheduleFree

``schedulefree.<Name>`` here is a factory with the class's own signature (``inspect.signature``
follows ``__wrapped__``, so the plugin sees the settings the class accepts) that constructs
``schedulefree.<Name>(params, **kwargs)``, calls ``train()`` and returns the optimizer. It only
wraps: no arithmetic of the library is changed or replaced. A resume case rebuilds through the
factory and then loads the state_dict (which carries the group's ``train_mode``).

Libraries are imported when a factory is first asked for, never when this module is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .candidates import CaseSkipped

_LOOKAHEAD = ("k", "alpha")


def _inner(name: str, params: Any, settings: dict[str, Any]):
    import torch

    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[name]
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [{key: v for key, v in group.items() if key not in _LOOKAHEAD} for group in params]
    return cls(params, **settings)


def _pytorch_optimizer(inner: str, params, k, alpha, pullback_momentum, settings):
    from pytorch_optimizer import Lookahead

    try:
        return Lookahead(_inner(inner, params, settings), k=k, alpha=alpha, pullback_momentum=pullback_momentum)
    except ValueError as exc:
        if alpha == 1:
            raise CaseSkipped(f"pytorch_optimizer.Lookahead refuses alpha=1 ({exc}; pytorch_optimizer/optimizer/"
                              f"lookahead.py Lookahead.__init__, validate_range(alpha, 'alpha', 0.0, 1.0))") from exc
        raise


def pytorch_optimizer_lookahead_sgd(params, k: int = 5, alpha: float = 0.5, pullback_momentum: str = "none",
                                    **settings):
    """pytorch_optimizer.Lookahead(torch.optim.SGD(params, **settings), k, alpha, pullback_momentum)."""
    return _pytorch_optimizer("sgd", params, k, alpha, pullback_momentum, settings)


def pytorch_optimizer_lookahead_adam(params, k: int = 5, alpha: float = 0.5, pullback_momentum: str = "none",
                                     **settings):
    """pytorch_optimizer.Lookahead(torch.optim.Adam(params, **settings), k, alpha, pullback_momentum)."""
    return _pytorch_optimizer("adam", params, k, alpha, pullback_momentum, settings)


def timm_lookahead_sgd(params, k: int = 6, alpha: float = 0.5, **settings):
    """timm.optim.lookahead.Lookahead(torch.optim.SGD(params, **settings), alpha, k)."""
    from timm.optim.lookahead import Lookahead

    return Lookahead(_inner("sgd", params, settings), alpha=alpha, k=k)


def timm_lookahead_adam(params, k: int = 6, alpha: float = 0.5, **settings):
    """timm.optim.lookahead.Lookahead(torch.optim.Adam(params, **settings), alpha, k)."""
    from timm.optim.lookahead import Lookahead

    return Lookahead(_inner("adam", params, settings), alpha=alpha, k=k)


def torch_optimizer_lookahead_sgd(params, k: int = 5, alpha: float = 0.5, **settings):
    """torch_optimizer.Lookahead(torch.optim.SGD(params, **settings), k, alpha)."""
    from torch_optimizer import Lookahead

    return Lookahead(_inner("sgd", params, settings), k=k, alpha=alpha)


def torch_optimizer_lookahead_adam(params, k: int = 5, alpha: float = 0.5, **settings):
    """torch_optimizer.Lookahead(torch.optim.Adam(params, **settings), k, alpha)."""
    from torch_optimizer import Lookahead

    return Lookahead(_inner("adam", params, settings), k=k, alpha=alpha)


# -- Adafactor under torch's names ----------------------------------------------------------------
# torch.optim.Adafactor's settings, as the fairseq-style Adafactors of timm and torch_optimizer
# spell them: beta2_decay is their decay_rate, d their clip_threshold, and torch's eps = (ε₁, ε₂)
# their (eps, eps_scale) (timm) or eps2 = (ε₁, ε₂) (torch_optimizer). ε₁ = None (torch: the dtype's
# machine epsilon, a floor the cases keep inactive) becomes the library's own default 1e-30, added
# to g² (negligible next to the cases' g²). Only names change: each library computes as it does.
_FAIRSEQ_EPS1 = 1e-30


def _eps1(eps) -> float:
    return _FAIRSEQ_EPS1 if eps[0] is None else eps[0]


def _fairseq_names(settings: dict[str, Any], eps: Callable[[tuple], dict[str, Any]]) -> dict[str, Any]:
    renamed = {"beta2_decay": "decay_rate", "d": "clip_threshold"}
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key == "eps":
            out.update(eps(tuple(value)))
        else:
            out[renamed.get(key, key)] = value
    return out


def _fairseq_groups(params: Any, eps: Callable[[tuple], dict[str, Any]]) -> list:
    params = list(params)
    if params and isinstance(params[0], dict):
        return [_fairseq_names(group, eps) for group in params]
    return params


def _timm_eps(eps: tuple) -> dict[str, Any]:
    return {"eps": _eps1(eps), "eps_scale": eps[1]}


def timm_adafactor(params, lr: float = 1e-2, beta2_decay: float = -0.8, eps: tuple = (None, 1e-3),
                   d: float = 1.0, weight_decay: float = 0.0):
    """timm.optim.adafactor.Adafactor(params, lr=lr, eps=ε₁, eps_scale=ε₂, clip_threshold=d,
    decay_rate=beta2_decay, weight_decay): an external learning rate, so timm's absolute step."""
    from timm.optim.adafactor import Adafactor

    settings = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay)
    return Adafactor(_fairseq_groups(params, _timm_eps), **_fairseq_names(settings, _timm_eps))


def timm_adafactor_relative_step(params, lr: float = 1e-2, beta2_decay: float = -0.8, eps: tuple = (None, 1e-3),
                                 d: float = 1.0, weight_decay: float = 0.0):
    """timm.optim.adafactor.Adafactor(params, lr=None, ...): the relative step of fairseq / Hugging
    Face (the learning rate is the library's, min(1e-2, 1/√t)·max(ε₂, RMS(θ)); γ is not used)."""
    from timm.optim.adafactor import Adafactor

    settings = dict(beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay)
    return Adafactor(_fairseq_groups(params, _timm_eps), lr=None, **_fairseq_names(settings, _timm_eps))


def _torch_optimizer_eps(eps: tuple) -> dict[str, Any]:
    return {"eps2": (_eps1(eps), eps[1])}


def torch_optimizer_adafactor(params, lr: float = 1e-2, beta2_decay: float = -0.8, eps: tuple = (None, 1e-3),
                              d: float = 1.0, weight_decay: float = 0.0):
    """torch_optimizer.Adafactor(params, lr, eps2=(ε₁, ε₂), clip_threshold=d, decay_rate=beta2_decay,
    weight_decay) with its defaults otherwise (relative_step=True: the fairseq relative step)."""
    from torch_optimizer import Adafactor

    settings = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay)
    return Adafactor(_fairseq_groups(params, _torch_optimizer_eps), **_fairseq_names(settings, _torch_optimizer_eps))


# -- pytorch_optimizer's Muon: every param group says use_muon -----------------------------------
def pytorch_optimizer_muon(params, lr: float = 2e-2, momentum: float = 0.95, weight_decay: float = 0.0,
                           nesterov: bool = True, ns_steps: int = 5, ns_coeffs: Any = "original",
                           maximize: bool = False):
    """pytorch_optimizer.Muon with ``use_muon=True`` in every param group: its constructor raises
    "`use_muon` must be set." for a group without the flag (pytorch_optimizer/optimizer/muon/muon.py
    Muon.__init__; ``use_muon=False`` groups run its AdamW instead). The flag only routes the groups to
    its Muon update; every setting passes as given."""
    from pytorch_optimizer import Muon

    params = list(params)
    if params and isinstance(params[0], dict):
        groups = [dict(group, use_muon=True) for group in params]
    else:
        groups = [{"params": params, "use_muon": True}]
    return Muon(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                ns_steps=ns_steps, ns_coeffs=ns_coeffs, maximize=maximize)


# -- optimizers built in eval mode ---------------------------------------------------------------
def in_train_mode(cls: type) -> Callable[..., Any]:
    """A factory ``(params, **kwargs) -> cls(params, **kwargs)`` with ``train()`` already called."""

    def build(params, *args: Any, **kwargs: Any):
        opt = cls(params, *args, **kwargs)
        opt.train()
        return opt

    build.__name__ = build.__qualname__ = cls.__name__
    build.__doc__ = f"{cls.__module__}.{cls.__qualname__}(params, **kwargs), then .train()"
    build.__wrapped__ = cls  # the class's signature: the settings it accepts
    return build


class TrainMode:
    """``TrainMode("schedulefree").AdamWScheduleFree``: the train-mode factory of that class."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        cls = getattr(importlib.import_module(self._module), name)
        return in_train_mode(cls)


schedulefree = TrainMode("schedulefree")
