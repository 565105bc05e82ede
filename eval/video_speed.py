"""Video pipeline throughput: frames per second of ``clean_video`` next to its parts alone.

For each frame size, in one run on one machine, on the same clip: decode + encode only (an
identity filter), the de-blocker alone (``FrameFilter`` on the decoded frames, no I/O), the
whole pipeline (decode, de-block, H.264 encode at ``--preset``), and with ``--detector`` the
detector alone and the pipeline with detection drawn; each the best of ``--rounds``
interleaved runs. ``pipeline / de-blocker`` is the share of the de-blocker's own speed that
the pipeline keeps (reader and writer threads overlap with the model; on a machine with few
cores they also compete with it).

The clip is Ultralytics' bundled ``bus.jpg``, resized to each size and panned by 4 pixels a
frame, written by the pipeline's own writer as H.264 at CRF 30 (a compressed source).

    python -m eval.video_speed --detector ../shared/models/yolov8n_ovint8_dequant.pt \\
        --json docs/results/video_speed.json
    python -m eval.video_speed --sizes 1920x1080 --preset medium   # x264's own default
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported: it checks at import
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# torch before Ultralytics: imported first, Ultralytics sets OMP_NUM_THREADS to cores - 1
# (1 here) before torch starts its thread pool, and the de-blocker would run on one core
from dcsc_preproc import DEFAULT_MODEL, FrameFilter, model_name  # noqa: E402, I001
from dcsc_preproc.engine import machine  # noqa: E402
from pipelines.media import DEFAULT_PRESET, Frame, SourceInfo, Writer, open_source  # noqa: E402
from pipelines.video import clean_video  # noqa: E402
from pipelines.yolo import load_detector  # noqa: E402
from ultralytics.utils import ASSETS  # noqa: E402

RATE = Fraction(25)


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """``bus.jpg`` at ``width`` x ``height``, panned 4 px a frame, as H.264 at CRF 30."""
    bus = cv2.resize(cv2.imread(str(ASSETS / "bus.jpg")), (width + 4 * frames, height),
                     interpolation=cv2.INTER_AREA)
    writer = Writer(path, SourceInfo(RATE, 1 / RATE, frames, None), crf=30, preset="veryfast")
    try:
        for t in range(frames):
            writer.write(Frame(np.ascontiguousarray(bus[:, 4 * t:4 * t + width]), t, 1 / RATE))
    finally:
        writer.close()
    return path


def measure(clip: Path, out: Path, frame_filter: FrameFilter, detector, preset: str,
            rounds: int) -> dict:
    """Frames per second of each part alone and of the pipelines on ``clip``: the best of
    ``rounds`` interleaved runs of each (on a shared machine the best is the least disturbed)."""
    images = [item.image for item in open_source(clip).items() if isinstance(item, Frame)]
    frame_filter(images[0])  # warm-up: first-call allocations are not throughput
    runs = {
        "decode_encode_fps": lambda: clean_video(clip, out / "copy.mp4", lambda frame: frame,
                                                 preset=preset, progress=False),
        "deblocker_fps": lambda: [frame_filter(image) for image in images],
        "pipeline_fps": lambda: clean_video(clip, out / "clean.mp4", frame_filter,
                                            preset=preset, progress=False),
    }
    if detector is not None:
        detector.predict(images[0], verbose=False)  # builds the predictor
        runs["detector_fps"] = lambda: [detector.predict(image, conf=0.25, verbose=False)
                                        for image in images]
        runs["pipeline_detect_fps"] = lambda: clean_video(
            clip, out / "detect.mp4", frame_filter, preset=preset, detector=detector,
            detections=out / "detect.jsonl", progress=False)
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            best[name] = max(best[name], len(images) / (time.perf_counter() - began))
    row: dict = {"frames": len(images), "rounds": rounds,
                 **{name: round(value, 2) for name, value in best.items()}}
    row["pipeline_over_deblocker"] = round(best["pipeline_fps"] / best["deblocker_fps"], 3)
    if detector is not None:
        row["pipeline_detect_over_parts"] = round(
            best["pipeline_detect_fps"] * (1 / best["deblocker_fps"] + 1 / best["detector_fps"]),
            3)
    return row


def markdown(rows: dict[str, dict]) -> str:
    detect = any("detector_fps" in row for row in rows.values())
    head = ["size", "frames", "decode+encode", "de-blocker alone", "pipeline",
            "pipeline / de-blocker"]
    if detect:
        head += ["detector alone", "pipeline + detect", "pipeline + detect / parts in series"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for size, r in rows.items():
        cells = [size, r["frames"], r["decode_encode_fps"], r["deblocker_fps"], r["pipeline_fps"],
                 r["pipeline_over_deblocker"]]
        if detect:
            cells += [r.get("detector_fps", ""), r.get("pipeline_detect_fps", ""),
                      r.get("pipeline_detect_over_parts", "")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n\n(frames per second)"


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.video_speed",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=_size, default=[(640, 480), (1920, 1080)],
                        help="WIDTHxHEIGHT")
    parser.add_argument("--frames", nargs="+", type=int, default=[30, 20],
                        help="clip length per size (the last one repeats)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--detector", type=Path, help="Ultralytics weights (a path)")
    parser.add_argument("--device")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="x264 speed preset")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    frame_filter = FrameFilter(args.model, device=args.device, gate=None)  # always de-block
    host = machine(frame_filter.engine.device)  # before Ultralytics lowers torch's threads
    detector = load_detector(args.detector) if args.detector else None
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for i, (width, height) in enumerate(args.sizes):
            frames = args.frames[min(i, len(args.frames) - 1)]
            clip = make_clip(Path(work) / f"bus_{width}x{height}.mp4", width, height, frames)
            rows[f"{width}x{height}"] = measure(clip, Path(work), frame_filter, detector,
                                                args.preset, args.rounds)
            print(f"{width}x{height}: {rows[f'{width}x{height}']}", file=sys.stderr)
    table = markdown(rows)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": datetime.date.today().isoformat(), "machine": host,
            "model": model_name(args.model), "preset": args.preset,
            "detector": str(args.detector) if args.detector else None,
            "command": " ".join(["python -m eval.video_speed", *(argv or sys.argv[1:])]),
            "rows": rows, "markdown": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
