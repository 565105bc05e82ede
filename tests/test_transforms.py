"""The torchvision v2 ``Deblock`` transform: types, dtypes, pass-through, colour, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from dcsc_preproc import DCSC, DEFAULT_MODEL, Deblock, available_models, rgb_to_ycbcr, save_model


def small_model(in_channels: int = 3) -> DCSC:
    """A cheap random-init model whose residual is far from zero (tens of grey levels)."""
    torch.manual_seed(0)
    return DCSC(in_channels=in_channels, dilated_features=4, features=8, iterations=2)


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


class ListDataset(Dataset):
    def __init__(self, images: list[torch.Tensor], transform: Deblock) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.images[i])


def test_uint8_is_rounded_float_result_and_image_changes(rgb_image):
    deblock = Deblock(small_model(), gate=None)
    x = chw(rgb_image)
    out8, outf = deblock(x), deblock(x.float() / 255)
    assert type(out8) is torch.Tensor and out8.dtype == torch.uint8 and out8.shape == x.shape
    assert outf.dtype == torch.float32 and outf.shape == x.shape
    assert torch.equal(out8, (outf * 255).round().to(torch.uint8))
    assert torch.equal(out8, chw(deblock.engine.restore_array(rgb_image)))
    assert (out8.float() - x.float()).abs().mean() > 2  # the model really ran


def test_batches_and_videos_keep_type_and_match_single_images():
    deblock = Deblock(small_model(), gate=None)
    batch = torch.rand(2, 3, 20, 28)
    out = deblock(batch)
    assert type(out) is torch.Tensor and out.shape == batch.shape
    torch.testing.assert_close(out[1], deblock(batch[1]), atol=1e-5, rtol=0)

    video = tv_tensors.Video(torch.randint(0, 256, (3, 3, 20, 28), dtype=torch.uint8))
    out = deblock(video)
    assert isinstance(out, tv_tensors.Video) and out.dtype == torch.uint8
    assert out.shape == video.shape and not torch.equal(out, video)
    assert (out[2].int() - deblock(video[2].as_subclass(torch.Tensor)).int()).abs().max() <= 1


def test_pil_images_keep_mode_and_size(rgb_image):
    deblock = Deblock(small_model(), gate=None)
    for image in (Image.fromarray(rgb_image), Image.fromarray(rgb_image[..., 0])):
        out = deblock(image)
        assert isinstance(out, Image.Image) and out.mode == image.mode and out.size == image.size
        expected = deblock(F.pil_to_tensor(image)).permute(1, 2, 0).squeeze(-1).numpy()
        np.testing.assert_array_equal(np.asarray(out), expected)
        assert not np.array_equal(np.asarray(out), np.asarray(image))


def test_detection_sample_in_compose_passes_targets_through():
    image = tv_tensors.Image(torch.randint(0, 256, (3, 24, 32), dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes([[1, 2, 10, 12]], format="XYXY", canvas_size=(24, 32))
    masks = tv_tensors.Mask(torch.ones(1, 24, 32, dtype=torch.uint8))
    labels = torch.tensor([3])
    sample = {"image": image, "boxes": boxes, "masks": masks, "labels": labels, "id": "a"}
    pipeline = v2.Compose([Deblock(small_model(), gate=None), v2.ToDtype(torch.float32, scale=True)])
    out = pipeline(sample)
    assert out["boxes"] is boxes and out["masks"] is masks and out["labels"] is labels
    assert out["id"] == "a"
    assert isinstance(out["image"], tv_tensors.Image) and out["image"].dtype == torch.float32
    assert (out["image"] * 255 - image.float()).abs().mean() > 2


def test_y_model_on_rgb_keeps_chroma(rgb_image):
    deblock = Deblock(small_model(in_channels=1), gate=None)
    x = chw(rgb_image // 2 + 64)  # mid-range, so no RGB clamping can move the chroma
    out = deblock(x)
    before, after = rgb_to_ycbcr(x.float() / 255), rgb_to_ycbcr(out.float() / 255)
    assert (after[1:] - before[1:]).abs().max() < 1 / 255  # uint8 rounding only
    assert (after[0] - before[0]).abs().mean() > 2 / 255


@pytest.mark.parametrize("in_channels", [1, 3])
def test_gray_input(in_channels):
    gray = torch.rand(1, 20, 28)
    out = Deblock(small_model(in_channels), gate=None)(gray)
    assert out.shape == gray.shape and (out - gray).abs().mean() > 2 / 255


def test_output_carries_no_autograd_graph():
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = Deblock(small_model(), gate=None)(x)
    assert not out.requires_grad and out.grad_fn is None
    weight = torch.ones((), requires_grad=True)
    (out * weight).sum().backward()  # usable in a later training step
    assert weight.grad is not None


@pytest.mark.parametrize("bad, error, match", [
    (torch.rand(5, 16, 16), ValueError, "C in 1-4"),
    (torch.rand(16, 16), ValueError, r"\(\.\.\., C, H, W\)"),
    (torch.zeros(3, 16, 16, dtype=torch.int16), TypeError, "dtype torch.int16"),
    (Image.new("CMYK", (16, 16)), ValueError, "mode 'CMYK'"),
])
def test_bad_inputs_raise_clear_errors(bad, error, match):
    with pytest.raises(error, match=match):
        Deblock(small_model(), gate=None)(bad)


def test_pickle_round_trip_leaves_engine_behind():
    deblock = Deblock(small_model(), gate=None)
    x = torch.randint(0, 256, (3, 16, 24), dtype=torch.uint8)
    expected = deblock(x)
    assert deblock._engine is not None
    clone = pickle.loads(pickle.dumps(deblock))
    assert clone._engine is None
    assert torch.equal(clone(x), expected)


def test_dataloader_worker(tmp_path):
    deblock = Deblock(save_model(small_model(), tmp_path / "small.safetensors"), gate=None)
    images = [torch.randint(0, 256, (3, 16, 24), dtype=torch.uint8) for _ in range(2)]
    loader = DataLoader(ListDataset(images, deblock), batch_size=None, num_workers=1)
    out = list(loader)
    assert deblock._engine is None  # built in the worker only
    for got, image in zip(out, images):
        assert torch.equal(got, deblock(image))


def test_none_means_default_model():
    deblock = Deblock()
    assert deblock.model == DEFAULT_MODEL
    if DEFAULT_MODEL in available_models():
        assert deblock(torch.rand(3, 16, 16)).shape == (3, 16, 16)
    else:
        with pytest.raises(FileNotFoundError, match=DEFAULT_MODEL):
            deblock(torch.rand(3, 16, 16))
