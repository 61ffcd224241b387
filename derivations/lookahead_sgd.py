"""Lookahead around PyTorch's SGD — and the Lookahead lines every ``lookahead_*`` spec shares.

Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back"
(arXiv:1907.08610), Algorithm 1. Lookahead is a wrapper: the inner optimizer (here torch's SGD,
its rule imported from ``sgd.py`` unchanged) updates the fast weights θ on every step; slow
weights φ start at θ₀, and every k-th ``step()`` call ::

    θ ← φ + α·(θ − φ)        (the fast weights are pulled back toward the slow ones)
    φ ← θ

The inner optimizer's state is kept across a sync (the paper's default; pytorch_optimizer's
``pullback_momentum='none'``). The sync count is the number of ``step()`` calls (``steps_taken``), as
the libraries keep it: one counter per param group advanced on every call and stored in
``param_groups`` (so it survives a ``state_dict`` round trip); a param without a gradient on a
sync call is not synced (pytorch_optimizer and timm skip it). The slow weights are kept under
pytorch_optimizer's name ``slow_params``.

:func:`lookahead` builds such a rule from any inner rule; :func:`variants` the catalogued
deviations (timm's lazy slow-weight init, torch_optimizer's sync before the count, optax's state
reset, pytorch_optimizer's momentum reset).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import sympy as sp

from .boundaries import COUNTED
from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, steps_taken, t, theta
from .sgd import RULE as SGD_RULE
from .sgd import b, lam, lr, maximize, mu, nesterov, tau
from .spec import Implementation, Spec

k = sp.Symbol("k", integer=True, positive=True)  # sync period
alpha = sp.Symbol("alpha", nonnegative=True)  # slow step size α
phi = sp.Symbol("phi", real=True)  # slow weights φ

SYNC = sp.Eq(sp.Mod(steps_taken, k), 0)  # every k-th step() call
_PULL = phi + alpha * (theta - phi)  # the pull-back of the fast weights

HYPERPARAMETERS = (
    Hyperparameter("k", k, 5, integer=True, doc="sync period: the slow weights move every k steps"),
    Hyperparameter("alpha", alpha, 0.5, doc="slow step size α: θ ← φ + α·(θ − φ) at a sync"),
)

SLOW = StateVar("slow_params", phi, sp.Integer(0), "slow weights φ (φ₀ = θ₀)")

SOURCES_PO = "pytorch_optimizer/optimizer/lookahead.py Lookahead.step, Lookahead.update"
SOURCES_TIMM = "timm/optim/lookahead.py Lookahead.step, Lookahead.update_slow"
SOURCES_TO = "torch_optimizer/lookahead.py Lookahead.step, Lookahead._update"


def lookahead(inner: Rule, id: str, title: str) -> Rule:
    """The inner rule wrapped: φ ← θ on the param's first step, the inner lines, then the sync."""
    body = (
        Assign("slow_init", phi, sp.Piecewise((theta, sp.Eq(t, 0)), (phi, True)), "φ₀ = θ₀ (before any step)"),
        *inner.body,
        Assign("sync_fast", theta, sp.Piecewise((_PULL, SYNC), (theta, True)),
               "every k-th call: θ ← φ + α·(θ − φ)"),
        Assign("sync_slow", phi, sp.Piecewise((theta, SYNC), (phi, True)), "… and φ ← θ"),
    )
    return Rule(id=id, title=title, hyperparameters=inner.hyperparameters + HYPERPARAMETERS,
                state=inner.state + (SLOW,), body=body)


_CREATED = StateVar("slow_created", sp.Symbol("created", nonnegative=True), sp.Integer(0),
                    "1 once the param's φ exists (timm: lookahead_slow_buff in its state)",
                    kept_when=lambda hp: False)


def _lazy_init(r: Rule) -> Rule:
    """timm: φ is created from the current fast weights at the param's first sync *with a
    gradient* (call k, or a later one if the param had none at call k): a no-op sync."""
    created = _CREATED.symbol
    r = replace(r, state=r.state + (_CREATED,))
    return r.remove("slow_init").replace(
        "sync_fast", sp.Piecewise((theta, sp.And(SYNC, sp.Eq(created, 0))), (_PULL, SYNC), (theta, True))
    ).insert_after("sync_slow", Assign("slow_created", created, sp.Piecewise((1, SYNC), (created, True)),
                                       "φ exists from the first sync on"))


_EARLY = sp.Eq(sp.Mod(steps_taken - 1, k), 0)  # calls 1, k + 1, 2k + 1, …


def _sync_before_count(r: Rule) -> Rule:
    """torch_optimizer: sync when the counter is 0 before it advances (calls 1, k+1, …), φ
    created at the first one (call 1: a no-op)."""
    return (
        r.remove("slow_init")
        .replace("sync_fast", sp.Piecewise((theta, sp.Eq(steps_taken, 1)), (_PULL, _EARLY), (theta, True)))
        .replace("sync_slow", sp.Piecewise((theta, _EARLY), (phi, True)))
    )


def _reset_state(inner_state: tuple[StateVar, ...]) -> Callable[[Rule], Rule]:
    """optax reset_state=True: the inner optimizer's state is re-initialised at a sync."""
    def delta(r: Rule) -> Rule:
        for sv in reversed(inner_state):
            r = r.insert_after("sync_slow", Assign(f"reset_{sv.name}", sv.symbol,
                                                   sp.Piecewise((sv.initial, SYNC), (sv.symbol, True)),
                                                   f"re-initialise {sv.name} at a sync"))
        return r
    return delta


def variants(spec_id: str, inner_state: tuple[StateVar, ...]) -> tuple[Variant, ...]:
    """``inner_state``: the inner state a reset re-initialises (at most three variables)."""
    return (
        Variant(
            id=f"{spec_id}.lazy_slow_init",
            title="slow weights created at the first sync (its pull-back is a no-op)",
            summary="φ ← θ at the param's first sync with a gradient (call k, or later if it had none then) "
            "instead of φ₀ = θ₀: that sync leaves θ as it is",
            who="timm Lookahead",
            sources=(f"{SOURCES_TIMM} (lookahead_slow_buff created from fast_p inside update_slow)",),
            delta=_lazy_init,
        ),
        Variant(
            id=f"{spec_id}.sync_before_count",
            title="sync when the counter is 0 before it advances (calls 1, k + 1, 2k + 1, …)",
            summary="syncs at calls 1, k + 1, …; φ ← θ₁ at the first (a no-op): the first real pull-back "
            "is at call k + 1",
            who="torch_optimizer Lookahead",
            sources=(f"{SOURCES_TO} (if group['counter'] == 0: self._update(group); counter += 1; counter %= k)",),
            delta=_sync_before_count,
        ),
        Variant(
            id=f"{spec_id}.reset_state",
            title="inner optimizer state re-initialised at every sync",
            summary="at a sync the inner state (" + ", ".join(sv.name for sv in inner_state)
            + ") starts afresh",
            who="optax lookahead(reset_state=True)",
            sources=("optax/_src/lookahead.py lookahead (reset_state)",),
            delta=_reset_state(inner_state),
        ),
    )


# -- the SGD spec ----------------------------------------------------------------------------
RULE = lookahead(SGD_RULE, "lookahead_sgd", "Lookahead (k, α) around PyTorch's SGD")

VARIANTS = variants("lookahead_sgd", SGD_RULE.state) + (
    Variant(
        id="lookahead_sgd.pullback_reset",
        title="momentum buffer zeroed at every sync",
        summary="b ← 0 at a sync (the buffer exists: the next step is b = (1 − τ)·g, not b = g)",
        who="pytorch_optimizer Lookahead(pullback_momentum='reset')",
        sources=(f"{SOURCES_PO} (pullback_momentum == 'reset': momentum_buffer = zeros_like(p))",),
        delta=lambda r: r.insert_after("sync_slow", Assign(
            "reset_momentum_buffer", b, sp.Piecewise((0, SYNC), (b, True)), "zero the momentum buffer at a sync")),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
_plain = {lam: 0, maximize: False, nesterov: False, mu: 0, tau: 0, g: g0}


def closed_forms(rule: Rule, plain: dict, step: sp.Expr, inner: dict | None = None) -> tuple[ClosedForm, ...]:
    """``step``: the inner optimizer's constant step under ``plain`` (θ_t = θ₀ − t·step); ``inner``:
    the closed forms of the inner state it needs (Adam's moments)."""
    inner = inner or {}
    return (
        ClosedForm(
            name="alpha_one_is_the_inner_optimizer",
            statement="With α = 1 the sync changes nothing: under a constant gradient the fast weights follow "
            "the inner optimizer exactly, θ_t = θ₀ − t·Δ, for every k.",
            rule=rule,
            given={**plain, alpha: 1},
            closed={**inner, theta: theta0 - t * step},
            initial={theta: theta0},
        ),
        ClosedForm(
            name="every_step_sync_scales_the_step",
            statement="With k = 1 every step is a sync: under a constant gradient θ_t = φ_t = θ₀ − t·α·Δ, "
            "the inner step scaled by α.",
            rule=rule,
            given={**plain, k: 1},
            closed={**inner, theta: theta0 - t * alpha * step, phi: theta0 - t * alpha * step},
            initial={theta: theta0},
        ),
    )


CLOSED_FORMS = closed_forms(RULE, _plain, lr * g0)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="lookahead_sgd/k2",
        title="k = 2, α = 0.5, plain SGD",
        purpose="after 2 steps θ = (θ₀ + θ₂)/2; timm's lazy init leaves θ₂, torch_optimizer syncs at 1, 3, 5",
        hyperparameters={"lr": "0.25", "k": 2, "alpha": "0.5"},
        grad_exponents=[0] * 6,
        seed=1201,
    ),
    CaseBuilder(
        id="lookahead_sgd/k3_momentum_dampening",
        title="k = 3, α = 0.5, momentum with dampening",
        purpose="the inner state is kept across a sync: resetting it (b ← 0, or a fresh buffer b = g) shows, "
        "and the two resets differ by the dampening",
        hyperparameters={"lr": "0.125", "k": 3, "alpha": "0.5", "momentum": "0.75", "dampening": "0.5"},
        grad_exponents=[0] * 8,
        seed=1202,
    ),
    CaseBuilder(
        id="lookahead_sgd/alpha_one",
        title="α = 1: the inner optimizer alone",
        purpose="every sync timing agrees with SGD here; only a reset inner state moves off it",
        hyperparameters={"lr": "0.125", "k": 2, "alpha": "1", "momentum": "0.5"},
        grad_exponents=[0] * 6,
        seed=1203,
    ),
    CaseBuilder(
        id="lookahead_sgd/nesterov_weight_decay_lr_schedule",
        title="Nesterov and weight decay, the learning rate changed between steps",
        purpose="the inner rule's features go through the wrapper; a schedule changes the inner lr only",
        hyperparameters={"lr": "0.125", "k": 3, "alpha": "0.25", "momentum": "0.5", "nesterov": True,
                         "weight_decay": "0.25"},
        grad_exponents=[0] * 7,
        seed=1204,
        param_exponent=1,
        changes={3: [_lr(0, "0.5")], 6: [_lr(0, "0.0625")]},
    ),
    CaseBuilder(
        id="lookahead_sgd/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group inner settings under one k and α; a param without a grad is not stepped, and the "
        "sync count still advances (grads are missing only between syncs, of every timing: libraries "
        "differ on syncing a param without a grad)",
        hyperparameters={"lr": "0.25", "k": 3, "alpha": "0.5", "momentum": "0.5"},
        grad_exponents=[0] * 7,
        seed=1205,
        groups=[(("scalar", "vector"), {}), (("matrix",), {"lr": "0.0625", "momentum": "0.75", "dampening": "0.25"})],
        no_grad={"scalar": [2], "vector": [5], "matrix": [2, 5]},
    ),
    CaseBuilder(
        id="lookahead_sgd/resume_mid_cycle",
        title="state_dict round trip in the middle of a k-cycle",
        purpose="the slow weights and the sync counter travel with state_dict (reload after 4 of k = 3 steps)",
        hyperparameters={"lr": "0.125", "k": 3, "alpha": "0.5", "momentum": "0.75"},
        grad_exponents=[0] * 8,
        seed=1206,
        reload_before=[5],
    ),
    long_horizon("lookahead_sgd", {"lr": "0.25"}, 1207,
                 "the sync every k = 5 calls counted to 10³ (200 syncs; 999 is between syncs, 1000 on one)"),
)

SPEC = Spec(
    id="lookahead_sgd",
    title="Lookahead (SGD)",
    rule=RULE,
    grad_none_last_step_only="the sync_before_count variant (torch_optimizer) is derived with its no-op first sync "
    "at call 1 for every param; a param without a gradient then is not modelled (docs/findings.md)",
    unreachable_boundaries={
        "momentum: Eq(t, 1) below": COUNTED,
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("pytorch-optimizer", "optimizer_conformance.conformance.wrappers:pytorch_optimizer_lookahead_sgd",
                       note=f"{SOURCES_PO} around torch.optim.SGD (pullback_momentum='none')"),
        Implementation("timm", "optimizer_conformance.conformance.wrappers:timm_lookahead_sgd",
                       note=f"{SOURCES_TIMM} around torch.optim.SGD"),
    ),
)
