"""Hooks a user's conftest.py implements to take part in a ``pytest --optimizer=...`` run."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_optimizer_conformance_build(spec: Any, case: Any, params: list, hyperparameters: dict[str, Any],
                                       dtype: str, device: str) -> Any:
    """Build the candidate for one case (called again for a resume case's fresh instance and, for
    a functional candidate, after each hyperparameter change).

    ``spec``/``case``: the golden spec and case (``case.id``, ``case.features``). ``params``: for a
    torch candidate, the param groups the harness made (``[{"params": [tensor, ...], **settings}]``,
    every setting under torch's name); for a NumPy or functional candidate, the list of arrays of
    one param group (called once per group). ``hyperparameters``: torch-named settings (of the
    first group for torch, of that group otherwise), e.g. ``{"lr": 0.1, "betas": (0.9, 0.999),
    "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "maximize": False}``. ``dtype``:
    ``"float32"``, ...; ``device``: ``"cpu"``, ``"cuda:0"``, ...

    A CUDA-graph case (``--optimizer-device=cuda``, conformance/cuda_graph.py) also has
    ``"capturable": True`` in ``hyperparameters``: build the capturable implementation, or raise
    ``CaseSkipped`` if there is none.

    Return the optimizer (torch ``Optimizer``, NumPy object with ``step(grads)``, or functional
    object with ``init``/``update``, as ``--optimizer`` is), or ``None`` for the default
    construction from ``--optimizer``. Raise
    ``optimizer_conformance.conformance.candidates.CaseSkipped("reason")`` to skip a case the
    candidate cannot express: never build it with other settings.
    """
