"""The national-volume benchmark (bench/bench_nightly.py) at a tiny size: the README's figures come
from it, so every phase it measures (floor, full night, next night) must run and report, on the
PostgreSQL warehouse it is run with, and its output must hold no personal data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tthc.privacy_scan import Scanner

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]


def test_tiny_national_volume_run_reports_every_phase(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "bench/bench_nightly.py", "--dossiers", "1500", "--sources", "4"]
    proc = subprocess.run(
        [*cmd, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    assert "SUMMARY full" in text and "floor" in text
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["sources"] == 4
    for phase in ("floor", "full", "incremental"):
        assert figures[phase]["wall"] > 0, phase
    stages = figures["full"]["stages"]
    assert list(stages) == ["extract", "validate", "reconcile", "publish", "indicators"]
    assert all(v["cpu"] > 0 for v in stages.values())  # each stage's own CPU is measured
    # every source's records went through; the floor posted (about) what the full night did
    assert stages["extract"]["records"] >= 1400
    assert figures["floor"]["stages"]["post"]["records"] >= stages["publish"]["records"] > 0
    # and each posted dossier's status as a progress entry (the full night's first entries)
    assert figures["floor"]["progress_posted"] >= 0.9 * figures["floor"]["stages"]["post"]["records"]
    # timed apart: what posting the dossiers took and what posting their statuses took
    progress = figures["floor"]["stages"]["progress"]
    assert progress["records"] >= figures["floor"]["progress_posted"] and progress["seconds"] > 0
    assert 0 < figures["incremental_changed"] < 0.05 * 1500
    assert figures["ratio_to_floor"] > 1
    report = Scanner().text("bench_nightly", {"stdout": text, "stderr": proc.stderr, "json": out.read_text()})
    assert not report.hits, report.hits[:5]
