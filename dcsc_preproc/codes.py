"""The sparse codes ``U_r`` of a DCSC model across LISTA iterations (the paper's Figures 3-4).

:func:`sparse_codes` runs a model on one image with ``return_codes=True`` and keeps a few
feature maps of ``U_r`` for the chosen ``r`` and the share of exact zeros in every ``U_r``
(``r = 0`` is ``ReLU(G*X)``, before the first use of ``S``); :func:`plot_codes` draws them.

Input rule (:func:`load_jpeg_input`): a file that already is a JPEG is used as decoded (it
carries its own artifacts; compressing it again would stack a second set); any other file is
JPEG-compressed at ``quality`` (default 10). An explicit quality always compresses.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import to_uint8_y
from .engine import array_to_tensor, tensor_to_array
from .jpeg import jpeg_roundtrip, read_image
from .model import DCSC
from .zoo import load_model, model_name

DEFAULT_ITERATIONS = (1, 10, 20, 40)
DEFAULT_QUALITY = 10


@dataclass(frozen=True)
class SparseCodes:
    """What :func:`sparse_codes` measured on one image.

    ``maps[i]`` holds the chosen feature maps of ``U_r`` for ``r = iterations[i]``, shape
    ``(len(channels), H, W)`` (positions of the model, i.e. pixels / unshuffle);
    ``zero_share[r]`` is the share of zeros in all of ``U_r``, ``r = 0 .. max(iterations)``.
    """

    model: str
    iterations: tuple[int, ...]
    channels: tuple[int, ...]
    maps: np.ndarray
    zero_share: np.ndarray
    image: np.ndarray
    restored: np.ndarray

    def to_dict(self) -> dict:
        """The numbers (no maps), for a JSON record."""
        return {"model": self.model, "iterations": list(self.iterations),
                "channels": list(self.channels),
                "zero_share": [round(float(z), 6) for z in self.zero_share]}


def zero_shares(codes: Sequence[torch.Tensor]) -> np.ndarray:
    """Share of exact zeros in each code tensor.

    Example:
        >>> zero_shares([torch.tensor([0.0, 1.0]), torch.zeros(3)]).tolist()
        [0.5, 1.0]
    """
    return np.array([(u == 0).float().mean().item() for u in codes])


def load_jpeg_input(path: str | Path, quality: int | None = None) -> tuple[np.ndarray, int | None]:
    """The JPEG-degraded uint8 image the codes are computed on (see the module's rule) and
    the quality it was compressed at here (``None``: a JPEG file used as it is).

    ``quality=None`` means: a JPEG file as it is, anything else compressed at quality 10.
    """
    path = Path(path)
    image = read_image(path)
    with path.open("rb") as f:
        is_jpeg = f.read(3) == b"\xff\xd8\xff"
    if quality is None:
        if is_jpeg:
            return image, None
        quality = DEFAULT_QUALITY
    return jpeg_roundtrip(image, quality), quality


def sparse_codes(model: str | Path | DCSC, image: np.ndarray,
                 iterations: Sequence[int] = DEFAULT_ITERATIONS, maps: int = 4,
                 crop: int | None = 256, device: str | torch.device | None = None) -> SparseCodes:
    """Run ``model`` on a JPEG-degraded uint8 ``image`` and keep its sparse codes.

    A Y model sees the Y channel (its own YCbCr convention), an RGB model the RGB image (gray
    replicated). ``crop`` keeps the central ``crop`` x ``crop`` pixels (``None``: the whole
    image; all ``U_r`` are held in memory, 64 maps of float32 per position and iteration). The
    ``maps`` channels shown are those most active in the last chosen ``U_r``, the same for
    every ``r``. S is shared, so ``iterations`` may go beyond the model's trained R.

    Example:
        >>> codes = sparse_codes(DCSC(iterations=2), np.zeros((16, 16), np.uint8), [0, 2], maps=2)
        >>> codes.maps.shape, codes.zero_share.shape
        ((2, 2, 16, 16), (3,))
    """
    iterations = tuple(iterations)
    if not iterations or any(not isinstance(r, int) or isinstance(r, bool) or r < 0
                             for r in iterations):
        raise ValueError(f"iterations must be integers >= 0, got {list(iterations)}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 numpy array, got {type(image).__name__}")
    if crop is not None and crop < 8:
        raise ValueError(f"crop must be at least 8 pixels, got {crop}")
    net = load_model(model, device)
    cfg = net.config
    if maps < 1 or maps > cfg.features:
        raise ValueError(f"maps must be in 1..{cfg.features} (the model's feature maps), got {maps}")
    if cfg.in_channels == 1:
        image = to_uint8_y(image, cfg.colour)
    elif image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = _centre_crop(image, crop, net.multiple)
    x = array_to_tensor(image, next(net.parameters()).device)
    with torch.inference_mode():
        out, codes = net(x, iterations=max(iterations), return_codes=True)
    zeros = zero_shares(codes)
    last = codes[iterations[-1]][0]
    channels = tuple(last.mean(dim=(1, 2)).argsort(descending=True)[:maps].tolist())
    chosen = np.stack([codes[r][0, list(channels)].float().cpu().numpy() for r in iterations])
    return SparseCodes(model_name(model) if not isinstance(model, DCSC) else "model",
                       iterations, channels, chosen, zeros, image, tensor_to_array(out))


def _centre_crop(image: np.ndarray, crop: int | None, multiple: int) -> np.ndarray:
    """The central ``crop`` square (or the whole image), cut to a multiple of ``multiple``."""
    h, w = image.shape[:2]
    ch, cw = (h, w) if crop is None else (min(crop, h), min(crop, w))
    ch, cw = ch // multiple * multiple, cw // multiple * multiple
    if min(ch, cw) < 8:
        raise ValueError(f"image {w}x{h} is smaller than the 8x8 minimum (one JPEG block)")
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top:top + ch, left:left + cw]


def plot_codes(codes: SparseCodes, path: str | Path, title: str | None = None,
               overwrite: bool = False) -> Path:
    """Draw the chosen maps of ``U_r`` (rows: maps, columns: ``r``) beside the input and the
    restored image, and the share of zeros per iteration; write a PNG to ``path``.

    Each map has one colour scale across ``r`` (its 99.5th percentile), so its growth or decay
    over the iterations shows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    rows, cols = len(codes.channels), len(codes.iterations)
    fig = plt.figure(figsize=(2.2 * (cols + 1), 2.2 * rows + 2.8), layout="constrained")
    grid = fig.add_gridspec(rows + 1, cols + 1, height_ratios=[1] * rows + [1.2])
    gray = {"cmap": "gray", "vmin": 0, "vmax": 255}
    for row, (label, img) in enumerate((("JPEG input", codes.image),
                                        ("restored", codes.restored))[:rows]):
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(img, **(gray if img.ndim == 2 else {}))
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    for row, channel in enumerate(codes.channels):
        vmax = max(float(np.percentile(codes.maps[:, row], 99.5)), 1e-12)
        for col, r in enumerate(codes.iterations):
            ax = fig.add_subplot(grid[row, col + 1])
            ax.imshow(codes.maps[col, row], cmap="magma", vmin=0, vmax=vmax)
            ax.set_title(f"U_{r}, map {channel}", fontsize=9)
            ax.axis("off")
    ax = fig.add_subplot(grid[rows, :])
    ax.plot(np.arange(len(codes.zero_share)), 100 * codes.zero_share, marker=".")
    ax.set_xlabel("iteration r")
    ax.set_ylabel("zeros in U_r (%)")
    ax.grid(alpha=0.3)
    fig.suptitle(title or f"Sparse codes of {codes.model}")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    # 256 colours hold the colour maps and the gray images: a third of the file size
    Image.open(buffer).convert("RGB").quantize(256).save(path, format="PNG", optimize=True)
    return path
