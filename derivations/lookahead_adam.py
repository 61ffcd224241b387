"""Lookahead around PyTorch's Adam.

The inner rule is ``adam.py``'s RULE, unchanged; the Lookahead lines, the variants and the closed
forms are those of ``lookahead_sgd.py`` (see there): slow weights φ₀ = θ₀ kept as
``slow_params``, every k-th ``step()`` call θ ← φ + α·(θ − φ) and φ ← θ, Adam's state kept across
a sync.
"""

from __future__ import annotations

import sympy as sp

from .adam import RULE as ADAM_RULE
from .adam import amsgrad, beta1, beta2, eps, lam, lr, m, maximize, v
from .cases import CaseBuilder, HyperparameterChange
from .lookahead_sgd import SOURCES_PO, SOURCES_TIMM, closed_forms, lookahead, variants
from .rule import g, t
from .spec import Implementation, Spec

RULE = lookahead(ADAM_RULE, "lookahead_adam", "Lookahead (k, α) around PyTorch's Adam")

# a reset re-initialises step, exp_avg and exp_avg_sq: all of Adam's state with AMSGrad off, as in
# every case here (a reset of max_exp_avg_sq would be a fourth line; the inner AMSGrad is Adam's own spec)
VARIANTS = variants("lookahead_adam", tuple(s for s in ADAM_RULE.state if s.name != "max_exp_avg_sq"))

g0 = sp.Symbol("g_0", positive=True)
CLOSED_FORMS = closed_forms(RULE, {lam: 0, maximize: False, amsgrad: False, g: g0}, lr * g0 / (g0 + eps),
                            {m: g0 * (1 - beta1**t), v: g0**2 * (1 - beta2**t)})


def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="lookahead_adam/k2",
        title="k = 2, α = 0.5",
        purpose="after 2 steps θ = (θ₀ + θ₂)/2; timm's lazy init leaves θ₂, torch_optimizer syncs at 1, 3, 5",
        hyperparameters={"lr": "0.125", "k": 2, "alpha": "0.5"},
        grad_exponents=[0] * 6,
        seed=1301,
    ),
    CaseBuilder(
        id="lookahead_adam/k3_small_betas",
        title="k = 3, α = 0.5, fast moments",
        purpose="Adam's state is kept across a sync: a reset restarts the bias corrections and shows",
        hyperparameters={"lr": "0.0625", "k": 3, "alpha": "0.5", "betas": ["0.5", "0.75"], "eps": "0.125"},
        grad_exponents=[1, 0, -1, 0, 1, 0, -1, 0],
        seed=1302,
    ),
    CaseBuilder(
        id="lookahead_adam/alpha_one",
        title="α = 1: Adam alone",
        purpose="every sync timing agrees with Adam here; only a reset inner state moves off it",
        hyperparameters={"lr": "0.125", "k": 2, "alpha": "1", "betas": ["0.5", "0.75"]},
        grad_exponents=[0, -1, 0, -2, 0, -1],
        seed=1303,
    ),
    CaseBuilder(
        id="lookahead_adam/maximize_weight_decay_lr_schedule",
        title="weight decay while maximizing, the learning rate changed between steps",
        purpose="the inner rule's features go through the wrapper; a schedule changes the inner lr only",
        hyperparameters={"lr": "0.125", "k": 3, "alpha": "0.25", "maximize": True, "weight_decay": "0.25",
                         "betas": ["0.75", "0.875"]},
        grad_exponents=[1, 1, 0, -1, -2, -2, -1],
        seed=1304,
        param_exponent=1,
        changes={3: [_lr(0, "0.5")], 6: [_lr(0, "0.0625")]},
    ),
    CaseBuilder(
        id="lookahead_adam/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group inner settings under one k and α; a param without a grad is not stepped, and the "
        "sync count still advances (grads are missing only between syncs, of every timing)",
        hyperparameters={"lr": "0.125", "k": 3, "alpha": "0.5"},
        grad_exponents=[0] * 7,
        seed=1305,
        groups=[(("scalar", "vector"), {}), (("matrix",), {"lr": "0.25", "betas": ["0.75", "0.5"], "eps": "0.125"})],
        no_grad={"scalar": [2], "vector": [5], "matrix": [2, 5]},
    ),
    CaseBuilder(
        id="lookahead_adam/resume_mid_cycle",
        title="state_dict round trip in the middle of a k-cycle",
        purpose="the slow weights and the sync counter travel with state_dict (reload after 4 of k = 3 steps)",
        hyperparameters={"lr": "0.125", "k": 3, "alpha": "0.5", "betas": ["0.75", "0.875"]},
        grad_exponents=[0, 0, -1, 0, 1, 0, -1, 0],
        seed=1306,
        reload_before=[5],
    ),
)

SPEC = Spec(
    id="lookahead_adam",
    title="Lookahead (Adam)",
    rule=RULE,
    grad_none_last_step_only="the sync_before_count variant (torch_optimizer) is derived with its no-op first sync "
    "at call 1 for every param; a param without a gradient then is not modelled (docs/findings.md)",
    unreachable_boundaries={
        "amsgrad: Max(v, v_max) below": "gap: no case runs AMSGrad with shrinking gradients (adam/amsgrad_shrinking_gradients covers the inner rule)",
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("pytorch-optimizer", "optimizer_conformance.conformance.wrappers:pytorch_optimizer_lookahead_adam",
                       note=f"{SOURCES_PO} around torch.optim.Adam (pullback_momentum='none')"),
        Implementation("timm", "optimizer_conformance.conformance.wrappers:timm_lookahead_adam",
                       note=f"{SOURCES_TIMM} around torch.optim.Adam"),
    ),
)
