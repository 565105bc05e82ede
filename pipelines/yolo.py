"""De-block images in front of an Ultralytics YOLO detector.

:func:`add_deblocking` registers an ``on_predict_batch_start`` callback. At that point the
predictor holds ``batch = (paths, images, info)`` with the images as loaded (a list of BGR
uint8 arrays, or an RGB float tensor for tensor sources) and has not yet letterboxed them, so
the callback swaps in de-blocked copies. Everything downstream (preprocessing, inference,
``Results.orig_img``, saved and plotted images) sees the de-blocked image, for every source
Ultralytics reads: files, folders, videos, streams, numpy arrays, PIL images, tensors.

Ultralytics is kept offline: ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=0`` unless already set,
and detector weights must be an existing path (a bare name would be downloaded).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.engine.predictor import BasePredictor  # noqa: E402
from ultralytics.engine.results import Results  # noqa: E402

from dcsc_preproc import DCSC, DEFAULT_MODEL, Engine  # noqa: E402
from dcsc_preproc.engine import DEFAULT_TILE  # noqa: E402


def load_detector(path: str | Path) -> YOLO:
    """Load Ultralytics detector weights (``.pt`` file or exported model folder) from a path."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"detector weights not found: {path} (give an existing path: a "
                                "bare name like 'yolov8n.pt' would make Ultralytics download it)")
    return YOLO(str(path))


def deblock_images(engine: Engine, images: list[np.ndarray] | torch.Tensor
                   ) -> list[np.ndarray] | torch.Tensor:
    """De-block a predictor batch: BGR uint8 ``(H, W, 3)`` or ``(H, W, 1)`` arrays, or an RGB
    float tensor ``(N, C, H, W)``."""
    if isinstance(images, torch.Tensor):
        return engine(images)
    out = []
    for image in images:
        if image.shape[2] == 1:
            out.append(engine.restore_array(image[..., 0])[..., None])
        else:
            out.append(np.ascontiguousarray(engine.restore_array(image[..., ::-1])[..., ::-1]))
    return out


def add_deblocking(model: YOLO, deblock: str | Path | DCSC | None = None,
                   device: str | torch.device | None = None, tile: int | None = DEFAULT_TILE,
                   iterations: int | None = None) -> YOLO:
    """Make ``model`` de-block every image before detection; returns the same model.

    ``deblock`` is anything ``load_model`` accepts (``None``: ``DEFAULT_MODEL``); ``device``,
    ``tile`` and ``iterations`` go to the :class:`Engine`.
    """
    engine = Engine(DEFAULT_MODEL if deblock is None else deblock, device=device, tile=tile,
                    iterations=iterations)

    def deblock_batch(predictor: BasePredictor) -> None:
        paths, images, info = predictor.batch
        predictor.batch = (paths, deblock_images(engine, images), info)

    model.add_callback("on_predict_batch_start", deblock_batch)
    return model


class DeblockedYOLO:
    """An Ultralytics YOLO detector with DCSC de-blocking in front.

    ``predict`` takes what ``YOLO.predict`` takes and returns its ``Results`` (a generator with
    ``stream=True``); ``.model`` is the underlying ``YOLO``. ``device`` is used for both the
    de-blocker and the detector unless ``predict`` gets its own ``device``.

    Example::

        detector = DeblockedYOLO("../shared/models/yolov8n_ovint8_dequant.pt", "dcsc-fast")
        results = detector.predict("photo.jpg", conf=0.25)
    """

    def __init__(self, detector: str | Path, deblock: str | Path | DCSC | None = None,
                 device: str | torch.device | None = None, tile: int | None = DEFAULT_TILE,
                 iterations: int | None = None) -> None:
        self.device = device
        self.model = add_deblocking(load_detector(detector), deblock, device, tile, iterations)

    def predict(self, source, **kwargs) -> list[Results]:
        """De-block and detect; arguments and result as ``YOLO.predict``."""
        if self.device is not None:
            kwargs.setdefault("device", str(self.device))
        return self.model.predict(source, **kwargs)
