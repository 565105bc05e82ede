"""Folder de-blocking on Ray Data (embedded, 2 CPUs): same pixels as FrameFilter, resumable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dcsc_preproc import DCSC, FrameFilter, deblock_folder, save_model
from dcsc_preproc.batch import _import_ray, check_folders, find_images
from dcsc_preproc.cli import main

ray = pytest.importorskip("ray")

# relative path -> (height, width, channels); channels 1 is gray, 4 is BGRA
IMAGES = {
    "a.jpg": (40, 56, 3), "b.png": (33, 47, 3), "c.bmp": (24, 24, 3), "d.webp": (32, 40, 3),
    "sub/e.jpg": (48, 32, 1), "sub/f.png": (30, 30, 4), "sub/deeper/g.JPEG": (16, 64, 3),
    "sub/deeper/h.jpg": (64, 16, 3),
}


@pytest.fixture(scope="module", autouse=True)
def embedded_ray():
    """One embedded Ray for the module: its start-up takes seconds on 2 cores."""
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model() -> DCSC:
    torch.manual_seed(0)
    return DCSC(in_channels=3, iterations=2)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small images in sub-folders, in four formats, plus a corrupt JPEG.

    The JPEGs are at quality 15 but for ``sub/deeper/h.jpg`` at 95."""
    root = tmp_path_factory.mktemp("source")
    rng = np.random.default_rng(0)
    for name, (h, w, c) in IMAGES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, (h, w, c), np.uint8)
        quality = 95 if name == "sub/deeper/h.jpg" else 15  # h.jpg: above the default gate
        jpeg = name.lower().endswith((".jpg", ".jpeg"))
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if jpeg else []
        assert cv2.imwrite(str(root / name), image[..., 0] if c == 1 else image, params)
    (root / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (root / "notes.txt").write_text("not an image")
    return root


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _manifest(output: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]
    return {Path(r["input"]).name: r for r in rows}


def test_finds_images_recursively(source: Path) -> None:
    assert [p.as_posix() for p in find_images(source)] == sorted([*IMAGES, "sub/broken.jpg"])


def test_same_pixels_as_frame_filter_and_resumes(source: Path, model: DCSC,
                                                  tmp_path: Path) -> None:
    before = _digest(source)
    output = tmp_path / "clean"
    (output / "sub").mkdir(parents=True)
    (output / "sub" / "f.png").write_bytes(b"made earlier")  # must be skipped, not replaced

    counts = deblock_folder(source, output, model, gate=None, progress=False)

    assert counts == {"ok": 7, "passed": 0, "skipped": 1, "failed": 1}
    assert _digest(source) == before
    reference = FrameFilter(model, gate=None)
    for name in IMAGES:
        if name == "sub/f.png":
            continue
        written = cv2.imread(str(output / Path(name).with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        expected = reference(cv2.imread(str(source / name), cv2.IMREAD_UNCHANGED))
        assert written.dtype == np.uint8 and written.shape == expected.shape, name
        assert np.array_equal(written, expected), name
    assert (output / "sub" / "f.png").read_bytes() == b"made earlier"
    rows = _manifest(output)
    assert rows["broken.jpg"]["status"] == "failed" and "decode" in rows["broken.jpg"]["error"]
    assert rows["f.png"]["status"] == "skipped"
    assert rows["a.jpg"]["status"] == "ok" and rows["a.jpg"]["seconds"] > 0
    assert rows["a.jpg"]["deblocked"] is True and rows["a.jpg"]["quality"] is None  # gate off
    assert rows["a.jpg"]["output"] == str(output / "a.png")
    assert not list(output.rglob("*.part"))

    written = _digest(output)
    assert deblock_folder(source, output, model, progress=False) == {
        "ok": 0, "passed": 0, "skipped": 8, "failed": 1}
    assert {k: v for k, v in _digest(output).items() if k != "manifest.jsonl"} == {
        k: v for k, v in written.items() if k != "manifest.jsonl"}


def test_cli_gates_overwrites_on_request_and_exits_nonzero_on_failures(
        source: Path, model: DCSC, tmp_path: Path) -> None:
    weights = tmp_path / "tiny.safetensors"
    save_model(model, weights)
    output = tmp_path / "clean"
    (output / "sub").mkdir(parents=True)
    (output / "sub" / "f.png").write_bytes(b"made earlier")

    with pytest.raises(SystemExit, match="1 images failed"):  # default gate: "auto"
        main(["batch", "--source", str(source), "--output", str(output), "--model", str(weights),
              "--overwrite", "--workers", "1"])

    rows = _manifest(output)
    assert (rows["a.jpg"]["quality"], rows["a.jpg"]["quality_source"]) == (15, "tables")
    assert rows["a.jpg"]["deblocked"] is True
    assert (rows["h.jpg"]["quality"], rows["h.jpg"]["deblocked"]) == (95, False)
    reference = FrameFilter(model, gate=None)
    for name in IMAGES:  # sub/f.png included: --overwrite replaced it
        frame = cv2.imread(str(source / name), cv2.IMREAD_UNCHANGED)
        written = cv2.imread(str(output / Path(name).with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        deblocked = rows[Path(name).name]["deblocked"]
        assert np.array_equal(written, reference(frame) if deblocked else frame), name


def test_refuses_overlapping_folders(source: Path) -> None:
    with pytest.raises(ValueError, match="overlap"):
        check_folders(source, source / "clean")
    with pytest.raises(ValueError, match="overlap"):
        check_folders(source / "sub", source)
    with pytest.raises(FileNotFoundError):
        check_folders(source / "missing", source.parent / "clean")


def test_refuses_a_bad_gate_before_any_work(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gate threshold"):
        deblock_folder(source, tmp_path / "clean", gate="sometimes")
    assert not (tmp_path / "clean").exists()


def test_without_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[distributed\]"'):
        _import_ray()
