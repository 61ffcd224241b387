"""Distributed optimizers of their own (``--optimizer-distributed=own``): a control and one mutant
per distributed variant (conformance/distributed_variants.py).

Each takes ``process_group=`` and does its own communication: every rank's ``p.grad`` holds that
rank's local gradient, and the optimizer averages it over the group before torch's own update.
The control conforms; each mutant differs from it by the one bug its variant names.

``DISTRIBUTED_CONTROLS``: spec id → class; ``DISTRIBUTED_MUTANTS``: (spec id, variant id) → class.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class AveragingAdamW(torch.optim.AdamW):
    """Data-parallel AdamW done by hand: the gradients all-reduced and divided by the world size."""

    def __init__(self, params, process_group=None, **kwargs):
        super().__init__(params, **{"foreach": False, **kwargs})
        self.process_group = process_group

    @property
    def world(self) -> int:
        return dist.get_world_size(self.process_group)

    def reduce(self, grad: torch.Tensor) -> None:
        dist.all_reduce(grad, group=self.process_group)
        grad.div_(self.world)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.reduce(p.grad)
        return super().step(closure)


def make_averaging_adamw(params, process_group=None, **hyperparameters):
    """The control as a factory (docs/distributed.md): ``make(params, process_group=...)``."""
    return AveragingAdamW(params, process_group=process_group, **hyperparameters)


class GradsSummedAdamW(AveragingAdamW):
    """distributed.grads_summed: the all-reduce sums and nothing divides by the world size."""

    def reduce(self, grad: torch.Tensor) -> None:
        dist.all_reduce(grad, group=self.process_group)


class StepPerRankAdamW(AveragingAdamW):
    """distributed.step_per_rank: each rank bumps the shared step count of every param it updated."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p, {})
                if p.grad is not None and "step" in st:
                    st["step"] += self.world - 1  # the other ranks' increments, summed in
        return loss


class WeightDecayPerRankAdamW(AveragingAdamW):
    """distributed.weight_decay_per_rank: every rank's decay of the replicated param summed in."""

    @torch.no_grad()
    def step(self, closure=None):
        decays = [group["weight_decay"] for group in self.param_groups]
        for group, wd in zip(self.param_groups, decays, strict=True):
            for p in group["params"]:
                if p.grad is not None and wd:
                    decay = p * (group["lr"] * wd)
                    dist.all_reduce(decay, group=self.process_group)  # the N ranks' decays, summed
                    p.sub_(decay)
            group["weight_decay"] = 0.0  # applied above
        try:
            return super().step(closure)
        finally:
            for group, wd in zip(self.param_groups, decays, strict=True):
                group["weight_decay"] = wd


class StateLostAdamW(AveragingAdamW):
    """distributed.state_lost_on_resume: state_dict() holds no state (it stayed on the shards)."""

    def state_dict(self):
        sd = super().state_dict()
        sd["state"] = {}
        return sd


DISTRIBUTED_CONTROLS = {"adamw": AveragingAdamW}
DISTRIBUTED_MUTANTS = {
    ("adamw", "distributed.grads_summed"): GradsSummedAdamW,
    ("adamw", "distributed.step_per_rank"): StepPerRankAdamW,
    ("adamw", "distributed.weight_decay_per_rank"): WeightDecayPerRankAdamW,
    ("adamw", "distributed.state_lost_on_resume"): StateLostAdamW,
}


# -- ranks that misbehave (tests/test_distributed.py: the verdict names the rank) --------------------

FAULT_RANK, FAULT_STEP = 1, 2


class _FaultyAdamW(AveragingAdamW):
    steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        type(self).steps += 1  # per rank process: counts every step of every case
        if dist.get_rank(self.process_group) == FAULT_RANK and type(self).steps == FAULT_STEP:
            self.fault()
        return super().step(closure)


class RaisesOnRank1(_FaultyAdamW):
    def fault(self):
        raise RuntimeError("rank 1 gives up")


class HangsOnRank1(_FaultyAdamW):
    def fault(self):
        import time

        time.sleep(3600)


class DiesOnRank1(_FaultyAdamW):
    def fault(self):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


FAULTS = {"raises": RaisesOnRank1, "hangs": HangsOnRank1, "dies": DiesOnRank1}


class AbortsOnRank1Once(AveragingAdamW):
    """Rank 1 aborts at its first step (SIGABRT, as glibc does on a corrupted heap) unless the file
    ``marker`` exists, which it writes first: ranks started after that run as AveragingAdamW.
    ``marker=""``: it aborts every time."""

    def __init__(self, params, marker: str = "", process_group=None, **kwargs):
        super().__init__(params, process_group=process_group, **kwargs)
        self.marker = marker

    @torch.no_grad()
    def step(self, closure=None):
        import os
        import resource

        if dist.get_rank(self.process_group) == FAULT_RANK and not (self.marker and os.path.exists(self.marker)):
            if self.marker:
                open(self.marker, "w").close()
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file where the test runs
            os.abort()
        return super().step(closure)
