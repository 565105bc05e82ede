"""Training: a smoke run through the CLI, logs, and exact resume."""

from __future__ import annotations

import csv

import torch

from dcsc_preproc import load_model
from dcsc_preproc.cli import main
from dcsc_preproc.zoo import read_metadata

SMOKE = ["--features", "8", "--dilated-features", "4", "--iterations", "2", "--patch", "32",
         "--batch", "2", "--train-images", "4", "--val-images", "1", "--val-every", "4",
         "--checkpoint-every", "2", "--precision", "fp32"]


def _run(out, steps, shared, *extra):
    main(["train", "--out", str(out), "--data", str(shared / "data"), "--steps", str(steps),
          *SMOKE, *extra])


def test_smoke_run_writes_logs_and_weights(tmp_path, shared):
    _run(tmp_path / "run", 8, shared, "--channels", "rgb", "--unshuffle", "2")
    model = load_model(tmp_path / "run" / "model.safetensors")
    assert model.config.in_channels == 3 and model.config.unshuffle == 2
    assert read_metadata(tmp_path / "run" / "model.safetensors")["info"]["step"] == 8
    with open(tmp_path / "run" / "val.csv") as f:
        val = list(csv.DictReader(f))
    assert [int(r["step"]) for r in val] == [4, 8]
    assert all(float(r["psnr"]) > 10 and float(r["jpeg_psnr"]) > 10 for r in val)
    with open(tmp_path / "run" / "log.csv") as f:
        assert float(next(csv.DictReader(f))["loss"]) > 0


def test_resume_is_exact(tmp_path, shared):
    _run(tmp_path / "straight", 6, shared)
    _run(tmp_path / "resumed", 3, shared)
    _run(tmp_path / "resumed", 6, shared)
    a = load_model(tmp_path / "straight" / "model.safetensors").state_dict()
    b = load_model(tmp_path / "resumed" / "model.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_metadata(tmp_path / "resumed" / "model.safetensors")["info"]["patches_seen"] == 12


def test_resume_refuses_other_model(tmp_path, shared):
    import pytest
    _run(tmp_path / "run", 2, shared)
    with pytest.raises(ValueError, match="different model"):
        _run(tmp_path / "run", 4, shared, "--channels", "rgb")


def test_model_card_and_ship(tmp_path, shared, monkeypatch):
    import pytest

    from dcsc_preproc import zoo
    from dcsc_preproc.train import model_card

    run = tmp_path / "run"
    _run(run, 4, shared)
    (run / "NOTES.md").write_text("## Notes\n\nSmoke runs teach nothing.\n")
    card = model_card(run, "smoke")
    assert "Smoke runs teach nothing." in card
    assert "steps: 4; patches seen: 8" in card
    assert "--train-images 4" in card  # the exact command of each chunk
    assert "| 4 | 10 |" in card  # last validation row: step 4, quality 10
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "weights")
    with pytest.raises(SystemExit, match="does not hold the dcsc-fast configuration"):
        main(["ship", str(run), "dcsc-fast"])
    assert not (tmp_path / "weights" / "dcsc-fast.safetensors").exists()


def test_resume_forgets_log_rows_after_the_checkpoint(tmp_path, shared):
    _run(tmp_path / "run", 4, shared)
    log = tmp_path / "run" / "val.csv"
    with open(log) as f:
        rows = list(csv.DictReader(f))
    with open(log, "a", newline="") as f:  # as if a run died after step 5's log, before its checkpoint
        csv.DictWriter(f, fieldnames=list(rows[0])).writerow({**rows[-1], "step": 5})
    _run(tmp_path / "run", 8, shared)
    with open(log) as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [4, 8]


def test_decay_runs_a_cosine_over_the_chunk(tmp_path, shared):
    from dcsc_preproc.train import model_card

    _run(tmp_path / "run", 10, shared, "--lr", "1e-3")
    _run(tmp_path / "run", 30, shared, "--lr", "1e-3", "--decay-to", "1e-5")
    with open(tmp_path / "run" / "log.csv") as f:
        lr = {int(r["step"]): float(r["lr"]) for r in csv.DictReader(f)}
    assert lr[10] == 1e-3  # the first chunk is constant
    assert 1e-5 < lr[30] < lr[20] < lr[10]  # falls over the second
    assert lr[30] < 2e-5  # ends near --decay-to
    assert "0.001 cosine to 1e-05" in model_card(tmp_path / "run", "smoke")


def _first_log_row(run) -> dict:
    with open(run / "log.csv") as f:
        return {k: float(v) for k, v in next(csv.DictReader(f)).items()}


def test_teacher_is_a_second_pixel_target(tmp_path, shared):
    import pytest

    rgb = ("--channels", "rgb", "--unshuffle", "2")
    _run(tmp_path / "teacher", 2, shared, *rgb)
    teacher = str(tmp_path / "teacher" / "model.safetensors")
    # a student that starts as the teacher (and barely moves) matches it exactly
    _run(tmp_path / "same", 2, shared, *rgb, "--init", teacher, "--teacher", teacher, "--lr", "1e-12")
    assert _first_log_row(tmp_path / "same")["teacher"] == pytest.approx(0, abs=1e-6)
    # a fresh student does not, and the term enters the loss with its weight
    _run(tmp_path / "fresh", 2, shared, *rgb, "--teacher", teacher, "--teacher-weight", "3")
    row = _first_log_row(tmp_path / "fresh")
    assert row["teacher"] > 1e-3
    assert row["loss"] == pytest.approx(row["pixel"] + 3 * row["teacher"], rel=1e-4)
    from dcsc_preproc.train import model_card

    assert f"3.0 x the mae to the output of the teacher `{teacher}`" in model_card(
        tmp_path / "fresh", "student")


def test_teacher_of_other_channels_is_refused(tmp_path, shared):
    import pytest

    _run(tmp_path / "teacher", 2, shared)  # a Y model
    with pytest.raises(ValueError, match="--teacher .* restores 1-channel images, the model 3"):
        _run(tmp_path / "student", 2, shared, "--channels", "rgb", "--unshuffle", "2",
             "--teacher", str(tmp_path / "teacher" / "model.safetensors"))
