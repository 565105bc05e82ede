"""eval.detection's robustness conditions (--conditions) and the gated de-blockers (--gate)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dcsc_preproc import DCSC, estimate_quality, save_model
from eval import detection
from pipelines.yolo import load_detector


@pytest.fixture(scope="module")
def coco_dev(shared: Path) -> Path:
    return shared / "data" / "coco_dev"


@pytest.fixture(scope="module")
def original(coco_dev: Path) -> np.ndarray:
    return detection.read_rgb(sorted((coco_dev / "images").glob("*.jpg"))[1])


def iou(a: list[float], b: list[float]) -> float:
    """IoU of two COCO (x, y, w, h) boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _png(image: np.ndarray, folder: Path) -> Path:
    path = folder / "original.png"
    cv2.imwrite(str(path), image[..., ::-1])
    return path


def test_degradations_do_what_they_say(original: np.ndarray, tmp_path: Path) -> None:
    h, w = original.shape[:2]
    assert detection.reshape(original, "resize0.5", 3).shape == (round(h / 2), round(w / 2), 3)
    for image_id in range(49):  # every crop of 1-7 rows and columns occurs
        _, top, left = detection.geometry("crop", image_id)
        assert 1 <= top <= 7 and 1 <= left <= 7
    assert {detection.geometry("crop", i)[1:] for i in range(49)} == {
        (t, l) for t in range(1, 8) for l in range(1, 8)}
    # camera3: enlarged 3x first, then compressed at that size (its 8x8 grid is the camera's)
    assert detection.reshape(original, "camera3", 3).shape == (3 * h, 3 * w, 3)
    camera = detection.degraded_image(_png(original, tmp_path), 10, "camera3", 3, tmp_path)
    assert camera.shape == (3 * h, 3 * w, 3)
    assert abs(estimate_quality(camera).quality - 10) <= 3
    cropped = detection.reshape(original, "crop", 10)
    np.testing.assert_array_equal(cropped, original[2:, 4:])
    # The pixel estimate sees the coarser of two encodings: q10 then q30 still looks q10.
    for condition, quality, seen in (("444", 20, 20), ("opencv", 20, 20), ("q30>q10", 10, 10),
                                     ("q10>q30", 30, 10)):
        out = detection.degrade(original, quality, condition, 0)
        assert out.shape == original.shape and out.dtype == np.uint8
        assert abs(estimate_quality(out).quality - seen) <= 3
    q444, q420 = (detection.degrade(original, 20, c, 0) for c in ("444", None))
    assert not np.array_equal(q444, q420)
    qualities = {detection.mixed_quality(i) for i in range(200)}
    assert min(qualities) >= 10 and max(qualities) <= 95 and len(qualities) > 50
    assert detection.mixed_quality(7) == detection.mixed_quality(7)


@pytest.mark.parametrize("condition", ["crop", "resize0.5", "camera3"])
def test_detections_map_back_to_the_original(detector: Path, original: np.ndarray,
                                             condition: str) -> None:
    """The best box found on the resized or cropped original lands on the original's."""
    model = load_detector(detector)
    reference = max(detection.detect(model, original, 5, 640, "cpu"), key=lambda d: d["score"])
    reshaped = detection.reshape(original, condition, 5)
    mapped = detection.detect(model, reshaped, 5, 640, "cpu", condition)
    unmapped = detection.detect(model, reshaped, 5, 640, "cpu")
    best = lambda dets: max(iou(d["bbox"], reference["bbox"]) for d in dets
                            if d["category_id"] == reference["category_id"])
    assert best(mapped) > 0.85 and best(mapped) > best(unmapped)


def test_conditions_and_gate_run(coco_dev: Path, detector: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = save_model(DCSC(in_channels=3, dilated_features=8, features=16, iterations=1),
                         tmp_path / "tiny.safetensors")
    with redirect_stdout(io.StringIO()) as stdout:
        detection.main(["--images", str(coco_dev / "images"),
                        "--annotations", str(coco_dev / "instances.json"),
                        "--detector", str(detector), "--qualities", "10", "--limit", "2",
                        "--deblock", str(weights), "--gate", "auto",
                        "--conditions", "crop", "q30>q10", "mixed",
                        "--json", str(tmp_path / "r.json"), "--cache", str(tmp_path / "cache"),
                        "--device", "cpu", "--bootstrap", "20"])
    records = json.loads((tmp_path / "r.json").read_text())
    names = [detection.condition_name(r) for r in records]
    for name in ("original", "original + tiny+gate", "JPEG q10 + tiny+gate", "original crop",
                 "JPEG q10 crop", "JPEG q10 crop + tiny", "JPEG q30>q10 + tiny+gate",
                 "JPEG q10-95 mixed"):
        assert name in names and f"| {name} |" in stdout.getvalue()
    by_name = dict(zip(names, records))
    assert by_name["original + tiny+gate"]["gate_passed"] == 1.0  # q80+ originals pass
    assert by_name["original + tiny+gate"]["map"] == by_name["original"]["map"]
    assert by_name["JPEG q10 + tiny+gate"]["gate_passed"] == 0.0
    assert by_name["JPEG q10 + tiny+gate"]["map"] == by_name["JPEG q10 + tiny"]["map"]
    crop, reference = by_name["JPEG q10 crop + tiny"], by_name["original crop"]
    loss = reference["map"] - by_name["JPEG q10 crop"]["map"]
    assert crop["recovered"] == pytest.approx(crop["delta"] / loss)
