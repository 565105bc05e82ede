"""Image-quality metrics for JPEG de-blocking (PSNR, SSIM, PSNR-B).

All functions take single-channel (Y) 2-D arrays on the 0-255 scale, ``uint8`` or
float, and compute in float64 (so ``uint8`` differences never wrap). They follow the
MATLAB evaluation code used by the de-blocking literature (ARCNN / DCSC tables):

- ``psnr``: ``20*log10(255/RMSE)``.
- ``ssim``: Wang et al. ``ssim_index`` with ``'valid'`` filtering; the ARCNN tables use a
  uniform 8x8 window (``ssim_index(a, b, [0.01 0.03], ones(8))``), the classic choice
  is the 11x11 Gaussian (sigma 1.5).
- ``psnrb``: PSNR-B of Yim & Bovik, as in ``compute_psnrb.m`` / ``compute_bef.m``.
- ``gradient_ratio``: not in the papers; how much edge and texture energy a result keeps
  against the original (1 = as much), to tell smoothing apart from restoring.

Colour conversion is not done here; see :mod:`dcsc_preproc.colour`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "ssim", "psnrb", "blocking_effect_factor", "gradient_ratio", "evaluate",
           "SSIM_WINDOWS"]

_MIN_SIZE = 8
_BLOCK = 8
_K1, _K2, _L = 0.01, 0.03, 255.0

SSIM_WINDOWS = ("uniform8", "gaussian11")


def _as_image(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D single-channel (Y) array, got shape {arr.shape}")
    if arr.shape[0] < _MIN_SIZE or arr.shape[1] < _MIN_SIZE:
        raise ValueError(
            f"{name} is too small: shape {arr.shape}, need at least {_MIN_SIZE}x{_MIN_SIZE}"
        )
    return arr.astype(np.float64, copy=False)


def _as_pair(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs, rs = np.shape(x), np.shape(ref)
    if len(xs) == 2 and len(rs) == 2 and xs != rs:
        raise ValueError(f"shape mismatch: x has shape {xs}, ref has shape {rs}")
    xa, ra = _as_image(x, "x"), _as_image(ref, "ref")
    if xa.shape != ra.shape:  # pragma: no cover - caught above
        raise ValueError(f"shape mismatch: x has shape {xa.shape}, ref has shape {ra.shape}")
    return xa, ra


def psnr(x: np.ndarray, ref: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB, ``20*log10(data_range/RMSE)``.

    The standard fidelity number of every de-blocking table; ``inf`` when the images
    are identical.

    >>> import numpy as np
    >>> ref = np.full((16, 16), 100, dtype=np.uint8)
    >>> round(psnr(ref + 5, ref), 4)  # RMSE 5 -> 20*log10(51)
    34.1514
    >>> psnr(ref, ref)
    inf
    """
    xa, ra = _as_pair(x, ref)
    mse = float(np.mean((xa - ra) ** 2))
    if mse == 0.0:
        return math.inf
    return 20.0 * math.log10(float(data_range) / math.sqrt(mse))


def _valid_filter_1d(a: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """Correlate ``a`` with 1-D ``taps`` along ``axis``, keeping only 'valid' outputs."""
    k = taps.size
    n = a.shape[axis] - k + 1
    out = None
    for i, t in enumerate(taps):
        sl = [slice(None), slice(None)]
        sl[axis] = slice(i, i + n)
        term = t * a[tuple(sl)]
        out = term if out is None else out + term
    return out


def _window_taps(window: str) -> np.ndarray:
    """Separable 1-D taps whose outer product is the normalised 2-D SSIM window."""
    if window == "uniform8":
        return np.full(8, 1.0 / 8.0)
    if window == "gaussian11":
        # MATLAB fspecial('gaussian', 11, 1.5) is separable: outer(g, g) with g normalised.
        r = np.arange(11, dtype=np.float64) - 5.0
        g = np.exp(-(r**2) / (2.0 * 1.5**2))
        return g / g.sum()
    raise ValueError(f"unknown SSIM window {window!r}; expected one of {SSIM_WINDOWS}")


def ssim(x: np.ndarray, ref: np.ndarray, window: str = "uniform8") -> float:
    """Mean structural similarity (Wang et al. 2004), K1=0.01, K2=0.03, L=255.

    Local statistics use MATLAB ``filter2(w, img, 'valid')`` (no padding) and the
    result is the mean of the SSIM map, as in Wang's ``ssim_index.m`` (no automatic
    down-sampling). ``window="uniform8"`` reproduces the ARCNN evaluation
    (``ones(8)/64``); ``window="gaussian11"`` is the 11x11 Gaussian with sigma 1.5 and
    needs images of at least 11x11.

    >>> import numpy as np
    >>> ref = np.tile(np.arange(16.0) * 10, (16, 1))
    >>> ssim(ref, ref)
    1.0
    >>> 0.0 < ssim(ref + np.eye(16) * 20, ref, window="gaussian11") < 1.0
    True
    """
    taps = _window_taps(window)
    xa, ra = _as_pair(x, ref)
    k = taps.size
    if xa.shape[0] < k or xa.shape[1] < k:
        raise ValueError(f"images of shape {xa.shape} are smaller than the {k}x{k} {window} window")

    def filt(a: np.ndarray) -> np.ndarray:
        return _valid_filter_1d(_valid_filter_1d(a, taps, 0), taps, 1)

    c1 = (_K1 * _L) ** 2
    c2 = (_K2 * _L) ** 2
    mu_x, mu_r = filt(xa), filt(ra)
    mu_xx, mu_rr, mu_xr = mu_x * mu_x, mu_r * mu_r, mu_x * mu_r
    var_x = filt(xa * xa) - mu_xx
    var_r = filt(ra * ra) - mu_rr
    cov = filt(xa * ra) - mu_xr
    ssim_map = ((2.0 * mu_xr + c1) * (2.0 * cov + c2)) / ((mu_xx + mu_rr + c1) * (var_x + var_r + c2))
    return float(ssim_map.mean())


def blocking_effect_factor(x: np.ndarray) -> float:
    """Blocking effect factor (BEF) of one image, block size 8, as in ``compute_bef.m``.

    Compares mean squared neighbour differences across 8x8 block boundaries (D_B)
    with those inside blocks (D_Bc); ``eta*(D_B - D_Bc)`` with
    ``eta = log2(8)/log2(min(H, W))`` when D_B > D_Bc, else 0. Pair counts use the
    real-valued ``W/8`` and ``H/8`` of the MATLAB code, so sizes that are not
    multiples of 8 match it. An image with no block boundary (8 pixels on both
    sides) has BEF 0.

    >>> import numpy as np
    >>> im = np.zeros((16, 16)); im[:, 8:] = 10  # one step on the column boundary
    >>> blocking_effect_factor(im)  # 0.75 * (16*100 / 32 - 0)
    37.5
    """
    im = _as_image(x, "x")
    h, w = im.shape
    b = _BLOCK
    dh = (im[:, :-1] - im[:, 1:]) ** 2  # pair (j, j+1) for j = 0..w-2
    dv = (im[:-1, :] - im[1:, :]) ** 2  # pair (i, i+1) for i = 0..h-2
    col_b = np.arange(b - 1, w - 1, b)  # MATLAB 8:8:(wid-1), 0-based
    row_b = np.arange(b - 1, h - 1, b)
    sum_b = float(dh[:, col_b].sum() + dv[row_b, :].sum())
    sum_bc = float(dh.sum() + dv.sum()) - sum_b

    n_hb = h * (w / b - 1.0)
    n_vb = w * (h / b - 1.0)
    n_hbc = h * (w - 1) - n_hb
    n_vbc = w * (h - 1) - n_vb
    n_b = n_hb + n_vb
    if n_b <= 0.0:
        return 0.0
    d_b = sum_b / n_b
    d_bc = sum_bc / (n_hbc + n_vbc)
    if d_b <= d_bc:
        return 0.0
    eta = math.log2(b) / math.log2(min(h, w))
    return eta * (d_b - d_bc)


def psnrb(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR-B (Yim & Bovik 2011): ``10*log10(255**2 / (MSE + BEF(x)))`` in dB.

    PSNR penalised by the blockiness of the tested image ``x`` only (``ref`` enters
    through the MSE), as in the ARCNN ``compute_psnrb.m``; so ``psnrb <= psnr``, with
    equality when ``x`` shows no blocking. ``inf`` when ``MSE + BEF == 0``.

    >>> import numpy as np
    >>> ref = np.zeros((16, 16))
    >>> x = ref.copy(); x[:, 8:] = 10
    >>> round(psnrb(x, ref), 4)  # 10*log10(255**2 / (50 + 37.5))
    28.7107
    """
    xa, ra = _as_pair(x, ref)
    mse_b = float(np.mean((xa - ra) ** 2)) + blocking_effect_factor(xa)
    if mse_b == 0.0:
        return math.inf
    return 10.0 * math.log10(_L**2 / mse_b)


def gradient_ratio(x: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute neighbour difference (horizontal plus vertical) of ``x`` over ``ref``'s.

    Below 1, ``x`` is smoother than the original (detail lost); above 1, rougher (noise,
    ringing); ``nan`` for a flat ``ref``. JPEG at low quality scores well below 1 (its
    quantisation removes more texture than its block edges add), and a de-blocker that smooths
    more than it must scores lower than one that restores; PSNR-B alone rewards the smoothing.

    >>> import numpy as np
    >>> ref = np.tile([0.0, 10.0], (16, 8))
    >>> gradient_ratio(ref / 2, ref)
    0.5
    """
    xa, ra = _as_pair(x, ref)
    reference = _gradient_energy(ra)
    return math.nan if reference == 0.0 else _gradient_energy(xa) / reference


def _gradient_energy(a: np.ndarray) -> float:
    return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())


def evaluate(x: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """All table metrics at once: ``psnr``, ``ssim`` (uniform8), ``ssim_gaussian``, ``psnrb``
    and ``detail`` (:func:`gradient_ratio`).

    Convenience for evaluation loops; images must be at least 11x11 (Gaussian window).

    >>> import numpy as np
    >>> ref = np.tile(np.arange(16.0) * 10, (16, 1))
    >>> sorted(evaluate(ref, ref).items())
    [('detail', 1.0), ('psnr', inf), ('psnrb', inf), ('ssim', 1.0), ('ssim_gaussian', 1.0)]
    """
    return {
        "psnr": psnr(x, ref),
        "ssim": ssim(x, ref, window="uniform8"),
        "ssim_gaussian": ssim(x, ref, window="gaussian11"),
        "psnrb": psnrb(x, ref),
        "detail": gradient_ratio(x, ref),
    }
