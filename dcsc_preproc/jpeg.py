"""Image files and JPEG round trips with Pillow (libjpeg), at the uint8 edge of the library.

Arrays are uint8 ``(H, W)`` for grayscale or ``(H, W, 3)`` RGB. Pillow's defaults are kept on
purpose: IJG quality tables, 4:2:0 chroma for colour (as real encoders do), 4:0:0 for gray;
for grayscale this is byte-identical to the DCSC authors' own JPEG inputs. Decoding uses
libjpeg's accurate integer IDCT (``"islow"``, Pillow); ``"ifast"`` (libjpeg-turbo's fast IDCT,
through simplejpeg) is what the authors' TensorFlow code decoded with
(``dct_method="INTEGER_FAST"``), so it reproduces their published numbers exactly.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image

IDCTS = ("islow", "ifast")


def _check_uint8_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 numpy array, got {type(image).__name__} "
                        f"{getattr(image, 'dtype', '')}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected (H, W) or (H, W, 3), got shape {image.shape}")


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Encode a uint8 gray or RGB array as baseline JPEG at ``quality`` (1-100).

    Example:
        >>> data = encode_jpeg(np.zeros((16, 16), np.uint8), 10)
        >>> data[:2] == b"\\xff\\xd8"
        True
    """
    _check_uint8_image(image)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def decode_image(data: bytes, source: str = "image data") -> np.ndarray:
    """Decode image bytes to a uint8 array (gray stays gray, everything else becomes RGB)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            gray = img.mode in ("L", "1", "I", "I;16") or (img.mode == "P" and _palette_is_gray(img))
            return np.asarray(img.convert("L" if gray else "RGB"))
    except Exception as err:  # Pillow raises several types; Ultralytics patches Image.open too
        raise ValueError(f"cannot decode {source}: {err}") from err


def _palette_is_gray(img: Image.Image) -> bool:
    rgb = np.asarray(img.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file to uint8 ``(H, W)`` (grayscale) or ``(H, W, 3)`` RGB.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    return decode_image(path.read_bytes(), str(path))


def jpeg_roundtrip(image: np.ndarray, quality: int, idct: str = "islow") -> np.ndarray:
    """Compress at ``quality`` and decode again: the degradation DCSC learns to undo.

    ``idct`` picks the decoder's inverse DCT: ``"islow"`` (accurate, Pillow) or ``"ifast"``
    (libjpeg's fast IDCT, as the DCSC authors' TensorFlow decoding).

    Example:
        >>> jpeg_roundtrip(np.full((8, 8), 100, np.uint8), 10).shape
        (8, 8)
        >>> jpeg_roundtrip(np.full((8, 8, 3), 100, np.uint8), 10, idct="ifast").shape
        (8, 8, 3)
    """
    if idct not in IDCTS:
        raise ValueError(f"idct must be one of {IDCTS}, got {idct!r}")
    data = encode_jpeg(image, quality)
    if idct == "islow":
        return decode_image(data)
    out = simplejpeg.decode_jpeg(data, colorspace="GRAY" if image.ndim == 2 else "RGB",
                                 fastdct=True)
    return out[..., 0] if image.ndim == 2 else out
