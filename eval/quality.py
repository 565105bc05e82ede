"""Accuracy of :func:`dcsc_preproc.estimate_quality` on coco_dev, and where the gate cuts.

For each of the first ``limit`` coco_dev images (by file name): the original file (truth: its
tables) and its decoded pixels; Pillow encodings at each quality with 4:2:0 and 4:4:4 chroma
and OpenCV's (``cv2.imencode``), estimated from tables and from the decoded pixels. One row
per condition: mean and maximum absolute error, the share within 1 and within 3, and the
share the default gate (``QualityGate("auto")``) would de-block.

    python -m eval.quality --limit 100 --qualities 5 10 20 30 40 50 60 70 80 90 95 --json q.json

``--size WxH`` resizes each image (bicubic) to a camera frame size before encoding it, so the
blind estimate is measured on frames as large as streams deliver (the files' own tables then
no longer apply: no ``original`` rows). ``ms`` is the median time of one estimate.

``--alignment MODEL`` measures instead what a shifted grid costs a de-blocker: each image at
q10, cropped by 1-7 rows and columns, restored with ``Engine(align_grid=False)`` and with the
default grid alignment; RGB PSNR against the original cropped alike.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from dcsc_preproc import Engine, QualityGate, estimate_quality
from eval.common import parse_size, read_image_bytes

SHARED = Path(os.environ.get("DCSC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IMAGES = SHARED / "data" / "coco_dev" / "images"
ENCODERS = ("pillow 4:2:0", "pillow 4:4:4", "opencv")


def encode(image: np.ndarray, quality: int, encoder: str) -> bytes:
    """``image`` (RGB uint8) as JPEG bytes by ``encoder`` (one of :data:`ENCODERS`)."""
    if encoder == "opencv":
        flags = [cv2.IMWRITE_JPEG_QUALITY, quality]
        return cv2.imencode(".jpg", image[..., ::-1], flags)[1].tobytes()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality,
                                subsampling=0 if encoder == "pillow 4:4:4" else 2)
    return buffer.getvalue()


def evaluate_quality(images: Path = IMAGES, qualities: Sequence[int] = (10, 30, 50, 70, 90),
                     limit: int | None = None, size: tuple[int, int] | None = None) -> list[dict]:
    """One record per (condition, estimate source): errors, the gate's de-block share and the
    median ms of an estimate; ``size`` (width, height) resizes each image first."""
    files = sorted(Path(images).glob("*.jpg"))[:limit]
    if not files:
        raise FileNotFoundError(f"no .jpg files in {images}")
    gate = QualityGate("auto")
    found: dict[tuple[str, str], list[tuple[int, int, float]]] = {}  # -> [(truth, estimate, s)]

    def add(condition: str, source: str, truth: int, value) -> None:
        start = time.perf_counter()
        estimate = estimate_quality(value).quality
        found.setdefault((condition, source), []).append(
            (truth, estimate, time.perf_counter() - start))

    for path in tqdm(files, desc="images", file=sys.stderr):
        rgb = read_image_bytes(path.read_bytes())
        if size is None:
            truth = estimate_quality(path).quality
            found.setdefault(("original", "tables"), []).append((truth, truth, 0.0))
            add("original", "pixels", truth, rgb)
        else:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
        for encoder in ENCODERS:
            for q in qualities:
                data = encode(rgb, q, encoder)
                for source, value in (("tables", data), ("pixels", read_image_bytes(data))):
                    add(f"{encoder} q{q}", source, q, value)
    records = []
    for (condition, source), rows in found.items():
        truth, estimate, seconds = np.array(rows).T
        error = np.abs(estimate - truth)
        records.append({"condition": condition, "source": source, "images": len(rows),
                        "mean_abs_error": float(error.mean()), "max_abs_error": int(error.max()),
                        "within_1": float((error <= 1).mean()),
                        "within_3": float((error <= 3).mean()),
                        "deblocked": float((estimate <= gate.threshold).mean()),
                        "min_estimate": int(estimate.min()), "max_estimate": int(estimate.max()),
                        "ms": float(1000 * np.median(seconds))})
    return records


def psnr_rgb(image: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((image.astype(float) - reference) ** 2)))


def alignment_gain(images: Path, model: str, limit: int | None, quality: int = 10) -> dict:
    """Mean RGB PSNR of cropped JPEGs: as they are, de-blocked unaligned and aligned."""
    unaligned, aligned = Engine(model, align_grid=False), Engine(model)
    rows = []
    for i, path in enumerate(tqdm(sorted(Path(images).glob("*.jpg"))[:limit], file=sys.stderr)):
        rgb = read_image_bytes(path.read_bytes())
        top, left = 1 + i % 7, 1 + 3 * i % 7
        jpeg = read_image_bytes(encode(rgb, quality, "pillow 4:2:0"))[top:, left:]
        reference = rgb[top:, left:]
        rows.append([psnr_rgb(x, reference) for x in
                     (jpeg, unaligned.restore_array(jpeg), aligned.restore_array(jpeg))])
    jpeg, plain, fixed = np.mean(rows, axis=0)
    return {"model": model, "quality": quality, "images": len(rows), "jpeg_psnr": jpeg,
            "unaligned_gain_db": plain - jpeg, "aligned_gain_db": fixed - jpeg}


def markdown_table(records: list[dict]) -> str:
    lines = ["| condition | from | images | mean abs error | max abs error | within 1 | within 3 | "
             "estimates | gate de-blocks | ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['condition']} | {r['source']} | {r['images']} | "
                     f"{r['mean_abs_error']:.2f} | {r['max_abs_error']} | {r['within_1']:.0%} | "
                     f"{r['within_3']:.0%} | {r['min_estimate']}-{r['max_estimate']} | "
                     f"{r['deblocked']:.0%} | {r['ms']:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.quality",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=IMAGES, help="folder of JPEG files")
    parser.add_argument("--qualities", type=int, nargs="+", default=[10, 30, 50, 70, 90])
    parser.add_argument("--limit", type=int, default=None, help="first N files by name")
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--alignment", metavar="MODEL",
                        help="measure the grid-alignment gain of this de-blocker instead")
    parser.add_argument("--size", type=parse_size, metavar="WxH",
                        help="resize each image to this frame size before encoding it")
    args = parser.parse_args(argv)
    if args.alignment:
        result = alignment_gain(args.images, args.alignment, args.limit)
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return
    records = evaluate_quality(args.images, args.qualities, args.limit, args.size)
    print(markdown_table(records))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
