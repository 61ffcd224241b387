"""The options of a conformance run, parsed and checked: each bad value is a usage error (exit 4,
one line) before any case runs. Plain functions of the pytest config and the option values; the
run (``run.py``) calls them while it is set up."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .candidates import Candidate
    from .golden import Spec

DTYPES = ("float32", "float64")
ALL_DTYPES = ("float64", "float32", "bfloat16", "float16")


def infer_spec(name: str, spec_ids: list[str]) -> str:
    """The spec whose id the candidate's name contains (the longest such id wins)."""
    lowered = re.sub(r"[^a-z0-9]", "", name.lower())
    hits = [s for s in spec_ids if s in lowered]
    hits = [h for h in hits if not any(h != o and h in o for o in hits)]  # adamw beats adam
    if len(hits) == 1:
        return hits[0]
    listed = ", ".join(spec_ids)
    if not hits:
        raise usage(f"cannot infer the spec from the name {name!r}; pass --optimizer-spec, one of: {listed}")
    raise usage(f"the name {name!r} is ambiguous ({', '.join(hits)}); pass --optimizer-spec, one of: {listed}")


def usage(msg: str) -> Exception:
    from .candidates import UsageError

    return UsageError(msg)


def json_object(text: str | None, option: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise usage(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise usage(f"{option} must be a JSON object of names, e.g. '{{\"decay\": \"weight_decay\"}}'")
    return value


def dtypes(values: list[str] | None) -> list[str]:
    if not values:
        return list(DTYPES)
    out = []
    for v in values:
        for d in v.split(","):
            d = d.strip()
            if d not in ALL_DTYPES:
                raise usage(f"--optimizer-dtype={d!r}: expected one of {', '.join(ALL_DTYPES)}")
            if d not in out:
                out.append(d)
    return out


def accepted(values: list[str] | None, spec: Spec) -> tuple[str, ...]:
    """--optimizer-accept: catalogued variant ids of this spec, or the precision axis
    (usage error otherwise); accepting several accepts their combinations."""
    from .compound import PRECISION

    out: list[str] = []
    for v in values or []:
        for vid in (x.strip() for x in v.split(",")):
            if vid not in spec.catalogued and vid != PRECISION:
                known = ", ".join([*spec.catalogued, PRECISION])
                raise usage(f"--optimizer-accept={vid!r}: not a catalogued variant of spec {spec.id!r} "
                             f"(its variants: {known})")
            if vid not in out:
                out.append(vid)
    return tuple(out)


DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def check_device(device: str, cand: Candidate) -> tuple[str, str]:
    """The device, and why its cases are skipped on this machine ("" when they can run). A
    malformed device is a usage error; a CUDA device this machine lacks skips every case with
    the reason (as GPU tests do on a machine without one) and the verdict says nothing was checked."""
    if not DEVICE.fullmatch(device):
        raise usage(f"--optimizer-device={device!r}: expected cpu, cuda or cuda:N")
    if device == "cpu":
        return device, ""
    if cand.api != "torch":
        raise usage(f"--optimizer-device={device}: only torch candidates run on a device other than cpu")
    import torch

    if not torch.cuda.is_available():
        return device, f"--optimizer-device={device}: CUDA is not available on this machine"
    dev = torch.device(device)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        return device, f"--optimizer-device={device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return device, ""


def goldens(load):
    """Load goldens: a file that is missing, tampered with or invalid is a usage error naming it."""
    from .golden import GoldenError

    try:
        return load()
    except GoldenError as exc:
        raise usage(str(exc)) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OSError) as exc:
        raise usage(f"the golden files cannot be loaded ({type(exc).__name__}: {exc}): reinstall the "
                     "package, or regenerate with python -m optimizer_conformance.derivations") from None


MAX_TIMEOUT = 1e6  # seconds (~11 days; poll() takes at most 2**31 ms): a larger --optimizer-timeout means the same


def timeout(config: pytest.Config) -> float:
    import math

    given = config.getoption("optimizer_timeout")
    try:
        limit = float(given)
    except (TypeError, ValueError):
        limit = float("nan")
    if not (math.isfinite(limit) and limit > 0):
        raise usage(f"--optimizer-timeout={given}: expected a number of seconds > 0")
    return min(limit, MAX_TIMEOUT)  # what select() and signal.setitimer can wait for


def isolated(config: pytest.Config, device: str) -> bool:
    """Whether the candidate runs in a candidate process (isolation.py) rather than in pytest's:
    always, except when OPTIMIZER_CONFORMANCE_IN_PROCESS=1 asks for pytest's (debugging) and for
    a conftest-built candidate on CUDA (a conftest hook reaches only a forked process, and CUDA
    only a spawned one)."""
    import os

    from .isolation import IN_PROCESS_ENV, start_method

    if os.environ.get(IN_PROCESS_ENV, "") not in ("", "0"):
        return False
    hooked = bool(config.hook.pytest_optimizer_conformance_build.get_hookimpls())
    return not (hooked and start_method(device) != "fork")


def distributed(config: pytest.Config) -> tuple[str, int] | None:
    """(wrapper, world size) of --optimizer-distributed, None without it."""
    wrapper = config.getoption("optimizer_distributed")
    given = config.getoption("optimizer_world_size")
    try:
        world = int(given)
    except (TypeError, ValueError):
        world = 0
    if world < 1:
        raise usage(f"--optimizer-world-size={given}: expected a whole number of ranks >= 1")
    if wrapper is None:
        if given != "2":
            raise usage("--optimizer-world-size needs --optimizer-distributed=ddp|zero|fsdp|own")
        return None
    return wrapper, world


def distributed_unavailable(distributed: tuple[str, int] | None, device: str) -> str:
    """Why a distributed run cannot run on this machine ("" when it can): NCCL needs one CUDA
    device per rank."""
    if not distributed or not device.startswith("cuda"):
        return ""
    import torch

    wrapper, world = distributed
    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < world:
        return (f"--optimizer-distributed={wrapper} --optimizer-world-size={world} on {device}: NCCL runs one "
                f"rank per CUDA device, and this machine has {have}")
    if not torch.distributed.is_nccl_available():
        return f"--optimizer-distributed={wrapper} on {device}: this torch build has no NCCL"
    return ""


def xdist_controller(config: pytest.Config) -> bool:
    return getattr(config, "workerinput", None) is None and config.getoption("dist", "no") != "no"
