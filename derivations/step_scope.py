"""The scope of the step counter: one per parameter (torch) or one for the whole optimizer.

``torch.optim`` keeps ``state[p]["step"]`` per parameter: a parameter without a gradient on some
``step()`` call neither moves nor counts that call. Many libraries keep one counter instead, for a
param group or for the whole optimizer, advanced on every ``step()`` call: Keras's
``optimizer.iterations`` (keras/src/optimizers/base_optimizer.py ``BaseOptimizer.apply``, read as
``local_step = iterations + 1`` by every ``update_step``), pytorch_optimizer's ``group['step']``
(incremented once per call for each group, before its params are visited). A param group's
counter advanced on every call equals the optimizer's, so the two scopes are one variant here:
the bias corrections (and every other use of t) read the number of ``step()`` calls so far
(:data:`~.rule.steps_taken`), not the param's own count. It shows as soon as a param misses a
gradient on a call before one it takes: the cases ``*/groups_and_missing_grads`` tell it apart.

One variant, the same id in every spec whose rule counts steps per parameter and where a library
does it (``lamb.group_step`` and ``madgrad.global_step`` predate it and stay as named).
"""

from __future__ import annotations

from .rule import Variant, steps_taken

GLOBAL_COUNTER_ID = "step.global_counter"


def global_counter(who: str, sources: tuple[str, ...]) -> Variant:
    """``step.global_counter`` for a rule whose line ``step`` counts the param's own steps."""
    return Variant(
        id=GLOBAL_COUNTER_ID,
        title="one step counter for the whole optimizer (or per param group)",
        summary="t = the number of optimizer.step() calls, advanced also on calls where the param "
        "has no gradient (torch counts each param's own steps)",
        who=who,
        sources=sources,
        delta=lambda rule: rule.replace("step", steps_taken),
    )
