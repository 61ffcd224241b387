"""Rank side of a distributed run: one golden case driven through a torch.distributed wrapper.

``--optimizer-distributed=ddp|zero|fsdp|own`` runs every case in N processes (the *ranks*,
spawned by ``distributed_group.py``). Each rank runs the very same open-loop case
(``open_loop.run_case``) with a :class:`DistributedDriver`, so that the collectives the wrapper
issues happen in the same order on every rank; rank 0's scores are the case's result. A
closed-loop case (L-BFGS's ``step(closure)``) runs the same way through ``closed_loop.run_case``
with the driver of ``distributed_closed_loop.py``, whose closure communicates.

The gradient of a step is the golden's, split so that the average over the ranks is exactly the
golden gradient (``distributed_split.py``: dense, and sparse COO for SparseAdam): each rank sees a
different local gradient, the wrapper does its own communication, and a wrapper that sums instead
of averaging, or forgets to reduce, leaves a different trajectory. The module holding the params,
its wrapping and the resume are shared with the closed-loop driver (``distributed_wrap.py``).

Wrappers (:data:`WRAPPERS`):

- ``ddp``: the params are ``nn.Parameter`` s of a module under ``DistributedDataParallel``; the
  local gradient is set by the backward of the linear loss ``sum(<g_local, p>)`` (DDP's hooks
  all-reduce and average it); the candidate steps on every rank (replicated state).
- ``zero``: the same DDP module, the candidate class inside
  ``torch.distributed.optim.ZeroRedundancyOptimizer`` (state sharded by parameter); the state is
  gathered with ``consolidate_state_dict(to=0)``.
- ``fsdp``: FSDP2, ``torch.distributed.fsdp.fully_shard`` on the module: DTensor params sharded on
  dim 0 (unevenly when N does not divide it); params and state gathered in one all-gather
  (``WrappedParams.gather_full``);
  resume through ``torch.distributed.checkpoint`` (``get_state_dict`` / ``dcp.save`` /
  ``dcp.load`` / ``set_state_dict``).
- ``own``: a user's own distributed optimizer: plain replicated params, ``p.grad`` set to the
  rank's local gradient, and the candidate (a factory or class taking ``process_group=``) does
  all the communication itself.

At every step the golden records the full params of every rank are checked to agree (``ddp``,
``zero``, ``own``: the params are replicated), and rank 0 compares them (and the gathered state)
with the golden under the single-process tolerances. Every case of the single-process run runs:
a state injected at a large step count is loaded through each wrapper
(``DistributedDriver.inject_state``), and a long horizon's repeated steps run no collective of
the harness. A wrapper that refuses a case (a shape, a sparse gradient) skips it with torch's own
error: ``not supported by torch: ...``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from typing import Any

import numpy as np

from .candidates import Candidate, CaseSkipped
from .distributed_split import local_gradient, local_sparse_gradient
from .distributed_wrap import (
    UNSUPPORTED,
    WrappedParams,
    holder,
    raised_by_torch_distributed,
    unsupported,
    wrap,
)
from .drivers import TorchDriver
from .golden import Case, SparseGrad, Spec

__all__ = ["UNSUPPORTED", "local_gradient", "mode_name", "parse_mode", "run_rank_case", "serve_rank"]

WRAPPERS = ("ddp", "zero", "fsdp", "own")


def mode_name(wrapper: str, world_size: int) -> str:
    """The mode of a distributed case run (its item id: ``adam/defaults[float32-cpu-ddp-ws2]``)."""
    return f"{wrapper}-ws{world_size}"


def parse_mode(mode: str) -> tuple[str, int] | None:
    """(wrapper, world size) of a distributed mode, None for another mode."""
    wrapper, _, ws = mode.partition("-ws")
    if wrapper in WRAPPERS and ws.isdigit():
        return wrapper, int(ws)
    return None


# -- the driver ----------------------------------------------------------------------------------


def takes_process_group(target) -> bool:
    """Whether a candidate is a distributed optimizer of its own: its constructor (or factory)
    takes ``process_group``, or it declares ``conformance_distributed = True``."""
    if getattr(target, "conformance_distributed", False):
        return True
    try:
        return "process_group" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


class DistributedDriver(WrappedParams, TorchDriver):
    """A TorchDriver whose params live in a module under a distributed wrapper (see the module
    docstring). Every method is called on every rank in the same order (collectives inside)."""

    def __init__(self, cand: Candidate, spec: Spec, case: Case, dtype: str, device: str, wrapper: str,
                 scratch: str):
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        self.wrapper, self.scratch = wrapper, scratch
        self.pg = GROUP[0] or dist.group.WORLD  # the group of this case (a fresh one after a failed case)
        self.rank, self.world = dist.get_rank(self.pg), dist.get_world_size(self.pg)
        self.cand, self.spec, self.case = cand, spec, case
        self.dtype_name, self.device_name = dtype, device
        self.dtype = getattr(torch, dtype)
        self.device = torch.device(device)
        self.groups = [dict(g.hyperparameters) for g in case.groups]
        self.findings = set()
        self.reloads = 0
        self.gathered: dict[str, dict[str, np.ndarray]] | None = None  # fsdp: the state gathered by params()
        self._local: dict[str, tuple[np.ndarray, Any]] = {}  # per param: the last dense gradient and its share
        # params given sparse gradients: held in an nn.Embedding(sparse=True) (distributed_wrap.holder)
        self.sparse = frozenset(n for s in case.steps for n, g in s.grads.items() if isinstance(g, SparseGrad))
        if wrapper == "own" and not takes_process_group(cand.target):
            raise CaseSkipped("--optimizer-distributed=own: the candidate takes no process_group= (nor declares "
                              "conformance_distributed = True): it cannot communicate")
        self.names = [p.name for p in case.params]
        # FSDP2 refuses 0-dim params ("Change p_scalar to a 1D tensor with numel equal to 1"):
        # as torch says, a scalar is held as a 1-element vector there (the same elements)
        self.shapes = {p.name: (1,) if wrapper == "fsdp" and p.shape == () else p.shape for p in case.params}
        self.module = self._module()
        self.tensors = self._wrap()
        try:
            self.opt = self._build()
        except CaseSkipped:
            raise
        except Exception as exc:
            if wrapper == "zero" and raised_by_torch_distributed(exc):  # ZeRO refuses the param groups
                raise unsupported(exc) from None
            raise

    # -- construction --------------------------------------------------------------------------
    def _module(self):
        return holder(self.case.params, self.shapes, self.dtype, self.device, self.sparse)

    def _wrap(self) -> dict[str, Any]:
        self.model = wrap(self.module, self.wrapper, self.pg, self.device, self._some_unused())
        return {n: self.module.param(n) for n in self.names}

    def _some_unused(self) -> bool:
        return any(g is None for s in self.case.steps for g in s.grads.values())

    def _build(self):
        if self.wrapper != "zero":
            return self._build_plain()
        from torch.distributed.optim import ZeroRedundancyOptimizer

        groups = [{"params": [self.tensors[n] for n in g.params], **self.cand.settings(self.spec, hps)}
                  for g, hps in zip(self.case.groups, self.groups, strict=True)]
        first = {k: v for k, v in groups[0].items() if k != "params"}
        return ZeroRedundancyOptimizer(groups, optimizer_class=self.cand.target, process_group=self.pg,
                                       **{**first, **self.cand.kwargs})

    def _build_plain(self):
        if self.wrapper != "own":
            return TorchDriver._build(self)
        group = self.pg
        target = self.cand.target
        if "process_group" in _parameters(target):
            own = Candidate(self.cand.path, _with_group(target, group), self.cand.api, self.cand.kwargs,
                            hook=self.cand.hook, args=self.cand.args, jit=self.cand.jit)
            own.info = getattr(self.cand, "info", None)
            saved, self.cand = self.cand, own
            try:
                return TorchDriver._build(self)
            finally:
                self.cand = saved
        return TorchDriver._build(self)

    # -- stepping ------------------------------------------------------------------------------
    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        torch = self.torch
        self.gathered = None
        local = {}
        for name in self.names:
            g = grads[name]
            if isinstance(g, SparseGrad):
                indices, values = local_sparse_gradient(torch.from_numpy(g.indices).to(self.device),
                                                        torch.tensor(g.values, dtype=self.dtype, device=self.device),
                                                        self.rank, self.world)
                local[name] = torch.sparse_coo_tensor(indices, values, self.shapes[name], device=self.device,
                                                      check_invariants=True)
            elif g is not None:
                local[name] = self._local_dense(name, g)
        if self.wrapper == "own":  # as TorchDriver.step: into the existing .grad, else a fresh one
            for name, t in self.tensors.items():
                g = local.get(name)
                if (g is not None and t.grad is not None and g.layout == t.grad.layout == torch.strided
                        and t.grad.shape == g.shape and t.grad.dtype == g.dtype):
                    t.grad.copy_(g)
                else:  # a fresh tensor: the candidate may write into it, the share is reused
                    t.grad = None if g is None else g.clone()
            self.opt.step()
            return
        # under ddp, zero and fsdp the wrapper's own backward writes p.grad (DDP's reducer, FSDP's
        # reduce-scatter), after zero_grad()'s default set_to_none=True
        for t in self.tensors.values():
            t.grad = None
        if local:
            loss = self.model(local)
            loss.backward()
        self.opt.step()

    def _local_dense(self, name: str, g: np.ndarray):
        """This rank's share of the dense gradient ``g`` (computed once while a long horizon
        repeats the same array: only the loss's backward reads it, and that writes a new tensor)."""
        last = self._local.get(name)
        if last is None or last[0] is not g:
            full = self.torch.tensor(g, dtype=self.dtype, device=self.device).reshape(self.shapes[name])
            last = self._local[name] = (g, local_gradient(full, self.rank, self.world))
        return last[1]

    def params(self):
        """The full params, called at the steps the golden records (a long horizon's repeated
        steps are not: its 10³ steps are compared at the last), so that no collective of the
        harness runs at a step nothing is compared. ``ddp``, ``zero``, ``own``: after checking that
        the replicas agree (``check_replicas``: one all-gather). ``fsdp``: the params and the
        optimizer state gathered together in one all-gather (``gather_full``); the state is what
        the next :meth:`state` returns."""
        if self.wrapper != "fsdp":
            self.check_replicas()
            return super().params()
        tensors, scalars = self._state_values()
        full = self.gather_full([self.tensors[n] for n in self.names] + [v for _, _, v in tensors])
        params = {n: t.numpy().reshape(-1).copy() for n, t in zip(self.names, full, strict=False)}
        state: dict[str, dict[str, np.ndarray]] = {n: {} for n in self.names}
        for (name, key, _), t in zip(tensors, full[len(self.names):], strict=True):
            state[name][key] = t.numpy().copy()
        for name, key, value in scalars:
            state[name][key] = np.array([float(value)])
        self.gathered = state
        return params

    def _state_values(self):
        """The optimizer state's dense tensors and its numbers: (name, key, value) lists."""
        tensors, scalars = [], []
        for name in self.names:
            st = self.opt.state.get(self.tensors[name], {})
            for key in sorted(st):
                value = st[key]
                if isinstance(value, self.torch.Tensor) and not value.is_sparse:
                    tensors.append((name, key, value))
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    scalars.append((name, key, value))
        return tensors, scalars

    # -- state -----------------------------------------------------------------------------------
    def inject_state(self, state: dict[str, dict[str, Any]]) -> None:
        """A checkpoint taken at a large step count, loaded before the first step the way each
        wrapper loads one: ``ddp``, ``own``: the candidate's own ``load_state_dict`` on every rank
        (as TorchDriver); ``zero``: ZeRO's ``load_state_dict`` of the consolidated layout (global
        param indices, what ``state_dict()`` returns after ``consolidate_state_dict``), each rank
        keeping its partition's entries; ``fsdp``: the full state dict keyed by the params' names
        in the module, sharded by ``set_optimizer_state_dict(full_state_dict=True)``."""
        self.gathered = None
        if self.wrapper == "zero":
            # ZeRO's own state_dict() needs a consolidation first; the base class's is the same
            # layout (global indices, param_groups) with no entries yet
            sd = self.torch.optim.Optimizer.state_dict(self.opt)
            self.opt.load_state_dict(self.with_injected(sd, state, self.shapes))
        elif self.wrapper == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_optimizer_state_dict,
                set_optimizer_state_dict,
            )

            full = StateDictOptions(full_state_dict=True)
            sd = get_optimizer_state_dict(self.module, self.opt, options=full)  # its param_groups, by name
            fqn = {id(p): name for name, p in self.module.named_parameters()}
            for name, by_state in state.items():
                sd["state"][fqn[id(self.tensors[name])]] = self.state_entries(by_state, self.shapes[name])
            set_optimizer_state_dict(self.module, self.opt, optim_state_dict=sd, options=full)
        else:
            TorchDriver.inject_state(self, state)

    def state(self) -> dict[str, dict[str, np.ndarray]]:
        if self.wrapper == "zero":
            return self._zero_state()
        if self.gathered is not None:  # fsdp: gathered with the params after this step
            out, self.gathered = self.gathered, None
            return out
        tensors, scalars = self._state_values()
        out: dict[str, dict[str, np.ndarray]] = {n: {} for n in self.names}
        for name, key, value in tensors:
            out[name][key] = self._full(value).to("cpu", self.torch.float64).numpy().copy()
        for name, key, value in scalars:
            out[name][key] = np.array([float(value)])
        return out

    def _zero_state(self) -> dict[str, dict[str, np.ndarray]]:
        """ZeRO: the state gathered onto rank 0 (``consolidate_state_dict``), indexed like the
        param groups; the other ranks return nothing (rank 0 scores)."""
        self.opt.consolidate_state_dict(to=0)
        if self.rank != 0:
            return {}
        sd = self.opt.state_dict()
        order = [n for g in self.case.groups for n in g.params]
        out: dict[str, dict[str, np.ndarray]] = {n: {} for n in self.names}
        for i, st in sd["state"].items():
            for key, value in st.items():
                if isinstance(value, self.torch.Tensor):
                    out[order[i]][key] = value.detach().to("cpu", self.torch.float64).numpy().copy()
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[order[i]][key] = np.array([float(value)])
        return out


@functools.cache
def _candidate(path: str, kwargs: str) -> Candidate:
    return Candidate.from_path(path, json.loads(kwargs))


# The process group the cases run in: WORLD, until a case ends with an error on some rank (its
# collectives may be left half-done on the others); then every rank moves on to a fresh group
# (``regroup``, through the store: no collective of the old group), which is cheaper than new ranks
# (which the next case gets instead when a rank was stopped early: distributed_group.py).
GROUP: list = [None]


def _parameters(target) -> set[str]:
    try:
        return set(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return set()


def _with_group(target, group):
    return functools.partial(target, process_group=group)


# -- one case on this rank -----------------------------------------------------------------------


def _synchronised(build, dist, group):
    """Build the driver on every rank, then agree: if any rank could not (a skip or an error),
    every rank raises the same, so that no rank goes on into a collective the others never join."""
    outcome, drv = ("ok", ""), None
    try:
        drv = build()
    except CaseSkipped as exc:
        outcome = ("skip", str(exc))
    except Exception as exc:  # the candidate's constructor
        outcome = ("error", f"{type(exc).__name__}: {exc}")
        error = exc
    every: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(every, outcome, group=group)
    for rank, (kind, text) in enumerate(every):
        if kind == "skip":
            raise CaseSkipped(text)
        if kind == "error":
            if outcome[0] == "error":
                raise error
            raise RuntimeError(f"on rank {rank}: {text}")
    return drv


# Errors torch raises outside torch/distributed/ (in the C++ reducer, under backward) that are a
# wrapper's documented or reported limit, not a wrong number: their text -> where it is reported.
KNOWN_REFUSALS = {
    "Expected sparse gradient to be defined":  # DDP's Reducer::mark_variable_ready_sparse
        "DDP cannot reduce a step in which a sparse-gradient param gets no gradient, pytorch/pytorch#80496",
    "Could not run 'fsdp::chunk_cat' with arguments from the 'Sparse":  # its kernels are dense only
        "FSDP2's gradient reduce-scatter, torch/distributed/fsdp/_fully_shard/_fsdp_collectives.py",
    "got mixed torch.Tensor and DTensor":  # e.g. L-BFGS's zeros (p.new) for a param without gradient
        "DTensor's dispatch, torch/distributed/tensor/_dispatch.py",
}


def _refused_by_torch(reason: str) -> str:
    """The error, when a step raised it inside torch.distributed refusing an operation (``... not
    supported ...`` raised in torch/distributed/), or raised one of :data:`KNOWN_REFUSALS`: what
    the wrapper cannot do, not a wrong number."""
    head, sep, where = reason.rpartition(" at ")
    error = " ".join(head.split(" raised ", 1)[-1].split())  # one line (DTensor's errors span several)
    known = next((ref for text, ref in KNOWN_REFUSALS.items() if text in head), "")
    if sep and known:  # the first sentence of the error (the dispatcher's lists every backend after it)
        first = error.split(". ", 1)[0]
        return f"{first}{'' if first[-1:] in '.!' else '.'} ({known})"
    inside = f"torch{os.sep}distributed{os.sep}" in where
    if not (sep and inside and "not supported" in head):
        return ""
    return error


def run_rank_case(cand: Candidate, spec: Spec, case: Case, dtype: str, device: str, wrapper: str,
                  scratch: str, accept: tuple[str, ...] = ()):
    """This rank's run of one case (every rank calls it with the same arguments): rank 0's
    result, matched against the catalogued and the distributed variants when it fails."""
    import torch.distributed as dist

    from .closed_loop import NAME as CLOSED_LOOP
    from .closed_loop import run_case as run_closed_loop
    from .diagnosis import matching_variants
    from .distributed_closed_loop import DistributedClosedLoop
    from .distributed_variants import distributed_matches
    from .open_loop import NAME as OPEN_LOOP
    from .open_loop import run_case
    from .scoring import CaseResult

    world = dist.get_world_size()
    mode = mode_name(wrapper, world)
    group = GROUP[0] or dist.group.WORLD
    if spec.kind == OPEN_LOOP:
        def make(cand, spec, case, dtype, device, mode):
            return _synchronised(lambda: DistributedDriver(cand, spec, case, dtype, device, wrapper, scratch), dist,
                                 group)

        res = run_case(cand, spec, case, dtype, device, accept=accept, mode=mode, make_driver=make)
    elif spec.kind == CLOSED_LOOP:
        if wrapper == "own":
            return CaseResult(spec.id, case.id, dtype, device, "skipped", "--optimizer-distributed=own runs the "
                              "stepwise specs: a closure-driven optimizer is run under ddp, zero or fsdp", mode=mode)

        def make_closed(cand, spec, case, dtype, device):
            return _synchronised(lambda: DistributedClosedLoop(cand, spec, case, dtype, device, wrapper, group,
                                                               scratch), dist, group)

        res = run_closed_loop(cand, spec, case, dtype, device, mode=mode, make_driver=make_closed)
    else:
        return CaseResult(spec.id, case.id, dtype, device, "skipped",
                          f"{spec.id} is a {spec.kind} spec: distributed runs cover the stepwise and closed-loop specs",
                          mode=mode)
    refused = _refused_by_torch(res.reason) if res.outcome == "failed" and res.steps_run < case.n_steps else ""
    if refused:  # e.g. DTensor refusing an in-place op of the optimizer on a shard: the wrapper's limit
        res.outcome, res.reason, res.params_conform = "skipped", f"{UNSUPPORTED}: {refused}", True
    if dist.get_rank() == 0 and res.outcome == "failed" and res.steps_run == case.n_steps \
            and not res.params_conform:
        res.matches = matching_variants(spec, case, res.actual, dtype) + \
            distributed_matches(spec, case, res.actual, dtype, world)
    if dist.get_rank() != 0:
        res.actual = {}  # only rank 0's trajectory is scored and sent back
    return res


def run_segment(cand: Candidate, spec: Spec, case: Case, dtype: str, device: str, scratch: str,
                part: str, checkpoint: str) -> list[dict[str, np.ndarray]]:
    """FSDP2 resume at another world size, one half per group of ranks: ``part="before"`` runs the
    steps before the case's first resume and saves a DCP checkpoint; ``part="after"`` (a group of
    another size) builds a fresh module and optimizer, loads the checkpoint and runs the rest.
    Returns the full params after each step run (rank 0's; the other ranks return [])."""
    import torch.distributed as dist

    group = GROUP[0] or dist.group.WORLD
    k = next(i for i, s in enumerate(case.steps) if s.reload_before)
    drv = _synchronised(lambda: DistributedDriver(cand, spec, case, dtype, device, "fsdp", scratch), dist, group)
    if part == "after":
        drv.load_checkpoint(checkpoint)
    rows = []
    for step in case.steps[:k] if part == "before" else case.steps[k:]:
        for c in step.changes:
            drv.set_hyperparameter(c.group, c.name, c.value)
        drv.step(step.grads)
        rows.append(drv.params())
    if part == "before":
        drv.save_checkpoint(checkpoint)
    return rows if dist.get_rank(group) == 0 else []


# -- the rank process ----------------------------------------------------------------------------


def serve_rank(rank: int, world: int, port: int, conn, steps, path: str, kwargs: dict[str, Any],
               search: tuple[str, ...], args: dict[str, str], jit: bool, wrapper: str, device: str,
               collective_timeout: float, scratch: str) -> None:
    """A rank process: join the group (gloo on the CPU, NCCL on CUDA: one device per rank), import
    the candidate, then run every case it is sent until the pipe closes."""
    import faulthandler
    import signal

    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # DDP's find_unused_parameters advice, per rank
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for pytest: it stops this process
    faulthandler.disable()
    try:
        # first torch and the candidate (slow, and at each rank's own pace), then, when the parent
        # says so (every rank has imported), the rendezvous: under the collective timeout
        imported = _import_candidate(path, kwargs, search, args, jit)
        conn.send(imported)
        if imported[0] != "ready" or conn.recv() != "join":
            return
        conn.send(_join(rank, world, port, device, collective_timeout))
        from .scoring import STEP_HOOKS

        STEP_HOOKS.append(lambda t: steps.__setitem__(rank, t))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            answer = _answer(message, rank, wrapper, device, scratch)
            try:
                conn.send(answer)
            except (EOFError, OSError):
                break
    finally:
        os._exit(0)  # no atexit handlers, no destroy_process_group waiting on a dead peer


def _import_candidate(path, kwargs, search, args, jit):
    from .candidates import _one_line
    from .isolation import _import

    try:
        import torch
        import torch.distributed  # noqa: F401 - imported before the rendezvous, not during it
    except BaseException as exc:  # noqa: BLE001 - said to the parent, never a traceback
        return "usage", f"torch.distributed cannot be imported: {_one_line(exc)}"
    torch.set_num_threads(1)  # tiny tensors, N processes on a few cores: a second thread only spins
    # torch imports dynamo on the first optimizer step (seconds): here, not in the first case's time
    warm = torch.zeros(1, requires_grad=True)
    warm.grad = torch.zeros(1)
    torch.optim.SGD([warm], lr=0.0).step()
    return _import(path, kwargs, search, args, jit)


def _join(rank, world, port, device, collective_timeout):
    from datetime import timedelta

    from .candidates import _one_line

    try:
        import torch
        import torch.distributed as dist

        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(rank)
        dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world, timeout=timedelta(seconds=collective_timeout))
    except BaseException as exc:  # noqa: BLE001 - said to the parent, never a traceback
        return "usage", f"rank {rank} could not join the process group: {_one_line(exc)}"
    return "joined", None


def _answer(message: tuple, rank: int, wrapper: str, device: str, scratch: str) -> tuple[str, Any]:
    from . import isolation
    from .candidates import UsageError, _one_line
    from .kinds import load_spec
    from .scoring import CaseResult, exc_line

    op, request = message
    if isinstance(request, dict) and request.get("wrapper"):  # the sweep: every wrapper on the same ranks
        wrapper = request["wrapper"]
    if op == "regroup":
        from datetime import timedelta

        import torch.distributed as dist

        GROUP[0] = dist.new_group(list(range(dist.get_world_size())), timeout=timedelta(seconds=request))
        return "ok", None
    try:
        if op == "check":
            from .preflight import check_candidate

            try:
                if wrapper != "own":  # an own distributed optimizer is built with its group, per case
                    check_candidate(isolation.CANDIDATE, load_spec(request))
            except UsageError:
                raise
            except BaseException as exc:  # noqa: BLE001 - the candidate's code, while it was built
                return "usage", f"--optimizer={isolation.CANDIDATE.path}: building the candidate raised {_one_line(exc)}"
            return "ok", None
        if op != "case":
            return "error", f"unknown request {op!r}"
    except UsageError as exc:
        return "usage", str(exc)
    spec = load_spec(request["spec"])
    case = next(c for c in spec.cases if c.id == request["case"])
    dev = f"cuda:{rank}" if device.startswith("cuda") else device
    cand = isolation.CANDIDATE
    if request.get("path"):  # the sweep: another candidate per request, on the same ranks
        cand = _candidate(request["path"], json.dumps(request.get("kwargs", {}), sort_keys=True))
    if request.get("part"):  # resume at another world size (distributed_reshard.py)
        try:
            return "rows", run_segment(cand, spec, case, request["dtype"], dev, scratch, request["part"],
                                       request["checkpoint"])
        except BaseException as exc:  # noqa: BLE001 - said to the parent
            return "error", f"rank {rank}: {exc_line(exc)}"
    try:
        res = run_rank_case(cand, spec, case, request["dtype"], dev, wrapper, scratch,
                            accept=tuple(request["accept"]))
        res.device = device
        return "result", res
    except BaseException as exc:  # noqa: BLE001 - e.g. KeyboardInterrupt raised by step() itself
        res = CaseResult(spec.id, case.id, request["dtype"], device, "failed",
                         f"the candidate raised {exc_line(exc)}", mode=request["mode"])
        res.params_conform = False
        return "result", res
