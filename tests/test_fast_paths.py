"""Fast inference paths: precision resolution, parity with plain fp32 PyTorch, ONNX export."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from dcsc_preproc import (DCSC, Engine, array_to_tensor, jpeg_roundtrip, load_model, save_model,
                          tensor_to_array)
from dcsc_preproc.cli import main
from dcsc_preproc.engine import resolve_precision
from dcsc_preproc.export import INPUT_NAME, export_onnx, onnx_session

# bf16 keeps 8 significant bits (rounding error up to 2^-9 relative) in every conv output and
# every LISTA sum; the residual H (up to ~0.3 here) collects a few 1e-3 of error over R steps,
# while the input is added back in fp32. 2/255 bounds that to 2 grey levels of the uint8
# output; the mean bound says nearly all pixels round to the same uint8 value. (Trained
# dcsc-y weights, R=40: max 0.84/255, mean 0.13/255 on a q10 JPEG.)
MAX_ERR, MEAN_ERR = 2 / 255, 0.25 / 255
SMALL = {"plain": dict(in_channels=3, dilated_features=8, features=16, iterations=4),
         "unshuffled": dict(in_channels=3, unshuffle=4, dilated_features=8, features=16,
                            iterations=4)}


def small_model(name: str) -> DCSC:
    """A seeded random-init model; its residual is large enough to matter (checked below)."""
    torch.manual_seed(0)
    return DCSC(**SMALL[name]).eval()


def fp32_reference(model: DCSC, x: torch.Tensor, tile: int | None) -> torch.Tensor:
    return Engine(model, device="cpu", tile=tile, precision="fp32", channels_last=False)(x)


def test_auto_precision(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation: True)
    assert resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation: False)
    assert resolve_precision("auto", cuda) == "fp16"
    assert resolve_precision("fp16", cpu) == "fp16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8", cpu)


def test_engine_defaults_to_auto():
    engine = Engine(small_model("plain"), device="cpu")
    assert engine.precision == resolve_precision("auto", torch.device("cpu"))
    assert engine.channels_last
    assert engine.model.S.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("precision,channels_last",
                         [("fp32", True), ("bf16", False), ("bf16", True), ("fp16", True)])
def test_path_matches_fp32(name, precision, channels_last, rgb_image):
    model = small_model(name)
    x = array_to_tensor(rgb_image)
    ref = fp32_reference(model, x, tile=48)
    assert (ref - x).abs().mean() > 10 / 255  # the residual matters
    out = Engine(model, device="cpu", tile=48, precision=precision,
                 channels_last=channels_last)(x)
    assert out.shape == x.shape
    err = (out - ref).abs()
    if precision == "fp32":
        assert err.max() < 1e-5
    else:
        assert err.max() < MAX_ERR and err.mean() < MEAN_ERR


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_path_matches_cpu_fp32(precision, rgb_image):
    """GPU paths (run where a GPU is lent): same output as plain fp32 PyTorch on the CPU."""
    model = small_model("unshuffled")
    x = array_to_tensor(rgb_image)
    ref = fp32_reference(model, x, tile=48)
    out = Engine(small_model("unshuffled"), device="cuda", tile=48, precision=precision)(x)
    assert out.device.type == "cpu" and out.shape == x.shape  # back where the input was
    err = (out - ref).abs()
    assert err.max() < MAX_ERR and err.mean() < MEAN_ERR


def test_bf16_with_trained_weights(authors_npz, rgb_image):
    """The paper model (R=40, real weights) on a q10 JPEG: bf16 error stays sub-grey-level."""
    model = load_model(authors_npz)
    x = array_to_tensor(jpeg_roundtrip(rgb_image[:40, :48], 10))
    ref = fp32_reference(model, x, tile=None)
    err = (Engine(model, device="cpu", tile=None, precision="bf16")(x) - ref).abs()
    assert err.max() < MAX_ERR and err.mean() < MEAN_ERR


@pytest.mark.parametrize("kwargs", [dict(dilated_features=8, features=16, iterations=5),
                                    SMALL["unshuffled"]])
def test_onnx_matches_pytorch(kwargs, tmp_path):
    torch.manual_seed(0)
    model = DCSC(**kwargs).eval()
    session = onnx_session(export_onnx(model, tmp_path / "model.onnx"))
    for shape in [(1, model.config.in_channels, 48, 64), (2, model.config.in_channels, 72, 40)]:
        x = torch.rand(shape)
        with torch.inference_mode():
            ref = model(x).numpy()
        out = session.run(None, {INPUT_NAME: x.numpy()})[0]
        assert out.shape == ref.shape and np.abs(out - ref).max() < 1e-4


def test_onnx_iterations_and_overwrite(tmp_path):
    model = small_model("plain")
    path = export_onnx(model, tmp_path / "r1.onnx", iterations=1)
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        ref = model(x, iterations=1).numpy()
    assert np.abs(onnx_session(path).run(None, {INPUT_NAME: x.numpy()})[0] - ref).max() < 1e-4
    with pytest.raises(FileExistsError):
        export_onnx(model, path)


def test_export_cli(tmp_path, capsys):
    weights = save_model(small_model("unshuffled"), tmp_path / "tiny.safetensors")
    onnx_path = tmp_path / "out" / "tiny.onnx"
    main(["export", "--model", str(weights), "--onnx", str(onnx_path)])
    assert onnx_path.stat().st_size > 0 and str(onnx_path) in capsys.readouterr().out
    before = onnx_path.read_bytes()
    with pytest.raises(SystemExit, match="--overwrite"):
        main(["export", "--model", f"{weights}@1", "--onnx", str(onnx_path)])
    assert onnx_path.read_bytes() == before
    main(["export", "--model", f"{weights}@1", "--onnx", str(onnx_path), "--overwrite"])
    assert onnx_path.read_bytes() != before


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile (inductor) needs a C++ compiler on CPU")
def test_compiled_model_matches_eager():
    """The benchmark's compile path: the Engine running a torch.compile'd model (fp32 here)."""
    model = small_model("unshuffled")
    x = array_to_tensor(jpeg_roundtrip(np.random.default_rng(0).integers(
        0, 256, (48, 64, 3), dtype=np.uint8), 10))
    engine = Engine(model, device="cpu", tile=None, precision="fp32")
    engine.backend.model = torch.compile(engine.backend.model)
    out = engine(x)
    ref = fp32_reference(model, x, tile=None)
    assert (ref - x).abs().max() > 10 / 255  # the model changes the image
    assert torch.allclose(out, ref, atol=1e-5)


def test_uint8_path_one_conversion_each_way(rgb_image):
    """restore_array: BGR handled on the device, input never written, any strides accepted,
    and the same bytes as the float API rounded by hand."""
    engine = Engine(small_model("unshuffled"), device="cpu", precision="fp32")
    frame = np.ascontiguousarray(rgb_image[..., ::-1])
    before = frame.copy()
    bgr = engine.restore_array(frame, bgr=True)
    assert np.array_equal(frame, before)
    rgb = engine.restore_array(rgb_image)
    assert np.array_equal(bgr, rgb[..., ::-1]) and bgr.flags.c_contiguous
    by_hand = (engine(array_to_tensor(rgb_image))[0].permute(1, 2, 0) * 255).round().byte()
    assert np.array_equal(rgb, by_hand.numpy())
    assert np.array_equal(engine.restore_array(frame[..., ::-1]), rgb)  # negative strides
    frame.setflags(write=False)
    assert np.array_equal(engine.restore_array(frame, bgr=True), bgr)  # read-only input
    x = array_to_tensor(rgb_image)
    assert x.is_contiguous(memory_format=torch.channels_last)  # what the networks run in
    kept = x.clone()
    tensor_to_array(x)
    assert torch.equal(x, kept)  # the public conversion leaves its input alone


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_uint8_path_matches_cpu(rgb_image):
    """The device-side uint8 path (pinned buffers, flips and rounding on the GPU)."""
    cpu = Engine(small_model("unshuffled"), device="cpu", precision="fp32")
    cuda = Engine(small_model("unshuffled"), device="cuda", precision="fp32")
    a, b = cpu.restore_array(rgb_image, bgr=True), cuda.restore_array(rgb_image, bgr=True)
    assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 1
