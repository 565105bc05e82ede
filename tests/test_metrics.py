"""Tests for dcsc_preproc.metrics (PSNR, SSIM, PSNR-B)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from dcsc_preproc import metrics
from dcsc_preproc.metrics import (blocking_effect_factor, evaluate, gradient_ratio, psnr, psnrb,
                                  ssim)

RNG_SEED = 1234


def _texture(h: int, w: int, seed: int = RNG_SEED) -> np.ndarray:
    """Smooth-ish natural-looking test image in roughly [30, 220]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 125 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 0.1 * (xx - yy)
    return np.clip(base + rng.normal(0, 8, (h, w)), 0, 255)


def _blocky(h: int, w: int, seed: int = RNG_SEED) -> np.ndarray:
    """Piecewise-constant 8x8 blocks with different values (worst-case JPEG look)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(20, 235, (math.ceil(h / 8), math.ceil(w / 8))).astype(np.float64)
    return np.kron(blocks, np.ones((8, 8)))[:h, :w]


def _ssim_bruteforce(x: np.ndarray, ref: np.ndarray, win: np.ndarray) -> float:
    """Direct per-window SSIM (MATLAB 'valid' positions), independent of the module."""
    x = x.astype(np.float64)
    ref = ref.astype(np.float64)
    win = win / win.sum()
    k0, k1 = win.shape
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - k0 + 1):
        for j in range(x.shape[1] - k1 + 1):
            px, pr = x[i : i + k0, j : j + k1], ref[i : i + k0, j : j + k1]
            mx, mr = (win * px).sum(), (win * pr).sum()
            vx = (win * (px - mx) ** 2).sum()
            vr = (win * (pr - mr) ** 2).sum()
            cv = (win * (px - mx) * (pr - mr)).sum()
            vals.append(((2 * mx * mr + c1) * (2 * cv + c2)) / ((mx**2 + mr**2 + c1) * (vx + vr + c2)))
    return float(np.mean(vals))


def _gauss11() -> np.ndarray:
    r = np.arange(-5, 6, dtype=np.float64)
    g2 = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    return g2 / g2.sum()


# --------------------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf():
    ref = _texture(32, 40)
    assert psnr(ref, ref) == math.inf


def test_psnr_constant_offset():
    ref = _texture(32, 40)
    assert psnr(ref + 5, ref) == pytest.approx(20 * math.log10(255 / 5), abs=1e-10)
    assert psnr(ref - 5, ref) == pytest.approx(20 * math.log10(255 / 5), abs=1e-10)


def test_psnr_uint8_does_not_wrap():
    ref = np.full((16, 16), 5, dtype=np.uint8)
    x = np.zeros((16, 16), dtype=np.uint8)  # uint8 x - ref would wrap to 251
    assert psnr(x, ref) == pytest.approx(20 * math.log10(255 / 5), abs=1e-10)


def test_psnr_data_range():
    ref = np.zeros((8, 8))
    assert psnr(ref + 0.1, ref, data_range=1.0) == pytest.approx(20.0, abs=1e-9)


# --------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("window", ["uniform8", "gaussian11"])
def test_ssim_identical_is_one(window):
    ref = _texture(40, 48)
    assert ssim(ref, ref, window=window) == pytest.approx(1.0, abs=1e-12)
    flat = np.full((16, 16), 77.0)
    assert ssim(flat, flat, window=window) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "window, win2d", [("uniform8", np.ones((8, 8))), ("gaussian11", _gauss11())]
)
def test_ssim_matches_bruteforce_valid_windows(window, win2d):
    rng = np.random.default_rng(7)
    ref = _texture(23, 29)
    x = np.clip(ref + rng.normal(0, 15, ref.shape), 0, 255)
    assert ssim(x, ref, window=window) == pytest.approx(_ssim_bruteforce(x, ref, win2d), abs=1e-10)


def test_ssim_windows_differ_and_in_unit_interval():
    rng = np.random.default_rng(3)
    ref = _texture(64, 80)
    x = ref + rng.normal(0, 12, ref.shape)
    s_u = ssim(x, ref, window="uniform8")
    s_g = ssim(x, ref, window="gaussian11")
    assert 0.0 < s_u < 1.0
    assert 0.0 < s_g < 1.0
    assert abs(s_u - s_g) > 1e-4


def test_ssim_symmetric():
    rng = np.random.default_rng(5)
    ref = _texture(32, 32)
    x = ref + rng.normal(0, 10, ref.shape)
    assert ssim(x, ref) == pytest.approx(ssim(ref, x), abs=1e-12)


@pytest.mark.parametrize("window", ["uniform8", "gaussian11"])
def test_ssim_decreases_with_noise(window):
    ref = _texture(64, 64)
    noise = np.random.default_rng(11).normal(0, 1, ref.shape)
    values = [ssim(ref + s * noise, ref, window=window) for s in (1, 3, 10, 30, 60)]
    assert all(a > b for a, b in zip(values, values[1:])), values


# --------------------------------------------------------------------------- PSNR-B


def test_psnrb_hand_computed_16x16():
    # x: step of 10 exactly on the column block boundary (0-based cols 7|8), plus a step
    # of 1 inside the first block (cols 3|4); ref = x - 2 everywhere (MSE = 4).
    x = np.zeros((16, 16))
    x[:, 4:] += 1.0
    x[:, 8:] += 10.0
    ref = x - 2.0
    h = w = 16
    sum_boundary = h * 10.0**2  # 16 rows across the 7|8 column pair; row pairs are flat
    sum_nonboundary = h * 1.0**2  # 16 rows across the 3|4 column pair
    n_hb, n_vb = h * (w / 8 - 1), w * (h / 8 - 1)  # 16, 16
    n_hbc, n_vbc = h * (w - 1) - n_hb, w * (h - 1) - n_vb  # 224, 224
    d_b = sum_boundary / (n_hb + n_vb)  # 50
    d_bc = sum_nonboundary / (n_hbc + n_vbc)  # 1/28
    eta = math.log2(8) / math.log2(16)  # 0.75
    bef = eta * (d_b - d_bc)
    assert blocking_effect_factor(x) == pytest.approx(bef, rel=1e-12)
    assert psnrb(x, ref) == pytest.approx(10 * math.log10(255**2 / (4.0 + bef)), rel=1e-12)
    assert psnr(x, ref) == pytest.approx(20 * math.log10(255 / 2), rel=1e-12)


def test_psnrb_hand_computed_non_multiple_of_8_uses_real_counts():
    # 12x20: column boundaries at pairs 7|8 and 15|16 (k*8 <= 19), row boundary 7|8.
    x = np.zeros((12, 20))
    x[:, 16:] = 4.0  # step on the second (partial-block) column boundary
    h, w = x.shape
    n_b = h * (w / 8 - 1) + w * (h / 8 - 1)  # 18 + 10 = 28 (floor would give 12)
    bef = (math.log2(8) / math.log2(12)) * (h * 4.0**2 / n_b - 0.0)
    assert blocking_effect_factor(x) == pytest.approx(bef, rel=1e-12)
    assert psnrb(x, np.zeros_like(x)) == pytest.approx(
        10 * math.log10(255**2 / (np.mean(x**2) + bef)), rel=1e-12
    )


def test_psnrb_equals_psnr_without_blocking():
    # Only a non-boundary step (cols 3|4): D_B = 0 < D_Bc, so BEF = 0.
    x = np.zeros((24, 24))
    x[:, 4:] = 30.0
    ref = x + 3.0
    assert blocking_effect_factor(x) == 0.0
    assert psnrb(x, ref) == pytest.approx(psnr(x, ref), abs=1e-12)


def test_psnrb_lower_than_psnr_on_blocky_image():
    ref = _texture(64, 72)
    x = _blocky(64, 72)
    assert blocking_effect_factor(x) > 0.0
    assert psnrb(x, ref) < psnr(x, ref)


def test_psnrb_bef_taken_on_tested_image_only():
    smooth = _texture(48, 48)
    blocky = _blocky(48, 48)
    # Same MSE both ways; only the blocky image as x is penalised.
    assert psnrb(smooth, blocky) > psnrb(blocky, smooth)
    assert psnrb(blocky, smooth) == pytest.approx(
        10 * math.log10(255**2 / (np.mean((blocky - smooth) ** 2) + blocking_effect_factor(blocky)))
    )


def test_psnrb_identical_flat_is_inf_and_identical_blocky_is_finite():
    flat = np.full((16, 16), 50.0)
    assert psnrb(flat, flat) == math.inf
    blocky = _blocky(16, 16)
    assert math.isfinite(psnrb(blocky, blocky))  # MSE 0 but BEF > 0


def test_bef_zero_when_no_block_boundary():
    x = _blocky(8, 8) + np.arange(8.0)  # 8x8: no boundary pairs at all
    assert blocking_effect_factor(x) == 0.0


def test_non_multiple_of_8_size_works():
    ref = _texture(481, 321)
    x = np.clip(_blocky(481, 321) * 0.2 + ref * 0.8, 0, 255)
    out = evaluate(x, ref)
    assert set(out) == {"psnr", "ssim", "ssim_gaussian", "psnrb", "detail"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert 0.0 < out["ssim"] < 1.0 and 0.0 < out["ssim_gaussian"] < 1.0
    assert out["psnrb"] < out["psnr"]


# --------------------------------------------------------------------------- evaluate / errors


def test_evaluate_matches_individual_functions():
    rng = np.random.default_rng(9)
    ref = _texture(40, 40)
    x = (ref + rng.normal(0, 6, ref.shape)).clip(0, 255).round().astype(np.uint8)
    out = evaluate(x, ref)
    assert out == {
        "psnr": psnr(x, ref),
        "ssim": ssim(x, ref),
        "ssim_gaussian": ssim(x, ref, window="gaussian11"),
        "psnrb": psnrb(x, ref),
        "detail": gradient_ratio(x, ref),
    }


def test_gradient_ratio_tells_smoothing_from_noise():
    rng = np.random.default_rng(4)
    ref = _texture(48, 48)
    assert gradient_ratio(ref, ref) == 1.0
    blurred = (ref[:-1, :-1] + ref[1:, :-1] + ref[:-1, 1:] + ref[1:, 1:]) / 4
    assert gradient_ratio(blurred, ref[:-1, :-1]) < 0.9
    assert gradient_ratio(ref + rng.normal(0, 8, ref.shape), ref) > 1.1
    assert gradient_ratio(ref + 37.0, ref) == pytest.approx(1.0)  # a shift is no detail
    assert math.isnan(gradient_ratio(ref, np.full_like(ref, 9.0)))


@pytest.mark.parametrize("fn", [psnr, ssim, psnrb, gradient_ratio, evaluate])
def test_shape_mismatch_raises(fn):
    with pytest.raises(ValueError, match="shape mismatch"):
        fn(np.zeros((16, 16)), np.zeros((16, 17)))


@pytest.mark.parametrize("fn", [psnr, ssim, psnrb, evaluate])
@pytest.mark.parametrize("shape", [(16, 16, 3), (256,), (1, 16, 16)])
def test_non_2d_raises(fn, shape):
    with pytest.raises(ValueError, match="2-D"):
        fn(np.zeros(shape), np.zeros(shape))


@pytest.mark.parametrize("fn", [psnr, ssim, psnrb, evaluate])
@pytest.mark.parametrize("shape", [(7, 100), (100, 7), (4, 4)])
def test_too_small_raises(fn, shape):
    with pytest.raises(ValueError, match="too small"):
        fn(np.zeros(shape), np.zeros(shape))


def test_bef_input_validation():
    with pytest.raises(ValueError, match="2-D"):
        blocking_effect_factor(np.zeros((16, 16, 3)))
    with pytest.raises(ValueError, match="too small"):
        blocking_effect_factor(np.zeros((6, 16)))


def test_gaussian_window_needs_11x11_and_unknown_window_raises():
    with pytest.raises(ValueError, match="window"):
        ssim(np.zeros((10, 32)), np.zeros((10, 32)), window="gaussian11")
    assert ssim(np.zeros((10, 32)), np.zeros((10, 32)), window="uniform8") == 1.0
    with pytest.raises(ValueError, match="unknown SSIM window"):
        ssim(np.zeros((16, 16)), np.zeros((16, 16)), window="box7")


def test_docstring_examples():
    result = doctest.testmod(metrics, raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0
