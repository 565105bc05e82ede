"""Weight initialisations of the paper net (issue 16): PyTorch's default against TF's Glorot."""

from __future__ import annotations

import math

import pytest
import torch

from dcsc_preproc import DCSC
from dcsc_preproc.model import init_weights_


def test_glorot_bounds_and_zero_biases() -> None:
    torch.manual_seed(0)
    model = init_weights_(DCSC(iterations=2), "glorot")
    for conv in (model.dilated[0], model.G, model.S, model.recon):
        k = conv.kernel_size[0] * conv.kernel_size[1]
        bound = math.sqrt(6 / (k * (conv.in_channels + conv.out_channels)))
        assert conv.weight.abs().max() <= bound
        assert conv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.2)
        assert conv.bias.eq(0).all()


def test_torch_scheme_is_the_default_init() -> None:
    torch.manual_seed(1)
    default = DCSC(iterations=2)
    torch.manual_seed(1)
    again = init_weights_(init_weights_(DCSC(iterations=2), "glorot"), "torch")
    s_bound = 1 / math.sqrt(64 * 9)
    assert again.S.weight.abs().max() <= s_bound and again.S.bias.abs().max() <= s_bound
    assert again.S.weight.std().item() == pytest.approx(default.S.weight.std().item(), rel=0.05)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown init 'he'"):
        init_weights_(DCSC(iterations=2), "he")


def test_train_starts_from_glorot_without_biases(tmp_path, shared) -> None:
    from dcsc_preproc import load_model
    from dcsc_preproc.cli import main

    out = tmp_path / "run"
    main(["train", "--out", str(out), "--data", str(shared / "data"), "--steps", "0",
          "--features", "8", "--dilated-features", "4", "--iterations", "2", "--patch", "32",
          "--train-images", "2", "--val-images", "1", "--precision", "fp32",
          "--weight-init", "glorot", "--no-bias"])
    model = load_model(out / "model.safetensors")
    assert model.G.bias is None and model.S.bias is None and not model.config.bias
    assert model.dilated[0].bias.eq(0).all() and model.recon.bias.eq(0).all()
    bound = math.sqrt(6 / (9 * (1 + 4)))  # dilated: 1 -> 4 maps
    assert model.dilated[0].weight.abs().max() <= bound
