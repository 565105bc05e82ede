"""eval.tradeoff on small hand-written benchmark records: joined values, table and PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.tradeoff import main, read_records, tradeoff


def speed(profile: str, path: str, ms: float, device: str = "cpu",
          size: tuple[int, int] = (640, 480)) -> dict:
    return {"profile": profile, "iterations": 6, "path": path, "device": device,
            "width": size[0], "height": size[1], "ms": ms, "mp_per_s": 1.0,
            "detector_ms": 50.0, "peak_fraction": 0.1}


SPEED = [
    speed("dcsc-fast", "fp32", 40.0), speed("dcsc-fast", "onnx", 30.0),  # fastest path: 30
    speed("dcsc-fast", "onnx", 5.0, size=(1920, 1080)),  # another size
    speed("dcsc-fast@3", "fp32", 20.0),
    speed("dcsc-y@10", "fp32", 2000.0),  # in no detection record
    speed("dcsc-rgb", "fp32", 1.0, device="cuda"),  # another device
]
RESTORATION = [{"set": s, "quality": q, "method": m, "psnr": 0.0, "ssim": 0.0, "psnrb": v,
                "ssim_gaussian": 0.0, "input": "y", "images": 1} for s, q, m, v in [
    ("live1", 10, "jpeg", 27.0), ("live1", 10, "dcsc-fast", 28.0),
    ("live1", 10, "dcsc-fast@3", 27.5), ("live1", 10, "dcsc-y@10", 28.5),
    ("classic5", 10, "dcsc-fast", 99.0), ("live1", 20, "dcsc-fast", 99.0)]]
DETECTION = [{"quality": q, "deblocker": d, "map": v, "map50": 0.0, "images": 3}
             for q, d, v in [(None, None, 0.40), (10, None, 0.30), (10, "dcsc-fast", 0.35),
                             (10, "dcsc-fast@3", 0.33), (10, "nlm", 0.32),
                             (20, None, 0.9), (20, "dcsc-fast", 0.9)]]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, records in (("speed", SPEED), ("restoration", RESTORATION),
                          ("detection", DETECTION)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(records))
    return paths


def test_tradeoff_joins_by_name() -> None:
    t = tradeoff(SPEED, RESTORATION, DETECTION, (640, 480), "live1", 10, "cpu")
    assert (t.detector_ms, t.jpeg_psnrb, t.jpeg_map, t.original_map) == (50.0, 27.0, 0.30, 0.40)
    rows = {r["name"]: r for r in t.rows}
    assert list(rows) == ["dcsc-fast", "dcsc-fast@3", "dcsc-y@10"]  # nlm is not timed
    assert rows["dcsc-fast"]["ms"] == 30.0 and rows["dcsc-fast"]["ratio"] == pytest.approx(0.6)
    assert rows["dcsc-fast"]["recovered"] == pytest.approx(0.5)  # (0.35 - 0.30) / 0.10
    assert rows["dcsc-fast@3"]["recovered"] == pytest.approx(0.3)
    assert rows["dcsc-y@10"]["psnrb"] == 28.5
    assert rows["dcsc-y@10"]["map"] is None and rows["dcsc-y@10"]["recovered"] is None


def test_main_prints_table_and_writes_png(files: dict[str, Path], tmp_path: Path,
                                          capsys) -> None:
    out = tmp_path / "docs" / "tradeoff.png"
    main(["--speed", str(files["speed"]), "--restoration", str(files["restoration"]),
          "--detection", str(files["detection"]), "--out", str(out)])
    text = capsys.readouterr().out
    assert "PSNR-B 27.00 dB (LIVE1), mAP50-95 0.300; original mAP50-95 0.400" in text
    table = [line for line in text.splitlines() if line.startswith("| dcsc")]
    assert table == ["| dcsc-fast | 30.0 | 0.60x | 28.00 | 0.350 | 50% |",
                     "| dcsc-fast@3 | 20.0 | 0.40x | 27.50 | 0.330 | 30% |",
                     "| dcsc-y@10 | 2000.0 | 40.00x | 28.50 | - | - |"]
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_no_speed_records_for_size_is_an_error(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="no speed records at 320x240 on cpu"):
        tradeoff(read_records([files["speed"]]), [], [], (320, 240), "live1", 10, "cpu")
