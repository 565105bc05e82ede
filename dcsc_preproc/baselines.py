"""Classical de-blockers (OpenCV) to compare DCSC with, and one way to pick any de-blocker by name.

Every de-blocker is a function from a uint8 RGB ``(H, W, 3)`` array to the same: the form the
detection benchmark and the pipelines need.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from .engine import Engine
from .model import DCSC

Deblocker = Callable[[np.ndarray], np.ndarray]


def _check_rgb(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 numpy array, got {type(image).__name__} "
                        f"{getattr(image, 'dtype', '')}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) array, got shape {image.shape}")


def nlm(image: np.ndarray) -> np.ndarray:
    """OpenCV non-local means, h=5, hColor=5, 7x7 template, 21x21 search (the reference setting).

    OpenCV denoises in its Lab space and expects BGR, so the channels are swapped around the call.

    Example:
        >>> nlm(np.zeros((16, 16, 3), np.uint8)).shape
        (16, 16, 3)
    """
    _check_rgb(image)
    bgr = np.ascontiguousarray(image[..., ::-1])
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h=5, hColor=5, templateWindowSize=7,
                                          searchWindowSize=21)
    return np.ascontiguousarray(out[..., ::-1])


def bilateral(image: np.ndarray) -> np.ndarray:
    """OpenCV bilateral filter, 7 px neighbourhood, colour sigma 25, space sigma 5.

    The colour sigma is about the size of q10-q30 block steps, so block edges are smoothed while
    object edges (larger steps) survive. The range kernel uses the Euclidean distance over all
    three channels, so channel order does not matter.
    """
    _check_rgb(image)
    return cv2.bilateralFilter(image, d=7, sigmaColor=25, sigmaSpace=5)


#: Classical de-blockers by name.
BASELINES: dict[str, Deblocker] = {"nlm": nlm, "bilateral": bilateral}


def get_deblocker(name: str | Path | DCSC, device: str | torch.device | None = None) -> Deblocker:
    """A uint8 RGB -> uint8 RGB de-blocker: a baseline in ``BASELINES`` or else a DCSC model.

    ``name`` is a baseline name or anything :func:`load_model` accepts (shipped name,
    ``.safetensors``, authors' ``.npz``, a ``DCSC``); an unknown name raises its ``ValueError``.

    Example:
        >>> get_deblocker("nlm") is nlm
        True
    """
    if isinstance(name, str) and name in BASELINES:
        return BASELINES[name]
    return Engine(name, device=device).restore_array
