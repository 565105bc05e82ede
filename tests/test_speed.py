"""eval.speed: analytic FLOPs and an end-to-end run on a tiny model (no speed targets)."""

from __future__ import annotations

import json

import pytest
import torch

from dcsc_preproc import DCSC, MODELS, DCSCConfig, available_models, save_model
from eval.speed import flops_per_pixel, main

KEYS = {"profile", "iterations", "path", "backend", "tile", "at", "scale", "device", "width",
        "height", "jpeg", "ms", "mp_per_s", "detector", "detector_ms", "ratio", "model_share",
        "peak_fraction"}


def test_flops_per_pixel_paper_config():
    dilated = 3 * (3 * 3 * 1 * 32)     # three dilated 3x3 convs, 1 -> 32
    g = 3 * 3 * 96 * 64                # G: 96 -> 64
    s = 40 * (3 * 3 * 64 * 64)         # S applied R = 40 times: 64 -> 64
    recon = 3 * 3 * 64 * 1             # reconstruction: 64 -> 1
    assert flops_per_pixel(DCSCConfig()) == 2 * (dilated + g + s + recon) == 3_062_592
    assert flops_per_pixel(DCSCConfig(iterations=0)) == 2 * (dilated + g + recon)


def test_flops_per_pixel_fast_config():
    c = 3 * 4 * 4                      # 4x4-unshuffled RGB: 48 channels per position
    macs = 3 * 9 * c * 24 + 9 * 72 * 48 + 6 * 9 * 48 * 48 + 9 * 48 * c
    assert flops_per_pixel(MODELS["dcsc-fast"]) == 2 * macs / 16


def test_speed_end_to_end(tmp_path, detector, capsys, monkeypatch):
    from dcsc_preproc import zoo

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "no-weights")  # nothing installed
    torch.manual_seed(0)
    weights = save_model(DCSC(in_channels=3, unshuffle=4, dilated_features=8, features=16,
                              iterations=2), tmp_path / "tiny.safetensors")
    out = tmp_path / "speed.json"
    # With no weights installed, "dcsc-rgb@1" is a random-init stand-in with R = 1.
    assert "dcsc-rgb" not in available_models()
    main(["--profiles", str(weights), f"{weights}@5", "dcsc-rgb@1",
          "--paths", "fp32", "bf16_channels_last", "onnxruntime", "--sizes", "64x48",
          "--tiles", "32", "0", "--at", "source", "--repeats", "1", "--warmup", "0",
          "--detector", str(detector), "--jpeg", "30",
          "--json", str(out), "--plot", str(tmp_path / "speed.png"), "--device", "cpu"])
    records = json.loads(out.read_text())
    assert all(set(r) == KEYS for r in records)
    assert [(r["profile"], r["iterations"], r["path"], r["backend"], r["tile"])
            for r in records] == [
        (name, r, p, b, t) for name, r in (("tiny", 2), ("tiny@5", 5), ("dcsc-rgb@1", 1))
        for p, b in (("fp32", "torch"), ("bf16_channels_last", "torch"),
                     ("onnxruntime", "onnxruntime")) for t in (32, 0)]
    assert all((r["width"], r["height"], r["jpeg"]) == (64, 48, 30) for r in records)
    assert all(r["detector"] == detector.name for r in records)
    assert all(r["ms"] > 0 and r["detector_ms"] > 0 and r["peak_fraction"] > 0 for r in records)
    assert all(0 < r["model_share"] < 1 for r in records)
    assert (tmp_path / "speed.png").stat().st_size > 0
    table = capsys.readouterr().out
    assert "| profile |" in table and "GFLOP/s" in table and "then JPEG q30." in table
    assert "Random-init stand-ins (weights not installed): dcsc-rgb@1." in table


def test_bench_frame_jpeg_is_a_compressed_frame_with_its_grid_at_the_origin():
    """--jpeg compresses the resized frame at its own size: the 8x8 grid is there, aligned."""
    from dcsc_preproc.quality import grid_offset, luma
    from eval.speed import bench_frame

    plain, jpeg = bench_frame(320, 240), bench_frame(320, 240, 10)
    assert jpeg.shape == plain.shape and jpeg.flags.c_contiguous
    assert 1 < abs(jpeg.astype(int) - plain).mean() < 20
    (dy, dx), strength = grid_offset(luma(jpeg, "bgr"))
    assert (dy, dx) == (0, 0) and strength > 0.1
    assert grid_offset(luma(plain, "bgr"))[1] < 0.035


def test_speed_rejects_a_bad_jpeg_quality(capsys):
    with pytest.raises(SystemExit):
        main(["--jpeg", "0"])
    assert "--jpeg must be a quality from 1 to 100" in capsys.readouterr().err


def test_speed_openvino_detector_folder(tmp_path, shared, capsys):
    """The OpenVINO INT8 detector export (the CPU default) times like a .pt file."""
    pytest.importorskip("openvino")
    torch.manual_seed(0)
    weights = save_model(DCSC(in_channels=3, unshuffle=4, dilated_features=8, features=16,
                              iterations=1), tmp_path / "tiny.safetensors")
    folder = shared / "models" / "yolov8n_int8_openvino_model"
    out = tmp_path / "speed.json"
    main(["--profiles", str(weights), "--paths", "openvino", "--sizes", "64x48", "--at", "source",
          "--repeats", "1",
          "--warmup", "0", "--detector", str(folder), "--json", str(out), "--device", "cpu"])
    [record] = json.loads(out.read_text())
    assert record["backend"] == "openvino" and record["detector"] == folder.name
    assert capsys.readouterr().out.startswith("Speed, ")  # Ultralytics' log lines go to stderr


def test_speed_at_detector_size_shrinks_before_de_blocking(tmp_path, detector, monkeypatch):
    """--at detector times the de-blocker on the frame shrunk to what the detector sees: a
    model that counts its input's pixels sees 640x360 of a 1280x720 frame."""
    from eval import speed

    torch.manual_seed(0)
    weights = save_model(DCSC(in_channels=3, unshuffle=4, dilated_features=8, features=16,
                              iterations=1), tmp_path / "tiny.safetensors")
    seen = []
    real = speed.Engine.restore_array
    monkeypatch.setattr(speed.Engine, "restore_array",
                        lambda self, image, **kw: seen.append(image.shape) or real(self, image, **kw))
    out = tmp_path / "speed.json"
    main(["--profiles", str(weights), "--paths", "fp32", "--sizes", "1280x720", "--at", "source",
          "detector", "--scale", "1", "1.5", "--repeats", "1", "--warmup", "0",
          "--detector", str(detector), "--json", str(out), "--device", "cpu"])
    source, small, larger = json.loads(out.read_text())
    assert [(r["at"], r["scale"]) for r in (source, small, larger)] == [
        ("source", None), ("detector", 1.0), ("detector", 1.5)]
    assert (small["width"], small["height"]) == (1280, 720)  # rows name the source frame
    assert set(seen) == {(720, 1280, 3), (360, 640, 3), (540, 960, 3)}
    # MP/s counts source pixels, % peak the pixels de-blocked (a quarter of them here)
    assert small["mp_per_s"] == pytest.approx(1280 * 720 / small["ms"] / 1e3)
    assert small["peak_fraction"] / small["mp_per_s"] == pytest.approx(
        source["peak_fraction"] / source["mp_per_s"] / 4)
