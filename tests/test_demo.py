"""``dcsc-preproc demo``: the default run, and ``--detector`` drawing detections side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from dcsc_preproc.cli import main


def test_demo_with_detector(tmp_path: Path, detector: Path, capsys) -> None:
    if not detector.exists():
        pytest.skip(f"detector weights not found: {detector}")
    out = tmp_path / "demo"
    main(["demo", "--out", str(out), "--detector", str(detector)])
    printed = capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"jpeg_q10.jpg", "restored.png", "comparison.png",
                                              "detections.png"}
    counts = {line.split()[0]: int(line.split("PSNR-B")[1].split()[2])
              for line in printed.splitlines() if "detections above 0.25" in line}
    assert set(counts) == {"jpeg", "restored"}
    assert all(n >= 1 for n in counts.values())  # bus.jpg: a bus and people, even at q10
    width, height = Image.open(out / "detections.png").size
    assert width > 1.2 * height  # two portrait photos next to each other


def test_demo_without_detector_stays_as_before(tmp_path: Path, rgb_image, capsys) -> None:
    photo, out = tmp_path / "photo.png", tmp_path / "demo"
    Image.fromarray(rgb_image).save(photo)
    main(["demo", "--out", str(out), "--image", str(photo)])
    assert {p.name for p in out.iterdir()} == {"jpeg_q10.jpg", "restored.png", "comparison.png"}
    assert "detections" not in capsys.readouterr().out
