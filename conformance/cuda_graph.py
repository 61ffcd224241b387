"""Golden cases with the candidate's ``step()`` captured in a CUDA graph and replayed.

torch's *capturable* optimizers (``capturable=True``) keep their step counters and every scalar
on the device, so that ``step()`` can be captured once with ``torch.cuda.graph`` and replayed:
the usual way to run a whole training step as one graph. A graph case is a golden case run that
way, exactly as torch's own graphed-optimizer tests do it:

1. the candidate is built with ``capturable=True`` (added to ``--optimizer-kwargs``);
2. the first ``WARMUP`` steps run eagerly, on a side stream as torch's recipe says (the state
   is created then: a graph cannot allocate it);
3. ``step()`` is captured once and replayed for every later step, each step's gradients copied
   into the *same* ``p.grad`` tensors the graph reads (static inputs);
4. the params and state after every step are compared with the goldens as for any case.

Only cases a graph can replay qualify: every param has a dense gradient on every step, and no
setting changes and no state_dict reload happen after the capture (a replay re-runs the captured
kernels with the captured scalars). ``graph_ineligible`` says why a case does not qualify.

The graph itself is behind :class:`CudaGraphs` so that the driver's bookkeeping (warm-up, static
gradients, capture once, replay) is exercised without a GPU by :class:`EagerReplay`, a stand-in
that "replays" by calling ``step()`` again (tests/test_cuda.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .candidates import Candidate, CaseSkipped
from .drivers import TorchDriver
from .golden import Case, SparseGrad, Spec

MODE = "cuda_graph"  # CaseResult.mode / CaseRecord.mode of a graph case ("eager" otherwise)
WARMUP = 2  # eager steps before the capture
FLAGS = {"capturable": True}


def graph_ineligible(case: Case) -> str | None:
    """Why a CUDA graph cannot replay this case, or None."""
    if getattr(case, "closed_loop", False):
        return "closed-loop cases call a closure; a captured step() cannot"
    if case.n_steps < WARMUP + 2:
        return f"the case has {case.n_steps} steps: a graph case needs {WARMUP} warm-up steps and ≥ 2 replays"
    for t, step in enumerate(case.steps, start=1):
        for name, g in step.grads.items():
            if g is None:
                return f"{name} has no gradient at step {t} (a replay updates every captured param)"
            if isinstance(g, SparseGrad):
                return "sparse gradients cannot be captured"
        if t > WARMUP and (step.changes or step.reload_before):
            return f"a setting change or state_dict reload before step {t}, after the capture"
    return None


def candidate_ineligible(cand: Candidate, device: str) -> str | None:
    """Why this candidate gets no graph cases on this device, or None."""
    if cand.api != "torch":
        return "CUDA graphs are for torch candidates"
    if not device.startswith("cuda"):
        return "CUDA graphs need --optimizer-device=cuda"
    if cand.kwargs.get("capturable") is False:
        return "--optimizer-kwargs sets capturable=false"
    if not (cand.accepts("capturable") or cand.hooked()):
        return "the candidate takes no capturable flag"
    return None


class CudaGraphs:
    """The real thing, as torch's CUDA-graph recipe has it: warm-up steps on a side stream,
    ``torch.cuda.graph`` capture, and the graph's replay."""

    def __init__(self, torch: Any):
        self.torch = torch

    def warmup(self, fn: Callable[[], Any], device: Any) -> None:
        torch = self.torch
        with torch.cuda.device(device):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                fn()
            torch.cuda.current_stream().wait_stream(side)

    def capture(self, fn: Callable[[], Any], device: Any) -> Callable[[], None]:
        torch = self.torch
        with torch.cuda.device(device):
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fn()
        return graph.replay


class EagerReplay:
    """A stand-in for tests without a GPU: capture runs nothing, replay calls ``fn`` again."""

    def __init__(self) -> None:
        self.warmups = 0
        self.captures = 0
        self.replays = 0

    def warmup(self, fn: Callable[[], Any], device: Any = None) -> None:
        self.warmups += 1
        fn()

    def capture(self, fn: Callable[[], Any], device: Any = None) -> Callable[[], None]:
        self.captures += 1

        def replay() -> None:
            self.replays += 1
            fn()

        return replay


class GraphDriver(TorchDriver):
    """A TorchDriver whose steps after the warm-up are replays of one captured ``step()``."""

    def __init__(self, cand: Candidate, spec: Spec, case: Case, dtype: str, device: str,
                 graphs: Any = None, flags: dict[str, Any] | None = None):
        why = graph_ineligible(case)
        if why:
            raise CaseSkipped(f"not a CUDA-graph case: {why}")
        import torch

        self.flags = dict(FLAGS if flags is None else flags)
        self.graphs = graphs if graphs is not None else CudaGraphs(torch)
        self.replay: Callable[[], None] | None = None
        self.t = 0
        self.static: dict[str, Any] = {}
        super().__init__(cand, spec, case, dtype, device)

    def step(self, grads: dict[str, np.ndarray | None]) -> None:
        torch = self.torch
        self.t += 1
        for name, t in self.tensors.items():
            g = torch.tensor(grads[name], dtype=self.dtype, device=self.device).reshape(t.shape)
            if name not in self.static:  # allocated once: the graph reads these very tensors
                self.static[name] = g
                t.grad = g
            else:
                if t.grad is not self.static[name]:
                    raise RuntimeError(f"step() replaced {name}.grad: a captured graph reads the old tensor")
                self.static[name].copy_(g)
        if self.t <= WARMUP:
            self.graphs.warmup(self.opt.step, self.device)
            return
        if self.replay is None:
            self.replay = self.graphs.capture(self.opt.step, self.device)
        self.replay()

    def reload(self) -> None:  # before the capture only (graph_ineligible)
        if self.replay is not None:
            raise CaseSkipped("a CUDA-graph case cannot reload state after the capture")
        super().reload()
        for name, g in self.static.items():  # the graph's inputs stay the same tensors across a resume
            self.tensors[name].grad = g
