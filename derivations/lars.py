"""LARS: momentum SGD with a per-tensor (layer-wise) trust ratio, the learning rate inside the velocity.

You, Gitman, Ginsburg, "Large Batch Training of Convolutional Networks" (arXiv:1708.03888),
Algorithm 1 with the local learning rate of eq. (6): for each parameter tensor (a "layer") with
gradient g,

    φ = η·‖θ‖/(‖g‖ + λ·‖θ‖)           (1 when ‖θ‖ = 0 or ‖g‖ = 0, as every implementation does)
    v ← μ·v + γ·φ·(g + λ·θ)           (v₀ = 0)
    θ ← θ − v

‖·‖ is the Euclidean norm of the whole tensor (:class:`~.tensor.Norm`), η the trust coefficient,
γ the global learning rate: it sits *inside* the velocity, as in the paper and in optax's ``lars``
(``scale_by_learning_rate`` before ``trace``). The torch libraries (timm, pytorch_optimizer,
torch_optimizer) keep torch SGD's buffer instead, b ← μ·b + φ·(g + λθ), θ ← θ − γ·b: the same
trajectory while γ is constant (proved below), a different one under an lr schedule. The
libraries also differ in the norm in the denominator, an ε there, which tensors get the ratio, a
LARC clip, and whether λ = 0 switches the ratio off (:data:`VARIANTS`).

The spec keeps the velocity as state ``velocity`` (the paper's v): it is not torch SGD's
``momentum_buffer`` (which holds v/γ), so a library's buffer is not compared, only its trajectory.
"""

from __future__ import annotations

import sympy as sp

from .cases import CaseBuilder, HyperparameterChange, ZerosCaseBuilder
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, ndim, t, theta
from .spec import Implementation, Spec
from .tensor import Norm

lr = sp.Symbol("gamma", positive=True)  # γ, the global learning rate
mu = sp.Symbol("mu", nonnegative=True)  # μ, momentum
lam = sp.Symbol("lambda", nonnegative=True)  # λ, weight decay
eta = sp.Symbol("eta", nonnegative=True)  # η, the trust coefficient
v = sp.Symbol("v", real=True)  # the velocity (learning rate inside)
u = sp.Symbol("u", real=True)  # the decayed gradient g + λθ
phi = sp.Symbol("phi", nonnegative=True)  # the local learning rate (trust ratio)
d = sp.Symbol("d", real=True)  # the scaled direction φ·u


def _ratio(num: sp.Expr, den: sp.Expr) -> sp.Expr:
    """num/den, or 1 when ‖θ‖ = 0 or ‖g‖ = 0 (timm, torch_optimizer, optax; the paper leaves it open)."""
    return sp.Piecewise((1, sp.Or(sp.Eq(Norm(theta), 0), sp.Eq(Norm(g), 0))), (num / den, True))


_paper_ratio = _ratio(eta * Norm(theta), Norm(g) + lam * Norm(theta))

RULE = Rule(
    id="lars",
    title="LARS (paper Algorithm 1; η‖θ‖/(‖g‖ + λ‖θ‖) per tensor, learning rate inside the velocity)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1.0, doc="global learning rate γ (inside the velocity)"),
        Hyperparameter("momentum", mu, 0.9, neutral=0, doc="momentum μ"),
        Hyperparameter("weight_decay", lam, 0, neutral=0,
                       doc="λ: λθ is added to the gradient, and λ‖θ‖ to the ratio's denominator"),
        Hyperparameter("trust_coefficient", eta, 0.001, doc="trust coefficient η of the local learning rate"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter (kept by no library)",
                 kept_when=lambda hp: False, count=True),
        StateVar("velocity", v, sp.Integer(0), "velocity v (the learning rate inside; not torch's momentum_buffer)",
                 kept_when=lambda hp: float(hp["momentum"]) != 0),
    ),
    body=(
        Assign("step", t, t + 1, "count the step"),
        Assign("decay", u, g + lam * theta, "u = g + λθ"),
        Assign("trust_ratio", phi, _paper_ratio, "local learning rate φ = η‖θ‖/(‖g‖ + λ‖θ‖) (1 if a norm is 0)"),
        Assign("direction", d, phi * u, "d = φ·u"),
        Assign("velocity", v, mu * v + lr * d, "v ← μ·v + γ·d"),
        Assign("update", theta, theta - v, "θ ← θ − v"),
    ),
)


# -- variants -------------------------------------------------------------------------------
TIMM_EPS = sp.Rational(1, 10**8)  # timm Lars eps, torch_optimizer LARS eps (default 1e-8)


def _lr_outside_buffer(rule: Rule) -> Rule:
    """torch SGD's buffer: b ← μ·b + d, θ ← θ − γ·b (the state symbol v holds b)."""
    return rule.replace("velocity", mu * v + d, "b ← μ·b + d (torch SGD's buffer)").replace(
        "update", theta - lr * v, "θ ← θ − γ·b")


def _matrices_only(rule: Rule) -> Rule:
    """Ratio and weight decay only on tensors with ≥ 2 dims; others: plain momentum SGD (d = g)."""
    return rule.replace("direction", sp.Piecewise((phi * u, ndim >= 2), (g, True)))


VARIANTS = (
    Variant(
        id="lars.lr_outside_buffer",
        title="torch SGD's momentum buffer: the learning rate outside it",
        summary="b ← μ·b + φ·(g + λθ); θ ← θ − γ·b (equal to the paper's only while γ is constant)",
        who="timm Lars; pytorch_optimizer LARS; torch_optimizer LARS",
        sources=("timm/optim/lars.py _single_tensor_lars (buf.mul_(momentum).add_(grad); p.add_(grad, alpha=-lr))",
                 "pytorch_optimizer/optimizer/lars.py LARS._step_per_param (mb.mul_(momentum).add_(grad, ...); "
                 "p.add_(grad, alpha=-group['lr']))",
                 "torch_optimizer/lars.py LARS.step"),
        delta=_lr_outside_buffer,
    ),
    Variant(
        id="lars.decayed_gradient_norm",
        title="the norm of the decayed gradient in the ratio's denominator",
        summary="φ = η‖θ‖/‖g + λθ‖ instead of η‖θ‖/(‖g‖ + λ‖θ‖)",
        who="optax lars (add_decayed_weights, then scale_by_trust_ratio of the sum)",
        sources=("optax/_src/alias.py lars (chain of add_decayed_weights, scale_by_trust_ratio)",
                 "optax/_src/transform.py scale_by_trust_ratio (trust_coefficient * param_norm / (update_norm + eps))"),
        delta=lambda rule: rule.replace("trust_ratio", _ratio(eta * Norm(theta), Norm(u))),
    ),
    Variant(
        id="lars.eps_in_denominator",
        title="ε = 1e-8 added to the ratio's denominator",
        summary="φ = η‖θ‖/(‖g‖ + λ‖θ‖ + 10⁻⁸)",
        who="timm Lars (eps=1e-8, the default); torch_optimizer LARS (eps=1e-8)",
        sources=("timm/optim/lars.py _lars_trust_ratio (g_norm + w_norm * weight_decay + eps)",
                 "torch_optimizer/lars.py LARS.step (g_norm + p_norm * weight_decay + group['eps'])"),
        delta=lambda rule: rule.replace(
            "trust_ratio", _ratio(eta * Norm(theta), Norm(g) + lam * Norm(theta) + TIMM_EPS)),
    ),
    Variant(
        id="lars.matrices_only",
        title="trust ratio and weight decay only for tensors of ≥ 2 dimensions",
        summary="scalars and vectors (biases) get plain momentum SGD: φ = 1, u = g",
        who="pytorch_optimizer LARS",
        sources=("pytorch_optimizer/optimizer/lars.py LARS._step_per_param (if p.ndim > 1), "
                 "LARS._step_foreach (masks = [p.ndim > 1 ...])",),
        delta=_matrices_only,
    ),
    Variant(
        id="lars.trust_clip",
        title="LARC: the ratio clipped so that γ·φ ≤ γ",
        summary="φ = min(φ/γ, 1)",
        who="timm Lars trust_clip=True (NVIDIA apex LARC)",
        sources=("timm/optim/lars.py _lars_trust_ratio (torch.clamp(trust_ratio / lr, max=1.0))",),
        delta=lambda rule: rule.replace("trust_ratio", sp.Min(_paper_ratio / lr, 1)),
    ),
    Variant(
        id="lars.no_ratio_without_decay",
        title="no trust ratio when λ = 0 (plain momentum SGD)",
        summary="φ = 1 if λ = 0",
        who="timm Lars (always_adapt=False, the default); torch_optimizer LARS",
        sources=("timm/optim/lars.py _single_tensor_lars (if weight_decay != 0 or always_adapt)",
                 "torch_optimizer/lars.py LARS.step (if weight_decay != 0)"),
        delta=lambda rule: rule.replace("trust_ratio", sp.Piecewise((1, sp.Eq(lam, 0)), (_paper_ratio, True))),
    ),
    Variant(
        id="lars.pytorch_optimizer",
        title="pytorch_optimizer's LARS: ratio and decay for matrices only, the learning rate outside the buffer",
        summary="φ = 1 and u = g for tensors of < 2 dims; b ← μ·b + φ·u; θ ← θ − γ·b",
        who="pytorch_optimizer LARS",
        sources=("pytorch_optimizer/optimizer/lars.py LARS._step_per_param",),
        delta=lambda rule: _lr_outside_buffer(_matrices_only(rule)),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
theta_norm, g_norm = sp.symbols("N_theta N_g", positive=True)
mu_p = sp.Symbol("mu", positive=True)  # momentum switched on
# a constant gradient, and the two norms held fixed (the ratio is then a constant φ = η·N_θ/N_g)
_fixed = {g: g0, lam: 0, mu: mu_p, Norm(theta): theta_norm, Norm(g): g_norm}
_phi = eta * theta_norm / g_norm
_geometric = (1 - mu_p**t) / (1 - mu_p)
_theta_t = theta0 - lr * _phi * g0 * (t - mu_p * _geometric) / (1 - mu_p)

CLOSED_FORMS = (
    ClosedForm(
        name="velocity_under_a_constant_ratio",
        statement="With a constant gradient g, λ = 0 and the ratio held at φ = η‖θ‖/‖g‖, the velocity after t "
        "steps is v_t = γ·φ·g·(1 − μᵗ)/(1 − μ), and θ_t = θ₀ − γ·φ·g·(t − μ·(1 − μᵗ)/(1 − μ))/(1 − μ).",
        rule=RULE,
        given=_fixed,
        closed={v: lr * _phi * g0 * _geometric, theta: _theta_t},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="lr_outside_buffer_same_trajectory_at_constant_lr",
        statement="torch SGD's buffer (timm, pytorch_optimizer) under the same conditions holds b_t = v_t/γ and "
        "gives the same θ_t: the learning rate's place shows only when γ changes.",
        rule=VARIANTS[0].rule_for(RULE),
        given=_fixed,
        closed={v: _phi * g0 * _geometric, theta: _theta_t},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="lars/no_decay",
        title="momentum, no weight decay",
        purpose="the trust ratio η‖θ‖/‖g‖ per tensor is applied with λ = 0 too (timm skips it unless always_adapt)",
        hyperparameters={"lr": "0.5", "momentum": "0.875", "trust_coefficient": "0.125"},
        grad_exponents=[0, 0, 1, 0, -1],
        seed=3101,
    ),
    CaseBuilder(
        id="lars/weight_decay",
        title="weight decay comparable to the gradient",
        purpose="λ‖θ‖ ~ ‖g‖ with g not parallel to θ: ‖g‖ + λ‖θ‖ versus ‖g + λθ‖; the decay and the ratio "
        "on the scalar and the vector too",
        hyperparameters={"lr": "0.5", "momentum": "0.5", "weight_decay": "0.75", "trust_coefficient": "0.25"},
        grad_exponents=[0] * 5,
        seed=3102,
    ),
    CaseBuilder(
        id="lars/tiny_scale",
        title="tiny parameters and gradients",
        purpose="‖g‖ + λ‖θ‖ ~ 10⁻⁷, so an ε = 10⁻⁸ in the denominator changes the ratio by ~10 %",
        hyperparameters={"lr": "1", "momentum": "0.75", "weight_decay": "0.5", "trust_coefficient": "0.25"},
        grad_exponents=[-24] * 4,
        seed=3103,
        param_exponent=-24,
    ),
    CaseBuilder(
        id="lars/small_lr",
        title="a learning rate below the local one",
        purpose="φ/γ > 1, so a LARC clip min(φ/γ, 1) shows",
        hyperparameters={"lr": "0.0625", "momentum": "0.5", "weight_decay": "0.125", "trust_coefficient": "0.5"},
        grad_exponents=[0] * 5,
        seed=3104,
    ),
    CaseBuilder(
        id="lars/lr_schedule",
        title="the learning rate changed between steps",
        purpose="γ inside the velocity (the paper) versus outside torch SGD's buffer",
        hyperparameters={"lr": "0.5", "momentum": "0.875", "weight_decay": "0.25", "trust_coefficient": "0.25"},
        grad_exponents=[0] * 7,
        seed=3105,
        changes={3: [_lr(0, "0.0625")], 5: [_lr(0, "1.5")], 7: [_lr(0, "0.03125")]},
    ),
    CaseBuilder(
        id="lars/no_momentum",
        title="no momentum",
        purpose="θ ← θ − γ·φ·(g + λθ) on every step",
        hyperparameters={"lr": "0.25", "momentum": "0", "weight_decay": "0.5", "trust_coefficient": "0.5"},
        grad_exponents=[0, -1, 0, -1],
        seed=3106,
        param_exponent=1,
    ),
    CaseBuilder(
        id="lars/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value and velocity",
        hyperparameters={"lr": "0.5", "momentum": "0.75", "weight_decay": "0.25", "trust_coefficient": "0.25"},
        grad_exponents=[0, 0, -1, -1, 0, 0],
        seed=3107,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "momentum": "0.5", "weight_decay": "0", "trust_coefficient": "0.125"})],
        no_grad={"scalar": [1, 2], "vector": [3], "matrix": [4, 5]},
    ),
    ZerosCaseBuilder(
        id="lars/zero_norms",
        title="a tensor of zeros, and a gradient of zeros",
        purpose="‖θ‖ = 0 (the scalar starts at 0) and ‖g‖ = 0 (the vector's gradient on step 2): the "
        "trust ratio's guard gives 1 instead of 0/0 or a zero step",
        hyperparameters={"lr": "0.5", "momentum": "0.75", "weight_decay": "0.25", "trust_coefficient": "0.25"},
        grad_exponents=[0] * 4,
        seed=3109,
        zero_params=("scalar",),
        zero_grads={"vector": (2,)},
    ),
    CaseBuilder(
        id="lars/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly",
        hyperparameters={"lr": "0.5", "momentum": "0.875", "weight_decay": "0.125", "trust_coefficient": "0.25"},
        grad_exponents=[0] * 6,
        seed=3108,
        reload_before=[4],
    ),
)

SPEC = Spec(
    id="lars",
    title="LARS",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("timm", "timm.optim.lars.Lars",
                       kwargs={"always_adapt": True, "eps": 0.0},
                       note="timm/optim/lars.py Lars (_single_tensor_lars: always_adapt=True applies the trust "
                       "ratio when λ = 0; _lars_trust_ratio: eps=0 leaves the paper's denominator)",
                       args={"trust_coeff": "trust_coefficient"}),
        Implementation("pytorch-optimizer", "pytorch_optimizer.LARS",
                       note="pytorch_optimizer/optimizer/lars.py LARS (trust_coefficient, no ε)"),
        Implementation("optax", "optax.lars",
                       note="optax/_src/alias.py lars (eps=0 by default; lr inside the momentum trace)"),
    ),
)
