"""RMSprop with centering, momentum, L2 weight decay and maximize — PyTorch's definition.

Hinton's RMSprop (Lecture 6e of "Neural Networks for Machine Learning"), centered as in Graves,
"Generating Sequences With Recurrent Neural Networks" (arXiv:1308.0850, eqs. 38-41), as
``torch.optim.RMSprop`` computes it (torch/optim/rmsprop.py, ``_single_tensor_rmsprop``):

* the mean square starts at 0 and is an EMA, ``v ← α·v + (1 − α)·g²``;
* centered: ``ḡ ← α·ḡ + (1 − α)·g`` and the variance estimate ``ṽ = v − ḡ²`` replaces ``v``;
* ε is added to the square root, ``a = √ṽ + ε`` (torch's documentation: "TensorFlow
  interchanges these two operations");
* momentum keeps the learning rate outside the buffer, ``b ← μ·b + g/a``; ``θ ← θ − γ·b``.

Weight decay is L2: it is added to the (sign-corrected) gradient.
"""

from __future__ import annotations

import sympy as sp

from .cases import CaseBuilder, HyperparameterChange
from .keras_conventions import KERAS_SOURCES, keras_conventions
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec

lr = sp.Symbol("gamma", positive=True)  # γ
alpha = sp.Symbol("alpha", nonnegative=True)  # α, the smoothing constant
eps = sp.Symbol("epsilon", positive=True)  # ε
lam = sp.Symbol("lambda", nonnegative=True)  # λ, weight decay
mu = sp.Symbol("mu", nonnegative=True)  # μ, momentum
centered = sp.Symbol("centered")
maximize = sp.Symbol("maximize")

v = sp.Symbol("v", nonnegative=True)  # the mean square (square_avg)
g_bar = sp.Symbol(r"\bar{g}", real=True)  # the mean gradient (grad_avg, centered only)
b = sp.Symbol("b", real=True)  # the momentum buffer
v_tilde = sp.Symbol(r"\tilde{v}", nonnegative=True)  # v, or the variance v − ḡ² when centered
a = sp.Symbol("a", positive=True)  # the denominator √ṽ + ε

momentum_on = mu > 0  # torch: `if momentum > 0`

RULE = Rule(
    id="rmsprop",
    title="RMSprop (PyTorch; ε outside the square root, learning rate outside the momentum)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-2, doc="learning rate γ"),
        Hyperparameter("alpha", alpha, 0.99, doc="smoothing constant α of the mean square"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to the square root of the mean square"),
        Hyperparameter("weight_decay", lam, 0, neutral=0,
                       doc="L2 penalty λ (added to the gradient)"),
        Hyperparameter("momentum", mu, 0, neutral=0, doc="momentum factor μ"),
        Hyperparameter("centered", centered, False, neutral=False, boolean=True,
                       doc="normalise by an estimate of the variance, v − ḡ²"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("square_avg", v, sp.Integer(0), "mean square v (EMA of g²)"),
        StateVar("momentum_buffer", b, sp.Integer(0), "momentum buffer b",
                 kept_when=lambda hp: float(hp["momentum"]) > 0),
        StateVar("grad_avg", g_bar, sp.Integer(0), "mean gradient ḡ (EMA of g; centered)",
                 kept_when=lambda hp: bool(hp["centered"])),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("weight_decay", g, g + lam * theta, "L2 weight decay"),
        Assign("step", t, t + 1, "count the step"),
        Assign("square_avg", v, alpha * v + (1 - alpha) * g**2, "EMA of the squared gradient"),
        Assign("grad_avg", g_bar,
               sp.Piecewise((alpha * g_bar + (1 - alpha) * g, centered), (g_bar, True)),
               "centered: EMA of the gradient"),
        Assign("centering", v_tilde, sp.Piecewise((v - g_bar**2, centered), (v, True)),
               "centered: the variance estimate v − ḡ²"),
        Assign("denominator", a, sp.sqrt(v_tilde) + eps, "ε added to the square root"),
        Assign("momentum", b, sp.Piecewise((mu * b + g / a, momentum_on), (b, True)),
               "momentum over the normalised gradient (learning rate outside)"),
        Assign("update", theta,
               sp.Piecewise((theta - lr * b, momentum_on), (theta - lr * g / a, True)), "descend"),
    ),
)


# -- variants -------------------------------------------------------------------------------


def _eps_inside_sqrt(rule: Rule) -> Rule:
    return rule.replace("denominator", sp.sqrt(v_tilde + eps))


def _lr_in_momentum_buffer(rule: Rule) -> Rule:
    return rule.replace("momentum", sp.Piecewise((mu * b + lr * g / a, momentum_on), (b, True))).replace(
        "update", sp.Piecewise((theta - b, momentum_on), (theta - lr * g / a, True)))


VARIANTS = (
    Variant(
        id="rmsprop.eps_inside_sqrt",
        title="ε inside the square root",
        summary="a = √(ṽ + ε) instead of √ṽ + ε (centered: √(v − ḡ² + ε))",
        who="TensorFlow (tf.keras / Keras 2 and 3 RMSprop, tf.compat.v1.train.RMSPropOptimizer), "
        "optax rmsprop (eps_in_sqrt=True, the default), jax.example_libraries, Caffe2, Lasagne, "
        "Graves 2013",
        sources=("pytorch/pytorch#23796", "tensorflow/tensorflow#58412", "chainer/chainer#4754",
                 "jax-ml/jax PR #1427", "google-deepmind/optax#532",
                 "arXiv:1308.0850 (eqs. 38-41)"),
        delta=_eps_inside_sqrt,
    ),
    Variant(
        id="rmsprop.initial_ms_one",
        title="mean square initialised to 1",
        summary="v₀ = 1 instead of 0, so the first steps are close to plain SGD",
        who="TensorFlow 1 tf.train.RMSPropOptimizer, timm RMSpropTF, "
        "optax rmsprop(initial_scale=1), Lua torch/optim rmsprop between PR #117 and PR #130, "
        "climin",
        sources=("google-deepmind/optax#49", "google-deepmind/optax PR #55", "torch/optim PR #117",
                 "BRML/climin#30"),
        # On its first step a parameter's mean square is read as 1 (the state before the first step
        # is never observed, so this is v₀ = 1).
        delta=lambda r: r.insert_before(
            "square_avg",
            Assign("initial_mean_square", v, sp.Piecewise((1, sp.Eq(t, 1)), (v, True)), "v₀ = 1"),
        ),
    ),
    Variant(
        id="rmsprop.lr_in_momentum_buffer",
        title="learning rate inside the momentum buffer",
        summary="b ← μ·b + γ·g/a; θ ← θ − b (equal to PyTorch's only while γ is constant)",
        who="TensorFlow / Keras RMSprop(momentum>0), TF1 RMSPropOptimizer, timm RMSpropTF "
        "(lr_in_momentum=True), Graves 2013",
        sources=("pytorch/pytorch#32545", "pytorch/pytorch PR #46118",
                 "tensorflow/tensorflow#58412", "arXiv:1308.0850 (eqs. 38-41)"),
        delta=_lr_in_momentum_buffer,
    ),
    Variant(
        id="rmsprop.keras",
        title="Keras 3 RMSprop: ε inside the square root, the learning rate inside the momentum "
        "buffer, a float32 learning rate, decoupled decay",
        summary="a = √(ṽ + ε); b ← μ·b + fl₃₂(γ)·g/a; θ ← θ − b (without momentum θ ← θ − fl₃₂(γ)·g/a), "
        "and weight_decay always decoupled: θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) before the update "
        "(the torch backend's float32 factor) instead of g ← g + λθ",
        who="keras.optimizers.RMSprop (Keras 3)",
        sources=("keras/src/optimizers/rmsprop.py RMSprop.update_step (denominator = velocity + epsilon "
                 "(centered: - average_grad²), increment = lr * gradient / sqrt(denominator); momentum = "
                 "momentum * rho_m + increment)", "keras/src/backend/torch/optimizers/torch_rmsprop.py "
                 "RMSprop._parallel_update_step", *KERAS_SOURCES),
        delta=lambda r: keras_conventions(_lr_in_momentum_buffer(_eps_inside_sqrt(r)), lr, lam,
                                          counts_steps=False),
        bundle=True,
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
mu_p = sp.Symbol("mu", positive=True)  # momentum switched on
_constant = {lam: 0, maximize: False, g: g0}

CLOSED_FORMS = (
    ClosedForm(
        name="mean_square_constant_gradient",
        statement="With a constant gradient g the mean square is v_t = g²·(1 − αᵗ): it starts far "
        "below g² (v₁ = (1 − α)·g², 1 % of it with α = 0.99), so the first steps are ≈ 1/√(1 − α) "
        "times larger than the later ones.",
        rule=RULE,
        given={**_constant, centered: False, mu: 0},
        closed={v: g0**2 * (1 - alpha**t), v_tilde: g0**2 * (1 - alpha**t)},
    ),
    ClosedForm(
        name="centered_variance_constant_gradient",
        statement="Centered, with a constant gradient g: ḡ_t = g·(1 − αᵗ) and the variance "
        "estimate is ṽ_t = v_t − ḡ_t² = g²·αᵗ·(1 − αᵗ), which tends to 0: the step grows "
        "towards γ·g/ε.",
        rule=RULE,
        given={**_constant, centered: True, mu: 0},
        closed={
            v: g0**2 * (1 - alpha**t),
            g_bar: g0 * (1 - alpha**t),
            v_tilde: g0**2 * alpha**t * (1 - alpha**t),
        },
    ),
    ClosedForm(
        name="memoryless_momentum_constant_gradient",
        statement="With α = 0 (v = g²) and momentum μ > 0, under a constant gradient g the "
        "buffer is b_t = g/(|g| + ε)·(1 − μᵗ)/(1 − μ) and "
        "θ_t = θ₀ − γ·g/(|g| + ε)·(t − μ·(1 − μᵗ)/(1 − μ))/(1 − μ): heavy-ball SGD on the "
        "normalised gradient.",
        rule=RULE,
        given={**_constant, centered: False, alpha: 0, mu: mu_p},
        closed={
            v: g0**2,
            b: g0 / (sp.Abs(g0) + eps) * (1 - mu_p**t) / (1 - mu_p),
            theta: theta0
            - lr * g0 / (sp.Abs(g0) + eps) * (t - mu_p * (1 - mu_p**t) / (1 - mu_p)) / (1 - mu_p),
        },
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="rmsprop/defaults",
        title="torch's defaults",
        purpose="the mean square starts at 0, so v₁ = (1 − α)·g² and the first steps are large",
        hyperparameters={},
        grad_exponents=[0] * 5,
        seed=301,
    ),
    CaseBuilder(
        id="rmsprop/large_eps",
        title="large ε, fast mean square",
        purpose="where ε goes is an O(ε) difference: with ε = 0.5 and |g| ≈ 1 it is O(1)",
        hyperparameters={"lr": "0.125", "alpha": "0.75", "eps": "0.5"},
        grad_exponents=[0, 1, -1, 0],
        seed=302,
    ),
    CaseBuilder(
        id="rmsprop/centered",
        title="centered RMSprop",
        purpose="the variance estimate v − ḡ² in the denominator, with ε large enough to place",
        hyperparameters={"lr": "0.0625", "alpha": "0.875", "eps": "0.25", "centered": True},
        grad_exponents=[1, 0, -1, 0, 1, 0],
        seed=303,
    ),
    CaseBuilder(
        id="rmsprop/momentum_lr_schedule",
        title="momentum with the learning rate changed between steps",
        purpose="the learning rate multiplies the buffer at each step, it is not inside it",
        hyperparameters={"lr": "0.25", "alpha": "0.875", "momentum": "0.875",
                         "weight_decay": "0.125"},
        grad_exponents=[0] * 7,
        seed=304,
        changes={3: [_lr(0, "0.015625")], 5: [_lr(0, "1")], 7: [_lr(0, "0.03125")]},
    ),
    CaseBuilder(
        id="rmsprop/centered_momentum_lr_schedule",
        title="centered, with momentum and the learning rate changed between steps",
        purpose="all the features of the step at once, under a schedule",
        hyperparameters={"lr": "0.125", "alpha": "0.75", "eps": "0.125", "momentum": "0.75",
                         "centered": True},
        grad_exponents=[0, 1, 0, -1, 0, 1],
        seed=305,
        changes={3: [_lr(0, "0.5")], 5: [_lr(0, "0.0078125")]},
    ),
    CaseBuilder(
        id="rmsprop/weight_decay_maximize",
        title="weight decay while maximizing",
        purpose="the sign flip happens before the L2 term is added",
        hyperparameters={"lr": "0.03125", "alpha": "0.9", "weight_decay": "0.5", "maximize": True},
        grad_exponents=[0] * 5,
        seed=306,
        param_exponent=2,
    ),
    CaseBuilder(
        id="rmsprop/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its state and its "
        "step count",
        hyperparameters={"lr": "0.0625", "alpha": "0.9"},
        grad_exponents=[0] * 6,
        seed=307,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.125", "momentum": "0.5", "centered": True, "eps": "0.25"})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 4]},
    ),
    CaseBuilder(
        id="rmsprop/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (buffers and step "
        "counts included)",
        hyperparameters={"lr": "0.125", "alpha": "0.875", "eps": "0.0625", "momentum": "0.875",
                         "centered": True, "weight_decay": "0.25"},
        grad_exponents=[1, 1, -1, 0, -2, 0],
        seed=308,
        reload_before=[4],
    ),
)

SPEC = Spec(
    id="rmsprop",
    title="RMSprop",
    torch_class="torch.optim.RMSprop",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("optax", "optax.rmsprop", note="optax/_src/alias.py rmsprop (decay: the EMA rate, torch's alpha)",
                       args={"decay": "alpha"}),
        Implementation("keras", "keras.optimizers.RMSprop",
                       note="keras/src/optimizers/rmsprop.py RMSprop (rho: the EMA rate, torch's alpha)",
                       args={"rho": "alpha"}),
        Implementation("timm", "timm.optim.rmsprop_tf.RMSpropTF", note="timm/optim/rmsprop_tf.py RMSpropTF"),
    ),
)
