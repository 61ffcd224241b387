"""The drivers hand gradients over as a training loop does: written into the param's existing
``.grad`` (NumPy: the same array) from one step to the next, a fresh one after a step without
gradient and after a resume. So an optimizer that keeps the gradient itself as state, not a copy
(``buf = grad`` where torch writes ``torch.clone(grad).detach()``), fails: with
``zero_grad(set_to_none=False)`` the next backward overwrites its state.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer_conformance.conformance.candidates import Candidate
from optimizer_conformance.conformance.drivers import NumpyDriver, TorchDriver
from optimizer_conformance.conformance.kinds import load_spec
from optimizer_conformance.conformance.runner import run_case
from optimizer_conformance.reference.sgd import SGD as NumpySGD

try:  # run from the repository root (python -m pytest): tests/ is a namespace package
    from tests.mutants.sgd_mutants import SGD as TorchSGD
except ModuleNotFoundError:  # plain pytest puts tests/ itself on sys.path (rootdir-relative)
    from mutants.sgd_mutants import SGD as TorchSGD

DTYPES = ("float32", "float64")
SPEC = load_spec("sgd")


class AliasingSGD(TorchSGD):
    """torch's SGD but for one missing clone: the momentum buffer *is* the first gradient tensor."""

    def _first_buffer(self, grad, group):
        return grad.detach()


class AliasingNumpySGD(NumpySGD):
    """The NumPy reference, keeping the first gradient array it is given as its momentum buffer."""

    def step(self, grads):
        new = [g is not None and "momentum_buffer" not in st for g, st in zip(grads, self.state, strict=True)]
        super().step(grads)
        for g, st, first in zip(grads, self.state, new, strict=True):
            if first and "momentum_buffer" in st:  # b₁ = g (no weight decay here): keep g itself, not a copy
                st["momentum_buffer"] = g


def _case(case_id: str):
    return next(c for c in SPEC.cases if c.id == f"sgd/{case_id}")


def _torch(cls: type) -> Candidate:
    return Candidate(path=f"{cls.__module__}.{cls.__name__}", target=cls, api="torch", kwargs={})


def _numpy(cls: type) -> Candidate:
    return Candidate(path=f"{cls.__module__}.{cls.__name__}", target=cls, api="numpy", kwargs={})


def test_torch_driver_writes_each_gradient_into_the_same_grad_tensor():
    case = _case("momentum")
    drv = TorchDriver(_torch(torch.optim.SGD), SPEC, case, "float64", "cpu")
    drv.step(case.steps[0].grads)
    first = {n: t.grad for n, t in drv.tensors.items()}
    drv.step(case.steps[1].grads)
    for name, t in drv.tensors.items():
        assert t.grad is first[name], name  # the same tensor ...
        want = np.asarray(case.steps[1].grads[name], dtype=np.float64).reshape(t.shape)
        assert np.array_equal(t.grad.numpy(), want), name  # ... holding the second gradient


def test_torch_driver_gives_a_fresh_grad_after_a_step_without_one_and_after_a_resume():
    case = _case("groups_and_missing_grads")
    drv = TorchDriver(_torch(torch.optim.SGD), SPEC, case, "float64", "cpu")
    steps = case.steps
    t_missing, name = next((t, n) for t in range(1, len(steps) - 1) for n, g in steps[t].grads.items()
                           if g is None and steps[t - 1].grads[n] is not None and steps[t + 1].grads[n] is not None)
    for step in steps[:t_missing]:
        drv.step(step.grads)
    before = drv.tensors[name].grad
    assert before is not None
    drv.step(steps[t_missing].grads)
    assert drv.tensors[name].grad is None  # no gradient: p.grad stays None, as backward leaves it
    drv.step(steps[t_missing + 1].grads)
    assert drv.tensors[name].grad is not None and drv.tensors[name].grad is not before
    drv.reload()
    assert all(t.grad is None for t in drv.tensors.values())  # a fresh process has no gradients


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_sgd_keeping_the_gradient_as_its_buffer_fails_and_is_named(dtype):
    results = [run_case(_torch(AliasingSGD), SPEC, case, dtype) for case in SPEC.cases]
    failed = [r for r in results if r.outcome == "failed"]
    momentum = [c.id for c in SPEC.cases if any(g.hyperparameters.get("momentum", 0) for g in c.groups)]
    # with weight decay or maximize the buffer starts from a new tensor (±g + λθ): no alias there
    assert {"sgd/momentum", "sgd/resume"} <= {r.case for r in failed} <= set(momentum), \
        [(r.case, r.outcome) for r in results]
    for r in failed:
        assert "keeps p.grad itself as state" in r.reason and "['momentum_buffer']" in r.reason, r.reason
    control = [run_case(_torch(TorchSGD), SPEC, case, dtype) for case in SPEC.cases]
    assert all(r.outcome == "passed" and not r.reason for r in control), [(r.case, r.reason) for r in control]


def test_numpy_driver_reuses_the_gradient_array():
    case = _case("momentum")
    drv = NumpyDriver(_numpy(NumpySGD), SPEC, case, "float64", "cpu")
    name = case.params[0].name
    first = drv._grad(name, case.steps[0].grads[name])
    again = drv._grad(name, case.steps[1].grads[name])
    assert again is first
    assert np.array_equal(again.reshape(-1), np.asarray(case.steps[1].grads[name], dtype=np.float64).reshape(-1))
    assert drv._grad(name, None) is None
    assert drv._grad(name, case.steps[2].grads[name]) is not first  # fresh after a step without gradient


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_sgd_keeping_the_gradient_array_as_its_buffer_fails(dtype):
    momentum = _case("momentum")
    assert run_case(_numpy(AliasingNumpySGD), SPEC, momentum, dtype).outcome == "failed"
    assert run_case(_numpy(NumpySGD), SPEC, momentum, dtype).outcome == "passed"
