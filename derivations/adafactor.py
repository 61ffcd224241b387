"""Adafactor with a factored second moment — PyTorch's definition (torch ≥ 2.5).

Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost"
(arXiv:1804.04235), Algorithms 4 and 5 without first moment, as ``torch.optim.Adafactor``
implements it (torch/optim/_adafactor.py, ``_single_tensor_adafactor``; pytorch/pytorch#129905):

* the decay of the second moment is ``1 − β̂₂ₜ = t^c`` (c = ``beta2_decay`` = −0.8), so the first
  step copies the statistics and no bias correction is needed;
* a parameter with ≥ 2 dimensions keeps only row means R (last dimension reduced) and column
  means C (the one before it) of g²; its second-moment estimate is R·C/max(mean over rows of R, ε₁);
  a 0-D or 1-D parameter keeps the full EMA V of g²;
* the update g/√max(V̂, ε₁²) is clipped to a root-mean-square of at most ``d``;
* the step size is relative: α = max(ε₂, RMS(θ))·min(γ, 1/√t), with RMS(θ) measured before the
  decoupled weight decay θ ← θ·(1 − γλ).

ε₁ = None (torch's default) means the parameter dtype's machine epsilon; it only clamps values that
the cases here keep many orders of magnitude above it, so goldens evaluate that clamp as inactive.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from .cases import CaseBuilder, HyperparameterChange, long_horizon
from .proofs import ClosedForm
from .rule import Assign, Hyperparameter, Rule, StateVar, Variant, g, ndim, t, theta
from .spec import Implementation, Spec
from .tensor import ColMean, Mean, RowMean, TensorFunction

lr = sp.Symbol("gamma", positive=True)  # γ
c = sp.Symbol("c", negative=True)  # beta2_decay
eps1 = sp.Symbol("epsilon_1", nonnegative=True)  # ε₁ (None: the dtype's machine epsilon)
eps2 = sp.Symbol("epsilon_2", positive=True)  # ε₂
dc = sp.Symbol("d", positive=True)  # clipping threshold d
lam = sp.Symbol("lambda", nonnegative=True)  # λ
maximize = sp.Symbol("maximize")

R = sp.Symbol("R", nonnegative=True)  # row factor (each element holds its row's)
C = sp.Symbol("C", nonnegative=True)  # column factor (each element holds its column's)
V = sp.Symbol("V", nonnegative=True)  # unfactored second moment
w = sp.Symbol(r"\hat{w}", positive=True)  # 1 − β̂₂ₜ
rho = sp.Symbol("rho", positive=True)  # ρₜ
alpha = sp.Symbol("alpha", positive=True)  # the relative step size
s = sp.Symbol(r"\hat{V}", nonnegative=True)  # the second-moment estimate
u = sp.Symbol("u", real=True)  # the update before clipping

factored = ndim >= 2

RULE = Rule(
    id="adafactor",
    title="Adafactor (PyTorch; factored second moment, relative step size)",
    hyperparameters=(
        Hyperparameter("lr", lr, 1e-2, doc="learning rate γ: the step size is at most γ·RMS(θ)"),
        Hyperparameter("beta2_decay", c, -0.8, doc="c in 1 − β̂₂ₜ = tᶜ"),
        Hyperparameter("eps", (eps1, eps2), (None, 1e-3),
                       doc="(ε₁, ε₂): ε₁ floors the second moment (None: the dtype's machine epsilon), "
                       "ε₂ floors RMS(θ)"),
        Hyperparameter("d", dc, 1.0, doc="clipping threshold d of the update's RMS"),
        Hyperparameter("weight_decay", lam, 0.0, neutral=0, doc="decoupled weight decay λ (θ ← θ·(1 − γλ))"),
        Hyperparameter("maximize", maximize, False, neutral=False, boolean=True,
                       doc="ascend the objective instead of descending"),
    ),
    state=(
        StateVar("step", t, sp.Integer(0), "steps taken by this parameter", count=True),
        StateVar("row_var", R, sp.Integer(0), "row means of g² (≥ 2-D params; torch's shape (…, m, 1))",
                 kept_for=lambda shape: len(shape) >= 2),
        StateVar("col_var", C, sp.Integer(0), "column means of g² (≥ 2-D params; torch's shape (…, 1, n))",
                 kept_for=lambda shape: len(shape) >= 2),
        StateVar("variance", V, sp.Integer(0), "EMA of g² (0-D and 1-D params)",
                 kept_for=lambda shape: len(shape) < 2),
    ),
    body=(
        Assign("maximize", g, sp.Piecewise((-g, maximize), (g, True)), "ascend if maximizing"),
        Assign("step", t, t + 1, "count the step"),
        Assign("decay_rate", w, t**c, "1 − β̂₂ₜ = tᶜ (1 at the first step)"),
        Assign("rho", rho, sp.Min(lr, 1 / sp.sqrt(t)), "ρₜ = min(γ, 1/√t)"),
        Assign("step_size", alpha, sp.Max(eps2, sp.sqrt(Mean(theta**2))) * rho,
               "relative step size, from RMS(θ) before the decay"),
        Assign("weight_decay", theta, theta * (1 - lr * lam), "decoupled weight decay"),
        Assign("row_var", R, sp.Piecewise((R + w * (RowMean(g**2) - R), factored), (R, True)),
               "row means of g², EMA (≥ 2-D)"),
        Assign("col_var", C, sp.Piecewise((C + w * (ColMean(g**2) - C), factored), (C, True)),
               "column means of g², EMA (≥ 2-D)"),
        Assign("variance", V, sp.Piecewise((V, factored), (V + w * (g**2 - V), True)),
               "EMA of g² (0-D, 1-D)"),
        Assign("estimate", s, sp.Piecewise((R * C / sp.Max(ColMean(R), eps1), factored), (V, True)),
               "second-moment estimate: the factored outer product, or V"),
        Assign("update", u, g / sp.sqrt(sp.Max(s, eps1**2)), "the normalised gradient"),
        Assign("descend", theta, theta - alpha / sp.Max(1, sp.sqrt(Mean(u**2)) / dc) * u,
               "the step, with the update clipped to RMS ≤ d"),
    ),
)


# -- variants -------------------------------------------------------------------------------


def _in_lines(rule: Rule, labels: tuple[str, ...], substitution: dict) -> Rule:
    """``rule`` with ``substitution`` made inside the lines ``labels``: a delta that rewrites only a part
    of a line, so that it composes with another delta of the same line."""
    for label in labels:
        rule = rule.replace(label, rule.assignment(label).expr.xreplace(substitution))
    return rule


class BatchMeanByRow(TensorFunction):
    r"""``mean_i(x)`` as torch_optimizer broadcasts it: the means over the rows of each batch, taken
    without ``keepdim`` (shape ``(…, B)``), divided into the row statistics (shape ``(…, B, m)``). The
    shapes align on the right, so the element in row i of batch (k₀, …, k_{n−3}) reads the mean of
    batch (k₁, …, k_{n−3}, i): its own batch's on a 2-D param (no batch index) or when B = 1,
    batch i's when B = m, and torch raises for other shapes (so does :meth:`exact`)."""

    axes = "columns"

    @staticmethod
    def _by_row(batch_means: np.ndarray) -> np.ndarray:
        """Each element of the param takes, from ``batch_means`` (constant over the last two dims, as
        ``mean_i`` of a row statistic is), the value torch_optimizer's broadcast gives it."""
        if batch_means.ndim < 3:
            return batch_means
        per_batch = batch_means[..., 0, 0]
        try:
            per_row = np.broadcast_to(per_batch, batch_means.shape[:-1])  # right-aligned, as torch
        except ValueError as e:
            raise ValueError(f"adafactor.row_mean_broadcast is undefined for a param of shape {batch_means.shape}: "
                             "torch_optimizer's Adafactor raises there too") from e
        return np.broadcast_to(per_row[..., None], batch_means.shape)

    @classmethod
    def exact(cls, x: np.ndarray, *scalars) -> np.ndarray:
        return cls._by_row(ColMean.exact(x))

    @classmethod
    def bound(cls, v: np.ndarray, e: np.ndarray, *scalars) -> tuple[np.ndarray, np.ndarray]:
        mean, err = ColMean.bound(v, e)
        return cls._by_row(mean), cls._by_row(err)

    @classmethod
    def propagate(cls, v: np.ndarray, e: np.ndarray, *scalars) -> np.ndarray:
        return cls._by_row(ColMean.propagate(v, e))

    def _latex(self, printer):
        return r"\operatorname{mean}_{i}\left(" + printer._print(self.args[0]) + r"\right)_{\text{batch} = i}"


VARIANTS = (
    Variant(
        id="adafactor.eps_added_to_g2",
        title="ε₁ added to g² before the moving averages",
        summary="R, C, V average g² + ε₁ (ε₁ = 1e-30 there) instead of flooring the estimate at ε₁²",
        who="Hugging Face transformers Adafactor, optax adafactor, the paper's reference code (mesh-tf), "
        "timm Adafactor, torch_optimizer Adafactor",
        sources=("arXiv:1804.04235 (Algorithm 4)", "huggingface/transformers#10526",
                 "optax/_src/factorized.py (grad_sqr = abs_sq(grad) + epsilon)",
                 "timm/optim/adafactor.py Adafactor.step (update = grad ** 2 + group['eps'])",
                 "torch_optimizer/adafactor.py Adafactor.step (update = (grad ** 2) + group['eps2'][0])"),
        # g² → g² + ε₁ in the three averages, whatever else they say (timm also leaves its small
        # matrices unfactored: adafactor.unfactored_matrices)
        delta=lambda r: _in_lines(r, ("row_var", "col_var", "variance"), {g**2: g**2 + eps1}),
        partial_lines=True,
    ),
    Variant(
        id="adafactor.absolute_step_size",
        title="absolute step size: γ instead of max(ε₂, RMS(θ))·min(γ, 1/√t)",
        summary="α = γ (no parameter scaling, no relative-step schedule)",
        who="transformers Adafactor(scale_parameter=False, relative_step=False, lr=γ), "
        "optax adafactor(multiply_by_parameter_scale=False)",
        sources=("transformers/optimization.py Adafactor docstring", "optax adafactor"),
        delta=lambda r: r.replace("step_size", lr),
    ),
    Variant(
        id="adafactor.relative_step",
        title="the fairseq / Hugging Face relative step: ρₜ = min(10⁻², 1/√t) whatever γ, decay by α",
        summary="α = max(ε₂, RMS(θ))·min(10⁻², 1/√t): the learning rate γ is not used (torch's default "
        "γ = 10⁻² gives the same ρₜ); the decoupled decay is θ ← θ·(1 − λα) instead of θ·(1 − γλ)",
        who="fairseq and Hugging Face transformers Adafactor (relative_step=True, the default); timm "
        "Adafactor (lr=None); torch_optimizer Adafactor (relative_step=True, the default)",
        sources=("timm/optim/adafactor.py Adafactor._get_lr (min(1e-2, 1/√step)·max(eps_scale, RMS)), "
                 "Adafactor.step (p_fp32.add_(p_fp32, alpha=-weight_decay * lr_t))",
                 "torch_optimizer/adafactor.py Adafactor._get_lr, Adafactor.step",
                 "huggingface/transformers optimization.py Adafactor._get_lr",
                 "arXiv:1804.04235 (sec. 8, relative step size)"),
        delta=lambda r: r.replace("rho", sp.Min(sp.Rational(1, 100), 1 / sp.sqrt(t))).replace(
            "weight_decay", theta * (1 - alpha * lam)),
    ),
    Variant(
        id="adafactor.unfactored_matrices",
        title="the second moment of small matrices not factored",
        summary="a ≥ 2-D param keeps the full EMA V of g² (optax factors only when both dimensions are "
        "≥ min_dim_size_to_factor = 128, timm only when both of the first two or the last two exceed 16)",
        who="optax adafactor with its default min_dim_size_to_factor=128 on small matrices; timm Adafactor "
        "(min_dim_size_to_factor=16) on small matrices and tensors",
        sources=("optax/_src/factorized.py (_factored_dims)",
                 "timm/optim/adafactor.py Adafactor._get_options (param_shape[-2] > min_size_to_factor and "
                 "param_shape[-1] > min_size_to_factor)"),
        # the ≥ 2-D branch switched off in the two lines that choose it
        delta=lambda r: _in_lines(r, ("variance", "estimate"), {factored: False}),
        partial_lines=True,
    ),
    Variant(
        id="adafactor.row_mean_broadcast",
        title="the row factors of a ≥ 3-D param normalised by another batch's mean",
        summary="V̂ = R·C/mean_i(R) with mean_i(R) taken without keepdim and broadcast against the rows: "
        "row i of every batch is divided by the mean of batch i (a 2-D param is unaffected; torch raises "
        "unless the batch and row counts agree or one of them is 1)",
        who="torch_optimizer Adafactor",
        sources=("torch_optimizer/adafactor.py Adafactor._approx_sq_grad "
                 "(exp_avg_sq_row / exp_avg_sq_row.mean(dim=-1), then .unsqueeze(-1))",),
        # the normaliser swapped in the estimate line, whatever else the line says
        delta=lambda r: _in_lines(r, ("estimate",), {ColMean(R): BatchMeanByRow(R)}),
        partial_lines=True,
    ),
)


# -- closed forms ---------------------------------------------------------------------------
g0 = sp.Symbol("g_0", real=True)
g_pos = sp.Symbol("g_0", positive=True)
t_pos = {maximize: False, g: g0}

CLOSED_FORMS = (
    ClosedForm(
        name="unfactored_second_moment_is_exact_at_once",
        statement="Because 1 − β̂₂₁ = 1ᶜ = 1, a constant gradient g gives V_t = g² from the first step "
        "on: Adafactor's decay schedule needs no bias correction.",
        rule=RULE,
        given={**t_pos, ndim: 1},
        closed={V: g0**2},
    ),
    ClosedForm(
        name="factored_statistics_constant_gradient",
        statement="For a ≥ 2-D parameter and a constant gradient G, the factors are the row and column "
        "means of G² from the first step on: R_t = mean_j(G²), C_t = mean_i(G²).",
        rule=RULE,
        given={**t_pos, ndim: 2},
        closed={R: RowMean(g0**2), C: ColMean(g0**2)},
    ),
    ClosedForm(
        name="constant_gradient_update_is_its_sign",
        statement="For a 0-D or 1-D parameter, a constant gradient g > 0 and ε₁ = 0 the normalised "
        "update is exactly u_t = 1 = sign(g) at every step, so its RMS is 1 and d = 1 never clips: "
        "Adafactor then moves by its relative step size α_t alone.",
        rule=RULE,
        given={maximize: False, g: g_pos, ndim: 1, eps1: 0, dc: 1},
        closed={V: g_pos**2, u: 1},
    ),
)


# -- cases ----------------------------------------------------------------------------------
SHAPES = (("scalar", ()), ("vector", (5,)), ("matrix", (3, 4)), ("batch", (2, 2, 3)))


def _lr(group: int, value: str) -> HyperparameterChange:
    return HyperparameterChange(group, "lr", value)


CASES = (
    CaseBuilder(
        id="adafactor/defaults",
        title="torch's defaults",
        purpose="factored (2-D and 3-D) and unfactored (0-D, 1-D) second moments, relative step size",
        hyperparameters={},
        grad_exponents=[0, 0, 1, -1, 0, 0],
        seed=901,
        shapes=SHAPES,
    ),
    CaseBuilder(
        id="adafactor/large_eps1",
        title="a large ε₁",
        purpose="ε₁ = 0.25 added to g² (the paper's and Hugging Face's form) is an O(1) change",
        hyperparameters={"eps": ["0.25", "0.001"], "lr": "0.25"},
        grad_exponents=[0, 0, 0, 1, 0],
        seed=902,
        shapes=SHAPES,
    ),
    CaseBuilder(
        id="adafactor/small_params",
        title="parameters below ε₂",
        purpose="RMS(θ) < ε₂: the step size is ε₂·ρₜ",
        hyperparameters={"eps": [None, "0.0625"], "lr": "0.5"},
        grad_exponents=[0] * 5,
        seed=903,
        shapes=SHAPES,
        param_exponent=-8,
    ),
    CaseBuilder(
        id="adafactor/clipping",
        title="update clipping active",
        purpose="a slow decay (c = −1) and a gradient 8× larger than before make the update's RMS "
        "exceed d = 1.25, so it is scaled down",
        hyperparameters={"d": "1.25", "lr": "0.125", "beta2_decay": "-1.0"},
        grad_exponents=[0, 0, 0, 0, 0, 3, 0],
        seed=904,
        shapes=SHAPES,
    ),
    CaseBuilder(
        id="adafactor/weight_decay_maximize_lr_schedule",
        title="weight decay while maximizing, with the learning rate changed between steps",
        purpose="decoupled decay θ·(1 − γλ) after measuring RMS(θ); ρₜ follows the current γ",
        hyperparameters={"weight_decay": "0.5", "maximize": True, "lr": "0.25"},
        grad_exponents=[0] * 6,
        seed=905,
        shapes=SHAPES,
        param_exponent=1,
        changes={3: [_lr(0, "0.0625")], 5: [_lr(0, "2.0")]},
    ),
    CaseBuilder(
        id="adafactor/groups_and_missing_grads",
        title="two param groups, and params without a gradient on some steps",
        purpose="per-group settings; a param without a grad keeps its value, its state and its step count",
        hyperparameters={"lr": "0.125"},
        grad_exponents=[0] * 6,
        seed=906,
        shapes=SHAPES,
        groups=[(("scalar", "matrix"), {}),
                (("vector", "batch"), {"lr": "0.5", "beta2_decay": "-0.25", "eps": ["0.125", "0.001"]})],
        no_grad={"scalar": [1, 2], "matrix": [4], "batch": [3, 4]},
    ),
    CaseBuilder(
        id="adafactor/resume",
        title="state_dict round trip in mid-trajectory",
        purpose="a fresh instance loaded from state_dict continues exactly (step counts included)",
        hyperparameters={"lr": "0.25", "weight_decay": "0.125"},
        grad_exponents=[1, 0, -1, 0, 0, 1],
        seed=907,
        shapes=SHAPES,
        reload_before=[4],
    ),
    long_horizon("adafactor", {"lr": "0.01"}, 908,
                 "the decay rate β₂,t = 1 − t^−0.8 at t = 10³ (≈ 0.996) and the relative step ρ_t = "
                 "min(γ, 1/√t) past its cross-over (1/√t < γ from t = 10⁴ on: still γ here)"),
)

SPEC = Spec(
    id="adafactor",
    title="Adafactor",
    torch_class="torch.optim.Adafactor",
    rule=RULE,
    unreachable_boundaries={
        "estimate: Max(epsilon_1, ColMean(R)) above": "gap: ε₁ = None (the dtype's epsilon) is evaluated as 0, so the clamp never binds; a case with an explicit ε₁ above the statistics would reach it",
        "update: Max(\\hat{V}, epsilon_1**2) below": "gap: as above, ε₁ = None is evaluated as 0",
    },
    variants=VARIANTS,
    cases=CASES,
    closed_forms=CLOSED_FORMS,
    implementations=(
        Implementation("timm", "optimizer_conformance.conformance.wrappers:timm_adafactor",
                       note="timm/optim/adafactor.py Adafactor with lr given (absolute step), through "
                       "an adapter that only renames the settings"),
        Implementation("timm", "optimizer_conformance.conformance.wrappers:timm_adafactor_relative_step",
                       note="timm/optim/adafactor.py Adafactor with lr=None (the fairseq/HF relative "
                       "step), through an adapter that only renames the settings"),
        Implementation("torch-optimizer", "optimizer_conformance.conformance.wrappers:torch_optimizer_adafactor",
                       note="torch_optimizer/adafactor.py Adafactor (relative_step=True, the default), "
                       "through an adapter that only renames the settings"),
    ),
)
