"""The OpenCV :class:`FrameFilter`: JPEG artifact removal on BGR, BGRA and gray uint8 frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .engine import DEFAULT_TILE, Engine
from .model import DCSC
from .quality import QualityGate
from .zoo import DEFAULT_MODEL


class FrameFilter:
    """De-block OpenCV frames: uint8 BGR ``(H, W, 3)``, BGRA ``(H, W, 4)`` or gray ``(H, W)``.

    Each frame comes back with the same shape and dtype; BGRA alpha is copied untouched. Any
    size from 8x8 up works; large frames are tiled by the engine. ``model`` is anything
    :func:`~dcsc_preproc.zoo.load_model` accepts; ``None`` means
    :data:`~dcsc_preproc.zoo.DEFAULT_MODEL`.

    ``gate`` (:class:`~dcsc_preproc.quality.QualityGate`, or what it takes: ``"auto"``, a
    quality, ``None`` for always on) judges each frame by its pixels: a frame estimated above
    the threshold, smaller than 8x8 or 16-bit (uint16) is returned as the same array object.
    For video, ``QualityGate(every=N)`` re-estimates every N frames and on scene changes.
    ``backend`` goes to the :class:`~dcsc_preproc.engine.Engine` (``"openvino"`` on CPUs).

    Example:
        >>> from dcsc_preproc.model import DCSC
        >>> frame_filter = FrameFilter(DCSC(in_channels=3, iterations=2), gate=None)
        >>> frame = np.zeros((30, 41, 3), dtype=np.uint8)
        >>> frame_filter(frame).shape
        (30, 41, 3)
    """

    def __init__(self, model: str | Path | DCSC | None = None,
                 device: str | torch.device | None = None, tile: int | None = DEFAULT_TILE,
                 iterations: int | None = None,
                 gate: QualityGate | int | str | None = "auto",
                 backend: str | None = None) -> None:
        self.engine = Engine(DEFAULT_MODEL if model is None else model, device, tile,
                             iterations=iterations, backend=backend)
        self.gate = QualityGate.of(gate)

    def filter(self, frame: np.ndarray) -> np.ndarray:
        """De-block one frame."""
        return self.filter_batch([frame])[0]

    __call__ = filter

    def filter_batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """De-block frames, running frames of the same shape through the engine together;
        frames the gate passes come back as the same objects."""
        for frame in frames:
            _check_frame(frame)
        groups: dict[tuple[int, ...], list[int]] = {}
        results: dict[int, np.ndarray] = {}
        for i, frame in enumerate(frames):
            if self.gate.restore(frame, "bgr" if frame.ndim == 3 else "rgb"):
                groups.setdefault(frame.shape, []).append(i)
            else:
                results[i] = frame
        for indices in groups.values():
            restored = self.engine.restore_arrays([_image(frames[i]) for i in indices],
                                                  bgr=frames[indices[0]].ndim == 3)
            for i, image in zip(indices, restored):
                results[i] = _to_frame(image, frames[i])
        return [results[i] for i in range(len(frames))]


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"expected a numpy array frame, got {type(frame).__name__}")
    if frame.dtype not in (np.uint8, np.uint16):  # uint16 frames pass through the gate
        raise TypeError(f"expected a uint8 frame, got dtype {frame.dtype}")
    if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4))):
        raise ValueError("expected a gray (H, W), BGR (H, W, 3) or BGRA (H, W, 4) frame, "
                         f"got shape {frame.shape}")


def _image(frame: np.ndarray) -> np.ndarray:
    """The frame's image part (a view): gray as is, BGR(A) without alpha."""
    return frame if frame.ndim == 2 else frame[..., :3]


def _to_frame(restored: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Back to the frame's layout: the original alpha added for BGRA."""
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.dstack([restored, frame[..., 3]])
    return restored
