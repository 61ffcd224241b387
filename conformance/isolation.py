"""Candidate isolation: the candidate's code runs in a supervised process, never in pytest's.

One *candidate process* per pytest process (one per pytest-xdist worker), forked when the run is
configured: it imports the candidate (under ``--optimizer-timeout``), reports what it found (the
API, the name, the constructor's keyword names, a declared spec) and then runs the cases it is sent
over a pipe, one at a time, answering each with its :class:`~.scoring.CaseResult`. The pytest
process itself then never imports the candidate nor its framework (torch).

Whatever the candidate does cannot take the run down: ``os._exit``, a signal or a segfault, a
``sys.exit``/``KeyboardInterrupt``/other ``BaseException`` inside ``step()``, or a hang become the
verdict of the case that ran (``candidate process died with SIGSEGV at step 3 of case adam/defaults
[float32, cpu]``; the step is known because the process writes the step it is at into shared
memory before each one), and the next case gets a fresh process (the candidate imported again).

A conftest that builds the candidate (``pytest_optimizer_conformance_build``) runs in the
candidate process too: the process is forked from pytest's after the conftest was loaded, so it
has the hook. The ``--optimizer-contract`` checks run there as well (one request per check). On a
CUDA device the candidate process is *spawned* (a fresh interpreter: CUDA cannot be used in a
process forked from one that initialised it) — except with a conftest hook, which a fresh
interpreter would not have: that one combination runs in the pytest process. The environment
variable ``OPTIMIZER_CONFORMANCE_IN_PROCESS=1`` runs everything in the pytest process (debugging
with pdb); ``OPTIMIZER_CONFORMANCE_START_METHOD=spawn`` spawns on the CPU too (how the CUDA path
is tested on machines without a GPU).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

IN_PROCESS_ENV = "OPTIMIZER_CONFORMANCE_IN_PROCESS"
START_METHOD_ENV = "OPTIMIZER_CONFORMANCE_START_METHOD"


def start_method(device: str) -> str:
    """How the candidate process starts: forked (cheap: the pytest process's imports are
    inherited), or spawned on a CUDA device (or when START_METHOD_ENV asks for it)."""
    asked = os.environ.get(START_METHOD_ENV, "")
    if asked in ("fork", "spawn"):
        return asked
    return "fork" if device == "cpu" else "spawn"


class Died(Exception):
    """The candidate process died or was killed (the message says how and where)."""


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        return f"died with {_signal_name(exitcode)}"
    return f"exited with status {exitcode}"


class CandidateProcess:
    """The pytest process's end: start, ask, kill, restart."""

    def __init__(self, path: str, kwargs: dict[str, Any], search: tuple[str, ...], timeout: float,
                 args: dict[str, str] | None = None, jit: bool = True, hook: Any = None,
                 method: str = "fork"):
        import multiprocessing

        self.path, self.kwargs, self.search, self.timeout = path, kwargs, search, timeout
        self.args, self.jit = dict(args or {}), jit  # --optimizer-args, --optimizer-no-jit
        if hook is not None and method != "fork":
            raise ValueError("a conftest hook reaches only a forked candidate process")
        self.hook = hook  # the conftest's pytest_optimizer_conformance_build (inherited by the fork)
        self.ctx = multiprocessing.get_context(method)
        self.step = self.ctx.RawValue("i", 0)  # the step the candidate process is at (shared memory)
        self.proc = None
        self.conn = None
        self.deaths = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> tuple[str, Any]:
        """Fork and import the candidate: ("ready", info) or ("usage", message)."""
        import sys

        for stream in (sys.stdout, sys.stderr):  # else the child inherits and may re-print their buffers
            with contextlib.suppress(Exception):
                stream.flush()
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=serve, args=(child, self.step, self.path, self.kwargs, self.search,
                                                     self.args, self.jit, self.hook),
                                 daemon=True, name="optimizer-candidate")
        proc.start()
        child.close()
        self.proc, self.conn = proc, parent
        try:
            return self._receive(self.timeout)
        except TimeoutError:
            self.stop()
            return "usage", (f"--optimizer={self.path}: importing the candidate did not finish within "
                             f"{self.timeout:g} s (--optimizer-timeout): it hangs at import or is far too slow")
        except Died as exc:
            return "usage", f"--optimizer={self.path}: the candidate process {exc} while importing the candidate"

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        with contextlib.suppress(OSError):
            self.conn.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)

    def _receive(self, timeout: float | None) -> tuple[str, Any]:
        from multiprocessing.connection import wait

        ready = wait([self.conn, self.proc.sentinel], timeout)
        if self.conn in ready:
            try:
                return self.conn.recv()
            except (EOFError, OSError):
                pass
        elif not ready:
            raise TimeoutError
        self.proc.join(5)
        code = self.proc.exitcode
        self.stop()
        raise Died(how_it_ended(code))

    def ask(self, message: tuple, timeout: float | None) -> tuple[str, Any]:
        """Send a request and wait for its answer. Died: the process is gone (it is restarted on
        the next request); TimeoutError: it was killed after ``timeout`` seconds."""
        if self.proc is None:
            kind, payload = self.start()
            if kind != "ready":
                raise Died(f"could not be restarted: {payload}")
        self.step.value = 0
        with contextlib.suppress(OSError):  # a dead process: _receive says how
            self.conn.send(message)
        try:
            return self._receive(timeout)
        except TimeoutError:
            self.stop()
            raise
        except Died:
            self.deaths += 1
            raise


def serve(conn, step, path: str, kwargs: dict[str, Any], search: tuple[str, ...],
          args: dict[str, str] | None = None, jit: bool = True, hook: Any = None) -> None:
    """The candidate process: import the candidate, then answer requests until the pipe closes."""
    import faulthandler

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for pytest: it stops this process
    faulthandler.disable()  # a crash is the verdict of its case, not a dump on pytest's stderr
    try:
        conn.send(_import(path, kwargs, search, args or {}, jit, hook))
        from .scoring import STEP_HOOKS

        STEP_HOOKS.append(lambda t: setattr(step, "value", t))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            answer = _answer(message, step)
            try:
                conn.send(answer)
            except (EOFError, OSError):
                break
            except BaseException as exc:  # noqa: BLE001 - an answer that does not pickle: a harness error
                from .candidates import _one_line

                conn.send(("error", f"the answer to {message[0]!r} could not be sent back: {_one_line(exc)}"))
    finally:
        os._exit(0)  # no atexit handlers, no pytest teardown: they belong to the parent


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the pytest process dies, however it dies
    (SIGKILL included), so that a killed run leaves no candidate process behind."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _import(path: str, kwargs: dict[str, Any], search: tuple[str, ...], args: dict[str, str],
            jit: bool, hook: Any = None) -> tuple[str, Any]:
    from .candidates import Candidate, UsageError, _one_line, parameter_names

    try:
        cand = Candidate.from_path(path, kwargs, search=search)
    except UsageError as exc:
        return "usage", str(exc)
    except BaseException as exc:  # noqa: BLE001 - anything the candidate's module or detection raised
        return "usage", f"--optimizer={path!r}: inspecting the candidate raised {_one_line(exc)}"
    cand.args, cand.jit, cand.hook = args, jit, hook
    global CANDIDATE
    CANDIDATE = cand
    return "ready", {"api": cand.api, "name": cand.name, "parameters": parameter_names(cand.target),
                     "spec": getattr(cand.target, "conformance_spec", None),
                     "conformance_args": dict(getattr(cand.target, "conformance_args", None) or {})}


CANDIDATE = None  # the candidate, in the candidate process


def _answer(message: tuple, step) -> tuple[str, Any]:
    from .candidates import UsageError, _one_line

    op = message[0]
    try:
        if op == "check":  # protocol, kwargs and a first construction, before any case runs
            from .kinds import load_spec
            from .preflight import check_candidate

            try:
                check_candidate(CANDIDATE, load_spec(message[1]))
            except UsageError:
                raise
            except BaseException as exc:  # noqa: BLE001 - the candidate's code, while it was built
                return "usage", f"--optimizer={CANDIDATE.path}: building the candidate raised {_one_line(exc)}"
            return "ok", None
        if op == "case":
            return "result", _run(message[1], step)
        if op == "contract":
            return _contract(*message[1:])
        return "error", f"unknown request {op!r}"
    except UsageError as exc:
        return "usage", str(exc)
    except BaseException as exc:  # noqa: BLE001 - a harness error: said, never a dead process
        return "error", _one_line(exc)


def _contract(check: str, spec_id: str, dtype: str, device: str) -> tuple[str, Any]:
    """One --optimizer-contract check: ("ok", None), ("skipped", why) or ("broken", message)."""
    from .contract import ContractBroken, ContractSkipped, run_check
    from .kinds import load_spec
    from .scoring import exc_line

    try:
        run_check(check, CANDIDATE, load_spec(spec_id), dtype, device)
    except ContractSkipped as exc:
        return "skipped", str(exc)
    except ContractBroken as exc:
        return "broken", str(exc)
    except BaseException as exc:  # noqa: BLE001 - sys.exit, KeyboardInterrupt, ... in the candidate's code
        return "broken", f"contract {check} broken: the candidate raised {exc_line(exc)}"
    return "ok", None


def _run(request: dict[str, Any], step):
    from .kinds import load_spec
    from .runner import run_case
    from .scoring import CaseResult, exc_line

    spec = load_spec(request["spec"])
    case = next(c for c in spec.cases if c.id == request["case"])
    try:
        return run_case(CANDIDATE, spec, case, request["dtype"], request["device"],
                        accept=tuple(request["accept"]), mode=request["mode"])
    except BaseException as exc:  # noqa: BLE001 - e.g. KeyboardInterrupt raised by step() itself
        res = CaseResult(spec.id, case.id, request["dtype"], request["device"], "failed",
                         f"step {step.value}: the candidate raised {exc_line(exc)}", mode=request["mode"])
        res.params_conform = False
        return res
