"""One timed GPU run of the issue-16 comparisons (training/ablate.py), all variants side by side.

Phase 1 (``--probe`` seconds) runs every variant with no step limit to measure the slowest
one's steps per second while they share the GPU; phase 2 starts them all again from scratch
for the number of steps the slowest reaches in the time left, so every variant gets the same
steps and its schedules (curriculum, restarts) end inside the budget. The results (summary,
curves, every variant's logs) are packed for the device tool's few returned files.

On a lent H200, from the repository root (data in the ignored .gpudata/, simplejpeg as a
wheel in .whl/; docs/RESULTS.md, issue 16, has the whole call)::

    DCSC_DATA=.gpudata PYTHONPATH=. python3 training/gpu_ablate.py --seconds 450 --threads 1 --bundle $OUT
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ABLATE = Path(__file__).resolve().parent / "ablate.py"
DEFAULT_VARIANTS = ["paper", "curriculum", "restarts", "batch32", "glorot", "no-bias", "authors",
                    "stretch", "patch-jpeg", "ours"]


def ablate(variants: list[str], out: Path, steps: int, seconds: float, extra: list[str]) -> int:
    cmd = [sys.executable, str(ABLATE), *variants, "--out", str(out), "--steps", str(steps),
           "--seconds", f"{seconds:.0f}", *extra]
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd)


def rate(run: Path) -> float:
    """Steps per second over the second half of a variant's training log (past the warm-up)."""
    with (run / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 4:
        raise SystemExit(f"{run.name} logged {len(rows)} rows in the probe: give a longer --probe")
    a, b = rows[len(rows) // 2], rows[-1]
    return (int(b["step"]) - int(a["step"])) / max(float(b["wall_s"]) - float(a["wall_s"]), 1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, required=True, help="budget for both phases")
    parser.add_argument("--probe", type=float, default=45)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    parser.add_argument("--out", default="runs/ablate-gpu")
    parser.add_argument("--bundle", help="folder for summary.md, curves.png and ablate.tar.gz")
    parser.add_argument("--val-every", type=int, default=500)
    parser.add_argument("--min-steps", type=int, default=500, help="give up if fewer fit")
    args, passed = parser.parse_known_args()  # the rest goes to ablate.py (e.g. --patch 48)
    start = time.monotonic()
    out = Path(args.out)
    probe = out / "probe"
    extra = ["--val-every", str(args.val_every), "--log-every", "25", "--val-iterations", "10", "40",
             *passed]
    if ablate(args.variants, probe, 10**9, args.probe, [*extra, "--val-every", str(10**9),
                                                         "--val-images", "1", "--val-iterations", "2"]):
        raise SystemExit("probe failed; see the logs in " + str(probe))
    rates = {n: rate(probe / n) for n in args.variants}
    overhead = time.monotonic() - start - args.probe  # start-up, data, final validation
    left = args.seconds - (time.monotonic() - start) - overhead - 30  # 30 s: validations
    steps = int(min(rates.values()) * left * 0.9)
    print(f"steps/s while sharing: { {n: round(r, 1) for n, r in rates.items()} }; "
          f"{left:.0f} s left: {steps} steps each", flush=True)
    if steps < args.min_steps:
        raise SystemExit(f"only {steps} steps fit: give more --seconds or fewer --variants")
    shutil.rmtree(probe)
    code = ablate(args.variants, out, steps, left + 20, extra)
    if args.bundle:
        bundle = Path(args.bundle)
        bundle.mkdir(parents=True, exist_ok=True)
        for name in ("summary.md", "curves.png"):
            if (out / name).exists():
                shutil.copy(out / name, bundle / name)
        with tarfile.open(bundle / "ablate.tar.gz", "w:gz") as tar:
            tar.add(out, arcname=out.name)
    print(f"done in {time.monotonic() - start:.0f} s", flush=True)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
