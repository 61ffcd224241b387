"""NovoGrad: per-tensor (layer-wise) second moment, first moment of normalised gradients.

Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of Deep
Networks" (arXiv:1905.11286), Algorithm 1. For each parameter tensor (a "layer") with gradient g:

    v₁ = ‖g₁‖²,                 v_t = β₂·v + (1 − β₂)·‖g_t‖²       (one scalar per tensor)
    d_t = g_t/(√v_t + ε) + λ·θ
    m₁ = d₁,                    m_t = β₁·m + c·d_t                 (c = 1 − β₁ with grad_averaging, else 1)
    θ ← θ − γ·m

‖g‖² is the sum of squares over the whole tensor (:class:`~.tensor.SumSq`). The first step
initialises both moments (no (1 − β₁) on m₁ even with grad averaging), as pytorch_optimizer's
``NovoGrad`` does (optimizer/novograd.py, ``step``); timm's ``NvNovoGrad`` starts m at 0 and so
applies (1 − β₁) on the first step too (:data:`VARIANTS`).
"""

from __future__ import annotations

import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m, v
from .boundaries import COUNTED
from .cases import CaseBuilder, HyperparameterChange
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec
from .tensor import SumSq

grad_averaging = sp.Symbol("grad_averaging")
n2 = sp.Symbol("n2", nonnegative=True)  # ‖g‖² of this tensor
d = sp.Symbol("d", real=True)  # the normalised gradient plus decay

_c = sp.Piecewise((1 - beta1, grad_averaging), (1, True))

RULE = Rule(
    id="novograd",
    title="NovoGrad (paper Algorithm 1; per-tensor second moment initialised to ‖g₁‖², m₁ = d₁)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.95, 0.98),
                       doc="decay rates (β₁, β₂) of the first moment and of the per-tensor second moment"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to √v"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="λ: λθ is added to the normalised gradient"),
        Hyperparameter("grad_averaging", grad_averaging, False, neutral=False, boolean=True,
                       doc="scale the new term of m by (1 − β₁) (from the second step on)"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m (of normalised gradients)"),
        StateVar("exp_avg_sq", v, sp.Integer(0), "per-tensor second moment v (EMA of ‖g‖²)"),
    ),
    body=(
        Assign("step", t, t + 1, "count the step"),
        Assign("norm", n2, SumSq(g), "‖g‖², the squared norm of the whole gradient tensor"),
        Assign("second_moment", v, sp.Piecewise((n2, sp.Eq(t, 1)), (beta2 * v + (1 - beta2) * n2, True)),
               "v₁ = ‖g₁‖², then an EMA of ‖g‖²"),
        Assign("normalise", d, g / (sp.sqrt(v) + eps) + lam * theta, "d = g/(√v + ε) + λθ"),
        Assign("first_moment", m, sp.Piecewise((d, sp.Eq(t, 1)), (beta1 * m + _c * d, True)),
               "m₁ = d₁, then m = β₁·m + c·d"),
        Assign("update", theta, theta - lr * m, "θ ← θ − γ·m"),
    ),
)


# -- variants -------------------------------------------------------------------------------
VARIANTS = (
    Variant(
        id="novograd.averaging_at_first_step",
        title="m starts at 0: grad averaging's (1 − β₁) applies on the first step too",
        summary="m = β₁·m + c·d from m₀ = 0 (m₁ = (1 − β₁)·d₁ with grad_averaging)",
        who="timm NvNovoGrad; torch_optimizer NovoGrad",
        sources=("timm/optim/nvnovograd.py NvNovoGrad.step (exp_avg zeros; update.mul_(1 - beta1) if grad_averaging)",
                 "torch_optimizer/novograd.py NovoGrad.step"),
        delta=lambda r: r.replace("first_moment", beta1 * m + _c * d),
    ),
    Variant(
        id="novograd.zero_init_v",
        title="v starts at 0 and is averaged from the first step",
        summary="v = β₂·v + (1 − β₂)·‖g‖² from v₀ = 0 (v₁ = (1 − β₂)·‖g₁‖²)",
        who="an EMA initialised like Adam's (no library in the catalogue; the paper's v₁ = ‖g₁‖² avoids it)",
        sources=("arXiv:1905.11286 Algorithm 1 (v₁ = ‖g₁‖², the line this variant drops)",),
        delta=lambda r: r.replace("second_moment", beta2 * v + (1 - beta2) * n2),
    ),
    Variant(
        id="novograd.elementwise_v",
        title="elementwise (Adam-like) second moment instead of one per tensor",
        summary="v₁ = g₁², v = β₂·v + (1 − β₂)·g² per element",
        who="Adam-style transcription of NovoGrad (the catalogue's 'per tensor' check)",
        sources=("arXiv:1905.11286 Algorithm 1 (v per layer)",),
        delta=lambda r: r.replace(
            "second_moment", sp.Piecewise((g**2, sp.Eq(t, 1)), (beta2 * v + (1 - beta2) * g**2, True))),
    ),
    Variant(
        id="novograd.decoupled_decay",
        title="decoupled weight decay θ ← θ·(1 − γλ)",
        summary="d = g/(√v + ε); θ ← θ·(1 − γλ) − γ·m",
        who="pytorch_optimizer NovoGrad weight_decouple=True; timm NvNovoGrad decoupled_decay=True",
        sources=("pytorch_optimizer/optimizer/novograd.py NovoGrad.step (apply_weight_decay)",
                 "timm/optim/nvnovograd.py NvNovoGrad.step (decoupled_decay)"),
        delta=lambda r: r.replace("normalise", g / (sp.sqrt(v) + eps)).replace(
            "update", theta * (1 - lr * lam) - lr * m),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
S = sp.Symbol("S", positive=True)  # ‖g₀‖² of the constant gradient tensor
_constant = {g: g0, SumSq(g): S, lam: 0}

CLOSED_FORMS = (
    ClosedForm(
        name="constant_gradient",
        statement="Under a constant gradient (λ = 0, no grad averaging) v_t = ‖g‖² on every step and "
        "m_t = g/(‖g‖ + ε)·(1 − β₁ᵗ)/(1 − β₁).",
        rule=RULE,
        given={**_constant, grad_averaging: False},
        closed={v: S, m: g0 / (sp.sqrt(S) + eps) * (1 - beta1**t) / (1 - beta1)},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="grad_averaging_constant_gradient",
        statement="With grad averaging, m₁ = d₁ makes m_t = g/(‖g‖ + ε) constant under a constant gradient: "
        "θ_t = θ₀ − t·γ·g/(‖g‖ + ε).",
        rule=RULE,
        given={**_constant, grad_averaging: True},
        closed={v: S, m: g0 / (sp.sqrt(S) + eps), theta: theta0 - t * lr * g0 / (sp.sqrt(S) + eps)},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="timm_grad_averaging_constant_gradient",
        statement="Starting m at 0 (timm) gives m_t = (1 − β₁ᵗ)·g/(‖g‖ + ε) instead under grad averaging.",
        rule=VARIANTS[0].rule_for(RULE),
        given={**_constant, grad_averaging: True},
        closed={v: S, m: (1 - beta1**t) * g0 / (sp.sqrt(S) + eps)},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="novograd/defaults",
        title="the defaults",
        purpose="one second moment per tensor, v₁ = ‖g₁‖², m₁ = d₁",
        hyperparameters={"lr": "0.0625"},
        grad_exponents=[0, 0, -1, 0, 1],
        seed=2201,
    ),
    CaseBuilder(
        id="novograd/grad_averaging",
        title="grad averaging",
        purpose="(1 − β₁) on the new term from the second step on, not on the first",
        hyperparameters={"lr": "0.0625", "grad_averaging": True, "betas": ["0.5", "0.75"]},
        grad_exponents=[0, -1, 0, -2, 0],
        seed=2202,
    ),
    CaseBuilder(
        id="novograd/weight_decay",
        title="strong weight decay",
        purpose="λθ added to the normalised gradient (inside m) versus decoupled θ(1 − γλ)",
        hyperparameters={"lr": "0.125", "weight_decay": "0.5", "betas": ["0.75", "0.5"]},
        grad_exponents=[0, -1, 0, -1, 0],
        seed=2203,
        param_exponent=1,
    ),
    CaseBuilder(
        id="novograd/lr_schedule",
        title="the learning rate changed between steps, with weight decay and grad averaging",
        purpose="the step follows the current learning rate",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.25", "grad_averaging": True},
        grad_exponents=[0] * 6,
        seed=2204,
        changes={3: [_lr(0, "0.25")], 5: [_lr(0, "0.015625")]},
    ),
    CaseBuilder(
        id="novograd/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, state and step count",
        hyperparameters={"lr": "0.0625", "betas": ["0.5", "0.75"]},
        grad_exponents=[1, 0, 0, -1, -2, -2],
        seed=2205,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.125", "grad_averaging": True, "weight_decay": "0.25"})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [1, 3]},
    ),
    CaseBuilder(
        id="novograd/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (the scalar v included)",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.25", "eps": "0.0625", "betas": ["0.875", "0.75"],
                         "grad_averaging": True},
        grad_exponents=[1, 1, -1, 0, -2, 0],
        seed=2206,
        reload_before=[4],
    ),
)

SPEC = Spec(
    id="novograd",
    title="NovoGrad",
    rule=RULE,
    unreachable_boundaries={
        "second_moment: Eq(t, 1) below": COUNTED,
        "first_moment: Eq(t, 1) below": COUNTED,
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("pytorch-optimizer", "pytorch_optimizer.NovoGrad",
                       note="pytorch_optimizer/optimizer/novograd.py NovoGrad.step (v₁ = ‖g₁‖² and m₁ = d₁ "
                       "on an empty state; weight_decouple=False, the default, adds λθ to d)"),
        Implementation("timm", "timm.optim.nvnovograd.NvNovoGrad",
                       note="timm/optim/nvnovograd.py NvNovoGrad.step"),
    ),
)
