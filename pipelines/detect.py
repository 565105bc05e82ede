"""Detect objects with a YOLO detector behind DCSC de-blocking; save annotated images or video.

    python -m pipelines.detect --detector ../shared/models/yolov8n_ovint8_dequant.pt \\
        --source photos/ --deblock dcsc-fast --save out/

The annotations are drawn on the de-blocked image (what the detector saw). Output goes to a new
subfolder of ``--save`` (``predict``, ``predict2``, ...), so no existing file is overwritten.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pipelines.yolo import DeblockedYOLO


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.detect",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--detector", type=Path, required=True, help="Ultralytics weights path")
    parser.add_argument("--source", required=True, help="image, folder, video (anything YOLO reads)")
    parser.add_argument("--deblock", default=None, metavar="MODEL",
                        help="shipped model name, .safetensors or authors' .npz (default: the "
                             "library's DEFAULT_MODEL)")
    parser.add_argument("--save", type=Path, required=True, help="folder for the annotated output")
    parser.add_argument("--conf", type=float, default=0.25, help="confidence threshold")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    args = parser.parse_args(argv)

    detector = DeblockedYOLO(args.detector, args.deblock, device=args.device)
    results = detector.predict(args.source, stream=True, save=True, conf=args.conf,
                               imgsz=args.imgsz, project=str(args.save.resolve()),
                               name="predict", exist_ok=False, verbose=False)
    for r in results:
        print(f"{r.path}: {r.verbose().rstrip(', ')} ({r.speed['inference']:.0f} ms inference)")
    print(f"saved to {detector.model.predictor.save_dir}")


if __name__ == "__main__":
    main()
