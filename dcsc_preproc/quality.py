"""JPEG quality estimation and the quality gate that lets clean images pass un-de-blocked.

:func:`estimate_quality` reads a JPEG's quantisation tables (Pillow's ``quantization``) and
finds the IJG quality (1-100, libjpeg's ``jpeg_set_quality`` scaling of the standard tables
of ITU T.81 Annex K) whose tables fit best: exact for Pillow, OpenCV and other libjpeg
encoders, the nearest fit (lower confidence) for other encoders' tables. Decoded pixels
(frames, tensors, PNGs of decoded JPEGs) get a blind estimate: the 8x8 grid is found from the
periodicity of the blockiness (pixel differences across block boundaries against those
inside blocks), then the coarsest IJG luma table whose lattice the grid-aligned DCT
coefficients still sit on is the estimate. Its measured error is in docs/RESULTS.md.

:class:`QualityGate` is the one gate every entry point (``Deblock``, ``FrameFilter``, the YOLO
callback, the CLIs) shares: images estimated above its threshold pass through unchanged.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from .engine import MIN_SIZE, check_finite

#: Luminance and chrominance base tables of ITU T.81 Annex K, natural (row-major) order.
LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *[99] * 32])
QUALITIES = np.arange(1, 101)


def ijg_tables(quality: int | np.ndarray, base: np.ndarray = LUMA) -> np.ndarray:
    """libjpeg's quantisation table for ``quality`` (baseline: entries clipped to 1..255).

    Example:
        >>> ijg_tables(50)[:8].tolist()
        [16, 11, 10, 16, 24, 40, 51, 61]
        >>> ijg_tables(np.array([10, 90])).shape
        (2, 64)
    """
    q = np.clip(np.asarray(quality), 1, 100)
    scale = np.where(q < 50, 5000 // q, 200 - 2 * q)
    return np.clip((base * scale[..., None] + 50) // 100, 1, 255)


#: ``_TABLES[q - 1]`` is the luma table at quality q.
_TABLES = ijg_tables(QUALITIES)
_CHROMA_TABLES = ijg_tables(QUALITIES, CHROMA)


@dataclass(frozen=True)
class QualityEstimate:
    """An estimated JPEG quality on the IJG 1-100 scale.

    ``source`` is ``"tables"`` (read from the file's quantisation tables) or ``"pixels"``
    (blind, from decoded pixels). ``confidence`` is in [0, 1]: 1.0 for tables that equal
    libjpeg's at that quality, lower for other encoders' tables and for pixel estimates.
    """

    quality: int
    source: str
    confidence: float


def quality_from_tables(tables: dict[int, Any] | list) -> QualityEstimate:
    """The IJG quality whose scaled standard tables fit ``tables`` best.

    ``tables`` is Pillow's ``quantization`` (table id -> 64 values, natural order): table 0
    is fitted against the luma base, table 1 (if present) against the chroma base. The fit
    minimises the mean absolute log ratio, so every frequency counts alike; the confidence
    is ``exp(-that mean)``: 1.0 for an exact libjpeg table. Ties (high qualities, where
    entries clip to 1) resolve to the lowest quality that fits.

    Example:
        >>> quality_from_tables({0: ijg_tables(37).tolist(), 1: ijg_tables(37, CHROMA).tolist()})
        QualityEstimate(quality=37, source='tables', confidence=1.0)
    """
    values = list(tables.values()) if isinstance(tables, dict) else list(tables)
    if not values:
        raise ValueError("no quantisation tables to fit")
    error = np.zeros(len(QUALITIES))
    for table, reference in zip(values[:2], (_TABLES, _CHROMA_TABLES)):
        observed = np.asarray(table, dtype=float)
        if observed.shape != (64,) or (observed < 1).any():
            raise ValueError(f"a quantisation table has 64 entries >= 1, got {observed.shape}")
        error += np.abs(np.log(reference / observed)).mean(axis=1)
    error /= min(len(values), 2)
    best = int(np.argmin(error))
    return QualityEstimate(int(QUALITIES[best]), "tables", round(float(np.exp(-error[best])), 4))


def _dct_matrix() -> np.ndarray:
    k, n = np.mgrid[0:8, 0:8]
    d = np.cos((2 * n + 1) * k * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


#: The orthonormal 8x8 DCT, which is JPEG's FDCT (coefficients in quantisation-step units).
_DCT = _dct_matrix()
#: Its four highest 1-D frequencies as an (8, 4) float32 matrix (:func:`grid_offset`).
_HIGH = np.ascontiguousarray(_DCT[4:].T, dtype=np.float32)
#: Zig-zag order of the 8x8 positions; the pixel estimate uses the first ``_POSITIONS`` AC.
_ZIGZAG = sorted(range(64), key=lambda i: (i // 8 + i % 8, (i // 8) if (i // 8 + i % 8) % 2
                                           else -(i // 8)))
_POSITIONS = np.array(_ZIGZAG[1:22])
#: Informative coefficients: above the decoder's noise (IDCT rounding and colour conversion
#: leave about 0.3-1 in these units).
_INFORMATIVE = 1.5
#: A coefficient further than ``_OFF_RELATIVE * step``, clipped to ``[_OFF, _OFF_MAX]``, from
#: a lattice is off it (the cap keeps q1's steps of 255 from passing small coefficients).
_OFF, _OFF_RELATIVE, _OFF_MAX = 1.75, 0.05, 4.0
#: A candidate quality fits when at most this share of informative coefficients is off.
_MAX_OFF = 0.1
_MAX_BLOCKS = 2048
#: The blind estimate reads a central crop of at most this many pixels a side, so its cost
#: stays flat as frames grow (docs/RESULTS.md section 8: on 1080p frames the same estimates
#: as the whole frame at a third of the time); smaller images are read whole.
PIXEL_SAMPLE = 768
#: Coefficients in the sample that screens the candidate qualities.
_SCREEN = 2000


def luma(image: np.ndarray, order: str = "rgb") -> np.ndarray:
    """JPEG's Y (BT.601 full range) of a uint8 ``(H, W)`` or ``(H, W, 3+)`` array, float32."""
    if image.ndim == 2:
        return image.astype(np.float32)
    weights = np.array([0.299, 0.587, 0.114] if order == "rgb" else [0.114, 0.587, 0.299],
                       np.float32)
    return image[..., :3].astype(np.float32) @ weights


def grid_offset(y: np.ndarray) -> tuple[tuple[int, int], float]:
    """Where the 8x8 JPEG grid lies in a luma image: ``((dy, dx), strength)``.

    ``dy``/``dx`` (0-7) are the first row/column of a block, found from the periodicity of
    the coefficients' sparsity: cut every fourth line into 8-pixel segments starting at each
    phase and take their 1-D DCT; at the encoder's phase the high frequencies (4-7), which
    quantisation zeroed in most blocks, are near zero far more often than at the other seven
    phases. ``strength`` is the lower (over the two axes) of that share at the chosen phase
    minus its median over the phases: about 0 for an image without a grid. (Plain blockiness,
    the mean step across block boundaries, picked the wrong phase in 17 of 40 images at q90:
    docs/RESULTS.md.)

    Example:
        >>> from dcsc_preproc.jpeg import jpeg_roundtrip
        >>> yy, xx = np.mgrid[0:96, 0:96]
        >>> image = jpeg_roundtrip(((xx * 5 + yy * 3) % 256).astype(np.uint8), 50)
        >>> grid_offset(image[3:, 5:].astype(float))[0]  # cropped by 3 rows and 5 columns
        (5, 3)
    """
    offsets, strengths = [], []
    for lines in (y.T[::4], y[::4]):  # columns give the row phase dy, rows the column phase dx
        # float32 and contiguous, so each phase's segments are a view (no copy per phase):
        # 4x faster than float64 copies, the same offsets (docs/RESULTS.md section 3)
        lines = np.ascontiguousarray(lines, dtype=np.float32)
        n = lines.shape[1] // 8 - 1
        scores = np.array([np.count_nonzero(np.abs(
            lines[:, p:p + 8 * n].reshape(len(lines), n, 8) @ _HIGH) < 0.75)
            for p in range(8)]) / (len(lines) * n * 4)
        best = int(np.argmax(scores))
        offsets.append(best)
        strengths.append(scores[best] - np.median(scores))
    return (offsets[0], offsets[1]), float(min(strengths))


#: A grid is there (and worth aligning to) above this :func:`grid_offset` strength, in images
#: of at least ``GRID_MIN_SIDE`` pixels a side: resized coco_dev originals measured at most
#: 0.007 and cropped q90 JPEGs at least 0.043 (30 images); 64x64 smooth noise up to 0.03.
GRID_STRENGTH, GRID_MIN_SIDE = 0.035, 64


def grid_padding(y: np.ndarray) -> tuple[int, int]:
    """Rows and columns to add at the top and left of a luma image so that its JPEG grid
    starts at (0, 0); ``(0, 0)`` when no grid stands out or the image is under 64 pixels a
    side (too few blocks to tell). De-blockers learned aligned grids:
    on 12 coco_dev q10 JPEGs cropped by 1-7 pixels dcsc-fast won back 0.64 dB PSNR unaligned
    and 1.06 dB aligned (``python -m eval.quality --alignment dcsc-fast``, docs/RESULTS.md).

    Example:
        >>> from dcsc_preproc.jpeg import jpeg_roundtrip
        >>> yy, xx = np.mgrid[0:96, 0:96]
        >>> image = jpeg_roundtrip(((xx * 5 + yy * 3) % 256).astype(np.uint8), 50)
        >>> grid_padding(image[3:, 5:].astype(float))  # the grid starts at row 5, column 3
        (3, 5)
    """
    if min(y.shape) < GRID_MIN_SIDE:
        return 0, 0
    (dy, dx), strength = grid_offset(y)
    return ((-dy) % 8, (-dx) % 8) if strength >= GRID_STRENGTH else (0, 0)


def _blocks(a: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """The whole grid-aligned 8x8 blocks of ``a`` ``(H, W, ...)``: ``(N, 8, 8, ...)``."""
    dy, dx = offset
    h, w = (a.shape[0] - dy) // 8, (a.shape[1] - dx) // 8
    a = a[dy:dy + 8 * h, dx:dx + 8 * w]
    return a.reshape(h, 8, w, 8, *a.shape[2:]).swapaxes(1, 2).reshape(h * w, 8, 8, *a.shape[2:])


def _block_coefficients(image: np.ndarray, y: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """Grid-aligned DCT coefficients ``(N, 64)`` of whole luma blocks (at most
    ``_MAX_BLOCKS``, evenly spread), leaving out blocks with a clipped (0 or 255) value:
    the decoder's clipping moves their coefficients off the lattice."""
    blocks = _blocks(y, offset)
    if len(blocks) > _MAX_BLOCKS:  # reproducibly, not at random
        keep = np.linspace(0, len(blocks) - 1, _MAX_BLOCKS).astype(int)
        blocks, pixels = blocks[keep], _blocks(image, offset)[keep]
    else:
        pixels = _blocks(image, offset)
    clipped = ((pixels == 0) | (pixels == 255)).reshape(len(pixels), -1).any(axis=1)
    return (_DCT @ (blocks[~clipped].astype(np.float64) - 128) @ _DCT.T).reshape(-1, 64)


def _off_lattice(values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Share of ``values`` (n,) off the lattice of each row of ``steps`` (Q, n)."""
    residual = np.abs(values - steps * np.round(values / steps))
    tolerance = np.clip(_OFF_RELATIVE * steps, _OFF, _OFF_MAX)
    return (residual > tolerance).mean(axis=1)


def quality_from_pixels(image: np.ndarray, order: str = "rgb") -> QualityEstimate:
    """Blind IJG quality of a decoded uint8 image ``(H, W)`` or ``(H, W, C)``.

    Finds the grid (:func:`grid_offset`), takes the grid-aligned DCT of the luma blocks
    (blocks holding a clipped 0 or 255 left out), and returns the lowest quality whose luma
    table keeps at least 90% of the informative coefficients (``|c| > 1.5``) of the first 21
    zig-zag AC positions on its lattice (within ``step / 20``, clipped to 1.75-4): coarser
    tables than
    the encoder's put most nonzero coefficients off their lattice, finer ones keep them on
    it. An image that was never JPEG-compressed fits only tables of steps up to 3 (about
    q89 and up). ``order`` is ``"rgb"`` or ``"bgr"`` (OpenCV frames): the luma weights
    depend on it. Images under 16 pixels a side, and flat ones, give quality 100 with
    confidence 0: nothing in them tells the quality. Frames larger than
    :data:`PIXEL_SAMPLE` are judged on their central crop of that size.
    """
    if order not in ("rgb", "bgr"):
        raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
    h, w = image.shape[:2]
    top, left = max((h - PIXEL_SAMPLE) // 2, 0), max((w - PIXEL_SAMPLE) // 2, 0)
    image = image[top:top + PIXEL_SAMPLE, left:left + PIXEL_SAMPLE]
    y = luma(image, order)
    if min(y.shape) < 16:
        return QualityEstimate(100, "pixels", 0.0)
    offset, strength = grid_offset(y)
    c = _block_coefficients(image, y, offset)[:, _POSITIONS]
    informative = np.abs(c) > _INFORMATIVE
    values = c[informative]
    if len(values) == 0:
        return QualityEstimate(100, "pixels", 0.0)
    steps = _TABLES[:, _POSITIONS].astype(np.float64)  # (Q, K)
    position = np.nonzero(informative)[1]  # of each value
    # Screen all qualities on a 1-in-k sample of the values, then confirm them in order.
    sample = slice(None, None, max(1, len(values) // _SCREEN))
    screened = _off_lattice(values[sample], steps[:, position[sample]])
    off, best = 1.0, len(QUALITIES) - 1
    for i in np.flatnonzero(screened <= 2 * _MAX_OFF):
        off = float(_off_lattice(values, steps[i:i + 1, position])[0])
        if off <= _MAX_OFF:
            best = int(i)
            break
    n = len(values)
    confidence = (1 - min(off, 1.0)) * min(1.0, n / 1000) * min(1.0, 5 * strength)
    return QualityEstimate(int(QUALITIES[best]), "pixels", round(float(confidence), 4))


def _pixels(source: Any) -> np.ndarray:
    """A uint8 ``(H, W)`` or ``(H, W, C)`` array of a PIL image, array or CHW tensor."""
    if isinstance(source, PIL.Image.Image):
        if source.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"):
            raise TypeError(f"cannot estimate the JPEG quality of a PIL image in mode "
                            f"{source.mode!r}: JPEG images are 8-bit")
        return np.asarray(source.convert("L" if source.mode in ("1", "L", "LA") else "RGB"))
    if type(source).__module__.startswith("torch"):
        import torch

        if not isinstance(source, torch.Tensor) or source.dim() not in (2, 3):
            raise ValueError(f"expected a (C, H, W) or (H, W) tensor, got {source!r:.80}")
        x = source.detach().cpu()
        check_finite(x)
        if x.is_floating_point():
            x = x.mul(255).round().clamp(0, 255).to(torch.uint8)
        elif x.dtype != torch.uint8:
            raise TypeError(f"expected a uint8 or float tensor, got dtype {x.dtype}")
        source = (x.permute(1, 2, 0) if x.dim() == 3 else x).numpy()
    if not isinstance(source, np.ndarray):
        raise TypeError("estimate_quality takes a path, bytes, a PIL image, a uint8 array or an "
                        f"image tensor, got {type(source).__name__}")
    if source.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image array (JPEG images are 8-bit), got dtype "
                        f"{source.dtype}")
    if source.ndim == 3 and source.shape[2] in (1, 2):  # gray, gray + alpha
        return source[..., 0]
    if not (source.ndim == 2 or (source.ndim == 3 and source.shape[2] in (3, 4))):
        raise ValueError(f"expected an (H, W) or (H, W, C) image with C in 1-4, got shape "
                         f"{source.shape}")
    return source


def estimate_quality(source: str | Path | bytes | PIL.Image.Image | np.ndarray | Any,
                     order: str = "rgb") -> QualityEstimate:
    """Estimate the JPEG quality (IJG scale) of a file, bytes, PIL image, array or tensor.

    JPEG files, bytes and PIL images opened from a JPEG are read from their quantisation
    tables (:func:`quality_from_tables`, ``source="tables"``); anything else (a decoded
    array, a tensor ``(C, H, W)`` uint8 or float in [0, 1], a PNG) from its pixels
    (:func:`quality_from_pixels`, ``source="pixels"``). ``order`` is the channel order of
    arrays: ``"rgb"`` or ``"bgr"`` (OpenCV); alpha is ignored. A file that cannot be decoded
    raises ``ValueError`` naming it.

    Example:
        >>> from dcsc_preproc.jpeg import encode_jpeg
        >>> estimate_quality(encode_jpeg(np.zeros((16, 16, 3), np.uint8), 35))
        QualityEstimate(quality=35, source='tables', confidence=1.0)
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such image file: {path}")
        return _estimate_bytes(path.read_bytes(), str(path))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _estimate_bytes(bytes(source), "image data")
    tables = getattr(source, "quantization", None)
    if isinstance(source, PIL.Image.Image) and tables:
        return quality_from_tables(tables)
    return quality_from_pixels(_pixels(source), order)


def _estimate_bytes(data: bytes, name: str) -> QualityEstimate:
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            tables = getattr(image, "quantization", None)
            if not tables:
                image.load()
                decoded = image.copy()
    except Exception as err:  # Pillow raises several types; Ultralytics patches Image.open
        raise ValueError(f"cannot decode {name}: {err}") from err
    return quality_from_tables(tables) if tables else quality_from_pixels(_pixels(decoded))


#: The default gate threshold: estimated qualities above it pass through. Measured with
#: YOLOv8n on 200 coco_dev images (docs/RESULTS.md section 8): dcsc-fast wins mAP back up to
#: q40 (+0.015), nothing at q50 (+0.0001) and loses at q60 (-0.005) and on the originals
#: (q80-96, -0.006), so q50 and below are de-blocked.
AUTO_THRESHOLD = 50
#: Frames between a stream's quality estimates (and at scene changes), 1 s at 25 fps: what
#: the video pipeline and the YOLO callback on video and stream sources use.
STREAM_EVERY = 25


class QualityGate:
    """Decide image by image whether to de-block: an estimated quality above ``threshold``
    passes through unchanged.

    ``threshold`` is ``"auto"`` (:data:`AUTO_THRESHOLD`), an IJG quality 1-100, or ``None``
    (always de-block, nothing estimated); the strings ``"none"`` and ``"40"`` mean the same
    as ``None`` and ``40`` (command lines). For frame sequences, ``every=N`` re-estimates on
    every N-th call and reuses the decision in between, except after a scene change (the
    frame's size changes, or its 1/16-scale luma differs from the previous frame's by
    more than ``scene_change`` grey levels on average). ``passed`` and ``restored`` count the
    decisions; ``last`` is the latest estimate. One gate object may be shared by several
    entry points to count them together (in ``DataLoader`` workers each process counts its
    own).

    Example:
        >>> from dcsc_preproc.jpeg import encode_jpeg
        >>> gate = QualityGate()
        >>> image = np.zeros((16, 16, 3), np.uint8)
        >>> gate.restore(encode_jpeg(image, 90)), gate.restore(encode_jpeg(image, 20))
        (False, True)
        >>> gate.passed, gate.restored
        (1, 1)
    """

    def __init__(self, threshold: int | str | None = "auto", every: int = 1,
                 scene_change: float = 20.0) -> None:
        if isinstance(threshold, str):  # also the command-line spellings: "none", "40"
            text = threshold.strip().lower()
            threshold = AUTO_THRESHOLD if text == "auto" else None if text == "none" else \
                int(text) if text.isdigit() else threshold
        if threshold is not None and (isinstance(threshold, (bool, str)) or
                                      not 1 <= int(threshold) <= 100):
            raise ValueError(f"gate threshold must be 'auto', a quality in 1..100 or None, got "
                             f"{threshold!r}")
        if int(every) < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.threshold = None if threshold is None else int(threshold)
        self.every = int(every)
        self.scene_change = scene_change
        self.passed = 0
        self.restored = 0
        self.last: QualityEstimate | None = None
        self._since = 0
        self._thumbnail: np.ndarray | None = None
        self._warned: set[str] = set()

    @classmethod
    def of(cls, gate: QualityGate | int | str | None) -> QualityGate:
        """The gate an entry point's ``gate=`` argument means: a gate is kept as it is (its
        counters shared), anything else is a threshold for a new one."""
        return gate if isinstance(gate, cls) else cls(gate)

    def __repr__(self) -> str:
        return (f"QualityGate(threshold={self.threshold}, every={self.every}, "
                f"passed={self.passed}, restored={self.restored})")

    def restore(self, image: Any, order: str = "rgb",
                file: str | Path | bytes | None = None) -> bool:
        """Whether to de-block ``image`` (anything :func:`estimate_quality` takes); counts it.

        ``file`` is the JPEG file (path or bytes) ``image`` was decoded from, if known: its
        tables are read instead of the pixels. Images that cannot hold JPEG blocks pass
        whatever the threshold, with one warning per gate and reason: smaller than 8x8, or
        more than 8 bits a sample (baseline JPEG is 8-bit, so a 16-bit image has no JPEG
        artifacts to remove).
        """
        reason = _pass_reason(image) or (None if file is None else _pass_reason(file))
        if reason is not None:
            if reason[0] not in self._warned:
                self._warned.add(reason[0])
                warnings.warn(f"{reason[1]}: passed through without de-blocking (warned once; "
                              "gate.passed counts them)", UserWarning, stacklevel=3)
            self.passed += 1
            return False
        if self.threshold is not None:
            if self._due(image, order):
                tables = None if file is None else _tables(file)
                self.last = tables or estimate_quality(image, order)
                self._since = 0
            self._since += 1
        restore = self.threshold is None or self.last.quality <= self.threshold
        if restore:
            self.restored += 1
        else:
            self.passed += 1
        return restore

    def _due(self, image: Any, order: str) -> bool:
        """Re-estimate now? Always with ``every=1``; else every N-th call or on a scene change."""
        if self.every == 1:
            return True
        pixels = None if isinstance(image, (str, Path, bytes)) else _pixels(image)
        thumbnail = None if pixels is None else luma(pixels[::16, ::16], order)
        previous, self._thumbnail = self._thumbnail, thumbnail
        if self.last is None or self._since >= self.every or thumbnail is None or previous is None:
            return True
        return (thumbnail.shape != previous.shape or
                float(np.abs(thumbnail - previous).mean()) > self.scene_change)


#: PIL modes of more than 8 bits a sample.
WIDE_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def _pass_reason(image: Any) -> tuple[str, str] | None:
    """Why ``image`` cannot be de-blocked at all, ``(kind, message)``, or None."""
    if isinstance(image, (str, Path, bytes, bytearray, memoryview)):
        try:
            with PIL.Image.open(io.BytesIO(image) if not isinstance(image, (str, Path))
                                else image) as opened:
                size, wide = opened.size[::-1], opened.mode in WIDE_MODES
        except Exception:  # Pillow raises several types; Ultralytics patches Image.open
            return None  # estimate_quality names the unreadable file
    elif isinstance(image, PIL.Image.Image):
        size, wide = image.size[::-1], image.mode in WIDE_MODES
    elif isinstance(image, np.ndarray):
        size, wide = image.shape[:2], image.dtype.itemsize > 1 and image.dtype.kind in "ui"
    elif type(image).__module__.startswith("torch"):
        size = tuple(image.shape[-2:])
        wide = image.dtype.itemsize > 1 and not image.is_floating_point()
    else:
        return None
    if wide:
        return "16-bit", "an image of more than 8 bits a sample (16-bit) was never baseline JPEG"
    if len(size) < 2 or min(size) < MIN_SIZE:
        return "small", (f"an image smaller than {MIN_SIZE}x{MIN_SIZE} pixels (one JPEG block), "
                         f"{'x'.join(map(str, size[::-1]))}")
    return None


def _tables(file: str | Path | bytes) -> QualityEstimate | None:
    """The tables estimate of a JPEG file or bytes; None for other or unreadable files."""
    try:
        with PIL.Image.open(io.BytesIO(file) if isinstance(file, bytes) else file) as image:
            tables = getattr(image, "quantization", None)
            return quality_from_tables(tables) if tables else None
    except Exception:  # Pillow raises several types; Ultralytics patches Image.open
        return None
