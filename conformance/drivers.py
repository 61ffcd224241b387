"""Drivers: how one golden case of the open-loop kind drives a fresh candidate, step by step.

One driver per interface of :mod:`~optimizer_conformance.conformance.candidates` (torch, numpy,
functional); :func:`eager_driver` picks it. The CUDA-graph driver
(:mod:`~optimizer_conformance.conformance.cuda_graph`) is a :class:`TorchDriver` too; the open-loop
kind (``open_loop.py``) chooses between them by the case's mode.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .candidates import Candidate, CaseSkipped
from .golden import Case, SparseGrad, Spec


def eager_driver(cand: Candidate, spec: Spec, case: Case, dtype: str, device: str) -> Driver:
    """The driver of the candidate's interface, stepping eagerly."""
    if cand.api == "torch":
        return TorchDriver(cand, spec, case, dtype, device)
    if cand.api == "functional":
        return FunctionalDriver(cand, spec, case, dtype, device)
    return NumpyDriver(cand, spec, case, dtype, device)


class Driver:
    """Runs one case against one fresh candidate.

    ``findings`` collects behaviour that is not a wrong number but that a user should know about
    (e.g. step() writing into the gradients it was given).
    """

    findings: set[str]

    def set_hyperparameter(self, group: int, name: str, value: Any) -> None: ...
    def step(self, grads: dict[str, np.ndarray | None]) -> None: ...
    def reload(self) -> None: ...

    def inject_state(self, state: dict[str, dict[str, Any]]) -> None:
        """Load ``state`` (param name -> torch's state name -> a count or values) before the first
        step, as a resume from a checkpoint taken at a large step count would."""
        raise CaseSkipped(f"{type(self).__name__}: no state injection (load_state_dict of a large step count)")

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
        self.aliases: set[str] = set()  # state entries seen sharing memory with p.grad
        # per param: the last dense gradient given and its tensor (a long horizon repeats one
        # gradient array for hundreds of steps: converted once). Never handed to the candidate.
        self._dense: dict[str, tuple[np.ndarray, Any]] = {}
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
        own = self.cand.own_name(self.spec, name)
        if own in pg:
            pg[own] = value
        elif value != self.spec.neutral(name):  # never run on with the old setting
            raise CaseSkipped(f"the candidate's param_groups[{group}] has no {name!r} to change between steps "
                              f"(as a scheduler does)")

    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        """Sets each param's gradient as a training loop's backward does, then calls ``step()``.

        A dense gradient is written *in place* into the param's existing ``.grad`` tensor
        (``p.grad.copy_(g)``) whenever it has one, as ``backward()`` accumulates into the zeroed
        ``.grad`` after ``zero_grad(set_to_none=False)`` (and as gradient accumulation, DDP's
        bucket views and CUDA graphs do); a fresh tensor is made only where the param has none:
        on the first step, after a step without gradient (``p.grad = None``: a frozen or unused
        param) and after a resume (:meth:`reload`: a fresh process has no gradients), as in a
        loop with ``zero_grad()``'s default ``set_to_none=True``. So a case exercises both
        loops, and an optimizer that keeps a reference to ``p.grad`` in its state instead of a
        copy (``buf = grad`` for ``torch.clone(grad)``) sees that state overwritten by the next
        gradient and fails, where a fresh tensor every step would hide it. Sparse gradients
        are fresh every step: backward builds a new sparse tensor.
        """
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
                new = self._dense_tensor(name, g, t.shape)
                old = t.grad
                if old is not None and not old.is_sparse and old.shape == t.shape and old.dtype == t.dtype:
                    old.copy_(new)
                else:
                    t.grad = new.clone()
                given[name] = new
        self.opt.step()
        for name, g in given.items():
            now = self.tensors[name].grad
            if now is not None and g.is_sparse:
                now, g = now.to_dense(), g.to_dense()
            if now is not None and not torch.equal(now, g):
                self.findings.add(GRADIENT_MODIFIED)
        self._find_aliases()

    def _dense_tensor(self, name: str, g: np.ndarray, shape) -> Any:
        """The gradient ``g`` as a tensor of the run's dtype and device, the param's shape."""
        last = self._dense.get(name)
        if last is None or last[0] is not g:
            last = self._dense[name] = (g, self.torch.tensor(g.reshape(shape), dtype=self.dtype, device=self.device))
        return last[1]

    def _find_aliases(self) -> None:
        """Names the state entries that share memory with their param's ``.grad`` (kept in
        :attr:`aliases`): the cause a failing case reports, since the next gradient written into
        ``p.grad`` overwrites such an entry."""
        for name, t in self.tensors.items():
            grad = t.grad
            if grad is None or grad.is_sparse:
                continue
            where = grad.untyped_storage().data_ptr()
            for key, value in self.opt.state.get(t, {}).items():
                if isinstance(value, self.torch.Tensor) and not value.is_sparse and value.numel() \
                        and value.untyped_storage().data_ptr() == where:
                    self.aliases.add(f"state[{name}][{key!r}]")

    def reload(self) -> None:
        """Resume as a fresh process would: a new optimizer loading a copy of the state dict, and
        params without gradients (the next step's gradients are fresh tensors)."""
        sd = copy.deepcopy(self.opt.state_dict())
        for t in self.tensors.values():
            t.grad = None
        self.opt = self._build()
        self.opt.load_state_dict(sd)

    def inject_state(self, state: dict[str, dict[str, Any]]) -> None:
        """torch's own checkpoint layout: ``state_dict()["state"][i]`` for the i-th param of the
        param groups, values as tensors of the param's dtype and shape, ``step`` and a per-param
        value (NAdam's ``mu_product``) float32 0-d tensors (torch creates both so:
        ``_get_scalar_dtype()``; load_state_dict then casts all but ``step`` to the param's dtype)."""
        self.opt.load_state_dict(self.with_injected(self.opt.state_dict(), state))

    def with_injected(self, sd: dict, state: dict[str, dict[str, Any]], shapes: dict | None = None) -> dict:
        """``sd`` (torch's layout: ``sd["state"][i]`` for the i-th param of the param groups) with
        each param's injected entries (:meth:`state_entries`, in ``shapes[name]`` or the param's shape)."""
        order = [n for g in self.case.groups for n in g.params]
        for name, by_state in state.items():
            shape = shapes[name] if shapes is not None else self.tensors[name].shape
            sd["state"][order.index(name)] = self.state_entries(by_state, shape)
        return sd

    def state_entries(self, by_state: dict[str, Any], shape) -> dict[str, Any]:
        """One param's injected state as torch keeps it: tensors of the param's dtype in ``shape``,
        a count and a per-param value (``Case.per_param``) as float32 0-d tensors."""
        torch = self.torch
        return {key: torch.tensor(float(v), dtype=torch.float32) if isinstance(v, int)
                else torch.tensor(float(v[0]), dtype=torch.float32) if key in self.case.per_param
                else torch.tensor(v, dtype=self.dtype, device=self.device).reshape(shape)
                for key, v in by_state.items()}

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


def skip_shared_groups(spec: Spec, case: Case) -> None:
    """A protocol that builds one optimizer per param group cannot run a case with two groups of
    an optimizer whose groups share state (Prodigy's one D): skip it with the spec's reason."""
    if len(case.groups) > 1 and spec.groups_share_state:
        raise CaseSkipped("one optimizer per param group cannot share state across groups: "
                          f"{spec.groups_share_state}")


class NumpyDriver(Driver):
    def __init__(self, cand: Candidate, spec: Spec, case: Case, dtype: str, device: str):
        if device != "cpu":
            raise CaseSkipped(f"NumPy candidates run on the CPU, not {device}")
        skip_shared_groups(spec, case)
        self.cand, self.spec, self.case = cand, spec, case
        self.dtype = np.dtype(dtype)
        self.arrays = {p.name: p.initial.astype(self.dtype).reshape(p.shape) for p in case.params}
        self.groups = [dict(g.hyperparameters) for g in case.groups]
        self.findings = set()
        self.grad_arrays: dict[str, np.ndarray] = {}  # the array each param's gradient is written into
        self.opts = [self._build(i) for i in range(len(case.groups))]

    def _build(self, i: int):
        arrays = [self.arrays[n] for n in self.case.groups[i].params]
        return self.cand.build(self.spec, self.case, arrays, self.groups[i], self.dtype.name, "cpu",
                               lambda: self._default(arrays, self.cand.settings(self.spec, self.groups[i])))

    def _default(self, arrays: list[np.ndarray], settings: dict[str, Any]):
        return self.cand.target(arrays, **settings, **self.cand.kwargs)

    def set_hyperparameter(self, group: int, name: str, value: Any) -> None:
        opt = self.opts[group]
        own = self.cand.own_name(self.spec, name)
        if not hasattr(opt, own):
            raise CaseSkipped(f"NumPy candidate has no attribute {own!r} to change between steps")
        setattr(opt, own, value)
        self.groups[group][name] = value

    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        for i, group in enumerate(self.case.groups):
            given = [self._grad(n, grads[n]) for n in group.params]
            copies = [copy.deepcopy(g) for g in given]
            result = self.opts[i].step(given)
            for g, c in zip(given, copies, strict=True):
                if g is not None and not _same(g, c):
                    self.findings.add("step(grads) modifies the gradient arrays in place")
            if result is not None:
                for n, new in zip(group.params, result, strict=True):
                    self.arrays[n] = np.asarray(new)

    def _grad(self, name: str, g):
        """The gradient handed to the candidate, reusing the array of the param's last gradient
        as :meth:`TorchDriver.step` reuses ``p.grad`` (``np.copyto`` into it): a candidate that
        keeps the array it was given as state, instead of a copy, sees that state overwritten
        by the next step's gradient. A fresh array on the first step, after a step without
        gradient, and after a resume; sparse gradients are fresh (indices, values) every step."""
        if g is None:
            self.grad_arrays.pop(name, None)
            return None
        if isinstance(g, SparseGrad):
            return (g.indices.copy(), g.values.astype(self.dtype))
        new = g.astype(self.dtype).reshape(self.arrays[name].shape)
        old = self.grad_arrays.get(name)
        if old is not None and old.shape == new.shape and old.dtype == new.dtype and old.flags.writeable:
            np.copyto(old, new)
            return old
        self.grad_arrays[name] = new
        return new

    def reload(self) -> None:
        if not all(hasattr(o, "state_dict") and hasattr(o, "load_state_dict") for o in self.opts):
            raise CaseSkipped("NumPy candidate has no state_dict()/load_state_dict(): resume cases need them")
        self.grad_arrays.clear()  # a fresh process: the next gradients are fresh arrays
        for i in range(len(self.opts)):
            sd = copy.deepcopy(self.opts[i].state_dict())
            hps = self.groups[i]
            self.opts[i] = self._build(i)
            for k, v in hps.items():  # current settings, as a scheduler left them
                if hasattr(self.opts[i], k):
                    setattr(self.opts[i], k, v)
            self.opts[i].load_state_dict(sd)

    def inject_state(self, state: dict[str, dict[str, Any]]) -> None:
        """The reference layout (``optimizer_conformance.reference``): ``state_dict()["state"]`` a
        list of per-param dicts under torch's names (arrays of the param's dtype; a per-param value
        a 0-d array); a candidate with another layout is skipped."""
        for i, group in enumerate(self.case.groups):
            opt = self.opts[i]
            sd = opt.state_dict() if hasattr(opt, "state_dict") and hasattr(opt, "load_state_dict") else None
            if not (isinstance(sd, dict) and isinstance(sd.get("state"), list) and len(sd["state"]) == len(group.params)):
                raise CaseSkipped("NumPy candidate's state_dict() has no per-param 'state' list: state injection needs it")
            sd = copy.deepcopy(sd)
            for j, name in enumerate(group.params):
                shape = self.arrays[name].shape
                sd["state"][j] = {key: v if isinstance(v, int)
                                  else v.astype(self.dtype).reshape(()) if key in self.case.per_param
                                  else v.astype(self.dtype).reshape(shape)
                                  for key, v in state.get(name, {}).items()}
            opt.load_state_dict(sd)

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

    inject_state = Driver.inject_state  # an optax-shaped state has no torch layout to load into

    def set_hyperparameter(self, group: int, name: str, value: Any) -> None:
        self.groups[group][name] = value
        self.opts[group] = self._build(group)  # the new settings apply from the next update

    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        for i, group in enumerate(self.case.groups):
            given = [self._grad(n, grads[n]) for n in group.params]
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
        self.grad_arrays.clear()
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
