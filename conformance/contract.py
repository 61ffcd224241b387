"""The optimizer contract a training loop relies on, beyond the numbers of one trajectory.

Each check drives a fresh torch candidate through one piece of the ``torch.optim.Optimizer``
protocol (``zero_grad``, ``step(closure)``, ``add_param_group``, ``state_dict``, hooks, ...) and
returns ``None`` when the contract holds. A broken contract raises :class:`ContractBroken` with a
message ``contract <name> broken: <what happened>``; a check the candidate or the spec cannot
express raises :class:`ContractSkipped` with the reason.

The numbers come from one of the spec's golden cases (its params, settings and gradients): the
checks compare the candidate with itself, run two ways that must agree. Where the two runs do the
same operations in the same order (a state_dict round trip, a deepcopy, a param without a
gradient, an added group) they must agree bit for bit; where the layout of the tensors differs
(strided or 0-d params, a complex param and its ``view_as_real`` twin, a tensor lr) they must
agree within the case's golden tolerance.

Every optimizer a check makes is built as for the golden cases (:meth:`Candidate.build`): by the
conftest hook ``pytest_optimizer_conformance_build`` when one is implemented (handed every setting
under torch's name, as the check sets it), else the target (class or factory) called with the
settings it accepts.

torch is imported when a check runs, never at import time.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .candidates import Candidate
from .golden import Case, Spec
from .scoring import exc_line
from .tolerance import tolerance


class ContractBroken(AssertionError):
    """The candidate breaks a contract: the message says which and how."""


class ContractSkipped(Exception):
    """The check cannot run for this candidate/spec (the message says why)."""


@dataclass
class Check:
    name: str
    title: str
    fn: Callable[[Ctx], str | None]


# -- the context of one check: a golden case turned into tensors --------------------------------
def _eligible(case: Case) -> bool:
    if getattr(case, "closed_loop", False) or len(case.groups) != 1:
        return False
    if getattr(case, "initial_state", None) or case.n_steps > 20:  # a resumed or long-horizon case
        return False
    for s in case.steps:
        if s.changes or s.reload_before:
            return False
        if any(g is None or not isinstance(g, np.ndarray) for g in s.grads.values()):
            return False
    return case.n_steps >= 2


def base_case(cand: Candidate, spec: Spec, dtype: str) -> Case:
    """The case the checks take their numbers from: one group, dense gradients on every step, no
    hyperparameter change, the candidate able to run it; among those the one using most features
    (so that the optimizer keeps state: momentum, amsgrad, ...)."""
    cases = [c for c in spec.cases if _eligible(c) and not cand.unsupported(spec, c, dtype)]
    if not cases:
        raise ContractSkipped(f"spec {spec.id!r} has no case with one group and dense gradients on every step "
                              "that the candidate can run")
    return max(cases, key=lambda c: (len(c.features), -spec.cases.index(c)))


class Ctx:
    """One check's view of the candidate: fresh params, settings and gradients of the base case."""

    def __init__(self, cand: Candidate, spec: Spec, dtype: str, device: str):
        import torch

        self.torch = torch
        self.cand, self.spec = cand, spec
        self.dtype_name = dtype
        self.dtype = getattr(torch, dtype)
        self.device = torch.device(device)
        self.device_name = device
        self.case = base_case(cand, spec, dtype)
        hps = self.case.groups[0].hyperparameters
        # a conftest hook builds from every setting under torch's names (as for the golden cases);
        # the default construction takes those the target accepts
        self.settings = dict(hps) if cand.hooked() else cand.settings(spec, hps)
        self.names = [p.name for p in self.case.params]
        self.shapes = {p.name: p.shape for p in self.case.params}
        self.n = self.case.n_steps
        self.k = max(1, self.n // 2)  # mid-trajectory

    # tensors
    def initial(self, name: str) -> np.ndarray:
        return next(p.initial for p in self.case.params if p.name == name)

    def tensor(self, values: np.ndarray, shape: tuple[int, ...]):
        return self.torch.tensor(values, dtype=self.dtype, device=self.device).reshape(shape)

    def params(self, names: list[str] | None = None) -> dict[str, Any]:
        return {n: self.tensor(self.initial(n), self.shapes[n]).requires_grad_(True) for n in names or self.names}

    def grad(self, name: str, t: int, shape: tuple[int, ...] | None = None):
        return self.tensor(self.case.steps[t].grads[name], self.shapes[name] if shape is None else shape)

    def feed(self, params: dict[str, Any], t: int) -> None:
        for name, p in params.items():
            p.grad = self.grad(name, t, tuple(p.shape))

    def tol(self, name: str, t: int) -> np.ndarray:
        """The golden tolerance of param ``name`` after step t+1 (flat)."""
        return tolerance(self.case.bound[name], self.dtype_name, self.case.bound_fixed.get(name))[t]

    # optimizers
    def construct(self, groups: list[tuple[list[Any], dict[str, Any]]]):
        """The candidate over these param groups, built as for the golden cases: by the conftest
        hook when one is implemented (every setting under torch's name), else (or when it returns
        None) the target called with the settings it accepts and ``--optimizer-kwargs``.
        Exceptions propagate; a case the candidate cannot express is a ContractSkipped."""
        from .candidates import CaseSkipped

        full = [{"params": list(ps), **s} for ps, s in groups]

        def default():
            built = [{"params": list(ps), **self.cand.settings(self.spec, s)} for ps, s in groups]
            first = {k: v for k, v in built[0].items() if k != "params"}
            return self.cand.target(built, **{**first, **self.cand.kwargs})

        try:
            return self.cand.build(self.spec, self.case, full, dict(groups[0][1]), self.dtype_name,
                                   self.device_name, default)
        except CaseSkipped as exc:
            raise ContractSkipped(str(exc)) from None

    def build(self, groups: list[tuple[list[Any], dict[str, Any]]]):
        try:
            return self.construct(groups)
        except ContractSkipped:
            raise
        except Exception as exc:
            raise Failure(f"constructing the candidate raised {_exc(exc)}") from exc

    def new_group(self, params: list[Any], settings: dict[str, Any]) -> dict[str, Any]:
        """The group dict ``add_param_group`` is given for these params and (torch-named)
        settings. A hooked candidate may name its settings otherwise: its group is the one the
        hook builds for them (taken from a throwaway optimizer over the same params)."""
        if not self.cand.hooked():
            return {"params": list(params), **settings}
        return dict(self.build([(params, settings)]).param_groups[0])

    def opt(self, params: dict[str, Any], settings: dict[str, Any] | None = None):
        return self.build([(list(params.values()), dict(self.settings if settings is None else settings))])

    def run(self, opt, params: dict[str, Any], steps: range) -> None:
        for t in steps:
            self.feed(params, t)
            opt.step()

    def scaled(self, factor: float) -> dict[str, Any]:
        """The settings with lr scaled (a power of two: exact)."""
        if "lr" not in self.settings:
            raise ContractSkipped("the candidate takes no lr setting")
        return {**self.settings, "lr": float(self.settings["lr"]) * factor}


class Failure(Exception):
    """Raised inside a check: the check's contract is broken (message without the prefix)."""


def _exc(exc: BaseException) -> str:
    return exc_line(exc)


def _np(t) -> np.ndarray:
    import torch

    if t.is_complex():
        t = torch.view_as_real(t)
    return t.detach().to("cpu", torch.float64).numpy().copy()


def _state(opt, p) -> dict[str, Any]:
    """A snapshot of ``opt.state[p]``: tensors cloned, everything else as is."""
    import torch

    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
            for k, v in opt.state.get(p, {}).items()}


def _same_state(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """Why two state snapshots differ (bit for bit), or None."""
    import torch

    if set(a) != set(b):
        return f"state keys {sorted(a)} vs {sorted(b)}"
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or not torch.equal(x.cpu(), y.cpu()):
                return f"state {k!r}: {_short(x)} vs {_short(y)}"
        elif isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            xv = x.item() if isinstance(x, torch.Tensor) else x
            yv = y.item() if isinstance(y, torch.Tensor) else y
            if xv != yv:
                return f"state {k!r}: {xv!r} vs {yv!r}"
        elif x != y:
            return f"state {k!r}: {x!r} vs {y!r}"
    return None


def _short(t) -> str:
    v = _np(t).reshape(-1)
    body = ", ".join(f"{x:.17g}" for x in v[:4])
    return f"[{body}{', ...' if v.size > 4 else ''}]"


def _exact(what: str, actual, expected) -> None:
    """Bit-for-bit equality of two tensors, or a Failure naming the first difference."""
    a, e = _np(actual).reshape(-1), _np(expected).reshape(-1)
    if a.shape != e.shape:
        raise Failure(f"{what}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}")
    diff = np.flatnonzero(~((a == e) | (np.isnan(a) & np.isnan(e))))
    if diff.size:
        i = int(diff[0])
        raise Failure(f"{what}: element {i} is {a[i]!r}, expected exactly {e[i]!r}")


def _within(what: str, actual, expected, tol: np.ndarray) -> None:
    """Agreement within the golden tolerance (per element), or a Failure."""
    a, e = _np(actual).reshape(-1), _np(expected).reshape(-1)
    if a.shape != e.shape:
        raise Failure(f"{what}: {a.size} elements vs {e.size}")
    err = np.where(np.isfinite(a), np.abs(a - e), np.inf)
    bad = np.flatnonzero(err > tol)
    if bad.size:
        i = int(bad[np.argmax(err[bad] / tol[bad])])
        raise Failure(f"{what}: element {i} is {a[i]!r}, expected {e[i]!r} (|error| {err[i]:.3g} > "
                      f"tolerance {tol[i]:.3g})")


def _step(opt, what: str = "step()", closure=None):
    try:
        return opt.step() if closure is None else opt.step(closure)
    except (Failure, ContractSkipped):
        raise
    except Exception as exc:
        raise Failure(f"{what} raised {_exc(exc)}") from exc


# -- the checks ---------------------------------------------------------------------------------
def check_zero_grad(ctx: Ctx) -> None:
    params = ctx.params()
    opt = ctx.opt(params)
    ctx.feed(params, 0)
    opt.zero_grad(set_to_none=True)
    kept = [n for n, p in params.items() if p.grad is not None]
    if kept:
        raise Failure(f"zero_grad(set_to_none=True) left p.grad set for {', '.join(kept)} (expected None)")
    ctx.feed(params, 0)
    opt.zero_grad(set_to_none=False)
    for n, p in params.items():
        if p.grad is None:
            raise Failure(f"zero_grad(set_to_none=False) set p.grad of {n} to None (expected zeros)")
        if tuple(p.grad.shape) != tuple(p.shape) or bool((p.grad != 0).any()):
            raise Failure(f"zero_grad(set_to_none=False) left p.grad of {n} = {_short(p.grad)} (expected zeros)")
    ctx.feed(params, 0)
    opt.zero_grad()
    if any(p.grad is not None for p in params.values()):
        raise Failure("zero_grad() (default set_to_none=True) left p.grad set (expected None)")


def check_step_closure(ctx: Ctx) -> None:
    torch = ctx.torch
    params = ctx.params()
    opt = ctx.opt(params)
    calls: list[bool] = []
    loss = torch.tensor(1.25, dtype=ctx.dtype, device=ctx.device)

    def closure():
        calls.append(torch.is_grad_enabled())
        ctx.feed(params, 0)
        return loss

    out = _step(opt, "step(closure)", closure)
    if len(calls) != 1:
        raise Failure(f"step(closure) called the closure {len(calls)} times (expected once)")
    if not calls[0]:
        raise Failure("step(closure) called the closure with grad disabled (expected torch.enable_grad())")
    if out is None:
        raise Failure("step(closure) returned None, not the closure's loss")
    if out is not loss and not (isinstance(out, torch.Tensor) and torch.equal(out, loss)):
        raise Failure(f"step(closure) returned {out!r}, not the closure's loss {loss!r}")
    ref = ctx.params()
    ref_opt = ctx.opt(ref)
    ctx.run(ref_opt, ref, range(1))
    for n in ctx.names:
        _exact(f"after step(closure), {n} (vs step() with the same gradient)", params[n], ref[n])


def check_grad_none(ctx: Ctx) -> None:
    params = ctx.params()
    opt = ctx.opt(params)
    ctx.run(opt, params, range(ctx.k))
    idle = ctx.names[-1]
    before, state = params[idle].detach().clone(), _state(opt, params[idle])
    ctx.feed(params, ctx.k)
    params[idle].grad = None
    _step(opt)
    _exact(f"{idle} (grad None on step {ctx.k + 1}) moved", params[idle], before)
    why = _same_state(_state(opt, params[idle]), state)
    if why:
        raise Failure(f"the state of {idle} (grad None on step {ctx.k + 1}) advanced: {why}")
    if params[idle].grad is not None:
        raise Failure(f"step() set p.grad of {idle}, which had no gradient")


def check_add_param_group(ctx: Ctx) -> None:
    if len(ctx.names) < 2:
        raise ContractSkipped("the base case has a single param")
    first, late = ctx.names[:-1], ctx.names[-1]
    s2 = ctx.scaled(0.5)
    params = ctx.params()
    opt = ctx.build([([params[n] for n in first], dict(ctx.settings))])
    ctx.run(opt, {n: params[n] for n in first}, range(ctx.k))
    group = ctx.new_group([params[late]], s2)
    try:
        opt.add_param_group(group)
    except Exception as exc:
        raise Failure(f"add_param_group raised {_exc(exc)}") from exc
    if len(opt.param_groups) != 2 or opt.param_groups[1].get("lr") != group.get("lr"):
        raise Failure("after add_param_group, param_groups does not hold the new group with its lr")
    for t in range(ctx.k, ctx.n):
        ctx.feed(params, t)
        _step(opt)
    # references: the old group alone, the new param alone from its first step on
    ref = ctx.params(first)
    ref_opt = ctx.build([(list(ref.values()), dict(ctx.settings))])
    ctx.run(ref_opt, ref, range(ctx.n))
    for n in first:
        _exact(f"{n} (first group) after add_param_group", params[n], ref[n])
    alone = ctx.params([late])
    alone_opt = ctx.build([(list(alone.values()), dict(s2))])
    for t in range(ctx.k, ctx.n):
        ctx.feed(alone, t)
        alone_opt.step()
    _exact(f"{late} (added mid-run with lr={s2['lr']:g}, stepped {ctx.n - ctx.k} times) vs the same "
           "group in a fresh optimizer", params[late], alone[late])


def check_per_group(ctx: Ctx) -> None:
    """Each group steps with its own settings (the golden param_groups cases check the numbers;
    this checks every setting that can differ, with each group against itself alone)."""
    if len(ctx.names) < 2:
        raise ContractSkipped("the base case has a single param")
    first, second = ctx.names[:-1], ctx.names[-1]
    s2 = ctx.scaled(0.25)
    if "weight_decay" in ctx.settings or (not ctx.cand.hooked() and ctx.cand.accepts("weight_decay")):
        s2["weight_decay"] = float(ctx.settings.get("weight_decay", 0.0) or 0.0) + 0.0625
    params = ctx.params()
    opt = ctx.build([([params[n] for n in first], dict(ctx.settings)), ([params[second]], s2)])
    ctx.run(opt, params, range(ctx.n))
    ref = ctx.params(first)
    ctx.run(ctx.build([(list(ref.values()), dict(ctx.settings))]), ref, range(ctx.n))
    for n in first:
        _exact(f"{n} (group 0) vs group 0 alone", params[n], ref[n])
    alone = ctx.params([second])
    ctx.run(ctx.build([(list(alone.values()), dict(s2))]), alone, range(ctx.n))
    shown = ", ".join(f"{k}={v:g}" for k, v in s2.items() if k in ("lr", "weight_decay"))
    _exact(f"{second} (group 1: {shown}) vs group 1 alone", params[second], alone[second])


def check_lr_scheduler(ctx: Ctx) -> None:
    torch = ctx.torch
    if "lr" not in ctx.settings:
        raise ContractSkipped("the candidate takes no lr setting")
    params = ctx.params()
    opt = ctx.opt(params)
    try:
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    except Exception as exc:
        raise Failure(f"StepLR(optimizer) raised {_exc(exc)}") from exc
    # reference: the same lr sequence set by hand into param_groups, each from a fresh optimizer
    ref = ctx.params()
    ref_opt = ctx.opt(ref)
    const = ctx.params()
    const_opt = ctx.opt(const)
    lr = float(ctx.settings["lr"])
    for t in range(ctx.n):
        ctx.feed(params, t)
        _step(opt)
        sched.step()
        ref_opt.param_groups[0]["lr"] = lr * 0.5**t
        ctx.feed(ref, t)
        ref_opt.step()
        ctx.feed(const, t)
        const_opt.step()
    if opt.param_groups[0]["lr"] != lr * 0.5**ctx.n:
        raise Failure(f"after {ctx.n} StepLR steps param_groups[0]['lr'] is {opt.param_groups[0]['lr']!r}")
    moved = any(not torch.equal(ref[n], const[n]) for n in ctx.names)
    for n in ctx.names:
        _exact(f"{n} under StepLR(gamma=0.5) vs lr set by hand", params[n], ref[n])
    if not moved:
        raise ContractSkipped("this spec's trajectory does not depend on lr (nothing to check)")


def check_tensor_lr(ctx: Ctx) -> None:
    torch = ctx.torch
    if "lr" not in ctx.settings:
        raise ContractSkipped("the candidate takes no lr setting")
    params = ctx.params()
    s = {**ctx.settings, "lr": torch.tensor(float(ctx.settings["lr"]), dtype=torch.float64)}
    try:
        opt = ctx.construct([(list(params.values()), s)])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ContractSkipped(f"the candidate does not accept a tensor lr: {exc}") from None
    ref = ctx.params()
    ref_opt = ctx.opt(ref)
    for t in range(ctx.n):
        ctx.feed(params, t)
        _step(opt, f"step() with lr=torch.tensor({float(ctx.settings['lr'])!r})")
        ctx.feed(ref, t)
        ref_opt.step()
        for n in ctx.names:
            _within(f"{n} after step {t + 1} with a tensor lr vs a float lr", params[n], ref[n], ctx.tol(n, t))


def _continue_exactly(ctx: Ctx, what: str, opt, params, other, other_params) -> None:
    for t in range(ctx.k, ctx.n):
        ctx.feed(params, t)
        _step(opt)
        ctx.feed(other_params, t)
        _step(other, f"step() of the {what}")
        for n in ctx.names:
            _exact(f"{n} after step {t + 1}: the {what} vs the original", other_params[n], params[n])
            why = _same_state(_state(other, other_params[n]), _state(opt, params[n]))
            if why:
                raise Failure(f"after step {t + 1}, the {what}'s state of {n} differs from the original's: {why}")


def check_state_dict(ctx: Ctx) -> None:
    torch = ctx.torch
    params = ctx.params()
    opt = ctx.opt(params)
    ctx.run(opt, params, range(ctx.k))
    try:
        buf = io.BytesIO()
        torch.save(opt.state_dict(), buf)
        buf.seek(0)
        sd = torch.load(buf)
    except Exception as exc:
        raise Failure(f"state_dict() through torch.save/torch.load raised {_exc(exc)}") from exc
    fresh = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    other = ctx.opt(fresh)
    try:
        other.load_state_dict(sd)
    except Exception as exc:
        raise Failure(f"load_state_dict into a fresh instance raised {_exc(exc)}") from exc
    _continue_exactly(ctx, f"fresh instance loaded from state_dict() after step {ctx.k}", opt, params, other,
                      fresh)


def check_deepcopy(ctx: Ctx) -> None:
    params = ctx.params()
    opt = ctx.opt(params)
    ctx.run(opt, params, range(ctx.k))
    try:
        other = copy.deepcopy(opt)
    except Exception as exc:
        raise Failure(f"copy.deepcopy(optimizer) raised {_exc(exc)}") from exc
    copied = [p for g in other.param_groups for p in g["params"]]
    if len(copied) != len(ctx.names):
        raise Failure(f"the copy holds {len(copied)} params, the original {len(ctx.names)}")
    mine = {n: p for n, p in zip(ctx.names, copied, strict=True)}
    for n in ctx.names:
        if mine[n] is params[n] or mine[n].data_ptr() == params[n].data_ptr():
            raise Failure(f"the copy shares the parameter tensor {n} with the original")
        for k, v in other.state.get(mine[n], {}).items():
            orig = opt.state.get(params[n], {}).get(k)
            if isinstance(v, ctx.torch.Tensor) and v.numel() and isinstance(orig, ctx.torch.Tensor) \
                    and v.data_ptr() == orig.data_ptr():
                raise Failure(f"the copy shares state {k!r} of {n} with the original")
    _continue_exactly(ctx, f"deepcopy made after step {ctx.k}", opt, params, other, mine)


def check_step_hooks(ctx: Ctx) -> None:
    params = ctx.params()
    opt = ctx.opt(params)
    calls: list[str] = []
    try:
        pre = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
        post = opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    except Exception as exc:
        raise Failure(f"register_step_pre_hook/register_step_post_hook raised {_exc(exc)}") from exc
    for t in range(ctx.n):
        ctx.feed(params, t)
        _step(opt)
        if calls != ["pre", "post"] * (t + 1):
            raise Failure(f"after {t + 1} step(s) the step hooks fired as {calls} (expected pre, post once per step)")
    pre.remove()
    post.remove()
    ctx.feed(params, 0)
    _step(opt)
    if len(calls) != 2 * ctx.n:
        raise Failure("a removed step hook still fired")


def _torch_takes_complex(ctx: Ctx) -> str | None:
    """Why torch's own class for the spec refuses complex params, or None when it takes them."""
    from .candidates import resolve

    torch = ctx.torch
    if ctx.spec.torch_class is None:
        return None  # no torch class to ask: the candidate is held to complex params
    try:
        cls = resolve(ctx.spec.torch_class)
    except Exception as exc:
        return f"{ctx.spec.torch_class} is not available: {exc}"
    p = torch.zeros(2, dtype=torch.complex128 if ctx.dtype == torch.float64 else torch.complex64,
                    requires_grad=True)
    p.grad = torch.ones_like(p)
    settings = dict(ctx.settings)  # torch-named: all of them for a hooked candidate
    kwargs = dict(ctx.cand.kwargs)  # torch's own configuration where it takes them (fused=True)
    try:
        cls([p], **settings, **kwargs)
    except TypeError:
        kwargs = {}
    except Exception:
        pass
    try:
        cls([p], **settings, **kwargs).step()
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        return f"{ctx.spec.torch_class}({shown}) refuses complex params ({type(exc).__name__}: {exc})"
    return None


def check_complex(ctx: Ctx) -> None:
    torch = ctx.torch
    why = _torch_takes_complex(ctx)
    if why:
        raise ContractSkipped(why)
    name = next((n for n in ctx.names if ctx.initial(n).size % 2 == 0 and ctx.initial(n).size >= 2), None)
    if name is None:
        raise ContractSkipped("the base case has no param with an even number of elements")
    m = ctx.initial(name).size // 2
    real = ctx.tensor(ctx.initial(name), (m, 2)).requires_grad_(True)
    cplx = torch.view_as_complex(ctx.tensor(ctx.initial(name), (m, 2))).clone().requires_grad_(True)
    ro, co = ctx.opt({name: real}), ctx.opt({name: cplx})
    for t in range(ctx.n):
        real.grad = ctx.grad(name, t, (m, 2))
        cplx.grad = torch.view_as_complex(ctx.grad(name, t, (m, 2))).clone()
        _step(ro)
        _step(co, "step() on a complex param")
        _within(f"complex {name} (as view_as_real) after step {t + 1} vs its real twin", cplx, real,
                ctx.tol(name, t))


def check_layout(ctx: Ctx) -> None:
    """Strided and transposed views of a bigger tensor, and 0-d params, step like contiguous ones."""
    torch = ctx.torch
    sentinel = 7.0
    views, bases, contiguous = {}, {}, {}
    for n in ctx.names:
        init, shape = ctx.initial(n), ctx.shapes[n]
        if len(shape) == 0:
            views[n] = ctx.tensor(init, ()).requires_grad_(True)  # 0-d
            contiguous[n] = ctx.tensor(init, (1,)).requires_grad_(True)
            continue
        if len(shape) >= 2:  # a transposed view of a bigger tensor
            big = torch.full((shape[-1] + 1, *shape[:-1]), sentinel, dtype=ctx.dtype, device=ctx.device)
            big[: shape[-1]] = ctx.tensor(init, shape).movedim(-1, 0)
            view = big[: shape[-1]].movedim(0, -1)
        else:  # a strided slice
            big = torch.full((2 * shape[0] + 1,), sentinel, dtype=ctx.dtype, device=ctx.device)
            big[1::2] = ctx.tensor(init, shape)
            view = big[1::2]
        views[n] = view.detach().requires_grad_(True)  # a leaf sharing big's storage
        bases[n] = (big, big.detach().clone(), views[n])
        contiguous[n] = ctx.tensor(init, shape).requires_grad_(True)
    if not bases and not any(len(s) == 0 for s in ctx.shapes.values()):
        raise ContractSkipped("the base case has no param to lay out differently")
    vo, co = ctx.opt(views), ctx.opt(contiguous)
    for t in range(ctx.n):
        ctx.feed(views, t)
        ctx.feed(contiguous, t)
        _step(vo, "step() on non-contiguous/0-d params")
        _step(co)
        for n in ctx.names:
            kind = "0-d" if len(ctx.shapes[n]) == 0 else "non-contiguous"
            if tuple(views[n].shape) != tuple(ctx.shapes[n]):
                raise Failure(f"{kind} {n} changed shape to {tuple(views[n].shape)}")
            _within(f"{kind} {n} after step {t + 1} vs the same param contiguous", views[n], contiguous[n],
                    ctx.tol(n, t))
    for n, (big, before, view) in bases.items():
        probe = torch.zeros_like(big, dtype=torch.bool)
        probe.as_strided(view.shape, view.stride(), view.storage_offset() - big.storage_offset()).fill_(True)
        outside = ~probe
        if not torch.equal(big.detach()[outside], before[outside]):
            raise Failure(f"stepping the view {n} wrote into elements of its base tensor outside the view")


def check_requires_grad_false(ctx: Ctx) -> None:
    if len(ctx.names) < 2:
        raise ContractSkipped("the base case has a single param")
    frozen = ctx.names[-1]
    params = ctx.params()
    params[frozen].requires_grad_(False)
    before = params[frozen].detach().clone()
    opt = ctx.opt(params)
    state = _state(opt, params[frozen])  # torch's Adagrad creates its state in __init__
    trained = {n: p for n, p in params.items() if n != frozen}
    for t in range(ctx.n):
        ctx.feed(trained, t)
        _step(opt)
    _exact(f"{frozen} (requires_grad=False) moved", params[frozen], before)
    if params[frozen].grad is not None:
        raise Failure(f"step() gave {frozen} (requires_grad=False) a gradient")
    if params[frozen].requires_grad:
        raise Failure(f"step() turned on requires_grad of {frozen}")
    why = _same_state(_state(opt, params[frozen]), state)
    if why:
        raise Failure(f"the state of {frozen} (requires_grad=False) advanced: {why}")
    ref = ctx.params([n for n in ctx.names if n != frozen])
    ctx.run(ctx.opt(ref), ref, range(ctx.n))
    for n in ref:
        _exact(f"{n} next to a frozen param vs without it", params[n], ref[n])


CHECKS: list[Check] = [
    Check("zero_grad", "zero_grad(set_to_none=True) leaves grads None, set_to_none=False zeroes them",
          check_zero_grad),
    Check("step_closure", "step(closure) calls the closure once, with grad enabled, and returns its loss",
          check_step_closure),
    Check("grad_none", "a param whose grad is None on a step is untouched and its state does not advance",
          check_grad_none),
    Check("add_param_group", "a group added mid-run steps with its own settings from then on",
          check_add_param_group),
    Check("per_group", "each param group steps with its own lr and weight_decay", check_per_group),
    Check("lr_scheduler", "an lr changed by torch.optim.lr_scheduler.StepLR between steps takes effect",
          check_lr_scheduler),
    Check("tensor_lr", "lr=torch.tensor(lr) gives the float-lr trajectory (where the class accepts it)",
          check_tensor_lr),
    Check("state_dict", "state_dict → torch.save/torch.load → load_state_dict into a fresh instance "
          "mid-run continues exactly", check_state_dict),
    Check("deepcopy", "copy.deepcopy of the optimizer continues exactly and independently", check_deepcopy),
    Check("step_hooks", "step pre/post hooks fire once per step", check_step_hooks),
    Check("complex", "a complex param steps like its view_as_real twin (where torch takes complex)",
          check_complex),
    Check("layout", "non-contiguous (strided, transposed) and 0-d params step like contiguous ones",
          check_layout),
    Check("requires_grad_false", "params with requires_grad=False are left alone", check_requires_grad_false),
]
BY_NAME = {c.name: c for c in CHECKS}


def applies(cand: Candidate, spec: Spec) -> bool:
    """Whether the contract checks run for this candidate and spec (torch, not closed loop)."""
    return cand.api == "torch" and not any(getattr(c, "closed_loop", False) for c in spec.cases)


def run_check(name: str, cand: Candidate, spec: Spec, dtype: str, device: str = "cpu") -> str | None:
    """Run one check: None when the contract holds; raises ContractBroken (message
    ``contract <name> broken: ...``) or ContractSkipped."""
    check = BY_NAME[name]
    if cand.api != "torch":
        raise ContractSkipped("the optimizer contract is checked for torch candidates only")
    try:
        ctx = Ctx(cand, spec, dtype, device)
        why = check.fn(ctx)
    except ContractSkipped:
        raise
    except Failure as exc:
        raise ContractBroken(f"contract {name} broken: {exc}") from None
    except Exception as exc:
        raise ContractBroken(f"contract {name} broken: the check raised {_exc(exc)}") from None
    if why:
        raise ContractBroken(f"contract {name} broken: {why}")
    return None
