"""Pruning: the channels kept are the ones that carry the output; the CLI writes weights."""

from __future__ import annotations

import pytest
import torch

from dcsc_preproc import DCSC, load_model
from dcsc_preproc.cli import main
from dcsc_preproc.prune import channel_importance, prune
from dcsc_preproc.zoo import read_metadata


def _model_with_idle_channels() -> DCSC:
    """An RGB model whose maps 1 (of each branch) and codes 0, 3 and 6 feed nothing."""
    torch.manual_seed(0)
    model = DCSC(in_channels=3, unshuffle=2, dilated_features=4, features=8, iterations=3).eval()
    with torch.no_grad():
        for branch in range(3):
            model.G.weight[:, 4 * branch + 1].zero_()
        for code in (0, 3, 6):
            model.S.weight[:, code].zero_()
            model.recon.weight[:, code].zero_()
    return model


def test_idle_channels_score_zero_and_cutting_them_keeps_the_output():
    model = _model_with_idle_channels()
    images = [torch.rand(1, 3, 24, 32), torch.rand(1, 3, 16, 16)]
    maps, codes = channel_importance(model, images)
    assert maps.shape == (12,) and codes.shape == (8,)
    assert set(torch.nonzero(maps == 0).flatten().tolist()) == {1, 5, 9}
    assert set(torch.nonzero(codes == 0).flatten().tolist()) >= {0, 3, 6}
    small = prune(model, images, dilated_features=3, features=5)
    assert (small.config.dilated_features, small.config.features, small.config.iterations) == (3, 5, 3)
    with torch.no_grad():
        for x in images + [torch.rand(1, 3, 20, 12)]:  # an image it was not measured on
            torch.testing.assert_close(small(x), model(x), atol=1e-5, rtol=1e-5)
    # one more cut reaches a channel that matters
    smaller = prune(model, images, dilated_features=2, features=5)
    with torch.no_grad():
        assert (smaller(images[0]) - model(images[0])).abs().max() > 1e-4


def test_prune_sets_iterations_and_refuses_growing():
    model = _model_with_idle_channels()
    images = [torch.rand(1, 3, 16, 16)]
    assert prune(model, images, 4, 8, iterations=1).config.iterations == 1
    with pytest.raises(ValueError, match="1 to 8 codes, got 4 and 9"):
        prune(model, images, 4, 9)
    with pytest.raises(ValueError, match="at least one image"):
        prune(model, [], 4, 8)


def test_cli_prunes_a_shipped_model(tmp_path, shared):
    out = tmp_path / "small.safetensors"
    args = ["prune", "--model", "dcsc-lite", "--dilated-features", "8", "--features", "16",
            "--iterations", "2", "--patches", "4", "--data", str(shared / "data"), "--out", str(out)]
    main(args)
    small = load_model(out)
    assert (small.config.dilated_features, small.config.features, small.config.iterations) == (8, 16, 2)
    assert small.config.unshuffle == load_model("dcsc-lite").config.unshuffle
    assert read_metadata(out)["info"]["pruned_from"] == "dcsc-lite"
    with pytest.raises(SystemExit, match="refusing to overwrite"):
        main(args)
