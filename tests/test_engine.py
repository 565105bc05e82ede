"""The one inference path: colour handling, padding, tiling, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcsc_preproc import DCSC, Engine, array_to_tensor, rgb_to_ycbcr, tensor_to_array


def _strong(model: DCSC) -> DCSC:
    """Random weights scaled up so the residual is far from zero."""
    torch.manual_seed(0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.15)
    return model


@pytest.mark.parametrize("kwargs", [dict(iterations=3), dict(in_channels=3, unshuffle=4,
                                                              dilated_features=8, features=16,
                                                              iterations=2)])
def test_tiled_equals_whole(kwargs):
    model = _strong(DCSC(**kwargs))
    channels = model.config.in_channels
    x = torch.rand(2, channels, 101, 133) * 0.2 + 0.4
    whole = Engine(model, tile=None, precision="fp32")(x)
    tiled_engine = Engine(model, tile=32, precision="fp32")
    assert tiled_engine.tile + 2 * tiled_engine.margin < 133  # really tiles
    tiled = tiled_engine(x)
    assert (whole - x).abs().max() > 0.05  # the model does something
    assert (tiled - whole).abs().max() < 1e-4


def test_default_runs_1080p_whole(monkeypatch):
    model = DCSC(in_channels=3, unshuffle=4, dilated_features=4, features=4, iterations=1)

    def pieces(engine: Engine) -> int:
        shapes = []
        forward = engine.backend
        monkeypatch.setattr(engine, "backend", lambda x: shapes.append(x.shape) or forward(x))
        engine(torch.zeros(1, 3, 1080, 1920))
        return len(shapes)

    assert pieces(Engine(model)) == 1
    assert pieces(Engine(model, tile=512)) == 12  # 4 x 3 tiles


def test_y_model_keeps_chroma(rgb_image):
    model = _strong(DCSC(iterations=2))
    x = array_to_tensor(rgb_image)
    out = Engine(model)(x)
    before, after = rgb_to_ycbcr(x), rgb_to_ycbcr(out)
    inside = (out > 0.01).all(1, keepdim=True) & (out < 0.99).all(1, keepdim=True)  # unclamped
    assert (after[:, 0] - before[:, 0]).abs().max() > 0.05
    assert (after[:, 1:] - before[:, 1:]).abs()[inside.expand(-1, 2, -1, -1)].max() < 1e-5


def test_gray_on_rgb_model_and_restore_array(rgb_image):
    model = _strong(DCSC(in_channels=3, iterations=1))
    gray = rgb_image[..., 0]
    out = Engine(model).restore_array(gray)
    assert out.shape == gray.shape and out.dtype == np.uint8
    rgb_out = Engine(model).restore_array(rgb_image)
    assert rgb_out.shape == rgb_image.shape and not np.array_equal(rgb_out, rgb_image)


def test_restore_arrays_batches_frames_of_one_shape(rgb_image):
    """restore_arrays runs same-shape frames through the backend as one batch and gives each
    frame what restore_array gives it alone; frames of different shapes are refused."""
    model = _strong(DCSC(in_channels=3, unshuffle=4, dilated_features=8, features=16,
                         iterations=2))
    engine = Engine(model, precision="fp32")
    frames = [rgb_image, np.ascontiguousarray(rgb_image[::-1])]
    shapes = []
    forward = engine.backend
    engine.backend = lambda x: shapes.append(tuple(x.shape)) or forward(x)
    batch = engine.restore_arrays(frames, bgr=True)
    assert len(shapes) == 1 and shapes[0][0] == 2
    for got, frame in zip(batch, frames):  # batching may move a float by a rounding step
        assert got.shape == frame.shape and not np.array_equal(got, frame)
        assert np.abs(got.astype(int) - engine.restore_array(frame, bgr=True)).max() <= 1
    assert engine.restore_arrays([]) == []
    with pytest.raises(ValueError, match="one shape"):
        engine.restore_arrays([rgb_image, rgb_image[:-8]])
    with pytest.raises(TypeError, match="uint8"):
        engine.restore_arrays([rgb_image, rgb_image.astype(np.float32)])
    with pytest.raises(TypeError, match="list of frames"):
        engine.restore_arrays(rgb_image)


def test_output_clamped_and_typed():
    model = DCSC(iterations=1)
    torch.nn.init.constant_(model.recon.bias, 3.0)
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    out = Engine(model)(x)
    assert out.dtype == torch.float64 and out.max() == 1.0


def test_tensor_array_conversions():
    a = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert np.array_equal(tensor_to_array(array_to_tensor(a)), a)
    x = torch.full((1, 1, 2, 2), 100.7 / 255)
    assert tensor_to_array(x).max() == 101 and tensor_to_array(x, truncate=True).max() == 100
    on_meta = array_to_tensor(a, "meta")  # the uint8 bytes move first, then become float
    assert on_meta.device.type == "meta" and on_meta.dtype == torch.float32
    assert on_meta.shape == (1, 3, 4, 4)


@pytest.mark.parametrize("bad,error,match", [
    (torch.zeros(1, 1, 16, 16, dtype=torch.uint8), TypeError, "float"),
    (torch.zeros(1, 16, 16), ValueError, r"\(N, C, H, W\)"),
    (torch.zeros(1, 2, 16, 16), ValueError, "channels"),
    (torch.zeros(1, 1, 7, 16), ValueError, "smaller than"),
])
def test_bad_input(bad, error, match):
    with pytest.raises(error, match=match):
        Engine(DCSC(iterations=1))(bad)


@pytest.mark.parametrize("bad,error,match", [
    (np.zeros((16, 16, 3), np.float32), TypeError, "uint8"),
    (np.zeros((16, 16, 4), np.uint8), ValueError, "drop alpha"),
    (np.zeros((16, 16, 2), np.uint8), ValueError, "channels"),
    (np.zeros((0, 0, 3), np.uint8), ValueError, "smaller than"),
    (np.zeros((7, 16), np.uint8), ValueError, "smaller than"),
])
def test_bad_arrays(bad, error, match):
    """restore_array names the problem before any backend sees the frame."""
    with pytest.raises(error, match=match):
        Engine(DCSC(iterations=1)).restore_array(bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="precision"):
        Engine(DCSC(iterations=1), precision="int4")
    with pytest.raises(ValueError, match="tile"):
        Engine(DCSC(iterations=1), tile=4)
    with pytest.raises(TypeError, match="uint8"):
        array_to_tensor(np.zeros((8, 8), np.float32))
