"""Factories for library optimizers that must be switched on before their first ``step()``.

schedulefree's optimizers (``AdamWScheduleFree``, ``SGDScheduleFree``, their ``Reference``
classes, ...) are built in *eval* mode and raise on ``step()`` until ``optimizer.train()`` is
called (``schedulefree/adamw_schedulefree.py``, ``step``: "Optimizer was not in train mode").
The harness constructs and steps a candidate directly, so the board names them through this
module::

    --optimizer=optimizer_conformance.conformance.wrappers:schedulefree.AdamWScheduleFree

``schedulefree.<Name>`` here is a factory with the class's own signature (``inspect.signature``
follows ``__wrapped__``, so the plugin sees the settings the class accepts) that constructs
``schedulefree.<Name>(params, **kwargs)``, calls ``train()`` and returns the optimizer. It only
wraps: no arithmetic of the library is changed or replaced. A resume case rebuilds through the
factory and then loads the state_dict (which carries the group's ``train_mode``).

Libraries are imported when a factory is first asked for, never when this module is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def in_train_mode(cls: type) -> Callable[..., Any]:
    """A factory ``(params, **kwargs) -> cls(params, **kwargs)`` with ``train()`` already called."""

    def build(params, *args: Any, **kwargs: Any):
        opt = cls(params, *args, **kwargs)
        opt.train()
        return opt

    build.__name__ = build.__qualname__ = cls.__name__
    build.__doc__ = f"{cls.__module__}.{cls.__qualname__}(params, **kwargs), then .train()"
    build.__wrapped__ = cls  # the class's signature: the settings it accepts
    return build


class TrainMode:
    """``TrainMode("schedulefree").AdamWScheduleFree``: the train-mode factory of that class."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        cls = getattr(importlib.import_module(self._module), name)
        return in_train_mode(cls)


schedulefree = TrainMode("schedulefree")
