"""RAdam (rectified Adam) — the rule of Liu et al. as PyTorch implements it.

Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (arXiv:1908.03265),
Algorithm 2, as ``torch.optim.RAdam`` computes it (``_single_tensor_radam``). With
ρ∞ = 2/(1 − β₂) − 1 and the length of the approximated simple moving average

    ρ_t = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ),

the step is rectified Adam while the variance of the adaptive learning rate is tractable and
SGD with bias-corrected momentum before::

    ρ_t > 5:  θ ← θ − γ·r_t·m̂ · √(1 − β₂ᵗ)/(√v + ε),  r_t = √((ρ_t−4)(ρ_t−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρ_t))
    else:     θ ← θ − γ·m̂

PyTorch deviates from the paper twice, as the authors' own code does: the threshold is 5, not 4
(pytorch/pytorch PR #58968), and ε is added to the raw √v, so that the effective ε is
ε/√(1 − β₂ᵗ) (ε̂ placement; optax adds ε to √v̂ instead). Weight decay is L2 or, with
``decoupled_weight_decay``, θ ← θ·(1 − γλ) before the step (RAdamW).

When rectification can start. ρ_t is twice the mean age of the gradients in the bias-corrected
EMA, minus one (proved below: fed g_s² = s, v̂_t is the EMA-weighted mean step index and
ρ_t = 2t + 1 − 2v̂_t). The weights β₂^(age−1) decrease with age, so the mean age is below the
plain mean (t + 1)/2 and grows with t: 1 = ρ₁ < ρ₂ < … and ρ_t < t for every β₂ in (0, 1). Hence
no β₂ rectifies before step 6 (ρ_t > 5), nor the paper's rule before step 5 (ρ_t > 4). A small
β₂ does not cross *earlier*: it lowers ρ∞, and for β₂ ≤ 2/3 (ρ∞ ≤ 5) RAdam never rectifies. With
β₂ = 0.999, ρ₅ = 4.996 and ρ₆ = 5.994: both thresholds are crossed at the earliest possible step,
so the cases run ≥ 8 steps (:func:`first_rectified_step`).
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m, m_hat, maximize, v
from .cases import CaseBuilder, HyperparameterChange, long_horizon, resumed_at_large_t
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec
from .step_scope import global_counter

decoupled = sp.Symbol("decoupled_weight_decay")
rho = sp.Symbol("rho", real=True)  # ρ_t, length of the approximated SMA
r = sp.Symbol("r", nonnegative=True)  # r_t, the variance rectification term

RHO_INF = 2 / (1 - beta2) - 1  # ρ∞, the maximum length of the approximated SMA
THRESHOLD = 5  # torch: rectify when ρ_t > 5 (the paper: ρ_t > 4)


def _rectification(threshold: int) -> sp.Expr:
    return sp.Piecewise(
        (sp.sqrt((rho - 4) * (rho - 2) * RHO_INF / ((RHO_INF - 4) * (RHO_INF - 2) * rho)), rho > threshold),
        (0, True),
    )


def _update(threshold: int, adaptive: sp.Expr) -> sp.Expr:
    """Rectified adaptive step above the threshold, SGD with bias-corrected momentum below."""
    return sp.Piecewise((theta - lr * r * m_hat * adaptive, rho > threshold), (theta - lr * m_hat, True))


# torch: √(1 − β₂ᵗ)/(√v + ε), i.e. ε on the raw √v
TORCH_ADAPTIVE = sp.sqrt(1 - beta2**t) / (sp.sqrt(v) + eps)

RULE = Rule(
    id="radam",
    title="RAdam (PyTorch; threshold ρ_t > 5, ε on the raw √v, L2 or decoupled weight decay)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.999), doc="decay rates (β₁, β₂) of the moments"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to the raw √v in the rectified step"),
        Hyperparameter("weight_decay", lam, 0, neutral=0,
                       doc="weight decay λ: L2 (added to the gradient) or decoupled"),
        Hyperparameter("decoupled_weight_decay", decoupled, False, neutral=False, boolean=True,
                       requires=("weight_decay",),
                       doc="decoupled weight decay θ ← θ·(1 − γλ) (RAdamW) instead of L2"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m (EMA of g)"),
        StateVar("exp_avg_sq", v, sp.Integer(0), "second moment v (EMA of g²)"),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("weight_decay", g, sp.Piecewise((g, decoupled), (g + lam * theta, True)),
               "L2 weight decay (unless decoupled)"),
        Assign("decay", theta, sp.Piecewise((theta * (1 - lr * lam), decoupled), (theta, True)),
               "decoupled weight decay (RAdamW)"),
        Assign("step", t, t + 1, "count the step"),
        Assign("first_moment", m, beta1 * m + (1 - beta1) * g, "EMA of the gradient"),
        Assign("second_moment", v, beta2 * v + (1 - beta2) * g**2, "EMA of the squared gradient"),
        Assign("bias_correction_m", m_hat, m / (1 - beta1**t), "bias-corrected first moment"),
        Assign("sma_length", rho, RHO_INF - 2 * t * beta2**t / (1 - beta2**t),
               "ρ_t, the length of the approximated simple moving average"),
        Assign("rectification", r, _rectification(THRESHOLD), "r_t when the variance is tractable"),
        Assign("update", theta, _update(THRESHOLD, TORCH_ADAPTIVE),
               "rectified adaptive step, or SGD with bias-corrected momentum"),
    ),
)


# -- variants -------------------------------------------------------------------------------
VARIANTS = (
    Variant(
        id="radam.threshold_4",
        title="rectification from ρ_t > 4 (the paper)",
        summary="the adaptive step is taken when ρ_t > 4 instead of ρ_t > 5: one step earlier "
        "with β₂ ≥ 0.9 (step 5 instead of 6 at β₂ = 0.999)",
        who="Liu et al. 2019, Algorithm 2; fastai_dev's RAdam (2019); Ranger after "
        "lessw2020/Ranger-Deep-Learning-Optimizer#2",
        sources=("arXiv:1908.03265 (Algorithm 2)", "fastai/fastai_dev#303",
                 "lessw2020/Ranger-Deep-Learning-Optimizer#2", "pytorch/pytorch PR #58968"),
        delta=lambda rule: rule.replace("rectification", _rectification(4)).replace(
            "update", _update(4, TORCH_ADAPTIVE)
        ),
    ),
    Variant(
        id="radam.eps_paper_placement",
        title="ε added to the bias-corrected √v̂ (optax)",
        summary="rectified step γ·r_t·m̂/(√v̂ + ε) with v̂ = v/(1 − β₂ᵗ), instead of torch's "
        "γ·r_t·m̂·√(1 − β₂ᵗ)/(√v + ε) = γ·r_t·m̂/(√v̂ + ε/√(1 − β₂ᵗ))",
        who="optax radam (scale_by_radam: r·m̂/(√(v̂ + eps_root) + ε))",
        sources=("google-deepmind/optax optax/_src/transform.py (scale_by_radam)", "google-deepmind/optax#15"),
        delta=lambda rule: rule.replace(
            "update", _update(THRESHOLD, 1 / (sp.sqrt(v / (1 - beta2**t)) + eps))
        ),
    ),
)




def _no_unrectified_step(rule: Rule) -> Rule:
    """pytorch_optimizer (degenerated_to_sgd=False): below the threshold neither the step nor the
    decoupled decay (the rule's own ``decay`` line, whatever it is) is applied; the moments still
    advance. ρ at the decay line is the coming step's, t + 1 (the counter advances after it)."""
    rho_next = RHO_INF - 2 * (t + 1) * beta2 ** (t + 1) / (1 - beta2 ** (t + 1))
    decay = rule.assignment("decay").expr
    return rule.replace("decay", sp.Piecewise((decay, rho_next > THRESHOLD), (theta, True))).replace(
        "update", sp.Piecewise((theta - lr * r * m_hat * TORCH_ADAPTIVE, rho > THRESHOLD), (theta, True)))


VARIANTS = VARIANTS + (
    Variant(
        id="radam.decoupled_decay",
        title="decoupled weight decay where L2 was asked for",
        summary="θ ← θ·(1 − γλ) before the step instead of g ← g + λθ (RAdamW whatever "
        "decoupled_weight_decay says)",
        who="timm RAdamLegacy; torch_optimizer RAdam; pytorch_optimizer RAdam (weight_decouple=True, "
        "the default)",
        sources=("timm/optim/radam.py RAdamLegacy.step (p_fp32.add_(p_fp32, alpha=-weight_decay * lr))",
                 "torch_optimizer/radam.py RAdam.step (p_data_fp32.add_(p_data_fp32, alpha=-weight_decay * lr))",
                 "pytorch_optimizer/optimizer/radam.py RAdam._step_per_param (apply_weight_decay, "
                 "weight_decouple)"),
        # decoupled_weight_decay switched on in the two lines that read it, whatever else they say
        # (pytorch_optimizer gates the decay line too: radam.no_unrectified_step)
        delta=lambda rule: rule.replace("weight_decay", rule.assignment("weight_decay").expr.xreplace({decoupled: True}))
        .replace("decay", rule.assignment("decay").expr.xreplace({decoupled: True})),
        partial_lines=True,
    ),
    Variant(
        id="radam.no_unrectified_step",
        title="no step before rectification",
        summary="while ρ_t ≤ 5 the parameter does not move (no SGD step with m̂, no decoupled decay); "
        "the moments still advance",
        who="pytorch_optimizer RAdam (degenerated_to_sgd=False, the default)",
        sources=("pytorch_optimizer/base/optimizer.py BaseOptimizer.get_rectify_step_size (rt = -1.0)",
                 "pytorch_optimizer/optimizer/radam.py RAdam._step_per_param (elif step_size > 0)"),
        delta=_no_unrectified_step,
        partial_lines=True,
    ),
    global_counter(
        who="pytorch_optimizer RAdam (group['step'])",
        sources=("pytorch_optimizer/optimizer/radam.py RAdam.step (group['step'] += 1)",),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
_plain = {lam: 0, maximize: False, decoupled: False}

# ρ as twice the mean age minus one: feed the step index as the squared gradient.
_AGE_RULE = RULE.insert_before("first_moment", Assign("age_as_gradient", g, sp.sqrt(t), "g² = t"))
_age_ema = t - beta2 * (1 - beta2**t) / (1 - beta2)  # v_t when g_s² = s

CLOSED_FORMS = (
    ClosedForm(
        name="moments_constant_gradient",
        statement="With a constant gradient g: m_t = g·(1 − β₁ᵗ) and v_t = g²·(1 − β₂ᵗ), so m̂_t = g "
        "in both branches.",
        rule=RULE,
        given={**_plain, g: g0},
        closed={m: g0 * (1 - beta1**t), v: g0**2 * (1 - beta2**t), m_hat: g0},
    ),
    ClosedForm(
        name="sma_length_is_twice_the_mean_age",
        statement="Fed g_s² = s (the step index), v̂_t = v_t/(1 − β₂ᵗ) is the EMA-weighted mean step "
        "index, v_t = t − β₂(1 − β₂ᵗ)/(1 − β₂), and ρ_t = 2t + 1 − 2v̂_t: ρ_t is twice the mean age "
        "of the EMA's gradients minus one, so ρ_t < t and no β₂ rectifies before step 6.",
        rule=_AGE_RULE,
        given=_plain,
        closed={v: _age_ema, rho: 2 * t + 1 - 2 * _age_ema / (1 - beta2**t)},
    ),
    ClosedForm(
        name="never_rectified_when_beta2_is_half",
        statement="With β₂ = 1/2, ρ∞ = 3 < 5: RAdam never rectifies and under a constant gradient "
        "it is plain gradient descent, θ_t = θ₀ − t·γ·g (m̂_t = g).",
        rule=RULE,
        given={**_plain, g: g0, beta2: sp.Rational(1, 2)},
        closed={m: g0 * (1 - beta1**t), m_hat: g0, r: 0, theta: theta0 - t * lr * g0},
        initial={theta: theta0},
    ),
)


def sma_length(beta2_value: float | Fraction, step: int) -> Fraction:
    """ρ_t in exact rational arithmetic, for the double β₂ (torch's formula)."""
    b = Fraction(beta2_value)
    return 2 / (1 - b) - 1 - 2 * step * b**step / (1 - b**step)


def first_rectified_step(beta2_value: float | Fraction, threshold: int = THRESHOLD) -> int | None:
    """The first step t with ρ_t > threshold (exactly); None when ρ∞ ≤ threshold (never).

    ρ_t increases towards ρ∞, so it crosses a threshold below ρ∞ after finitely many steps.
    """
    b = Fraction(beta2_value)
    rho_inf = 2 / (1 - b) - 1
    if rho_inf <= threshold:
        return None
    step, power = 1, b
    while rho_inf - 2 * step * power / (1 - power) <= threshold:
        step, power = step + 1, power * b
    return step


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="radam/defaults",
        title="torch's defaults, across the threshold",
        purpose="SGD with bias-corrected momentum for t ≤ 5 (ρ₅ = 4.996: the paper's ρ > 4 already "
        "rectifies), then the rectified step from t = 6",
        hyperparameters={},
        grad_exponents=[0] * 8,
        seed=601,
    ),
    CaseBuilder(
        id="radam/large_eps",
        title="large ε in the rectified steps",
        purpose="ε on the raw √v is ε/√(1 − β₂ᵗ) ≈ 13·ε on √v̂ at t = 6: with ε = 0.5 where ε goes is O(1)",
        hyperparameters={"lr": "0.125", "eps": "0.5"},
        grad_exponents=[0] * 8,
        seed=602,
    ),
    CaseBuilder(
        id="radam/fast_second_moment",
        title="β₂ = 0.95 and ε = 1: larger rectification terms, ε still amplified",
        purpose="ρ₅ = 4.80, ρ₆ = 5.70: both thresholds at their earliest step; r_t = 0.18-0.35 and "
        "ε/√(1 − β₂ᵗ) = 1.9-1.6·ε for t = 6-10, so where ε goes is a large share of the step",
        hyperparameters={"lr": "0.25", "eps": "1", "betas": ["0.5", "0.95"]},
        grad_exponents=[0, 0, 1, 0, 0, -1, 0, 0, 1, 0],
        seed=603,
    ),
    CaseBuilder(
        id="radam/late_rectification",
        title="β₂ = 0.75: rectification only from step 8",
        purpose="ρ∞ = 7: ρ₆ = 4.40, ρ₇ = 4.84 (the paper's ρ > 4 rectifies, torch does not), ρ₈ = 5.22",
        hyperparameters={"lr": "0.125", "eps": "0.125", "betas": ["0.5", "0.75"]},
        grad_exponents=[0] * 9,
        seed=604,
    ),
    CaseBuilder(
        id="radam/weight_decay_maximize",
        title="L2 weight decay while maximizing",
        purpose="the sign flip of maximize happens before the L2 term is added, in both branches",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.25", "maximize": True, "betas": ["0.9", "0.99"]},
        grad_exponents=[0] * 8,
        seed=605,
        param_exponent=2,
    ),
    CaseBuilder(
        id="radam/decoupled_weight_decay_lr_schedule",
        title="decoupled weight decay with the learning rate changed between steps",
        purpose="RAdamW: θ ← θ·(1 − γλ) with the current γ, outside the moments, in both branches",
        hyperparameters={"lr": "0.125", "weight_decay": "0.5", "decoupled_weight_decay": True},
        grad_exponents=[0] * 8,
        seed=606,
        param_exponent=1,
        changes={3: [_lr(0, "0.5")], 6: [_lr(0, "0.015625")]},
    ),
    CaseBuilder(
        id="radam/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="each param's own step count decides its branch (the scalar rectifies two steps after "
        "the vector); the second group (β₂ = 0.5, ρ∞ = 3) never rectifies",
        hyperparameters={"lr": "0.0625"},
        grad_exponents=[0] * 9,
        seed=607,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "betas": ["0.75", "0.5"], "eps": "0.125",
                               "weight_decay": "0.125", "decoupled_weight_decay": True})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 4]},
    ),
    CaseBuilder(
        id="radam/resume",
        title="state_dict round trip at the threshold",
        purpose="a fresh instance loaded from state_dict continues exactly (step counts included) and "
        "takes the first rectified step",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "eps": "0.0625", "betas": ["0.875", "0.99"]},
        grad_exponents=[1, 1, -1, 0, -2, 0, 1, 0],
        seed=608,
        reload_before=[6],
    ),
    long_horizon("radam", {"lr": "0.001"}, 609,
                 "ρ_t near ρ_∞ at t = 10³, the rectification r_t and the bias correction 1 − β₂ᵗ ≈ 0.63 "
                 "(the first 7 steps checked too: ρ_t crosses 4 and 5 there)", head=7),
    resumed_at_large_t("radam", {"lr": "0.001"}, 610,
                       "ρ_t at t = 10⁶ (ρ_∞ − 2·10⁶·β₂ᵗ/(1 − β₂ᵗ): ρ_∞ to double precision), the step count "
                       "continuing from 10⁶ (exact in torch's float32 counter)",
                       {"exp_avg": "signed", "exp_avg_sq": "positive"}),
)

SPEC = Spec(
    id="radam",
    title="RAdam",
    torch_class="torch.optim.RAdam",
    rule=RULE,
    unreachable_boundaries={
        "rectification: rho > 5 on": "ρ_t = 5 exactly needs β₂ a root of a polynomial, not a double; in a dtype ρ_t may round to 5.0 (not generated: see findings)",
        "update: rho > 5 on": "as rectification",
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("pytorch-optimizer", "pytorch_optimizer.RAdam", note="pytorch_optimizer/optimizer/radam.py RAdam"),
        Implementation("timm", "timm.optim.radam.RAdamLegacy", note="timm/optim/radam.py RAdamLegacy"),
    ),
)
