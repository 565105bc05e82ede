"""Training data: clean / JPEG patch pairs from image folders with the JPEG done once per image.

Each image is JPEG-compressed at every training quality when the sampler is built, so a
patch costs a crop and not an encode. Crops start on multiples of 16, so the 8x8 luma and
16x16 chroma JPEG grids stay aligned with the patch (and survive flips and rotations).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .colour import rgb_to_y
from .engine import array_to_tensor
from .jpeg import jpeg_roundtrip, read_image

ALIGN = 16
#: Training folders (relative to :func:`data_root`) when none are given: BSDS500 train + test.
DEFAULT_DATA_DIRS = ("bsds500/train", "bsds500/test")


def data_root(root: str | Path | None = None) -> Path:
    """The folder holding ``bsds500/``, ``live1/``, ``classic5/``: argument, else
    ``$DCSC_DATA``, else ``../shared/data`` next to the current directory."""
    return Path(root or os.environ.get("DCSC_DATA", "../shared/data"))


def list_images(folder: str | Path) -> list[Path]:
    """Image files in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder at {folder}")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"))
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return files


def to_uint8_y(rgb: np.ndarray, convention: str = "matlab") -> np.ndarray:
    """uint8 Y (rounded) of an RGB uint8 array; gray input is returned as it is."""
    if rgb.ndim == 2:
        return rgb
    t = torch.from_numpy(rgb.copy()).permute(2, 0, 1).double() / 255
    return (rgb_to_y(t, convention)[0] * 255).round().clamp(0, 255).byte().numpy()


class PatchSampler:
    """Random (JPEG, clean) patch pairs as float tensors ``(B, C, P, P)`` in [0, 1].

    ``channels`` is ``"y"`` (gray JPEG of the Y channel, as the paper) or ``"rgb"`` (colour
    JPEG, 4:2:0). Randomness comes only from the ``numpy.random.Generator`` passed to
    :meth:`sample` (training derives one per rank and step, so a run resumes exactly).
    """

    def __init__(self, files: list[Path], qualities: tuple[int, ...] = (10, 20, 30),
                 channels: str = "y", colour: str = "matlab") -> None:
        if channels not in ("y", "rgb"):
            raise ValueError(f"channels must be 'y' or 'rgb', got {channels!r}")
        self.qualities = tuple(qualities)
        self.clean: list[np.ndarray] = []
        self.jpeg: list[list[np.ndarray]] = []
        for path in files:
            img = read_image(path)
            img = to_uint8_y(img, colour) if channels == "y" else _as_rgb(img)
            self.clean.append(img)
            self.jpeg.append([jpeg_roundtrip(img, q) for q in self.qualities])

    def sample(self, rng: np.random.Generator, batch: int, patch: int,
               augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``batch`` pairs; images smaller than ``patch`` on either side are not drawn."""
        large = [i for i, img in enumerate(self.clean) if min(img.shape[:2]) >= patch]
        if not large:
            raise ValueError(f"no training image is at least {patch}x{patch} pixels")
        inputs, targets = [], []
        for _ in range(batch):
            i = large[rng.integers(len(large))]
            q = rng.integers(len(self.qualities))
            clean, jpeg = self.clean[i], self.jpeg[i][q]
            h, w = clean.shape[:2]
            top = rng.integers((h - patch) // ALIGN + 1) * ALIGN
            left = rng.integers((w - patch) // ALIGN + 1) * ALIGN
            a = jpeg[top:top + patch, left:left + patch]
            b = clean[top:top + patch, left:left + patch]
            if augment:
                k, flip = rng.integers(4), rng.integers(2)
                a, b = np.rot90(a, k), np.rot90(b, k)
                if flip:
                    a, b = a[:, ::-1], b[:, ::-1]
            inputs.append(array_to_tensor(a)[0])  # it copies: rotated views are fine
            targets.append(array_to_tensor(b)[0])
        return torch.stack(inputs), torch.stack(targets)


def _as_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
