"""Distributed runs (``--optimizer-distributed``): the gradient split is exact, torch's wrappers
conform, the distributed mutants fail and are named, and a rank that raises, hangs or dies ends
the case with a verdict naming it and leaves no process behind.

Each run here starts N processes that import torch (~2 s each on two cores), so the default
suite keeps a few; the rest (every mutant, the hang and the death, FSDP2 and ZeRO at world size 3)
run with ``OPTIMIZER_CONFORMANCE_DISTRIBUTED_FULL=1`` (``nox -s distributed``, which also prints
the table of every torch.optim optimizer × wrapper × world size × dtype).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from optimizer_conformance.conformance.distributed import local_gradient, mode_name, parse_mode

ROOT = Path(__file__).resolve().parent.parent
FULL = os.environ.get("OPTIMIZER_CONFORMANCE_DISTRIBUTED_FULL", "") not in ("", "0")
full_only = pytest.mark.skipif(not FULL, reason="the full distributed matrix: OPTIMIZER_CONFORMANCE_DISTRIBUTED_FULL=1 "
                               "(nox -s distributed)")
MUTANTS = "tests.mutants.distributed_mutants"


# -- the gradient split (no process spawned) --------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_local_gradients_average_to_the_gradient_exactly(dtype, world):
    gen = torch.Generator().manual_seed(world)
    g = (torch.randn(7, 5, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(-3, 3, (7, 5),
                                                                                         generator=gen)).to(dtype)
    shares = [local_gradient(g, r, world) for r in range(world)]
    exact = sum(s.to(torch.float64) for s in shares)  # every share has at most 11 + 2 bits: exact in float64
    assert torch.equal(exact, g.to(torch.float64) * world)
    if world > 1:
        assert not all(torch.equal(s, shares[0]) for s in shares[1:]), "every rank must see its own gradient"
    if world in (1, 2, 4):  # a power of two: the average in the dtype itself is exact too, in any order
        ordered = shares[0].clone()
        for s in shares[1:]:
            ordered += s
        assert torch.equal(ordered / world, g)
        predivided = sum(s / world for s in shares)
        assert torch.equal(predivided, g)


def test_non_finite_gradients_reach_every_rank():
    g = torch.tensor([float("inf"), float("nan"), 1.5])
    for r in range(3):
        share = local_gradient(g, r, 3)
        assert share[0] == float("inf") and torch.isnan(share[1])


def test_mode_names_round_trip():
    assert parse_mode(mode_name("fsdp", 3)) == ("fsdp", 3)
    assert parse_mode("eager") is None and parse_mode("cuda_graph") is None


# -- runs through the plugin ----------------------------------------------------------------------

def _sessions() -> dict[int, int]:
    """pid → session id of every process of this machine."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = int(fields[3])
    return out


def run_plugin(tmp_path: Path, *args: str, timeout: float = 600) -> tuple[dict, str]:
    """``pytest --optimizer ... --optimizer-report`` in a process of its own session: (the report,
    the output). Asserts that no process of that session (a rank) outlives the run."""
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args,
                             f"--optimizer-report={report}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = [pid for pid, sid in _sessions().items() if sid == proc.pid]
    assert not left, f"processes left behind by the run: {left}\n{out}"
    return json.loads(report.read_text()), out


def test_adamw_under_ddp_conforms(tmp_path):
    doc, out = run_plugin(tmp_path, "--optimizer=torch.optim.AdamW", "--optimizer-distributed=ddp")
    assert doc["diagnosis"]["verdict"] == "conforms", out
    assert doc["summary"]["passed"] == 16 and doc["summary"]["failed"] == 0, out
    assert {c["mode"] for c in doc["cases"]} == {"ddp-ws2"}
    assert "distributed: ddp over 2 ranks (gloo)" in out
    from jsonschema import Draft202012Validator

    schema = json.loads((ROOT / "conformance" / "schemas" / "report.schema.json").read_text(encoding="utf-8"))
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(doc)]
    assert not errors, errors


@pytest.mark.parametrize("variant", [
    "distributed.grads_summed",
    pytest.param("distributed.step_per_rank", marks=full_only),
    pytest.param("distributed.weight_decay_per_rank", marks=full_only),
    pytest.param("distributed.state_lost_on_resume", marks=full_only),
])
def test_distributed_mutant_fails_and_is_named(tmp_path, variant):
    from tests.mutants.distributed_mutants import DISTRIBUTED_MUTANTS

    cls = DISTRIBUTED_MUTANTS[("adamw", variant)]
    doc, out = run_plugin(tmp_path, f"--optimizer={MUTANTS}.{cls.__name__}", "--optimizer-distributed=own")
    assert doc["summary"]["failed"] > 0, out
    assert doc["diagnosis"]["verdict"] == "variant" and doc["diagnosis"]["variants"] == [variant], out
    assert f"trajectory matches {variant}" in out


@full_only
def test_an_own_factory_taking_the_group_conforms_at_world_size_3(tmp_path):
    doc, out = run_plugin(tmp_path, f"--optimizer={MUTANTS}:make_averaging_adamw", "--optimizer-spec=adamw",
                          "--optimizer-distributed=own", "--optimizer-world-size=3")
    assert doc["diagnosis"]["verdict"] == "conforms", out


@pytest.mark.parametrize(("fault", "says"), [
    ("raises", "rank 1: step 2: step() raised RuntimeError: rank 1 gives up"),
    pytest.param("dies", "rank 1 died with SIGKILL at step 2", marks=full_only),
    pytest.param("hangs", "rank 1 did not finish within 6 s", marks=full_only),
])
def test_a_misbehaving_rank_is_named_and_nothing_is_left_behind(tmp_path, fault, says):
    from tests.mutants.distributed_mutants import FAULTS

    doc, out = run_plugin(tmp_path, f"--optimizer={MUTANTS}.{FAULTS[fault].__name__}", "--optimizer-spec=adamw",
                          "--optimizer-distributed=own", "--optimizer-timeout=6", "-k", "defaults and float64")
    reasons = [c["reason"] for c in doc["cases"]]
    assert len(reasons) == 1 and says in reasons[0], out


@full_only
@pytest.mark.parametrize("wrapper", ["zero", "fsdp"])
def test_adam_under_sharding_wrappers_at_world_size_3(tmp_path, wrapper):
    doc, out = run_plugin(tmp_path, "--optimizer=torch.optim.Adam", f"--optimizer-distributed={wrapper}",
                          "--optimizer-world-size=3")
    assert doc["diagnosis"]["verdict"] == "conforms", out
    assert doc["summary"]["skipped"] == 0, out


def test_world_size_without_a_wrapper_is_a_usage_error(pytester):
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--optimizer=torch.optim.SGD",
                                          "--optimizer-world-size=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--optimizer-world-size needs --optimizer-distributed*"])


def test_cuda_without_enough_devices_is_skipped_with_the_reason(tmp_path):
    if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
        pytest.skip("this machine has the CUDA devices: the NCCL path runs (nox -s distributed)")
    doc, out = run_plugin(tmp_path, "--optimizer=torch.optim.SGD", "--optimizer-distributed=ddp",
                          "--optimizer-device=cuda")
    assert doc["summary"]["passed"] == 0 and doc["summary"]["skipped"] == 16, out
    assert all("NCCL runs one rank per CUDA device" in c["reason"] for c in doc["cases"]), out
    assert "verdict: NOT CHECKED" in out


def test_numpy_of_the_split_matches_the_documented_rule():
    """The rule of local_gradient's docstring, on one float32 number: hi keeps the top bits."""
    g = torch.tensor([1.0 + 2.0 ** -23], dtype=torch.float32)  # the last mantissa bit set
    shares = [local_gradient(g, r, 2) for r in range(2)]
    assert shares[0].item() == 2.0 and shares[1].item() == 2.0 ** -22  # 2·hi, 2·lo
    assert np.float32(shares[0].item() + shares[1].item()) / 2 == np.float32(g.item())


@full_only
@pytest.mark.parametrize(("saved_by", "loaded_by"), [(2, 3), (3, 2)])
def test_fsdp2_resumes_at_another_world_size(saved_by, loaded_by):
    from optimizer_conformance.conformance.distributed_reshard import reshard_resume

    for dtype in ("float32", "float64"):
        res = reshard_resume("torch.optim.AdamW", "adamw", "adamw/resume", dtype, saved_by, loaded_by)
        assert res.passed, res
