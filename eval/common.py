"""Small helpers shared by the benchmarks, in a module that loads neither torch nor
Ultralytics, so that a benchmark importing them starts fast."""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)`` (width, height).

    Example:
        >>> parse_size("1920x1080")
        (1920, 1080)
    """
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def read_image_bytes(data: bytes) -> np.ndarray:
    """Decode to uint8 RGB with Pillow (gray files get three equal channels)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()
