"""Training data: clean / JPEG patch pairs from image folders with the JPEG done once per image.

Each image is JPEG-compressed at every training quality when the sampler is built, so a
patch costs a crop and not an encode. Crops start on multiples of 16, so the 8x8 luma and
16x16 chroma JPEG grids stay aligned with the patch (and survive flips and rotations).
With ``downscale`` > 1 a crop of up to that many times the patch is cut from the JPEG and
from the clean image and both are resized to the patch as Ultralytics letterboxes (bilinear):
the pairs of a de-blocker that runs at the detector's input size (``at="detector"``).
With ``camera`` > 1 the clean crop is instead enlarged (bicubic), JPEG-compressed at that size
and shrunk back: a camera frame, encoded at its own size, as the detector's letterbox sees it
(``eval.detection --conditions camera3``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from .colour import rgb_to_y
from .engine import array_to_tensor
from .jpeg import jpeg_roundtrip, read_image

ALIGN = 16
#: Training folders (relative to :func:`data_root`) when none are given: BSDS500 train + test.
DEFAULT_DATA_DIRS = ("bsds500/train", "bsds500/test")
#: Calibration folders (INT8 export, pruning) under the data root: training images only,
#: never coco_dev.
CALIBRATION_DIRS = ("coco_train/images", "bsds500/train")


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
    JPEG, 4:2:0). ``downscale`` (>= 1) is the largest factor a pair is shrunk by after JPEG:
    half the pairs are not shrunk, the others by a factor drawn uniformly from 1 to that
    (capped by the image's size), as the resize path de-blocks small sources unshrunk.
    ``camera`` (>= 1) makes the shrunk half camera-size pairs instead: the clean patch
    enlarged by a factor drawn from 1 to ``camera`` (bicubic), JPEG-compressed there (one
    encode per pair) and shrunk back (bilinear); the target is the clean patch taken through
    the same two resizes. At most one of ``downscale`` and ``camera`` is above 1.
    Randomness comes only from the ``numpy.random.Generator`` passed to :meth:`sample`
    (training derives one per rank and step, so a run resumes exactly).
    """

    def __init__(self, files: list[Path], qualities: tuple[int, ...] = (10, 20, 30),
                 channels: str = "y", colour: str = "matlab", downscale: float = 1.0,
                 camera: float = 1.0) -> None:
        if channels not in ("y", "rgb"):
            raise ValueError(f"channels must be 'y' or 'rgb', got {channels!r}")
        if not (downscale >= 1 and camera >= 1):
            raise ValueError(f"downscale and camera must be at least 1, got {downscale}, {camera}")
        if downscale > 1 and camera > 1:
            raise ValueError("downscale and camera are two kinds of shrunk pairs: give one")
        self.qualities = tuple(qualities)
        self.downscale = float(downscale)
        self.camera = float(camera)
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
            crop, enlarge = patch, 1.0
            if self.downscale > 1 and rng.integers(2):  # drawn only then: runs without it
                crop = int(patch * rng.uniform(1, min(self.downscale, min(h, w) / patch)))
            elif self.camera > 1 and rng.integers(2):
                enlarge = rng.uniform(1, self.camera)
            top = rng.integers((h - crop) // ALIGN + 1) * ALIGN
            left = rng.integers((w - crop) // ALIGN + 1) * ALIGN
            a = jpeg[top:top + crop, left:left + crop]
            b = clean[top:top + crop, left:left + crop]
            if enlarge > 1:
                a, b = camera_pair(b, self.qualities[q], enlarge)
            elif crop != patch:
                a, b = (cv2.resize(x, (patch, patch), interpolation=cv2.INTER_LINEAR)
                        for x in (a, b))
            if augment:
                k, flip = rng.integers(4), rng.integers(2)
                a, b = np.rot90(a, k), np.rot90(b, k)
                if flip:
                    a, b = a[:, ::-1], b[:, ::-1]
            inputs.append(array_to_tensor(a)[0])  # it copies: rotated views are fine
            targets.append(array_to_tensor(b)[0])
        return torch.stack(inputs), torch.stack(targets)


def camera_pair(clean: np.ndarray, quality: int, enlarge: float) -> tuple[np.ndarray, np.ndarray]:
    """``(jpeg, clean)`` of ``clean``'s size: ``clean`` enlarged by ``enlarge`` (bicubic),
    JPEG-compressed at ``quality`` there, and both versions shrunk back (bilinear).

    Example:
        >>> a, b = camera_pair(np.full((16, 16), 100, np.uint8), 10, 2.5)
        >>> a.shape, b.shape
        ((16, 16), (16, 16))
    """
    h, w = clean.shape[:2]
    big = cv2.resize(clean, (round(w * enlarge), round(h * enlarge)), interpolation=cv2.INTER_CUBIC)
    return tuple(cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR)
                 for x in (jpeg_roundtrip(big, quality), big))


def _as_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def calibration_patches(root: str | Path, count: int = 256, size: int = 128,
                        qualities: Sequence[int] = (10, 20, 30), seed: int = 0,
                        folders: Sequence[str] = CALIBRATION_DIRS) -> list[np.ndarray]:
    """``count`` RGB uint8 JPEG patches (``size`` square, on the 16-pixel JPEG grid) from the
    training folders under ``root``, alternating between folders, at random qualities.

    The patches are cut from the images and then JPEG-compressed, so each is an image a
    de-blocker sees, not a crop across an image's block grid.
    """
    rng = np.random.default_rng(seed)
    files = [list_images(Path(root) / f) for f in folders]
    patches = []
    for i in range(count):
        names = files[i % len(files)]
        image = read_image(names[rng.integers(len(names))])
        image = _as_rgb(image)
        h, w = image.shape[:2]
        if min(h, w) < size:
            continue
        top = rng.integers((h - size) // 16 + 1) * 16
        left = rng.integers((w - size) // 16 + 1) * 16
        patch = np.ascontiguousarray(image[top:top + size, left:left + size])
        patches.append(jpeg_roundtrip(patch, int(rng.choice(qualities))))
    if not patches:
        raise ValueError(f"no calibration images of at least {size}x{size} under {root}")
    return patches
