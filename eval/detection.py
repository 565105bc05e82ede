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

    python -m eval.detection --limit 100 --qualities 10 20 --deblock nlm dcsc-fast \\
        --json results/detection.json --plot results/detection.png
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
from pycocotools.coco import COCO  # noqa: E402
from tqdm import tqdm  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.data.converter import coco80_to_coco91_class  # noqa: E402

from dcsc_preproc import encode_jpeg, get_deblocker, model_name, read_image  # noqa: E402
from dcsc_preproc.baselines import BASELINES  # noqa: E402
from dcsc_preproc.zoo import resolve_source  # noqa: E402
from eval.coco_bootstrap import PerImageAP, interval, resample_weights  # noqa: E402
from pipelines.yolo import load_detector  # noqa: E402

SHARED = Path(os.environ.get("DCSC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IMAGES = SHARED / "data" / "coco_dev" / "images"
ANNOTATIONS = SHARED / "data" / "coco_dev" / "instances.json"
DETECTOR = SHARED / "models" / "yolov8n_ovint8_dequant.pt"
CACHE = Path(".cache/detection")
#: Ultralytics ``predict`` settings of ``model.val()``, as in REFERENCE.md.
PREDICT_ARGS = {"conf": 0.001, "iou": 0.7, "max_det": 300, "verbose": False}
COCO91 = coco80_to_coco91_class()
#: Record key -> COCOeval.stats index.
STATS = {"map": 0, "map50": 1, "map_small": 3, "map_medium": 4, "map_large": 5}


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
    """``original``, ``original + nlm``, ``JPEG q10`` or ``JPEG q10 + nlm``."""
    name = "original" if record["quality"] is None else f"JPEG q{record['quality']}"
    return f"{name} + {record['deblocker']}" if record["deblocker"] else name


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


def deblocked_image(original: Path, quality: int | None, key: str,
                    deblock: Callable[[np.ndarray], np.ndarray],
                    cache: Path) -> tuple[np.ndarray, float | None]:
    """De-blocked JPEG (or original, ``quality=None``) of ``original`` and the seconds
    de-blocking took (``None`` if cached)."""
    folder = "original" if quality is None else f"q{quality}"
    path = cache / "deblocked" / key / folder / f"{original.stem}.png"
    if path.is_file():
        return read_image(path), None
    image = read_rgb(original) if quality is None else jpeg_image(original, quality, cache)
    start = time.perf_counter()
    out = deblock(image)
    seconds = time.perf_counter() - start
    png = cv2.imencode(".png", out[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
    write_atomic(path, png.tobytes())
    return out, seconds


def condition_image(original: Path, quality: int | None,
                    deblock: tuple[str, Callable[[np.ndarray], np.ndarray]] | None,
                    cache: Path) -> tuple[np.ndarray, float | None]:
    """The image of one condition (original or JPEG, each optionally + ``(cache key,
    de-blocker)``) and the seconds de-blocking took (``None`` if nothing was de-blocked)."""
    if deblock is not None:
        return deblocked_image(original, quality, *deblock, cache)
    if quality is None:
        return read_rgb(original), None
    return jpeg_image(original, quality, cache), None


def detect(model: YOLO, image: np.ndarray, image_id: int, imgsz: int,
           device: str | None) -> list[dict]:
    """COCO-format detections of one uint8 RGB image."""
    bgr = np.ascontiguousarray(image[..., ::-1])
    boxes = model.predict(bgr, imgsz=imgsz, device=device, **PREDICT_ARGS)[0].boxes
    return [{"image_id": image_id, "category_id": COCO91[int(c)],
             "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
            for (x1, y1, x2, y2), s, c in zip(boxes.xyxy.tolist(), boxes.conf.tolist(),
                                              boxes.cls.tolist())]


def coco_stats(result: PerImageAP) -> dict[str, float | None]:
    """pycocotools bbox AP fields; ``None`` for an area range without ground truth."""
    return {k: float(result.stats[i]) if result.stats[i] >= 0 else None for k, i in STATS.items()}


def add_intervals(records: list[dict], results: list[PerImageAP], resamples: int,
                  seed: int = 0) -> None:
    """Paired bootstrap fields (``map_ci``, ``delta``, ``delta_ci``, ``recovered``,
    ``recovered_ci``) of each record, in place; the same image draws for every condition."""
    weights = resample_weights(len(results[0].image_ids), resamples, seed)
    draws = {id(r): np.array([res.map(w) for w in weights]) for r, res in zip(records, results)}
    by_condition = {(r["quality"], r["deblocker"]): r for r in records}
    original = by_condition.get((None, None))
    for r in records:
        r["map_ci"] = interval(draws[id(r)])
        base = by_condition.get((r["quality"], None)) if r["deblocker"] else None
        r["delta"] = None if base is None else r["map"] - base["map"]
        r["delta_ci"] = None if base is None else interval(draws[id(r)] - draws[id(base)])
        r["recovered"] = r["recovered_ci"] = None
        if base is not None and original is not None and r["quality"] is not None:
            loss, loss_draws = original["map"] - base["map"], draws[id(original)] - draws[id(base)]
            r["recovered"] = r["delta"] / loss if loss else None
            with np.errstate(divide="ignore", invalid="ignore"):
                r["recovered_ci"] = interval((draws[id(r)] - draws[id(base)]) / loss_draws)


def evaluate_detection(images: Path = IMAGES, annotations: Path = ANNOTATIONS,
                       detector: Path = DETECTOR, qualities: Sequence[int] = (10, 20, 30),
                       deblockers: Sequence[str | Path] = (), limit: int | None = None,
                       cache: Path = CACHE, imgsz: int = 640, device: str | None = None,
                       bootstrap: int = 1000, seed: int = 0) -> list[dict]:
    """Evaluate original and JPEG at each quality, each alone and + each de-blocker; one
    record each, with paired bootstrap intervals (``bootstrap`` resamples; 0: none).

    ``deblockers`` are baseline names (``nlm``, ``bilateral``) or anything ``load_model``
    accepts (``@R`` included), named by :func:`model_name`. Records hold ``quality``
    (``None``: original), ``deblocker`` (name, ``None``: none), ``detector`` (file name),
    ``map``, ``map50``, ``map_small``, ``map_medium``, ``map_large``, ``images``, mean seconds
    per image ``deblock_s`` and ``detect_s``, and the bootstrap fields of :func:`add_intervals`.
    """
    model = load_detector(detector)
    with redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
    image_ids = sorted(gt.getImgIds())[:limit]
    files = {i: Path(images) / gt.imgs[i]["file_name"] for i in image_ids}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if not image_ids:
        raise ValueError(f"no images listed in {annotations}")
    if missing:
        raise FileNotFoundError(f"{len(missing)} images of {annotations} are missing, e.g. {missing[0]}")
    deblock = {d: (cache_key(d), get_deblocker(d, device)) for d in deblockers}
    detect(model, read_rgb(files[image_ids[0]]), image_ids[0], imgsz, device)  # warm-up, untimed

    records, results = [], []
    conditions = [(q, d) for q in (None, *qualities) for d in (None, *deblockers)]
    for quality, source in conditions:
        name = None if source is None else model_name(source)
        record = {"quality": quality, "deblocker": name, "detector": Path(detector).name}
        detections, deblock_times, detect_times = [], [], []
        for image_id in tqdm(image_ids, desc=condition_name(record), file=sys.stderr):
            image, seconds = condition_image(files[image_id], quality, deblock.get(source), cache)
            if seconds is not None:
                deblock_times.append(seconds)
            start = time.perf_counter()
            detections += detect(model, image, image_id, imgsz, device)
            detect_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        results.append(PerImageAP(gt, detections, image_ids))
        record.update(coco_stats(results[-1]))
        record.update(images=len(image_ids),
                      deblock_s=float(np.mean(deblock_times)) if deblock_times else None,
                      detect_s=float(np.mean(detect_times)))
        print(f"{condition_name(record)}: de-block {sum(deblock_times):.1f} s, detect "
              f"{sum(detect_times):.1f} s, COCO eval {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
        records.append(record)
    if bootstrap:
        start = time.perf_counter()
        add_intervals(records, results, bootstrap, seed)
        print(f"bootstrap ({bootstrap} resamples): {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
    return records


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _range(values: list[float] | None, digits: int, scale: float = 1) -> str:
    return "-" if values is None else "[" + ", ".join(f"{v * scale:.{digits}f}" for v in values) + "]"


def markdown_table(records: list[dict]) -> str:
    """The records as a markdown table, one row per condition (95% intervals in brackets)."""
    lines = ["| condition | mAP50-95 | 95% CI | change | 95% CI | JPEG loss recovered | 95% CI | "
             "mAP50 | AP small | AP medium | AP large | de-block s/img | detect s/img |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        recovered = r.get("recovered")
        cells = [condition_name(r), _cell(r["map"], 3), _range(r.get("map_ci"), 3),
                 _cell(r.get("delta"), 4), _range(r.get("delta_ci"), 4),
                 "-" if recovered is None else f"{100 * recovered:.1f}%",
                 _range(r.get("recovered_ci"), 1, 100)]
        cells += [_cell(r[k], 3) for k in list(STATS)[1:]]
        cells += [_cell(r["deblock_s"], 3), _cell(r["detect_s"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records: list[dict], path: str | Path) -> None:
    """mAP50-95 against JPEG quality, one line per de-blocker, the original as a dashed line."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    jpeg = [r for r in records if r["quality"] is not None]
    for name in dict.fromkeys(r["deblocker"] for r in jpeg):
        line = sorted((r for r in jpeg if r["deblocker"] == name), key=lambda r: r["quality"])
        ax.plot([r["quality"] for r in line], [r["map"] for r in line], marker="o",
                label=name or "JPEG, no de-blocking")
    for r in records:
        if r["quality"] is None and r["deblocker"] is None:
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
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--plot", type=Path, help="write the mAP-quality plot (PNG) here")
    parser.add_argument("--cache", type=Path, default=CACHE, help="JPEG and de-blocked image cache")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="paired bootstrap resamples of the images for 95%% intervals (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    records = evaluate_detection(args.images, args.annotations, args.detector, args.qualities,
                                 args.deblock, args.limit, args.cache, args.imgsz, args.device,
                                 args.bootstrap, args.seed)
    print(markdown_table(records))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    if args.plot:
        plot(records, args.plot)


if __name__ == "__main__":
    main()
