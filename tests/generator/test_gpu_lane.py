"""The GPU lane (benchmarks/gpu_lane.py, run by scripts/gpu_check.sh) at toy size on CPU: every code path it
takes on a CUDA machine (parity in fp32 and bf16, the meta-built model, the four modes, batch throughput)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_lane_runs_at_toy_size_on_cpu(shared_data, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), SCULPTRAG_SHARED_DATA=str(shared_data))
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_lane.py"), "--tiny", "--json",
                          str(tmp_path / "rows.json")], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "GPU lane on cpu" in run.stdout  # the table
    rows = json.loads((tmp_path / "rows.json").read_text())
    parity = {(r["part"], r["setting"]): r["result"] for r in rows if r["part"].startswith("parity")}
    assert parity[("parity cpu float32", "llada")].startswith("exact 26/26, RNG-dependent 2/2")
    assert parity[("parity cpu float32", "dream")].startswith("exact 25/25, RNG-dependent 3/3")
    assert parity[("parity cpu bfloat16", "llada")].startswith("id agreement 0.")  # bf16 rounding flips some
    speed = {r["setting"]: r for r in rows if r["part"] == "speed" and r["batch"] == 1}
    assert set(speed) == {"naive", "prefix cache", "dual cache", "dual cache + threshold 0.9"}
    assert speed["naive"]["NFE"] == speed["dual cache"]["NFE"] == 16  # 32 tokens, 16 steps
    assert [r["batch"] for r in rows if r["part"] == "throughput"] == [1, 2]
    assert not any("skipped" in str(r["result"]) for r in rows)


def test_gpu_check_script_installs_nothing():
    script = (ROOT / "scripts" / "gpu_check.sh").read_text()
    assert "pip install" not in script.replace("pip download", "") and "benchmarks/gpu_lane.py" in script


def test_step_profile_runs_at_toy_size_on_cpu():
    """benchmarks/gpu_step_profile.py: the rows it can take on CPU (the profiler and CUDA-graph rows need CUDA)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_step_profile.py"), "--tiny", "--steps", "3"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for measure in ("eager, synchronised", "eager, issue only", "whole sampler step"):
        assert run.stdout.count(measure) == 2, run.stdout  # batch 1 and batch 2
