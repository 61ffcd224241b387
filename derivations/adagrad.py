"""Adagrad with lr decay, an initial accumulator, L2 weight decay, maximize — PyTorch's definition.

Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
Optimization" (JMLR 12, 2011), diagonal version, as ``torch.optim.Adagrad`` computes it
(torch/optim/adagrad.py, ``_single_tensor_adagrad``):

* the accumulator starts at ``initial_accumulator_value`` (default 0) and sums ``g²``;
* ε is added to the square root, ``√G + ε`` (default ε = 1e-10);
* the learning rate decays with the parameter's step count, ``γ_t = γ/(1 + (t − 1)·lr_decay)``.

Weight decay is L2: it is added to the (sign-corrected) gradient. torch reads the initial
accumulator value from the constructor's argument (``self.defaults``), not from the param group,
so a case gives every group the same value.
"""

from __future__ import annotations

import sympy as sp

from .cases import CaseBuilder, HyperparameterChange, long_horizon, resumed_at_large_t
from .keras_conventions import KERAS_SOURCES, keras_conventions
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec

lr = sp.Symbol("gamma", positive=True)  # γ
lr_decay = sp.Symbol("eta", nonnegative=True)  # η, the learning-rate decay
lam = sp.Symbol("lambda", nonnegative=True)  # λ, weight decay
G0 = sp.Symbol("G_0", nonnegative=True)  # the initial accumulator value
eps = sp.Symbol("epsilon", positive=True)  # ε
maximize = sp.Symbol("maximize")

G = sp.Symbol("G", nonnegative=True)  # the accumulator (torch's "sum")
clr = sp.Symbol(r"\gamma_t", positive=True)  # the decayed learning rate
std = sp.Symbol("s", positive=True)  # the denominator √G + ε

RULE = Rule(
    id="adagrad",
    title="Adagrad (PyTorch; ε outside the square root)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-2, doc="learning rate γ"),
        Hyperparameter("lr_decay", lr_decay, 0, neutral=0,
                       doc="learning-rate decay η: the t-th step uses γ/(1 + (t − 1)·η)"),
        Hyperparameter("weight_decay", lam, 0, neutral=0,
                       doc="L2 penalty λ (added to the gradient)"),
        Hyperparameter("initial_accumulator_value", G0, 0, neutral=0,
                       doc="initial value G₀ of the accumulator"),
        Hyperparameter("eps", eps, 1e-10, doc="ε added to the square root of the accumulator"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("sum", G, G0, "accumulator G: G₀ plus the sum of the squared gradients"),
    ),
    body=(
        Assign("step", t, t + 1, "count the step"),
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("weight_decay", g, g + lam * theta, "L2 weight decay"),
        Assign("lr_decay", clr, lr / (1 + (t - 1) * lr_decay), "the decayed learning rate"),
        Assign("accumulate", G, G + g**2, "sum of the squared gradients"),
        Assign("denominator", std, sp.sqrt(G) + eps, "ε added to the square root"),
        Assign("update", theta, theta - clr * g / std, "descend"),
    ),
)


# -- variants -------------------------------------------------------------------------------


def _eps_inside_sqrt(rule: Rule) -> Rule:
    return rule.replace("denominator", sp.sqrt(G + eps))


VARIANTS = (
    Variant(
        id="adagrad.eps_inside_sqrt",
        title="ε inside the square root",
        summary="θ ← θ − γ_t·g/√(G + ε) instead of γ_t·g/(√G + ε)",
        who="Keras 2/3 Adagrad (ε = 1e-7), optax adagrad (scale_by_rss), d2l's Adagrad from "
        "scratch (ε = 1e-6), Ruder's overview of gradient descent",
        sources=("keras/src/optimizers/adagrad.py", "optax scale_by_rss",
                 "d2l.ai chapter_optimization/adagrad", "arXiv:1609.04747 (Adagrad)"),
        delta=_eps_inside_sqrt,
    ),
    Variant(
        id="adagrad.initial_accumulator_0.1",
        title="accumulator started at 0.1 whatever initial_accumulator_value says",
        summary="G₀ = 0.1 (Keras/optax/TensorFlow default) instead of initial_accumulator_value",
        who="Keras and tf.compat.v1.train.AdagradOptimizer (initial_accumulator_value=0.1), optax "
        "adagrad (initial_accumulator_value=0.1): their default taken where PyTorch's G₀ was "
        "asked for",
        sources=("tensorflow/tensorflow PR #37819", "pytorch/pytorch PR #6616",
                 "keras/src/optimizers/adagrad.py"),
        # On its first step a parameter's accumulator is read as 0.1 (the double): the state before
        # the first step is never observed, so this is G₀ = 0.1.
        delta=lambda r: r.insert_before(
            "accumulate",
            Assign("initial_accumulator", G, sp.Piecewise((sp.Float(0.1), sp.Eq(t, 1)), (G, True)),
                   "G₀ = 0.1"),
        ),
    ),
    Variant(
        id="adagrad.keras",
        title="Keras 3 Adagrad: ε inside the square root, a float32 learning rate, decoupled decay",
        summary="θ ← θ − fl₃₂(γ)·g/√(G + ε), and weight_decay always decoupled: "
        "θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) before the update (the torch backend's float32 factor) "
        "instead of g ← g + λθ; no lr_decay",
        who="keras.optimizers.Adagrad (Keras 3)",
        sources=("keras/src/optimizers/adagrad.py Adagrad.update_step (variable -= lr * gradient / "
                 "sqrt(accumulator + epsilon))", "keras/src/backend/torch/optimizers/torch_adagrad.py "
                 "Adagrad._parallel_update_step", *KERAS_SOURCES),
        delta=lambda r: keras_conventions(_eps_inside_sqrt(r), lr, lam, counts_steps=False),
        bundle=True,
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
_constant = {lam: 0, maximize: False, g: g0}

CLOSED_FORMS = (
    ClosedForm(
        name="accumulator_constant_gradient",
        statement="With a constant gradient g the accumulator grows linearly, G_t = G₀ + t·g², "
        "and the t-th step uses γ_t = γ/(1 + (t − 1)·η): "
        "θ_t − θ_{t−1} = −γ/(1 + (t − 1)·η) · g/(√(G₀ + t·g²) + ε).",
        rule=RULE,
        given=_constant,
        closed={
            G: G0 + t * g0**2,
            clr: lr / (1 + (t - 1) * lr_decay),
            std: sp.sqrt(G0 + t * g0**2) + eps,
        },
        initial={G: G0},
    ),
    ClosedForm(
        name="scale_free_steps",
        statement="With ε = 0, G₀ = 0 and no learning-rate decay, under a constant gradient g ≠ 0 "
        "the t-th step is −γ·sign(g)/√t whatever |g|: Adagrad's steps do not depend on the "
        "gradient's scale.",
        rule=RULE,
        given={**_constant, eps: 0, lr_decay: 0},
        closed={
            G: t * g0**2,
            clr: lr,
            std: sp.Abs(g0) * sp.sqrt(t),  # so the step γ_t·g/s_t is γ·sign(g)/√t
        },
        initial={G: 0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="adagrad/defaults",
        title="torch's defaults",
        purpose="the accumulator starts at 0 (a start at 0.1 is an O(1) difference for |g| ≈ 1/2)",
        hyperparameters={},
        grad_exponents=[-1] * 5,
        seed=351,
    ),
    CaseBuilder(
        id="adagrad/large_eps",
        title="large ε",
        purpose="where ε goes is an O(ε) difference: with ε = 0.5 and |g| ≈ 1 it is O(1)",
        hyperparameters={"lr": "0.25", "eps": "0.5"},
        grad_exponents=[0, 1, 0, -1],
        seed=352,
    ),
    CaseBuilder(
        id="adagrad/initial_accumulator",
        title="initial accumulator value",
        purpose="G₀ = initial_accumulator_value (here 0.75, not Keras's 0.1), small gradients",
        hyperparameters={"lr": "0.125", "initial_accumulator_value": "0.75", "eps": "0.0625"},
        grad_exponents=[-2, -1, -2, -3, -1],
        seed=353,
    ),
    CaseBuilder(
        id="adagrad/lr_decay",
        title="learning-rate decay",
        purpose="the t-th step uses γ/(1 + (t − 1)·η), counted per parameter",
        hyperparameters={"lr": "0.5", "lr_decay": "0.5", "eps": "0.125"},
        grad_exponents=[0] * 6,
        seed=354,
    ),
    CaseBuilder(
        id="adagrad/lr_schedule",
        title="the learning rate changed between steps, with learning-rate decay",
        purpose="the decay applies to the current learning rate, at the parameter's step count",
        hyperparameters={"lr": "0.25", "lr_decay": "0.25", "initial_accumulator_value": "0.5"},
        grad_exponents=[0] * 7,
        seed=355,
        changes={3: [_lr(0, "1")], 5: [_lr(0, "0.03125")]},
    ),
    CaseBuilder(
        id="adagrad/weight_decay_maximize",
        title="weight decay while maximizing",
        purpose="the sign flip happens before the L2 term is added",
        hyperparameters={"lr": "0.0625", "weight_decay": "0.5", "maximize": True, "eps": "0.25"},
        grad_exponents=[0] * 5,
        seed=356,
        param_exponent=2,
    ),
    CaseBuilder(
        id="adagrad/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its accumulator and "
        "its step count (hence its learning-rate decay)",
        hyperparameters={"lr": "0.125", "initial_accumulator_value": "0.25"},
        grad_exponents=[0] * 6,
        seed=357,
        groups=[(("scalar", "vector"), {"lr_decay": "0.125"}),
                (("matrix",), {"lr": "0.5", "eps": "0.125", "weight_decay": "0.25"})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 4]},
    ),
    CaseBuilder(
        id="adagrad/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (accumulators and step "
        "counts included)",
        hyperparameters={"lr": "0.25", "lr_decay": "0.25", "initial_accumulator_value": "0.125",
                         "weight_decay": "0.125", "eps": "0.0625"},
        grad_exponents=[1, 0, -1, 0, -2, 0],
        seed=358,
        reload_before=[4],
    ),
    resumed_at_large_t("adagrad", {"lr": "0.25", "lr_decay": "0.0000019073486328125"}, 360,
                       "the decayed rate γ/(1 + (t − 1)·η) at t = 10⁶ (η = 2⁻¹⁹: about 1/2.9), "
                       "resumed through load_state_dict", {"sum": "positive"}),
    long_horizon("adagrad", {"lr": "0.25", "lr_decay": "0.015625"}, 359,
                 "the decayed rate γ/(1 + (t − 1)·η) at t = 10³ (η = 2⁻⁶: a 16-fold decay) and a sum of "
                 "10³ squares"),
)

SPEC = Spec(
    id="adagrad",
    title="Adagrad",
    torch_class="torch.optim.Adagrad",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("optax", "optax.adagrad", note="optax/_src/alias.py adagrad"),
        Implementation("keras", "keras.optimizers.Adagrad", note="keras/src/optimizers/adagrad.py Adagrad"),
    ),
)
