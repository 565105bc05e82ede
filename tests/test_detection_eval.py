"""Tests for eval.detection: records, table, plot, cache, and the mAP against a direct computation."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from ultralytics import YOLO
from ultralytics.data.converter import coco80_to_coco91_class

from dcsc_preproc import DCSC, jpeg_roundtrip, save_model
from eval import detection

KEYS = {"quality", "deblocker", "detector", "map", "map50", "map_small", "map_medium", "map_large",
        "images", "deblock_s", "detect_s", "map_ci", "delta", "delta_ci", "recovered",
        "recovered_ci", "condition", "gate_passed"}
LIMIT = 3


@pytest.fixture(scope="module")
def coco_dev(shared: Path) -> Path:
    return shared / "data" / "coco_dev"


@pytest.fixture(scope="module")
def run(coco_dev: Path, detector: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One CLI run on 3 images at q10 with a tiny random DCSC (R = 2 and 1) and NLM."""
    tmp = tmp_path_factory.mktemp("detection")
    torch.manual_seed(0)
    weights = save_model(DCSC(in_channels=3, dilated_features=8, features=16, iterations=2),
                         tmp / "tiny.safetensors")
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        detection.main(["--images", str(coco_dev / "images"),
                        "--annotations", str(coco_dev / "instances.json"),
                        "--detector", str(detector), "--qualities", "10",
                        "--deblock", str(weights), f"{weights}@1", "--deblock", "nlm",
                        "--limit", str(LIMIT), "--json", str(tmp / "r.json"),
                        "--plot", str(tmp / "r.png"), "--cache", str(tmp / "cache"),
                        "--device", "cpu", "--bootstrap", "50"])
    return {"tmp": tmp, "weights": weights, "stdout": stdout.getvalue(),
            "records": json.loads((tmp / "r.json").read_text())}


def test_records_table_and_plot(run: dict) -> None:
    records = run["records"]
    assert [(r["quality"], r["deblocker"]) for r in records] == [
        (None, None), (None, "tiny"), (None, "tiny@1"), (None, "nlm"),
        (10, None), (10, "tiny"), (10, "tiny@1"), (10, "nlm")]
    for r in records:
        assert set(r) == KEYS
        assert r["images"] == LIMIT and r["detector"] == "yolov8n_ovint8_dequant.pt"
        assert r["map_ci"][0] <= r["map_ci"][1]
        for key in ("map", "map50", "map_small", "map_medium", "map_large"):
            assert r[key] is None or 0 <= r[key] <= 1
        assert r["detect_s"] > 0
        assert (r["deblock_s"] is None) == (r["deblocker"] is None)
    lines = run["stdout"].strip().splitlines()
    assert lines[0].startswith("| condition | mAP50-95 |") and len(lines) == 2 + len(records)
    assert lines[-1].startswith("| JPEG q10 + nlm |")
    assert (run["tmp"] / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_cache_keys_separate_iterations(run: dict) -> None:
    """Each R of a weights file gets its own cache folder, named with R and the file's hash."""
    weights = run["weights"]
    key, key_r1 = detection.cache_key(weights), detection.cache_key(f"{weights}@1")
    assert key.startswith("tiny-") and key_r1.startswith("tiny@1-")
    assert key.split("-")[-1] == key_r1.split("-")[-1]  # the same weights file hash
    folders = {p.name for p in (run["tmp"] / "cache" / "deblocked").iterdir()}
    assert folders == {key, key_r1, "nlm"}
    assert detection.cache_key("dcsc-fast@3").startswith("dcsc-fast@3-")  # shipped: hashed too


def test_original_map_matches_direct_computation(run: dict, coco_dev: Path,
                                                 detector: Path) -> None:
    """YOLO.predict on the files themselves + pycocotools gives the same mAP."""
    with redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_dev / "instances.json"))
    ids = sorted(gt.getImgIds())[:LIMIT]
    model = YOLO(str(detector))
    to_coco = coco80_to_coco91_class()
    dets = []
    for i in ids:
        r = model.predict(str(coco_dev / "images" / gt.imgs[i]["file_name"]), conf=0.001,
                          iou=0.7, max_det=300, device="cpu", verbose=False)[0]
        for (x, y, w, h), s, c in zip(r.boxes.xywh.tolist(), r.boxes.conf.tolist(),
                                      r.boxes.cls.tolist()):
            dets.append({"image_id": i, "category_id": to_coco[int(c)],
                         "bbox": [x - w / 2, y - h / 2, w, h], "score": s})
    with redirect_stdout(io.StringIO()):
        e = COCOeval(gt, gt.loadRes(dets), "bbox")
        e.params.imgIds = ids
        e.evaluate()
        e.accumulate()
        e.summarize()
    assert run["records"][0]["map"] == pytest.approx(e.stats[0], abs=1e-6)
    assert run["records"][0]["map50"] == pytest.approx(e.stats[1], abs=1e-6)


def test_bootstrap_fields_are_paired_differences(run: dict) -> None:
    by = {(r["quality"], r["deblocker"]): r for r in run["records"]}
    original, jpeg, nlm = by[None, None], by[10, None], by[10, "nlm"]
    assert original["delta"] is None and original["recovered"] is None
    assert by[None, "nlm"]["delta"] == pytest.approx(by[None, "nlm"]["map"] - original["map"])
    assert by[None, "nlm"]["recovered"] is None  # no JPEG loss to win back on originals
    assert nlm["delta"] == pytest.approx(nlm["map"] - jpeg["map"])
    assert nlm["recovered"] == pytest.approx(nlm["delta"] / (original["map"] - jpeg["map"]))
    assert nlm["delta_ci"][0] <= nlm["delta_ci"][1]
    assert nlm["recovered_ci"][0] <= nlm["recovered_ci"][1]


def test_weighted_map_equals_cocoeval_on_the_drawn_images(coco_dev: Path) -> None:
    """Weights of 0/1 give COCOeval's mAP on that subset: the bootstrap re-accumulates exactly."""
    from eval.coco_bootstrap import PerImageAP

    with redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_dev / "instances.json"))
    ids = sorted(gt.getImgIds())[:12]
    rng = np.random.default_rng(1)
    dets = []  # noisy copies of the ground truth: a realistic mix of hits, misses and scores
    for a in gt.loadAnns(gt.getAnnIds(imgIds=ids)):
        x, y, w, h = a["bbox"]
        for _ in range(2):
            dx, dy = rng.normal(0, 0.15 * w), rng.normal(0, 0.15 * h)
            dets.append({"image_id": a["image_id"], "category_id": a["category_id"],
                         "bbox": [x + dx, y + dy, w, h], "score": float(rng.random())})
    full = PerImageAP(gt, dets, ids)
    assert full.map() == pytest.approx(full.stats[0], abs=1e-12)
    subset = ids[::2]
    weights = np.array([1.0 if i in subset else 0.0 for i in ids])
    sub = PerImageAP(gt, [d for d in dets if d["image_id"] in subset], subset)
    assert full.map(weights) == pytest.approx(sub.stats[0], abs=1e-12)
    assert full.map(2 * np.ones(len(ids))) == pytest.approx(full.stats[0], abs=1e-12)


def test_cache_is_reused_and_jpeg_matches_roundtrip(run: dict, coco_dev: Path,
                                                   detector: Path) -> None:
    cache = run["tmp"] / "cache"
    again = detection.evaluate_detection(coco_dev / "images", coco_dev / "instances.json",
                                         detector, [10], ["nlm"], LIMIT, cache, device="cpu")
    assert again[-1]["deblock_s"] is None  # every NLM image came from the cache
    assert again[-1]["map"] == pytest.approx(run["records"][-1]["map"], abs=1e-9)
    original = sorted((coco_dev / "images").glob("*.jpg"))[0]
    np.testing.assert_array_equal(detection.jpeg_image(original, 10, cache),
                                  jpeg_roundtrip(detection.read_rgb(original), 10))


def test_missing_detector_is_a_clear_error(coco_dev: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="detector weights not found"):
        detection.evaluate_detection(coco_dev / "images", coco_dev / "instances.json",
                                     tmp_path / "nope.pt", [10], [], 1, tmp_path)


def test_skip_evaluates_a_later_slice(run: dict, coco_dev: Path, detector: Path) -> None:
    """--skip 1 --limit 1 is the second image: its original mAP differs from the first's."""
    cache = run["tmp"] / "cache"
    first = detection.evaluate_detection(coco_dev / "images", coco_dev / "instances.json",
                                         detector, [], [], 1, cache, device="cpu", bootstrap=0)
    second = detection.evaluate_detection(coco_dev / "images", coco_dev / "instances.json",
                                          detector, [], [], 1, cache, device="cpu", bootstrap=0,
                                          skip=1)
    both = detection.evaluate_detection(coco_dev / "images", coco_dev / "instances.json",
                                        detector, [], [], 2, cache, device="cpu", bootstrap=0)
    assert first[0]["images"] == second[0]["images"] == 1
    assert first[0]["map"] != second[0]["map"]
    assert both[0]["map"] not in (first[0]["map"], second[0]["map"])


def test_deblock_at_detector_matches_the_pipeline(coco_dev: Path, detector: Path,
                                                  tmp_path: Path) -> None:
    """NAME+resize and NAME+resize1.5x are what add_deblocking(..., at="detector", scale=1 or
    1.5) detects, in source coordinates: the same mAP from the pipeline's own boxes; NAME
    alone is unchanged beside them."""
    from eval.coco_bootstrap import PerImageAP
    from pipelines.yolo import add_deblocking

    torch.manual_seed(0)
    weights = save_model(DCSC(in_channels=3, dilated_features=8, features=16, iterations=2),
                         tmp_path / "tiny.safetensors")
    args = (coco_dev / "images", coco_dev / "instances.json", detector, [10], [weights], 2,
            tmp_path / "cache")
    both = detection.evaluate_detection(*args, imgsz=320, device="cpu", bootstrap=0,
                                        deblock_at=("source", "detector"),
                                        deblock_scales=(1, 1.5))
    alone = detection.evaluate_detection(*args, imgsz=320, device="cpu", bootstrap=0)
    by_name = {(r["quality"], r["deblocker"]): r for r in both}
    assert set(by_name) == {(q, d) for q in (None, 10)
                            for d in (None, "tiny", "tiny+resize", "tiny+resize1.5x")}
    assert by_name[10, "tiny"]["map"] == {(r["quality"], r["deblocker"]): r
                                         for r in alone}[10, "tiny"]["map"]

    with redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_dev / "instances.json"))
    ids = sorted(gt.getImgIds())[:2]
    for scale, name in ((1, "tiny+resize"), (1.5, "tiny+resize1.5x")):
        model = add_deblocking(YOLO(str(detector)), weights, gate=None, at="detector",
                               scale=scale)
        found = []
        for i in ids:
            rgb = detection.jpeg_image(coco_dev / "images" / gt.imgs[i]["file_name"], 10,
                                       tmp_path / "cache")
            [result] = model.predict(np.ascontiguousarray(rgb[..., ::-1]), imgsz=320,
                                     device="cpu", **detection.PREDICT_ARGS)
            assert result.orig_shape == rgb.shape[:2]
            found += [{"image_id": i, "category_id": coco80_to_coco91_class()[int(c)],
                       "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
                      for (x1, y1, x2, y2), s, c in zip(result.boxes.xyxy.tolist(),
                                                        result.boxes.conf.tolist(),
                                                        result.boxes.cls.tolist())]
        pipeline = PerImageAP(gt, found, ids).stats[0]
        assert by_name[10, name]["map"] == pytest.approx(pipeline, abs=1e-6)
        assert by_name[10, name]["map"] != by_name[10, "tiny"]["map"]


def test_versus_is_the_paired_difference_of_two_de_blockers(run: dict, coco_dev: Path,
                                                            detector: Path) -> None:
    """--versus: each other de-blocker's recovered minus the reference's, with an interval
    that holds the point value; the reference itself gets none."""
    records = detection.evaluate_detection(
        coco_dev / "images", coco_dev / "instances.json", detector, [10],
        [run["weights"], f"{run['weights']}@1"], LIMIT, run["tmp"] / "cache", device="cpu",
        bootstrap=50, versus="tiny")
    by_name = {(r["quality"], r["deblocker"]): r for r in records}
    one, ref = by_name[10, "tiny@1"], by_name[10, "tiny"]
    assert one["versus_recovered"] == pytest.approx(one["recovered"] - ref["recovered"])
    low, high = one["versus_recovered_ci"]
    assert low <= one["versus_recovered"] <= high
    assert by_name[None, "tiny@1"]["versus_delta"] == pytest.approx(
        by_name[None, "tiny@1"]["map"] - by_name[None, "tiny"]["map"])
    assert "versus_recovered" not in ref and "versus_delta" not in by_name[10, None]
    assert "vs reference (paired)" in detection.markdown_table(records)
    with pytest.raises(ValueError, match="is not one of the de-blockers"):
        detection.evaluate_detection(coco_dev / "images", coco_dev / "instances.json", detector,
                                     [10], [run["weights"]], LIMIT, run["tmp"] / "cache",
                                     device="cpu", versus="nlm")
