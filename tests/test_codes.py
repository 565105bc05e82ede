"""Sparse-code plots (``dcsc-preproc codes``): what is measured, what is written, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dcsc_preproc import DCSC, jpeg_roundtrip, read_image, save_model
from dcsc_preproc.cli import main
from dcsc_preproc.codes import load_jpeg_input, sparse_codes


def _constant_codes_model(g_bias: torch.Tensor) -> DCSC:
    """A model whose codes are known: G*X = g_bias everywhere and S = 0, so every
    U_r = ReLU(g_bias) per channel, whatever the image."""
    model = DCSC(iterations=2)
    with torch.no_grad():
        model.G.weight.zero_()
        model.G.bias.copy_(g_bias)
        model.S.weight.zero_()
        model.S.bias.zero_()
    return model


def test_zero_share_and_chosen_maps_come_from_the_codes() -> None:
    g_bias = torch.linspace(-1, 1, 64)  # 32 channels <= 0 (zero codes), 32 positive
    codes = sparse_codes(_constant_codes_model(g_bias), np.full((24, 24), 90, np.uint8),
                         iterations=[0, 2], maps=3)
    assert codes.zero_share.tolist() == [0.5, 0.5, 0.5]
    assert codes.channels == (63, 62, 61)  # the most active: the largest biases
    assert np.allclose(codes.maps[1, 0], 1.0) and codes.maps.shape == (2, 3, 24, 24)
    all_zero = sparse_codes(_constant_codes_model(torch.full((64,), -1.0)),
                            np.zeros((16, 16), np.uint8), iterations=[1], maps=1)
    assert all_zero.zero_share.tolist() == [1.0, 1.0]


def test_cli_writes_png_and_json(tmp_path, rgb_image) -> None:
    weights = save_model(DCSC(in_channels=3, unshuffle=4, iterations=2), tmp_path / "tiny.safetensors")
    image = tmp_path / "photo.png"
    Image.fromarray(rgb_image).save(image)
    before = image.read_bytes()
    out, record = tmp_path / "codes.png", tmp_path / "codes.json"
    args = ["codes", str(image), "--model", str(weights), "--out", str(out),
            "--iterations", "0", "1", "3", "--maps", "2", "--json", str(record)]
    main(args)
    assert Image.open(out).format == "PNG" and image.read_bytes() == before
    data = json.loads(record.read_text())
    assert len(data["zero_share"]) == 4 and all(0 <= z <= 1 for z in data["zero_share"])
    assert data["jpeg_quality"] == 10 and data["iterations"] == [0, 1, 3]
    with pytest.raises(SystemExit, match="refusing to overwrite"):
        main(args)


def test_authors_weights_and_unshuffled_crop(authors_npz) -> None:
    image = np.random.default_rng(0).integers(0, 256, (40, 50), np.uint8)
    codes = sparse_codes(authors_npz, image, iterations=[1, 2], maps=2, crop=32)
    assert codes.maps.shape == (2, 2, 32, 32) and codes.model == "dcsc_iccv2019_original"
    assert codes.restored.shape == codes.image.shape == (32, 32)
    assert ((0 <= codes.zero_share) & (codes.zero_share <= 1)).all()
    fast = sparse_codes(DCSC(in_channels=3, unshuffle=4, iterations=2), image[:30, :30], [2])
    assert fast.maps.shape == (1, 4, 7, 7) and fast.image.shape == fast.restored.shape == (28, 28, 3)


def test_jpeg_input_rule(tmp_path, rgb_image) -> None:
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(rgb_image).save(png)
    Image.fromarray(rgb_image).save(jpg, quality=50)
    image, quality = load_jpeg_input(png)
    assert quality == 10 and np.array_equal(image, jpeg_roundtrip(rgb_image, 10))
    image, quality = load_jpeg_input(jpg)
    assert quality is None and np.array_equal(image, read_image(jpg))
    image, quality = load_jpeg_input(jpg, 20)
    assert quality == 20 and np.array_equal(image, jpeg_roundtrip(read_image(jpg), 20))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"iterations": [-1]}, ValueError, "iterations must be integers >= 0"),
    ({"iterations": []}, ValueError, "iterations must be integers >= 0"),
    ({"maps": 65}, ValueError, "maps must be in 1..64"),
    ({"crop": 4}, ValueError, "crop must be at least 8"),
    ({"image": np.zeros((16, 16))}, TypeError, "expected a uint8 numpy array"),
    ({"image": np.zeros((6, 40), np.uint8)}, ValueError, "smaller than the 8x8 minimum"),
])
def test_bad_input(kwargs, error, match) -> None:
    args = {"image": np.zeros((16, 16), np.uint8), **kwargs}
    with pytest.raises(error, match=match):
        sparse_codes(DCSC(iterations=2), **args)


def test_missing_image_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such image file"):
        load_jpeg_input(tmp_path / "none.png")
