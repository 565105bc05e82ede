"""Train several runs side by side on one GPU inside a fixed time budget.

A lent GPU comes for minutes, so each chunk is planned to end on time with its learning rate
decayed: phase 1 trains every run at a constant rate for ``--probe`` seconds and measures its
steps per second (all runs sharing the GPU, as in phase 2); phase 2 resumes each run with a
cosine decay (``--decay-to``) sized to reach its last step before the budget runs out. Every
chunk's exact command is recorded in the run's ``chunks.jsonl`` by ``dcsc-preproc train``.

Example (the chunk behind the shipped GPU weights; runs live in training/NAME)::

    DCSC_DATA=/path/to/data python training/gpu_chunk.py --seconds 480 \\
        dcsc-y:dcsc-y:32:2e-4 dcsc-rgb:dcsc-rgb:32:2e-4 dcsc-fast:dcsc-fast:64:2e-4
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import os
import sys
import time
from pathlib import Path

RUNS = Path(__file__).resolve().parent


def launch(spec: str, minutes: float, steps: int, extra: list[str], log: Path) -> subprocess.Popen:
    """Start ``dcsc-preproc train`` for one ``NAME:CONFIG:BATCH:LR`` spec."""
    name, config, batch, lr = spec.split(":")
    cmd = [sys.executable, "-m", "dcsc_preproc", "train", "--config", config,
           "--out", os.path.relpath(RUNS / name), "--batch", batch, "--lr", lr, "--steps", str(steps),
           "--max-minutes", f"{minutes:.2f}", "--val-every", "1000", "--checkpoint-every", "500",
           *extra]
    return subprocess.Popen(cmd, stdout=log.open("a"), stderr=subprocess.STDOUT)


def log_rows(run: Path) -> list[dict]:
    """The run's training log (empty for a new run)."""
    if not (run / "log.csv").exists():
        return []
    with (run / "log.csv").open() as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+", help="NAME:CONFIG:BATCH:LR, one per run")
    parser.add_argument("--seconds", type=float, required=True, help="budget for both phases")
    parser.add_argument("--probe", type=float, default=75, help="phase 1 length in seconds")
    parser.add_argument("--decay-to", default="1e-6")
    parser.add_argument("--logs", default=".", help="folder for each run's console log")
    args = parser.parse_args()
    start = time.monotonic()
    names = [s.split(":")[0] for s in args.specs]
    logs = {n: Path(args.logs) / f"{n}.log" for n in names}
    first = {n: int(rows[-1]["step"]) if (rows := log_rows(RUNS / n)) else 0 for n in names}
    procs = [launch(s, args.probe / 60, 10**9, [], logs[n]) for s, n in zip(args.specs, names)]
    for p in procs:
        p.wait()
    overhead = time.monotonic() - start - args.probe  # data set-up, cuDNN tuning, last save
    left = args.seconds - (time.monotonic() - start) - max(overhead, 15)
    if left < 30:
        raise SystemExit(f"only {left:.0f} s left after phase 1: no time to decay")
    procs = []
    for spec, name in zip(args.specs, names):
        rows = [r for r in log_rows(RUNS / name) if int(r["step"]) > first[name]]
        a, b = rows[len(rows) // 2], rows[-1]  # second half: past the warm-up
        rate = (int(b["step"]) - int(a["step"])) / max(float(b["wall_s"]) - float(a["wall_s"]), 1e-6)
        steps = int(b["step"]) + int(rate * left * 0.93)
        print(f"{name}: {rate:.1f} steps/s in phase 1; decaying to step {steps}", flush=True)
        procs.append(launch(spec, left / 60, steps, ["--decay-to", args.decay_to], logs[name]))
    for p in procs:
        p.wait()
    print(f"done in {time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
