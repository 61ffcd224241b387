"""AdaBelief with decoupled weight decay — the official implementation's rule, rectification off.

Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients"
(arXiv:2010.07468), Algorithm 2, as the official code (juntang-zhuang/Adabelief-Optimizer,
pypi_packages/adabelief_pytorch0.2.0/adabelief_pytorch/AdaBelief.py ``AdaBelief.step`` with
rectify=False) and timm (``timm/optim/adabelief.py``
``_single_tensor_adabelief``) compute it: Adam with the second moment of the *residual* g − m
(m already updated), ε added to that moment in place — so it **accumulates** in the state
(Adabelief-Optimizer#61) — and added again to the denominator::

    θ ← θ·(1 − γλ)                                  (decoupled decay)
    m ← β₁·m + (1 − β₁)·g
    s ← β₂·s + (1 − β₂)·(g − m)² + ε                (state "exp_avg_var")
    θ ← θ − γ/(1 − β₁ᵗ) · m / (√s/√(1 − β₂ᵗ) + ε)

Rectification (RAdam's variance rectification, the official code's ``rectify`` flag) is not part
of the algorithm of the paper; timm turns it on by default and pytorch_optimizer offers it. It is
catalogued as variants, one per library convention (threshold 5 with an SGD fallback divided by
1 − β₁ᵗ; the same without the fallback; torch_optimizer's threshold 4 with an SGD fallback not
divided by it), so that a default-constructed timm optimizer is named rather than configured
away, and the spec keeps one rule. Decay options (coupled L2, not scaled by γ) and
pytorch_optimizer's step counted per param group are variants too.
"""

from __future__ import annotations

import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m, maximize
from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, steps_taken, t, theta
from .spec import Implementation, Spec

s = sp.Symbol("s", nonnegative=True)  # EMA of the squared residual, ε included (exp_avg_var)

bc1 = 1 - beta1**t
bc2 = 1 - beta2**t

RULE = Rule(
    id="adabelief",
    title="AdaBelief (official; ε accumulated in s, decoupled decay, no rectification)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.999),
                       doc="decay rates (β₁, β₂) of the first moment and of the residual's second moment"),
        Hyperparameter("eps", eps, 1e-16, doc="ε added to s (accumulating) and to the denominator"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="decoupled weight decay λ: θ ← θ·(1 − γλ)"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m (EMA of g)"),
        StateVar("exp_avg_var", s, sp.Integer(0), "EMA of (g − m)², with ε added at every step"),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("weight_decay", theta, theta * (1 - lr * lam), "decoupled weight decay"),
        Assign("step", t, t + 1, "count the step"),
        Assign("first_moment", m, beta1 * m + (1 - beta1) * g, "EMA of the gradient"),
        Assign("belief", s, beta2 * s + (1 - beta2) * (g - m) ** 2 + eps,
               "EMA of the squared residual g − m (m updated), ε added in place"),
        Assign("update", theta, theta - lr / bc1 * m / (sp.sqrt(s) / sp.sqrt(bc2) + eps),
               "the Adam-style step with the belief as second moment"),
    ),
)

# RAdam's rectification (timm, pytorch_optimizer, torch_optimizer): ρ∞ and ρ_t, and the factor r_t
rho_inf = 2 / (1 - beta2) - 1


def _rho(k: sp.Expr) -> sp.Expr:
    return rho_inf - 2 * k * beta2**k / (1 - beta2**k)


def _rt_no_bc2(k: sp.Expr) -> sp.Expr:
    rho = _rho(k)
    return (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)


def _rectified(fallback: sp.Expr, k: sp.Expr = t) -> sp.Expr:
    """timm / pytorch_optimizer: ρ_k ≥ 5 → γ·r_k/(1 − β₁ᵏ)·m/(√s + ε) (no 1 − β₂ᵏ in the
    denominator: r_k holds it); otherwise ``fallback``. ``k``: the step count used (t, or the
    number of step() calls for pytorch_optimizer)."""
    rt = sp.sqrt((1 - beta2**k) * _rt_no_bc2(k))
    return sp.Piecewise((theta - lr * rt / (1 - beta1**k) * m / (sp.sqrt(s) + eps), _rho(k) >= 5),
                        (fallback, True))


# -- variants -------------------------------------------------------------------------------
VARIANTS = (
    Variant(
        id="adabelief.eps_not_accumulated",
        title="ε not accumulated in s",
        summary="s ← β₂·s + (1 − β₂)·(g − m)²; θ ← θ − γ/(1 − β₁ᵗ)·m/(√(s/(1 − β₂ᵗ)) + ε): "
        "Adam with the residual, ε only in the denominator",
        who="AdaBelief written as Adam with (g − m)² (the paper's Algorithm 1 read without the +ε of "
        "Algorithm 2); the form Adabelief-Optimizer#61 compares against",
        sources=("juntang-zhuang/Adabelief-Optimizer#61", "arXiv:2010.07468 Algorithm 2"),
        delta=lambda r: r.replace("belief", beta2 * s + (1 - beta2) * (g - m) ** 2),
    ),
    Variant(
        id="adabelief.coupled_decay",
        title="coupled (L2) weight decay",
        summary="g ← g + λθ before the moments; no decoupled decay",
        who="torch_optimizer AdaBelief (default weight_decouple=False), timm AdaBelief(decoupled_decay=False), "
        "pytorch_optimizer AdaBelief(weight_decouple=False)",
        sources=("torch_optimizer/adabelief.py AdaBelief.__init__ l.62, step l.160",
                 "timm/optim/adabelief.py _single_tensor_adabelief l.298-300",
                 "pytorch_optimizer/base/optimizer.py BaseOptimizer.apply_weight_decay l.208-209"),
        delta=lambda r: r.replace("weight_decay", theta).insert_after(
            "maximize", Assign("l2", g, g + lam * theta, "L2 weight decay added to the gradient")),
    ),
    Variant(
        id="adabelief.fixed_decay",
        title="weight decay not scaled by the learning rate",
        summary="θ ← θ·(1 − λ)",
        who="timm / pytorch_optimizer / torch_optimizer AdaBelief(fixed_decay=True)",
        sources=("timm/optim/adabelief.py _single_tensor_adabelief l.296-297",
                 "pytorch_optimizer/base/optimizer.py BaseOptimizer.apply_weight_decay l.207"),
        delta=lambda r: r.replace("weight_decay", theta * (1 - lam)),
    ),
    Variant(
        id="adabelief.rectified",
        title="rectified (RAdam) update, threshold ρ_t ≥ 5, SGD fallback divided by 1 − β₁ᵗ",
        summary="ρ_t ≥ 5: θ ← θ − γ·r_t/(1 − β₁ᵗ)·m/(√s + ε); otherwise θ ← θ − γ/(1 − β₁ᵗ)·m",
        who="timm AdaBelief (default rectify=True, degenerated_to_sgd=True), pytorch_optimizer "
        "AdaBelief(rectify=True), the official adabelief_pytorch 0.2 (rectify=True)",
        sources=("timm/optim/adabelief.py AdaBelief.__init__ l.60 (rectify=True), step l.169-187, "
                 "_single_tensor_adabelief l.326-332",
                 "pytorch_optimizer/base/optimizer.py BaseOptimizer.get_rectify_step_size",
                 "pytorch_optimizer/optimizer/adabelief.py AdaBelief._step_per_param l.198-208",
                 "juntang-zhuang/Adabelief-Optimizer pypi_packages/adabelief_pytorch0.2.0/adabelief_pytorch/"
                 "AdaBelief.py AdaBelief.step (rectify=True, the package default)"),
        delta=lambda r: r.replace("update", _rectified(theta - lr / bc1 * m)),
    ),
    Variant(
        id="adabelief.rectified_no_sgd",
        title="rectified update, threshold ρ_t ≥ 5, no step below it",
        summary="ρ_t ≥ 5: θ ← θ − γ·r_t/(1 − β₁ᵗ)·m/(√s + ε); otherwise θ does not move (decay only)",
        who="timm AdaBelief(rectify=True, degenerated_to_sgd=False), pytorch_optimizer "
        "AdaBelief(rectify=True, degenerated_to_sgd=False)",
        sources=("timm/optim/adabelief.py AdaBelief.step l.185-186 (step_size = -1), _single_tensor_adabelief l.331",
                 "pytorch_optimizer/base/optimizer.py BaseOptimizer.get_rectify_step_size (rt = -1)"),
        delta=lambda r: r.replace("update", _rectified(theta)),
    ),
    Variant(
        id="adabelief.rectified_threshold_4",
        title="rectified update, threshold ρ_t > 4, SGD fallback not divided by 1 − β₁ᵗ",
        summary="ρ_t > 4: θ ← θ − γ·r′_t/(1 − β₁ᵗ)·m/(√s/√(1 − β₂ᵗ) + ε), r′_t without the 1 − β₂ᵗ "
        "factor; otherwise θ ← θ − γ·m",
        who="torch_optimizer AdaBelief(rectify=True)",
        sources=("torch_optimizer/adabelief.py AdaBelief.step l.200 (state['rho_t'] > 4), l.218 (p.add_(-lr, exp_avg))",),
        delta=lambda r: r.replace("update", sp.Piecewise(
            (theta - lr * sp.sqrt(_rt_no_bc2(t)) / bc1 * m / (sp.sqrt(s) / sp.sqrt(bc2) + eps), _rho(t) > 4),
            (theta - lr * m, True))),
    ),
    Variant(
        id="adabelief.step_per_group",
        title="bias corrections from the param group's step count",
        summary="1 − β₁ᵏ and 1 − β₂ᵏ with k the number of step() calls (group['step']), counting "
        "calls in which the parameter had no gradient",
        who="pytorch_optimizer AdaBelief",
        sources=("pytorch_optimizer/optimizer/adabelief.py AdaBelief.step l.219 (group['step'] += 1), l.223 "
                 "(bias_correction1), _step_per_param l.153 (bias_correction2_sq from group['step'])",),
        delta=lambda r: r.replace("update", theta - lr / (1 - beta1**steps_taken) * m
                                  / (sp.sqrt(s) / sp.sqrt(1 - beta2**steps_taken) + eps)),
    ),
    Variant(
        id="adabelief.rectified_step_per_group",
        title="rectified update (threshold ρ ≥ 5, SGD fallback divided by 1 − β₁ᵏ) with the param "
        "group's step count",
        summary="adabelief.rectified with t replaced by k, the number of step() calls (group['step']) "
        "in ρ, r and both bias corrections",
        who="pytorch_optimizer AdaBelief(rectify=True)",
        sources=("pytorch_optimizer/optimizer/adabelief.py AdaBelief.step and _step_per_param",
                 "pytorch_optimizer/base/optimizer.py BaseOptimizer.get_rectify_step_size, apply_adam_debias"),
        delta=lambda r: r.replace("update", _rectified(theta - lr / (1 - beta1**steps_taken) * m, steps_taken)),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
_eps_sum = eps * (1 - beta2**t) / (1 - beta2)

CLOSED_FORMS = (
    ClosedForm(
        name="zero_gradient_accumulates_eps",
        statement="With a zero gradient nothing but ε enters s, and it accumulates: "
        "s_t = ε·(1 − β₂ᵗ)/(1 − β₂), m_t = 0 and θ_t = θ₀·(1 − γλ)ᵗ (the decay alone).",
        rule=RULE,
        given={g: 0, maximize: False},
        closed={m: sp.Integer(0), s: _eps_sum, theta: theta0 * (1 - lr * lam) ** t},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="constant_gradient_belief",
        statement="With a constant gradient g the residual is g − m_t = g·β₁ᵗ, so "
        "m_t = g·(1 − β₁ᵗ) and s_t = (1 − β₂)·g²·β₁²·(β₁²ᵗ − β₂ᵗ)/(β₁² − β₂) + ε·(1 − β₂ᵗ)/(1 − β₂): "
        "the belief in a constant gradient decays to the accumulated ε.",
        rule=RULE,
        given={g: g0, maximize: False, lam: 0},
        closed={m: g0 * (1 - beta1**t),
                s: (1 - beta2) * g0**2 * beta1**2 * (beta1 ** (2 * t) - beta2**t) / (beta1**2 - beta2) + _eps_sum},
    ),
    ClosedForm(
        name="not_accumulated_constant_gradient",
        statement="Without the accumulation (variant eps_not_accumulated), a constant gradient gives "
        "s_t = (1 − β₂)·g²·β₁²·(β₁²ᵗ − β₂ᵗ)/(β₁² − β₂): the difference from the spec is exactly "
        "ε·(1 − β₂ᵗ)/(1 − β₂).",
        rule=VARIANTS[0].rule_for(RULE),
        given={g: g0, maximize: False, lam: 0},
        closed={m: g0 * (1 - beta1**t),
                s: (1 - beta2) * g0**2 * beta1**2 * (beta1 ** (2 * t) - beta2**t) / (beta1**2 - beta2)},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="adabelief/defaults",
        title="the official defaults",
        purpose="γ = 1e-3, β = (0.9, 0.999), ε = 1e-16 with gradients ≈ 2⁻²⁶ (1e-8), where ε is "
        "what s holds and its accumulation decides the step; bias corrections at small t, where a "
        "rectified update (ρ_t < 5 for t ≤ 5) falls back to SGD",
        hyperparameters={},
        grad_exponents=[-26] * 5,
        seed=901,
    ),
    CaseBuilder(
        id="adabelief/large_eps",
        title="large ε, fast second moment",
        purpose="ε = 1/16 accumulates in s at every step: s grows by ~ε·t against the residual's "
        "(1 − β₂)·(g − m)²",
        hyperparameters={"lr": "0.125", "eps": "0.0625", "betas": ["0.5", "0.75"]},
        grad_exponents=[0, 0, -1, -1, -2, -2],
        seed=902,
    ),
    CaseBuilder(
        id="adabelief/rectification_thresholds",
        title="β₂ = 7/8: ρ_t crosses 4 at step 5 and 5 at step 6",
        purpose="ρ_t = 1, 1.93, 2.82, 3.67, 4.47, 5.23, 5.95: the SGD fallback for t ≤ 5 (threshold "
        "5) or t ≤ 4 (threshold 4), with or without 1/(1 − β₁ᵗ), then the rectified step",
        hyperparameters={"lr": "0.0625", "betas": ["0.75", "0.875"], "eps": "0.0009765625"},
        grad_exponents=[0] * 7,
        seed=903,
    ),
    CaseBuilder(
        id="adabelief/weight_decay",
        title="decay large against the step",
        purpose="θ ≈ 4-8, λ = 1/2, γ = 1/8: coupled decay puts λθ ≫ g into both moments; decay not "
        "scaled by γ shrinks θ eight times more",
        hyperparameters={"lr": "0.125", "weight_decay": "0.5", "eps": "0.00390625"},
        grad_exponents=[0] * 5,
        seed=904,
        param_exponent=3,
    ),
    CaseBuilder(
        id="adabelief/weight_decay_lr_schedule",
        title="weight decay with the learning rate changed between steps",
        purpose="the decay and the step follow the current γ",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "betas": ["0.75", "0.875"],
                         "eps": "0.0009765625"},
        grad_exponents=[0] * 6,
        seed=905,
        param_exponent=1,
        changes={3: [_lr(0, "0.5")], 5: [_lr(0, "0.015625")]},
    ),
    CaseBuilder(
        id="adabelief/weight_decay_maximize",
        title="weight decay while maximizing",
        purpose="the sign flip of maximize applies to the gradient; the decay still shrinks θ",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.5", "maximize": True, "betas": ["0.5", "0.75"],
                         "eps": "0.0009765625"},
        grad_exponents=[0] * 5,
        seed=906,
        param_exponent=2,
    ),
    CaseBuilder(
        id="adabelief/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its state and its step "
        "count (its bias corrections are its own, not the number of step() calls)",
        hyperparameters={"lr": "0.0625", "betas": ["0.5", "0.75"]},
        grad_exponents=[1, 0, 0, -1, -2, -2],
        seed=907,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "betas": ["0.75", "0.5"], "eps": "0.125"})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 4]},
    ),
    CaseBuilder(
        id="adabelief/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (step counts included)",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "eps": "0.0625", "betas": ["0.875", "0.75"]},
        grad_exponents=[1, 1, -1, 0, -2, 0],
        seed=908,
        reload_before=[4],
    ),
    long_horizon("adabelief", {"lr": "0.001"}, 909,
                 "both bias corrections at t = 10³: 1 − β₂ᵗ ≈ 0.63, so an off-by-one or a missing correction "
                 "still shows"),
)

SPEC = Spec(
    id="adabelief",
    title="AdaBelief",
    torch_class=None,
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("timm", "timm.optim.adabelief.AdaBelief",
                       kwargs={"rectify": False, "decoupled_decay": True, "fixed_decay": False},
                       note="timm/optim/adabelief.py AdaBelief, _single_tensor_adabelief (rectify=False "
                       "selects the unrectified update; the default rectify=True is variant "
                       "adabelief.rectified)"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.AdaBelief",
                       kwargs={"rectify": False, "weight_decouple": True, "fixed_decay": False},
                       note="pytorch_optimizer/optimizer/adabelief.py AdaBelief._step_per_param / "
                       "_step_foreach (the defaults; bias corrections from group['step'])"),
    ),
)
