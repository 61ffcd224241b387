"""Candidates: what ``--optimizer`` names, and what it can express.

Two interfaces are understood:

* **torch** — any ``torch.optim.Optimizer`` subclass, or a factory returning one. It is built as
  ``Cls(param_groups, **first_group_settings, **optimizer_kwargs)`` with one fresh set of
  parameters per case; gradients are fed through ``p.grad``; ``optimizer.state[p]`` is compared
  wherever it uses torch's state names.
* **numpy** — ``Cls(params: list[np.ndarray], **hyperparameters)`` whose ``step(grads)`` updates
  the arrays in place or returns the new list; ``grads[i]`` is ``None`` when a param has no
  gradient on that step, and a sparse gradient (SparseAdam) is a tuple ``(indices, values)`` in
  torch's COO layout: ``indices`` an int array of shape (ndim, nnz), possibly repeating an index
  (the values add up), ``values`` of shape (nnz,). One instance per param group (every spec here is elementwise, so groups
  are independent). A hyperparameter change is ``setattr(opt, name, value)``; a resume case needs
  ``state_dict()``/``load_state_dict()``.
* **functional** (optax-shaped) — a factory or class ``make(**hyperparameters)`` returning an
  object with ``init(params) -> state`` and ``update(grads, state, params) -> (new_params,
  new_state)`` over lists of NumPy arrays; one state per param group. A hyperparameter change
  rebuilds the object through ``make`` with the new settings (the state is kept); a resume case
  continues from a deep copy of the state.

A factory's keyword arguments carry torch's names (``betas``, ``eps``, ``weight_decay``): it is
where a third-party signature (``beta1``/``beta2``, ``epsilon``, ``decay``) is mapped. A
conftest.py may instead build the candidate itself, per case, through the
``pytest_optimizer_conformance_build`` hook (:mod:`optimizer_conformance.conformance.hookspecs`).
The API is detected (a factory is probed once); a class or factory may declare it with an
attribute ``conformance_api = "torch" | "numpy" | "functional"``.

A hyperparameter the candidate does not accept is left out when the case sets it to its neutral
value (feature off) or to the spec's default (a library without the knob is then checked on the
behaviour it hard-wires: optax's ``nadam`` and Keras's ``Nadam`` take no ``momentum_decay``, and
the cases at torch's ψ = 0.004 show whether they follow it); otherwise the case is skipped with
that reason.

How a case drives each interface is in :mod:`optimizer_conformance.conformance.drivers` (the CUDA-graph
driver in :mod:`~optimizer_conformance.conformance.cuda_graph`). Closed-loop specs (LBFGS) drive the
candidate through ``step(closure)`` instead: see :mod:`optimizer_conformance.conformance.closed_loop`
for both protocols.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .golden import Case, Spec
from .names import AmbiguousName, NameMap, explicit_parameters, name_map


class UsageError(Exception):
    """A bad command line: reported as one line, never a traceback."""


class CaseSkipped(Exception):
    """The candidate cannot express this case (the reason says why)."""


def resolve(path: str, search: tuple[str, ...] = ()) -> Any:
    """``pkg.mod.Name`` or ``pkg.mod:factory`` → the object.

    ``search``: folders made importable first, as ``python -m pytest`` makes the current
    directory importable (the plugin passes the invocation directory and pytest's rootdir), so
    ``pytest --optimizer=scratch_adam.Adam`` finds ``./scratch_adam.py``. Any exception the module
    raises while importing is a usage error naming it, never a traceback."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise UsageError(f"--optimizer={path!r}: expected a dotted path such as torch.optim.Adam or pkg.mod:factory")
    for folder in reversed(search):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise UsageError(f"--optimizer={path!r}: importing module {module_name!r} failed: "
                             f"{_one_line(exc)}") from None
        looked = f" (looked in {', '.join(dict.fromkeys(search))} and sys.path)" if search else ""
        raise UsageError(
            f"--optimizer={path!r}: cannot import module {module_name!r}: no module named "
            f"{exc.name!r}{looked}; run pytest in the folder that holds {exc.name.split('.')[0]}.py "
            f"(or its package), or add that folder to PYTHONPATH") from None
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # the module's own code failed
        raise UsageError(f"--optimizer={path!r}: importing module {module_name!r} raised "
                         f"{_one_line(exc)}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"--optimizer={path!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise UsageError(f"--optimizer={path!r}: {type(obj).__name__} object is not callable")
    return obj


def _one_line(exc: BaseException) -> str:
    """``TypeName: first line of the message`` (a SyntaxError with its file and line)."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}, line {exc.lineno})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _is_torch_optimizer_class(obj: Any) -> bool:
    # a torch optimizer's module has imported torch: a candidate that has not costs no torch import
    torch = sys.modules.get("torch")
    return torch is not None and inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)


APIS = ("torch", "numpy", "functional", "optax", "keras")
# APIs whose candidates compute in NumPy-like dtypes only and cannot run closed-loop specs
ARRAY_APIS = ("numpy", "functional", "optax", "keras")


def _is_functional(obj: Any) -> bool:
    """An optax-shaped transformation (or its class): ``init`` and ``update``, no ``step``."""
    return callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None)) \
        and not hasattr(obj, "step")


def _is_keras_optimizer_class(obj: Any) -> bool:
    keras = sys.modules.get("keras")  # a Keras optimizer's module has imported keras
    try:
        return keras is not None and inspect.isclass(obj) and issubclass(obj, keras.optimizers.Optimizer)
    except AttributeError:
        return False


def detect_api(obj: Any) -> str:
    declared = getattr(obj, "conformance_api", None)
    if declared in APIS:
        return declared
    if declared is not None:
        raise UsageError(f"{getattr(obj, '__name__', obj)!r} declares conformance_api={declared!r}: "
                         f"expected one of {', '.join(APIS)}")
    if _is_torch_optimizer_class(obj):
        return "torch"
    inner = obj.func if isinstance(obj, functools.partial) else obj  # optax.nadam = partial(adam, ...)
    root = (getattr(inner, "__module__", "") or "").split(".")[0]
    if root == "optax":  # optax.adam, optax.chain-building factories of optax itself
        return "optax"
    if root == "keras" or _is_keras_optimizer_class(obj):
        return "keras"
    if inspect.isclass(obj):
        return "functional" if _is_functional(obj) else "numpy"
    # A factory: ask it for an optimizer over one throwaway parameter and look at what it returns
    # (given a list of tensors, then a list of param groups as the harness passes them).
    # (A class was decided above without importing torch; a factory may import it lazily.)
    try:
        import torch

        for probe_params in ([torch.zeros(1, requires_grad=True)],
                             [{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1}]):
            try:
                if isinstance(obj(probe_params, lr=0.1), torch.optim.Optimizer):
                    return "torch"
            except Exception:
                pass
    except ImportError:
        pass
    # ... then for a functional transformation from hyperparameters alone.
    try:
        params = inspect.signature(obj).parameters
        lr = "lr" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        if _is_functional(obj(**({"lr": 0.1} if lr else {}))):
            return "functional"
    except Exception:
        pass
    return "numpy"


@dataclass
class Candidate:
    path: str
    target: Callable[..., Any]
    api: str  # "torch", "numpy", "functional", "optax" or "keras"
    kwargs: dict[str, Any] = field(default_factory=dict)
    # config.hook.pytest_optimizer_conformance_build, set by the plugin (None: no conftest hook)
    hook: Any = field(default=None, repr=False, compare=False)
    # --optimizer-args: the candidate's argument name -> torch's name (see conformance/names.py)
    args: dict[str, str] = field(default_factory=dict)
    jit: bool = True  # optax candidates: update() under jax.jit (--optimizer-no-jit: eagerly)

    @classmethod
    def from_path(cls, path: str, kwargs: dict[str, Any] | None = None, api: str = "auto",
                  search: tuple[str, ...] = ()) -> Candidate:
        target = resolve(path, search)
        api = detect_api(target) if api == "auto" else api
        return cls(path, target, api, dict(kwargs or {}))

    @property
    def name(self) -> str:
        if self.target is None:  # a candidate that lives in the candidate process (isolation.py)
            return self.info.get("name") or self.path.rpartition(".")[2].rpartition(":")[2]
        return getattr(self.target, "__name__", self.path.rpartition(".")[2])

    # what the candidate process found out (isolation.py): name, declared spec, parameters
    info: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def _signature(self) -> inspect.Signature | None:
        # asked for every hyperparameter of every case: compute once
        if not hasattr(self, "_sig"):
            try:
                self._sig = inspect.signature(self.target)
            except (TypeError, ValueError):
                self._sig = None
        return self._sig

    def names_for(self, spec: Spec) -> NameMap | None:
        """How the candidate spells the spec's hyperparameters (None: its signature is unknown, and
        torch's names are passed). Raises :class:`~.names.AmbiguousName`. In the pytest process of
        an isolated run (no target), from the keyword names the candidate process sent."""
        cache = self.__dict__.setdefault("_names", {})
        if spec.id not in cache:
            if self.target is not None:
                params, declared = explicit_parameters(self.target), getattr(self.target, "conformance_args", {})
            else:
                sent = self.info.get("parameters")
                params = None if sent is None else ({n for n in sent if n != "**"}, "**" in sent)
                declared = self.info.get("conformance_args") or {}
            cache[spec.id] = name_map(params, [hp["name"] for hp in spec.hyperparameters],
                                      {**declared, **self.args})
        return cache[spec.id]

    def accepts(self, name: str, spec: Spec | None = None) -> bool:
        names = self.names_for(spec) if spec is not None else None
        if names is not None:
            return names.maps(name)
        if self.target is None:  # isolated: the candidate process sent its parameters
            params = self.info.get("parameters")
            return params is None or name in params or "**" in params
        sig = self._signature()
        if sig is None:
            return True
        params = sig.parameters
        return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())

    def hooked(self) -> bool:
        """A conftest implements pytest_optimizer_conformance_build."""
        return self.hook is not None and bool(self.hook.get_hookimpls())

    def unsupported(self, spec: Spec, case: Case, dtype: str) -> str | None:
        """Why this candidate cannot run this case, or None."""
        if self.api in ARRAY_APIS and dtype not in ("float32", "float64"):
            return f"{self.api} candidates run in float32/float64 only, not {dtype}"
        closed = getattr(case, "closed_loop", False)
        if self.api in ("functional", "optax", "keras") and closed:
            return f"{self.api} candidates are not supported for closed-loop specs (they take no closure)"
        if self.hooked() and not closed:
            return None  # the hook decides, per case; its fallback is checked in build()
        return self.unsupported_settings(spec, case)

    def unsupported_settings(self, spec: Spec, case: Case) -> str | None:
        """Why the default construction cannot express this case's settings, or None."""
        try:
            self.names_for(spec)
        except AmbiguousName as exc:  # (a hooked candidate's fallback; else a usage error up front)
            return f"the default construction cannot map the candidate's arguments: {exc}"
        names = {k for g in case.groups for k in g.hyperparameters}
        names |= {c.name for s in case.steps for c in s.changes}
        for name in sorted(names):
            if self.accepts(name, spec) or name in self.kwargs:
                continue
            values = [g.hyperparameters[name] for g in case.groups if name in g.hyperparameters]
            values += [c.value for s in case.steps for c in s.changes if c.name == name]
            off = [v for v in values if v not in self.fixed_values(spec, name)]
            if off:
                return f"candidate does not accept {name!r} (this case sets {name}={off[0]!r})"
        if self.api == "numpy" and any(s.reload_before for s in case.steps):
            probe = self.target if inspect.isclass(self.target) else None
            if probe is not None and not (hasattr(probe, "state_dict") and hasattr(probe, "load_state_dict")):
                return "NumPy candidate has no state_dict()/load_state_dict(): resume cases need them"
        return None

    @staticmethod
    def fixed_values(spec: Spec, name: str) -> list[Any]:
        """The values of a setting at which a candidate without it still runs the case: the feature
        off (its neutral value), or the spec's default (what a library without the knob should do)."""
        neutral = spec.neutral(name)
        known = any(hp["name"] == name for hp in spec.hyperparameters)
        return ([neutral] if neutral is not None else []) + ([spec.default(name)] if known else [])

    def settings(self, spec: Spec, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """The hyperparameters passed to the candidate, under its own names: those it accepts
        (the others are neutral in this case, or the case was skipped)."""
        names = self.names_for(spec)
        if names is None:
            return dict(hyperparameters)
        # a setting the candidate does not name is sent through its **kwargs, at its neutral value
        # too (a factory forwarding **kwargs to torch's AdamW must get weight_decay=0, not AdamW's
        # own 0.01), until a constructor refused the settings at their neutral value (Keras,
        # heavyball: "not recognized"); from then on those are left out (see build())
        held = spec.id in self.__dict__.setdefault("_neutral_held", set())
        sent = {k: v for k, v in hyperparameters.items()
                if not held or k not in names.via_kwargs or spec.neutral(k) is None or v != spec.neutral(k)}
        return names.translate(sent)

    def _neutral_via_kwargs(self, spec: Spec, hyperparameters: dict[str, Any]) -> list[str]:
        """The settings at their neutral value that :meth:`settings` still sends through ``**kwargs``."""
        if spec.id in self.__dict__.setdefault("_neutral_held", set()):
            return []
        try:
            names = self.names_for(spec)
        except AmbiguousName:
            return []
        return sorted(k for k in (names.via_kwargs if names else ()) if k in hyperparameters
                      and spec.neutral(k) is not None and hyperparameters[k] == spec.neutral(k))

    def turned_on_via_kwargs(self, spec: Spec, case: Case) -> list[str]:
        """The settings this case turns on (away from their neutral value) that reach the candidate
        only through its ``**kwargs``: whether it honours them is for a probe to find out (a
        ``**kwargs`` may swallow names it does not know, as pytorch_optimizer's constructors do)."""
        if self.hooked():
            return []
        try:
            names = self.names_for(spec)
        except AmbiguousName:
            return []
        if names is None:
            return []
        out = []
        for name in sorted(names.via_kwargs):
            neutral = spec.neutral(name)
            if neutral is None:
                continue
            values = [g.hyperparameters[name] for g in case.groups if name in g.hyperparameters]
            values += [c.value for s in case.steps for c in s.changes if c.name == name]
            if any(v != neutral for v in values):
                out.append(name)
        return out

    def own_name(self, spec: Spec, name: str) -> str:
        """The candidate's name for a scalar setting (what a scheduler changes between steps)."""
        try:
            names = self.names_for(spec)
        except AmbiguousName:  # a hooked candidate: its conftest built it under torch's names
            return name
        spelled = names.names.get(name) if names is not None else None
        return spelled[0] if spelled and len(spelled) == 1 else name

    def build(self, spec: Spec, case: Case, params: list, hyperparameters: dict[str, Any], dtype: str,
              device: str, default: Callable[[], Any]) -> Any:
        """The conftest hook's optimizer for this case, else ``default()`` (the target called
        with the settings it accepts), skipped if the case needs settings it does not accept."""
        if self.hooked():
            opt = self.hook(spec=spec, case=case, params=params, hyperparameters=dict(hyperparameters),
                            dtype=dtype, device=device)
            if opt is not None:
                return opt
            why = self.unsupported_settings(spec, case)
            if why:
                raise CaseSkipped(why)
        try:
            return default()
        except Exception as first:
            if not self._neutral_via_kwargs(spec, hyperparameters):
                return self._refused(spec, hyperparameters, default, first)
        # refused with settings at their neutral value (the feature off) sent through **kwargs:
        # built again without them, and from now on they are not sent (a constructor without a
        # feature has it off)
        self.__dict__["_neutral_held"].add(spec.id)
        try:
            return default()
        except Exception as exc:
            return self._refused(spec, hyperparameters, default, exc)

    def _refused(self, spec: Spec, hyperparameters: dict[str, Any], default: Callable[[], Any],
                 exc: Exception) -> Any:
        """The constructor raised ``exc``: built again without a setting it refused at the spec's
        default; a skip when it refused one the case turns on; else ``exc`` raised."""
        # a setting the signature does not name, sent through **kwargs, that the constructor
        # refuses: the candidate lacks that feature (skipped with the reason, not a failure).
        # One the case turns on counts as refused; one without a neutral value (sent in every
        # case: NAdam's momentum_decay to Keras) only when the error names it
        names = self.names_for(spec)
        said = str(exc)
        sent_as_default = sorted(
            k for k in (names.via_kwargs if names else ()) if k in hyperparameters and k in said
            and (spec.neutral(k) is None or hyperparameters[k] != spec.neutral(k))
            and hyperparameters[k] in self.fixed_values(spec, k))
        if sent_as_default:
            # refused at the spec's default: the candidate may lack the knob and hard-wire a
            # behaviour. If it builds without it, it is checked from now on without sending it (the
            # cases that set it elsewhere are skipped: it no longer counts as accepted)
            cache = self.__dict__["_names"]
            cache[spec.id] = NameMap({k: v for k, v in names.names.items() if k not in sent_as_default},
                                     names.via_kwargs - set(sent_as_default))
            try:
                return default()
            except Exception:
                cache[spec.id] = names  # refused for another reason: as before
        sent = sorted(k for k in (names.via_kwargs if names else ()) if k in hyperparameters and (
            k in said if spec.neutral(k) is None else hyperparameters[k] != spec.neutral(k)))
        if sent:
            raise CaseSkipped(f"candidate does not accept {sent[0]!r}: its constructor refused it through "
                              f"**kwargs ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})") from None
        raise exc


PROTOCOLS = ("a torch.optim.Optimizer subclass or a factory returning one, an optax transformation, a "
             "Keras 3 optimizer class, a NumPy-style class Cls(params, **hyperparameters) with step(grads), "
             "or a functional make(**hyperparameters) returning an object with init(params) and "
             "update(grads, state, params)")


def parameter_names(target: Any) -> list[str] | None:
    """The keyword names the candidate's constructor takes ("**" for a **kwargs); None if unknown."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return None
    return [("**" if p.kind is p.VAR_KEYWORD else p.name) for p in params.values()
            if p.kind is not p.VAR_POSITIONAL]


def check_protocol(cand: Candidate) -> None:
    """A usage error unless the candidate looks like one of the protocols (before any case runs)."""
    obj, api = cand.target, cand.api
    what = f"--optimizer={cand.path}: not an optimizer: expected {PROTOCOLS}"
    if api in ("torch", "optax", "keras") or cand.hooked():
        return  # recognised by what it is (a torch Optimizer, an optax function, a Keras optimizer)
    if api == "functional":
        if inspect.isclass(obj) and not _is_functional(obj):
            raise UsageError(f"{what}; {obj.__name__} has no init/update")
        return
    if inspect.isclass(obj):
        if not callable(getattr(obj, "step", None)):
            raise UsageError(f"{what}; class {obj.__name__} has no step()")
        return
    # a factory (or any other callable) that is neither torch nor functional: what does it build?
    import numpy as np

    names = parameter_names(obj)
    kw = {"lr": 0.1} if names is None or "lr" in names or "**" in names else {}
    try:
        built = obj([np.zeros(1)], **kw)
    except Exception as exc:
        raise UsageError(f"{what}; calling it as {cand.name}([array], {'lr=0.1' if kw else ''}) raised "
                         f"{_one_line(exc)}") from None
    if not callable(getattr(built, "step", None)):
        raise UsageError(f"{what}; {cand.name}(params) returned a {type(built).__name__} with no step()")


def check_kwargs(cand: Candidate, spec: Spec) -> None:
    """--optimizer-kwargs: keys the candidate takes, none of them a setting the cases vary."""
    settings = {hp["name"] for hp in spec.hyperparameters}
    settings |= {k for c in spec.cases for g in c.groups for k in g.hyperparameters}
    for key in cand.kwargs:
        if key in settings:
            raise UsageError(f"--optimizer-kwargs: {key!r} is a setting of spec {spec.id!r} that every case sets "
                             f"itself; it cannot be overridden (pass only extra flags such as foreach)")
        if not cand.hooked() and not cand.accepts(key):
            names = cand.info.get("parameters") if cand.target is None else parameter_names(cand.target)
            known = ", ".join(n for n in (names or []) if n not in ("params", "**")) or "none"
            raise UsageError(f"--optimizer-kwargs: {cand.name} does not accept {key!r} (its keyword "
                             f"parameters: {known})")
