"""Bad and unusual input never crashes an entry point; the gate passes clean images untouched.

Property tests (hypothesis) draw shapes from 1x1 to 300x300, dtypes, channel counts and
layouts, and check that ``Deblock``, ``FrameFilter`` and the YOLO callback's batch function
return the input's type, shape and dtype or raise ``TypeError``/``ValueError`` from this
project's code (not from inside torch or Ultralytics). The command lines are checked with
read-only inputs that must stay byte-identical.
"""

from __future__ import annotations

import io
import stat
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision import tv_tensors

from dcsc_preproc import DCSC, Deblock, Engine, FrameFilter, QualityGate, save_model
from dcsc_preproc.cli import main as cli_main
from pipelines import detect
from pipelines.yolo import add_deblocking, deblock_images, load_detector

REPO = Path(__file__).resolve().parents[1]
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def model() -> DCSC:
    torch.manual_seed(0)
    return DCSC(in_channels=3, dilated_features=4, features=8, iterations=1)


@pytest.fixture(scope="module")
def photo(shared: Path) -> np.ndarray:
    files = sorted((shared / "data" / "coco_dev" / "images").glob("*.jpg"))
    return np.asarray(Image.open(files[5]).convert("RGB"))[:96, :128].copy()


def jpeg(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def raised_here(err: Exception) -> bool:
    """The error was raised by this project's code, not deep inside torch or Ultralytics."""
    origin = traceback.extract_tb(err.__traceback__)[-1].filename
    return origin.startswith(str(REPO)) and "site-packages" not in origin


def check_or_clear_error(call, expect):
    """``call()`` returns something ``expect`` accepts, or raises a clear error from here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too small / 16-bit pass with a warning
        try:
            out = call()
        except (TypeError, ValueError) as err:
            assert str(err) and raised_here(err), "".join(traceback.format_exception(err))
            return
    expect(out)


sizes = st.integers(1, 300)
tensor_dtypes = st.sampled_from([torch.uint8, torch.uint8, torch.float32, torch.float32,
                                 torch.float64, torch.float16, torch.uint16, torch.int16,
                                 torch.bool, torch.int64])


@st.composite
def tensors(draw):
    """Image-like tensors: leading dims 0-2, channels 0-6, any of several dtypes."""
    lead = draw(st.lists(st.integers(1, 2), max_size=2))
    shape = (*lead, draw(st.sampled_from([1, 2, 3, 4, 1, 3, 0, 5])), draw(sizes), draw(sizes))
    if draw(st.integers(0, 4)) == 0:
        shape = shape[-draw(st.integers(1, 2)):]  # too few dimensions
    dtype = draw(tensor_dtypes)
    x = torch.randint(0, 256, shape).to(dtype) if not dtype.is_floating_point else \
        torch.rand(shape, dtype=torch.float32).to(dtype)
    wrap = draw(st.sampled_from(["pure", "image", "video"]))
    if wrap == "image" and x.dim() >= 3:
        return tv_tensors.Image(x)
    if wrap == "video" and x.dim() >= 4:
        return tv_tensors.Video(x)
    return x


@PROPERTY
@given(x=tensors(), gate=st.sampled_from(["auto", None]))
def test_deblock_tensors_keep_type_shape_dtype(model, x, gate):
    deblock = Deblock(model, gate=gate)

    def expect(out):
        assert type(out) is type(x) and out.shape == x.shape and out.dtype == x.dtype

    check_or_clear_error(lambda: deblock(x), expect)


@PROPERTY
@given(mode=st.sampled_from(["L", "LA", "RGB", "RGBA", "P", "1", "CMYK", "I;16", "I", "F"]),
       width=sizes, height=sizes, gate=st.sampled_from(["auto", None]))
def test_deblock_pil_images_keep_mode_and_size(model, mode, width, height, gate):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3),
                                                             dtype=np.uint8)).convert(mode)
    deblock = Deblock(model, gate=gate)

    def expect(out):
        assert isinstance(out, Image.Image) and out.mode == mode and out.size == image.size

    check_or_clear_error(lambda: deblock(image), expect)


@st.composite
def frames(draw):
    h, w = draw(sizes), draw(sizes)
    shape = draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 2), (h, w, 3), (h, w, 4), (h, w, 5),
                                  (2, h, w, 3), (h,)]))
    dtype = draw(st.sampled_from([np.uint8, np.uint8, np.uint8, np.uint16, np.float32, np.int8,
                                  np.bool_]))
    return (np.random.default_rng(1).integers(0, 2, shape) * 100).astype(dtype)


@PROPERTY
@given(frame=frames(), gate=st.sampled_from(["auto", None]))
def test_frame_filter_keeps_shape_and_dtype(model, frame, gate):
    frame_filter = FrameFilter(model, gate=gate)

    def expect(out):
        assert isinstance(out, np.ndarray) and out.shape == frame.shape and out.dtype == frame.dtype

    check_or_clear_error(lambda: frame_filter(frame), expect)


@PROPERTY
@given(frame=frames(), gate=st.sampled_from(["auto", None]))
def test_yolo_batch_function_keeps_shape_and_dtype(model, frame, gate):
    """The callback's work on what a predictor may hold: BGR/gray arrays or float tensors."""
    engine = Engine(model)

    def expect(out):
        assert len(out) == 1 and out[0].shape == frame.shape and out[0].dtype == frame.dtype

    check_or_clear_error(lambda: deblock_images(engine, [frame], QualityGate(gate)), expect)


def test_nan_and_inf_tensors_raise(model):
    for value in (float("nan"), float("inf")):
        x = torch.rand(3, 16, 16)
        x[1, 2, 3] = value
        for gate in ("auto", None):
            with pytest.raises(ValueError, match="NaN or infinite"):
                Deblock(model, gate=gate)(x)
            with pytest.raises(ValueError, match="NaN or infinite"):
                deblock_images(Engine(model), x[None], QualityGate(gate))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
def test_check_finite_in_every_float_dtype_and_layout(dtype, layout):
    """check_finite reads CPU tensors with NumPy (bfloat16, which NumPy lacks, with torch):
    a single NaN, +inf or -inf anywhere is found, in any layout; finite images pass."""
    from dcsc_preproc.engine import check_finite

    base = torch.rand(2, 3, 16, 24).to(dtype)
    if layout == "channels_last":
        base = base.contiguous(memory_format=torch.channels_last)
    def view(x):
        return x[..., ::2] if layout == "strided" else x

    check_finite(view(base))
    check_finite(torch.arange(4))  # integer tensors: nothing to check
    for value in (float("nan"), float("inf"), float("-inf")):
        bad = base.clone(memory_format=torch.preserve_format)
        bad[1, 2, 15, 22] = value  # column 22: inside the strided view as well
        with pytest.raises(ValueError, match="NaN or infinite"):
            check_finite(view(bad))
        bad[1, 2, 15, 22] = 0.5
        bad[0, 0, 0, 23] = value  # outside the strided view only
        if layout == "strided":
            check_finite(view(bad))


def test_too_small_images_pass_with_one_warning(model):
    deblock = Deblock(model, gate=None)
    tiny = [torch.rand(3, 7, 7), torch.rand(3, 5, 30)]
    with pytest.warns(UserWarning, match="smaller than 8x8") as record:
        assert all(deblock(x) is x for x in tiny)
    assert len(record) == 1 and deblock.gate.passed == 2
    frame = np.zeros((7, 7, 3), np.uint8)
    with pytest.warns(UserWarning, match="smaller than 8x8"):
        assert FrameFilter(model, gate=None)(frame) is frame


def test_sixteen_bit_images_pass_unchanged_everywhere(model):
    """Documented behaviour: more than 8 bits a sample was never baseline JPEG, so it passes."""
    pil = Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 200)
    tensor = torch.arange(3 * 256, dtype=torch.int32).reshape(3, 16, 16).to(torch.uint16)
    frame = np.zeros((16, 16, 3), np.uint16)
    with pytest.warns(UserWarning, match="16-bit"):
        assert Deblock(model, gate=None)(pil) is pil
    with pytest.warns(UserWarning, match="16-bit"):
        assert Deblock(model, gate=None)(tensor) is tensor
    with pytest.warns(UserWarning, match="16-bit"):
        assert FrameFilter(model, gate=None)(frame) is frame


def test_alpha_is_kept_in_deblock(model, photo):
    alpha = np.random.default_rng(2).integers(0, 256, photo.shape[:2], dtype=np.uint8)
    for mode, colour in (("RGBA", photo), ("LA", photo[..., 1])):
        image = Image.fromarray(np.dstack([colour, alpha]), mode)
        out = Deblock(model, gate=None)(image)
        assert out.mode == mode
        np.testing.assert_array_equal(np.asarray(out)[..., -1], alpha)
        assert not np.array_equal(np.asarray(out)[..., :-1], np.asarray(image)[..., :-1])
    rgba = torch.from_numpy(np.dstack([photo, alpha])).permute(2, 0, 1)
    out = Deblock(model, gate=None)(rgba)
    assert torch.equal(out[3], rgba[3]) and not torch.equal(out[:3], rgba[:3])


def test_gate_passes_the_same_objects_and_restores_low_quality(model, photo):
    clean, blocky = jpeg(photo, 92), jpeg(photo, 15)
    deblock = Deblock(model)
    with Image.open(io.BytesIO(clean)) as opened:
        assert deblock(opened) is opened  # judged by its tables
    decoded = np.asarray(Image.open(io.BytesIO(clean)).convert("RGB")).copy()
    x = torch.from_numpy(decoded).permute(2, 0, 1)
    assert deblock(x) is x
    low = torch.from_numpy(np.asarray(Image.open(io.BytesIO(blocky)).convert("RGB")).copy())
    batch = torch.stack([x, low.permute(2, 0, 1)])
    out = deblock(batch)
    assert torch.equal(out[0], batch[0]) and not torch.equal(out[1], batch[1])
    assert (deblock.gate.passed, deblock.gate.restored) == (3, 1)

    frame = decoded[..., ::-1].copy()
    frame_filter = FrameFilter(model)
    assert frame_filter(frame) is frame
    assert frame_filter.gate.passed == 1
    engine = Engine(model)
    images = [frame, low.numpy()[..., ::-1].copy()]
    out = deblock_images(engine, images, QualityGate())
    assert out[0] is images[0] and not np.array_equal(out[1], images[1])


def read_only_inputs(folder: Path, photo: np.ndarray) -> dict[Path, bytes]:
    """A folder of inputs (clean and blocky JPEGs, RGBA and 16-bit PNGs, a tiny image, a
    corrupt file), all made read-only; returns their bytes."""
    folder.mkdir()
    (folder / "clean.jpg").write_bytes(jpeg(photo, 92))
    (folder / "blocky.jpg").write_bytes(jpeg(photo, 12))
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 99, np.uint8)])).save(
        folder / "alpha.png")
    Image.fromarray(np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).save(
        folder / "deep.png")
    Image.fromarray(photo[:7, :7]).save(folder / "tiny.png")
    (folder / "corrupt.jpg").write_bytes(jpeg(photo, 50)[:40])
    for f in folder.iterdir():
        f.chmod(stat.S_IRUSR | stat.S_IRGRP)
    return {f: f.read_bytes() for f in folder.iterdir()}


def assert_untouched(inputs: dict[Path, bytes]) -> None:
    """Same bytes, still read-only (root may write read-only files, so the bytes decide)."""
    for f, data in inputs.items():
        assert f.read_bytes() == data
        assert not f.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_cli_deblock_skips_unreadable_and_never_writes_inputs(model, photo, tmp_path, capsys):
    inputs = read_only_inputs(tmp_path / "in", photo)
    weights = save_model(model, tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    with pytest.warns(UserWarning):
        cli_main(["deblock", str(tmp_path / "in"), "--out", str(out), "--model", str(weights)])
    assert_untouched(inputs)
    err = capsys.readouterr().err
    assert "corrupt.jpg" in err and "1 de-blocked" in err and "1 unreadable" in err
    written = {f.name for f in out.iterdir()}
    assert written == {"clean.png", "blocky.png", "alpha.png", "deep.png", "tiny.png"}
    clean = np.asarray(Image.open(tmp_path / "in" / "clean.jpg"))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "clean.png")), clean)  # passed
    deep, given = Image.open(out / "deep.png"), Image.open(tmp_path / "in" / "deep.png")
    assert deep.mode.startswith("I") and np.array_equal(np.asarray(deep), np.asarray(given))
    assert np.asarray(Image.open(out / "alpha.png"))[..., 3].min() == 99
    with pytest.raises(SystemExit, match="corrupt.jpg"):  # named on its own: non-zero exit
        cli_main(["deblock", str(tmp_path / "in" / "corrupt.jpg"), "--out", str(tmp_path / "o2"),
                  "--model", str(weights)])
    with pytest.raises(SystemExit, match="over an input"):
        cli_main(["deblock", str(tmp_path / "in" / "alpha.png"), "--out", str(tmp_path / "in"),
                  "--model", str(weights), "--overwrite"])
    assert_untouched(inputs)


def test_detect_skips_unreadable_and_tiny_images_do_not_crash(detector, model, photo, tmp_path,
                                                              capsys):
    inputs = read_only_inputs(tmp_path / "in", photo)
    weights = save_model(model, tmp_path / "tiny.safetensors")
    args = ["--detector", str(detector), "--deblock", str(weights), "--imgsz", "64"]
    with pytest.warns(UserWarning):
        assert detect.main([*args, "--source", str(tmp_path / "in"), "--save",
                            str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "skipping" in captured.err and "corrupt.jpg" in captured.err
    assert "tiny.png: " in captured.out and "1 de-blocked" in captured.out
    assert detect.main([*args, "--source", str(tmp_path / "in" / "corrupt.jpg"), "--save",
                        str(tmp_path / "out")]) == 1
    assert "corrupt.jpg" in capsys.readouterr().err
    assert_untouched(inputs)


def test_yolo_callback_on_a_tiny_array(detector, model):
    """The issue's 7x7 image: it passes the de-blocker with a warning, detection still runs."""
    yolo = add_deblocking(load_detector(detector), model, gate=None)
    with pytest.warns(UserWarning, match="smaller than 8x8"):
        results = yolo.predict(np.zeros((7, 7, 3), np.uint8), imgsz=64, verbose=False)
    assert len(results) == 1 and yolo.deblock_gate.passed == 1
