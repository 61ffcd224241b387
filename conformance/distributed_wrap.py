"""What every distributed driver shares (the open-loop ``DistributedDriver`` of ``distributed.py``
and the closed-loop one of ``distributed_closed_loop.py``): the module that holds a case's params,
its wrapping under DDP or FSDP2, the check that replicated params agree between ranks, the full
params and state, and the resume through a checkpoint (:class:`WrappedParams`).

The module's loss is linear in the params, ``Σ ⟨g_local, p⟩``, so that its backward sets each
param's gradient to the rank's local gradient and the wrapper's hooks reduce it. A param given
sparse gradients is held as the weight of an ``nn.Embedding(sparse=True)`` (what tells DDP to
expect a sparse gradient for it, as for a real sparse embedding) and its term of the loss is a
function whose backward is the local sparse COO gradient itself (the golden's layout, indices
repeated where the golden repeats them: an embedding's own backward is row-sparse only).
"""

from __future__ import annotations

import copy
import functools
import os
from typing import Any

from .candidates import CaseSkipped
from .scoring import CandidateBroke

UNSUPPORTED = "not supported by torch"


def unsupported(exc: BaseException) -> CaseSkipped:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return CaseSkipped(f"{UNSUPPORTED}: {text[:300]}")


def unsupported_in(exc: BaseException, where: str) -> CaseSkipped:
    """Torch's own error, with where torch.distributed made the call that raised it."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return CaseSkipped(f"{UNSUPPORTED}: {text[:300]} ({where})")


def raised_by_torch_distributed(exc: BaseException) -> bool:
    """Whether the innermost frame of the exception is torch.distributed's code (not the candidate's)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and f"torch{os.sep}distributed{os.sep}" in frames[-1].filename


def attr(name: str) -> str:
    return "p_" + "".join(c if c.isalnum() else "_" for c in name)


@functools.cache
def _sparse_linear():
    import torch

    class SparseLinear(torch.autograd.Function):
        """``⟨g, p⟩`` for a sparse COO ``g``: its gradient with respect to ``p`` is ``g`` itself."""

        @staticmethod
        def forward(ctx, p, g):
            ctx.save_for_backward(g)
            return (g.to_dense() * p).sum()

        @staticmethod
        def backward(ctx, out):
            (g,) = ctx.saved_tensors
            return g * out, None

    return SparseLinear


def holder(params, shapes: dict[str, tuple[int, ...]], dtype, device, sparse: frozenset[str] = frozenset()):
    """A module holding the case's params (``params``: the case's, with ``name`` and ``initial``),
    in ``shapes``; those named in ``sparse`` as the weight of an ``nn.Embedding(sparse=True)``.
    ``module(grads)`` is the linear loss of the local gradients given (dense or sparse COO)."""
    import torch

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.names = [p.name for p in params]
            for p in params:
                t = torch.nn.Parameter(torch.tensor(p.initial, dtype=dtype, device=device).reshape(shapes[p.name]))
                if p.name in sparse:
                    emb = torch.nn.Embedding(1, 1, sparse=True, device=device, dtype=dtype)
                    emb.weight = t
                    self.add_module(attr(p.name), emb)
                else:
                    self.register_parameter(attr(p.name), t)

        def param(self, name: str):
            held = getattr(self, attr(name))
            return held.weight if isinstance(held, torch.nn.Embedding) else held

        def forward(self, grads: dict[str, Any]):
            loss = None
            for n in self.names:
                g = grads.get(n)
                if g is None:
                    continue
                p = self.param(n)
                term = _sparse_linear().apply(p, g) if g.is_sparse else (p * g).sum()
                loss = term if loss is None else loss + term
            return loss

    return Holder()


def wrap(module, wrapper: str, group, device, find_unused: bool):
    """The module under the wrapper (``ddp`` and ``zero``: DDP; ``fsdp``: FSDP2's ``fully_shard``
    on the group's mesh; ``own``: itself); a wrapper refusing the params is torch's refusal."""
    try:
        if wrapper in ("ddp", "zero"):
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            return DDP(module, device_ids=ids, find_unused_parameters=find_unused, process_group=group)
        if wrapper == "fsdp":
            from torch.distributed.device_mesh import DeviceMesh
            from torch.distributed.fsdp import fully_shard

            return fully_shard(module, mesh=DeviceMesh.from_group(group, device.type))
        return module
    except Exception as exc:  # the wrapper refuses these params
        raise unsupported(exc) from None


CHECKPOINTS = [0]  # checkpoints written by this rank process (their directory names)


class WrappedParams:
    """Mixed into a driver whose ``tensors`` (name → param) live in ``module`` under ``wrapper``
    in the group ``pg``, with ``torch``, ``dist``, ``rank``, ``world``, ``scratch``, ``opt`` and
    ``_build()``. Every method is called on every rank in the same order (collectives inside)."""

    torch: Any
    dist: Any
    wrapper: str
    pg: Any
    rank: int
    world: int
    scratch: str
    module: Any
    tensors: dict[str, Any]
    opt: Any
    reloads: int = 0

    def _build(self):  # pragma: no cover - the driver's
        raise NotImplementedError

    def check_replicas(self) -> None:
        """Replicated params (ddp, zero, own) must agree bit for bit on every rank after a step."""
        if self.wrapper == "fsdp" or self.world == 1:
            return
        torch, dist = self.torch, self.dist
        mine = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in self.tensors.values()])
        every = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(every, mine, group=self.pg)
        for r, other in enumerate(every):
            if not torch.equal(other, mine):
                raise CandidateBroke(f"the replicated params differ between ranks after the step (rank {r} "
                                     f"differs from rank {self.rank}): the update did not see the same "
                                     f"gradient on every rank")

    def _full(self, t):
        t = t.detach()
        return t.full_tensor() if hasattr(t, "full_tensor") else t

    def gather_full(self, tensors: list) -> list:
        """The full tensors of ``tensors`` as float64 CPU tensors, in one all-gather for all of them
        (``full_tensor()`` would be one collective each): every rank's local shards flattened into
        one buffer, padded to the longest, gathered, and cut back into the full tensors. A DTensor
        sharded on dim 0 (FSDP2's params and the state made like them) has on rank r the rows
        ``torch.chunk`` gives it; any other placement is gathered by ``full_tensor()``, a plain
        tensor (a step count) taken as it is."""
        torch = self.torch
        from torch.distributed.tensor import Shard

        def dim0(t) -> bool:
            return hasattr(t, "to_local") and t.ndim > 0 and tuple(t.placements) == (Shard(0),)

        def rows(n: int, r: int) -> int:  # torch.chunk's rows of rank r (none past the last chunk)
            c = -(-n // self.world)
            return max(0, min(n, (r + 1) * c) - r * c)

        def numel(t, r: int) -> int:
            inner = 1
            for d in t.shape[1:]:
                inner *= d
            return rows(t.shape[0], r) * inner

        sharded = [t for t in tensors if dim0(t)]
        mine = [t.detach().to_local().reshape(-1).to("cpu", torch.float64) for t in sharded]
        for t, local in zip(sharded, mine, strict=True):
            if local.numel() != numel(t, self.rank):
                raise RuntimeError(f"a shard of {tuple(t.shape)} has {local.numel()} elements on rank {self.rank}, "
                                   f"not torch.chunk's {numel(t, self.rank)}")
        length = max((sum(numel(t, r) for t in sharded) for r in range(self.world)), default=0)
        parts = []
        if sharded:
            buf = torch.zeros(length, dtype=torch.float64)
            flat = torch.cat(mine)
            buf[:flat.numel()] = flat
            parts = [torch.empty_like(buf) for _ in range(self.world)]
            self.dist.all_gather(parts, buf, group=self.pg)
        offsets = [0] * self.world
        full = {}
        for i, t in enumerate(sharded):
            pieces = []
            for r in range(self.world):
                n = numel(t, r)
                pieces.append(parts[r][offsets[r]:offsets[r] + n].reshape(rows(t.shape[0], r), *t.shape[1:]))
                offsets[r] += n
            full[i] = torch.cat(pieces)
        out, k = [], 0
        for t in tensors:
            if dim0(t):
                out.append(full[k])
                k += 1
            else:
                out.append(self._full(t).to("cpu", torch.float64))
        return out

    def params(self):
        return {n: self._full(t).to("cpu", self.torch.float64).numpy().reshape(-1).copy()
                for n, t in self.tensors.items()}

    # -- resume ----------------------------------------------------------------------------------
    def reload(self) -> None:
        """A checkpoint saved and loaded into a fresh optimizer: rank 0's state_dict broadcast
        (ddp, own), ZeRO's consolidated state_dict, FSDP2 through torch.distributed.checkpoint.
        As in a fresh process, the params have no gradients afterwards."""
        self.reloads += 1
        for t in self.tensors.values():
            t.grad = None
        if self.wrapper == "fsdp":
            self._reload_dcp()
            return
        if self.wrapper == "zero":
            self.opt.consolidate_state_dict(to=0)
        sd = copy.deepcopy(self.opt.state_dict()) if self.rank == 0 else None
        box = [sd]
        self.dist.broadcast_object_list(box, src=0, group=self.pg)
        self.opt = self._build()
        self.opt.load_state_dict(box[0])

    def _reload_dcp(self) -> None:
        CHECKPOINTS[0] += 1  # the same count on every rank: every rank runs every reload
        path = os.path.join(self.scratch, f"checkpoint-{CHECKPOINTS[0]}")
        self.save_checkpoint(path)
        self.opt = self._build()
        self.load_checkpoint(path)

    def save_checkpoint(self, path: str) -> None:
        """FSDP2: params and optimizer state through torch.distributed.checkpoint (each rank its shards)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(self.module, self.opt)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=path, process_group=self.pg)

    def load_checkpoint(self, path: str) -> None:
        """Into this driver's optimizer, at this group's world size (DCP reshards on load)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        # as in a fresh process: no gradients. get_state_dict initialises a fresh optimizer's state
        # (the entries dcp.load fills) only when no param has a gradient; else it loads nothing
        for t in self.tensors.values():
            t.grad = None
        model_sd, optim_sd = get_state_dict(self.module, self.opt)
        loaded = {"model": model_sd, "optim": optim_sd}
        dcp.load(loaded, checkpoint_id=path, process_group=self.pg)
        set_state_dict(self.module, self.opt, model_state_dict=loaded["model"], optim_state_dict=loaded["optim"])
