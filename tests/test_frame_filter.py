"""The OpenCV ``FrameFilter``: BGR order, alpha, gray, batching, tiling, bad frames."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch

from dcsc_preproc import DCSC, FrameFilter, array_to_tensor


def small_model(in_channels: int = 3) -> DCSC:
    """A cheap random-init model whose residual is far from zero (tens of grey levels)."""
    torch.manual_seed(0)
    return DCSC(in_channels=in_channels, dilated_features=4, features=8, iterations=2)


@pytest.fixture
def frame_filter() -> FrameFilter:
    return FrameFilter(small_model(), gate=None)


def test_bgr_frame_is_restored_as_rgb(frame_filter, rgb_image):
    bgr = np.ascontiguousarray(rgb_image[..., ::-1])
    out = frame_filter(bgr)
    assert out.shape == bgr.shape and out.dtype == np.uint8
    expected = frame_filter.engine.restore_array(rgb_image)[..., ::-1]
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out.astype(int) - bgr).mean() > 2  # the model really ran


def test_bgra_alpha_is_untouched(frame_filter, rgb_image):
    alpha = np.random.default_rng(1).integers(0, 256, rgb_image.shape[:2], dtype=np.uint8)
    bgr = rgb_image[..., ::-1]
    out = frame_filter(np.dstack([bgr, alpha]))
    assert out.shape == (*rgb_image.shape[:2], 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 3], alpha)
    np.testing.assert_array_equal(out[..., :3], frame_filter(np.ascontiguousarray(bgr)))


def test_gray_frame(frame_filter, rgb_image):
    gray = rgb_image[..., 1]
    out = frame_filter.filter(gray)
    assert out.shape == gray.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, frame_filter.engine.restore_array(gray))
    assert np.abs(out.astype(int) - gray).mean() > 2


@pytest.mark.parametrize("shape", [(8, 8, 3), (9, 13, 3), (17, 10)])
def test_any_size_from_8x8(frame_filter, shape):
    frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert frame_filter(frame).shape == shape


def test_filter_batch_groups_same_size_frames(frame_filter):
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8)
              for shape in [(24, 32, 3), (24, 32), (24, 32, 3), (16, 40, 3)]]
    engine = frame_filter.engine
    backend = engine.backend
    engine.backend = spy = mock.Mock(wraps=backend)
    out = frame_filter.filter_batch(frames)
    calls = sorted(tuple(c.args[0].shape) for c in spy.call_args_list)
    # the gray frame runs alone (as three equal channels: the model is RGB), the two BGR
    # 24x32 frames together
    assert calls == [(1, 3, 16, 40), (1, 3, 24, 32), (2, 3, 24, 32)]
    engine.backend = backend
    assert [o.shape for o in out] == [f.shape for f in frames]
    for got, frame in zip(out, frames):  # batching may move a float by a rounding step
        assert np.abs(got.astype(int) - frame_filter(frame)).max() <= 1
    assert frame_filter.filter_batch([]) == []


def test_tiled_equals_whole_frame():
    model = small_model()
    tiled, whole = FrameFilter(model, tile=48, gate=None), FrameFilter(model, tile=None, gate=None)
    height, width = 100, 130
    assert tiled.engine.tile + 2 * tiled.engine.margin < min(height, width)  # really tiles
    assert tiled.engine.margin >= model.radius(tiled.engine.iterations)
    frame = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    x = array_to_tensor(frame[..., ::-1])
    restored = whole.engine(x)
    assert (restored - x).std() > 5 / 255  # a residual worth comparing
    torch.testing.assert_close(tiled.engine(x), restored, atol=1e-4, rtol=0)
    assert np.abs(tiled(frame).astype(int) - whole(frame)).max() <= 1


@pytest.mark.parametrize("bad, error, match", [
    (np.zeros((16, 16, 3), np.float32), TypeError, "uint8"),
    ([[0] * 16] * 16, TypeError, "numpy array"),
    (np.zeros((16, 16, 2), np.uint8), ValueError, "shape"),
    (np.zeros((2, 16, 16, 3), np.uint8), ValueError, "shape"),
])
def test_bad_frames_raise_clear_errors(frame_filter, bad, error, match):
    with pytest.raises(error, match=match):
        frame_filter(bad)
