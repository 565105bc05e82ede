"""The video pipeline: ``clean_video`` and ``python -m pipelines.video``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dcsc_preproc import DCSC, FrameFilter, save_model
from pipelines.video import clean_video, main

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FRAMES = 64, 48, 5


def small_model() -> DCSC:
    torch.manual_seed(0)
    return DCSC(in_channels=3, dilated_features=4, features=8, iterations=2)


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    capture.release()
    return frames


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "input.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (WIDTH, HEIGHT))
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for t in range(FRAMES):
        writer.write(np.stack([(xx * 4 + t * 9) % 256, (yy * 5) % 256, (xx + yy) % 256],
                              axis=-1).astype(np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def frame_filter() -> FrameFilter:
    return FrameFilter(small_model())


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    return save_model(small_model(), tmp_path / "small.safetensors")


def test_clean_video_writes_every_frame(video, tmp_path, frame_filter):
    output = tmp_path / "clean.mp4"
    assert clean_video(video, output, frame_filter) == FRAMES
    frames = read_frames(output)
    assert len(frames) == FRAMES and frames[0].shape == (HEIGHT, WIDTH, 3)
    assert cv2.VideoCapture(str(output)).get(cv2.CAP_PROP_FPS) == 10


def test_side_by_side_and_max_frames(video, tmp_path, frame_filter):
    output = tmp_path / "pair.mp4"
    assert clean_video(video, output, frame_filter, side_by_side=True, max_frames=3) == 3
    frames = read_frames(output)
    assert len(frames) == 3 and frames[0].shape == (HEIGHT, 2 * WIDTH, 3)


def test_ctrl_c_releases_writer(video, tmp_path, frame_filter):
    def interrupted_on_third(frame: np.ndarray, calls: list[int] = []) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return frame_filter(frame)

    output = tmp_path / "partial.mp4"
    with pytest.raises(KeyboardInterrupt):
        clean_video(video, output, interrupted_on_third)
    assert len(read_frames(output)) == 2  # the file was finalised


def test_unopenable_source(tmp_path, frame_filter, weights, capsys):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(OSError, match="missing.mp4"):
        clean_video(missing, tmp_path / "out.mp4", frame_filter)
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", str(missing), "--output", str(tmp_path / "out.mp4"),
              "--model", str(weights)])
    assert exit_info.value.code == 2
    assert "cannot open video source" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_refuses_to_overwrite(video, tmp_path, weights, capsys):
    output = tmp_path / "exists.mp4"
    output.write_bytes(b"keep me")
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", str(video), "--output", str(output), "--model", str(weights)])
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"keep me"


def test_cli(video, tmp_path, weights):
    output = tmp_path / "cli.mp4"
    output.write_bytes(b"replace me")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.video", "--source", str(video), "--output", str(output),
         "--model", f"{weights}@1", "--side-by-side", "--max-frames", "4", "--tile", "32",
         "--overwrite"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    frames = read_frames(output)
    assert len(frames) == 4 and frames[0].shape == (HEIGHT, 2 * WIDTH, 3)
