"""Closed-loop cases (L-BFGS, ``step(closure)``) on every rank of a distributed run.

The closure is the harness's, as in ``closed_loop.py``, but each call runs the wrapper's
communication: it evaluates the case's objective and its gradient at the current **full** params
(``full_tensor()`` under FSDP2), in the dtype under test, exactly as the single-process closure
does, then runs the backward of the module's linear loss ``Σ ⟨g_local, p⟩`` with the rank's share
of that gradient (``distributed_split.local_gradient``: the shares average to it exactly), so that
DDP's all-reduce (or FSDP2's reduce-scatter) produces the gradient the candidate steps with. It
returns the objective's value (the same on every rank). Every rank calls the closure as often as
its optimizer asks: a wrapper under which the ranks' optimizers disagree leaves the ranks out of
step in their collectives, and the collective timeout ends the case.

Params, the returned loss and torch's counters (``func_evals``, ``n_iter`` of the first param;
ZeRO: from the state gathered with ``consolidate_state_dict``) are scored on rank 0 as in the
single-process run; the replicated params (ddp, zero) must agree bit for bit between ranks.
"""

from __future__ import annotations

import os
from typing import Any

from .candidates import Candidate
from .closed_loop import COUNTERS, ClosedLoopCase, TorchClosedLoop, value_and_grad
from .distributed_split import local_gradient
from .distributed_wrap import (
    WrappedParams,
    holder,
    raised_by_torch_distributed,
    unsupported,
    unsupported_in,
    wrap,
)
from .golden import Spec
from .scoring import exc_line


class DistributedClosedLoop(WrappedParams, TorchClosedLoop):
    def __init__(self, cand: Candidate, spec: Spec, case: ClosedLoopCase, dtype: str, device: str, wrapper: str,
                 group, scratch: str):
        import torch
        import torch.distributed as dist

        self.torch, self.dist, self.cand, self.spec = torch, dist, cand, spec
        self.wrapper, self.pg, self.scratch = wrapper, group, scratch
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self._layout(case)
        self.dtype, self.device = getattr(torch, dtype), torch.device(device)
        # FSDP2 refuses 0-dim params: held as 1-element vectors there (as in distributed.py)
        self.shapes = {p.name: (1,) if wrapper == "fsdp" and p.shape == () else p.shape for p in case.params}
        self.module = holder(case.params, self.shapes, self.dtype, self.device)
        unused = any(p.name not in self.variables for p in case.params)
        self.model = wrap(self.module, wrapper, group, self.device, unused)
        self.tensors = {p.name: self.module.param(p.name) for p in case.params}
        co = case.objective["coefficients"]
        self.coefficients = {k: torch.tensor(v, dtype=self.dtype, device=self.device) if hasattr(v, "shape") else v
                             for k, v in co.items()}
        self.group = dict(case.groups[0].hyperparameters)
        self.findings = set()
        try:
            self.opt = self._build()
        except Exception as exc:
            if wrapper == "zero" and raised_by_torch_distributed(exc):  # ZeRO refuses the param groups
                raise unsupported(exc) from None
            raise

    def _build(self):
        if self.wrapper != "zero":
            return TorchClosedLoop._build(self)
        from torch.distributed.optim import ZeroRedundancyOptimizer

        # None is "the constructor's default" (max_eval): left out, also of ZeRO's own defaults,
        # which it copies into the local optimizer's param group at every step
        given = {k: v for k, v in self.cand.settings(self.spec, self.group).items() if v is not None}
        groups = [{"params": [self.tensors[p.name] for p in self.case.params], **given}]
        return ZeroRedundancyOptimizer(groups, optimizer_class=self.cand.target, process_group=self.pg,
                                       **{**given, **self.cand.kwargs})

    def closure(self):
        torch = self.torch
        with torch.no_grad():
            x = torch.cat([self._full(self.tensors[v]).reshape(-1) for v in self.variables])
            f, g = value_and_grad(self.case.objective["kind"], self.coefficients, x, torch)
        local, offset = {}, 0
        for v in self.variables:
            n = self.sizes[v]
            local[v] = local_gradient(g[offset: offset + n].reshape(self.shapes[v]), self.rank, self.world)
            offset += n
        for t in self.tensors.values():
            t.grad = None
        self.model(local).backward()
        return f

    def reload(self) -> None:
        """As for the stepwise specs (distributed_wrap.WrappedParams.reload). FSDP2's checkpoint goes
        through ``get_state_dict``, which initialises a fresh optimizer's state by calling
        ``step(closure=None)`` (``_init_optim_state``): an optimizer that needs its closure raises
        there, which is torch.distributed.checkpoint's limit, not the optimizer's error."""
        try:
            WrappedParams.reload(self)
        except Exception as exc:
            import traceback

            frames = traceback.extract_tb(exc.__traceback__)
            if any(f.name == "_init_optim_state" and f"torch{os.sep}distributed{os.sep}" in f.filename
                   for f in frames):
                raise unsupported_in(exc, "torch.distributed.checkpoint.state_dict._init_optim_state calls "
                                     "step(closure=None)") from None
            raise

    def step(self) -> float:
        if self.wrapper == "zero":
            self._empty_partitions_first()
        loss = TorchClosedLoop.step(self)
        self.check_replicas()
        return loss

    def _empty_partitions_first(self) -> None:
        """ZeRO steps a local optimizer per rank on the params of its partition; a rank whose
        partition holds none (fewer params than ranks) may raise in its local step before it ever
        calls the closure, leaving its peers in the closure's all-reduce until the collective
        timeout. So such a rank runs its local step first, with a closure that communicates
        nothing, and its error (torch's own) ends the step on every rank before any collective."""
        error = None
        local = self.opt.optim
        if not any(len(g["params"]) for g in local.param_groups):
            try:
                local.step(self._local_closure)
            except Exception as exc:  # torch's code on this rank's (empty) partition
                error = exc
        every: list = [None] * self.world
        self.dist.all_gather_object(every, None if error is None else exc_line(error), group=self.pg)
        if error is not None:
            raise error
        for r, text in enumerate(every):
            if text:
                raise RuntimeError(f"on rank {r}: {text}")

    def _local_closure(self):
        """The objective's value, no gradient, no communication."""
        torch = self.torch
        with torch.no_grad():
            x = torch.cat([self._full(self.tensors[v]).reshape(-1) for v in self.variables])
            return value_and_grad(self.case.objective["kind"], self.coefficients, x, torch)[0]

    def counters(self) -> dict[str, int]:
        if self.wrapper != "zero":
            return TorchClosedLoop.counters(self)
        self.opt.consolidate_state_dict(to=0)
        if self.rank != 0:
            return {}
        st: dict[str, Any] = self.opt.state_dict()["state"].get(0, {})  # the first param's
        return {k: int(st[k]) for k in COUNTERS if isinstance(st.get(k), int) and not isinstance(st.get(k), bool)}
