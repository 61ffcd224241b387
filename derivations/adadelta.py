"""Adadelta with a learning rate, L2 weight decay and maximize — PyTorch's definition.

Zeiler, "ADADELTA: An Adaptive Learning Rate Method" (arXiv:1212.5701), Algorithm 1, as
``torch.optim.Adadelta`` computes it (torch/optim/adadelta.py, ``_single_tensor_adadelta``):

* both accumulators start at 0 and are EMAs with the same ρ: ``v`` of ``g²`` and ``u`` of ``Δ²``;
* the step is ``Δ = √(u + ε)/√(v + ε)·g`` with the *previous* ``u`` (ε inside both roots);
* the learning rate scales the step, ``θ ← θ − γ·Δ``, but not what ``u`` accumulates (the paper
  has no learning rate; torch's default γ = 1 is the paper).

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
rho = sp.Symbol("rho", nonnegative=True)  # ρ
eps = sp.Symbol("epsilon", positive=True)  # ε
lam = sp.Symbol("lambda", nonnegative=True)  # λ
maximize = sp.Symbol("maximize")

v = sp.Symbol("v", nonnegative=True)  # EMA of g² (square_avg)
u = sp.Symbol("u", nonnegative=True)  # EMA of Δ² (acc_delta)
std = sp.Symbol("s", positive=True)  # √(v + ε)
delta = sp.Symbol(r"\Delta", real=True)  # the step before the learning rate

RULE = Rule(
    id="adadelta",
    title="Adadelta (PyTorch; learning rate outside the accumulated step)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1.0, doc="learning rate γ scaling the step (1: the paper)"),
        Hyperparameter("rho", rho, 0.9, doc="decay rate ρ of both accumulators"),
        Hyperparameter("eps", eps, 1e-6, doc="ε inside both square roots"),
        Hyperparameter("weight_decay", lam, 0, neutral=0,
                       doc="L2 penalty λ (added to the gradient)"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("square_avg", v, sp.Integer(0), "v: EMA of the squared gradient"),
        StateVar("acc_delta", u, sp.Integer(0), "u: EMA of the squared step Δ²"),
    ),
    body=(
        Assign("step", t, t + 1, "count the step"),
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("weight_decay", g, g + lam * theta, "L2 weight decay"),
        Assign("square_avg", v, rho * v + (1 - rho) * g**2, "EMA of the squared gradient"),
        Assign("rms_gradient", std, sp.sqrt(v + eps), "RMS[g], ε inside the root"),
        Assign("delta", delta, sp.sqrt(u + eps) / std * g, "Δ = RMS[Δ]_{t−1}/RMS[g]_t · g"),
        Assign("acc_delta", u, rho * u + (1 - rho) * delta**2, "EMA of the squared step"),
        Assign("update", theta, theta - lr * delta, "descend, scaled by the learning rate"),
    ),
)


# -- variants -------------------------------------------------------------------------------

VARIANTS = (
    Variant(
        id="adadelta.no_lr",
        title="no learning rate (Zeiler's Algorithm 1)",
        summary="θ ← θ − Δ: the learning rate is ignored (read as 1)",
        who="Zeiler 2012 (Algorithm 1, eq. 14), Chainer AdaDelta (no lr argument), "
        "implementations that drop the learning rate as the paper does",
        sources=("arXiv:1212.5701", "tensorflow/tensorflow#8528", "BRML/climin#38",
                 "pytorch/pytorch PR #568"),
        delta=lambda r: r.replace("update", theta - delta),
    ),
    Variant(
        id="adadelta.keras",
        title="Keras 3 Adadelta: a float32 learning rate, decoupled decay",
        summary="torch's Adadelta formula (ε inside both roots, Δ with the previous u), the learning "
        "rate rounded to float32 for float64 variables, and weight_decay always decoupled: "
        "θ ← θ·fl₃₂(1 − fl₃₂(fl₃₂(λ)·fl₃₂(γ))) before the update (the torch backend's float32 factor) "
        "instead of g ← g + λθ",
        who="keras.optimizers.Adadelta (Keras 3)",
        sources=("keras/src/optimizers/adadelta.py Adadelta.update_step (rms(x) = sqrt(x + epsilon); "
                 "delta_var = -rms(accumulated_delta_var) * grad / rms(accumulated_grad); variable += lr * "
                 "delta_var)", "keras/src/backend/torch/optimizers/torch_adadelta.py "
                 "Adadelta._parallel_update_step", *KERAS_SOURCES),
        delta=lambda r: keras_conventions(r, lr, lam, counts_steps=False),
        bundle=True,
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
v0, u0 = sp.symbols("v_0 u_0", nonnegative=True)
_constant = {lam: 0, maximize: False, g: g0}
r = g0**2 / (g0**2 + eps)  # the contraction of acc_delta when ρ = 0

CLOSED_FORMS = (
    ClosedForm(
        name="square_avg_constant_gradient",
        statement="With a constant gradient g, v_t = g²·(1 − ρᵗ); the first step is "
        "Δ₁ = √ε/√((1 − ρ)·g² + ε)·g, of size ≈ √(ε/(1 − ρ)) (≈ 3.2e-3 with torch's defaults).",
        rule=RULE,
        given=_constant,
        closed={v: g0**2 * (1 - rho**t)},
    ),
    ClosedForm(
        name="memoryless_acc_delta_constant_gradient",
        statement="With ρ = 0 and a constant gradient g, acc_delta is u_t = g²·(1 − rᵗ) with "
        "r = g²/(g² + ε): it tends to g², so the step Δ_t = √(u_{t−1} + ε)/√(g² + ε)·g tends to g "
        "and Adadelta becomes gradient descent with step size γ.",
        rule=RULE,
        given={**_constant, rho: 0},
        closed={v: g0**2, u: g0**2 * (1 - r**t)},
    ),
    ClosedForm(
        name="memory_fades_without_gradient",
        statement="With a zero gradient (and no weight decay) θ stays put and both accumulators "
        "decay geometrically from wherever they were: v_t = ρᵗ·v₀, u_t = ρᵗ·u₀.",
        rule=RULE,
        given={lam: 0, maximize: False, g: 0},
        closed={theta: theta0, v: rho**t * v0, u: rho**t * u0},
        initial={theta: theta0, v: v0, u: u0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="adadelta/defaults",
        title="torch's defaults",
        purpose="ε = 1e-6 starts the step at ≈ √(ε/(1 − ρ)); γ = 1 is the paper's rule",
        hyperparameters={},
        grad_exponents=[0] * 6,
        seed=401,
    ),
    CaseBuilder(
        id="adadelta/lr",
        title="a learning rate other than 1",
        purpose="the learning rate scales the step and nothing else",
        hyperparameters={"lr": "0.25", "eps": "0.0625"},
        grad_exponents=[0] * 5,
        seed=402,
    ),
    CaseBuilder(
        id="adadelta/large_eps_fast_decay",
        title="large ε, fast decay",
        purpose="both accumulators move a lot per step (ρ = 0.5) and ε is not negligible in "
        "either root",
        hyperparameters={"lr": "0.5", "rho": "0.5", "eps": "0.25"},
        grad_exponents=[1, 0, -1, 0, 1, -2],
        seed=403,
    ),
    CaseBuilder(
        id="adadelta/lr_schedule",
        title="the learning rate changed between steps",
        purpose="the learning rate scales each step; it is not accumulated in acc_delta",
        hyperparameters={"lr": "2", "rho": "0.75", "eps": "0.125"},
        grad_exponents=[0] * 7,
        seed=404,
        changes={3: [_lr(0, "0.125")], 5: [_lr(0, "1")], 7: [_lr(0, "4")]},
    ),
    CaseBuilder(
        id="adadelta/weight_decay_maximize",
        title="weight decay while maximizing",
        purpose="the sign flip happens before the L2 term is added",
        hyperparameters={"lr": "0.5", "weight_decay": "0.5", "maximize": True, "eps": "0.015625"},
        grad_exponents=[0] * 5,
        seed=405,
        param_exponent=2,
    ),
    CaseBuilder(
        id="adadelta/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its accumulators and "
        "its step count",
        hyperparameters={"lr": "0.5", "eps": "0.03125"},
        grad_exponents=[0] * 6,
        seed=406,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "1.5", "rho": "0.625", "eps": "0.125",
                               "weight_decay": "0.25"})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 4]},
    ),
    CaseBuilder(
        id="adadelta/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (accumulators and step "
        "counts included)",
        hyperparameters={"lr": "0.75", "rho": "0.875", "eps": "0.0625", "weight_decay": "0.125"},
        grad_exponents=[1, 1, -1, 0, -2, 0],
        seed=407,
        reload_before=[4],
    ),
)

SPEC = Spec(
    id="adadelta",
    title="Adadelta",
    torch_class="torch.optim.Adadelta",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("optax", "optax.adadelta", note="optax/_src/alias.py adadelta"),
        Implementation("keras", "keras.optimizers.Adadelta", note="keras/src/optimizers/adadelta.py Adadelta"),
    ),
)
