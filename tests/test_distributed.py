"""Training under torchrun (2 CPU processes, gloo) and resuming its checkpoint in one process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import torch

from dcsc_preproc.cli import main
from dcsc_preproc.train import model_card

TINY = ["--features", "8", "--dilated-features", "4", "--iterations", "2", "--patch", "32",
        "--batch", "2", "--train-images", "4", "--val-images", "1", "--val-every", "100",
        "--checkpoint-every", "100", "--precision", "fp32", "--device", "cpu"]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_torchrun_two_processes_then_resume_in_one(tmp_path, shared):
    run = tmp_path / "run"
    train = ["train", "--out", str(run), "--data", str(shared / "data"), *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "-m", "dcsc_preproc", *train, "--steps", "3"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["seen"] == 3 * 2 * 2  # 2 patches on each of 2 ranks
    chunks = [json.loads(line) for line in (run / "chunks.jsonl").read_text().splitlines()]
    assert len(chunks) == 1  # rank 0 alone writes the run folder
    assert chunks[0]["settings"]["processes"] == 2 and chunks[0]["settings"]["total_batch"] == 4
    assert [r["step"] for r in _rows(run / "log.csv")] == ["3"]
    assert [r["step"] for r in _rows(run / "val.csv")] == ["3"]
    assert "| 0 | 32 | 2 x 2 = 4 |" in model_card(run, "ddp")

    main([*train, "--steps", "5"])  # one process resumes the two-process checkpoint
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 5 and ckpt["seen"] == 12 + 2 * 2
    chunks = [json.loads(line) for line in (run / "chunks.jsonl").read_text().splitlines()]
    assert [(c["start_step"], c["settings"]["processes"]) for c in chunks] == [(0, 2), (3, 1)]
    assert [r["step"] for r in _rows(run / "val.csv")] == ["3", "5"]
