"""benchmarks/gpu_full.py (issue 14): full mode on a CUDA machine in one command.

No GPU here: these tests check what a CPU can check. `--help` explains the script, it refuses
at once (one line, exit 2) without CUDA, the table's projection arithmetic, and a `--dry-run-cpu`
run of every stage but the notebook at toy size, which also takes the train stage's torchrun
path with one process (gloo on the CPU; nccl on a GPU).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_full.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_full", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)


def test_help_explains_itself():
    r = _run("--help")
    assert r.returncode == 0, r.stderr
    for fact in ("CUDA", "torchrun", "13,320", "--dry-run-cpu", "bf16", "decode", "flow", "extract", "notebook",
                 "--nproc_per_node N", "random"):
        assert fact in r.stdout, fact


def test_wrapper_script_runs_the_python_entry_point():
    r = subprocess.run([str(ROOT / "benchmarks" / "gpu_full.sh"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: benchmarks/gpu_full.sh" in r.stdout, r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_refuses_in_one_line_without_cuda():
    r = _run()
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_full: no CUDA device") and "--dry-run-cpu" in lines[0]


def test_unknown_stage_and_impossible_sizes_are_refused():
    r = _run("--skip", "decode,warp", "--dry-run-cpu")
    assert r.returncode == 2 and "unknown stage(s) ['warp']" in r.stderr
    r = _run("--train", "19", "--dry-run-cpu")
    assert r.returncode == 2 and "--train must be in 1..18" in r.stderr


def test_projection_and_table():
    m = _module()
    assert m.projection("decode", 10.0, 100) == pytest.approx(0.1 * 13_320 * 182)
    assert m.projection("train", 6.0, 3) == pytest.approx(2.0 * 9_537 * 20 * 12)
    assert m.projection("notebook", 5.0, 0) is None
    text = m.table([{"stage": "decode", "seconds": 2.0, "work": 500, "unit": "frames"},
                    {"stage": "in memory, fp32", "key": "extract", "seconds": 1.0, "work": 64, "unit": "crop-frames",
                     "peak_mib": 1234.0},
                    {"stage": "flow", "skipped": "--skip"}])
    lines = text.splitlines()
    assert lines[0].startswith("| stage") and len(lines) == 5
    assert "250.0 frames/s" in lines[2] and "1,234" in lines[3] and "skipped" in lines[4]
    assert "235.0 h" in lines[3]  # 3 levels x 182 frames x (10 crops x 9,537 + 3,783) crop-frames at 64/s


@pytest.mark.slow
def test_dry_run_on_the_cpu_prints_every_stage(tmp_path):
    r = _run("--dry-run-cpu", "--classes", "2", "--train", "1", "--test", "1", "--frames", "2", "--flow-videos", "1",
             "--epochs", "1", "--workers", "1", "--skip", "notebook", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    table = r.stdout[r.stdout.index("| stage"):]
    for row in ("| decode", "| flow", "| extract", "| in memory, fp32", "| train (1 process(es), gloo, fp32)",
                "| evaluate", "| notebook"):
        assert row in table, row
    assert "skipped by --skip: notebook" in r.stdout
    # nothing of the run is a result: no full-mode table was written
    assert not list((tmp_path / "results").rglob("*.csv"))
