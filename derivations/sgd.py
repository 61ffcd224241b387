"""SGD with momentum, dampening, Nesterov, weight decay and maximize — PyTorch's definition.

The momentum buffer starts as the first gradient (no dampening on step 1); afterwards
``b ← μ·b + (1 − τ)·g``. The Nesterov direction is ``g + μ·b``. Weight decay is L2: it is added
to the (sign-corrected) gradient. Source: ``torch.optim.SGD`` (torch/optim/sgd.py,
``_single_tensor_sgd``) and its documentation.
"""

from __future__ import annotations

import sympy as sp

from .boundaries import COUNTED
from .cases import CaseBuilder, HyperparameterChange
from .keras_conventions import KERAS_SOURCES, keras_conventions
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec

lr = sp.Symbol("gamma", positive=True)  # γ, the learning rate
mu = sp.Symbol("mu", nonnegative=True)  # μ, momentum
tau = sp.Symbol("tau", nonnegative=True)  # τ, dampening
lam = sp.Symbol("lambda", nonnegative=True)  # λ, weight decay
nesterov = sp.Symbol("nesterov")
maximize = sp.Symbol("maximize")
b = sp.Symbol("b", real=True)  # the momentum buffer
d = sp.Symbol("d", real=True)  # the descent direction

momentum_on = sp.Ne(mu, 0)

RULE = Rule(
    id="sgd",
    title="SGD (PyTorch)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ"),
        Hyperparameter("momentum", mu, 0, neutral=0, doc="momentum factor μ"),
        Hyperparameter("dampening", tau, 0, neutral=0, requires=("momentum",), doc="dampening τ of the momentum"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="L2 penalty λ (added to the gradient)"),
        Hyperparameter("nesterov", nesterov, False, neutral=False, boolean=True, requires=("momentum",),
                       doc="use the Nesterov direction g + μ·b"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter (not kept by torch)",
                 kept_when=lambda hp: False, count=True),
        StateVar("momentum_buffer", b, sp.Integer(0), "momentum buffer b",
                 kept_when=lambda hp: float(hp["momentum"]) != 0),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("weight_decay", g, g + lam * theta, "L2 weight decay"),
        Assign("step", t, t + 1, "count the step"),
        Assign(
            "momentum",
            b,
            sp.Piecewise((g, sp.Eq(t, 1) & momentum_on), (mu * b + (1 - tau) * g, momentum_on), (b, True)),
            "the buffer starts as the first gradient, undampened",
        ),
        Assign(
            "direction",
            d,
            sp.Piecewise((g + mu * b, nesterov & momentum_on), (b, momentum_on), (g, True)),
            "Nesterov or heavy-ball direction",
        ),
        Assign("update", theta, theta - lr * d, "descend"),
    ),
)


# -- variants -------------------------------------------------------------------------------


def _momentum_ema(rule: Rule) -> Rule:
    return rule.replace(
        "momentum", sp.Piecewise((mu * b + (1 - mu) * g, momentum_on), (b, True))
    )


def _dampening_on_first_step(rule: Rule) -> Rule:
    return rule.replace(
        "momentum",
        sp.Piecewise(((1 - tau) * g, sp.Eq(t, 1) & momentum_on), (mu * b + (1 - tau) * g, momentum_on), (b, True)),
    )


# Sutskever/Keras: the buffer holds a velocity with the learning rate inside, v ← μv − γ(1−τ)g,
# θ ← θ + v. Writing b for the velocity keeps the state's symbol; the direction d = −v/γ makes
# the unchanged update line θ ← θ − γ·d read θ ← θ + v.
_velocity = sp.Piecewise(
    (-lr * g, sp.Eq(t, 1) & momentum_on), (mu * b - lr * (1 - tau) * g, momentum_on), (b, True)
)


def _momentum_lr_in_buffer(rule: Rule) -> Rule:
    """Heavy ball (nesterov=False) with the velocity form; the Nesterov path is left as the spec's."""
    torch_momentum = rule.assignment("momentum").expr
    torch_direction = rule.assignment("direction").expr
    return rule.replace("momentum", sp.Piecewise((torch_momentum, nesterov), (_velocity, True))).replace(
        "direction", sp.Piecewise((torch_direction, nesterov), (-b / lr, momentum_on), (g, True))
    )


def _nesterov_lookahead(rule: Rule) -> Rule:
    """Keras Nesterov: v ← μv − γg; θ ← θ + μv − γg. The heavy-ball path is left as the spec's."""
    torch_momentum = rule.assignment("momentum").expr
    torch_direction = rule.assignment("direction").expr
    return rule.replace("momentum", sp.Piecewise((_velocity, nesterov), (torch_momentum, True))).replace(
        "direction", sp.Piecewise((g - mu * b / lr, nesterov & momentum_on), (torch_direction, True))
    )


def _keras(rule: Rule) -> Rule:
    """Keras SGD: the velocity form for heavy ball and Nesterov alike, and Keras's conventions
    (float32 learning rate, decoupled decay; SGD reads no step count)."""
    return keras_conventions(_nesterov_lookahead(_momentum_lr_in_buffer(rule)), lr, lam, counts_steps=False)


VARIANTS = (
    Variant(
        id="sgd.momentum_ema",
        title="momentum as an exponential moving average from zero",
        summary="b ← μ·b + (1 − μ)·g from b = 0, whatever the dampening; θ ← θ − γ·b",
        who="deep-learning course code, autograd's sgd, early MLX",
        sources=("HIPS/autograd#289", "ml-explore/mlx#87"),
        delta=_momentum_ema,
    ),
    Variant(
        id="sgd.dampening_on_first_step",
        title="dampening applied to the first gradient",
        summary="b₁ = (1 − τ)·g instead of b₁ = g",
        who="MLX before PR #473",
        sources=("ml-explore/mlx#473", "pytorch/pytorch#1099"),
        delta=_dampening_on_first_step,
    ),
    Variant(
        id="sgd.momentum_lr_in_buffer",
        title="Sutskever/Keras momentum: learning rate inside the buffer",
        summary="v ← μ·v − γ·g; θ ← θ + v (equal to PyTorch's only while γ is constant)",
        who="Keras 3 SGD, cs231n, Sutskever et al. 2013",
        sources=("pytorch/pytorch PR #45036", "keras/src/optimizers/sgd.py"),
        delta=_momentum_lr_in_buffer,
    ),
    Variant(
        id="sgd.nesterov_lookahead",
        title="Keras Nesterov: look-ahead with the learning rate inside the buffer",
        summary="v ← μ·v − γ·g; θ ← θ + μ·v − γ·g (equal to PyTorch's only while γ is constant)",
        who="Keras SGD(nesterov=True)",
        sources=("keras-team/keras#14115", "pytorch/pytorch#14465"),
        delta=_nesterov_lookahead,
    ),
    Variant(
        id="sgd.keras",
        title="Keras 3 SGD: learning rate inside the buffer (heavy ball and Nesterov), a float32 "
        "learning rate, decoupled decay",
        summary="v ← μ·v − fl₃₂(γ)·g; θ ← θ + v (Nesterov: θ ← θ + μ·v − fl₃₂(γ)·g), and weight_decay "
        "decoupled: θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) before the update (the torch backend's float32 "
        "factor); no dampening",
        who="keras.optimizers.SGD (Keras 3)",
        sources=("keras/src/optimizers/sgd.py SGD.update_step", *KERAS_SOURCES),
        delta=_keras,
        bundle=True,
    ),
    Variant(
        id="sgd.decoupled_decay",
        title="decoupled weight decay (SGDW) where L2 was asked for",
        summary="θ ← θ·(1 − γλ) before the step, the gradient (and so the momentum buffer) without "
        "λθ, instead of g ← g + λθ",
        who="timm SGDW; pytorch_optimizer SGDW (weight_decouple=True, the default)",
        sources=("timm/optim/sgdw.py _single_tensor_sgdw (param.mul_(1. - wd_scale * weight_decay))",
                 "pytorch_optimizer/optimizer/sgd.py SGDW._step_per_param (apply_weight_decay, "
                 "weight_decouple)", "arXiv:1711.05101 (Algorithm 1, SGDW)"),
        delta=lambda r: r.remove("weight_decay").insert_before(
            "step", Assign("decay", theta, theta * (1 - lr * lam), "decoupled weight decay")
        ),
    ),
)


# -- closed forms (proved by induction over t in tests/test_derivations.py) ------------------

g0, theta0 = sp.symbols("g_0 theta_0", real=True)
mu_p = sp.Symbol("mu", positive=True)  # momentum switched on
_plain = {lam: 0, tau: 0, maximize: False, nesterov: False, g: g0, mu: mu_p}

CLOSED_FORMS = (
    ClosedForm(
        name="heavy_ball_buffer_constant_gradient",
        statement="With a constant gradient g, momentum μ > 0, no dampening and no weight decay, "
        "the momentum buffer after t steps is b_t = g·(1 − μᵗ)/(1 − μ).",
        rule=RULE,
        given=_plain,
        closed={b: g0 * (1 - mu_p**t) / (1 - mu_p)},
    ),
    ClosedForm(
        name="heavy_ball_parameter_constant_gradient",
        statement="With a constant gradient g, momentum μ > 0, no dampening and no weight decay, "
        "θ_t = θ₀ − γ·g·(t − μ·(1 − μᵗ)/(1 − μ))/(1 − μ).",
        rule=RULE,
        given=_plain,
        closed={
            b: g0 * (1 - mu_p**t) / (1 - mu_p),
            theta: theta0 - lr * g0 * (t - mu_p * (1 - mu_p**t) / (1 - mu_p)) / (1 - mu_p),
        },
        initial={theta: theta0},
    ),
    ClosedForm(
        name="weight_decay_alone_is_geometric",
        statement="Without momentum, with weight decay λ and a zero gradient, θ_t = θ₀·(1 − γλ)ᵗ.",
        rule=RULE,
        given={mu: 0, tau: 0, maximize: False, nesterov: False, g: 0},
        closed={theta: theta0 * (1 - lr * lam) ** t},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------


def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="sgd/plain",
        title="plain SGD",
        purpose="the update θ ← θ − γ·g without momentum",
        hyperparameters={"lr": "0.25"},
        grad_exponents=[0] * 4,
        seed=101,
    ),
    CaseBuilder(
        id="sgd/momentum",
        title="heavy-ball momentum",
        purpose="buffer initialised with the first gradient, then b ← μb + g",
        hyperparameters={"lr": "0.125", "momentum": "0.875"},
        grad_exponents=[0] * 6,
        seed=102,
    ),
    CaseBuilder(
        id="sgd/momentum_dampening",
        title="momentum with dampening",
        purpose="dampening is not applied to the first gradient",
        hyperparameters={"lr": "0.125", "momentum": "0.75", "dampening": "0.5"},
        grad_exponents=[0] * 6,
        seed=103,
    ),
    CaseBuilder(
        id="sgd/momentum_lr_schedule",
        title="momentum with the learning rate changed between steps",
        purpose="the learning rate multiplies the buffer at each step, it is not inside it",
        hyperparameters={"lr": "0.5", "momentum": "0.875", "weight_decay": "0.125"},
        grad_exponents=[0] * 7,
        seed=104,
        changes={3: [_lr(0, "0.0625")], 5: [_lr(0, "1.5")], 7: [_lr(0, "0.03125")]},
    ),
    CaseBuilder(
        id="sgd/nesterov_lr_schedule",
        title="Nesterov momentum with the learning rate changed between steps",
        purpose="Nesterov direction g + μ·b, learning rate outside the buffer",
        hyperparameters={"lr": "0.5", "momentum": "0.75", "nesterov": True},
        grad_exponents=[0] * 7,
        seed=105,
        changes={3: [_lr(0, "0.0625")], 5: [_lr(0, "1.5")]},
    ),
    CaseBuilder(
        id="sgd/weight_decay_maximize",
        title="weight decay while maximizing",
        purpose="the sign flip happens before the L2 term is added",
        hyperparameters={"lr": "0.0625", "momentum": "0.5", "weight_decay": "0.5", "maximize": True},
        grad_exponents=[0] * 5,
        seed=106,
        param_exponent=2,
    ),
    CaseBuilder(
        id="sgd/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad and its buffer stay untouched",
        hyperparameters={"lr": "0.25", "momentum": "0.75"},
        grad_exponents=[0] * 6,
        seed=107,
        groups=[(("scalar", "vector"), {}), (("matrix",), {"lr": "0.0625", "momentum": "0.5", "nesterov": True, "dampening": "0"})],
        no_grad={"scalar": [1, 2], "vector": [3], "matrix": [4, 5]},
    ),
    CaseBuilder(
        id="sgd/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly",
        hyperparameters={"lr": "0.125", "momentum": "0.875", "nesterov": True},
        grad_exponents=[0] * 6,
        seed=108,
        reload_before=[4],
    ),
)

SPEC = Spec(
    id="sgd",
    title="SGD",
    torch_class="torch.optim.SGD",
    rule=RULE,
    unreachable_boundaries={
        "momentum: Eq(t, 1) below": COUNTED,
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("optax", "optax.sgd", note="optax/_src/alias.py sgd"),
        Implementation("keras", "keras.optimizers.SGD", note="keras/src/optimizers/sgd.py SGD"),
        Implementation("timm", "timm.optim.sgdw.SGDW", note="timm/optim/sgdw.py SGDW (decoupled decay)"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.SGDW",
                       note="pytorch_optimizer/optimizer/sgd.py SGDW (decoupled decay by default)"),
    ),
)
