"""SparseAdam: Adam masked to the entries present in a sparse gradient — PyTorch's definition.

``torch.optim.SparseAdam`` (torch/optim/sparse_adam.py, ``torch.optim._functional.sparse_adam``)
coalesces the sparse gradient (repeated indices add up), then updates the moments and the
parameter *only at the entries the gradient lists*: the other entries keep their value and their
moments (they do not decay), as TensorFlow's LazyAdam does. The step count is per parameter and
advances on every step the parameter has a gradient, so the bias corrections of an entry use the
parameter's step count, not the number of times the entry was present. The step is written in the
ε̂ form: ``θ ← θ − γ·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m/(√v + ε)`` (unlike ``torch.optim.Adam``, whose ε is
added to the bias-corrected √v̂).
"""

from __future__ import annotations

import sympy as sp

from .cases import CaseBuilder, HyperparameterChange
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, present, t, theta
from .spec import Spec

lr = sp.Symbol("gamma", positive=True)  # γ
beta1 = sp.Symbol("beta_1", positive=True)  # β₁
beta2 = sp.Symbol("beta_2", positive=True)  # β₂
eps = sp.Symbol("epsilon", positive=True)  # ε
maximize = sp.Symbol("maximize")

m = sp.Symbol("m", real=True)  # first moment
v = sp.Symbol("v", nonnegative=True)  # second moment

bc1 = 1 - beta1**t
bc2 = 1 - beta2**t

RULE = Rule(
    id="sparseadam",
    title="SparseAdam (PyTorch; lazy moments, ε̂ step)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-3, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.999), doc="decay rates (β₁, β₂) of the moments"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to √v (the ε̂ form)"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter (present entries or not)", count=True),
        StateVar("exp_avg", m, sp.Integer(0), "first moment m, updated at present entries only"),
        StateVar("exp_avg_sq", v, sp.Integer(0), "second moment v, updated at present entries only"),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("step", t, t + 1, "count the step (every entry: the count is the parameter's)"),
        Assign("first_moment", m, sp.Piecewise((beta1 * m + (1 - beta1) * g, present), (m, True)),
               "EMA of the gradient, at the entries present in the sparse gradient"),
        Assign("second_moment", v, sp.Piecewise((beta2 * v + (1 - beta2) * g**2, present), (v, True)),
               "EMA of the squared gradient, at the present entries"),
        Assign("update", theta,
               sp.Piecewise((theta - lr * sp.sqrt(bc2) / bc1 * m / (sp.sqrt(v) + eps), present), (theta, True)),
               "the ε̂-form Adam step, at the present entries"),
    ),
)


# -- variants -------------------------------------------------------------------------------
def _dense_moments(rule: Rule) -> Rule:
    return (
        rule.replace("first_moment", beta1 * m + (1 - beta1) * g)
        .replace("second_moment", beta2 * v + (1 - beta2) * g**2)
        .replace("update", theta - lr * sp.sqrt(bc2) / bc1 * m / (sp.sqrt(v) + eps))
    )


VARIANTS = (
    Variant(
        id="sparseadam.dense_moments",
        title="dense Adam on the densified gradient",
        summary="absent entries count as g = 0: their moments decay (m ← β₁m, v ← β₂v) and their "
        "parameters keep moving, instead of being left alone",
        who="torch.optim.Adam on grad.to_dense(); TensorFlow's (non-lazy) Adam on IndexedSlices",
        sources=("tensorflow/addons tfa.optimizers.LazyAdam (docstring: only slots in the batch are updated)",
                 "torch/optim/sparse_adam.py"),
        delta=_dense_moments,
    ),
    Variant(
        id="sparseadam.eps_after_bias_correction",
        title="ε added to the bias-corrected √v̂ (torch.optim.Adam's placement)",
        summary="θ ← θ − γ·m̂/(√v̂ + ε) at present entries, instead of the ε̂ form γ·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε)",
        who="a SparseAdam written from torch.optim.Adam's documentation (pytorch/pytorch#22628)",
        sources=("pytorch/pytorch#22628", "arXiv:1412.6980 (Algorithm 1)"),
        delta=lambda r: r.replace(
            "update", sp.Piecewise((theta - lr * (m / bc1) / (sp.sqrt(v / bc2) + eps), present), (theta, True))
        ),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)

CLOSED_FORMS = (
    ClosedForm(
        name="moments_constant_present_gradient",
        statement="An entry present on every step with the same gradient g has m_t = g·(1 − β₁ᵗ) and "
        "v_t = g²·(1 − β₂ᵗ): the bias corrections undo the warm-up exactly.",
        rule=RULE,
        given={maximize: False, present: True, g: g0},
        closed={m: g0 * (1 - beta1**t), v: g0**2 * (1 - beta2**t)},
    ),
    ClosedForm(
        name="absent_entry_is_frozen",
        statement="An entry absent from every sparse gradient keeps θ₀ and zero moments while the "
        "parameter's step count advances: t steps later m = v = 0, θ = θ₀ (no decay, no drift).",
        rule=RULE,
        given={maximize: False, present: False, g: 0},
        closed={m: 0, v: 0, theta: theta0, t: t},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="sign_descent_without_eps",
        statement="With ε = 0 and a constant gradient g ≠ 0 present every step, each step moves the "
        "entry by exactly γ against the sign of g: θ_t = θ₀ − t·γ·g/|g|.",
        rule=RULE,
        given={maximize: False, present: True, g: g0, eps: 0},
        closed={m: g0 * (1 - beta1**t), v: g0**2 * (1 - beta2**t), theta: theta0 - t * lr * g0 / sp.Abs(g0)},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
SHAPES = (("vector", (8,)), ("matrix", (3, 4)))


def _lr(value: str) -> HyperparameterChange:
    return HyperparameterChange(0, "lr", value)


CASES = (
    CaseBuilder(
        id="sparseadam/defaults",
        title="torch's defaults, three entries a step (one repeated)",
        purpose="entries absent on a step keep their value and moments; bias corrections use the "
        "parameter's step count",
        hyperparameters={"lr": "0.001"},
        grad_exponents=[0] * 6,
        seed=801,
        shapes=SHAPES,
        sparse_entries=4,
        repeated=1,
    ),
    CaseBuilder(
        id="sparseadam/large_eps",
        title="large ε, fast second moment",
        purpose="where ε goes is an O(ε) difference: with ε = 0.5 and |g| ≈ 1 it is O(1)",
        hyperparameters={"lr": "0.125", "eps": "0.5", "betas": ["0.5", "0.75"]},
        grad_exponents=[0, 1, 0, -1, 0],
        seed=802,
        shapes=SHAPES,
        sparse_entries=5,
        repeated=1,
    ),
    CaseBuilder(
        id="sparseadam/cancelling_repeats",
        title="repeated indices whose values cancel",
        purpose="an entry listed twice with opposite values is present with g = 0: its moments decay "
        "and its parameter still moves, unlike an absent entry",
        hyperparameters={"lr": "0.0625", "betas": ["0.75", "0.875"], "eps": "0.125"},
        grad_exponents=[0] * 6,
        seed=803,
        shapes=SHAPES,
        sparse_entries=5,
        repeated=2,
        cancel=True,
    ),
    CaseBuilder(
        id="sparseadam/maximize_groups_missing_grads",
        title="maximize, two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a gradient keeps its value, state and step count",
        hyperparameters={"lr": "0.125", "maximize": True, "betas": ["0.75", "0.9375"]},
        grad_exponents=[1] * 6,
        seed=804,
        shapes=SHAPES,
        sparse_entries=4,
        repeated=1,
        groups=[(("vector",), {}), (("matrix",), {"lr": "0.25", "maximize": False, "eps": "0.0625"})],
        no_grad={"vector": [2], "matrix": [4, 5]},
    ),
    CaseBuilder(
        id="sparseadam/lr_schedule_resume",
        title="learning rate changed between steps, and a state_dict resume",
        purpose="the step follows the current learning rate; a fresh instance loaded from state_dict "
        "continues exactly",
        hyperparameters={"lr": "0.125", "betas": ["0.5", "0.875"], "eps": "0.25"},
        grad_exponents=[0, 1, 0, 0, -1, 0],
        seed=805,
        shapes=SHAPES,
        sparse_entries=6,
        repeated=1,
        changes={3: [_lr("0.5")], 5: [_lr("0.03125")]},
        reload_before=[4],
    ),
)

SPEC = Spec(
    id="sparseadam",
    title="SparseAdam",
    torch_class="torch.optim.SparseAdam",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
)
