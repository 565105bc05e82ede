"""Detect objects with a YOLO detector behind DCSC de-blocking; save annotated images or video.

    python -m pipelines.detect --detector ../shared/models/yolov8n_ovint8_dequant.pt \\
        --source photos/ --deblock dcsc-fast --save out/

The annotations are drawn on the de-blocked image (what the detector saw); with ``--at
detector`` (de-block at the detector's input size: the cost stays flat as sources grow) they
are drawn on the source image. ``--backend openvino`` runs the de-blocker on OpenVINO (CPU).
Output goes to a new
subfolder of ``--save`` (``predict``, ``predict2``, ...), so no existing file is overwritten.
The quality gate (``--gate``, default ``auto``) leaves images estimated above its threshold
as they are. Image files that cannot be decoded are named on stderr and skipped in a folder;
a single such file makes the run exit with status 1. Input files are only ever read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS
from ultralytics.utils.patches import imread

from dcsc_preproc import QualityGate
from dcsc_preproc.backends import BACKENDS
from pipelines.yolo import PLACES, DeblockedYOLO


def _is_image(path: Path) -> bool:
    return path.suffix.lower().lstrip(".") in IMG_FORMATS


def split_readable(source: Path) -> tuple[list[Path], list[Path]]:
    """The files of a file or folder source Ultralytics would read, split into readable ones
    and image files that do not decode (read as Ultralytics reads them). Videos are kept."""
    files = sorted(f for f in source.iterdir() if f.is_file()) if source.is_dir() else [source]
    files = [f for f in files if _is_image(f) or f.suffix.lower().lstrip(".") in VID_FORMATS]
    bad = [f for f in files if _is_image(f) and imread(f) is None]
    return [f for f in files if f not in bad], bad


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.detect",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--detector", type=Path, required=True, help="Ultralytics weights path")
    parser.add_argument("--source", required=True,
                        help="image, folder, video (anything YOLO reads)")
    parser.add_argument("--deblock", default=None, metavar="MODEL",
                        help="shipped model name, .safetensors or authors' .npz (default: the "
                             "library's DEFAULT_MODEL)")
    parser.add_argument("--gate", default="auto",
                        help="'auto' (default), a JPEG quality, or 'none' (always de-block)")
    parser.add_argument("--save", type=Path, required=True, help="folder for the annotated output")
    parser.add_argument("--conf", type=float, default=0.25, help="confidence threshold")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--at", choices=PLACES, default="source",
                        help="de-block the image as given, or shrunk to the detector's input "
                             "first (boxes still in source coordinates)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="with --at detector: de-block at this multiple of the detector's "
                             "input (more recovery, cost grows with its square)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="de-blocker runtime (default: torch; openvino for CPU deployment)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    args = parser.parse_args(argv)
    try:
        gate = QualityGate(args.gate)
    except ValueError as err:
        parser.error(str(err))

    source: str | list[str] = args.source
    path = Path(args.source)
    if path.is_file() or path.is_dir():
        readable, bad = split_readable(path)
        for f in bad:
            print(f"skipping {f}: cannot decode it as an image", file=sys.stderr)
        if path.is_file() and not readable:
            print(f"error: {path} is not an image or video that can be read", file=sys.stderr)
            return 1
        if not readable:
            print(f"error: no readable images or videos in {path}", file=sys.stderr)
            return 1
        source = [str(f) for f in readable]
    try:
        detector = DeblockedYOLO(args.detector, args.deblock, device=args.device, gate=gate,
                                 at=args.at, backend=args.backend, scale=args.scale)
    except (OSError, ValueError, ImportError) as err:  # missing weights, runtime not installed
        parser.error(str(err))
    results = detector.predict(source, stream=True, save=True, conf=args.conf,
                               imgsz=args.imgsz, project=str(args.save.resolve()),
                               name="predict", exist_ok=False, verbose=False)
    for r in results:
        print(f"{r.path}: {r.verbose().rstrip(', ')} ({r.speed['inference']:.0f} ms inference)")
    print(f"gate {gate.threshold}: {gate.restored} de-blocked, {gate.passed} passed through")
    print(f"saved to {detector.model.predictor.save_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
