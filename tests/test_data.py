"""dcsc_preproc.data.PatchSampler: the downscale and camera options of the resize path's
training pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcsc_preproc.data import PatchSampler, camera_pair
from dcsc_preproc.jpeg import jpeg_roundtrip


@pytest.fixture
def ramp(tmp_path: Path) -> list[Path]:
    """A 256x384 image whose value rises by one grey level per column (0-255, then 64-191:
    one jump, which the median slope below ignores)."""
    image = np.tile(np.arange(384) % 256, (256, 1)).astype(np.uint8)
    image[:, 256:] = np.arange(128) + 64
    path = tmp_path / "ramp.png"
    Image.fromarray(np.stack([image] * 3, -1)).save(path)
    return [path]


def test_downscale_one_draws_the_sequence_of_a_run_without_it(ramp: list[Path]) -> None:
    plain, same = PatchSampler(ramp, (90,), "rgb"), PatchSampler(ramp, (90,), "rgb", downscale=1)
    for a, b in zip(plain.sample(np.random.default_rng(3), 4, 64),
                    same.sample(np.random.default_rng(3), 4, 64)):
        assert a.equal(b)


def test_downscale_shrinks_each_pair_by_its_own_factor(ramp: list[Path]) -> None:
    """A shrunk ramp is steeper: the clean patch's slope is the factor, between 1 and 3, and
    differs between pairs; about half the pairs are not shrunk; JPEG and clean patches are
    shrunk alike."""
    sampler = PatchSampler(ramp, (90,), "rgb", downscale=3)
    jpeg, clean = sampler.sample(np.random.default_rng(0), 32, 64, augment=False)
    assert jpeg.shape == clean.shape == (32, 3, 64, 64)
    slopes = (clean[:, 0, 32, 8:40].diff().median(dim=1).values * 255).numpy()
    assert np.all((slopes > 0.9) & (slopes < 3.1))
    shrunk = slopes[slopes > 1.05]
    assert 8 <= len(shrunk) <= 24 and shrunk.max() - shrunk.min() > 0.5
    assert (jpeg - clean).abs().mean() < 0.02


def test_downscale_below_one_is_an_error(ramp: list[Path]) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        PatchSampler(ramp, (90,), "rgb", downscale=0.5)


def test_camera_one_draws_the_sequence_of_a_run_without_it(ramp: list[Path]) -> None:
    plain, same = PatchSampler(ramp, (90,), "rgb"), PatchSampler(ramp, (90,), "rgb", camera=1)
    for a, b in zip(plain.sample(np.random.default_rng(3), 4, 64),
                    same.sample(np.random.default_rng(3), 4, 64)):
        assert a.equal(b)


def test_camera_pairs_keep_the_patch_scale(ramp: list[Path]) -> None:
    """Camera pairs are enlarged and shrunk back, so the ramp keeps its slope of one (where
    ``downscale`` makes it steeper) and the target stays the clean patch."""
    sampler = PatchSampler(ramp, (90,), "rgb", camera=3)
    jpeg, clean = sampler.sample(np.random.default_rng(0), 32, 64, augment=False)
    assert jpeg.shape == clean.shape == (32, 3, 64, 64)
    slopes = (clean[:, 0, 32, 8:40].diff().median(dim=1).values * 255).numpy()
    assert np.all((slopes > 0.9) & (slopes < 1.1))
    assert (jpeg - clean).abs().mean() < 0.02


def test_camera_pair_compresses_at_the_enlarged_size() -> None:
    """Enlarged 8x, each 8x8 JPEG block holds one patch pixel's smooth neighbourhood, so the
    q10 error left after the shrink is far below that of a q10 JPEG of the patch itself."""
    noise = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    jpeg, clean = camera_pair(noise, 10, 8)
    assert jpeg.shape == clean.shape == noise.shape
    camera_error = np.abs(jpeg.astype(float) - clean).mean()
    direct_error = np.abs(jpeg_roundtrip(noise, 10).astype(float) - noise).mean()
    assert camera_error < direct_error / 3


def test_downscale_and_camera_together_is_an_error(ramp: list[Path]) -> None:
    with pytest.raises(ValueError, match="give one"):
        PatchSampler(ramp, (90,), "rgb", downscale=2, camera=2)
