"""Validation curves of training runs: PSNR-B (and PSNR) against steps, as a PNG.

    python -m eval.curves training/dcsc-fast training/dcsc-y --out docs/val_curve.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_val(run: Path) -> dict[int, list[dict]]:
    """Rows of ``run/val.csv`` grouped by JPEG quality."""
    path = Path(run) / "val.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no validation log at {path}")
    rows: dict[int, list[dict]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            rows.setdefault(int(row["quality"]), []).append(row)
    return rows


def plot_curves(runs: Sequence[Path], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        for q, rows in sorted(read_val(run).items()):
            steps = [int(r["step"]) for r in rows]
            for ax, key in zip(axes, ("psnrb", "psnr")):
                line, = ax.plot(steps, [float(r[key]) for r in rows], label=f"{Path(run).name} q{q}")
                ax.axhline(float(rows[0][f"jpeg_{key}"]), color=line.get_color(), ls=":", lw=1)
    for ax, name in zip(axes, ("PSNR-B", "PSNR")):
        ax.set_xlabel("training step")
        ax.set_ylabel(f"{name} (dB, Y)")
        ax.set_title(f"BSDS500-val subset {name} (dotted: JPEG input)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding val.csv")
    parser.add_argument("--out", type=Path, default=Path("docs/val_curve.png"))
    args = parser.parse_args(argv)
    plot_curves(args.runs, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
