"""Prodigy: Adam whose step size D is estimated from the distance travelled, one D per optimizer.

Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner"
(arXiv:2306.06101), as the authors' package implements it (prodigyopt ``Prodigy.step``,
prodigyopt/prodigy.py; pytorch_optimizer's ``Prodigy`` follows it line by line). With D the
current estimate (D₀ = d₀), β₃ = √β₂, η = D·γ·c (c = √(1 − β₂ᵏ)/(1 − β₁ᵏ) with bias correction,
k the number of step() calls, else 1), for every parameter, then once for the whole optimizer:

    r ← β₃·r + (D/d₀)·η·Σ_params ⟨g, x₀ − θ⟩          (x₀: the parameter at its first step)
    m ← β₁·m + (1 − β₁)·D·g,   v ← β₂·v + (1 − β₂)·D²·g²
    s ← β₃·s + (D/d₀)·η·g                              (D in place of η with safeguard_warmup)
    D ← max(D, d_coef·r/Σ_params ‖s‖₁)                 (growth_rate = ∞, the default)
    θ ← θ − λ·η·θ − η·m/(√v + D·ε)                     (decoupled decay; η with the *old* D, ε with the new)

Σ_params sums over every element of every parameter that has a gradient on this step, across all
param groups (:class:`~.tensor.Total`): D, r and k are one per optimizer (prodigyopt keeps them in
every param group, read from the first). The evaluator holds D and r beside each element (the same
value everywhere); so the cases give every parameter a gradient on every step. Two param groups
share D, r and k (``prodigy/only_param_groups``: the second group has its own ε, which prodigyopt
reads per group; it takes β, d_coef and the step count from the first group and requires one
learning rate); the NumPy and optax protocols build one optimizer per group, so they skip that
case (``groups_share_state``). When Σ‖s‖₁ = 0 (all gradients zero so far)
prodigyopt returns before D and the parameters change, and before it counts the parameters'
``step``; the rule keeps all three then (``prodigy/zero_first_gradients``): t counts the steps that
reached the estimate. prodigyopt does not count its k either on such a call, while the rule's k is
every step() call (pytorch_optimizer's count): the two differ only with the bias correction on
after all-zero first gradients, which no case combines (a count that skips those calls would be
one more number per optimizer, held per element like D).

With ``decouple=False`` the decay is L2, added to the gradient before anything else.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m, v
from .cases import CaseBuilder, HyperparameterChange, ZerosCaseBuilder, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, steps_taken, t, theta
from .spec import Implementation, Spec
from .tensor import TensorFunction, Total

d0 = sp.Symbol("d_0", positive=True)  # the initial estimate
d_coef = sp.Symbol("d_coef", positive=True)  # the estimate's coefficient
decouple = sp.Symbol("decouple")
bias_correction = sp.Symbol("use_bias_correction")
safeguard = sp.Symbol("safeguard_warmup")
D = sp.Symbol("D", positive=True)  # the step-size estimate (one per optimizer)
r = sp.Symbol("r", real=True)  # the estimate's numerator, Σ of weighted ⟨g, x₀ − θ⟩
s = sp.Symbol("s", real=True)  # the weighted sum of gradients
x0 = sp.Symbol("x_0", real=True)  # the parameter at its first step
eta = sp.Symbol("eta", positive=True)  # the step size D·γ·c
S = sp.Symbol("S", nonnegative=True)  # Σ_params ‖s‖₁

beta3 = sp.sqrt(beta2)
_bias = sp.Piecewise((sp.sqrt(1 - beta2**steps_taken) / (1 - beta1**steps_taken), bias_correction), (1, True))
_estimate = sp.Piecewise((D, sp.Eq(S, 0)), (sp.Max(D, d_coef * r / S), True))
_decoupled = sp.Piecewise((lam * eta * theta, decouple), (0, True))

RULE = Rule(
    id="prodigy",
    title="Prodigy (prodigyopt; D = max(D, d_coef·r/Σ‖s‖₁) over all params, growth_rate = ∞, decoupled decay)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1.0, doc="learning rate γ (a multiplier of the estimate D)"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.999),
                       doc="decay rates (β₁, β₂) of the moments; β₃ = √β₂ for r and s"),
        Hyperparameter("eps", eps, 1e-8, doc="ε, multiplied by D, added to √v"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="weight decay λ"),
        Hyperparameter("decouple", decouple, True, neutral=True, boolean=True,
                       doc="decoupled decay θ ← θ − λ·η·θ (else L2: λθ added to the gradient)"),
        Hyperparameter("d0", d0, 1e-6, doc="the initial estimate D₀"),
        Hyperparameter("d_coef", d_coef, 1.0, doc="the estimate's coefficient"),
        Hyperparameter("use_bias_correction", bias_correction, False, neutral=False, boolean=True,
                       doc="η = D·γ·√(1 − β₂ᵏ)/(1 − β₁ᵏ) (k the number of step() calls)"),
        Hyperparameter("safeguard_warmup", safeguard, False, neutral=False, boolean=True,
                       doc="s accumulates D·g instead of η·g (γ out of the denominator)"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("p0", x0, sp.Integer(0), "x₀, the parameter at its first step"),
        StateVar("s", s, sp.Integer(0), "s, the weighted sum of gradients"),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m (of D·g)"),
        StateVar("exp_avg_sq", v, sp.Integer(0), "second moment v (of D²·g²)"),
        StateVar("d", D, d0, "the estimate D (one per optimizer: param_groups[i]['d'])", kept_when=lambda hp: False),
        StateVar("d_numerator", r, sp.Integer(0), "the numerator r (one per optimizer: param_groups[i]['d_numerator'])",
                 kept_when=lambda hp: False),
    ),
    body=(
        Assign("weight_decay", g, sp.Piecewise((g, decouple), (g + lam * theta, True)),
               "L2 decay (decouple=False) added to the gradient"),
        Assign("anchor", x0, sp.Piecewise((theta, sp.Eq(t, 0)), (x0, True)),
               "x₀ = θ until a step is counted (θ does not move before)"),
        Assign("step_size", eta, D * lr * _bias, "η = D·γ·c with the current D"),
        Assign("numerator", r, beta3 * r + D / d0 * eta * Total(g * (x0 - theta)),
               "r ← β₃·r + (D/d₀)·η·Σ⟨g, x₀ − θ⟩ over every parameter"),
        Assign("first_moment", m, beta1 * m + (1 - beta1) * D * g, "EMA of D·g"),
        Assign("second_moment", v, beta2 * v + (1 - beta2) * D**2 * g**2, "EMA of D²·g²"),
        Assign("gradient_sum", s, beta3 * s + D / d0 * sp.Piecewise((D, safeguard), (eta, True)) * g,
               "s ← β₃·s + (D/d₀)·η·g (D·g with safeguard_warmup)"),
        Assign("denominator", S, Total(sp.Abs(s)), "Σ‖s‖₁ over every parameter"),
        Assign("estimate", D, _estimate, "D ← max(D, d_coef·r/Σ‖s‖₁) (kept when the sum is 0)"),
        Assign("update", theta, sp.Piecewise((theta, sp.Eq(S, 0)), (theta - _decoupled - eta * m / (sp.sqrt(v) + D * eps), True)),
               "θ ← θ − λ·η·θ − η·m/(√v + D·ε): η with the old D, ε with the new"),
        Assign("step", t, sp.Piecewise((t, sp.Eq(S, 0)), (t + 1, True)),
               "count the step, unless S = 0 (prodigyopt returns before counting it)"),
    ),
)


# -- variants -------------------------------------------------------------------------------
class Float32Estimate(TensorFunction):
    r"""``x`` computed from float32 running sums: the identity on values, with ``k`` float32
    roundings of |x| added to the float32 error channel (units of u_f32) whatever the params' dtype.

    pytorch_optimizer holds the estimate's numerator r and denominator Σ‖s‖₁ in float32 tensors and
    divides them in float32. Per step that rounds r (β₃·r, then one add per parameter) and the sum
    (one add per parameter), then d_coef·r and the quotient; r keeps the roundings of earlier steps.
    k = 4·(calls + 1) roundings of d̂ cover that while r's terms do not cancel (they add up while D
    grows; when d̂ < D the estimate is not taken). The value is exact: a precision deviation only,
    invisible in float32, ~10⁻⁷ relative in D in float64.
    """

    nargs = 2
    fixed_dtype = "float32"

    @classmethod
    def eval(cls, x, *scalars):
        return None

    @classmethod
    def exact(cls, x: np.ndarray, k) -> np.ndarray:
        return x

    @classmethod
    def bound(cls, v: np.ndarray, e: np.ndarray, k) -> tuple[np.ndarray, np.ndarray]:
        return v, e

    @classmethod
    def propagate(cls, v: np.ndarray, e: np.ndarray, k) -> np.ndarray:
        return e

    @classmethod
    def channels(cls, v, e, fixed, k):
        return v, e, {d: f + (float(k) * np.abs(v) if d == cls.fixed_dtype else 0.0) for d, f in fixed.items()}


def _float32_estimate(rule: Rule) -> Rule:
    """The estimate from float32 sums. m, v and s follow D, so they carry its float32 error too: the
    variant's golden holds only the state that does not (step, p0), and compares the parameters
    within the float32 channel."""
    estimate = sp.Piecewise(
        (D, sp.Eq(S, 0)), (sp.Max(D, Float32Estimate(d_coef * r / S, 4 * steps_taken + 4)), True))
    follows_d = {"s", "exp_avg", "exp_avg_sq"}
    state = tuple(replace(sv, kept_when=lambda hp: False) if sv.name in follows_d else sv for sv in rule.state)
    return replace(rule.replace("estimate", estimate), state=state)


VARIANTS = (
    Variant(
        id="prodigy.bias_correction_always",
        title="bias correction always on",
        summary="η = D·γ·√(1 − β₂ᵏ)/(1 − β₁ᵏ) whatever use_bias_correction says",
        who="optax contrib.prodigy (no flag: bc on every step)",
        sources=("optax/contrib/_prodigy.py prodigy update_fn (bc = ((1 - beta2**count_inc) ** 0.5) / "
                 "(1 - beta1**count_inc))",),
        delta=lambda rule: rule.replace(
            "step_size", D * lr * sp.sqrt(1 - beta2**steps_taken) / (1 - beta1**steps_taken)),
    ),
    Variant(
        id="prodigy.coupled_decay_ignored",
        title="L2 decay added to the gradient only after the step used it (no effect)",
        summary="decouple=False: g is not changed by λθ on this step (it is added to p.grad afterwards)",
        who="pytorch_optimizer Prodigy (weight_decouple=False)",
        sources=("pytorch_optimizer/optimizer/prodigy.py Prodigy.step (apply_weight_decay in the second loop, "
                 "after exp_avg, exp_avg_sq, s and d_numerator were formed)",
                 "pytorch_optimizer/base/optimizer.py apply_weight_decay (grad.add_(p, alpha=weight_decay))"),
        delta=lambda rule: rule.replace("weight_decay", g),
    ),
    Variant(
        id="prodigy.fixed_decay",
        title="decoupled decay not scaled by the step size",
        summary="θ ← θ·(1 − λ) − η·m/(√v + D·ε)",
        who="pytorch_optimizer Prodigy (fixed_decay=True)",
        sources=("pytorch_optimizer/base/optimizer.py apply_weight_decay "
                 "(p.mul_(1.0 - weight_decay * (1.0 if fixed_decay else lr)))",),
        delta=lambda rule: rule.replace("update", sp.Piecewise(
            (theta, sp.Eq(S, 0)),
            (theta - sp.Piecewise((lam * theta, decouple), (0, True)) - eta * m / (sp.sqrt(v) + D * eps), True))),
    ),
    Variant(
        id="prodigy.float32_estimate",
        title="the estimate's sums held in float32",
        summary="r and Σ‖s‖₁ accumulate in float32 tensors and d̂ = d_coef·r/Σ‖s‖₁ is divided in float32 "
        "whatever the parameters' dtype: D carries float32 rounding errors (float64 runs: ~10⁻⁷ relative)",
        who="pytorch_optimizer Prodigy (d_numerator and d_de_nom are torch.tensor([0.0]): the default dtype)",
        sources=("pytorch_optimizer/optimizer/prodigy.py Prodigy.step (d_de_nom = torch.tensor([0.0], "
                 "device=device); group['d_numerator'] = torch.tensor([0.0], device=device); "
                 "d_hat = (group['d_coef'] * d_numerator / d_de_nom).item())",),
        delta=_float32_estimate,
        acceptable=True,
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
S0 = sp.Symbol("S_0", positive=True)
_b2 = sp.Rational(9, 16)  # β₂ = 9/16, so β₃ = 3/4
_b3 = sp.Rational(3, 4)
_no_progress = {g: g0, beta2: _b2, lam: 0, decouple: True, bias_correction: False,
                Total(g * (x0 - theta)): 0, Total(sp.Abs(s)): S0}

CLOSED_FORMS = (
    ClosedForm(
        name="no_progress_keeps_d0",
        statement="Under a constant gradient g orthogonal (over all params) to the distance travelled, "
        "r stays 0, so D stays d₀ and the moments are Adam's of d₀·g: m_t = d₀·g·(1 − β₁ᵗ), "
        "v_t = d₀²·g²·(1 − β₂ᵗ), s_t = d₀·γ·g·(1 − β₃ᵗ)/(1 − β₃) (here β₂ = 9/16, β₃ = 3/4).",
        rule=RULE,
        given={**_no_progress, safeguard: False},
        closed={r: 0, D: d0, m: d0 * g0 * (1 - beta1**t), v: d0**2 * g0**2 * (1 - _b2**t),
                s: d0 * lr * g0 * (1 - _b3**t) / (1 - _b3)},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="safeguard_warmup_takes_lr_out_of_s",
        statement="With safeguard_warmup, under the same conditions, s_t = d₀·g·(1 − β₃ᵗ)/(1 − β₃): "
        "the learning rate (and an lr warmup) no longer enters the denominator of the estimate.",
        rule=RULE,
        given={**_no_progress, safeguard: True},
        closed={r: 0, D: d0, s: d0 * g0 * (1 - _b3**t) / (1 - _b3)},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


_fast = {"betas": ["0.5", "0.75"], "d0": "0.0625"}

CASES = (
    CaseBuilder(
        id="prodigy/defaults",
        title="the defaults, random gradients",
        purpose="D stays near d₀ = 10⁻⁶ while ⟨g, x₀ − θ⟩ is small; the steps are D-sized",
        hyperparameters={},
        grad_exponents=[0] * 5,
        seed=4101,
    ),
    CaseBuilder(
        id="prodigy/constant_gradient",
        title="a constant gradient, fast moments, d₀ = 1/16",
        purpose="⟨g, x₀ − θ⟩ > 0 from step 2, so D grows: the estimate over all params, η with the old D",
        hyperparameters={**_fast},
        grad_exponents=[0] * 6,
        seed=4102,
        constant_grad=True,
    ),
    CaseBuilder(
        id="prodigy/bias_correction",
        title="bias correction on",
        purpose="η = D·γ·√(1 − β₂ᵏ)/(1 − β₁ᵏ), in r and s too",
        hyperparameters={**_fast, "use_bias_correction": True},
        grad_exponents=[0] * 6,
        seed=4103,
        constant_grad=True,
    ),
    CaseBuilder(
        id="prodigy/decoupled_decay",
        title="decoupled weight decay",
        purpose="θ ← θ − λ·η·θ with the old D (a decay not scaled by η shows)",
        hyperparameters={**_fast, "weight_decay": "0.25"},
        grad_exponents=[0] * 6,
        seed=4104,
        constant_grad=True,
        param_exponent=1,
    ),
    CaseBuilder(
        id="prodigy/coupled_decay",
        title="L2 weight decay (decouple=False), random gradients",
        purpose="λθ is added to the gradient before r, m, v and s are formed; D stays d₀ here, so the case "
        "shows the decay apart from the estimate",
        hyperparameters={**_fast, "weight_decay": "0.5", "decouple": False},
        grad_exponents=[0] * 5,
        seed=4107,
        param_exponent=1,
    ),
    CaseBuilder(
        id="prodigy/large_eps",
        title="large ε, small gradients",
        purpose="D·ε is comparable to √v: ε enters multiplied by D",
        hyperparameters={**_fast, "eps": "0.5"},
        grad_exponents=[-3] * 6,
        seed=4106,
        constant_grad=True,
    ),
    CaseBuilder(
        id="prodigy/lr_schedule",
        title="the learning rate changed between steps",
        purpose="η follows the current γ, in r and s",
        hyperparameters={**_fast},
        grad_exponents=[0] * 6,
        seed=4107,
        constant_grad=True,
        changes={3: [_lr(0, "0.25")], 5: [_lr(0, "2")]},
    ),
    CaseBuilder(
        id="prodigy/safeguard_warmup",
        title="safeguard_warmup with an lr warmup",
        purpose="s accumulates D·g, so a small γ early does not inflate the estimate",
        hyperparameters={**_fast, "lr": "0.125", "safeguard_warmup": True},
        grad_exponents=[0] * 6,
        seed=4108,
        constant_grad=True,
        changes={3: [_lr(0, "0.5")], 5: [_lr(0, "1")]},
    ),
    CaseBuilder(
        id="prodigy/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (D, r and x₀ included)",
        hyperparameters={**_fast, "weight_decay": "0.125"},
        grad_exponents=[0] * 6,
        seed=4110,
        constant_grad=True,
        reload_before=[4],
    ),
    ZerosCaseBuilder(
        id="prodigy/zero_first_gradients",
        title="every gradient 0 on the first two steps, then a constant gradient",
        purpose="S = Σ‖s‖₁ = 0 while every gradient so far is 0: D and the params stay (prodigyopt returns "
        "from step() before the estimate, which would divide by S); from step 3 on S > 0, x₀ is the "
        "parameter at its first step and D grows",
        hyperparameters={**_fast},
        grad_exponents=[0] * 6,
        seed=4111,
        constant_grad=True,
        zero_grads={"scalar": (1, 2), "vector": (1, 2), "matrix": (1, 2)},
    ),
    long_horizon("prodigy", {"lr": "0.00390625", "use_bias_correction": True}, 4112,
                 "the bias correction √(1 − β₂ᵏ)/(1 − β₁ᵏ) at k = 10³ (1 − β₂ᵏ ≈ 0.63), r and s after 10³ "
                 "decays by β₃, and D grown about 15-fold over 10³ steps (γ = 2⁻⁸: with γ = 1 a constant "
                 "gradient makes D overflow float32 by step 116)"),
)

SPEC = Spec(
    id="prodigy",
    title="Prodigy",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    groups_share_state="D, r and k are one per optimizer (prodigyopt keeps them in every group, read from "
    "the first): one optimizer per group would give each group its own D",
    # prodigyopt requires one lr for every group (or 0); ε is read per group
    second_group={"eps": "0.5"},
    unreachable_boundaries={
    },
    torch_class=None,
    implementations=(
        Implementation("prodigyopt", "prodigyopt.Prodigy",
                       note="prodigyopt/prodigy.py Prodigy.step (the authors' package)"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.Prodigy",
                       note="pytorch_optimizer/optimizer/prodigy.py Prodigy.step (weight_decouple and "
                       "bias_correction are its names for decouple and use_bias_correction)",
                       args={"weight_decouple": "decouple", "bias_correction": "use_bias_correction"}),
        Implementation("optax", "optax.contrib.prodigy",
                       note="optax/contrib/_prodigy.py prodigy (estim_lr0 and estim_lr_coef are its names for d0 "
                       "and d_coef; no decouple or use_bias_correction argument: the cases that set them are skipped)",
                       args={"estim_lr0": "d0", "estim_lr_coef": "d_coef"}),
    ),
)
