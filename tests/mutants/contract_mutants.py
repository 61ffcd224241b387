"""Contract mutants: torch's Adam, each breaking exactly one item of the optimizer contract.

``MUTANTS[check_name]`` is a ``torch.optim.Adam`` subclass that computes Adam exactly (the
golden trajectories still pass) but violates only the contract that
:mod:`optimizer_conformance.conformance.contract` checks under that name. Most wrap
``Adam.step`` (unhooked: see :func:`_adam_step`), adjusting the param groups or gradients around it and restoring them afterwards.
"""

from __future__ import annotations

import copy
import types
from collections import defaultdict
from contextlib import contextmanager

import torch


def _adam_step(opt: torch.optim.Optimizer, closure=None):
    """Adam's step without the hook wrapper: a subclass's own step is wrapped already, and
    ``super().step()`` would fire the step hooks a second time."""
    fn = torch.optim.Adam.step
    while getattr(fn, "hooked", False):
        fn = fn.__wrapped__
    return fn(opt, closure)


def _params(opt: torch.optim.Optimizer):
    return [p for g in opt.param_groups for p in g["params"]]


@contextmanager
def _grads(opt: torch.optim.Optimizer, replace):
    """Set p.grad = replace(p) (when not ``...``) for one step, then put the old grads back."""
    saved = []
    for p in _params(opt):
        new = replace(p)
        if new is not ...:
            saved.append((p, p.grad))
            p.grad = new
    try:
        yield
    finally:
        for p, g in saved:
            p.grad = g


@contextmanager
def _groups(opt: torch.optim.Optimizer, key: str, value_of):
    """Set group[key] = value_of(group) for one step, then put the old values back."""
    saved = [(g, g[key]) for g in opt.param_groups]
    for g in opt.param_groups:
        g[key] = value_of(g)
    try:
        yield
    finally:
        for g, v in saved:
            g[key] = v


class ZeroGradIgnoresSetToNone(torch.optim.Adam):
    """zero_grad always sets the grads to None, whatever set_to_none says."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=True)


class StepReturnsNone(torch.optim.Adam):
    """step(closure) calls the closure but drops its loss."""

    def step(self, closure=None):
        _adam_step(self, closure)
        return None


class StepsParamsWithoutGrad(torch.optim.Adam):
    """A trainable param without a gradient is stepped as if its gradient were zero."""

    def step(self, closure=None):
        fill = lambda p: torch.zeros_like(p) if p.grad is None and p.requires_grad else ...  # noqa: E731
        with _grads(self, fill):
            return _adam_step(self, closure)


class IgnoresAddedGroups(torch.optim.Adam):
    """Only the groups given to the constructor are stepped: add_param_group later is ignored."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._n_initial = len(self.param_groups)

    def step(self, closure=None):
        groups = self.param_groups
        self.param_groups = groups[: getattr(self, "_n_initial", len(groups))]
        try:
            return _adam_step(self, closure)
        finally:
            self.param_groups = groups


class FirstGroupWeightDecay(torch.optim.Adam):
    """Every group is decayed with the first group's weight_decay."""

    def step(self, closure=None):
        wd = self.param_groups[0]["weight_decay"]
        with _groups(self, "weight_decay", lambda g: wd):
            return _adam_step(self, closure)


class IgnoresScheduler(torch.optim.Adam):
    """Steps with the lr a scheduler started from (group['initial_lr']), not its current lr."""

    def step(self, closure=None):
        with _groups(self, "lr", lambda g: g.get("initial_lr", g["lr"])):
            return _adam_step(self, closure)


class MutatesTensorLr(torch.optim.Adam):
    """With a tensor lr, scales the caller's lr tensor in place on every step."""

    def step(self, closure=None):
        loss = _adam_step(self, closure)
        for g in self.param_groups:
            if isinstance(g["lr"], torch.Tensor):
                g["lr"].mul_(0.5)
        return loss


class StateDictMissingKey(torch.optim.Adam):
    """state_dict() leaves out exp_avg_sq."""

    def state_dict(self):
        sd = super().state_dict()
        sd["state"] = {k: {n: v for n, v in s.items() if n != "exp_avg_sq"} for k, s in sd["state"].items()}
        return sd


class DeepcopySharesState(torch.optim.Adam):
    """copy.deepcopy copies the params but shares the state dicts (and their tensors)."""

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(self.__dict__)
        new.param_groups = copy.deepcopy(self.param_groups, memo)
        new.state = defaultdict(dict, {memo[id(p)]: s for p, s in self.state.items()})
        return new


class BypassesStepHooks(torch.optim.Adam):
    """step is an instance attribute calling Adam's step body: the hooks' wrapper never runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.step = types.MethodType(_adam_step, self)


class ConjugatesComplexGrads(torch.optim.Adam):
    """Steps a complex param along the conjugate of its gradient."""

    def step(self, closure=None):
        with _grads(self, lambda p: p.grad.conj().resolve_conj() if p.is_complex() and p.grad is not None else ...):
            return _adam_step(self, closure)


class SkipsNonContiguous(torch.optim.Adam):
    """Silently leaves non-contiguous params alone (as a kernel for contiguous tensors only would)."""

    def step(self, closure=None):
        with _grads(self, lambda p: None if not p.is_contiguous() else ...):
            return _adam_step(self, closure)


class StepsFrozenParams(torch.optim.Adam):
    """Gives params with requires_grad=False a zero gradient and steps them."""

    def step(self, closure=None):
        with _grads(self, lambda p: torch.zeros_like(p) if not p.requires_grad and p.grad is None else ...):
            return _adam_step(self, closure)


MUTANTS: dict[str, type[torch.optim.Optimizer]] = {
    "zero_grad": ZeroGradIgnoresSetToNone,
    "step_closure": StepReturnsNone,
    "grad_none": StepsParamsWithoutGrad,
    "add_param_group": IgnoresAddedGroups,
    "per_group": FirstGroupWeightDecay,
    "lr_scheduler": IgnoresScheduler,
    "tensor_lr": MutatesTensorLr,
    "state_dict": StateDictMissingKey,
    "deepcopy": DeepcopySharesState,
    "step_hooks": BypassesStepHooks,
    "complex": ConjugatesComplexGrads,
    "layout": SkipsNonContiguous,
    "requires_grad_false": StepsFrozenParams,
}
