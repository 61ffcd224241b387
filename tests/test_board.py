"""The third-party board: its list comes from the specs, each entry runs in its own process
through the real plugin, and a library that is not installed is said to be so."""

from __future__ import annotations

import importlib.util

import pytest
from optimizer_conformance.conformance.board import (
    BoardRun,
    LibraryOptimizer,
    board,
    library_optimizers,
    markdown,
    run_entry,
)
from optimizer_conformance.conformance.golden import index
from optimizer_conformance.conformance.kinds import load_spec


def test_the_list_is_every_spec_implementation_in_the_index():
    listed = {(e.spec, e.path) for e in library_optimizers()}
    expected = {(sid, i["path"]) for sid, meta in index()["specs"].items() for i in meta["implementations"]}
    assert listed == expected and len(listed) >= 20
    # every spec torch has no class for names at least one library implementation to check
    for sid, meta in index()["specs"].items():
        if meta["torch_class"] is None:
            assert meta["implementations"], f"{sid}: no implementation for the board to check"


def test_a_library_that_is_not_installed_is_not_run():
    runs = run_entry(LibraryOptimizer("no-such-library-xyz", "no_such_library_xyz.Adam", "adam"))
    assert [r.verdict for r in runs] == ["not installed", "not installed"]


@pytest.mark.skipif(importlib.util.find_spec("pytorch_optimizer") is None, reason="pytorch-optimizer not installed")
def test_a_real_library_run_per_dtype_with_its_verdict():
    runs = run_entry(LibraryOptimizer("pytorch-optimizer", "pytorch_optimizer.AdamW", "adamw"))
    assert [(r.dtype, r.verdict) for r in runs] == [("float32", "conforms"), ("float64", "conforms")]
    cases = len(load_spec("adamw").cases)
    assert all(r.passed == cases and r.failed == 0 and r.version for r in runs)
    table = markdown(runs)
    assert "| pytorch-optimizer |" in table and "`pytorch_optimizer.AdamW`" in table


@pytest.mark.skipif(importlib.util.find_spec("pytorch_optimizer") is None, reason="pytorch-optimizer not installed")
def test_a_deviating_library_is_diagnosed_by_name():
    """pytorch_optimizer's ADOPT: its clip uses the step after the increment and its decoupled decay
    runs at step 1 (pytorch_optimizer/optimizer/adopt.py) — both named, nothing unexplained."""
    runs = run_entry(LibraryOptimizer("pytorch-optimizer", "pytorch_optimizer.ADOPT", "adopt"))
    assert all(r.verdict == "does not conform" for r in runs)
    assert all("adopt.clip_step_plus_one" in r.diagnosis and "no known variant" not in r.diagnosis for r in runs)


def test_entries_run_at_once_come_back_in_the_list_order_with_progress_for_each():
    entries = [LibraryOptimizer(f"no-such-library-{i}", f"no_such_library_{i}.Adam", "adam") for i in range(5)]
    seen = []
    runs = board(entries, progress=seen.append, jobs=3)
    assert [(r.library, r.dtype) for r in runs] == [(e.library, d) for e in entries for d in ("float32", "float64")]
    assert sorted(id(r) for r in seen) == sorted(id(r) for r in runs)
    assert [(r.library, r.dtype, r.verdict) for r in board(entries, jobs=1)] == \
        [(r.library, r.dtype, r.verdict) for r in runs]


def test_an_interrupted_board_starts_no_other_entry(monkeypatch):
    """Ctrl-C (here raised by the progress callback) ends the board: the entries not yet started
    are cancelled instead of run one after the other."""
    import optimizer_conformance.conformance.board as board_module

    started = []
    monkeypatch.setattr(board_module, "run_entry",
                        lambda entry, dtypes: started.append(entry) or [BoardRun(entry.library, None, entry.path,
                                                                                  entry.spec, {}, "float32", "x")])

    def interrupt(run):
        raise KeyboardInterrupt

    entries = [LibraryOptimizer(f"lib-{i}", f"lib_{i}.Adam", "adam") for i in range(50)]
    with pytest.raises(KeyboardInterrupt):
        board(entries, progress=interrupt, jobs=2)
    assert 1 <= len(started) < len(entries)
