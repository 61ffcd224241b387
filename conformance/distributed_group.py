"""The parent's end of a distributed run: N rank processes, started once and reused across cases.

Like the candidate process of ``isolation.py`` (whose import of the candidate it reuses), but N of
them in one torch.distributed process group (gloo on 127.0.0.1 and a free port; NCCL with one
CUDA device per rank for ``--optimizer-device=cuda``). Each case is sent to every rank; rank 0
answers with the scored result. The group outlives a case that every rank finished; after a case
that every rank answered but some with an error (the ranks may be out of step in their
collectives) the ranks move on to a fresh process group (``dist.new_group``, through the store);
after a rank was stopped early (below), hung or died every rank is killed and the next case
starts new ranks.

How a case ends when a rank misbehaves, always naming the rank:

- a rank raises: its error is the verdict (``rank 1: step 3: step() raised ValueError: ...``).
  The other ranks are then waiting in a collective that cannot complete, or raising too (a
  candidate that raises on every rank): they get :data:`RELEASE_GRACE` to answer, and if some
  have not, the ranks that ended their case with an error are stopped (their answers are in), so
  that the collectives the others wait in fail at once ("Connection closed by peer") instead of
  at the collective timeout (``init_process_group(timeout=...)``, half the case's time limit).
  Those collectives' errors are not the verdict;
- a rank dies (a signal, ``os._exit``): ``rank 1 died with SIGKILL at step 3 of case ...``;
- a rank hangs: ``rank 1 did not finish the case within 60 s (--optimizer-timeout) ...``.

On the CPU the ranks are forked from a *fork server* (``multiprocessing``'s ``forkserver``)
that has imported torch, torch.distributed and what an optimizer's constructor imports (dynamo)
once (:data:`PRELOAD`): each rank then imports only this package's rank code and the candidate,
where every rank forked from pytest's process (which never imports torch) would import torch
itself, seconds each. The server is started by the first group and stopped and reaped (with
multiprocessing's resource tracker) when the last group of the process stops, or at its exit.
Where the server cannot be used (a rank it starts imports the main module again, which a script
calling ``pytest.main()`` unguarded would run again: :func:`fork_server_usable`) the ranks are
forked from this process; on CUDA they are spawned (a process that initialised CUDA cannot fork).

:meth:`RankGroup.stop` kills and reaps every rank, so that no process is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from typing import Any

from .isolation import Died, how_it_ended

# How a collective that gave up because of another rank says so: not the verdict of the case.
COLLATERAL = ("gloo", "Gloo", "Connection closed", "Connection reset", "timed out", "Timed out", "Timeout",
              "NCCL", "ProcessGroup", "Socket", "peer", "on rank ")


START_TIMEOUT = 120.0  # seconds for N processes to import torch and the candidate (at least)
# seconds the other ranks get to answer after one ended its case with an error, before that one is
# stopped so that the collectives they wait in fail at once (see the module docstring)
RELEASE_GRACE = 0.5


# what the fork server imports before it forks a rank (an optimizer's constructor imports dynamo)
PRELOAD = ["torch", "torch.distributed", "torch.nn.parallel", "torch._dynamo"]
_SERVED: set[int] = set()  # the groups (by id) whose ranks the fork server forks


def fork_server_usable() -> bool:
    """Whether ranks may start from the fork server: each imports the main module again (as
    multiprocessing does), harmless for ``python -m pytest``, ``python -c`` and pytest's own
    script, but a script that calls ``pytest.main()`` unguarded would run again."""
    import sys

    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return name.endswith("__main__")  # python -m pytest: not imported again
    path = getattr(main, "__file__", None)
    return path is None or os.path.basename(path) in ("pytest", "py.test")


def _rank_context(device: str):
    """Where the ranks start: spawned on CUDA, else forked by the fork server (started on first
    use, with :data:`PRELOAD`), else forked from this process."""
    import atexit
    import multiprocessing

    if device.startswith("cuda"):
        return multiprocessing.get_context("spawn")
    if not fork_server_usable():
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    if not _SERVED:
        ctx.set_forkserver_preload(PRELOAD)
        atexit.register(_stop_fork_server)  # stopping a stopped server does nothing
    return ctx


def _stop_fork_server() -> None:
    """Stop the fork server, then multiprocessing's resource tracker (which it started), and wait
    for both: they would end at this process's exit, left for the system to reap. ``_stop`` is
    multiprocessing's own (not public); without it they end with this process, as before."""
    from multiprocessing import forkserver, resource_tracker

    for server in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(server, "_stop", None)
        if stop is not None:
            with contextlib.suppress(Exception):
                stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RankGroup:
    def __init__(self, path: str, kwargs: dict[str, Any], search: tuple[str, ...], timeout: float,
                 wrapper: str, world: int, device: str = "cpu", args: dict[str, str] | None = None,
                 jit: bool = True):
        self.path, self.kwargs, self.search, self.timeout = path, kwargs, search, timeout
        self.wrapper, self.world, self.device = wrapper, world, device
        self.args, self.jit = dict(args or {}), jit
        self.ctx = _rank_context(device)
        self.served = self.ctx.get_start_method() == "forkserver"
        self.steps = self.ctx.RawArray("i", world)  # the step each rank is at (shared memory)
        self.procs: list = []
        self.conns: list = []
        self.scratch = ""
        self.restarts = 0
        self.released: list[int] = []  # the ranks stopped early in the last request (_gather)
        self.died: dict[int, str] = {}  # the ranks that died in the last request: how (``died with SIGABRT``)

    @property
    def collective_timeout(self) -> float:
        return max(1.0, self.timeout / 2)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> tuple[str, Any]:
        """Start the N ranks: ("ready", rank 0's info about the candidate) or ("usage", message)."""
        import sys

        from .distributed import serve_rank

        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        if self.served:
            _SERVED.add(id(self))
        self.scratch = tempfile.mkdtemp(prefix="optimizer-conformance-dist-")
        port = free_port()
        for rank in range(self.world):
            parent, child = self.ctx.Pipe()
            proc = self.ctx.Process(target=serve_rank, name=f"optimizer-rank-{rank}", daemon=True,
                                    args=(rank, self.world, port, child, self.steps, self.path, self.kwargs,
                                          self.search, self.args, self.jit, self.wrapper, self.device,
                                          self.collective_timeout, self.scratch))
            try:
                proc.start()
            except Exception as exc:  # noqa: BLE001 - e.g. a fork server that died importing torch
                self._stop_ranks()
                return "usage", f"--optimizer-distributed={self.wrapper}: rank {rank} could not be started: {exc!r}"
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        ready = None
        # importing torch in N processes at once may take long on a busy machine: not the candidate's doing
        answers, trouble = self._gather(max(self.timeout, START_TIMEOUT))
        for rank in range(self.world):
            kind, info = answers.get(rank, ("ready", None))
            if kind != "ready":
                self._stop_ranks()
                return kind, info
            if rank == 0:
                ready = info
        if not trouble:
            for conn in self.conns:
                conn.send("join")
            answers, trouble = self._gather(self.collective_timeout + START_TIMEOUT / 4)
            info = next((a[1] for a in answers.values() if a[0] != "joined"), None)
            if info:
                self._stop_ranks()
                return "usage", info
        if trouble:
            self._stop_ranks()
            return "usage", (f"--optimizer-distributed={self.wrapper}: starting {self.world} ranks: "
                             f"{'; '.join(trouble)}")
        return "ready", ready

    def stop(self) -> None:
        """Kill every rank and wait for it, and stop the fork server when no other group of this
        process uses it: nothing is left behind. A later request starts the group again."""
        self._stop_ranks()
        if id(self) in _SERVED:
            _SERVED.discard(id(self))
            if not _SERVED:
                _stop_fork_server()

    def _stop_ranks(self) -> None:
        """Kill every rank and wait for it (the fork server stays, for the group's next ranks)."""
        procs, self.procs, conns, self.conns = self.procs, [], self.conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        for proc in procs:
            proc.join(10)
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = ""

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    # -- requests --------------------------------------------------------------------------------
    def _gather(self, timeout: float, ended_early=None) -> tuple[dict[int, Any], list[str]]:
        """Every rank's answer within ``timeout`` seconds: (answers by rank, what went wrong).

        ``ended_early(answer)``: whether a rank's answer ends the case before its last step with an
        error. If the other ranks have not answered :data:`RELEASE_GRACE` seconds after one did,
        the ranks that did are stopped (listed in ``self.released``): the collectives the others
        wait in then fail at once instead of at the collective timeout."""
        from multiprocessing.connection import wait

        answers: dict[int, Any] = {}
        dead: dict[int, str] = {}
        self.released = []
        deadline = time.monotonic() + timeout
        grace = None  # when the ranks that ended early are stopped, if the others have not answered
        while len(answers) + len(dead) < self.world:
            waiting = {}
            for r in range(self.world):
                if r not in answers and r not in dead:
                    waiting[self.conns[r]] = r
                    waiting[self.procs[r].sentinel] = r
            left = (deadline if grace is None else min(deadline, grace)) - time.monotonic()
            ready = wait(list(waiting), max(left, 0)) if left > 0 else []
            if not ready:
                if grace is not None and time.monotonic() < deadline:
                    self.released = [r for r in answers if ended_early(answers[r])]
                    for r in self.released:
                        self.procs[r].kill()
                    grace = None
                    continue
                break
            for obj in ready:
                r = waiting[obj]
                if r in answers or r in dead:
                    continue
                if obj is self.conns[r]:
                    try:
                        answers[r] = self.conns[r].recv()
                    except (EOFError, OSError):
                        pass
                    else:
                        if ended_early is not None and grace is None and not self.released \
                                and ended_early(answers[r]):
                            grace = time.monotonic() + RELEASE_GRACE
                        continue
                self.procs[r].join(5)
                dead[r] = how_it_ended(self.procs[r].exitcode)
        self.died = dead
        trouble = [f"rank {r} {how} at step {self.steps[r]}" if self.steps[r] else f"rank {r} {how}"
                   for r, how in sorted(dead.items())]
        hung = [r for r in range(self.world) if r not in answers and r not in dead]
        trouble += [f"rank {r} did not finish within {timeout:g} s (--optimizer-timeout): it hangs or is far too "
                    f"slow (killed at step {self.steps[r]})" for r in hung]
        return answers, trouble

    def ask_all(self, message: tuple, timeout: float, ended_early=None) -> tuple[dict[int, Any], list[str]]:
        """Send ``message`` to every rank and gather the answers (:meth:`_gather`)."""
        if not self.procs:
            kind, info = self.start()
            if kind != "ready":
                raise Died(f"could not be restarted: {info}")
            self.restarts += 1
        for r in range(self.world):
            self.steps[r] = 0
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(message)
        return self._gather(timeout, ended_early)

    def _regroup(self) -> None:
        """Every rank answered, but some with an error: a new process group on the same ranks
        (or new ranks, if that fails)."""
        answers, trouble = self.ask_all(("regroup", self.collective_timeout), self.collective_timeout + 10)
        if trouble or any(a[0] != "ok" for a in answers.values()):
            self._stop_ranks()

    def check(self, spec_id: str) -> tuple[str, Any]:
        """Preflight on every rank: ("ok", None) or ("usage", message)."""
        answers, trouble = self.ask_all(("check", spec_id), self.timeout)
        if trouble:
            self._stop_ranks()
            return "usage", f"--optimizer={self.path}: while the candidate was built: {'; '.join(trouble)}"
        for r in range(self.world):
            if answers[r][0] != "ok":
                return "usage", answers[r][1]
        return "ok", None

    def run(self, request: dict[str, Any], timeout: float | None = None):
        """One case on every rank: rank 0's result, or the verdict naming the rank that raised,
        hung or died (within ``timeout`` seconds, by default the group's)."""
        from .kinds import load_spec
        from .scoring import CaseResult

        where = f"case {request['case']} [{request['dtype']}, {request['device']}]"
        res = CaseResult(request["spec"], request["case"], request["dtype"], request["device"], "failed",
                         mode=request["mode"])
        res.params_conform = False
        n_steps = next(c.n_steps for c in load_spec(request["spec"]).cases if c.id == request["case"])

        def ended_early(answer) -> bool:  # a rank's case ended before its last step with an error
            return answer[0] == "result" and answer[1].outcome == "failed" and answer[1].steps_run < n_steps

        try:
            answers, trouble = self.ask_all(("case", request), timeout or self.timeout, ended_early)
        except Died as exc:
            res.reason = f"the rank processes {exc}"
            return res
        results = {r: a[1] for r, a in answers.items() if a[0] == "result"}
        if trouble:
            self._stop_ranks()
            res.reason = f"{'; '.join(trouble)} of {where}"
            others = [f"rank {r}: {x.reason}" for r, x in sorted(results.items()) if x.reason]
            if others:
                res.reason += f" (then {others[0]})"
            res.steps_run = max(min(self.steps[r] for r in range(self.world)) - 1, 0)
            return res
        if len(results) < self.world:
            self._stop_ranks()
            res.reason = f"the harness failed on this case (please report it): {answers}"
            return res
        broken = [r for r, x in sorted(results.items()) if x.outcome == "failed" and x.reason]
        if self.released:
            self._stop_ranks()  # a rank was stopped early: new ranks for the next case
        elif broken:
            self._regroup()  # the ranks may be out of step in their collectives: a fresh group next time
        if not broken:
            return results[0]
        first = [r for r in broken if not any(m in results[r].reason for m in COLLATERAL)] or broken
        culprit = results[first[0]]
        out = results[0]
        out.outcome, out.params_conform = "failed", False
        out.reason = f"rank {first[0]}: {culprit.reason}"
        out.steps_run = min(out.steps_run, culprit.steps_run)
        return out


def leftover_ranks(pids: list[int]) -> list[int]:
    """The pids of a group's ranks that still exist (for tests: none should)."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        alive.append(pid)
    return alive
