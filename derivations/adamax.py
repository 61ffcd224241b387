"""Adamax with L2 weight decay and maximize — the paper's rule as PyTorch implements it.

Kingma & Ba, "Adam: A Method for Stochastic Optimization" (arXiv:1412.6980), Algorithm 2: the
second moment of Adam is replaced by an exponentially weighted infinity norm
``u ← max(β₂·u, |g|)``, which needs no bias correction; the first moment is bias-corrected as in
Adam. PyTorch (``torch.optim.Adamax``, ``_single_tensor_adamax``) adds ε *inside* the maximum,
``u ← max(β₂·u, |g| + ε)``, and divides by u alone: θ ← θ − γ/(1 − β₁ᵗ) · m/u (optax's
``scale_by_adamax`` is the same). Weight decay is L2: it is added to the (sign-corrected)
gradient.

Where ε goes is the whole difference between the implementations (:data:`VARIANTS`): the paper
has none, Keras adds it outside the maximum. Both differ from PyTorch by O(ε), and Keras's only
while the decayed branch β₂·u of the maximum is taken (proved below: under a constant gradient
Keras and PyTorch agree exactly), so the cases use ε ≈ 0.25-0.5 and shrinking gradients with a
small β₂.
"""

from __future__ import annotations

import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, m, maximize
from .cases import CaseBuilder, HyperparameterChange, long_horizon, resumed_at_large_t
from .keras_conventions import KERAS_SOURCES, keras_conventions
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec
from .step_scope import global_counter

u = sp.Symbol("u", nonnegative=True)  # exponentially weighted infinity norm (torch: exp_inf)

RULE = Rule(
    id="adamax",
    title="Adamax (PyTorch; ε inside the maximum, L2 weight decay)",
    hyperparameters=(
        Hyperparameter("lr", lr, 2e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.999),
                       doc="decay rates (β₁, β₂) of the first moment and of the infinity norm"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to |g| inside the maximum"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="L2 penalty λ (added to the gradient)"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m (EMA of g)"),
        StateVar("exp_inf", u, sp.Integer(0), "exponentially weighted infinity norm u"),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("weight_decay", g, g + lam * theta, "L2 weight decay"),
        Assign("step", t, t + 1, "count the step"),
        Assign("first_moment", m, beta1 * m + (1 - beta1) * g, "EMA of the gradient"),
        Assign("infinity_norm", u, sp.Max(beta2 * u, sp.Abs(g) + eps),
               "decayed maximum of |g|, with ε added to |g| inside the maximum"),
        Assign("update", theta, theta - lr / (1 - beta1**t) * m / u,
               "the step: bias-corrected first moment over the infinity norm"),
    ),
)


# -- variants -------------------------------------------------------------------------------
def _eps_outside_max(rule: Rule) -> Rule:
    return rule.replace("infinity_norm", sp.Max(beta2 * u, sp.Abs(g))).replace(
        "update", theta - lr * m / ((1 - beta1**t) * (u + eps)))


VARIANTS = (
    Variant(
        id="adamax.no_eps",
        title="no ε (the paper's Algorithm 2)",
        summary="u ← max(β₂·u, |g|); θ ← θ − γ/(1 − β₁ᵗ) · m/u",
        who="Kingma & Ba 2015, Algorithm 2",
        sources=("arXiv:1412.6980 (Algorithm 2)",),
        delta=lambda r: r.replace("infinity_norm", sp.Max(beta2 * u, sp.Abs(g))),
    ),
    Variant(
        id="adamax.eps_outside_max",
        title="ε added outside the maximum (Keras)",
        summary="u ← max(β₂·u, |g|); θ ← θ − γ·m/((1 − β₁ᵗ)·(u + ε))",
        who="Keras 2.11+ and Keras 3 Adamax (ε = 1e-7); TensorFlow's ApplyAdaMax kernel (tf.keras 2.x)",
        sources=("keras-team/keras keras/src/optimizers/adamax.py",
                 "tensorflow raw_ops.ApplyAdaMax (tensorflow/core/ops/training_ops.cc)"),
        delta=lambda r: _eps_outside_max(r),
    ),
    Variant(
        id="adamax.keras",
        title="Keras 3 Adamax: ε outside the maximum, one step counter, a float32 learning rate, "
        "decoupled decay",
        summary="u ← max(β₂·u, |g|); θ ← θ − fl₃₂(γ)·m/((1 − β₁ᵗ)·(u + ε)) with t = optimizer.iterations + 1, "
        "the learning rate rounded to float32 for float64 variables, and weight_decay decoupled: "
        "θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) before the update (the torch backend's float32 factor)",
        who="keras.optimizers.Adamax (Keras 3)",
        sources=("keras/src/optimizers/adamax.py Adamax.update_step", *KERAS_SOURCES),
        delta=lambda r: keras_conventions(_eps_outside_max(r), lr, lam),
        bundle=True,
    ),
    global_counter(
        who="Keras 3 Adamax (optimizer.iterations); pytorch_optimizer AdaMax (group['step'])",
        sources=("keras/src/optimizers/adamax.py Adamax.update_step (local_step = iterations + 1)",
                 "pytorch_optimizer/optimizer/adamax.py AdaMax.step (group['step'] += 1)"),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
g_pos = sp.Symbol("g_0", positive=True)
# torch's default β₂ (the proofs need a number to decide the maximum; any β₂ < 1 behaves alike)
_beta2 = sp.Rational(999, 1000)
_constant = {lam: 0, maximize: False, g: g0, beta2: _beta2}

CLOSED_FORMS = (
    ClosedForm(
        name="constant_gradient",
        statement="With a constant gradient g: m_t = g·(1 − β₁ᵗ), u_t = |g| + ε from the first step on, "
        "and θ_t = θ₀ − t·γ·g/(|g| + ε): exactly Adam's trajectory under a constant gradient.",
        rule=RULE,
        given=_constant,
        closed={m: g0 * (1 - beta1**t), u: sp.Abs(g0) + eps,
                theta: theta0 - t * lr * g0 / (sp.Abs(g0) + eps)},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="keras_equals_torch_under_constant_gradient",
        statement="Keras's Adamax (ε outside the maximum) keeps u_t = |g| and follows the same "
        "θ_t = θ₀ − t·γ·g/(|g| + ε) under a constant gradient: it differs from PyTorch only when "
        "the decayed branch β₂·u of the maximum wins, i.e. when gradients shrink.",
        rule=VARIANTS[1].rule_for(RULE),
        given=_constant,
        closed={m: g0 * (1 - beta1**t), u: sp.Abs(g0),
                theta: theta0 - t * lr * g0 / (sp.Abs(g0) + eps)},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="paper_moves_by_lr_under_constant_gradient",
        statement="The paper's Adamax (no ε) moves by exactly γ per step under a constant gradient "
        "g > 0: θ_t = θ₀ − t·γ, whatever the size of g.",
        rule=VARIANTS[0].rule_for(RULE),
        given={**_constant, g: g_pos},
        closed={m: g_pos * (1 - beta1**t), u: g_pos, theta: theta0 - t * lr},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="adamax/defaults",
        title="torch's defaults",
        purpose="bias correction of the first moment at small t; the infinity norm from u = 0",
        hyperparameters={},
        grad_exponents=[0] * 5,
        seed=501,
    ),
    CaseBuilder(
        id="adamax/large_eps",
        title="large ε",
        purpose="whether ε enters the infinity norm is an O(ε) difference: with ε = 0.5 and |g| ≈ 1 it is O(1)",
        hyperparameters={"lr": "0.125", "eps": "0.5"},
        grad_exponents=[0] * 5,
        seed=502,
    ),
    CaseBuilder(
        id="adamax/shrinking_gradients",
        title="shrinking gradients, fast infinity norm, large ε",
        purpose="the decayed branch β₂·u of the maximum is taken, where ε inside or outside the maximum differ "
        "by (1 − β₂)·ε",
        hyperparameters={"lr": "0.0625", "eps": "0.25", "betas": ["0.5", "0.5"]},
        grad_exponents=[2, 1, 0, -1, -2, -3],
        seed=503,
    ),
    CaseBuilder(
        id="adamax/weight_decay_maximize",
        title="weight decay while maximizing",
        purpose="the sign flip of maximize happens before the L2 term is added",
        hyperparameters={"lr": "0.25", "weight_decay": "0.25", "maximize": True},
        grad_exponents=[0] * 5,
        seed=504,
        param_exponent=2,
    ),
    CaseBuilder(
        id="adamax/weight_decay_lr_schedule",
        title="weight decay with the learning rate changed between steps",
        purpose="the step follows the current learning rate",
        hyperparameters={"lr": "0.125", "weight_decay": "0.5"},
        grad_exponents=[0] * 6,
        seed=505,
        param_exponent=1,
        changes={3: [_lr(0, "0.5")], 5: [_lr(0, "0.015625")]},
    ),
    CaseBuilder(
        id="adamax/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its state and its step count",
        hyperparameters={"lr": "0.0625"},
        grad_exponents=[1, 0, 0, -1, -2, -2],
        seed=506,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "betas": ["0.75", "0.5"], "eps": "0.125"})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 4]},
    ),
    CaseBuilder(
        id="adamax/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (step counts included)",
        hyperparameters={"lr": "0.125", "weight_decay": "0.25", "eps": "0.0625", "betas": ["0.875", "0.75"]},
        grad_exponents=[1, 1, -1, 0, -2, 0],
        seed=507,
        reload_before=[4],
    ),
    long_horizon("adamax", {"lr": "0.001", "betas": ["0.999", "0.999"]}, 508,
                 "the bias correction 1 − β₁ᵗ at t = 10³ with β₁ = 0.999 (≈ 0.63: an off-by-one or a missing "
                 "correction still shows) and the infinity norm after 10³ decays"),
    resumed_at_large_t("adamax", {"lr": "0.002"}, 509,
                       "the step count continues from 10⁶ (exact in torch's float32 counter); β₁ᵗ far below "
                       "every dtype's resolution", {"exp_avg": "signed", "exp_inf": "positive"}),
)

SPEC = Spec(
    id="adamax",
    title="Adamax",
    torch_class="torch.optim.Adamax",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("optax", "optax.adamax", note="optax/_src/alias.py adamax"),
        Implementation("keras", "keras.optimizers.Adamax", note="keras/src/optimizers/adamax.py Adamax"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.AdaMax", note="pytorch_optimizer/optimizer/adamax.py AdaMax"),
    ),
)
