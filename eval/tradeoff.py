"""Speed/quality trade-off of the de-blockers: PSNR-B and detection mAP against ms per frame.

Joins the JSON records of ``eval.speed``, ``eval.restoration`` and ``eval.detection`` by name:
all three name a model with :func:`~dcsc_preproc.zoo.model_name` (a shipped name or a file
stem, with any ``@R`` suffix), so speed profiles, restoration methods and detection de-blockers
match. x is the fastest path measured for a profile at ``--size`` on ``--device``. A de-blocker
missing from the restoration or detection records is left out of that panel; one missing from
the speed records has no x and is left out entirely. Dashed lines: the JPEG input (method
``jpeg``; detection with no de-blocker) and the original image's mAP; dotted: the detector's ms.
Prints a markdown table, with the share of the JPEG mAP loss each de-blocker recovers,
``(map - map_jpeg) / (map_original - map_jpeg)``.

    python -m eval.tradeoff --speed results/speed.json --restoration results/restoration.json \\
        --detection results/detection_a.json results/detection_b.json --out docs/tradeoff.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from eval.restoration import JPEG, SETS
from eval.common import parse_size


@dataclass(frozen=True)
class Tradeoff:
    """One row per timed de-blocker (``name``, ``ms``, ``ratio`` to the detector, ``psnrb``,
    ``map``, ``recovered``; ``None`` where a file lacks it) and the reference values."""

    rows: list[dict]
    detector_ms: float
    jpeg_psnrb: float | None
    jpeg_map: float | None
    original_map: float | None


def read_records(paths: Sequence[Path]) -> list[dict]:
    """The records that benchmarks wrote with ``--json``, all files' lists joined."""
    return [record for path in paths for record in json.loads(Path(path).read_text())]


def recovered(map_: float | None, jpeg: float | None, original: float | None) -> float | None:
    """Share of the mAP lost to JPEG that a de-blocker wins back (``None`` if undefined)."""
    if None in (map_, jpeg, original) or original == jpeg:
        return None
    return (map_ - jpeg) / (original - jpeg)


def tradeoff(speed: list[dict], restoration: list[dict], detection: list[dict],
             size: tuple[int, int], set_name: str, quality: int, device: str) -> Tradeoff:
    """Join the three benchmarks' records for one frame size, device, set and JPEG quality."""
    timed = [r for r in speed if (r["width"], r["height"]) == size and r["device"] == device]
    if not timed:
        raise ValueError(f"no speed records at {size[0]}x{size[1]} on {device}")
    ms: dict[str, float] = {}
    for r in timed:
        ms[r["profile"]] = min(r["ms"], ms.get(r["profile"], r["ms"]))
    detector_ms = timed[0]["detector_ms"]  # one value per run and size
    psnrb = {r["method"]: r["psnrb"] for r in restoration
             if r["set"] == set_name and r["quality"] == quality}
    maps = {r["deblocker"]: r["map"] for r in detection if r["quality"] == quality}
    original = next((r["map"] for r in detection
                     if r["quality"] is None and r["deblocker"] is None), None)
    rows = [{"name": name, "ms": t, "ratio": t / detector_ms, "psnrb": psnrb.get(name),
             "map": maps.get(name),
             "recovered": recovered(maps.get(name), maps.get(None), original)}
            for name, t in ms.items()]
    return Tradeoff(rows, detector_ms, psnrb.get(JPEG), maps.get(None), original)


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(t: Tradeoff, size: tuple[int, int], set_name: str, quality: int,
             device: str) -> str:
    """A header with the reference values, then one table row per de-blocker."""
    lines = [
        f"De-blockers at {size[0]}x{size[1]} on {device} (fastest path), JPEG q{quality}; "
        f"detector {t.detector_ms:.1f} ms/frame. JPEG input: PSNR-B {_cell(t.jpeg_psnrb, '.2f')}"
        f" dB ({SETS[set_name][1]}), mAP50-95 {_cell(t.jpeg_map, '.3f')}; original mAP50-95 "
        f"{_cell(t.original_map, '.3f')}.",
        "",
        "| name | ms/frame | de-blocker/detector | PSNR-B | mAP50-95 | JPEG mAP loss recovered |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in t.rows:
        lines.append(f"| {r['name']} | {r['ms']:.1f} | {r['ratio']:.2f}x | "
                     f"{_cell(r['psnrb'], '.2f')} | {_cell(r['map'], '.3f')} | "
                     f"{_cell(r['recovered'], '.0%')} |")
    return "\n".join(lines)


def plot(t: Tradeoff, path: Path, size: tuple[int, int], set_name: str, quality: int,
         device: str) -> None:
    """Two panels against ms per frame (shared log scale): PSNR-B and mAP50-95, points
    labelled."""
    fig = Figure(figsize=(12, 4.6))
    ax_psnrb, ax_map = fig.subplots(1, 2, sharex=True)
    panels = ((ax_psnrb, "psnrb", t.jpeg_psnrb, f"PSNR-B (dB), {SETS[set_name][1]}"),
              (ax_map, "map", t.jpeg_map, "COCO bbox mAP50-95"))
    for ax, key, jpeg, ylabel in panels:
        points = [r for r in t.rows if r[key] is not None]
        ax.scatter([r["ms"] for r in points], [r[key] for r in points], zorder=3)
        for r in points:
            ax.annotate(r["name"], (r["ms"], r[key]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
        if jpeg is not None:
            ax.axhline(jpeg, color="tab:red", linestyle="--", label=f"JPEG q{quality} input")
        ax.axvline(t.detector_ms, color="grey", linestyle=":", label="detector")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel(f"de-blocker ms per frame ({size[0]}x{size[1]}, {device}, fastest path)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel} at JPEG q{quality}")
        ax.grid(alpha=0.3)
    if t.original_map is not None:
        ax_map.axhline(t.original_map, color="black", linestyle="--", label="original image")
    ax_psnrb.legend(fontsize=8)
    ax_map.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.tradeoff",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--speed", type=Path, nargs="+", required=True,
                        help="eval.speed --json output (one run, for one detector time)")
    parser.add_argument("--restoration", type=Path, nargs="+", required=True,
                        help="eval.restoration --json outputs")
    parser.add_argument("--detection", type=Path, nargs="+", required=True,
                        help="eval.detection --json outputs")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--size", type=parse_size, default=(640, 480), help="WIDTHxHEIGHT")
    parser.add_argument("--set", dest="set_name", choices=list(SETS), default="live1")
    parser.add_argument("--quality", type=int, default=10)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="device of the speed records")
    args = parser.parse_args(argv)

    t = tradeoff(read_records(args.speed), read_records(args.restoration),
                 read_records(args.detection), args.size, args.set_name, args.quality,
                 args.device)
    print(markdown(t, args.size, args.set_name, args.quality, args.device))
    plot(t, args.out, args.size, args.set_name, args.quality, args.device)


if __name__ == "__main__":
    main()
