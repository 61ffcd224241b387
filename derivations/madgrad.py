"""MADGRAD with L2 weight decay — the official facebookresearch/madgrad rule (= timm, torch_optimizer).

Defazio & Jelassi, "Adaptivity without Compromise: A Momentumized, Adaptive, Dual Averaged
Gradient Method for Stochastic Optimization" (arXiv:2101.11075), Algorithm 1, as the official
implementation states it (copied verbatim by ``timm.optim.madgrad.MADGRAD``; the same in
``torch_optimizer.MADGRAD``)::

    λ_k = (γ + ε)·√k                 (k = the param's own step count, from 1; the lr offset by +ε)
    S   ← S + λ_k·g                  (dual average of the gradients)
    ν   ← ν + λ_k·g²                 (weighted sum of squared gradients)
    z   = x₀ − S/(ν^{1/3} + ε)       (cube root)
    θ   ← μ·θ + (1 − μ)·z            (momentum is an average of the iterates, c = 1 − μ)

with S = ν = 0 and x₀ = θ₀ on the first step. With momentum 0 the official code keeps no x₀ and
recomputes it as θ + S_old/(ν_old^{1/3} + ε) (equal in exact arithmetic; written so here, since
the rounding then follows that form). Weight decay is L2 (``g ← g + λθ``). The paper writes
λ_k = γ·√(k+1) with k from 0: the same count, without the +ε on the learning rate.

State names are timm's / the official code's (``step``, ``grad_sum_sq``, ``s``, ``x0``).
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, steps_taken, t, theta
from .spec import Implementation, Spec

lr = sp.Symbol("gamma", positive=True)  # γ
mu = sp.Symbol("mu", nonnegative=True)  # μ, momentum (c = 1 − μ)
eps = sp.Symbol("epsilon", positive=True)  # ε
lam = sp.Symbol("lambda", nonnegative=True)  # λ, weight decay

nu = sp.Symbol("nu", nonnegative=True)  # ν, weighted sum of squared gradients (grad_sum_sq)
S = sp.Symbol("S", real=True)  # weighted sum of gradients (s)
x0 = sp.Symbol("x_0", real=True)  # the initial point of the dual average
lam_k = sp.Symbol("lambda_k", positive=True)  # λ_k, the step's weight
z = sp.Symbol("z", real=True)  # the dual-averaging iterate
theta_old = sp.Symbol(r"\theta_{old}", real=True)
buf = sp.Symbol("b", real=True)  # a momentum buffer (variant only)

THIRD = sp.Rational(1, 3)
momentum_off = sp.Eq(mu, 0)


def _rms(v: sp.Expr) -> sp.Expr:
    return v**THIRD + eps


RULE = Rule(
    id="madgrad",
    title="MADGRAD (official facebookresearch/madgrad; lr + ε, cube root, L2 weight decay)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-2, doc="learning rate γ (the weights use γ + ε)"),
        Hyperparameter("momentum", mu, 0.9, doc="momentum μ: θ is averaged with weight c = 1 − μ toward z"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="L2 penalty λ (added to the gradient)"),
        Hyperparameter("eps", eps, 1e-6, doc="ε added to the cube root and to the learning rate"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("grad_sum_sq", nu, sp.Integer(0), "ν: λ-weighted sum of squared gradients"),
        StateVar("s", S, sp.Integer(0), "S: λ-weighted sum of gradients"),
        StateVar("x0", x0, sp.Integer(0), "x₀: the parameter before the first step (kept when μ ≠ 0)",
                 kept_when=lambda hp: float(hp["momentum"]) != 0),
    ),
    body=(
        Assign("x0_init", x0, sp.Piecewise((theta, sp.Eq(t, 0)), (x0, True)), "x₀ = θ₀ on the first step"),
        Assign("step", t, t + 1, "count the step"),
        Assign("weight", lam_k, (lr + eps) * sp.sqrt(t), "λ_k = (γ + ε)·√k"),
        Assign("weight_decay", g, g + lam * theta, "L2 weight decay"),
        Assign("x0_recompute", x0, sp.Piecewise((theta + S / _rms(nu), momentum_off), (x0, True)),
               "without momentum x₀ is recomputed from θ, S and ν"),
        Assign("grad_sum_sq", nu, nu + lam_k * g**2, "ν ← ν + λ_k·g²"),
        Assign("grad_sum", S, S + lam_k * g, "S ← S + λ_k·g"),
        Assign("dual_average", z, x0 - S / _rms(nu), "z = x₀ − S/(ν^{1/3} + ε)"),
        Assign("update", theta, sp.Piecewise((z, momentum_off), (mu * theta + (1 - mu) * z, True)),
               "θ ← (1 − c)·θ + c·z with c = 1 − μ"),
    ),
)


# -- variants -------------------------------------------------------------------------------
def _decoupled_after(r: Rule) -> Rule:
    """pytorch_optimizer weight_decouple=True: θ ← θ_new − (γ + ε)·λ·θ_old, after the step."""
    return (
        r.remove("weight_decay")
        .insert_before("update", Assign("save", theta_old, theta, "θ before the step"))
        .insert_after("update", Assign("decay", theta, theta - (lr + eps) * lam * theta_old,
                                       "decoupled decay after the step, from θ before it"))
    )


def _decoupled_before(r: Rule) -> Rule:
    """timm decoupled_decay=True: θ ← θ·(1 − γλ) before the step (group lr, no +ε)."""
    return r.remove("weight_decay").insert_before(
        "x0_recompute", Assign("decay", theta, theta * (1 - lr * lam), "decoupled decay before the step"))


def _momentum_buffer(r: Rule) -> Rule:
    """A zero-initialised EMA buffer of z instead of averaging θ itself."""
    r = replace(r, state=r.state + (StateVar("momentum_buffer", buf, sp.Integer(0), "EMA buffer of z",
                                             kept_when=lambda hp: False),))
    return r.insert_before("update", Assign("buffer", buf, mu * buf + (1 - mu) * z, "EMA of z from 0")).replace(
        "update", sp.Piecewise((z, momentum_off), (buf, True)))


VARIANTS = (
    Variant(
        id="madgrad.sqrt_denominator",
        title="square root instead of the cube root",
        summary="z = x₀ − S/(√ν + ε): AdaGrad's normaliser in place of MADGRAD's ν^{1/3}",
        who="ports that carry AdaGrad's √ over (the cube root is MADGRAD's defining change)",
        sources=("arXiv:2101.11075 (Algorithm 1: the cube root)", "timm/optim/madgrad.py MADGRAD.step (pow(1 / 3))"),
        delta=lambda r: r.replace("dual_average", x0 - S / (sp.sqrt(nu) + eps)).replace(
            "x0_recompute", sp.Piecewise((theta + S / (sp.sqrt(nu) + eps), momentum_off), (x0, True))),
    ),
    Variant(
        id="madgrad.no_lr_eps",
        title="no ε added to the learning rate",
        summary="λ_k = γ·√k instead of (γ + ε)·√k",
        who="the paper's Algorithm 1; pytorch_optimizer MADGRAD with lr = 0",
        sources=("arXiv:2101.11075 (Algorithm 1)", "pytorch_optimizer/optimizer/madgrad.py MADGRAD.step"),
        delta=lambda r: r.replace("weight", lr * sp.sqrt(t)),
    ),
    Variant(
        id="madgrad.global_step",
        title="one step counter for the whole optimizer",
        summary="λ_k = (γ + ε)·√k with k the number of step() calls, advanced also for params without a gradient",
        who="pytorch_optimizer MADGRAD (state['k']); torch_optimizer MADGRAD (group['k'], one per param group)",
        sources=("pytorch_optimizer/optimizer/madgrad.py MADGRAD.step l.160-169, l.248 (self.state['k'], _lambda)",
                 "torch_optimizer/madgrad.py MADGRAD.step (k = group['k']; lamb = lr * math.pow(k + 1, 0.5))"),
        delta=lambda r: r.replace("weight", (lr + eps) * sp.sqrt(steps_taken)),
    ),
    Variant(
        id="madgrad.decoupled_decay_after",
        title="decoupled weight decay after the step (pytorch_optimizer weight_decouple=True)",
        summary="θ ← θ_new − (γ + ε)·λ·θ_old after the dual-averaging step, instead of g ← g + λθ",
        who="pytorch_optimizer MADGRAD(weight_decouple=True)",
        sources=("pytorch_optimizer/optimizer/madgrad.py MADGRAD.step (p_old, p.add_(p_old, alpha=-lr * weight_decay))",),
        delta=_decoupled_after,
    ),
    Variant(
        id="madgrad.decoupled_decay_before",
        title="decoupled weight decay before the step (timm decoupled_decay=True)",
        summary="θ ← θ·(1 − γλ) before the step (group γ without +ε), instead of g ← g + λθ",
        who="timm MADGRAD(decoupled_decay=True)",
        sources=("timm/optim/madgrad.py MADGRAD.step (p.mul_(1.0 - group['lr'] * weight_decay))",),
        delta=_decoupled_before,
    ),
    Variant(
        id="madgrad.momentum_buffer",
        title="momentum as a zero-initialised buffer instead of averaging the iterates",
        summary="b ← μ·b + (1 − μ)·z from b = 0; θ ← b (MADGRAD averages θ itself: θ ← μ·θ + (1 − μ)·z)",
        who="momentum read as an EMA buffer, as in SGD ports",
        sources=("arXiv:2101.11075 (Algorithm 1: x_{k+1} = (1 − c_{k+1})·x_k + c_{k+1}·z_{k+1})",),
        delta=_momentum_buffer,
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
_constant = {lam: 0, g: g0}


class SqrtSum(sp.Function):
    """W(t) = Σ_{j=1..t} √j (no closed form): the sum of MADGRAD's weights λ_j/(γ + ε). It unfolds
    W(n + c) = W(n + c − 1) + √(n + c) for a positive integer c, which is all the induction needs."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_Integer:
            return sum((sp.sqrt(j) for j in range(1, int(x) + 1)), sp.Integer(0))
        if isinstance(x, sp.Add):
            c = next((a for a in x.args if a.is_Integer and a > 0), None)
            if c is not None:
                return cls(x - 1) + sp.sqrt(x)
        return None

    def _latex(self, printer):
        return r"\sum_{j=1}^{" + printer._print(self.args[0]) + r"} \sqrt{j}"


_sum_sqrt = SqrtSum(t)

CLOSED_FORMS = (
    ClosedForm(
        name="sums_constant_gradient",
        statement="With a constant gradient g: S_t = (γ + ε)·g·Σ_{j≤t}√j and ν_t = (γ + ε)·g²·Σ_{j≤t}√j, "
        "and x₀ stays θ₀.",
        rule=RULE,
        given={**_constant, mu: sp.Rational(9, 10)},
        closed={S: (lr + eps) * g0 * _sum_sqrt, nu: (lr + eps) * g0**2 * _sum_sqrt, x0: theta0},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="no_momentum_is_dual_averaging",
        statement="With μ = 0 and a constant gradient g: θ_t = θ₀ − S_t/(ν_t^{1/3} + ε), i.e. θ is the "
        "dual-averaging iterate z_t itself, with x₀ recomputed to θ₀ on every step.",
        rule=RULE,
        given={**_constant, mu: 0},
        closed={
            S: (lr + eps) * g0 * _sum_sqrt,
            nu: (lr + eps) * g0**2 * _sum_sqrt,
            x0: theta0,
            theta: theta0 - (lr + eps) * g0 * _sum_sqrt / (((lr + eps) * g0**2 * _sum_sqrt) ** THIRD + eps),
        },
        initial={theta: theta0},
    ),
    ClosedForm(
        name="zero_gradient_contracts_toward_x0",
        statement="With g = 0 from the start: S and ν stay 0, z = θ₀ and θ stays θ₀ for every μ.",
        rule=RULE,
        given={lam: 0, g: 0},
        closed={S: 0, nu: 0, x0: theta0, theta: theta0},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="madgrad/defaults",
        title="the official defaults",
        purpose="cube root, x₀ and the iterate average from the first step; small parameters (≈ 2⁻⁶), so that "
        "even the +ε on the learning rate (1e-4 relative) shows in float32",
        hyperparameters={},
        grad_exponents=[0] * 5,
        seed=1101,
        param_exponent=-6,
    ),
    CaseBuilder(
        id="madgrad/cube_root",
        title="large gradients, no momentum",
        purpose="ν^{1/3} against √ν is an O(1) difference with |g| ≈ 8; μ = 0 recomputes x₀",
        hyperparameters={"lr": "0.25", "momentum": "0", "eps": "0.0625"},
        grad_exponents=[3, 3, 2, 2, 1],
        seed=1102,
    ),
    CaseBuilder(
        id="madgrad/tiny_lr",
        title="a learning rate as small as ε",
        purpose="with γ = ε the +ε doubles every weight λ_k",
        hyperparameters={"lr": "0.000001", "eps": "0.000001", "momentum": "0.5"},
        grad_exponents=[0] * 5,
        seed=1103,
    ),
    CaseBuilder(
        id="madgrad/weight_decay",
        title="weight decay with large parameters",
        purpose="L2 decay enters S and ν; decoupled decay before or after the step differs by O(γλθ)",
        hyperparameters={"lr": "0.25", "weight_decay": "0.25", "momentum": "0.5", "eps": "0.0625"},
        grad_exponents=[0] * 5,
        seed=1104,
        param_exponent=2,
    ),
    CaseBuilder(
        id="madgrad/weight_decay_lr_schedule",
        title="weight decay with the learning rate changed between steps",
        purpose="λ_k follows the current learning rate; S and ν keep the old weights",
        hyperparameters={"lr": "0.125", "weight_decay": "0.5", "eps": "0.0625"},
        grad_exponents=[0] * 6,
        seed=1105,
        param_exponent=1,
        changes={3: [_lr(0, "0.5")], 5: [_lr(0, "0.015625")]},
    ),
    CaseBuilder(
        id="madgrad/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its state and its own step count",
        hyperparameters={"lr": "0.0625", "eps": "0.0625"},
        grad_exponents=[1, 0, 0, -1, 0, 0],
        seed=1106,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "momentum": "0", "eps": "0.125"})],
        no_grad={"scalar": [1, 2, 3], "vector": [2], "matrix": [1, 2]},
    ),
    CaseBuilder(
        id="madgrad/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (x₀, sums and step counts)",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "eps": "0.0625", "momentum": "0.75"},
        grad_exponents=[1, 1, -1, 0, -2, 0],
        seed=1107,
        reload_before=[4],
    ),
    long_horizon("madgrad", {"lr": "0.0001", "eps": "0.00001"}, 1108,
                 "the weight λ_t = (γ + ε)·√t, about 32 times its first value at t = 10³, and the dual "
                 "averages' sums over 10³ steps (ε/γ = 10 %: an ε left out of λ shows in the parameters)"),
)

SPEC = Spec(
    id="madgrad",
    title="MADGRAD",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("timm", "timm.optim.madgrad.MADGRAD",
                       note="timm/optim/madgrad.py MADGRAD (copied from facebookresearch/madgrad)"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.MADGRAD", kwargs={"weight_decouple": False},
                       note="pytorch_optimizer/optimizer/madgrad.py MADGRAD (weight_decouple=False: L2 decay)"),
    ),
)
