"""Schedule-Free AdamW — the reference implementation of Defazio et al. (arXiv:2405.15682).

Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled" (NeurIPS 2024).
Three sequences replace the learning-rate schedule: the *base* sequence z takes the AdamW step,
x is a weighted average of the z's, and the gradient is evaluated at their interpolation y::

    y_t     = (1 − β₁)·z_t + β₁·x_t
    z_{t+1} = z_t − γ_t·(g/(√(v/(1 − β₂ᵗ)) + ε) + λ·y_t),   v ← β₂·v + (1 − β₂)·g²
    x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}
    c_{t+1} = w_t / Σ_{i≤t} w_i,   w_t = tʳ·(γ_max,t)^{weight_lr_power},   γ_max,t = max_{i≤t} γ_i
    γ_t     = γ·t/W while t < W (linear warmup over ``warmup_steps`` W), γ afterwards

with z_1 = x_1 = θ₀ and v = 0. This is ``schedulefree.AdamWScheduleFreeReference.step``
(``schedulefree/adamw_schedulefree_reference.py``, explicit x, y and z; weight decay at y),
which its docstring says "closely follows the theoretical presentation". The main class
``schedulefree.AdamWScheduleFree`` keeps only z and y (the parameter) and updates y in place,
y ← lerp(y, z, c) + γ(β₁(1 − c) − 1)·u: algebraically the same trajectory.

**What the trajectory is.** The parameter tensor holds y while the optimizer is in train mode
and x in eval mode (``eval()``: p ← lerp(y, z, 1 − 1/β₁)). The spec's trajectory θ is the
parameter as the library leaves it after each ``step()`` in train mode, i.e. **y**; z (state
``z``, as schedulefree and pytorch_optimizer keep it) and the second moment ``exp_avg_sq`` are
compared as state, and x under the name ``x`` (only the Reference class keeps it). schedulefree's
optimizers start in eval mode and raise on ``step()`` unless ``train()`` was called: the board
builds them through :mod:`optimizer_conformance.conformance.wrappers`, which only calls
``train()`` after construction.

**Group-level counters.** The libraries keep the step k, γ_max and Σw per *param group*
(``group['k']``/``group['step']``, ``group['lr_max']``, ``group['weight_sum']``), advanced on every
``step()`` whether or not a parameter has a gradient. The rule, elementwise, keeps them per element
(state ``k``, ``lr_max``, ``weight_sum``; not compared, since they are not in ``optimizer.state[p]``):
the two agree as long as a parameter that misses a gradient never steps again, so the cases only
drop gradients on a parameter's last steps.

Variants (:data:`VARIANTS`): the published experiments' simplified bias correction
(``AdamWScheduleFreePaper``), Keras's uniform average c = 1/t and its weight decay, heavyball's
averaging weight from the current learning rate, decay at z (the Reference class's
``decay_at_z``), and optax's averaging weight without tʳ and its 0-based warmup of the z step.
"""

from __future__ import annotations

import sympy as sp

from .adam import beta1, beta2, eps, lam, lr, v, v_hat
from .boundaries import COUNTED
from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, t, theta
from .spec import Implementation, Spec

W = sp.Symbol("W", integer=True, nonnegative=True)  # warmup_steps
r = sp.Symbol("r", nonnegative=True)  # polynomial weighting power
P = sp.Symbol("P", nonnegative=True)  # weight_lr_power
z = sp.Symbol("z", real=True)  # base sequence
x = sp.Symbol("x", real=True)  # averaged sequence
L = sp.Symbol("gamma_max", real=True)  # largest scheduled lr so far (schedulefree: lr_max)
S = sp.Symbol("W_sum", real=True)  # sum of the averaging weights (weight_sum)
lr_t = sp.Symbol("gamma_t", positive=True)  # scheduled lr of this step
w = sp.Symbol("w", positive=True)  # averaging weight of this step
c = sp.Symbol("c", positive=True)  # interpolation weight c_{t+1} = w_t / Σw
u = sp.Symbol("u", real=True)  # the normalised gradient (plus decay) z steps along


def warmup(step: sp.Expr) -> sp.Expr:
    """γ·sched: linear warmup from γ/W at step 1 to γ at step W (schedulefree: (k+1)/W for k < W)."""
    return lr * sp.Piecewise((step / W, step < W), (1, True))


def _group_counter(name: str, symbol: sp.Symbol, initial, doc: str) -> StateVar:
    return StateVar(name, symbol, sp.sympify(initial), doc, kept_when=lambda hp: False,
                    count=name == "k")


HYPERPARAMETERS = (
    Hyperparameter("warmup_steps", W, 0, neutral=0, integer=True,
                   doc="linear warmup W: γ_t = γ·t/W for t < W"),
    Hyperparameter("r", r, 0.0, neutral=0, doc="polynomial weighting: the averaging weight grows as tʳ"),
    Hyperparameter("weight_lr_power", P, 2.0,
                   doc="the averaging weight is γ_max^P: it matters while the scheduled lr grows"),
)

# the averaging weights, shared by both Schedule-Free specs
AVERAGING = (
    Assign("schedule", lr_t, warmup(t), "the scheduled lr: linear warmup over W steps"),
    Assign("lr_max", L, sp.Max(L, lr_t), "γ_max: the largest scheduled lr so far"),
    Assign("weight", w, t**r * L**P, "averaging weight w_t = tʳ·γ_maxᴾ"),
    Assign("weight_sum", S, S + w, "Σ w_i"),
    Assign("ckp", c, w / S, "c_{t+1} = w_t / Σ w_i"),
)
INITIAL = (
    Assign("initial_z", z, sp.Piecewise((theta, sp.Eq(t, 1)), (z, True)), "z₁ = θ₀"),
    Assign("initial_x", x, sp.Piecewise((theta, sp.Eq(t, 1)), (x, True)), "x₁ = θ₀"),
)
AVERAGE = (
    Assign("z_step", z, z - lr_t * u, "the base sequence takes the step"),
    Assign("average", x, (1 - c) * x + c * z, "x: the weighted average of the z's"),
    Assign("interpolate", theta, beta1 * x + (1 - beta1) * z, "the parameter holds y = β₁·x + (1 − β₁)·z"),
)
COUNTERS = (
    StateVar("z", z, sp.Integer(0), "the base sequence z (z₁ = θ₀)"),
    StateVar("x", x, sp.Integer(0), "the averaged sequence x (x₁ = θ₀; only the Reference class keeps it)"),
    _group_counter("k", t, 0, "steps taken (per param group in the libraries)"),
    _group_counter("lr_max", L, -1, "γ_max (per param group; −1 before the first step)"),
    _group_counter("weight_sum", S, 0, "Σ w_i (per param group)"),
)

RULE = Rule(
    id="schedulefree_adamw",
    title="Schedule-Free AdamW (schedulefree reference; weight decay at y)",
    hyperparameters=(
        Hyperparameter("lr", lr, 0.0025, doc="learning rate γ"),
        Hyperparameter("betas", (beta1, beta2), (0.9, 0.999),
                       doc="β₁: interpolation y = β₁·x + (1 − β₁)·z; β₂: decay of the second moment"),
        Hyperparameter("eps", eps, 1e-8, doc="ε added to the denominator, outside the square root"),
        Hyperparameter("weight_decay", lam, 0, neutral=0, doc="weight decay λ, evaluated at y"),
        *HYPERPARAMETERS,
    ),
    state=(
        COUNTERS[0],
        StateVar("exp_avg_sq", v, sp.Integer(0), "second moment v"),
        *COUNTERS[1:],
    ),
    body=(
        Assign("step", t, t + 1, "count the step"),
        *INITIAL,
        *AVERAGING,
        Assign("second_moment", v, beta2 * v + (1 - beta2) * g**2, "EMA of g²"),
        Assign("bias_correction", v_hat, v / (1 - beta2**t), "bias-corrected second moment"),
        Assign("normalise", u, g / (sp.sqrt(v_hat) + eps), "Adam's normalised gradient"),
        Assign("weight_decay", u, u + lam * theta, "weight decay computed at y"),
        *AVERAGE,
    ),
)


# -- variants -------------------------------------------------------------------------------
SF = "schedulefree 1.4.1"
VARIANTS = (
    Variant(
        id="schedulefree_adamw.paper_bias_correction",
        title="the published experiments' simplified bias correction",
        summary="γ_t = γ·sched·√(1 − β₂ᵗ) (in γ_max and the weights too); u = g/(√v + ε)",
        who=f"{SF} AdamWScheduleFreePaper",
        sources=("schedulefree/adamw_schedulefree_paper.py AdamWScheduleFreePaper.step (l.139-140, 170, 198)",),
        delta=lambda rule: rule.replace("schedule", warmup(t) * sp.sqrt(1 - beta2**t)).replace(
            "bias_correction", v),
    ),
    Variant(
        id="schedulefree_adamw.uniform_average",
        title="uniform average c = 1/t (Keras)",
        summary="c_{t+1} = 1/t always: no tʳ, no γ_maxᴾ, warmup ignored in the weights",
        who="keras 3.15.1 ScheduleFreeAdamW",
        sources=("keras/src/optimizers/schedule_free_adamw.py ScheduleFreeAdamW.update_step (weight = 1.0 / local_step)",),
        delta=lambda rule: rule.replace("ckp", 1 / t),
    ),
    Variant(
        id="schedulefree_adamw.keras_torch_new_z",
        title="Keras on the torch backend: c = 1/t, and x recovered from y with the *updated* z",
        summary="x_old = (y − (1 − β₁)·z_{t+1})/β₁ instead of z_t: momentum_old aliases the variable that "
        "assign_sub updates in place; then x ← (1 − 1/t)·x_old + z_{t+1}/t",
        who="keras 3.15.1 ScheduleFreeAdamW with KERAS_BACKEND=torch",
        sources=("keras/src/optimizers/schedule_free_adamw.py update_step (momentum_old = momentum.value, "
                 "then self.assign_sub(momentum, ...), then x_old from momentum_old)",),
        delta=lambda rule: rule.replace("ckp", 1 / t).insert_after(
            "z_step", Assign("recover_x", x, (theta - (1 - beta1) * z) / beta1, "x from y and the new z")),
    ),
    Variant(
        id="schedulefree_adamw.current_lr_weight",
        title="averaging weight from the current lr, not the largest so far (heavyball)",
        summary="w_t = tʳ·γ_tᴾ",
        who="heavyball 3.2.1 SFAdamW",
        sources=("heavyball/chainable.py update_by_schedule_free (weight = abs(lr) ** weight_lr_power "
                 "* max(step, 1) ** r)",),
        delta=lambda rule: rule.replace("weight", t**r * lr_t**P),
    ),
    Variant(
        id="schedulefree_adamw.decay_at_z",
        title="weight decay computed at z instead of y",
        summary="z ← z − γ_t·(g/(√(v/(1 − β₂ᵗ)) + ε) + λ·z)",
        who=f"{SF} AdamWScheduleFreeReference(decay_at_z=True)",
        sources=("schedulefree/adamw_schedulefree_reference.py AdamWScheduleFreeReference.step "
                 "(decay_point = z if decay_at_z else y)",),
        delta=lambda rule: rule.replace("weight_decay", u + lam * z),
    ),
    Variant(
        id="schedulefree_adamw.no_r",
        title="no polynomial weighting tʳ (optax)",
        summary="w_t = γ_maxᴾ whatever r",
        who="optax 0.2.8 contrib.schedule_free / schedule_free_adamw",
        sources=("optax/contrib/_schedule_free.py schedule_free.update_fn (weight = max_lr**weight_lr_power)",),
        delta=lambda rule: rule.replace("weight", L**P),
    ),
    Variant(
        id="schedulefree_adamw.zero_based_warmup",
        title="the z step's warmup counted from 0 (optax)",
        summary="z ← z − γ·min((t − 1)/W, 1)·u, while γ_max and the weights use γ·min(t/W, 1)",
        who="optax 0.2.8 contrib.schedule_free_adamw(warmup_steps=W)",
        sources=("optax/contrib/_schedule_free.py schedule_free_adamw: scale_by_learning_rate(schedule) "
                 "counts from 0, schedule_free evaluates the schedule at step_count (from 1)",),
        delta=lambda rule: rule.replace("z_step", z - warmup(t - 1) * u),
    ),
    Variant(
        id="schedulefree_adamw.eps_root",
        title="10⁻¹⁵ added to the second moment under the square root (pytorch_optimizer)",
        summary="u = g/(√(v/(1 − β₂ᵗ) + 10⁻¹⁵) + ε): visible once v̂ is within a few orders of 10⁻¹⁵",
        who="pytorch-optimizer 4.1.0 ScheduleFreeAdamW",
        sources=("pytorch_optimizer/base/optimizer.py BaseOptimizer.apply_ams_bound / apply_ams_bound_foreach "
                 "(exp_avg_sq_eps=1e-15: de_nom = (exp_avg_sq + 1e-15).sqrt() + eps)",
                 "pytorch_optimizer/optimizer/schedulefree.py ScheduleFreeAdamW.step / _step_foreach"),
        delta=lambda rule: rule.replace("bias_correction", v / (1 - beta2**t) + sp.Rational(1, 10**15)),
    ),
    Variant(
        id="schedulefree_adamw.keras_decay",
        title="decoupled decay of y before the step, with the un-warmed lr (Keras)",
        summary="y ← y − γλ·y first; x recovered from the decayed y; z not decayed",
        who="keras 3.15.1 ScheduleFreeAdamW (base Optimizer weight decay)",
        sources=("keras/src/optimizers/base_optimizer.py BaseOptimizer._apply_weight_decay",
                 "keras/src/optimizers/schedule_free_adamw.py update_step (x_old from y_old)"),
        delta=lambda rule: rule.remove("weight_decay").insert_after(
            "initial_x", Assign("keras_decay", theta, theta - lr * lam * theta, "y ← y − γλ·y")).insert_before(
            "z_step", Assign("recover_x", x, (theta - (1 - beta1) * z) / beta1, "x from the decayed y")),
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0, theta0 = sp.symbols("g_0 theta_0", real=True)
gamma = sp.Symbol("gamma", positive=True)
_constant_lr = {W: 0, r: 0, lam: 0}
_step = gamma * g0 / (sp.Abs(g0) + eps)  # the normalised step under a constant gradient

CLOSED_FORMS = (
    ClosedForm(
        name="constant_lr_weights_are_uniform",
        statement="Without warmup and with r = 0 the weights are all γᴾ: γ_max = γ, Σw = t·γᴾ, "
        "so c_{t+1} = 1/t and x is the plain average of z₁ … z_t.",
        rule=RULE,
        given={**_constant_lr, lr: gamma},
        closed={L: gamma, S: t * gamma**P},
    ),
    ClosedForm(
        name="constant_gradient",
        statement="With a constant gradient g, no warmup, r = 0 and no decay: v_t/(1 − β₂ᵗ) = g², so z "
        "moves by γ·g/(|g| + ε) per step, x_t = θ₀ − (t + 1)/2·γ·g/(|g| + ε) is the average of "
        "the z's, and y_t = β₁·x_t + (1 − β₁)·z_t.",
        rule=RULE,
        given={**_constant_lr, lr: gamma, g: g0},
        closed={v: g0**2 * (1 - beta2**t), L: gamma, S: t * gamma**P,
                z: theta0 - t * _step, x: theta0 - (t + 1) / 2 * _step,
                theta: theta0 - (beta1 * (t + 1) / 2 + (1 - beta1) * t) * _step},
        initial={theta: theta0},
    ),
    ClosedForm(
        name="uniform_average_under_constant_gradient",
        statement="Keras's uniform average (c = 1/t) follows the same trajectory under a constant "
        "gradient without warmup, whatever r: it differs only while the weights change.",
        rule=VARIANTS[1].rule_for(RULE),
        given={W: 0, lam: 0, lr: gamma, g: g0},
        closed={v: g0**2 * (1 - beta2**t), z: theta0 - t * _step, x: theta0 - (t + 1) / 2 * _step},
        initial={theta: theta0},
    ),
)


# -- cases ----------------------------------------------------------------------------------
def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


# One weighting feature per case: r (with one lr rise), warmup and weight decay are never combined, so an
# implementation with two deviations (optax: no r and a 0-based warmup; Keras: c = 1/t and its own
# decay) matches one variant in each case that shows one, and is diagnosed as both.
CASES = (
    CaseBuilder(
        id="schedulefree_adamw/defaults",
        title="the reference implementation's defaults",
        purpose="bias correction of the second moment at small t (the paper variant differs by √(1 − β₂ᵗ))",
        hyperparameters={},
        grad_exponents=[0] * 5,
        seed=2101,
    ),
    CaseBuilder(
        id="schedulefree_adamw/warmup",
        title="linear warmup over 4 steps",
        purpose="the weights γ_maxᴾ grow during warmup: c ≠ 1/t (Keras); optax's z step counts the "
        "warmup from 0",
        hyperparameters={"lr": "0.25", "warmup_steps": 4, "betas": ["0.75", "0.5"], "eps": "0.125"},
        grad_exponents=[0] * 6,
        seed=2102,
    ),
    CaseBuilder(
        id="schedulefree_adamw/polynomial_weights",
        title="polynomial weighting r = 1, and the learning rate raised once",
        purpose="tʳ changes c from t = 2 on (optax has no r; Keras uses 1/t); raising the lr at step 4 makes "
        "optax's weights γ_maxᴾ differ from Keras's 1/t too",
        hyperparameters={"lr": "0.125", "r": "1", "betas": ["0.5", "0.75"], "eps": "0.0625"},
        grad_exponents=[0, 0, -1, 0, -1, 0],
        seed=2103,
        changes={4: [_lr(0, "0.5")]},
    ),
    CaseBuilder(
        id="schedulefree_adamw/lr_schedule",
        title="the learning rate lowered, then raised, between steps",
        purpose="γ_max keeps the largest lr (heavyball weights by the current one); raising it changes "
        "the weights (Keras's 1/t does not)",
        hyperparameters={"lr": "0.5", "weight_lr_power": "1", "betas": ["0.75", "0.5"], "eps": "0.25"},
        grad_exponents=[0] * 7,
        seed=2104,
        changes={3: [_lr(0, "0.0625")], 6: [_lr(0, "1")]},
    ),
    CaseBuilder(
        id="schedulefree_adamw/weight_decay",
        title="weight decay",
        purpose="the decay is computed at y (not z, and not Keras's decoupled decay of y before the step)",
        hyperparameters={"lr": "0.25", "weight_decay": "0.5", "betas": ["0.75", "0.5"], "eps": "0.125"},
        grad_exponents=[-1] * 6,
        seed=2105,
        param_exponent=2,
    ),
    CaseBuilder(
        id="schedulefree_adamw/tiny_gradients",
        title="gradients of about 2⁻²³",
        purpose="v̂ ≈ 2⁻⁴⁶ ≈ 1.4·10⁻¹⁴: a constant added under the square root (10⁻¹⁵) changes the step by "
        "a few percent; ε = 10⁻⁹ keeps the step normalised (inputs exact in float32, float64 and bfloat16; "
        "below float16's normal range)",
        hyperparameters={"lr": "0.125", "eps": "1e-09", "betas": ["0.75", "0.5"]},
        grad_exponents=[-23, -23, -24, -23, -24],
        seed=2108,
        param_exponent=-2,
    ),
    CaseBuilder(
        id="schedulefree_adamw/groups_and_missing_grads",
        title="two param groups, and params that stop receiving gradients",
        purpose="per-group settings (warmup, power, betas); a param without a grad keeps its value and state",
        hyperparameters={"lr": "0.0625", "betas": ["0.875", "0.75"], "eps": "0.0625"},
        grad_exponents=[1, 0, 0, -1, -2, -2],
        seed=2106,
        groups=[(("scalar", "vector"), {}),
                (("matrix",), {"lr": "0.25", "warmup_steps": 3, "weight_lr_power": "1", "betas": ["0.75", "0.5"]})],
        no_grad={"scalar": [5, 6], "matrix": [6]},
    ),
    CaseBuilder(
        id="schedulefree_adamw/resume",
        title="state_dict round trip during warmup",
        purpose="a fresh instance loaded from state_dict continues exactly: z, v, and the step count, "
        "γ_max and Σw of the group",
        hyperparameters={"lr": "0.25", "warmup_steps": 4, "betas": ["0.75", "0.5"], "eps": "0.125"},
        grad_exponents=[0, 0, -1, 0, -1, 0],
        seed=2107,
        param_exponent=1,
        reload_before=[3],
    ),
    long_horizon("schedulefree_adamw", {"warmup_steps": 100, "r": "1.0"}, 2109,
                 "the warmup γ·t/W ends at W = 100, the weight γ_max^P·t^r grows as t (r = 1) and the weight "
                 "sum over 10³ steps; 1 − β₂ᵗ ≈ 0.63"),
)

SPEC = Spec(
    id="schedulefree_adamw",
    title="Schedule-Free AdamW",
    rule=RULE,
    grad_none_last_step_only="the rule keeps the libraries' per-group counters (k, γ_max, Σw) per param: a "
    "param without a gradient while its group steps would desynchronise them (finding, docs/findings.md)",
    unreachable_boundaries={
        "initial_z: Eq(t, 1) below": COUNTED,
        "initial_x: Eq(t, 1) below": COUNTED,
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    torch_class=None,
    implementations=(
        Implementation("schedulefree", "optimizer_conformance.conformance.wrappers:schedulefree.AdamWScheduleFree",
                       note="schedulefree/adamw_schedulefree.py AdamWScheduleFree (train() called after "
                       "construction: it starts in eval mode)"),
        Implementation("schedulefree",
                       "optimizer_conformance.conformance.wrappers:schedulefree.AdamWScheduleFreeReference",
                       note="schedulefree/adamw_schedulefree_reference.py AdamWScheduleFreeReference "
                       "(train() called after construction)"),
        Implementation("pytorch-optimizer", "pytorch_optimizer.ScheduleFreeAdamW",
                       note="pytorch_optimizer/optimizer/schedulefree.py ScheduleFreeAdamW (train_mode=True "
                       "at construction)"),
    ),
)
