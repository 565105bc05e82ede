"""DCSC network and weights I/O."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dcsc_preproc import (DCSC, MODELS, DCSCConfig, Engine, available_models, load_model,
                          model_name, save_model)
from dcsc_preproc.zoo import read_metadata, split_iterations


def test_paper_parameter_count():
    assert sum(p.numel() for p in DCSC().parameters()) == 93_825


def test_authors_variants_load(authors_npz, shared):
    iccv = load_model(authors_npz)
    assert sum(p.numel() for p in iccv.parameters()) == 93_697
    assert iccv.G.bias is None and iccv.S.bias is None
    new = load_model(shared / "peers/dcsc_official/updated_2020/dcsc_updated_2020.npz")
    assert sum(p.numel() for p in new.parameters()) == 315_937
    assert (new.config.dilated_features, new.config.features) == (48, 128)


def test_iterations_override_and_codes():
    torch.manual_seed(0)
    model = DCSC(iterations=5)
    x = torch.rand(1, 1, 24, 24)
    out, codes = model(x, return_codes=True)
    assert len(codes) == 6 and all(c.shape == (1, 64, 24, 24) for c in codes)
    assert all((c >= 0).all() for c in codes)  # ReLU shrinkage: codes are non-negative
    assert torch.equal(out, model(x))
    assert not torch.equal(model(x, iterations=1), out)
    # U_r follows the recursion U = ReLU(G + S*U) with the shared S
    g = model.G(torch.cat([conv(x) for conv in model.dilated], dim=1))
    assert torch.allclose(codes[3], torch.relu(g + model.S(codes[2])), atol=1e-6)
    # zero iterations: J + recon(ReLU(G))
    assert torch.allclose(model(x, iterations=0), x + model.recon(torch.relu(g)), atol=1e-6)


def test_no_clamping_inside_model():
    model = DCSC(iterations=1)
    torch.nn.init.constant_(model.recon.bias, 2.0)
    assert model(torch.rand(1, 1, 16, 16)).min() > 1.0


def test_unshuffle_variant_shapes():
    model = DCSC(in_channels=3, unshuffle=4, dilated_features=8, features=16, iterations=2)
    assert model(torch.rand(2, 3, 32, 48)).shape == (2, 3, 32, 48)
    assert model.multiple == 4


def test_save_load_roundtrip(tmp_path):
    model = DCSC(in_channels=3, dilated_features=8, features=16, iterations=3, unshuffle=2)
    path = save_model(model, tmp_path / "m.safetensors", info={"step": 7})
    loaded = load_model(path)
    assert loaded.config == model.config
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert read_metadata(path)["info"] == {"step": 7}
    with pytest.raises(FileExistsError, match="exists"):
        save_model(model, path)
    save_model(model, path, overwrite=True)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown weights 'nope'"):
        load_model("nope")
    bad = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, str(bad))
    with pytest.raises(ValueError, match="dcsc_config"):
        load_model(bad)
    other = tmp_path / "weights.pt"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported weights file"):
        load_model(other)
    npz = tmp_path / "other.npz"
    np.savez(npz, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a DCSC TensorFlow"):
        load_model(npz)


def test_config_json_roundtrip():
    cfg = DCSCConfig(dilations=(1, 1, 1), unshuffle=4)
    assert DCSCConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_iterations_suffix_on_safetensors(tmp_path):
    torch.manual_seed(0)
    model = DCSC(dilated_features=4, features=8, iterations=5)
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(f"{path}@2")
    assert loaded.config == replace(model.config, iterations=2)
    assert load_model(path).config.iterations == 5
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x, iterations=2))
    assert Engine(f"{path}@2", device="cpu").iterations == 2  # the Engine uses the config's R


def test_iterations_suffix_on_shipped_name_and_npz(authors_npz):
    assert load_model(f"{authors_npz}@10").config.iterations == 10
    name = available_models()[0]
    assert load_model(f"{name}@3").config == replace(MODELS[name], iterations=3)
    assert MODELS[name].iterations != 3  # the registry's frozen config is untouched


def test_file_name_containing_at_is_taken_whole(tmp_path):
    path = save_model(DCSC(dilated_features=4, features=8, iterations=2),
                      tmp_path / "a@7.safetensors")
    assert split_iterations(path) == (str(path), None)
    assert load_model(path).config.iterations == 2
    assert load_model(f"{path}@3").config.iterations == 3


@pytest.mark.parametrize("source", ["dcsc-y@x", "dcsc-y@0", "dcsc-y@", "dcsc-y@-1",
                                    "dcsc-y@1.5", "dcsc-y@05", "nope.safetensors@ 3"])
def test_bad_iterations_suffix(source):
    with pytest.raises(ValueError, match="must be a positive integer"):
        load_model(source)


def test_model_name():
    assert model_name("dcsc-y") == "dcsc-y"
    assert model_name("dcsc-y@10") == "dcsc-y@10"
    assert model_name("peers/dcsc_iccv2019_original.npz") == "dcsc_iccv2019_original"
    assert model_name("peers/dcsc_iccv2019_original.npz@10") == "dcsc_iccv2019_original@10"
    assert model_name(Path("runs/x/tiny.safetensors")) == "tiny"
    assert model_name("nlm") == "nlm"
