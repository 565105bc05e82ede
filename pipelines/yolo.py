"""De-block images in front of an Ultralytics YOLO detector.

:func:`add_deblocking` registers an ``on_predict_batch_start`` callback. At that point the
predictor holds ``batch = (paths, images, info)`` with the images as loaded (a list of BGR
uint8 arrays, or an RGB float tensor for tensor sources) and has not yet letterboxed them, so
the callback swaps in de-blocked copies. Everything downstream (preprocessing, inference,
``Results.orig_img``, saved and plotted images) sees the de-blocked image, for every source
Ultralytics reads: files, folders, videos, streams, numpy arrays, PIL images, tensors.

``at="detector"`` keeps the de-blocking cost flat as the source grows: each image larger than
the detector's input is first shrunk as Ultralytics' ``LetterBox`` would (bilinear, to
:func:`letterbox_size`), so the de-blocker pays for what the detector sees and not for every
source pixel; an ``on_predict_postprocess_end`` callback then maps the boxes back to the
source image, which ``Results.orig_img`` holds (the small de-blocked image is not kept).
``scale`` > 1 de-blocks at that multiple of the detector's input instead (the letterbox then
shrinks the rest): the cost grows with ``scale``² and stays flat in the source.
Detection models only; tensor sources (which Ultralytics does not letterbox) are de-blocked
at their size. The flat cost is bought with recovery: on frames JPEG-compressed at camera size
and shrunk 3x, de-blocking behind the shrink won back 20-48 points less of the mAP lost to JPEG
than de-blocking every pixel (docs/RESULTS.md section 3, "Camera-size frames"), so
``at="source"`` is the default; ``scale=1.5`` won back 58-63% against the source size's 58-74%
there, at a quarter of its cost.

Ultralytics is kept offline: ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=0`` unless already set,
and detector weights must be an existing path (a bare name would be downloaded).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.data.utils import IMG_FORMATS  # noqa: E402
from ultralytics.engine.predictor import BasePredictor  # noqa: E402
from ultralytics.engine.results import Results  # noqa: E402

from dcsc_preproc import DCSC, DEFAULT_MODEL, Engine, QualityGate, load_detector  # noqa: E402,F401
from dcsc_preproc.engine import DEFAULT_TILE  # noqa: E402
from dcsc_preproc.quality import STREAM_EVERY  # noqa: E402

#: Where :func:`add_deblocking` de-blocks: the image as given, or shrunk to the detector's input.
PLACES = ("source", "detector")


def letterbox_size(shape: tuple[int, ...], imgsz: int | Sequence[int]) -> tuple[int, int]:
    """``(width, height)`` Ultralytics' ``LetterBox`` resizes an ``(H, W, ...)`` image to for
    ``imgsz`` (an int or ``(h, w)``), never larger than the image (the resize path only shrinks).

    Example:
        >>> letterbox_size((1080, 1920, 3), 640), letterbox_size((480, 640), 320)
        ((640, 360), (320, 240))
        >>> letterbox_size((300, 200), 640)
        (200, 300)
    """
    new_h, new_w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz[-2:]
    r = min(new_h / shape[0], new_w / shape[1], 1.0)
    return max(round(shape[1] * r), 1), max(round(shape[0] * r), 1)


def check_scale(scale: float) -> None:
    """Raise a ValueError unless ``scale`` (a multiple of the detector's input) is at least 1."""
    if not scale >= 1:
        raise ValueError(f"scale must be at least 1 (a multiple of the detector's input), "
                         f"got {scale}")


def deblock_imgsz(imgsz: int | Sequence[int], scale: float = 1.0) -> int | list[int]:
    """The size ``add_deblocking(..., at="detector", scale=scale)`` shrinks to for the
    detector's ``imgsz`` (an int or ``(h, w)``): ``scale`` times it, rounded.

    Example:
        >>> deblock_imgsz(640, 1.5), deblock_imgsz([480, 640], 1.5)
        (960, [720, 960])
    """
    check_scale(scale)
    return round(imgsz * scale) if isinstance(imgsz, int) else [round(s * scale) for s in imgsz]


def shrink_for_detector(image: np.ndarray, imgsz: int | Sequence[int]) -> np.ndarray:
    """``image`` resized as ``LetterBox`` does (bilinear) to :func:`letterbox_size`; the same
    array when that is its own size."""
    size = letterbox_size(image.shape, imgsz)
    if size == (image.shape[1], image.shape[0]):
        return image
    small = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return small[..., None] if image.ndim == 3 and small.ndim == 2 else small


def to_source_boxes(result: Results, source: np.ndarray) -> None:
    """Make ``result`` (detected on a shrunk copy of ``source``) hold ``source`` as its
    ``orig_img`` and its boxes in ``source``'s pixel coordinates, in place."""
    h, w = result.orig_shape
    if (h, w) == source.shape[:2]:
        return
    scale = torch.tensor([source.shape[1] / w, source.shape[0] / h] * 2)
    result.orig_img, result.orig_shape = source, source.shape[:2]
    if result.boxes is not None:
        data = result.boxes.data.clone()
        data[:, :4] *= scale.to(data.device, data.dtype)
        result.update(boxes=data)


def deblock_images(engine: Engine, images: list[np.ndarray] | torch.Tensor,
                   gate: QualityGate | None = None, paths: list[str] | None = None,
                   imgsz: int | Sequence[int] | None = None) -> list[np.ndarray] | torch.Tensor:
    """De-block a predictor batch: BGR uint8 ``(H, W, 3)`` or ``(H, W, 1)`` arrays, or an RGB
    float tensor ``(N, C, H, W)``. Images ``gate`` passes are returned as they are (the same
    arrays); ``paths`` (the predictor's) let it read a JPEG file's tables. With ``imgsz`` each
    array the gate does not pass is shrunk by :func:`shrink_for_detector` and then de-blocked
    (the gate judges the image as given)."""
    gate = gate or QualityGate(None)
    if isinstance(images, torch.Tensor):
        chosen = [i for i in range(len(images)) if gate.restore(images[i])]
        if len(chosen) == len(images):
            return engine(images)
        out = images.clone()
        if chosen:
            out[chosen] = engine(images[chosen])
        return out
    out = []
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (1, 3):
            raise ValueError(f"expected BGR (H, W, 3) or gray (H, W, 1) images from the "
                             f"predictor, got {getattr(image, 'shape', type(image).__name__)}")
        if image.dtype not in (np.uint8, np.uint16):
            raise TypeError(f"expected uint8 images, got dtype {image.dtype}")
        file = _source_file(paths[i] if paths else None, image)
        if not gate.restore(image[..., 0] if image.shape[2] == 1 else image, "bgr", file):
            out.append(image)
            continue
        out.append(deblock_array(engine, image, imgsz))
    return out


def deblock_array(engine: Engine, image: np.ndarray, imgsz: int | Sequence[int] | None = None,
                  bgr: bool = True) -> np.ndarray:
    """De-block one uint8 ``(H, W, 3)`` or ``(H, W, 1)`` image as the pipeline does: with
    ``imgsz``, shrunk by :func:`shrink_for_detector` first. A shrunk image keeps no 8x8 JPEG
    grid (a 2x shrink leaves a 4-pixel one, which the grid read took for a shifted 8x8 grid
    in 111 of 200 coco_dev q10 images), so the grid is read only on images the shrink left as
    they were: that read, and the padding it caused, cost 5-13% of the call at the detector's
    size (docs/RESULTS.md section 3). ``bgr``: OpenCV's channel order (the predictor's)."""
    small = image if imgsz is None else shrink_for_detector(image, imgsz)
    align = None if small is image else False
    if small.shape[2] == 1:
        return engine.restore_array(small[..., 0], align_grid=align)[..., None]
    return engine.restore_array(small, bgr=bgr, align_grid=align)


def _source_file(path: str | None, image: np.ndarray) -> Path | None:
    """The image file ``image`` was read from, if ``path`` is one and its size matches."""
    if not path or Path(path).suffix.lower().lstrip(".") not in IMG_FORMATS:
        return None
    path = Path(path)
    try:
        with PIL.Image.open(path) as opened:
            return path if opened.size == (image.shape[1], image.shape[0]) else None
    except Exception:  # Pillow raises several types; Ultralytics patches Image.open
        return None


def add_deblocking(model: YOLO, deblock: str | Path | DCSC | None = None,
                   device: str | torch.device | None = None, tile: int | None = DEFAULT_TILE,
                   iterations: int | None = None,
                   gate: QualityGate | int | str | None = "auto", at: str = "source",
                   backend: str | None = None, scale: float = 1.0) -> YOLO:
    """Make ``model`` de-block every image before detection; returns the same model.

    ``deblock`` is anything ``load_model`` accepts (``None``: ``DEFAULT_MODEL``); ``device``,
    ``tile``, ``iterations`` and ``backend`` go to the :class:`Engine`. ``gate`` (a
    ``QualityGate`` or what it takes: ``"auto"``, a quality, ``None`` for always on) leaves
    images estimated above its threshold (JPEG files by their tables, other sources by their
    pixels), smaller than 8x8 or 16-bit as they are; ``model.deblock_gate`` is that gate,
    with its counters. A gate built here from a threshold estimates every image, but on video
    and stream sources only every :data:`~dcsc_preproc.quality.STREAM_EVERY` frames and at
    scene changes, as the video pipeline does (an estimate costs 4-8 ms a frame on 2 CPU
    cores, a third to a half of de-blocking at the detector's size: docs/RESULTS.md); a
    ``QualityGate`` passed in keeps its own ``every``. ``at`` is
    ``"source"`` (de-block the image as given) or ``"detector"`` (shrink it to the detector's
    input first: the cost stays flat as sources grow; boxes come back in source coordinates).
    ``scale`` (``at="detector"`` only) de-blocks at that multiple of the detector's input.
    """
    if at not in PLACES:
        raise ValueError(f"at must be one of {PLACES}, got {at!r}")
    check_scale(scale)
    if scale != 1 and at != "detector":
        raise ValueError(f"scale={scale} is a multiple of the detector's input: "
                         f"it needs at='detector'")
    if at == "detector" and model.task != "detect":
        raise ValueError(f"at='detector' maps boxes back to the source image, so it needs a "
                         f"detection model; this one's task is {model.task!r}")
    engine = Engine(DEFAULT_MODEL if deblock is None else deblock, device=device, tile=tile,
                    iterations=iterations, backend=backend)
    model.deblock_gate = QualityGate.of(gate)
    owned = not isinstance(gate, QualityGate)  # built here: its re-estimation rate is ours
    sources: list = []  # the batch as given, for at="detector"

    def deblock_batch(predictor: BasePredictor) -> None:
        paths, images, info = predictor.batch
        if owned:  # a frame of a video or stream is judged as its neighbours were
            frames = getattr(predictor.dataset, "mode", "image") in ("video", "stream")
            model.deblock_gate.every = STREAM_EVERY if frames else 1
        imgsz = deblock_imgsz(predictor.imgsz, scale) if at == "detector" else None
        sources[:] = images if isinstance(images, list) else []  # tensors: not shrunk
        predictor.batch = (paths, deblock_images(engine, images, model.deblock_gate, paths,
                                                 imgsz), info)

    def boxes_to_source(predictor: BasePredictor) -> None:
        for result, source in zip(predictor.results, sources):
            to_source_boxes(result, source)

    model.add_callback("on_predict_batch_start", deblock_batch)
    if at == "detector":
        model.add_callback("on_predict_postprocess_end", boxes_to_source)
    return model


class DeblockedYOLO:
    """An Ultralytics YOLO detector with DCSC de-blocking in front.

    ``predict`` takes what ``YOLO.predict`` takes and returns its ``Results`` (a generator with
    ``stream=True``); ``.model`` is the underlying ``YOLO``. ``device`` is used for both the
    de-blocker and the detector unless ``predict`` gets its own ``device``. ``gate`` is as in
    :func:`add_deblocking`; ``.gate`` holds its counters; ``at``, ``backend`` and ``scale`` as
    there.

    Example::

        detector = DeblockedYOLO("../shared/models/yolov8n_ovint8_dequant.pt", "dcsc-fast")
        results = detector.predict("photo.jpg", conf=0.25)
    """

    def __init__(self, detector: str | Path, deblock: str | Path | DCSC | None = None,
                 device: str | torch.device | None = None, tile: int | None = DEFAULT_TILE,
                 iterations: int | None = None,
                 gate: QualityGate | int | str | None = "auto", at: str = "source",
                 backend: str | None = None, scale: float = 1.0) -> None:
        self.device = device
        self.model = add_deblocking(load_detector(detector), deblock, device, tile, iterations,
                                    gate, at, backend, scale)
        self.gate = self.model.deblock_gate

    def predict(self, source, **kwargs) -> list[Results]:
        """De-block and detect; arguments and result as ``YOLO.predict``."""
        if self.device is not None:
            kwargs.setdefault("device", str(self.device))
        return self.model.predict(source, **kwargs)
