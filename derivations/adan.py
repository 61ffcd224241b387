"""Adan (adaptive Nesterov momentum) — the official implementation's rule (sail-sg/Adan, timm).

Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models"
(arXiv:2208.06677), as the authors' code writes it (sail-sg/Adan ``adan.py``,
``_single_tensor_adan``; timm ``timm/optim/adan.py`` is a copy of it). The betas are the
libraries' (the paper writes 1 − β: 0.02, 0.08, 0.01). With d the gradient difference, at the
t-th step of a parameter::

    d = g − g_prev            (d = 0 at the first step: g_prev := g, "neg_pre_grad = −g")
    m ← β₁·m + (1 − β₁)·g
    v ← β₂·v + (1 − β₂)·d
    n ← β₃·n + (1 − β₃)·(g + β₂·d)²
    den = √n / √(1 − β₃ᵗ) + ε
    θ ← [θ − γ·m/((1 − β₁ᵗ)·den) − γ·β₂·v/((1 − β₂ᵗ)·den)] / (1 + γλ)     (proximal decay)
    g_prev ← g

The code keeps −g_prev (``state['neg_pre_grad']``); so does the rule. t counts the parameter's own
steps, as ``torch.optim`` does. Both libraries and the official code count steps per *param group*
(``group['step']``, advanced on every ``step()`` call): the two agree unless a parameter misses a
gradient on a call before one it takes, which ``adan/groups_and_missing_grads`` and the generated
``adan/only_grad_none`` do (:data:`VARIANTS`, ``adan.group_step``).

Variants (:data:`VARIANTS`): the decay applied first as θ(1 − γλ) instead of the proximal division
(timm ``no_prox=True``, pytorch_optimizer ``weight_decouple=True``), the previous gradient
initialised to 0 (d₁ = g₁), the bias correction of v left out, the betas read in the paper's
convention (β ↔ 1 − β), and the bias corrections counting the group's ``step()`` calls.
"""

from __future__ import annotations

import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m
from .boundaries import COUNTED
from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, steps_taken, t, theta
from .spec import Implementation, Spec

beta3 = sp.Symbol("beta_3", positive=True)  # β₃
v = sp.Symbol("v", real=True)  # EMA of the gradient difference (exp_avg_diff)
nsq = sp.Symbol("n", nonnegative=True)  # EMA of the squared Nesterov gradient (exp_avg_sq)
neg_prev = sp.Symbol("g_prev_neg", real=True)  # −g_prev (neg_pre_grad)
d = sp.Symbol("d", real=True)  # the gradient difference
den = sp.Symbol("den", positive=True)  # the denominator √n̂ + ε

RULE = Rule(
    id="adan",
    title="Adan (official code / timm; proximal weight decay)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2, beta3), (0.98, 0.92, 0.99),
                       doc="decay rates (β₁, β₂, β₃) of m, of the difference average v and of n"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to the bias-corrected √n"),
        Hyperparameter("weight_decay", lam, 0, neutral=0,
                       doc="proximal weight decay λ: the step is divided by 1 + γλ"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter (the libraries count the group's)",
                 count=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m (EMA of g)"),
        StateVar("exp_avg_diff", v, sp.Integer(0), "v: EMA of the gradient difference d"),
        StateVar("exp_avg_sq", nsq, sp.Integer(0), "n: EMA of (g + β₂·d)²"),
        StateVar("neg_pre_grad", neg_prev, sp.Integer(0), "−g of the previous step"),
    ),
    body=(
        Assign("step", t, t + 1, "count the step"),
        Assign("difference", d, sp.Piecewise((0, sp.Eq(t, 1)), (g + neg_prev, True)),
               "d = g − g_prev, 0 at the first step (g_prev := g)"),
        Assign("first_moment", m, beta1 * m + (1 - beta1) * g, "EMA of the gradient"),
        Assign("difference_moment", v, beta2 * v + (1 - beta2) * d, "EMA of the gradient difference"),
        Assign("second_moment", nsq, beta3 * nsq + (1 - beta3) * (g + beta2 * d) ** 2,
               "EMA of the squared Nesterov gradient g + β₂·d"),
        Assign("denominator", den, sp.sqrt(nsq) / sp.sqrt(1 - beta3**t) + eps,
               "bias-corrected √n plus ε"),
        Assign("update", theta,
               (theta - lr * m / ((1 - beta1**t) * den)
                - lr * beta2 * v / ((1 - beta2**t) * den)) / (1 + lr * lam),
               "both bias-corrected steps, then the proximal weight decay"),
        Assign("keep_gradient", neg_prev, -g, "keep −g for the next difference"),
    ),
)


# -- variants -------------------------------------------------------------------------------
def _paper_betas(r: Rule) -> Rule:
    for k, b in enumerate((beta1, beta2, beta3), start=1):
        r = r.insert_before("step", Assign(f"paper_beta{k}", b, 1 - b,
                                           f"the given β{k} is the paper's: the rule's is 1 − β{k}"))
    return r


VARIANTS = (
    Variant(
        id="adan.no_prox",
        title="decoupled decay before the step instead of the proximal division",
        summary="θ ← θ·(1 − γλ) − γ·m/((1 − β₁ᵗ)·den) − γ·β₂·v/((1 − β₂ᵗ)·den): differs from "
        "the division by 1 + γλ at O((γλ)²)",
        who="timm Adan(no_prox=True); pytorch_optimizer Adan(weight_decouple=True); sail-sg/Adan "
        "no_prox=True",
        sources=("timm/optim/adan.py _single_tensor_adan (no_prox branch)",
                 "pytorch_optimizer/optimizer/adan.py Adan._step_per_param (weight_decouple)",
                 "sail-sg/Adan adan.py _single_tensor_adan"),
        delta=lambda r: r.replace(
            "update",
            theta * (1 - lr * lam) - lr * m / ((1 - beta1**t) * den)
            - lr * beta2 * v / ((1 - beta2**t) * den),
        ),
    ),
    Variant(
        id="adan.zero_initial_prev",
        title="previous gradient initialised to 0 (d₁ = g₁)",
        summary="d = g − g_prev with g_prev = 0 before the first step, so d₁ = g₁ feeds v and n",
        who="a reimplementation keeping prev_grad = zeros_like(p) (no library verified; the "
        "catalogue's d₁ = g₁ class)",
        sources=("sail-sg/Adan adan.py Adan.step (neg_pre_grad = −g at step 1, which this omits)",),
        delta=lambda r: r.replace("difference", g + neg_prev),
    ),
    Variant(
        id="adan.no_diff_bias_correction",
        title="no bias correction on the difference term",
        summary="θ ← [θ − γ·m/((1 − β₁ᵗ)·den) − γ·β₂·v/den] / (1 + γλ)",
        who="a reimplementation dropping 1/(1 − β₂ᵗ) (no library verified; the catalogue's "
        "missing-v-correction class)",
        sources=("sail-sg/Adan adan.py _single_tensor_adan (step_size_diff = lr·β₂/bias_correction2)",),
        delta=lambda r: r.replace(
            "update",
            (theta - lr * m / ((1 - beta1**t) * den) - lr * beta2 * v / den) / (1 + lr * lam),
        ),
    ),
    Variant(
        id="adan.paper_beta_convention",
        title="betas read in the paper's convention (β ↔ 1 − β)",
        summary="the given (β₁, β₂, β₃) are used where the rule has (1 − β₁, 1 − β₂, 1 − β₃): "
        "m ← (1 − β₁)·m + β₁·g, …",
        who="lucidrains/Adan-pytorch Adan (betas in the paper's convention, default "
        "(0.1, 0.1, 0.001)) given the official betas",
        sources=("lucidrains/Adan-pytorch adan_pytorch/adan.py Adan.step",
                 "arXiv:2208.06677 (Algorithm 1)"),
        delta=_paper_betas,
    ),
    Variant(
        id="adan.group_step",
        title="one step count per param group for the bias corrections",
        summary="t in 1 − β₁ᵗ, 1 − β₂ᵗ, 1 − β₃ᵗ = the number of optimizer.step() calls, whether or not the "
        "param had a gradient; d = 0 still at the param's own first step",
        who="timm Adan; pytorch_optimizer Adan; sail-sg/Adan (group['step'])",
        sources=("timm/optim/adan.py Adan.step (group['step'] += 1 before the params are visited; "
                 "neg_pre_grad = −grad when 'neg_pre_grad' not in state)",
                 "pytorch_optimizer/optimizer/adan.py Adan.step (group['step'] += 1), Adan.init_group "
                 "(previous_grad = −grad when the state is created), Adan._step_per_param (self.debias(β, "
                 "group['step']))",
                 "sail-sg/Adan adan.py Adan.step (the same two lines as timm's)"),
        # once the difference has used the param's own count (d = 0 at its first step), t becomes
        # the group's: the later lines, and so every bias correction, read it
        delta=lambda r: r.insert_after(
            "difference", Assign("group_step", t, steps_taken, "the bias corrections count the group's step() calls")),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0 = sp.Symbol("g_0", positive=True)
theta0 = sp.Symbol("theta_0", real=True)
_beta3 = sp.Rational(99, 100)  # the default β₃ (a number lets SymPy cancel √(1 − β₃ᵗ))
_s = g0 / (g0 + eps)  # the step under a constant gradient
_constant = {g: g0, beta3: _beta3}
lam_pos = sp.Symbol("lambda", positive=True)
_fixed = -_s / lam_pos  # θ*, the fixed point under decay

CLOSED_FORMS = (
    ClosedForm(
        name="constant_gradient",
        statement="With a constant gradient g > 0 and no decay: d = 0 at every step, so v_t = 0, "
        "m_t = g·(1 − β₁ᵗ), n_t = g²·(1 − β₃ᵗ), and θ_t = θ₀ − t·γ·g/(g + ε): Adam's trajectory.",
        rule=RULE,
        given={**_constant, lam: 0},
        closed={m: g0 * (1 - beta1**t), v: 0, nsq: g0**2 * (1 - _beta3**t), neg_prev: -g0,
                theta: theta0 - t * lr * _s},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="proximal_decay_constant_gradient",
        statement="With a constant gradient g > 0 and decay λ > 0 the proximal step contracts "
        "geometrically to θ* = −g/(λ·(g + ε)): θ_t = θ* + (θ₀ − θ*)·(1 + γλ)⁻ᵗ.",
        rule=RULE,
        given={**_constant, lam: lam_pos},
        closed={m: g0 * (1 - beta1**t), v: 0, nsq: g0**2 * (1 - _beta3**t), neg_prev: -g0,
                theta: _fixed + (theta0 - _fixed) * (1 + lr * lam_pos) ** (-t)},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="no_prox_decay_constant_gradient",
        statement="The no_prox variant has the same fixed point under a constant gradient, reached "
        "as (1 − γλ)ᵗ: θ_t = θ* + (θ₀ − θ*)·(1 − γλ)ᵗ with θ* = −g/(λ·(g + ε)).",
        rule=VARIANTS[0].rule_for(RULE),
        given={**_constant, lam: lam_pos},
        closed={m: g0 * (1 - beta1**t), v: 0, nsq: g0**2 * (1 - _beta3**t), neg_prev: -g0,
                theta: _fixed + (theta0 - _fixed) * (1 - lr * lam_pos) ** t},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="adan/defaults",
        title="the official defaults",
        purpose="d₁ = 0 at the first step, then the difference term and its bias correction at small t",
        hyperparameters={},
        grad_exponents=[0] * 6,
        seed=2201,
    ),
    CaseBuilder(
        id="adan/small_betas_large_eps",
        title="small betas, large ε",
        purpose="fast averages make every moment and its bias correction visible at O(1)",
        hyperparameters={"lr": "0.125", "betas": ["0.5", "0.75", "0.875"], "eps": "0.25"},
        grad_exponents=[1, 0, -1, 0, 1, -2],
        seed=2202,
    ),
    CaseBuilder(
        id="adan/weight_decay",
        title="proximal weight decay, γλ = 1/8",
        purpose="dividing by 1 + γλ differs from multiplying by 1 − γλ by (γλ)²·θ per step",
        hyperparameters={"lr": "0.25", "weight_decay": "0.5"},
        grad_exponents=[0] * 5,
        seed=2203,
        param_exponent=2,
    ),
    CaseBuilder(
        id="adan/weight_decay_lr_schedule",
        title="weight decay with the learning rate changed between steps",
        purpose="the step and the decay follow the current learning rate",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25"},
        grad_exponents=[0] * 6,
        seed=2204,
        param_exponent=1,
        changes={3: [_lr(0, "0.5")], 5: [_lr(0, "0.03125")]},
    ),
    CaseBuilder(
        id="adan/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its state and its step count "
        "(a per-group step count bias-corrects with the group's steps instead)",
        hyperparameters={"lr": "0.0625"},
        grad_exponents=[1, 0, 0, -1, -2, -2],
        seed=2205,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "betas": ["0.75", "0.5", "0.875"], "eps": "0.125",
                               "weight_decay": "0.25"})],
        no_grad={"scalar": [5, 6], "vector": [2, 6], "matrix": [1]},
    ),
    CaseBuilder(
        id="adan/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (previous gradient and "
        "step count included)",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "eps": "0.0625",
                         "betas": ["0.875", "0.75", "0.9375"]},
        grad_exponents=[1, 1, -1, 0, -2, 0],
        seed=2206,
        reload_before=[4],
    ),
    long_horizon("adan", {"lr": "0.001"}, 2207,
                 "the three bias corrections at t = 10³ (1 − β₃ᵗ = 1 − 0.99¹⁰⁰⁰ ≈ 1 − 4·10⁻⁵; 1 − β₁ᵗ and "
                 "1 − β₂ᵗ at 1 to double precision) and the gradient difference after 10³ equal gradients"),
)

SPEC = Spec(
    id="adan",
    title="Adan",
    rule=RULE,
    unreachable_boundaries={
        "difference: Eq(t, 1) below": COUNTED,
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("timm", "timm.optim.adan.Adan", kwargs={"no_prox": False},
                       note="timm/optim/adan.py Adan.step, _single_tensor_adan (copy of sail-sg/Adan)"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.Adan", kwargs={"weight_decouple": False},
                       note="pytorch_optimizer/optimizer/adan.py Adan._step_per_param "
                       "(weight_decouple=False: division by 1 + γλ)"),
    ),
)
