"""The explanation benchmark end to end, kept tiny: one model, 1 s cells, the table, the figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.stack
def test_a_short_run_measures_explanations_at_1_and_16_connections(store_dir: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.explain_load", "--models", "churn", "--duration-s", "1"]
    run = subprocess.run(
        [*command, "--store-dir", str(store_dir), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    for verb, connections in (("explain", 1), ("explain", 16), ("predict", 16)):
        figures = r"[0-9,]+ \| [0-9.]+ \| [0-9.]+ \| 0 \| [0-9.]+"  # req/s, p50, p99, no errors, CPU
        line = rf"\| churn \| linear \| onnx \| {verb} \| {connections} \| {figures} \|"
        assert re.search(line, run.stdout), run.stdout
    cells = json.loads((tmp_path / "results.json").read_text())
    assert all(c["requests"] > 0 and c["errors"] == 0 for c in cells)
    assert all(c["replica_cpu_us"] > 0 for c in cells)
