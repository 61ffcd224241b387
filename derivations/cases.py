"""Case designs: the inputs of a golden trajectory, before anything is evaluated.

Every input a candidate receives (initial parameters, gradients) is a dyadic number with at most
8 significant bits and a moderate exponent, so it is exactly representable in float64, float32,
bfloat16 and float16: the candidate sees exactly the numbers the golden was computed from, and
all the error it shows is its own. Hyperparameters are decimal strings (``"0.001"``); the golden
uses their exact decimal value, a float64 candidate its nearest double (one rounding, covered by
the tolerance model).

Values come from :class:`random.Random` with a fixed integer seed, whose stream Python keeps
stable across versions, so regenerating the goldens is byte-for-byte reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

# Three parameter tensors per case by default: 0-d, a vector and a matrix.
DEFAULT_SHAPES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("scalar", ()),
    ("vector", (5,)),
    ("matrix", (2, 3)),
)


@dataclass(frozen=True)
class ParamInput:
    name: str
    shape: tuple[int, ...]
    values: tuple[float, ...]  # exact dyadic numbers, row-major


@dataclass(frozen=True)
class GroupInput:
    params: tuple[str, ...]
    hyperparameters: Mapping[str, object]  # torch names; decimals as strings


@dataclass(frozen=True)
class HyperparameterChange:
    """Set ``param_groups[group][name] = value`` before a step, as an lr scheduler does."""

    group: int
    name: str
    value: object


@dataclass(frozen=True)
class SparseGrad:
    """A sparse COO gradient as torch builds it, *uncoalesced*: ``indices[k]`` is the (row-major
    multi-)index of ``values[k]``; an index may repeat (its values add up) and a listed entry is
    present even when its values sum to zero."""

    indices: tuple[tuple[int, ...], ...]
    values: tuple[float, ...]

    def dense(self, shape: Sequence[int]) -> tuple[tuple[float, ...], tuple[bool, ...]]:
        """The coalesced gradient as flat (values, present) tuples."""
        n = math.prod(shape)
        values, present = [0.0] * n, [False] * n
        strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
        for index, x in zip(self.indices, self.values, strict=True):
            flat = sum(i * st for i, st in zip(index, strides, strict=True))
            values[flat] += x  # exact: dyadic numbers of like exponent
            present[flat] = True
        return tuple(values), tuple(present)


@dataclass(frozen=True)
class StepInput:
    grads: Mapping[str, tuple[float, ...] | SparseGrad | None]  # None: the param has no grad this step
    changes: tuple[HyperparameterChange, ...] = ()
    reload_before: bool = False  # state_dict -> fresh instance -> load_state_dict first
    # the step is taken this many times with the same gradients (changes and reload before the
    # first); the golden holds the values after the last: a long horizon at the size of one step
    repeat: int = 1


@dataclass(frozen=True)
class CaseDesign:
    id: str
    title: str
    purpose: str
    features: tuple[str, ...]
    params: tuple[ParamInput, ...]
    groups: tuple[GroupInput, ...]
    steps: tuple[StepInput, ...]
    # state loaded (load_state_dict) before the first step, by param and torch's state name: a
    # count (int) or exact values, one per element (one value for a StateVar that is per_param):
    # a large t without stepping to it
    initial_state: Mapping[str, Mapping[str, int | tuple[float, ...]]] = field(default_factory=dict)


def exact_decimal(x: float) -> str:
    """The exact decimal expansion of a double (inputs are dyadic, so it is short)."""
    d = Decimal(x)
    s = format(d, "f") if d != 0 else "0"
    return s if "." in s or s in ("0", "-0") else s + ".0"


def dyadic(rng: random.Random, exponent: int, *, positive: bool = False) -> float:
    """A number of magnitude in [2**(exponent-1), 2**exponent) with 8 significant bits."""
    mantissa = rng.randrange(128, 256)
    sign = 1 if positive or rng.random() < 0.5 else -1
    return sign * math.ldexp(mantissa, exponent - 8)


def tensor_values(rng: random.Random, shape: Sequence[int], exponent: int, **kw) -> tuple[float, ...]:
    n = math.prod(shape)
    return tuple(dyadic(rng, exponent, **kw) for _ in range(n))


def divmod_all(flat: int, shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major multi-index of a flat index."""
    out = []
    for dim in reversed(shape):
        flat, i = divmod(flat, dim)
        out.append(i)
    return tuple(reversed(out))


LONG_HORIZON = 1000  # t reached by stepping in a long-horizon case
LARGE_T = 1_000_000  # the step count a state-injection case resumes from (exact in float32: < 2²⁴)


def resumed_at_large_t(prefix: str, hyperparameters: Mapping[str, object], seed: int, purpose: str,
                       moments: Mapping[str, str], steps: int = 3,
                       per_param: Mapping[str, float] = {}) -> CaseBuilder:  # noqa: B006 (read only)
    """A case that resumes at t = 10⁶ through load_state_dict: the step count and the moments
    (``moments``: state name -> "signed" or "positive") are injected as exact dyadic values, and
    ``per_param`` (state name -> an exact float, e.g. NAdam's μ product at t = 10⁶) as one value per
    parameter; then a few steps are taken; the golden is the rule evaluated from that state (no
    stepping to it)."""
    return CaseBuilder(
        id=f"{prefix}/resumed_at_large_t",
        title=f"resumed at t = {LARGE_T} (state injected through load_state_dict)",
        purpose=purpose,
        hyperparameters=hyperparameters,
        grad_exponents=[0] * steps,
        seed=seed,
        shapes=(("scalar", ()), ("vector", (3,))),
        initial_state={name: {"step": LARGE_T, **{k: (kind, -1) for k, kind in moments.items()}, **per_param}
                       for name in ("scalar", "vector")},
    )


def long_horizon(prefix: str, hyperparameters: Mapping[str, object], seed: int, purpose: str,
                 head: int = 1, shapes: Sequence[tuple[str, tuple[int, ...]]] = (("scalar", ()),)) -> CaseBuilder:
    """A case that steps to t = 10³: ``head`` steps, the next repeated with the same gradients
    up to step 999, one more; the golden checks after each head step, 999 and 1000
    (StepInput.repeat), so it costs the size of head + 2 steps. One scalar param keeps the
    generation cheap (``shapes``: others, for a rule that acts on a matrix as a whole)."""
    return CaseBuilder(
        id=f"{prefix}/long_horizon",
        title=f"t = {LONG_HORIZON} by stepping",
        purpose=purpose,
        hyperparameters=hyperparameters,
        grad_exponents=[0] * head + [-1, 0],
        seed=seed,
        shapes=shapes,
        repeats={head + 1: LONG_HORIZON - head - 1},
    )


@dataclass
class CaseBuilder:
    """Builds a :class:`CaseDesign` from a compact description.

    ``grad_exponents[s]`` is the binary exponent of the gradients at step ``s`` (one per step,
    so a case can make gradients shrink, as AMSGrad cases need). ``no_grad`` maps a param name
    to the (1-based) steps on which its grad is ``None``. ``changes`` maps a step to the
    hyperparameter changes applied before it. ``groups`` splits the params into param groups,
    each with its own overrides of ``hyperparameters``.
    """

    id: str
    title: str
    purpose: str
    hyperparameters: Mapping[str, object]
    grad_exponents: Sequence[int]
    seed: int
    param_exponent: int = 0
    shapes: Sequence[tuple[str, tuple[int, ...]]] = DEFAULT_SHAPES
    groups: Sequence[tuple[Sequence[str], Mapping[str, object]]] | None = None
    no_grad: Mapping[str, Sequence[int]] = field(default_factory=dict)
    changes: Mapping[int, Sequence[HyperparameterChange]] = field(default_factory=dict)
    reload_before: Sequence[int] = ()
    constant_grad: bool = False
    features: Sequence[str] = ()
    # sparse gradients: each step lists this many entries per param (some repeated, see below)
    sparse_entries: int | None = None
    # of those, this many repeat an index already listed; with cancel, a repeat negates it
    repeated: int = 0
    cancel: bool = False
    # step -> how many times it is taken (StepInput.repeat): long horizons
    repeats: Mapping[int, int] = field(default_factory=dict)
    # param -> state name -> a count, ("signed" or "positive", the binary exponent) of random values
    # one per element, or an exact float, one value for the param (CaseDesign.initial_state)
    initial_state: Mapping[str, Mapping[str, int | float | tuple[str, int]]] = field(default_factory=dict)

    def _sparse(self, rng: random.Random, shape: Sequence[int], exponent: int) -> SparseGrad:
        n = math.prod(shape)
        flat = rng.sample(range(n), self.sparse_entries - self.repeated)
        values = [dyadic(rng, exponent) for _ in flat]
        for k in range(self.repeated):
            flat.append(flat[k])
            values.append(-values[k] if self.cancel else dyadic(rng, exponent))
        indices = tuple(tuple(int(i) for i in divmod_all(f, shape)) for f in flat)
        return SparseGrad(indices, tuple(values))

    def build(self, defaults: Mapping[str, object]) -> CaseDesign:
        rng = random.Random(self.seed)
        params = tuple(
            ParamInput(name, tuple(shape), tensor_values(rng, shape, self.param_exponent))
            for name, shape in self.shapes
        )
        steps = []
        first = {p.name: tensor_values(rng, p.shape, self.grad_exponents[0]) for p in params}
        for s, exponent in enumerate(self.grad_exponents, start=1):
            grads: dict[str, tuple[float, ...] | None] = {}
            for p in params:
                if s in self.no_grad.get(p.name, ()):
                    grads[p.name] = None
                elif self.constant_grad:
                    grads[p.name] = first[p.name]
                elif self.sparse_entries is not None:
                    grads[p.name] = self._sparse(rng, p.shape, exponent)
                else:
                    grads[p.name] = tensor_values(rng, p.shape, exponent)
            steps.append(
                StepInput(
                    grads=grads,
                    changes=tuple(self.changes.get(s, ())),
                    reload_before=s in self.reload_before,
                    repeat=self.repeats.get(s, 1),
                )
            )
        base = {**defaults, **self.hyperparameters}
        if self.groups is None:
            groups = (GroupInput(tuple(p.name for p in params), base),)
        else:
            groups = tuple(GroupInput(tuple(names), {**base, **over}) for names, over in self.groups)
        injected = {
            name: {key: spec if isinstance(spec, int) else (spec,) if isinstance(spec, float) else
                   tensor_values(rng, next(p.shape for p in params if p.name == name), spec[1], positive=spec[0] == "positive")
                   for key, spec in by_state.items()}
            for name, by_state in self.initial_state.items()
        }
        features = set(self.features)
        if injected:
            features.add("state_injection")
        if self.sparse_entries is not None:
            features.add("sparse_grad")
            if self.repeated:
                features.add("repeated_indices")
        if self.no_grad:
            features.add("grad_none")
        if self.changes:
            features.add("hyperparameter_change")
        if self.reload_before:
            features.add("state_dict_resume")
        if len(groups) > 1:
            features.add("param_groups")
        if self.repeats:
            features.add("long_horizon")
        return CaseDesign(
            id=self.id,
            title=self.title,
            purpose=self.purpose,
            features=tuple(sorted(features)),
            params=params,
            groups=groups,
            steps=tuple(steps),
            initial_state=injected,
        )


@dataclass
class ZerosCaseBuilder(CaseBuilder):
    """A :class:`CaseBuilder` that can zero a whole tensor: ``zero_params``, params whose initial
    values are all 0 (‖θ‖ = 0 at their first step); ``zero_grads[name]``, the (1-based) steps on which
    the param's gradient is all 0 (‖g‖ = 0). A rule's guard on a zero norm or sum
    (LARS's trust ratio, Prodigy's S = 0) is stood on this way."""

    zero_params: tuple[str, ...] = ()
    zero_grads: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def build(self, defaults: Mapping[str, object]) -> CaseDesign:
        design = super().build(defaults)
        params = tuple(replace(p, values=(0.0,) * len(p.values)) if p.name in self.zero_params else p
                       for p in design.params)
        steps = tuple(replace(st, grads={k: (0.0,) * len(x) if x is not None and s in self.zero_grads.get(k, ()) else x
                                         for k, x in st.grads.items()})
                      for s, st in enumerate(design.steps, start=1))
        return replace(design, params=params, steps=steps)
