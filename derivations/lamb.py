"""LAMB: Adam's bias-corrected direction with per-tensor (layer-wise) trust ratio.

You, Li, Reddi et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes"
(arXiv:1904.00962, v5, Algorithm 2), with φ the identity: for each parameter tensor (a "layer"),

    m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²
    r = (m/(1 − β₁ᵗ)) / (√(v/(1 − β₂ᵗ)) + ε)
    u = r + λ·θ
    θ ← θ − γ · ‖θ‖/‖u‖ · u          (the ratio is 1 when ‖θ‖ = 0 or ‖u‖ = 0)

‖·‖ is the Euclidean norm of the whole tensor (:class:`~.tensor.Norm`). This is NVIDIA's NVLAMB
and timm's ``Lamb`` with ``max_grad_norm=None, always_adapt=True`` (timm/optim/lamb.py,
``_single_tensor_lamb``), and optax's ``lamb``. The libraries differ in the bias correction, in
where the weight decay enters, in a clamp of ‖θ‖ at 10, in an ε in the ratio's denominator and in
keeping one step count per param group (:data:`VARIANTS`).

The trust ratio makes the step invariant to the scale of u, so bias correction shows only where ε
or λθ is not negligible next to the Adam direction: the cases use a large ε with small gradients,
and large λ with ‖θ‖ ≫ ‖r‖.
"""

from __future__ import annotations

import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m, v
from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, steps_taken, t, theta
from .spec import Implementation, Spec
from .tensor import Norm

r = sp.Symbol("r", real=True)  # the bias-corrected Adam direction
u = sp.Symbol("u", real=True)  # the update before the trust ratio
phi = sp.Symbol("phi", nonnegative=True)  # the trust ratio ‖θ‖/‖u‖


def _ratio(num: sp.Expr, den: sp.Expr) -> sp.Expr:
    """num/den, or 1 when either norm is 0 (every implementation)."""
    return sp.Piecewise((1, sp.Or(sp.Eq(Norm(theta), 0), sp.Eq(Norm(u), 0))), (num / den, True))


RULE = Rule(
    id="lamb",
    title="LAMB (paper v5 Algorithm 2; bias-corrected, λθ inside the trust ratio, no clamp)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.999),
                       doc="decay rates (β₁, β₂) of the first and second moments"),
        Hyperparameter("eps", eps, 1e-6, doc="ε added to the bias-corrected √v̂"),
        Hyperparameter("weight_decay", lam, 0.01, neutral=0,
                       doc="λ: λθ is added to the Adam direction before the trust ratio"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m (EMA of g)"),
        StateVar("exp_avg_sq", v, sp.Integer(0), "second moment v (EMA of g²)"),
    ),
    body=(
        Assign("step", t, t + 1, "count the step"),
        Assign("first_moment", m, beta1 * m + (1 - beta1) * g, "EMA of the gradient"),
        Assign("second_moment", v, beta2 * v + (1 - beta2) * g**2, "EMA of the squared gradient"),
        Assign("direction", r, (m / (1 - beta1**t)) / (sp.sqrt(v) / sp.sqrt(1 - beta2**t) + eps),
               "bias-corrected Adam direction r = m̂/(√v̂ + ε)"),
        Assign("decay", u, r + lam * theta, "weight decay added to the direction: u = r + λθ"),
        Assign("trust_ratio", phi, _ratio(Norm(theta), Norm(u)),
               "per-tensor trust ratio ‖θ‖/‖u‖ (1 if a norm is 0)"),
        Assign("update", theta, theta - lr * phi * u, "θ ← θ − γ·(‖θ‖/‖u‖)·u"),
    ),
)


# -- variants -------------------------------------------------------------------------------
CLAMP = 10  # pytorch_optimizer Lamb.clamp, torch_optimizer clamp_value

_clamp = _ratio(sp.Min(Norm(theta), CLAMP), Norm(u))
_uncorrected = m / (sp.sqrt(v) + eps)
_eps_ratio = _ratio(Norm(theta), Norm(u) + eps)
_group_step = steps_taken

VARIANTS = (
    Variant(
        id="lamb.norm_clamp",
        title="‖θ‖ clamped at 10 in the trust ratio",
        summary="ratio = min(‖θ‖, 10)/‖u‖",
        who="pytorch_optimizer Lamb (clamp = 10.0); torch_optimizer Lamb (clamp_value = 10)",
        sources=("pytorch_optimizer/optimizer/lamb.py Lamb.update (weight_norm ... clamp_(min=0, max=self.clamp))",
                 "torch_optimizer/lamb.py Lamb.step (weight_norm ... clamp(0, self.clamp_value))"),
        delta=lambda rule: rule.replace("trust_ratio", _clamp),
    ),
    Variant(
        id="lamb.m_corrected_only",
        title="no bias correction in the direction; the step size γ/(1 − β₁ᵗ) multiplies the trust ratio",
        summary="r = m/(√v + ε); θ ← θ − γ/(1 − β₁ᵗ) · (‖θ‖/‖u‖)·u (m's correction outside the ratio, v's none)",
        who="pytorch_optimizer Lamb (step_size = lr/bc1 by apply_adam_debias; v never corrected)",
        sources=("pytorch_optimizer/optimizer/lamb.py Lamb.step (apply_adam_debias), Lamb.update",
                 "pytorch_optimizer/base/optimizer.py apply_adam_debias"),
        delta=lambda rule: rule.replace("direction", _uncorrected).replace(
            "trust_ratio", _ratio(Norm(theta), Norm(u)) / (1 - beta1**t)),
    ),
    Variant(
        id="lamb.no_bias_correction",
        title="no bias correction",
        summary="r = m/(√v + ε)",
        who="torch_optimizer Lamb (debias=False, the default); timm Lamb bias_correction=False",
        sources=("torch_optimizer/lamb.py Lamb.step", "timm/optim/lamb.py Lamb.step (bias_correction)"),
        delta=lambda rule: rule.replace("direction", _uncorrected),
    ),
    Variant(
        id="lamb.decoupled_decay",
        title="decoupled weight decay applied first, outside the trust ratio",
        summary="θ ← θ·(1 − γλ); u = r; ratio = ‖θ‖/‖u‖ with the decayed θ",
        who="pytorch_optimizer Lamb (weight_decouple=True, the default); timm Lamb decoupled_decay=True; Keras Lamb",
        sources=("pytorch_optimizer/optimizer/lamb.py Lamb.update (apply_weight_decay before the norms)",
                 "timm/optim/lamb.py _single_tensor_lamb (decoupled_decay)",
                 "keras/src/optimizers/lamb.py update_step"),
        delta=lambda rule: rule.replace("decay", r).insert_after(
            "direction", Assign("decouple", theta, theta * (1 - lr * lam), "decoupled decay θ ← θ(1 − γλ)")),
    ),
    Variant(
        id="lamb.eps_in_ratio",
        title="ε added to ‖u‖ in the trust ratio",
        summary="ratio = ‖θ‖/(‖u‖ + ε)",
        who="pytorch_optimizer Lamb",
        sources=("pytorch_optimizer/optimizer/lamb.py Lamb.update (weight_norm / (p_norm + group['eps']))",),
        delta=lambda rule: rule.replace("trust_ratio", _eps_ratio),
    ),
    Variant(
        id="lamb.trust_clip",
        title="trust ratio clipped at 1 (LAMBC)",
        summary="ratio = min(‖θ‖/‖u‖, 1)",
        who="timm Lamb trust_clip=True",
        sources=("timm/optim/lamb.py _lamb_trust_ratio (trust_clip)",),
        delta=lambda rule: rule.replace("trust_ratio", sp.Min(_ratio(Norm(theta), Norm(u)), 1)),
    ),
    Variant(
        id="lamb.no_ratio_without_decay",
        title="no trust ratio when λ = 0 (plain Adam)",
        summary="ratio = 1 if λ = 0",
        who="timm Lamb (always_adapt=False, the default)",
        sources=("timm/optim/lamb.py _single_tensor_lamb (if weight_decay != 0 or always_adapt)",),
        delta=lambda rule: rule.replace(
            "trust_ratio", sp.Piecewise((1, sp.Eq(lam, 0)), (_ratio(Norm(theta), Norm(u)), True))),
    ),
    Variant(
        id="lamb.group_step",
        title="one step count per param group",
        summary="t = the number of optimizer.step() calls, whether or not the param had a gradient",
        who="timm Lamb; pytorch_optimizer Lamb (group['step'])",
        sources=("timm/optim/lamb.py Lamb.step (group['step'].add_(1) before the params are visited)",
                 "pytorch_optimizer/optimizer/lamb.py Lamb.step (group['step'] += 1)"),
        delta=lambda rule: rule.replace("step", _group_step),
    ),
    Variant(
        id="lamb.pytorch_optimizer",
        title="pytorch_optimizer's Lamb (weight_decouple=False): group step, v uncorrected, clamp and ε in the ratio",
        summary="t = steps taken; r = m/(√v + ε); θ ← θ − γ/(1 − β₁ᵗ) · min(‖θ‖, 10)/(‖u‖ + ε) · u",
        who="pytorch_optimizer Lamb",
        sources=("pytorch_optimizer/optimizer/lamb.py Lamb.step, Lamb.update",),
        delta=lambda rule: rule.replace("step", _group_step).replace("direction", _uncorrected).replace(
            "trust_ratio", _ratio(sp.Min(Norm(theta), CLAMP), Norm(u) + eps) / (1 - beta1**t)),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
theta_norm, u_norm = sp.symbols("N_theta N_u", positive=True)
_beta2 = sp.Rational(999, 1000)
_constant = {g: g0, beta2: _beta2}

CLOSED_FORMS = (
    ClosedForm(
        name="constant_gradient_direction",
        statement="Under a constant gradient g the moments are m_t = g·(1 − β₁ᵗ), v_t = g²·(1 − β₂ᵗ), and the "
        "bias-corrected direction is r_t = g/(|g| + ε) on every step: the trust ratio only rescales it.",
        rule=RULE,
        given=_constant,
        closed={m: g0 * (1 - beta1**t), v: g0**2 * (1 - _beta2**t), r: g0 / (sp.Abs(g0) + eps)},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="m_corrected_only_trust_ratio",
        statement="pytorch_optimizer's placement of m's bias correction (in the step size, outside the "
        "trust ratio) multiplies the ratio by 1/(1 − β₁ᵗ): under a constant gradient, with λ = 0, "
        "φ_t = ‖θ‖/(‖r‖·(1 − β₁ᵗ)) where r_t = g·(1 − β₁ᵗ)/(|g|·√(1 − β₂ᵗ) + ε).",
        rule=VARIANTS[1].rule_for(RULE),
        given={**_constant, lam: 0, Norm(theta): theta_norm, Norm(u): u_norm},
        closed={m: g0 * (1 - beta1**t), v: g0**2 * (1 - _beta2**t),
                r: g0 * (1 - beta1**t) / (sp.Abs(g0) * sp.sqrt(1 - _beta2**t) + eps),
                phi: theta_norm / (u_norm * (1 - beta1**t))},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="no_bias_correction_direction",
        statement="Without bias correction (torch_optimizer) the direction under a constant gradient is "
        "r_t = g·(1 − β₁ᵗ)/(|g|·√(1 − β₂ᵗ) + ε).",
        rule=VARIANTS[2].rule_for(RULE),
        given=_constant,
        closed={m: g0 * (1 - beta1**t), v: g0**2 * (1 - _beta2**t),
                r: g0 * (1 - beta1**t) / (sp.Abs(g0) * sp.sqrt(1 - _beta2**t) + eps)},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="lamb/defaults",
        title="the defaults (λ = 0.01)",
        purpose="the trust ratio ‖θ‖/‖u‖ per tensor, bias correction at small t",
        hyperparameters={},
        grad_exponents=[0] * 5,
        seed=2101,
    ),
    CaseBuilder(
        id="lamb/no_decay",
        title="no weight decay",
        purpose="the trust ratio is applied with λ = 0 too (timm skips it unless always_adapt)",
        hyperparameters={"lr": "0.0625", "weight_decay": "0"},
        grad_exponents=[0] * 5,
        seed=2102,
        param_exponent=-2,
    ),
    CaseBuilder(
        id="lamb/large_eps",
        title="large ε, small gradients, fast moments",
        purpose="bias correction of m and of v changes the direction only where ε matters; "
        "ε next to ‖u‖ in the ratio is O(1)",
        hyperparameters={"lr": "0.0625", "eps": "0.25", "betas": ["0.5", "0.75"], "weight_decay": "0.125"},
        grad_exponents=[-2, -2, -3, -2, -4, -3],
        seed=2103,
    ),
    CaseBuilder(
        id="lamb/large_params",
        title="large parameters (‖θ‖ > 10)",
        purpose="a clamp of ‖θ‖ at 10 shows; the ratio ‖θ‖/‖u‖ > 1 (a trust clip at 1 shows); ε large enough "
        "for the bias correction of v to show beside the clamp",
        hyperparameters={"lr": "0.0078125", "weight_decay": "0", "eps": "0.125", "betas": ["0.75", "0.875"]},
        grad_exponents=[0] * 5,
        seed=2104,
        param_exponent=4,
    ),
    CaseBuilder(
        id="lamb/strong_decay",
        title="strong weight decay",
        purpose="λθ inside u (and so inside ‖u‖) versus decoupled decay θ(1 − γλ) outside the ratio",
        hyperparameters={"lr": "0.125", "weight_decay": "0.5", "betas": ["0.75", "0.875"]},
        grad_exponents=[-1, 0, -1, 0, -1],
        seed=2105,
        param_exponent=1,
    ),
    CaseBuilder(
        id="lamb/lr_schedule",
        title="the learning rate changed between steps",
        purpose="the step follows the current learning rate (the decoupled decay too)",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.25"},
        grad_exponents=[0] * 6,
        seed=2106,
        changes={3: [_lr(0, "0.25")], 5: [_lr(0, "0.015625")]},
    ),
    CaseBuilder(
        id="lamb/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, state and step count "
        "(a per-group step count bias-corrects with the group's steps instead)",
        hyperparameters={"lr": "0.0625", "eps": "0.125", "betas": ["0.5", "0.75"]},
        grad_exponents=[-1, -1, -2, -2, -3, -3],
        seed=2107,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.125", "betas": ["0.75", "0.5"], "weight_decay": "0.25"})],
        no_grad={"scalar": [1, 2], "vector": [2, 3], "matrix": [1, 4]},
    ),
    CaseBuilder(
        id="lamb/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (step counts included)",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.25", "eps": "0.0625", "betas": ["0.875", "0.75"]},
        grad_exponents=[-1, -1, -2, -1, -3, -2],
        seed=2108,
        reload_before=[4],
    ),
    long_horizon("lamb", {"lr": "0.001"}, 2109,
                 "the bias corrections inside the direction at t = 10³ (1 − β₂ᵗ ≈ 0.63), under the trust ratio"),
)

SPEC = Spec(
    id="lamb",
    title="LAMB",
    rule=RULE,
    unreachable_boundaries={
        "trust_ratio: Eq(Norm(theta), 0) on": "gap: needs a parameter tensor exactly zero (trust ratio 1)",
        "trust_ratio: Eq(Norm(u), 0) on": "gap: needs an update tensor exactly zero (trust ratio 1)",
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("timm", "timm.optim.lamb.Lamb",
                       kwargs={"max_grad_norm": None, "always_adapt": True},
                       note="timm/optim/lamb.py Lamb (_get_clip_grad_norm: max_grad_norm=None turns the global "
                       "clip off; _single_tensor_lamb: always_adapt=True applies the trust ratio when λ = 0)"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.Lamb",
                       kwargs={"weight_decouple": False},
                       note="pytorch_optimizer/optimizer/lamb.py Lamb.update (weight_decouple=False adds λθ to "
                       "the direction before the norms, as the paper)"),
    ),
)
