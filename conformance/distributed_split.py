"""The gradient split of a distributed run: each rank's local gradient, chosen so that the average
over the ranks is exactly the golden gradient (dense: :func:`local_gradient`; sparse COO:
:func:`local_sparse_gradient`). Pure functions of torch tensors; no process group needed."""

from __future__ import annotations

import math

_INT = {8: "int64", 4: "int32", 2: "int16"}


def local_gradient(g, rank: int, world_size: int):
    """Rank ``rank``'s share of the gradient ``g`` (a torch tensor in the run's dtype): the
    shares of the N ranks average to ``g`` exactly, in every dtype, whatever order the reduction
    adds them in and whether it divides before or after (for N a power of two; for other N the
    division by N itself rounds, as it does in every data-parallel run).

    ``g = hi + lo`` where ``hi`` is ``g`` with its last k = ceil(log2 N) mantissa bits cleared and
    ``lo = g - hi`` (exact, at most k bits): ``N·hi`` and ``N·lo`` are exact. Element i goes as
    ``N·hi`` to rank i mod N and as ``N·lo`` to rank (i+1) mod N; the other ranks get 0 there (so
    every rank's local gradient differs). Non-finite elements go unchanged to every rank."""
    import torch

    if world_size == 1:
        return g.clone()
    k = max(1, math.ceil(math.log2(world_size)))
    flat = g.reshape(-1)
    ints = flat.view(getattr(torch, _INT[flat.element_size()]))
    hi = (ints & ~((1 << k) - 1)).view(flat.dtype)
    lo = flat - hi
    idx = torch.arange(flat.numel(), device=flat.device) % world_size
    zero = torch.zeros_like(flat)
    share = torch.where(idx == rank, hi * world_size, zero) + \
        torch.where((idx + 1) % world_size == rank, lo * world_size, zero)
    share = torch.where(torch.isfinite(flat), share, flat)
    return share.reshape(g.shape)


def local_sparse_gradient(indices, values, rank: int, world_size: int):
    """Rank ``rank``'s entries of a sparse COO gradient (``indices`` (ndim, nnz), ``values`` (nnz,),
    uncoalesced: an index may repeat): entry j's value split as by :func:`local_gradient` (``N·hi``
    to rank j mod N, ``N·lo`` to rank (j+1) mod N), each rank keeping only the entries it holds a
    share of, so that the union of the ranks' indices is the gradient's own (an entry is never made
    up: an explicit zero of a sparse gradient is a touched element). An entry whose value is 0 goes
    to rank j mod N as 0. Returns (indices, values) of this rank, possibly empty."""
    import torch

    shares = local_gradient(values, rank, world_size)
    j = torch.arange(values.numel(), device=values.device) % world_size
    keep = (shares != 0) | ((values == 0) & (j == rank)) | ~torch.isfinite(values)
    return indices[:, keep], shares[keep]
