"""Lookahead around the readable SGD and Adam controls, and one mutant per catalogued variant.

:class:`LookaheadMixin` adds Lookahead to a control (``sgd_mutants.SGD``, ``adam_mutants.Adam``):
after the inner step, ``group["counter"]`` counts the calls (kept in the param groups, so
state_dict carries it, as pytorch_optimizer and timm keep theirs), ``state[p]["slow_params"]``
holds the slow weights (θ₀ on the param's first step) and every k-th call
θ ← φ + α·(θ − φ), φ ← θ for every param with a gradient. Each mutant overrides the one hook its
variant changes (see ``derivations/lookahead_sgd.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .adam_mutants import Adam
from .sgd_mutants import SGD


class LookaheadMixin:
    def __init__(self, params, k=5, alpha=0.5, **inner):
        super().__init__(params, **inner)
        for group in self.param_groups:
            group.setdefault("k", k)
            group.setdefault("alpha", alpha)
            group.setdefault("counter", 0)

    @torch.no_grad()
    def step(self, closure=None):
        first = {p: p.detach().clone() for group in self.param_groups for p in group["params"]
                 if p.grad is not None and "slow_params" not in self.state[p]}
        loss = super().step(closure)
        for p, slow in first.items():
            self._slow_init(p, slow)
        for group in self.param_groups:
            group["counter"] += 1
            if self._sync_now(group):
                for p in group["params"]:
                    if p.grad is not None:
                        self._sync(p, group)
        return loss

    def _slow_init(self, p: Tensor, slow: Tensor) -> None:
        """φ₀ = θ₀."""
        self.state[p]["slow_params"] = slow

    def _sync_now(self, group: dict) -> bool:
        return group["counter"] % group["k"] == 0

    SLOW = "slow_params"

    def _sync(self, p: Tensor, group: dict) -> None:
        """θ ← φ + α·(θ − φ); φ ← θ (φ created here from θ if the param has none yet)."""
        slow = self.state[p].setdefault(self.SLOW, p.detach().clone())
        slow.add_(p - slow, alpha=group["alpha"])
        p.copy_(slow)
        self._after_sync(p)

    def _after_sync(self, p: Tensor) -> None:
        pass


class LazyInit(LookaheadMixin):
    """*.lazy_slow_init: φ created from θ at the first sync (timm, under timm's name)."""

    SLOW = "lookahead_slow_buff"

    def _slow_init(self, p, slow):
        pass


class SyncBeforeCount(LookaheadMixin):
    """*.sync_before_count: sync when the counter is 0 before it advances, φ lazily (torch_optimizer,
    under its name)."""

    SLOW = "slow_param"

    def _slow_init(self, p, slow):
        pass

    def _sync_now(self, group):
        return (group["counter"] - 1) % group["k"] == 0


class LookaheadSGD(LookaheadMixin, SGD):
    """The spec lookahead_sgd."""


class LookaheadAdam(LookaheadMixin, Adam):
    """The spec lookahead_adam."""


class LookaheadSGDLazyInit(LazyInit, SGD):
    pass


class LookaheadSGDSyncBeforeCount(SyncBeforeCount, SGD):
    pass


class LookaheadSGDResetState(LookaheadSGD):
    """lookahead_sgd.reset_state: a fresh momentum buffer after a sync (optax reset_state)."""

    def _after_sync(self, p):
        self.state[p].pop("momentum_buffer", None)


class LookaheadSGDPullbackReset(LookaheadSGD):
    """lookahead_sgd.pullback_reset: momentum buffer zeroed at a sync (pytorch_optimizer)."""

    def _after_sync(self, p):
        if "momentum_buffer" in self.state[p]:
            self.state[p]["momentum_buffer"] = torch.zeros_like(p)


class LookaheadAdamLazyInit(LazyInit, Adam):
    pass


class LookaheadAdamSyncBeforeCount(SyncBeforeCount, Adam):
    pass


class LookaheadAdamResetState(LookaheadAdam):
    """lookahead_adam.reset_state: Adam's state starts afresh after a sync (optax reset_state)."""

    def _after_sync(self, p):
        state = self.state[p]
        state["step"].zero_()
        state["exp_avg"].zero_()
        state["exp_avg_sq"].zero_()


CONTROLS: dict[str, type[torch.optim.Optimizer]] = {
    "lookahead_sgd": LookaheadSGD,
    "lookahead_adam": LookaheadAdam,
}

MUTANTS: dict[tuple[str, str], type[torch.optim.Optimizer]] = {
    ("lookahead_sgd", "lookahead_sgd.lazy_slow_init"): LookaheadSGDLazyInit,
    ("lookahead_sgd", "lookahead_sgd.sync_before_count"): LookaheadSGDSyncBeforeCount,
    ("lookahead_sgd", "lookahead_sgd.reset_state"): LookaheadSGDResetState,
    ("lookahead_sgd", "lookahead_sgd.pullback_reset"): LookaheadSGDPullbackReset,
    ("lookahead_adam", "lookahead_adam.lazy_slow_init"): LookaheadAdamLazyInit,
    ("lookahead_adam", "lookahead_adam.sync_before_count"): LookaheadAdamSyncBeforeCount,
    ("lookahead_adam", "lookahead_adam.reset_state"): LookaheadAdamResetState,
}
