"""Tensor functions: the few operations of a rule that look at a whole parameter, not one element.

Most rules are elementwise. Adafactor factors its second moment into row and column means and
normalises by root-mean-squares; such a rule writes those reductions as the functions below, and
the evaluator computes them over the whole parameter (the result is broadcast back, so each element
sees its row's mean, its column's mean, or the tensor's mean). Every function knows

* ``exact(x)``: its value on an object array of mpmath numbers (the golden), and
* ``bound(v, e)``: its value and first-order running error bound (units of u) on float arrays,
  for recursive summation: |fl(Σxᵢ) − Σxᵢ| ≤ u·Σₖ|partial sumₖ| ≤ u·(n − 1)·Σ|xᵢ|, plus one
  rounding for the division by n.

Reductions follow torch's convention for ≥ 2-D tensors: "rows" reduce the last dimension and
"columns" the one before it (batch dimensions in front are kept). On a 0-D or 1-D tensor a rule
must not take a branch that needs columns; those functions then return their argument.

A tensor function may take scalar arguments after the tensor (``args[1:]``: hyperparameters or
numbers, the same for every element, evaluated once per parameter and passed on after the tensor).

A function may also be *defined* as evaluated in a fixed floating-point type, whatever the
parameter's dtype (``fixed_dtype``: Muon's Newton–Schulz iteration runs in bfloat16). Its rounding
errors then go into a second, fixed-precision error channel (units of that type's unit roundoff),
which later lines carry linearly (``channels``; see :mod:`.evaluate`), not into the bound in units of
the parameter dtype's u.

A *stateful* function (``stateful``) keeps matrices of its own from step to step (SOAP's
preconditioner statistics and eigenbases): the evaluator passes ``memory=`` (one dict per parameter
and trajectory, separate for ``exact`` and ``channels``) to both.
"""

from __future__ import annotations

import numpy as np
import sympy as sp


class TensorFunction(sp.Function):
    """A reduction over a parameter tensor, broadcast back to the parameter's shape."""

    nargs = 1
    axes: str = "all"  # "rows" (last dim), "columns" (dim -2) or "all"
    # "tensor": over one parameter; "step": over every element of every parameter updated on this
    # step, all param groups together (Prodigy's D estimate), the same value broadcast to each
    scope: str = "tensor"
    # the floating-point type the function is defined to be evaluated in (None: the param's dtype)
    fixed_dtype: str | None = None
    # whether ``exact`` and ``channels`` take a per-parameter ``memory`` (a dict kept by the evaluator
    # for the whole trajectory): for matrices that are not the parameter's shape (SOAP's L, R, Q_L, Q_R)
    stateful: bool = False

    @classmethod
    def eval(cls, x, *scalars):
        if x.is_Number:
            return x  # the mean of a constant tensor

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_nonnegative(self):
        return self.args[0].is_nonnegative

    def _eval_is_positive(self):
        return self.args[0].is_positive

    @classmethod
    def _axis(cls, ndim: int) -> tuple[int, ...] | None:
        if cls.axes == "all":
            return tuple(range(ndim))
        if cls.axes == "rows":
            return (ndim - 1,) if ndim >= 1 else None
        return (ndim - 2,) if ndim >= 2 else None

    @classmethod
    def exact(cls, x: np.ndarray, *scalars) -> np.ndarray:
        axis = cls._axis(x.ndim)
        if axis is None:
            return x
        n = int(np.prod([x.shape[a] for a in axis]))
        total = x.sum(axis=axis, keepdims=True) if x.ndim else x
        return np.broadcast_to(total / n, x.shape) if x.ndim else x

    @classmethod
    def bound(cls, v: np.ndarray, e: np.ndarray, *scalars) -> tuple[np.ndarray, np.ndarray]:
        axis = cls._axis(v.ndim)
        if axis is None or v.ndim == 0:
            return v, e
        n = int(np.prod([v.shape[a] for a in axis]))
        mean = v.sum(axis=axis, keepdims=True) / n
        err = (e.sum(axis=axis, keepdims=True) + (n - 1) * np.abs(v).sum(axis=axis, keepdims=True)) / n
        err = err + np.abs(mean)  # the division by n
        return np.broadcast_to(mean, v.shape), np.broadcast_to(err, v.shape)

    @classmethod
    def propagate(cls, v: np.ndarray, e: np.ndarray, *scalars) -> np.ndarray:
        """The first-order error of the result from errors ``e`` of the argument alone (no rounding
        of its own): what a fixed-precision error channel carries through this function."""
        axis = cls._axis(v.ndim)
        if axis is None or v.ndim == 0:
            return e
        n = int(np.prod([v.shape[a] for a in axis]))
        return np.broadcast_to(e.sum(axis=axis, keepdims=True) / n, v.shape)

    @classmethod
    def channels(
        cls, v: np.ndarray, e: np.ndarray, fixed: dict[str, np.ndarray], *scalars
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Value, error bound in units of the param dtype's u, and the fixed-precision channels
        ({dtype: error in units of that dtype's u}) given the argument's values ``v``, its bound
        ``e`` and its fixed-channel errors ``fixed``."""
        value, err = cls.bound(v, e, *scalars)
        return value, err, {d: cls.propagate(v, f, *scalars) for d, f in fixed.items()}


class RowMean(TensorFunction):
    r"""Mean over the last dimension (a row of a matrix): ``x.mean(dim=-1, keepdim=True)``."""

    axes = "rows"

    def _latex(self, printer):
        return r"\operatorname{mean}_{j}\left(" + printer._print(self.args[0]) + r"\right)"


class ColMean(TensorFunction):
    r"""Mean over the dimension before the last (a column): ``x.mean(dim=-2, keepdim=True)``."""

    axes = "columns"

    def _latex(self, printer):
        return r"\operatorname{mean}_{i}\left(" + printer._print(self.args[0]) + r"\right)"


class Mean(TensorFunction):
    r"""Mean over every element of the parameter: ``x.mean()``."""

    axes = "all"

    def _latex(self, printer):
        return r"\operatorname{mean}\left(" + printer._print(self.args[0]) + r"\right)"


class SumSq(TensorFunction):
    r"""Sum of squares over every element of the parameter: ``x.pow(2).sum()`` (a per-tensor norm,
    squared: NovoGrad's second moment).

    Bound (units of u): squaring xᵢ adds 2|xᵢ|eᵢ + xᵢ² (one rounding each); recursive summation of n
    terms adds at most (n − 1)·Σxᵢ² (any summation order, pairwise included, is within it); so
    e = Σ 2|xᵢ|eᵢ + n·Σxᵢ². Unlike the means, a sum of a constant depends on n, so nothing
    simplifies symbolically.
    """

    axes = "all"

    @classmethod
    def eval(cls, x, *scalars):
        return None

    def _eval_is_nonnegative(self):
        return True

    @classmethod
    def exact(cls, x: np.ndarray, *scalars) -> np.ndarray:
        total = sum((xi * xi for xi in x.reshape(-1)), start=0 * x.reshape(-1)[0])
        out = np.empty(x.shape, dtype=object)
        out[...] = total
        return out if x.ndim else np.array(total, dtype=object)

    @classmethod
    def bound(cls, v: np.ndarray, e: np.ndarray, *scalars) -> tuple[np.ndarray, np.ndarray]:
        n = v.size
        s = float(np.sum(v * v))
        err = float(np.sum(2 * np.abs(v) * e)) + n * s
        return np.full(v.shape, s), np.full(v.shape, err)

    @classmethod
    def propagate(cls, v: np.ndarray, e: np.ndarray, *scalars) -> np.ndarray:
        return np.full(v.shape, float(np.sum(2 * np.abs(v) * e)))

    def _latex(self, printer):
        return r"\left\lVert " + printer._print(self.args[0]) + r" \right\rVert^{2}"


class Norm(TensorFunction):
    r"""Euclidean (Frobenius) norm over every element of the parameter: ``x.norm()``, one per tensor
    (the "layer" of LAMB, LARS and NovoGrad).

    Bound (units of u): the sum of squares as :class:`SumSq` (s, eₛ = Σ 2|xᵢ|eᵢ + n·s), then the
    square root: e = eₛ/(2√s) + √s (√eₛ when s = 0). A norm computed with a scaling step or in a
    wider accumulator (BLAS nrm2, torch's vectorised reduction) is within it.
    """

    axes = "all"

    @classmethod
    def eval(cls, x, *scalars):
        return None

    def _eval_is_nonnegative(self):
        return True

    @classmethod
    def exact(cls, x: np.ndarray, *scalars) -> np.ndarray:
        import mpmath

        total = sum((xi * xi for xi in x.reshape(-1)), start=0 * x.reshape(-1)[0])
        norm = mpmath.sqrt(total)
        out = np.empty(x.shape, dtype=object)
        out[...] = norm
        return out if x.ndim else np.array(norm, dtype=object)

    @classmethod
    def bound(cls, v: np.ndarray, e: np.ndarray, *scalars) -> tuple[np.ndarray, np.ndarray]:
        s, es = SumSq.bound(v, e)
        s, es = float(s.reshape(-1)[0]), float(es.reshape(-1)[0])
        norm = float(np.sqrt(s))
        err = es / (2 * norm) + norm if norm else float(np.sqrt(es))
        return np.full(v.shape, norm), np.full(v.shape, err)

    @classmethod
    def propagate(cls, v: np.ndarray, e: np.ndarray, *scalars) -> np.ndarray:
        norm = float(np.sqrt(np.sum(v * v)))
        return np.full(v.shape, float(np.sum(np.abs(v) * e)) / norm if norm else float(np.sum(e)))

    def _latex(self, printer):
        return r"\left\lVert " + printer._print(self.args[0]) + r" \right\rVert"


class Total(TensorFunction):
    r"""Sum over every element of every parameter the step updates (those with a gradient), across
    all param groups: ``sum(x.sum() for p in params)``, one number broadcast back to each element of
    each parameter (``scope = "step"``: the evaluator gathers the argument over the parameters).
    Prodigy's D estimate reduces ⟨g, x₀ − θ⟩ and ‖s‖₁ this way.

    Bound (units of u): recursive summation of n terms (all parameters together, in any order or
    blocking: a per-parameter sum, then the sum of those, is one of them) adds at most
    (n − 1)·Σ|xᵢ|; with the arguments' own errors eᵢ, e = Σeᵢ + (n − 1)·Σ|xᵢ|.
    """

    axes = "all"
    scope = "step"

    @classmethod
    def eval(cls, x, *scalars):
        return None

    @classmethod
    def exact(cls, x: np.ndarray, *scalars) -> np.ndarray:
        """``x``: the argument's exact values over every parameter, flattened and concatenated."""
        flat = x.reshape(-1)
        total = sum(flat[1:], start=flat[0])
        out = np.empty(x.shape, dtype=object)
        out[...] = total
        return out

    @classmethod
    def bound(cls, v: np.ndarray, e: np.ndarray, *scalars) -> tuple[np.ndarray, np.ndarray]:
        n = v.size
        s = float(np.sum(v))
        err = float(np.sum(e)) + (n - 1) * float(np.sum(np.abs(v)))
        return np.full(v.shape, s), np.full(v.shape, err)

    @classmethod
    def propagate(cls, v: np.ndarray, e: np.ndarray, *scalars) -> np.ndarray:
        return np.full(v.shape, float(np.sum(e)))

    def _latex(self, printer):
        return r"\sum_{\text{params}}" + printer._print(self.args[0])


def tensor_nodes(expr: sp.Expr) -> list[sp.Expr]:
    """The tensor-function applications in ``expr``, innermost first."""
    return [node for node in sp.postorder_traversal(expr) if isinstance(node, TensorFunction)]
