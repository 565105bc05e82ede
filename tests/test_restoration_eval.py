"""Tests for eval/restoration.py: the authors' JPEG inputs and errata numbers, CLI outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcsc_preproc import DCSC, encode_jpeg, read_image, save_model
from eval.restoration import benchmark, main, markdown

#: File names of the authors' Classic5 q10 inputs (data/reference/dcsc_classic5_q10/).
CLASSIC5 = {"1": "baboon", "2": "barbara", "3": "boats", "4": "lena", "5": "peppers"}
RECORD_KEYS = {"set", "quality", "method", "idct", "input", "psnr", "ssim", "ssim_gaussian", "psnrb",
               "detail", "images"}


def test_jpeg_row_matches_authors_input_psnr(shared: Path) -> None:
    (record,) = benchmark([], ["classic5"], [10], data=shared / "data")
    assert record["method"] == "jpeg" and record["images"] == 5
    assert record["psnr"] == pytest.approx(27.8211, abs=5e-5)  # shared/peers/PROVENANCE.md


@pytest.mark.parametrize("number", sorted(CLASSIC5))
def test_encoder_matches_authors_jpeg_bytes(shared: Path, number: str) -> None:
    image = read_image(shared / "data" / "classic5" / f"{CLASSIC5[number]}.bmp")
    reference = shared / "data" / "reference" / "dcsc_classic5_q10" / f"{number}.jpg"
    assert encode_jpeg(image, 10) == reference.read_bytes()


def test_main_writes_json_and_markdown(shared: Path, tmp_path: Path, capsys) -> None:
    # Named like the authors' weights, so the errata difference column is exercised too.
    y_model = save_model(DCSC(dilated_features=4, features=4, iterations=2),
                         tmp_path / "dcsc_iccv2019_original.safetensors")
    rgb_model = save_model(DCSC(in_channels=3, dilated_features=4, features=4, iterations=2),
                           tmp_path / "tiny_rgb.safetensors")
    out = tmp_path / "out" / "restoration.json"
    main(["--weights", str(y_model), f"{y_model}@1", str(rgb_model), "--sets", "classic5", "live1",
          "--qualities", "10", "--limit", "1", "--data", str(shared / "data"),
          "--device", "cpu", "--json", str(out), "--errata"])
    records = json.loads(out.read_text())
    assert [(r["set"], r["method"], r["input"]) for r in records] == [
        (s, m, i) for s in ("classic5", "live1") for m, i in
        (("jpeg", "y"), ("jpeg-rgb", "rgb"), ("dcsc_iccv2019_original", "y"),
                         ("dcsc_iccv2019_original@1", "y"), ("tiny_rgb", "rgb"))]
    assert all(set(r) == RECORD_KEYS and r["quality"] == 10 and r["images"] == 1 for r in records)
    text = capsys.readouterr().out
    assert text == markdown(records, errata=True)
    assert "### Classic5" in text and "### LIVE1" in text and "errata ICCV'19" in text
    assert text.count("| detail |") == 2 and "| detail |" not in markdown(
        [{k: v for k, v in r.items() if k != "detail"} for r in records])  # older records
    assert all(row.count("|") == text.splitlines()[2].count("|")
               for row in text.splitlines() if row.startswith("| 10 |"))  # errata rows too
    assert "SSIM with a uniform 8x8 window" in text and "4:2:0" in text
    # The errata hold for the authors' R only: no difference column on the @1 row.
    rows = [line for line in text.splitlines() if "`dcsc_iccv2019_original@1`" in line]
    assert len(rows) == 2 and all(row.endswith(" |  |") for row in rows)


def test_authors_iccv2019_weights_reproduce_errata(shared: Path, authors_npz: Path) -> None:
    """The full check (about a minute on CPU): Classic5 q10, all 5 images, Pillow decoding."""
    records = benchmark([authors_npz], ["classic5"], [10], data=shared / "data", device="cpu")
    (record,) = [r for r in records if r["method"] == "dcsc_iccv2019_original"]
    assert record["images"] == 5
    # The errata's numbers, made with TensorFlow's INTEGER_FAST decoding of the input JPEG.
    assert record["psnr"] == pytest.approx(29.2488, abs=0.005)
    assert record["ssim"] == pytest.approx(0.8200, abs=0.005)
    assert record["psnrb"] == pytest.approx(28.8714, abs=0.005)
    # Pillow (ISLOW) decoding, as here, checked in shared/peers/PROVENANCE.md.
    assert record["psnr"] == pytest.approx(29.2524, abs=1e-3)
    assert record["psnrb"] == pytest.approx(28.8756, abs=1e-3)
    assert record["ssim_gaussian"] == pytest.approx(0.8025, abs=1e-3)


def test_fast_idct_reproduces_errata_at_q30(shared: Path, authors_npz: Path) -> None:
    """At q30 Pillow's accurate IDCT lifts the authors' numbers by 0.07 dB over the errata;
    decoding with the fast IDCT, as their TensorFlow code did, removes the difference."""
    records = benchmark([authors_npz], ["classic5"], [30], data=shared / "data", device="cpu",
                        idct="ifast")
    (record,) = [r for r in records if r["method"] == "dcsc_iccv2019_original"]
    assert record["idct"] == "ifast"
    assert record["psnr"] == pytest.approx(32.6071, abs=1e-3)
    assert record["ssim"] == pytest.approx(0.8999, abs=1e-3)
    assert record["psnrb"] == pytest.approx(32.0826, abs=1e-3)
