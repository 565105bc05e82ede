"""Tests for pipelines.yolo (de-blocking in front of Ultralytics YOLO) and pipelines.detect."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ultralytics.data.augment import LetterBox

from dcsc_preproc import DCSC, Engine, QualityGate, encode_jpeg, save_model
from pipelines import detect
from pipelines.yolo import (DeblockedYOLO, add_deblocking, deblock_array, deblock_imgsz,
                            letterbox_size, load_detector, shrink_for_detector)

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


@pytest.mark.parametrize("shape", [(480, 640), (1080, 1920), (2160, 3840), (333, 500), (640, 427)])
@pytest.mark.parametrize("imgsz", [640, 320, (384, 640)])
def test_letterbox_size_is_ultralytics_resize(shape: tuple[int, int], imgsz) -> None:
    """The size the resize path shrinks to is the one LetterBox resizes to (when it shrinks)."""
    params = LetterBox(imgsz).get_params({"img": np.zeros((*shape, 3), np.uint8)})
    want = params["new_unpad"] if params["ratio"][0] < 1 else (shape[1], shape[0])
    assert letterbox_size(shape, imgsz) == tuple(want)


def test_shrink_keeps_small_images_and_gray_channels() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    assert shrink_for_detector(image, 640) is image
    assert shrink_for_detector(np.zeros((480, 640, 1), np.uint8), 320).shape == (240, 320, 1)


def test_resize_path_deblocks_the_detector_input_and_maps_boxes_back(
        detector: Path, tiny_model: DCSC, bgr_images: list[np.ndarray]) -> None:
    """at="detector": the detector sees the de-blocked shrunk image; boxes, orig_img and
    orig_shape come back in the source image's frame."""
    source = cv2.resize(bgr_images[0], (640, 480), interpolation=cv2.INTER_LINEAR)
    before = source.copy()
    [result] = add_deblocking(load_detector(detector), tiny_model, gate=None,
                              at="detector").predict(source, imgsz=320, verbose=False)
    small = Engine(tiny_model).restore_array(shrink_for_detector(source, 320), bgr=True,
                                             align_grid=False)
    [plain] = load_detector(detector).predict(small, imgsz=320, verbose=False)
    assert small.shape == (240, 320, 3) and len(plain.boxes)
    assert result.orig_img is source and result.orig_shape == (480, 640)
    np.testing.assert_array_equal(source, before)
    np.testing.assert_allclose(result.boxes.xyxy.numpy(), plain.boxes.xyxy.numpy() * 2,
                               rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(result.boxes.cls.numpy(), plain.boxes.cls.numpy())


@pytest.mark.parametrize("channels", [3, 1])
def test_deblock_array_reads_the_grid_only_on_unshrunk_images(tiny_model: DCSC,
                                                              channels: int) -> None:
    """A JPEG shrunk 2x shows a 4-pixel grid, which the grid read takes for a shifted 8x8 one;
    deblock_array reads the grid on images the shrink leaves as they are, never on shrunk
    ones, and gives what restore_array gives with the matching alignment."""
    yy, xx = np.mgrid[0:480, 0:640]
    gray = ((xx * 5 + yy * 3) % 256).astype(np.uint8)
    jpeg = cv2.imdecode(np.frombuffer(encode_jpeg(gray, 10), np.uint8), cv2.IMREAD_GRAYSCALE)
    image = np.stack([jpeg] * channels, -1)[1:, 2:]  # cropped: a shifted grid
    engine = Engine(tiny_model)
    reads = []
    read = engine._array_grid
    engine._array_grid = lambda *args: reads.append(args[0].shape[:2]) or read(*args)
    small, shrunk = deblock_array(engine, image, 320), shrink_for_detector(image, 320)
    assert reads == [] and small.shape == shrunk.shape and shrunk.shape[1] == 320
    plain = shrunk[..., 0] if channels == 1 else shrunk  # restore_array takes gray as (H, W)
    want = engine.restore_array(plain, bgr=True, align_grid=False)
    np.testing.assert_array_equal(small, want.reshape(small.shape))
    assert Engine._array_grid(shrunk, True) != (0, 0)  # what the read would have done
    whole = deblock_array(engine, image, 640)
    assert reads == [image.shape[:2]] and whole.shape == image.shape
    np.testing.assert_array_equal(whole, deblock_array(engine, image))


def test_default_gate_estimates_a_video_every_stream_every_frames(
        detector: Path, tiny_model: DCSC, bgr_images: list[np.ndarray], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A gate built from "auto" judges every image of a list but only every STREAM_EVERY
    frames of a video (one scene here); a QualityGate passed in keeps its own ``every``."""
    from dcsc_preproc import quality
    from dcsc_preproc.quality import STREAM_EVERY

    calls = []
    estimate = quality.estimate_quality
    monkeypatch.setattr(quality, "estimate_quality",
                        lambda *args: calls.append(1) or estimate(*args))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, SIZE)
    frames = STREAM_EVERY + 5
    for i in range(frames):
        writer.write(np.roll(bgr_images[0], i, axis=1))  # a slow pan: no scene change
    writer.release()
    model = add_deblocking(load_detector(detector), tiny_model, gate="auto")
    assert len(list(model.predict(str(video), stream=True, verbose=False))) == frames
    assert len(calls) == 2 and model.deblock_gate.passed + model.deblock_gate.restored == frames
    calls.clear()
    model.predict([image.copy() for image in bgr_images] * 2, verbose=False)
    assert len(calls) == 4  # still images: each one judged
    calls.clear()
    mine = QualityGate("auto")
    list(add_deblocking(load_detector(detector), tiny_model, gate=mine).predict(
        str(video), stream=True, verbose=False))
    assert len(calls) == frames and mine.every == 1


def test_resize_path_scale_deblocks_a_larger_copy(detector: Path, tiny_model: DCSC,
                                                  bgr_images: list[np.ndarray]) -> None:
    """scale=1.5 at imgsz 320: a 640x480 source is de-blocked at 480x360, the detector
    letterboxes that copy, and the boxes come back in the source's frame."""
    source = cv2.resize(bgr_images[0], (640, 480), interpolation=cv2.INTER_LINEAR)
    [result] = add_deblocking(load_detector(detector), tiny_model, gate=None, at="detector",
                              scale=1.5).predict(source, imgsz=320, verbose=False)
    middle = deblock_array(Engine(tiny_model), source, deblock_imgsz(320, 1.5))
    [plain] = load_detector(detector).predict(middle, imgsz=320, verbose=False)
    assert middle.shape == (360, 480, 3) and len(plain.boxes)
    assert result.orig_img is source
    np.testing.assert_allclose(result.boxes.xyxy.numpy(), plain.boxes.xyxy.numpy() * 4 / 3,
                               rtol=1e-5, atol=1e-3)


def test_resize_path_leaves_images_the_gate_passes(detector: Path, tiny_model: DCSC,
                                                   bgr_images: list[np.ndarray]) -> None:
    """The gate judges the source image; a passed image is detected as it is, unshrunk."""
    clean = cv2.imdecode(np.frombuffer(encode_jpeg(bgr_images[0][..., ::-1], 95), np.uint8),
                         cv2.IMREAD_COLOR)
    source = cv2.resize(clean, (640, 480), interpolation=cv2.INTER_LINEAR)
    model = add_deblocking(load_detector(detector), tiny_model, gate=50, at="detector")
    [result] = model.predict(source, imgsz=320, verbose=False)
    [plain] = load_detector(detector).predict(source, imgsz=320, verbose=False)
    assert model.deblock_gate.passed == 1 and model.deblock_gate.restored == 0
    np.testing.assert_array_equal(result.boxes.data.numpy(), plain.boxes.data.numpy())


def test_resize_path_arguments_are_checked(detector: Path, tiny_model: DCSC) -> None:
    with pytest.raises(ValueError, match="at must be one of"):
        add_deblocking(load_detector(detector), tiny_model, at="input")
    with pytest.raises(ValueError, match="scale must be at least 1"):
        add_deblocking(load_detector(detector), tiny_model, at="detector", scale=0.5)
    with pytest.raises(ValueError, match="needs at='detector'"):
        add_deblocking(load_detector(detector), tiny_model, scale=2)
    model = load_detector(detector)
    model.task = "segment"
    with pytest.raises(ValueError, match="needs a detection model"):
        add_deblocking(model, tiny_model, at="detector")


def test_detect_cli_at_detector_size(detector: Path, tiny_model: DCSC,
                                     bgr_images: list[np.ndarray], tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    """--at detector draws on the source image: the saved file has the source's size."""
    weights = save_model(tiny_model, tmp_path / "tiny.safetensors")
    source = tmp_path / "big.png"
    cv2.imwrite(str(source), cv2.resize(bgr_images[0], (640, 480)))
    assert detect.main(["--detector", str(detector), "--source", str(source), "--deblock",
                        str(weights), "--save", str(tmp_path / "out"), "--imgsz", "320",
                        "--at", "detector", "--backend", "torch", "--gate", "none"]) == 0
    [saved] = (tmp_path / "out").glob("predict*/big.*")
    assert cv2.imread(str(saved)).shape == (480, 640, 3)
    assert "1 de-blocked" in capsys.readouterr().out
