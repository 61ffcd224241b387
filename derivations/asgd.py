"""ASGD (averaged SGD) with weight decay and maximize — PyTorch's definition.

Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging" (SIAM J. Control
Optim. 30(4), 1992), in the form of Bottou's SGD code (``svm/asgd.cpp`` of sgd-2.x, ported to
Lua torch's ``optim.asgd`` and from there to ``torch.optim.ASGD``): a decaying step size
η_t = γ/(1 + λγt)^α, a decay term θ ← θ·(1 − λη) (the gradient of the L2 regulariser λ/2·θ²
of Bottou's SVMs), and the running average ``ax`` of the iterates from step t0 on.

What ``_single_tensor_asgd`` (torch/optim/asgd.py) does to one element, at its t-th step:

* the step size η and the averaging weight μ used at step t were computed at the end of step
  t − 1 (η₀ = γ and μ₀ = 1 at the first step), with the learning rate of that time;
* after the update, η ← γ/(1 + λγt)^α and μ ← 1/max(1, t − t0), from the new step count.

So ``ax`` is θ itself while μ = 1, and from step ⌊t0⌋ + 2 on the running mean of the iterates
since that step (Bottou's code starts one step earlier: μ = 1/(1 + t − t0) after t > t0 steps).
torch writes the averaging as ``ax ← θ`` when μ = 1 and ``ax ← ax + μ(θ − ax)`` otherwise: the
same value in exact arithmetic (the spec uses the second form throughout, as torch's foreach
path does).

torch keeps η and μ as 0-d float32 tensors whatever the parameter's dtype
(``_get_scalar_dtype()``): :data:`FLOAT32_ETA_MU` models that (η computed in double, then stored
in float32), and :data:`FLOAT32_ETA_ARITHMETIC` the foreach path, which computes η in float32
tensor arithmetic; both are acceptable variants.
"""

from __future__ import annotations

import sympy as sp

from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import F32, Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Spec

lr = sp.Symbol("gamma", positive=True)  # γ, the learning rate
lambd = sp.Symbol("lambda", nonnegative=True)  # λ, torch's "lambd": decay term and schedule
alpha = sp.Symbol("alpha", nonnegative=True)  # α, the power of the step-size schedule
t0 = sp.Symbol("t_0", real=True)  # the step from which the iterates are averaged
wd = sp.Symbol("lambda_wd", nonnegative=True)  # L2 weight decay
maximize = sp.Symbol("maximize")

eta = sp.Symbol("eta", positive=True)  # the step size of the next step
mu = sp.Symbol("mu", positive=True)  # the averaging weight of the next step
ax = sp.Symbol("ax", real=True)  # the averaged iterate

ETA_SCHEDULE = lr / (1 + lambd * lr * t) ** alpha
MU_SCHEDULE = 1 / sp.Max(1, t - t0)

RULE = Rule(
    id="asgd",
    title="ASGD (PyTorch)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-2, doc="learning rate γ (the initial step size)"),
        Hyperparameter("lambd", lambd, 1e-4, neutral=0,
                       doc="λ: decay term θ·(1 − λη) and the schedule η = γ/(1 + λγt)^α"),
        Hyperparameter("alpha", alpha, 0.75, doc="power α of the step-size schedule"),
        Hyperparameter("t0", t0, 1e6, doc="the step from which the iterates are averaged"),
        Hyperparameter("weight_decay", wd, 0, neutral=0, doc="L2 penalty (added to the gradient)"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("eta", eta, lr, "step size η of the next step (γ before the first)"),
        StateVar("mu", mu, sp.Integer(1), "averaging weight μ of the next step"),
        StateVar("ax", ax, sp.Integer(0), "the averaged iterate"),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("step", t, t + 1, "count the step"),
        Assign("weight_decay", g, g + wd * theta, "L2 weight decay"),
        Assign("decay", theta, theta * (1 - lambd * eta), "decay term (λ's L2 regulariser)"),
        Assign("update", theta, theta - eta * g, "descend with the current step size"),
        Assign("average", ax, ax + mu * (theta - ax), "running average of the iterates"),
        Assign("eta", eta, ETA_SCHEDULE, "step size of the next step, from the new count"),
        Assign("mu", mu, MU_SCHEDULE, "averaging weight of the next step"),
    ),
)


# -- variants -------------------------------------------------------------------------------

FLOAT32_ETA_MU = Variant(
    id="asgd.float32_eta_mu",
    title="η and μ held as float32 scalars",
    summary="η ← fl₃₂(γ/(1 + λγt)^α), μ ← fl₃₂(1/max(1, t − t0)) and η₀ = fl₃₂(γ): torch keeps "
    "them as 0-d float32 tensors, also for float64 parameters",
    who="PyTorch ASGD (state['eta'], state['mu'] of dtype _get_scalar_dtype(), float32 unless "
    "the default dtype is float64; Python floats before pytorch/pytorch#71335)",
    sources=("torch/optim/asgd.py (_init_group, _single_tensor_asgd)", "pytorch/pytorch#71335"),
    delta=lambda r: r.replace("eta", F32(ETA_SCHEDULE))
    .replace("mu", F32(MU_SCHEDULE))
    .with_initial("eta", F32(lr)),
    acceptable=True,
)

# The foreach path computes the new η with float32 tensor arithmetic, from the float32 step
# count: ``lr / ((1 + lambd * lr * step) ** alpha)`` is mul, add, pow, then ``reciprocal() * lr``
# (Tensor.__rtruediv__), each rounded to float32 (the Python scalars λγ and γ too). The pow is
# taken as correctly rounded: true of torch's CPU powf kernel for the α of the cases here, but not
# of its float32 sqrt (α = 0.5), which no case uses for that reason.
_EF32_BASE = F32(1 + F32(F32(lambd * lr) * t))
FOREACH_ETA_SCHEDULE = F32(F32(1 / F32(_EF32_BASE**alpha)) * F32(lr))

FLOAT32_ETA_ARITHMETIC = Variant(
    id="asgd.float32_eta_arithmetic",
    title="η computed in float32 arithmetic",
    summary="η ← fl₃₂(fl₃₂(1/fl₃₂(fl₃₂(1 + fl₃₂(λγ)·t)^α))·fl₃₂(γ)), μ ← fl₃₂(1/max(1, t − t0)): "
    "the foreach path computes η from the float32 step tensor, one float32 rounding per operation",
    who="PyTorch ASGD(foreach=True) (_multi_tensor_asgd, capturable=False)",
    sources=("torch/optim/asgd.py (_multi_tensor_asgd)",),
    delta=lambda r: r.replace("eta", FOREACH_ETA_SCHEDULE)
    .replace("mu", F32(MU_SCHEDULE))
    .with_initial("eta", F32(lr)),
    acceptable=True,
)

VARIANTS = (
    FLOAT32_ETA_MU,
    FLOAT32_ETA_ARITHMETIC,
    Variant(
        id="asgd.alpha_on_step",
        title="the power α applied to the step count only",
        summary="η ← γ/(1 + λγ·t^α) instead of γ/(1 + λγt)^α",
        who="PyTorch ASGD(foreach=True, capturable=False) from PR #107857 (2023) until PR #126375 "
        "(2024)",
        sources=("pytorch/pytorch PR #107857", "pytorch/pytorch PR #125440",
                 "pytorch/pytorch PR #126375"),
        delta=lambda r: r.replace("eta", lr / (1 + lambd * lr * t**alpha)),
    ),
    Variant(
        id="asgd.no_decay_term",
        title="no decay term: plain averaged SGD",
        summary="θ ← θ − ηg without the factor (1 − λη); λ only enters the step-size schedule",
        who="averaged stochastic approximation as in Polyak & Juditsky (the paper torch's docs "
        "cite), where the iterate has no L2 term",
        sources=("doi:10.1137/0330046", "pytorch/pytorch#74884"),
        delta=lambda r: r.remove("decay"),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)

CLOSED_FORMS = (
    ClosedForm(
        name="eta_and_mu_after_t_steps",
        statement="After t steps, whatever the gradients: η_t = γ/(1 + λγt)^α (the step size of "
        "step t + 1) and μ_t = 1/max(1, t − t0) (its averaging weight).",
        rule=RULE,
        given={},
        closed={eta: ETA_SCHEDULE, mu: MU_SCHEDULE},
    ),
    ClosedForm(
        name="average_is_the_running_mean",
        statement="With t0 = −1 (averaging from the first step), λ = 0 and a constant gradient g: "
        "θ_t = θ₀ − tγg and ax_t = θ₀ − (t + 1)γg/2, the mean of θ₁, …, θ_t.",
        rule=RULE,
        given={lambd: 0, wd: 0, maximize: False, t0: -1, g: g0},
        closed={
            theta: theta0 - t * lr * g0,
            ax: theta0 - (t + 1) * lr * g0 / 2,
            eta: lr,
            mu: 1 / (t + 1),
        },
        initial={theta: theta0},
    ),
    ClosedForm(
        name="decay_alone_and_its_average",
        statement="With α = 0 (η = γ), a zero gradient and t0 = −1: θ_t = θ₀·rᵗ with r = 1 − λγ, "
        "and ax_t = θ₀·r·(1 − rᵗ)/(λγ·t), the mean of θ₁, …, θ_t.",
        rule=RULE,
        given={alpha: 0, wd: 0, maximize: False, t0: -1, g: 0},
        closed={
            theta: theta0 * (1 - lambd * lr) ** t,
            ax: theta0 * (1 - lambd * lr) * (1 - (1 - lambd * lr) ** t) / (lambd * lr * t),
            eta: lr,
            mu: 1 / (t + 1),
        },
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------


def _set(group: int, name: str, value: object) -> HyperparameterChange:
    return HyperparameterChange(group, name, value)


CASES = (
    CaseBuilder(
        id="asgd/default_schedule",
        title="torch's λ, α and t0, with a large learning rate",
        purpose="λ = 1e-4, α = 3/4, t0 = 1e6 and γ = 4: the decay factor 1 − λη and the schedule "
        "η_t = γ/(1 + λγt)^α move by 4e-4 per step, enough to tell the decay term and where α "
        "applies apart in float32; no η_t here is a float32 number",
        hyperparameters={"lr": "4"},
        grad_exponents=[0] * 5,
        seed=701,
    ),
    CaseBuilder(
        id="asgd/fast_schedule",
        title="a fast-decaying step size",
        purpose="λγ = 1/4 and α = 1/4: the schedule η_t = γ/(1 + λγt)^α shrinks by half in a few "
        "steps, so where α applies (and the decay term) is an O(1) difference",
        hyperparameters={"lr": "0.5", "lambd": "0.5", "alpha": "0.25"},
        grad_exponents=[0] * 7,
        seed=702,
        param_exponent=1,
    ),
    CaseBuilder(
        id="asgd/averaging_from_t0",
        title="averaging starts within the run",
        purpose="t0 = 2: ax is θ itself up to step 3, then the running mean of θ₃, θ₄, …",
        hyperparameters={"lr": "0.25", "lambd": "0.25", "alpha": "0.75", "t0": "2"},
        grad_exponents=[0] * 9,
        seed=703,
    ),
    CaseBuilder(
        id="asgd/weight_decay_maximize",
        title="weight decay while maximizing, with averaging",
        purpose="the sign flip happens before the L2 term is added; the decay term and L2 both "
        "shrink θ",
        hyperparameters={"lr": "0.125", "lambd": "0.5", "alpha": "0.25", "t0": "3",
                         "weight_decay": "0.5", "maximize": True},
        grad_exponents=[0] * 7,
        seed=704,
        param_exponent=2,
    ),
    CaseBuilder(
        id="asgd/lr_schedule",
        title="the learning rate changed between steps",
        purpose="η for step t was computed at the end of step t − 1 with the learning rate of that "
        "time: a change takes effect one step late, through the schedule",
        hyperparameters={"lr": "0.25", "lambd": "1", "alpha": "0.75", "t0": "1"},
        grad_exponents=[0] * 7,
        seed=705,
        changes={3: [_set(0, "lr", "0.0625")], 5: [_set(0, "lr", "0.5")]},
    ),
    CaseBuilder(
        id="asgd/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its η, μ, ax and step "
        "count, and its η₀ is the learning rate at its first step",
        hyperparameters={"lr": "0.25", "lambd": "0.5", "alpha": "0.75", "t0": "2"},
        grad_exponents=[0] * 7,
        seed=706,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.125", "lambd": "0.25", "alpha": "1", "t0": "0"})],
        no_grad={"scalar": [1, 2], "vector": [4], "matrix": [3, 5]},
        changes={2: [_set(0, "lr", "0.375")]},
    ),
    CaseBuilder(
        id="asgd/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (η, μ, ax, step count)",
        hyperparameters={"lr": "0.25", "lambd": "0.5", "alpha": "0.75", "t0": "1",
                         "weight_decay": "0.25"},
        grad_exponents=[0] * 7,
        seed=707,
        reload_before=[4],
    ),
    long_horizon("asgd", {"lr": "0.25", "lambd": "0.015625", "t0": "500"}, 708,
                 "η = γ/(1 + λγt)^α at t = 10³ (a 3.3-fold decay) and the running average μ = 1/(t − t0) "
                 "of the iterates from step 502 on: at t = 10³ the mean of 499 iterates"),
)

SPEC = Spec(
    id="asgd",
    title="ASGD",
    torch_class="torch.optim.ASGD",
    rule=RULE,
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
)
