"""JPEG encoding and YCbCr conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dcsc_preproc import encode_jpeg, jpeg_roundtrip, read_image, rgb_to_ycbcr, ycbcr_to_rgb
from dcsc_preproc.data import to_uint8_y

CLASSIC5 = ["baboon", "barbara", "boats", "lena", "peppers"]


@pytest.mark.parametrize("index,name", list(enumerate(CLASSIC5, 1)))
def test_q10_matches_authors_jpegs(shared, index, name):
    gray = read_image(shared / "data/classic5" / f"{name}.bmp")
    assert gray.ndim == 2
    expected = (shared / "data/reference/dcsc_classic5_q10" / f"{index}.jpg").read_bytes()
    assert encode_jpeg(gray, 10) == expected


def test_colour_jpeg_is_420(rgb_image):
    import io
    data = encode_jpeg(rgb_image, 30)
    with Image.open(io.BytesIO(data)) as img:
        assert img.layer[0][1:3] == (2, 2)  # luma sampled 2x2 against chroma: 4:2:0
    assert jpeg_roundtrip(rgb_image, 30).shape == rgb_image.shape


def test_matlab_y_matches_formula():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]] * 8, np.uint8)
    rgb = np.repeat(rgb, 2, axis=1)
    y = to_uint8_y(rgb)
    expected = np.round(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1]
                              + 24.966 * rgb[..., 2]) / 255)
    assert np.array_equal(y, expected)


@pytest.mark.parametrize("convention", ["matlab", "bt601"])
def test_ycbcr_roundtrip(convention):
    x = torch.rand(2, 3, 5, 7)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x, convention), convention), x, atol=1e-5)


def test_bt601_matches_pillow(rgb_image):
    ours = rgb_to_ycbcr(torch.from_numpy(rgb_image).permute(2, 0, 1).double() / 255, "bt601")
    pil = np.asarray(Image.fromarray(rgb_image).convert("YCbCr")).astype(float)
    assert np.abs(ours.permute(1, 2, 0).numpy() * 255 - pil).max() <= 1.0


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown YCbCr convention"):
        rgb_to_ycbcr(torch.rand(3, 2, 2), "rec709")
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_ycbcr(torch.rand(4, 2, 2))
    with pytest.raises(TypeError, match="uint8"):
        encode_jpeg(np.zeros((8, 8), np.float32), 10)
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(np.zeros((8, 8), np.uint8), 0)
    with pytest.raises(FileNotFoundError, match="no such image"):
        read_image(tmp_path / "missing.png")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8not really a jpeg")
    with pytest.raises(ValueError, match="cannot decode"):
        read_image(corrupt)


@pytest.mark.parametrize("shape", [(64, 48), (64, 48, 3)])
def test_fast_idct_decodes_the_same_jpeg_slightly_differently(rgb_image, shape) -> None:
    image = rgb_image[:shape[0], :shape[1]]
    image = image[..., 0].copy() if len(shape) == 2 else image
    accurate, fast = jpeg_roundtrip(image, 30), jpeg_roundtrip(image, 30, idct="ifast")
    assert fast.shape == accurate.shape == image.shape and fast.dtype == np.uint8
    difference = np.abs(fast.astype(int) - accurate.astype(int))
    assert 0 < difference.max() <= 8  # a few levels of IDCT rounding, not another image


def test_unknown_idct_is_named() -> None:
    with pytest.raises(ValueError, match="idct must be one of"):
        jpeg_roundtrip(np.zeros((8, 8), np.uint8), 10, idct="float")
