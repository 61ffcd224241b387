"""Schedule-Free SGD — the reference implementation of Defazio et al. (arXiv:2405.15682).

The same three sequences as :mod:`.schedulefree_adamw`, with the plain gradient as the base
step and ``momentum`` μ as the interpolation weight::

    y_t     = (1 − μ)·z_t + μ·x_t
    z_{t+1} = z_t − γ_t·(g + λ·y_t)
    x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}
    c_{t+1} = w_t / Σ_{i≤t} w_i,   w_t = tʳ·(γ_max,t)^{weight_lr_power},   γ_max,t = max_{i≤t} γ_i
    γ_t     = γ·t/W while t < W, γ afterwards

with z_1 = x_1 = θ₀: ``schedulefree.SGDScheduleFreeReference.step``
(``schedulefree/sgd_schedulefree_reference.py``; explicit x, y, z; weight decay at y, added to
the gradient). ``schedulefree.SGDScheduleFree`` keeps only z and y and updates y in place,
y ← lerp(y, z, c) + γ(μ(1 − c) − 1)·(g + λy): algebraically the same trajectory.

As for AdamW, the trajectory θ is the parameter as the library leaves it after each ``step()``
in **train mode**, i.e. y; ``z`` (and ``x``, kept by the Reference class) are compared as state;
the step count, γ_max and Σw are per param group in the libraries, so the cases only drop a
parameter's gradient on its last steps (see :mod:`.schedulefree_adamw`). schedulefree's classes
are built through :mod:`optimizer_conformance.conformance.wrappers` (``train()`` after
construction); pytorch_optimizer's ``ScheduleFreeSGD`` starts in train mode.
"""

from __future__ import annotations

import sympy as sp

from .adam import lam, lr
from .boundaries import COUNTED
from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, Variant, g, t, theta
from .schedulefree_adamw import (
    AVERAGING,
    COUNTERS,
    HYPERPARAMETERS,
    INITIAL,
    L,
    P,
    S,
    W,
    c,
    lr_t,
    r,
    u,
    warmup,
    x,
    z,
)
from .sgd import mu
from .spec import Implementation, Spec

RULE = Rule(
    id="schedulefree_sgd",
    title="Schedule-Free SGD (schedulefree reference; weight decay at y)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1.0, doc="learning rate γ"),
        Hyperparameter("momentum", mu, 0.9, doc="μ: interpolation y = μ·x + (1 − μ)·z, in (0, 1)"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="weight decay λ, evaluated at y"),
        *HYPERPARAMETERS,
    ),
    state=COUNTERS,
    body=(
        Assign("step", t, t + 1, "count the step"),
        *INITIAL,
        *AVERAGING,
        Assign("weight_decay", u, g + lam * theta, "the gradient plus weight decay computed at y"),
        Assign("z_step", z, z - lr_t * u, "the base sequence takes the SGD step"),
        Assign("average", x, (1 - c) * x + c * z, "x: the weighted average of the z's"),
        Assign("interpolate", theta, mu * x + (1 - mu) * z, "the parameter holds y = μ·x + (1 − μ)·z"),
    ),
)


# -- variants -------------------------------------------------------------------------------
VARIANTS = (
    Variant(
        id="schedulefree_sgd.decay_at_z",
        title="weight decay computed at z instead of y",
        summary="z ← z − γ_t·(g + λ·z)",
        who="schedulefree 1.4.1 ScheduleFreeWrapper(torch.optim.SGD(weight_decay=λ)): the base "
        "optimizer steps z, its own decay included",
        sources=("schedulefree/wrap_schedulefree.py ScheduleFreeWrapper.step (swap(z, p); self.base.step())",),
        delta=lambda rule: rule.replace("weight_decay", g + lam * z),
    ),
    Variant(
        id="schedulefree_sgd.no_r",
        title="no polynomial weighting tʳ (optax)",
        summary="w_t = γ_maxᴾ whatever r",
        who="optax 0.2.8 contrib.schedule_free_sgd",
        sources=("optax/contrib/_schedule_free.py schedule_free.update_fn (weight = max_lr**weight_lr_power)",),
        delta=lambda rule: rule.replace("weight", L**P),
    ),
    Variant(
        id="schedulefree_sgd.zero_based_warmup",
        title="the z step's warmup counted from 0 (optax)",
        summary="z ← z − γ·min((t − 1)/W, 1)·(g + λy), while γ_max and the weights use γ·min(t/W, 1)",
        who="optax 0.2.8 contrib.schedule_free_sgd(warmup_steps=W)",
        sources=("optax/contrib/_schedule_free.py schedule_free_sgd: alias.sgd(schedule) counts from 0, "
                 "schedule_free evaluates the schedule at step_count (from 1)",),
        delta=lambda rule: rule.replace("z_step", z - warmup(t - 1) * u),
    ),
    Variant(
        id="schedulefree_sgd.current_lr_weight",
        title="averaging weight from the current lr, not the largest so far (heavyball)",
        summary="w_t = tʳ·γ_tᴾ",
        who="heavyball 3.2.1: the schedule-free step its SF optimizers share (it ships SFAdamW, no plain SF-SGD)",
        sources=("heavyball/chainable.py update_by_schedule_free; heavyball/utils.py schedule_free_ "
                 "(weight = abs(lr) ** weight_lr_power * max(step, 1) ** r)",),
        delta=lambda rule: rule.replace("weight", t**r * lr_t**P),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
gamma = sp.Symbol("gamma", positive=True)
_constant_lr = {W: 0, r: 0, lam: 0, lr: gamma}

CLOSED_FORMS = (
    ClosedForm(
        name="constant_lr_weights_are_uniform",
        statement="Without warmup and with r = 0 the weights are all γᴾ: γ_max = γ, Σw = t·γᴾ, "
        "so c_{t+1} = 1/t and x is the plain average of z₁ … z_t.",
        rule=RULE,
        given=_constant_lr,
        closed={L: gamma, S: t * gamma**P},
    ),
    ClosedForm(
        name="constant_gradient",
        statement="With a constant gradient g, no warmup, r = 0 and no decay: z_t = θ₀ − t·γ·g, "
        "x_t = θ₀ − (t + 1)/2·γ·g and y_t = θ₀ − (μ(t + 1)/2 + (1 − μ)t)·γ·g: the parameter moves "
        "by (1 − μ/2)·γ·g per step after the first.",
        rule=RULE,
        given={**_constant_lr, g: g0},
        closed={L: gamma, S: t * gamma**P, z: theta0 - t * gamma * g0, x: theta0 - (t + 1) / 2 * gamma * g0,
                theta: theta0 - (mu * (t + 1) / 2 + (1 - mu) * t) * gamma * g0},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="no_r_equals_spec_when_r_is_zero",
        statement="optax's weights (no tʳ) give the spec's trajectory under a constant gradient whenever "
        "r = 0 and there is no warmup: the variant only shows with r > 0.",
        rule=VARIANTS[1].rule_for(RULE),
        given={W: 0, lam: 0, lr: gamma, g: g0},
        closed={L: gamma, S: t * gamma**P, z: theta0 - t * gamma * g0, x: theta0 - (t + 1) / 2 * gamma * g0},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


# One weighting feature per case (r, warmup, lr changes, weight decay), as for AdamW: optax's two
# deviations (no r, 0-based warmup) each show alone and are diagnosed together.
CASES = (
    CaseBuilder(
        id="schedulefree_sgd/defaults",
        title="the reference implementation's defaults",
        purpose="lr 1 and μ = 0.9: y = 0.9·x + 0.1·z, x the running average of the z's",
        hyperparameters={},
        grad_exponents=[-2] * 5,
        seed=2201,
    ),
    CaseBuilder(
        id="schedulefree_sgd/warmup",
        title="linear warmup over 4 steps",
        purpose="the weights γ_maxᴾ grow during warmup; optax's z step counts the warmup from 0",
        hyperparameters={"lr": "0.5", "warmup_steps": 4, "momentum": "0.75"},
        grad_exponents=[0] * 6,
        seed=2202,
    ),
    CaseBuilder(
        id="schedulefree_sgd/polynomial_weights",
        title="polynomial weighting r = 1",
        purpose="tʳ changes c from t = 2 on (optax has no r)",
        hyperparameters={"lr": "0.25", "r": "1", "momentum": "0.5"},
        grad_exponents=[0, 0, -1, 0, -1, 0],
        seed=2203,
    ),
    CaseBuilder(
        id="schedulefree_sgd/lr_schedule",
        title="the learning rate lowered, then raised, between steps",
        purpose="γ_max keeps the largest lr (heavyball weights by the current one)",
        hyperparameters={"lr": "0.5", "weight_lr_power": "1", "momentum": "0.75"},
        grad_exponents=[0] * 7,
        seed=2204,
        changes={3: [_lr(0, "0.0625")], 6: [_lr(0, "1")]},
    ),
    CaseBuilder(
        id="schedulefree_sgd/weight_decay",
        title="weight decay",
        purpose="the decay is computed at y, not at z (they differ from t = 2)",
        hyperparameters={"lr": "0.25", "weight_decay": "0.5", "momentum": "0.75"},
        grad_exponents=[-1] * 6,
        seed=2205,
        param_exponent=2,
    ),
    CaseBuilder(
        id="schedulefree_sgd/groups_and_missing_grads",
        title="two param groups, and params that stop receiving gradients",
        purpose="per-group settings (warmup, power, momentum); a param without a grad keeps its value and state",
        hyperparameters={"lr": "0.125", "momentum": "0.875"},
        grad_exponents=[1, 0, 0, -1, -2, -2],
        seed=2206,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.5", "momentum": "0.5", "warmup_steps": 3, "weight_lr_power": "1"})],
        no_grad={"scalar": [5, 6], "matrix": [6]},
    ),
    CaseBuilder(
        id="schedulefree_sgd/resume",
        title="state_dict round trip during warmup",
        purpose="a fresh instance loaded from state_dict continues exactly: z, and the step count, "
        "γ_max and Σw of the group",
        hyperparameters={"lr": "0.5", "warmup_steps": 4, "momentum": "0.75"},
        grad_exponents=[0, 0, -1, 0, -1, 0],
        seed=2207,
        param_exponent=1,
        reload_before=[3],
    ),
    long_horizon("schedulefree_sgd", {"lr": "0.25", "warmup_steps": 100, "r": "1.0"}, 2208,
                 "the warmup γ·t/W ends at W = 100, the weight γ_max^P·t^r grows as t (r = 1) and the "
                 "weight sum over 10³ steps"),
)

SPEC = Spec(
    id="schedulefree_sgd",
    title="Schedule-Free SGD",
    rule=RULE,
    grad_none_last_step_only="the rule keeps the libraries' per-group counters (k, γ_max, Σw) per param: a "
    "param without a gradient while its group steps would desynchronise them (finding, docs/findings.md)",
    unreachable_boundaries={
        "momentum = 0 on": "schedule-free's momentum is the interpolation β of y = (1 − β)·z + β·x: the libraries require 0 < β < 1",
        "initial_z: Eq(t, 1) below": COUNTED,
        "initial_x: Eq(t, 1) below": COUNTED,
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("schedulefree", "optimizer_conformance.conformance.wrappers:schedulefree.SGDScheduleFree",
                       note="schedulefree/sgd_schedulefree.py SGDScheduleFree (train() called after "
                       "construction: it starts in eval mode)"),
        Implementation("schedulefree",
                       "optimizer_conformance.conformance.wrappers:schedulefree.SGDScheduleFreeReference",
                       note="schedulefree/sgd_schedulefree_reference.py SGDScheduleFreeReference "
                       "(train() called after construction)"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.ScheduleFreeSGD",
                       note="pytorch_optimizer/optimizer/schedulefree.py ScheduleFreeSGD (train_mode=True "
                       "at construction)"),
    ),
)
