"""The issue-16 comparison harness (training/ablate.py) end to end on a tiny CPU run, so a lent
GPU's minutes are not lost to a bug in it."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _ablate():
    spec = importlib.util.spec_from_file_location("ablate", REPO / "training" / "ablate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ablate"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_schedules() -> None:
    ablate = _ablate()
    ours = ablate.VARIANTS["ours"]
    assert [ablate.train_iterations(ours, s, 100, 40) for s in (0, 4, 5, 99)] == [10, 10, 40, 40]
    rates = [ablate.learning_rate(ours, s, 90) for s in range(90)]
    assert rates[0] == rates[30] == rates[60] == ours.lr and min(rates) < 2e-6
    assert {ablate.learning_rate(ablate.VARIANTS["paper"], s, 90) for s in range(90)} == {1e-4}


def test_two_variants_side_by_side(tmp_path, shared) -> None:
    out = tmp_path / "ablate"
    cmd = [sys.executable, str(REPO / "training" / "ablate.py"), "ours", "patch-jpeg",
           "--out", str(out), "--steps", "4", "--iterations", "2", "--patch", "32",
           "--train-images", "3", "--val-images", "1", "--val-every", "2", "--log-every", "2",
           "--threads", "1", "--val-iterations", "1", "2", "--data", str(shared / "data")]
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    for name, batch in (("ours", 32), ("patch-jpeg", 10)):
        result = json.loads((out / name / "result.json").read_text())
        assert result["complete"] and result["steps"] == 4 and result["recipe"]["batch"] == batch
        with (out / name / "val.csv").open() as f:
            rows = [(int(r["step"]), int(r["R"])) for r in csv.DictReader(f)]
        assert rows == [(2, 1), (2, 2), (4, 1), (4, 2)]
        with (out / name / "log.csv").open() as f:
            assert [int(r["R"]) for r in csv.DictReader(f)][-1] == 2
    summary = (out / "summary.md").read_text()
    assert "q10, R=2" in summary and "| step | ours | patch-jpeg |" in summary
    assert (out / "curves.png").stat().st_size > 0
