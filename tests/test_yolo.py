"""Tests for pipelines.yolo (de-blocking in front of Ultralytics YOLO) and pipelines.detect."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dcsc_preproc import DCSC, Engine, save_model
from pipelines import detect
from pipelines.yolo import DeblockedYOLO, add_deblocking, load_detector

SIZE = (320, 240)  # small COCO images keep the detector and the model fast


@pytest.fixture(scope="module")
def tiny_model() -> DCSC:
    """A random-init RGB DCSC: changes the image visibly, costs little."""
    torch.manual_seed(0)
    return DCSC(in_channels=3, dilated_features=8, features=16, iterations=2)


@pytest.fixture(scope="module")
def bgr_images(shared: Path) -> list[np.ndarray]:
    """Two COCO images, downsized, as BGR uint8 (what Ultralytics takes for arrays)."""
    files = sorted((shared / "data" / "coco_dev" / "images").glob("*.jpg"))[:2]
    return [cv2.resize(cv2.imread(str(f)), SIZE, interpolation=cv2.INTER_AREA) for f in files]


def _deblocked_bgr(model: DCSC, bgr: np.ndarray) -> np.ndarray:
    return Engine(model).restore_array(bgr[..., ::-1].copy())[..., ::-1].copy()


def _boxes(results) -> list[np.ndarray]:
    return [r.boxes.data.cpu().numpy() for r in results]


def test_missing_detector_is_a_clear_error(tmp_path: Path, tiny_model: DCSC) -> None:
    with pytest.raises(FileNotFoundError, match="detector weights not found"):
        load_detector(tmp_path / "yolov8n.pt")
    with pytest.raises(FileNotFoundError, match="detector weights not found"):
        DeblockedYOLO(tmp_path / "yolov8n.pt", tiny_model)


def test_wrapper_and_callback_give_identical_boxes(detector: Path, tiny_model: DCSC,
                                                   bgr_images: list[np.ndarray],
                                                   tmp_path: Path) -> None:
    files = []
    for i, image in enumerate(bgr_images):  # file sources: the loader reads them itself
        files.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(files[-1], image)
    wrapped = DeblockedYOLO(detector, tiny_model, gate=None).predict(files, verbose=False)
    hooked = add_deblocking(load_detector(detector), tiny_model, gate=None).predict(files, verbose=False)
    assert len(wrapped) == len(hooked) == 2
    assert any(len(b) for b in _boxes(wrapped))
    for a, b in zip(_boxes(wrapped), _boxes(hooked)):
        np.testing.assert_array_equal(a, b)


def test_callback_swaps_the_image_before_the_model(detector: Path, tiny_model: DCSC,
                                                   bgr_images: list[np.ndarray]) -> None:
    """The model sees exactly the de-blocked image: same orig_img, same boxes as feeding it."""
    expected = [_deblocked_bgr(tiny_model, im) for im in bgr_images]
    results = add_deblocking(load_detector(detector), tiny_model, gate=None).predict(list(bgr_images),
                                                                          verbose=False)
    plain = load_detector(detector).predict(expected, verbose=False)
    for r, want, original in zip(results, expected, bgr_images):
        np.testing.assert_array_equal(r.orig_img, want)
        assert not np.array_equal(r.orig_img, original)
    for a, b in zip(_boxes(results), _boxes(plain)):
        np.testing.assert_array_equal(a, b)


def test_callback_on_tensor_source(detector: Path, tiny_model: DCSC,
                                   bgr_images: list[np.ndarray]) -> None:
    rgb = np.ascontiguousarray(bgr_images[0][:224, :320, ::-1])
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    before = x.clone()
    result = add_deblocking(load_detector(detector), tiny_model, gate=None).predict(x, verbose=False)[0]
    want = (Engine(tiny_model)(x)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)[..., ::-1]
    np.testing.assert_array_equal(result.orig_img, want)
    assert torch.equal(x, before)  # the caller's tensor is left alone


def test_detect_cli_saves_into_a_fresh_folder(detector: Path, tiny_model: DCSC,
                                              bgr_images: list[np.ndarray], tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    weights = save_model(tiny_model, tmp_path / "tiny.safetensors")
    source = tmp_path / "in"
    source.mkdir()
    cv2.imwrite(str(source / "a.jpg"), bgr_images[0])
    out = tmp_path / "out"
    (out / "predict").mkdir(parents=True)
    (out / "predict" / "a.jpg").write_bytes(b"user file")
    assert detect.main(["--detector", str(detector), "--source", str(source), "--deblock",
                        str(weights), "--save", str(out)]) == 0
    assert (out / "predict" / "a.jpg").read_bytes() == b"user file"
    [fresh] = [d for d in out.iterdir() if d.name != "predict"]
    assert cv2.imread(str(fresh / "a.jpg")).shape == bgr_images[0].shape
    printed = capsys.readouterr().out
    assert "a.jpg: " in printed and f"saved to {fresh}" in printed
