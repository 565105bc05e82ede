"""Detector-feature loss: gradients reach the de-blocker, never the detector; multi-folder data."""

from __future__ import annotations

import csv

import pytest
import torch

from dcsc_preproc.cli import main
from dcsc_preproc.detector_loss import DetectorFeatureLoss, load_frozen_detector
from dcsc_preproc.model import DCSC


@pytest.fixture(scope="module")
def frozen(detector):
    return load_frozen_detector(detector)


def test_gradients_reach_deblocker_not_detector(frozen):
    loss_fn = DetectorFeatureLoss(frozen, distill=True)
    assert loss_fn.layers == list(frozen.model[-1].f)  # P3/P4/P5: the Detect head's inputs
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    model = DCSC(in_channels=3, iterations=1, features=8, dilated_features=4, unshuffle=4)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    clean = torch.rand(2, 3, 160, 160)
    jpeg = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    model.train()
    loss_fn.train()  # asking for train mode must not unfreeze BatchNorm
    terms = loss_fn(model(jpeg), clean)
    assert set(terms) == {"feature", "distill"}
    assert terms["feature"] > 0 and terms["distill"] > 0
    (terms["feature"] + terms["distill"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert all(p.grad is None and not p.requires_grad for p in frozen.parameters())
    optimiser.step()
    after = frozen.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats included
    assert not frozen.training


def test_zero_on_identical_images_and_per_channel_scale(frozen):
    loss_fn = DetectorFeatureLoss(frozen)
    x = torch.rand(2, 3, 160, 160)
    assert float(loss_fn(x, x)["feature"]) == 0.0
    # the normalisation divides by the clean batch's spread, so it does not depend on which
    # detector layer happens to have large activations: a small perturbation gives a small loss
    small = float(loss_fn((x + 0.01 * torch.randn_like(x)).clamp(0, 1), x)["feature"])
    large = float(loss_fn((x + 0.2 * torch.randn_like(x)).clamp(0, 1), x)["feature"])
    assert 0 < small < large


def test_patch_size_must_fit_the_detector_stride(frozen):
    with pytest.raises(ValueError, match="multiples of 32"):
        DetectorFeatureLoss(frozen)(torch.rand(1, 3, 80, 80), torch.rand(1, 3, 80, 80))


def test_missing_detector_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="detector weights not found"):
        load_frozen_detector(tmp_path / "yolov8n.pt")


def test_training_with_detector_loss_and_mixed_folders(tmp_path, shared, detector):
    out = tmp_path / "run"
    main(["train", "--out", str(out), "--data", str(shared / "data"), "--channels", "rgb",
          "--unshuffle", "4", "--features", "8", "--dilated-features", "4", "--iterations", "1",
          "--data-dirs", "bsds500/train", "coco_train/images", "--train-images", "3",
          "--detector-loss", str(detector), "--distill-weight", "10", "--patch", "160",
          "--batch", "1", "--steps", "2", "--val-images", "1", "--val-every", "2",
          "--checkpoint-every", "2", "--precision", "fp32"])
    with open(out / "log.csv") as f:
        row = next(csv.DictReader(f))
    assert {"pixel", "feature", "distill"} <= set(row)
    expected = float(row["pixel"]) + float(row["feature"]) + 10 * float(row["distill"])
    assert float(row["loss"]) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    from dcsc_preproc.train import model_card

    card = model_card(out, "dcsc-det")
    assert "`bsds500/train` (200 images) + `coco_train/images` (432 images)" in card
    assert "detector-feature loss" in card and "distillation" in card


def test_detector_loss_needs_large_patches(tmp_path, shared, detector):
    with pytest.raises(ValueError, match="at least 160"):
        main(["train", "--out", str(tmp_path / "run"), "--data", str(shared / "data"),
              "--channels", "rgb", "--detector-loss", str(detector), "--patch", "80",
              "--steps", "1", "--train-images", "1"])


def test_mixed_folders_sample_from_each(shared):
    import numpy as np

    from dcsc_preproc.data import PatchSampler, list_images

    folders = [shared / "data" / "bsds500" / "train", shared / "data" / "coco_train" / "images"]
    files = [f for folder in folders for f in list_images(folder)[:2]]
    sampler = PatchSampler(files, (10,), "rgb")
    assert len(sampler.clean) == 4
    sizes = {img.shape for img in sampler.clean}
    assert len(sizes) > 1  # BSDS500 and COCO images differ in size: both folders were read
    inputs, targets = sampler.sample(np.random.default_rng(0), 4, 64)
    assert inputs.shape == targets.shape == (4, 3, 64, 64)
