"""Candidates: what ``--optimizer`` names, and how one case drives it.

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
value (feature off); otherwise the case is skipped with that reason.

Closed-loop specs (LBFGS) drive the candidate through ``step(closure)`` instead: see
:mod:`optimizer_conformance.conformance.closed_loop` for both protocols.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .golden import Case, SparseGrad, Spec


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


APIS = ("torch", "numpy", "functional")


def _is_functional(obj: Any) -> bool:
    """An optax-shaped transformation (or its class): ``init`` and ``update``, no ``step``."""
    return callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None)) \
        and not hasattr(obj, "step")


def detect_api(obj: Any) -> str:
    declared = getattr(obj, "conformance_api", None)
    if declared in APIS:
        return declared
    if _is_torch_optimizer_class(obj):
        return "torch"
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
    api: str  # "torch", "numpy" or "functional"
    kwargs: dict[str, Any] = field(default_factory=dict)
    # config.hook.pytest_optimizer_conformance_build, set by the plugin (None: no conftest hook)
    hook: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_path(cls, path: str, kwargs: dict[str, Any] | None = None, api: str = "auto",
                  search: tuple[str, ...] = ()) -> Candidate:
        target = resolve(path, search)
        api = detect_api(target) if api == "auto" else api
        return cls(path, target, api, dict(kwargs or {}))

    @property
    def name(self) -> str:
        return getattr(self.target, "__name__", self.path.rpartition(".")[2])

    def _signature(self) -> inspect.Signature | None:
        # asked for every hyperparameter of every case: compute once
        if not hasattr(self, "_sig"):
            try:
                self._sig = inspect.signature(self.target)
            except (TypeError, ValueError):
                self._sig = None
        return self._sig

    def accepts(self, name: str) -> bool:
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
        if self.api in ("numpy", "functional") and dtype not in ("float32", "float64"):
            return f"NumPy candidates run in float32/float64 only, not {dtype}"
        closed = getattr(case, "closed_loop", False)
        if self.api == "functional" and closed:
            return "functional (init/update) candidates are not supported for closed-loop specs"
        if self.hooked() and not closed:
            return None  # the hook decides, per case; its fallback is checked in build()
        return self.unsupported_settings(spec, case)

    def unsupported_settings(self, spec: Spec, case: Case) -> str | None:
        """Why the default construction cannot express this case's settings, or None."""
        names = {k for g in case.groups for k in g.hyperparameters}
        names |= {c.name for s in case.steps for c in s.changes}
        for name in sorted(names):
            if self.accepts(name) or name in self.kwargs:
                continue
            neutral = spec.neutral(name)
            values = [g.hyperparameters[name] for g in case.groups if name in g.hyperparameters]
            values += [c.value for s in case.steps for c in s.changes if c.name == name]
            off = [v for v in values if neutral is None or v != neutral]
            if off:
                return f"candidate does not accept {name!r} (this case sets {name}={off[0]!r})"
        if self.api == "numpy" and any(s.reload_before for s in case.steps):
            probe = self.target if inspect.isclass(self.target) else None
            if probe is not None and not (hasattr(probe, "state_dict") and hasattr(probe, "load_state_dict")):
                return "NumPy candidate has no state_dict()/load_state_dict(): resume cases need them"
        return None

    def settings(self, spec: Spec, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """The hyperparameters passed to the candidate: those it accepts (others are neutral)."""
        return {k: v for k, v in hyperparameters.items() if self.accepts(k)}

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
        return default()

    def driver(self, spec: Spec, case: Case, dtype: str, device: str, mode: str = "eager") -> Driver:
        if mode == "cuda_graph":
            from .cuda_graph import GraphDriver

            return GraphDriver(self, spec, case, dtype, device)
        if self.api == "torch":
            return TorchDriver(self, spec, case, dtype, device)
        if self.api == "functional":
            return FunctionalDriver(self, spec, case, dtype, device)
        return NumpyDriver(self, spec, case, dtype, device)


class Driver:
    """Runs one case against one fresh candidate.

    ``findings`` collects behaviour that is not a wrong number but that a user should know about
    (e.g. step() writing into the gradients it was given).
    """

    findings: set[str]

    def set_hyperparameter(self, group: int, name: str, value: Any) -> None: ...
    def step(self, grads: dict[str, np.ndarray | None]) -> None: ...
    def reload(self) -> None: ...
    def params(self) -> dict[str, np.ndarray]: ...
    def state(self) -> dict[str, dict[str, np.ndarray]]:
        return {}


GRADIENT_MODIFIED = "step() modifies p.grad in place"


class TorchDriver(Driver):
    # constructor flags a driver mode adds to every build (the CUDA-graph driver: capturable=True)
    flags: dict[str, Any] = {}

    def __init__(self, cand: Candidate, spec: Spec, case: Case, dtype: str, device: str):
        import torch

        self.torch = torch
        self.cand, self.spec, self.case = cand, spec, case
        self.dtype_name, self.device_name = dtype, device
        self.dtype = getattr(torch, dtype)  # float64, float32, bfloat16, float16
        self.device = torch.device(device)
        self.tensors = {
            p.name: torch.tensor(p.initial, dtype=self.dtype, device=self.device).reshape(p.shape).requires_grad_(True)
            for p in case.params
        }
        self.groups = [dict(g.hyperparameters) for g in case.groups]
        self.findings = set()
        self.opt = self._build()

    def _build(self):
        def default():
            groups = [
                {"params": [self.tensors[n] for n in g.params], **self.cand.settings(self.spec, hps)}
                for g, hps in zip(self.case.groups, self.groups, strict=True)
            ]
            first = {k: v for k, v in groups[0].items() if k != "params"}
            return self.cand.target(groups, **{**first, **self.cand.kwargs, **flags})

        flags = self.flags
        full = [{"params": [self.tensors[n] for n in g.params], **hps}  # every setting, torch-named
                for g, hps in zip(self.case.groups, self.groups, strict=True)]
        return self.cand.build(self.spec, self.case, full, {**self.groups[0], **flags}, self.dtype_name,
                               self.device_name, default)

    def set_hyperparameter(self, group: int, name: str, value: Any) -> None:
        self.groups[group][name] = value
        pg = self.opt.param_groups[group]
        if name in pg:
            pg[name] = value
        elif value != self.spec.neutral(name):  # never run on with the old setting
            raise CaseSkipped(f"the candidate's param_groups[{group}] has no {name!r} to change between steps "
                              f"(as a scheduler does)")

    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        torch = self.torch
        given = {}
        for name, t in self.tensors.items():
            g = grads[name]
            if g is None:
                t.grad = None
            elif isinstance(g, SparseGrad):
                t.grad = torch.sparse_coo_tensor(torch.from_numpy(g.indices), torch.tensor(g.values, dtype=self.dtype),
                                                 t.shape, device=self.device, check_invariants=True)
                given[name] = t.grad.detach().clone()
            else:
                t.grad = torch.tensor(g, dtype=self.dtype, device=self.device).reshape(t.shape)
                given[name] = t.grad.detach().clone()
        self.opt.step()
        for name, g in given.items():
            now = self.tensors[name].grad
            if now is not None and g.is_sparse:
                now, g = now.to_dense(), g.to_dense()
            if now is not None and not torch.equal(now, g):
                self.findings.add(GRADIENT_MODIFIED)

    def reload(self) -> None:
        sd = copy.deepcopy(self.opt.state_dict())
        self.opt = self._build()
        self.opt.load_state_dict(sd)

    def params(self) -> dict[str, np.ndarray]:
        return {n: t.detach().to("cpu", self.torch.float64).numpy().reshape(-1).copy() for n, t in self.tensors.items()}

    def state(self) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for name, t in self.tensors.items():
            st = self.opt.state.get(t, {})
            entries = {}
            for key, value in st.items():
                if isinstance(value, self.torch.Tensor) and not value.is_sparse:
                    # shape kept: a factored statistic (Adafactor's row_var) broadcasts to the param
                    entries[key] = value.detach().to("cpu", self.torch.float64).numpy().copy()
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    entries[key] = np.array([float(value)])
            out[name] = entries
        return out


def _same(a, b) -> bool:
    """Equal gradients: arrays, or (indices, values) tuples of sparse ones."""
    if isinstance(a, tuple):
        return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    return np.array_equal(a, b)


class NumpyDriver(Driver):
    def __init__(self, cand: Candidate, spec: Spec, case: Case, dtype: str, device: str):
        if device != "cpu":
            raise CaseSkipped(f"NumPy candidates run on the CPU, not {device}")
        self.cand, self.spec, self.case = cand, spec, case
        self.dtype = np.dtype(dtype)
        self.arrays = {p.name: p.initial.astype(self.dtype).reshape(p.shape) for p in case.params}
        self.groups = [dict(g.hyperparameters) for g in case.groups]
        self.findings = set()
        self.opts = [self._build(i) for i in range(len(case.groups))]

    def _build(self, i: int):
        arrays = [self.arrays[n] for n in self.case.groups[i].params]
        return self.cand.build(self.spec, self.case, arrays, self.groups[i], self.dtype.name, "cpu",
                               lambda: self._default(arrays, self.cand.settings(self.spec, self.groups[i])))

    def _default(self, arrays: list[np.ndarray], settings: dict[str, Any]):
        return self.cand.target(arrays, **settings, **self.cand.kwargs)

    def set_hyperparameter(self, group: int, name: str, value: Any) -> None:
        opt = self.opts[group]
        if not hasattr(opt, name):
            raise CaseSkipped(f"NumPy candidate has no attribute {name!r} to change between steps")
        setattr(opt, name, value)
        self.groups[group][name] = value

    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        for i, group in enumerate(self.case.groups):
            given = [self._grad(grads[n], self.arrays[n].shape) for n in group.params]
            copies = [copy.deepcopy(g) for g in given]
            result = self.opts[i].step(given)
            for g, c in zip(given, copies, strict=True):
                if g is not None and not _same(g, c):
                    self.findings.add("step(grads) modifies the gradient arrays in place")
            if result is not None:
                for n, new in zip(group.params, result, strict=True):
                    self.arrays[n] = np.asarray(new)

    def _grad(self, g, shape):
        if g is None:
            return None
        if isinstance(g, SparseGrad):
            return (g.indices.copy(), g.values.astype(self.dtype))
        return g.astype(self.dtype).reshape(shape)

    def reload(self) -> None:
        if not all(hasattr(o, "state_dict") and hasattr(o, "load_state_dict") for o in self.opts):
            raise CaseSkipped("NumPy candidate has no state_dict()/load_state_dict(): resume cases need them")
        for i in range(len(self.opts)):
            sd = copy.deepcopy(self.opts[i].state_dict())
            hps = self.groups[i]
            self.opts[i] = self._build(i)
            for k, v in hps.items():  # current settings, as a scheduler left them
                if hasattr(self.opts[i], k):
                    setattr(self.opts[i], k, v)
            self.opts[i].load_state_dict(sd)

    def params(self) -> dict[str, np.ndarray]:
        return {n: np.asarray(a, dtype=np.float64).reshape(-1).copy() for n, a in self.arrays.items()}


class FunctionalDriver(NumpyDriver):
    """An optax-shaped candidate: ``tx = make(**hyperparameters)``, ``state = tx.init(params)``,
    ``new_params, state = tx.update(grads, state, params)``; one ``tx`` and state per param group."""

    def __init__(self, cand: Candidate, spec: Spec, case: Case, dtype: str, device: str):
        super().__init__(cand, spec, case, dtype, device)  # self.opts: one transformation per group
        self.states = [tx.init(self._arrays(i)) for i, tx in enumerate(self.opts)]

    def _arrays(self, i: int) -> list[np.ndarray]:
        return [self.arrays[n] for n in self.case.groups[i].params]

    def _default(self, arrays: list[np.ndarray], settings: dict[str, Any]):
        return self.cand.target(**settings, **self.cand.kwargs)

    def set_hyperparameter(self, group: int, name: str, value: Any) -> None:
        self.groups[group][name] = value
        self.opts[group] = self._build(group)  # the new settings apply from the next update

    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        for i, group in enumerate(self.case.groups):
            given = [self._grad(grads[n], self.arrays[n].shape) for n in group.params]
            copies = [copy.deepcopy(g) for g in given]
            new_params, self.states[i] = self.opts[i].update(given, self.states[i], self._arrays(i))
            for g, c in zip(given, copies, strict=True):
                if g is not None and not _same(g, c):
                    self.findings.add("update(grads, ...) modifies the gradient arrays in place")
            for n, new in zip(group.params, new_params, strict=True):
                self.arrays[n] = np.asarray(new)

    def reload(self) -> None:
        """Resume: a fresh transformation (current settings) continuing from a deep copy of the state."""
        self.states = copy.deepcopy(self.states)
        self.opts = [self._build(i) for i in range(len(self.opts))]

    def state(self) -> dict[str, dict[str, np.ndarray]]:
        """A state that is a mapping (or named tuple) of per-param lists exposes them by name:
        those under torch's names (``exp_avg``, ``step``, ...) are compared."""
        out: dict[str, dict[str, np.ndarray]] = {n: {} for n in self.arrays}
        for i, group in enumerate(self.case.groups):
            st = self.states[i]
            st = st._asdict() if hasattr(st, "_asdict") else st
            if not isinstance(st, dict):
                continue
            for key, value in st.items():
                if not isinstance(value, (list, tuple)) or len(value) != len(group.params):
                    continue
                for n, v in zip(group.params, value, strict=True):
                    if v is not None and isinstance(v, (int, float, np.ndarray, np.number)) \
                            and not isinstance(v, bool):
                        out[n][str(key)] = np.asarray(v, dtype=np.float64).copy()
        return out
