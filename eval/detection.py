"""Detection benchmark: COCO bbox mAP of a YOLO detector on original and JPEG images, each
with and without de-blocking.

Protocol of ``shared/data/coco_dev/REFERENCE.md``, so the numbers compare with it: the first
``limit`` images by id; JPEG by Pillow at quality q (4:2:0) decoded by Pillow; each de-blocker on
the decoded RGB image; Ultralytics ``predict`` on the whole image (BGR array, as it expects) at
imgsz 640, conf 0.001, NMS IoU 0.7, max_det 300; classes to COCO ids with the standard 80->91
map; pycocotools bbox evaluation restricted to the evaluated image ids.

JPEG files and de-blocked PNGs are cached under ``--cache`` (de-blocked ones keyed by de-blocker,
quality and image id), so adding a de-blocker re-runs only that one. A DCSC de-blocker's key is
its name (with any ``@R`` suffix: ``dcsc-fast@3`` runs R=3 LISTA iterations) plus a hash of its
weights file, so retrained weights or another R never reuse cached images. De-block time is the
mean over images computed in this run (``null`` when all came from the cache).

Every de-blocker also runs on the original files (harm on clean images). A paired bootstrap
over images (``--bootstrap N`` resamples, the same draws for every condition; see
:mod:`eval.coco_bootstrap`) gives 95% intervals for each mAP (``map_ci``), for the change
against the same images without de-blocking (``delta``, ``delta_ci``) and, for JPEG
conditions, for the share of the JPEG loss won back (``recovered``, ``recovered_ci``:
``(de-blocked - JPEG) / (original - JPEG)``). The detector is any Ultralytics model given as
a path: ``.pt`` weights or an export folder such as ``yolov8n_int8_openvino_model/``.

Robustness conditions (``--conditions``, :data:`CONDITIONS`) degrade the originals as real
pipelines do: JPEG then a resize (``resize0.5``, ``resize0.75``: the 8x8 grid no longer
aligned) or a crop of 1-7 pixels at the top and left (``crop``: grid shifted), 4:4:4 chroma
(``444``), OpenCV's encoder (``opencv``), double compression (``q30>q10``, ``q10>q30``) and a
mixed-quality set (``mixed``: each image at a quality drawn from 10-95, seeded by image id),
and camera-size frames (``camera3``: the original enlarged 3x (bicubic) and then JPEG-compressed
at that size, as a camera encodes its full-resolution frame; with ``--deblock-at source
detector`` it compares de-blocking every pixel with de-blocking behind the detector's 3x
shrink). Resized and cropped conditions are compared with the original resized or cropped the same way
(``original resize0.5``), and their detections are mapped back to the annotations'
coordinates. ``--gate auto`` (or a quality) adds, for each de-blocker, ``NAME+gate``: the
de-blocker behind a :class:`~dcsc_preproc.QualityGate` that judges each image by its pixels
(the blind estimate; a file's tables would decide exactly), passing the rest unchanged.
``--deblock-at detector`` (or ``source detector`` for both, on the same images) runs each
de-blocker as ``add_deblocking(..., at="detector")`` does, as ``NAME+resize``: the image is
first shrunk to what the detector sees at ``--imgsz`` (bilinear, as ``LetterBox``), de-blocked
there and its boxes mapped back; COCO images are at most 640 pixels, so this matters at
``--imgsz 320``.

    python -m eval.detection --limit 100 --qualities 10 20 --deblock nlm dcsc-fast \\
        --json results/detection.json --plot results/detection.png
    python -m eval.detection --limit 200 --qualities 10 --deblock dcsc-fast --gate auto \\
        --conditions resize0.5 crop 444 opencv q30>q10 mixed --json robustness.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import redirect_stdout
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported: it checks at import
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from tqdm import tqdm  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.data.converter import coco80_to_coco91_class  # noqa: E402

from dcsc_preproc import (Engine, QualityGate, encode_jpeg, get_deblocker, model_name,  # noqa: E402
                          read_image)
from dcsc_preproc.baselines import BASELINES  # noqa: E402
from dcsc_preproc.zoo import resolve_source  # noqa: E402
from eval.coco_bootstrap import PerImageAP, interval, resample_weights  # noqa: E402
from eval.common import read_image_bytes  # noqa: E402
from pipelines.yolo import (PLACES, deblock_array, deblock_imgsz, load_detector,  # noqa: E402
                            shrink_for_detector)

SHARED = Path(os.environ.get("DCSC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IMAGES = SHARED / "data" / "coco_dev" / "images"
ANNOTATIONS = SHARED / "data" / "coco_dev" / "instances.json"
DETECTOR = SHARED / "models" / "yolov8n_ovint8_dequant.pt"
CACHE = Path(".cache/detection")
#: Ultralytics ``predict`` settings of ``model.val()``, as in REFERENCE.md.
PREDICT_ARGS = {"conf": 0.001, "iou": 0.7, "max_det": 300, "verbose": False}
COCO91 = coco80_to_coco91_class()
#: Robustness conditions: name -> (JPEG qualities it uses; ``None``: each of --qualities).
CONDITIONS = {"resize0.5": None, "resize0.75": None, "crop": None, "camera3": None,
              "444": None, "opencv": None,
              "q30>q10": (30, 10), "q10>q30": (10, 30), "mixed": "10-95"}
#: Conditions whose geometry comes before the JPEG compression (the others resize or crop a
#: decoded JPEG).
BEFORE_JPEG = ("camera3",)
#: Record key -> COCOeval.stats index.
STATS = {"map": 0, "map50": 1, "map_small": 3, "map_medium": 4, "map_large": 5}


def shrunk(function: Callable[[np.ndarray], np.ndarray], imgsz: int
           ) -> Callable[[np.ndarray], np.ndarray]:
    """``function`` (a :func:`~dcsc_preproc.baselines.get_deblocker`) on the RGB image shrunk
    to the detector's input, as ``add_deblocking(..., at="detector")``: a DCSC's
    ``Engine.restore_array`` goes through :func:`~pipelines.yolo.deblock_array` (no grid read
    on a shrunk image), a baseline gets the shrunk image."""
    engine = getattr(function, "__self__", None)
    if isinstance(engine, Engine):
        return lambda x: deblock_array(engine, x, imgsz, bgr=False)
    return lambda x: function(shrink_for_detector(x, imgsz))


def cache_key(source: str | Path) -> str:
    """Cache folder of a de-blocker: a baseline's name, or a DCSC's :func:`model_name` (which
    keeps ``@R``) plus a hash of its weights file (shipped or not)."""
    if str(source) in BASELINES:
        return str(source)
    if Path(source).is_dir():  # an OpenVINO export folder (Engine(folder)): hash its files
        files = sorted(p for p in Path(source).iterdir() if p.is_file())
        data = b"".join(p.name.encode() + p.read_bytes() for p in files)
    else:
        data = resolve_source(source)[0].read_bytes()
    return f"{model_name(source)}-{hashlib.sha256(data).hexdigest()[:10]}"


def condition_name(record: dict) -> str:
    """``original``, ``original + nlm``, ``JPEG q10``, ``JPEG q10 + nlm``; a robustness
    condition follows the quality: ``JPEG q10 resize0.5 + nlm``, ``JPEG q10-95 mixed``,
    ``JPEG q30>q10``."""
    quality, condition = record["quality"], record.get("condition")
    if isinstance(CONDITIONS.get(condition), tuple):  # double compression names its qualities
        name = f"JPEG {condition}"
    else:
        name = "original" if quality is None else f"JPEG q{quality}"
        name += f" {condition}" if condition else ""
    return f"{name} + {record['deblocker']}" if record["deblocker"] else name


def geometry(condition: str | None, image_id: int) -> tuple[float, int, int]:
    """``(scale, top, left)`` of a condition's resize and crop (``(1, 0, 0)``: none). The
    crop removes 1-7 rows and 1-7 columns, varying with the image id."""
    if condition in ("resize0.5", "resize0.75"):
        return float(condition[6:]), 0, 0
    if condition == "camera3":
        return 3.0, 0, 0
    if condition == "crop":
        return 1.0, 1 + image_id // 7 % 7, 1 + image_id % 7
    return 1.0, 0, 0


def reshape(image: np.ndarray, condition: str | None, image_id: int) -> np.ndarray:
    """Apply the condition's resize (OpenCV: area to shrink, bicubic to enlarge) or crop to
    ``image``."""
    scale, top, left = geometry(condition, image_id)
    if scale != 1:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1
                           else cv2.INTER_CUBIC)
    return np.ascontiguousarray(image[top:, left:])


def degrade(image: np.ndarray, quality: int, condition: str | None, image_id: int) -> np.ndarray:
    """The condition's compression of an RGB original (then :func:`reshape` applies its
    geometry): Pillow 4:2:0 at ``quality``, 4:4:4, OpenCV, twice, or at the image's draw."""
    def pillow(x: np.ndarray, q: int, subsampling: int = 2) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(x).save(buffer, "JPEG", quality=q, subsampling=subsampling)
        return read_image_bytes(buffer.getvalue())

    if condition == "444":
        return pillow(image, quality, 0)
    if condition == "opencv":
        data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()
    if condition == "mixed":
        return pillow(image, mixed_quality(image_id))
    if condition in CONDITIONS and CONDITIONS[condition] is not None:
        first, second = CONDITIONS[condition]
        return pillow(pillow(image, first), second)
    return pillow(image, quality)


def mixed_quality(image_id: int) -> int:
    """The ``mixed`` condition's quality of an image: 10-95, seeded by its id."""
    return int(np.random.default_rng(image_id).integers(10, 96))


def read_rgb(path: Path) -> np.ndarray:
    """Read an image as uint8 RGB; a grayscale file gets three equal channels, as YOLO sees it."""
    image = read_image(path)
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image


def write_atomic(path: Path, data: bytes) -> None:
    """Write a cache file so that an interrupted run never leaves a truncated one behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def jpeg_image(original: Path, quality: int, cache: Path) -> np.ndarray:
    """The Pillow JPEG round trip of ``original`` at ``quality`` (the encoded file is cached)."""
    path = cache / "jpeg" / f"q{quality}" / f"{original.stem}.jpg"
    if not path.is_file():
        write_atomic(path, encode_jpeg(read_rgb(original), quality))
    return read_image(path)


def degraded_image(original: Path, quality: int | str | None, condition: str | None,
                   image_id: int, cache: Path) -> np.ndarray:
    """The image a condition gives the detector before de-blocking: the original (resized or
    cropped for such a condition) when ``quality`` is ``None``, else its degraded JPEG."""
    if condition is None:
        return read_rgb(original) if quality is None else jpeg_image(original, quality, cache)
    if quality is None:
        return reshape(read_rgb(original), condition, image_id)
    path = cache / "degraded" / _folder(quality, condition) / f"{original.stem}.png"
    if path.is_file():
        return read_rgb(path)
    if condition in BEFORE_JPEG:  # the geometry first, then the compression
        image = degrade(reshape(read_rgb(original), condition, image_id), quality, condition,
                        image_id)
    else:
        image = reshape(degrade(read_rgb(original), quality, condition, image_id), condition,
                        image_id)
    png = cv2.imencode(".png", image[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
    write_atomic(path, png.tobytes())
    return image


def _folder(quality: int | str | None, condition: str | None) -> str:
    """Cache sub-folder of a condition: ``q10``, ``original``, ``resize0.5-q10``, ..."""
    name = "original" if quality is None else f"q{quality}"
    return name if condition is None else f"{condition.replace('>', '-')}-{name}"


def deblocked_image(original: Path, quality: int | str | None, condition: str | None,
                    image_id: int, key: str, deblock: Callable[[np.ndarray], np.ndarray],
                    cache: Path) -> tuple[np.ndarray, float | None]:
    """De-blocked image of a condition and the seconds de-blocking took (``None`` if cached)."""
    path = cache / "deblocked" / key / _folder(quality, condition) / f"{original.stem}.png"
    if path.is_file():
        return read_rgb(path), None
    image = degraded_image(original, quality, condition, image_id, cache)
    start = time.perf_counter()
    out = deblock(image)
    seconds = time.perf_counter() - start
    png = cv2.imencode(".png", out[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
    write_atomic(path, png.tobytes())
    return out, seconds


def condition_image(original: Path, quality: int | str | None, condition: str | None,
                    image_id: int, deblock: tuple | None, cache: Path,
                    gate: QualityGate | None = None) -> tuple[np.ndarray, float | None]:
    """The image of one condition, optionally + ``(cache key, de-blocker)`` (behind ``gate``:
    images it passes stay as they are), and the seconds de-blocking took (``None``: none)."""
    image = None
    if deblock is None or gate is not None:
        image = degraded_image(original, quality, condition, image_id, cache)
        if deblock is None or not gate.restore(image):
            return image, None
    return deblocked_image(original, quality, condition, image_id, *deblock, cache)


def condition_shape(height: int, width: int, condition: str | None,
                    image_id: int) -> tuple[int, int]:
    """``(H, W)`` of a condition's image made from an ``height`` x ``width`` original."""
    scale, top, left = geometry(condition, image_id)
    return round(height * scale) - top, round(width * scale) - left


def detect(model: YOLO, image: np.ndarray, image_id: int, imgsz: int,
           device: str | None, condition: str | None = None,
           shape: tuple[int, int] | None = None) -> list[dict]:
    """COCO-format detections of one uint8 RGB image, in the original image's coordinates
    (undoing a condition's resize or crop, and the shrink of an image detected at a smaller
    size than the condition's ``shape``)."""
    scale, top, left = geometry(condition, image_id)
    sy, sx = (1.0, 1.0) if shape is None else (shape[0] / image.shape[0],
                                               shape[1] / image.shape[1])
    bgr = np.ascontiguousarray(image[..., ::-1])
    boxes = model.predict(bgr, imgsz=imgsz, device=device, **PREDICT_ARGS)[0].boxes
    return [{"image_id": image_id, "category_id": COCO91[int(c)],
             "bbox": [x1 * sx / scale + left, y1 * sy / scale + top,
                      (x2 - x1) * sx / scale, (y2 - y1) * sy / scale],
             "score": s}
            for (x1, y1, x2, y2), s, c in zip(boxes.xyxy.tolist(), boxes.conf.tolist(),
                                              boxes.cls.tolist())]


def coco_stats(result: PerImageAP) -> dict[str, float | None]:
    """pycocotools bbox AP fields; ``None`` for an area range without ground truth."""
    return {k: float(result.stats[i]) if result.stats[i] >= 0 else None for k, i in STATS.items()}


def add_intervals(records: list[dict], results: list[PerImageAP], resamples: int,
                  seed: int = 0, versus: str | None = None) -> None:
    """Paired bootstrap fields (``map_ci``, ``delta``, ``delta_ci``, ``recovered``,
    ``recovered_ci``) of each record, in place; the same image draws for every condition.
    With ``versus`` (a de-blocker's name) every other de-blocked record also gets
    ``versus_recovered`` and ``versus_recovered_ci``: its share of the JPEG loss won back
    minus that de-blocker's on the same condition (``versus_delta``, ``versus_delta_ci``
    for originals, in mAP), e.g. an INT8 export against its float model."""
    weights = resample_weights(len(results[0].image_ids), resamples, seed)
    draws = {id(r): np.array([res.map(w) for w in weights]) for r, res in zip(records, results)}
    by_condition = {(r["quality"], r.get("condition"), r["deblocker"]): r for r in records}

    def references(r: dict) -> tuple[dict | None, dict | None]:
        """The record's condition without de-blocking, and the clean original (resized or
        cropped alike for such a condition)."""
        condition = r.get("condition")
        reference = condition if geometry(condition, 0) != (1.0, 0, 0) else None
        return (by_condition.get((r["quality"], condition, None)),
                by_condition.get((None, reference, None)))

    def share(r: dict, other: dict, base: dict, original: dict) -> tuple:
        """``(r - other) / (original - base)`` in mAP and its interval over the draws."""
        loss = original["map"] - base["map"]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (draws[id(r)] - draws[id(other)]) / (draws[id(original)] - draws[id(base)])
        return (r["map"] - other["map"]) / loss if loss else None, interval(ratio)

    for r in records:
        r["map_ci"] = interval(draws[id(r)])
        base, original = references(r) if r["deblocker"] else (None, None)
        r["delta"] = None if base is None else r["map"] - base["map"]
        r["delta_ci"] = None if base is None else interval(draws[id(r)] - draws[id(base)])
        r["recovered"] = r["recovered_ci"] = None
        if base is not None and original is not None and r["quality"] is not None:
            r["recovered"], r["recovered_ci"] = share(r, base, base, original)
    if versus is None:
        return
    for r in records:
        other = by_condition.get((r["quality"], r.get("condition"), versus))
        if r["deblocker"] in (None, versus) or other is None:
            continue
        if r["quality"] is None:
            r["versus_delta"] = r["map"] - other["map"]
            r["versus_delta_ci"] = interval(draws[id(r)] - draws[id(other)])
        else:
            r["versus_recovered"], r["versus_recovered_ci"] = share(r, other, *references(r))


def evaluate_detection(images: Path = IMAGES, annotations: Path = ANNOTATIONS,
                       detector: Path = DETECTOR, qualities: Sequence[int] = (10, 20, 30),
                       deblockers: Sequence[str | Path] = (), limit: int | None = None,
                       cache: Path = CACHE, imgsz: int = 640, device: str | None = None,
                       bootstrap: int = 1000, seed: int = 0, conditions: Sequence[str] = (),
                       gate: int | str | None = None, skip: int = 0,
                       deblock_at: Sequence[str] = ("source",),
                       versus: str | None = None, deblock_scales: Sequence[float] = (1.0,)
                       ) -> list[dict]:
    """Evaluate original and JPEG at each quality (and each robustness condition), each alone
    and + each de-blocker; one record each, with paired bootstrap intervals (``bootstrap``
    resamples; 0: none). The images are ``limit`` by id after the first ``skip`` (a held-out
    slice: ``skip=200`` checks on other images what the first 200 showed).

    ``deblockers`` are baseline names (``nlm``, ``bilateral``) or anything ``load_model``
    accepts (``@R`` included), named by :func:`model_name`; with ``gate`` (a
    :class:`~dcsc_preproc.QualityGate` threshold) each also runs as ``NAME+gate``.
    ``conditions`` are names of :data:`CONDITIONS`. ``deblock_at`` holds ``"source"`` and/or
    ``"detector"`` (as ``NAME+resize``: shrunk to the detector's input at ``imgsz``, then
    de-blocked, as ``add_deblocking(..., at="detector")``), once per ``deblock_scales`` entry
    (a multiple of ``imgsz``, as its ``scale``; other than 1 named ``NAME+resize1.5x``).
    ``versus`` names one of the de-blockers the others are compared with, image for image
    (see :func:`add_intervals`). Records hold ``quality`` (``None``: original; ``"10-95"`` for ``mixed``), ``condition`` (``None``: Pillow 4:2:0),
    ``deblocker`` (name, ``None``: none), ``detector`` (file name), ``map``, ``map50``,
    ``map_small``, ``map_medium``, ``map_large``, ``images``, mean seconds per image
    ``deblock_s`` and ``detect_s``, ``gate_passed`` (share of images a gate passed; ``None``
    without one), and the bootstrap fields of :func:`add_intervals`.
    """
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition {unknown[0]!r}; expected some of {list(CONDITIONS)}")
    model = load_detector(detector)
    with redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
    image_ids = sorted(gt.getImgIds())[skip:][:limit]
    files = {i: Path(images) / gt.imgs[i]["file_name"] for i in image_ids}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if not image_ids:
        raise ValueError(f"no images listed in {annotations}")
    if missing:
        raise FileNotFoundError(f"{len(missing)} images of {annotations} are missing, e.g. {missing[0]}")
    unknown = [p for p in deblock_at if p not in PLACES]
    if unknown or not deblock_at:
        raise ValueError(f"deblock_at must hold some of {PLACES}, got {list(deblock_at)}")
    deblock = {}
    for source in deblockers:
        key, function = cache_key(source), get_deblocker(source, device)
        if "source" in deblock_at:
            deblock[model_name(source)] = key, function
        for scale in deblock_scales if "detector" in deblock_at else ():
            size = deblock_imgsz(imgsz, scale)
            deblock[f"{model_name(source)}+resize{'' if scale == 1 else f'{scale:g}x'}"] = (
                f"{key}-shrunk{size}", shrunk(function, size))
    variants = [(name, False) for name in deblock]
    variants += [] if gate is None else [(name, True) for name in deblock]
    if versus is not None and versus not in deblock:
        raise ValueError(f"versus={versus!r} is not one of the de-blockers {list(deblock)}")
    detect(model, read_rgb(files[image_ids[0]]), image_ids[0], imgsz, device)  # warm-up, untimed

    runs = [(q, None, v) for q in (None, *qualities) for v in (None, *variants)]
    for condition in conditions:
        fixed = CONDITIONS[condition]
        if geometry(condition, 0) != (1.0, 0, 0):  # its clean reference: reshaped original
            runs.append((None, condition, None))
        for q in qualities if fixed is None else [fixed if isinstance(fixed, str) else fixed[-1]]:
            runs += [(q, condition, v) for v in (None, *variants)]
    records, results = [], []
    for quality, condition, variant in runs:
        name = None if variant is None else variant[0] + ("+gate" if variant[1] else "")
        record = {"quality": quality, "condition": condition, "deblocker": name,
                  "detector": Path(detector).name}
        record_gate = QualityGate(gate) if variant is not None and variant[1] else None
        detections, deblock_times, detect_times = [], [], []
        for image_id in tqdm(image_ids, desc=condition_name(record), file=sys.stderr):
            image, seconds = condition_image(files[image_id], quality, condition, image_id,
                                             None if variant is None else deblock[variant[0]],
                                             cache, record_gate)
            if seconds is not None:
                deblock_times.append(seconds)
            start = time.perf_counter()
            shape = condition_shape(gt.imgs[image_id]["height"], gt.imgs[image_id]["width"],
                                    condition, image_id)
            detections += detect(model, image, image_id, imgsz, device, condition, shape)
            detect_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        results.append(PerImageAP(gt, detections, image_ids))
        record.update(coco_stats(results[-1]))
        record.update(images=len(image_ids),
                      deblock_s=float(np.mean(deblock_times)) if deblock_times else None,
                      detect_s=float(np.mean(detect_times)),
                      gate_passed=None if record_gate is None else
                      record_gate.passed / len(image_ids))
        print(f"{condition_name(record)}: de-block {sum(deblock_times):.1f} s, detect "
              f"{sum(detect_times):.1f} s, COCO eval {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
        records.append(record)
    if bootstrap:
        start = time.perf_counter()
        add_intervals(records, results, bootstrap, seed, versus)
        print(f"bootstrap ({bootstrap} resamples): {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
    return records


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _range(values: list[float] | None, digits: int, scale: float = 1) -> str:
    return "-" if values is None else "[" + ", ".join(f"{v * scale:.{digits}f}" for v in values) + "]"


def markdown_table(records: list[dict]) -> str:
    """The records as a markdown table, one row per condition (95% intervals in brackets);
    with ``versus`` fields, a last column of the paired difference to that de-blocker."""
    versus = any("versus_recovered" in r or "versus_delta" in r for r in records)
    lines = ["| condition | mAP50-95 | 95% CI | change | 95% CI | JPEG loss recovered | 95% CI | "
             "mAP50 | AP small | AP medium | AP large | de-block s/img | detect s/img | "
             "gate passed |" + (" vs reference (paired) |" if versus else ""),
             "|---" * 14 + "|" + ("---|" if versus else "")]
    for r in records:
        recovered = r.get("recovered")
        cells = [condition_name(r), _cell(r["map"], 3), _range(r.get("map_ci"), 3),
                 _cell(r.get("delta"), 4), _range(r.get("delta_ci"), 4),
                 "-" if recovered is None else f"{100 * recovered:.1f}%",
                 _range(r.get("recovered_ci"), 1, 100)]
        cells += [_cell(r[k], 3) for k in list(STATS)[1:]]
        cells += [_cell(r["deblock_s"], 3), _cell(r["detect_s"], 3)]
        cells.append("-" if r.get("gate_passed") is None else f"{100 * r['gate_passed']:.0f}%")
        if versus:
            cells.append(_versus_cell(r))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _versus_cell(record: dict) -> str:
    """``+1.2 pt [-3.0, 5.1]`` (recovered, JPEG) or ``-0.0010 [...]`` (mAP, originals)."""
    if record.get("versus_recovered") is not None:
        low, high = record["versus_recovered_ci"]
        return f"{100 * record['versus_recovered']:+.1f} pt [{100 * low:.1f}, {100 * high:.1f}]"
    if record.get("versus_delta") is not None:
        low, high = record["versus_delta_ci"]
        return f"{record['versus_delta']:+.4f} [{low:.4f}, {high:.4f}]"
    return "-"


def plot(records: list[dict], path: str | Path) -> None:
    """mAP50-95 against JPEG quality, one line per de-blocker, the original as a dashed line."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    jpeg = [r for r in records if r["quality"] is not None and not r.get("condition")]
    for name in dict.fromkeys(r["deblocker"] for r in jpeg):
        line = sorted((r for r in jpeg if r["deblocker"] == name), key=lambda r: r["quality"])
        ax.plot([r["quality"] for r in line], [r["map"] for r in line], marker="o",
                label=name or "JPEG, no de-blocking")
    for r in records:
        if r["quality"] is None and r["deblocker"] is None and not r.get("condition"):
            ax.axhline(r["map"], color="black", linestyle="--", label="original")
    ax.set_xticks(sorted({r["quality"] for r in jpeg}))
    ax.set_xlabel("JPEG quality")
    ax.set_ylabel("COCO bbox mAP50-95")
    ax.set_title(f"Detection on {records[0]['images']} images")
    ax.grid(alpha=0.3)
    ax.legend()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.detection",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=IMAGES, help="folder of COCO images")
    parser.add_argument("--annotations", type=Path, default=ANNOTATIONS, help="COCO JSON")
    parser.add_argument("--detector", type=Path, default=DETECTOR,
                        help="Ultralytics weights (.pt) or export folder (e.g. an OpenVINO "
                             "*_openvino_model/, needs `pip install openvino`)")
    parser.add_argument("--qualities", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--deblock", action="extend", nargs="+", default=[], metavar="MODEL",
                        help="nlm, bilateral, a shipped model name, .safetensors or authors' "
                             ".npz, optionally with @R for R LISTA iterations")
    parser.add_argument("--limit", type=int, default=None, help="first N images by id")
    parser.add_argument("--skip", type=int, default=0,
                        help="leave out the first N images by id (then --limit of the rest)")
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--plot", type=Path, help="write the mAP-quality plot (PNG) here")
    parser.add_argument("--cache", type=Path, default=CACHE, help="JPEG and de-blocked image cache")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="paired bootstrap resamples of the images for 95%% intervals (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    parser.add_argument("--conditions", nargs="+", default=[], choices=list(CONDITIONS),
                        metavar="NAME", help=f"robustness conditions: {', '.join(CONDITIONS)}")
    parser.add_argument("--gate", default=None,
                        help="also run each de-blocker behind a QualityGate with this threshold "
                             "('auto' or a quality), judged from pixels")
    parser.add_argument("--deblock-at", nargs="+", choices=PLACES, default=["source"],
                        help="de-block the image as given (source) and/or shrunk to the "
                             "detector's input at --imgsz first (detector: NAME+resize)")
    parser.add_argument("--deblock-scale", nargs="+", type=float, default=[1.0], metavar="S",
                        help="with --deblock-at detector: de-block at S times --imgsz "
                             "(NAME+resizeSx; 1: NAME+resize), as add_deblocking's scale")
    parser.add_argument("--versus", metavar="NAME",
                        help="compare every other de-blocker with this one on the same images "
                             "(its name as in the table, e.g. dcsc-det): paired intervals of "
                             "the difference in JPEG loss recovered")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    records = evaluate_detection(args.images, args.annotations, args.detector, args.qualities,
                                 args.deblock, args.limit, args.cache, args.imgsz, args.device,
                                 args.bootstrap, args.seed, args.conditions, args.gate,
                                 args.skip, args.deblock_at, args.versus, args.deblock_scale)
    print(markdown_table(records))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    if args.plot:
        plot(records, args.plot)


if __name__ == "__main__":
    main()
