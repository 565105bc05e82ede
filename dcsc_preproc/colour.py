"""RGB <-> YCbCr in the two conventions this project uses.

- ``"matlab"``: MATLAB ``rgb2ycbcr`` (ITU-R BT.601, studio range, Y in 16-235). The
  restoration benchmarks (and the DCSC authors' weights) use this Y.
- ``"bt601"``: full-range BT.601 as used inside JPEG (JFIF), Y in 0-255.

Tensors are float in [0, 1] with channels on dim ``-3`` (``(3, H, W)`` or ``(N, 3, H, W)``).
"""

from __future__ import annotations

import torch

_OFFSETS = {"matlab": (16.0, 128.0, 128.0), "bt601": (0.0, 128.0, 128.0)}
_MATRICES = {
    "matlab": ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214)),
    "bt601": ((76.245, 149.685, 29.07), (-43.0275, -84.4725, 127.5), (127.5, -106.76544, -20.73456)),
}
CONVENTIONS = tuple(_MATRICES)


def _check(x: torch.Tensor, convention: str) -> None:
    if convention not in _MATRICES:
        raise ValueError(f"unknown YCbCr convention {convention!r}; expected one of {CONVENTIONS}")
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected 3 channels on dim -3, got shape {tuple(x.shape)}")


def _matrix(convention: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.tensor(_MATRICES[convention], dtype=torch.float64) / 255.0
    b = torch.tensor(_OFFSETS[convention], dtype=torch.float64) / 255.0
    return m.to(x.device, x.dtype), b.to(x.device, x.dtype)


def rgb_to_ycbcr(x: torch.Tensor, convention: str = "matlab") -> torch.Tensor:
    """RGB in [0, 1] to YCbCr in [0, 1] (each channel divided by 255).

    Example:
        >>> rgb_to_ycbcr(torch.ones(3, 1, 1))[:, 0, 0] * 255
        tensor([235.0000, 128.0000, 128.0000])
    """
    _check(x, convention)
    m, b = _matrix(convention, x)
    return torch.einsum("ij,...jhw->...ihw", m, x) + b[:, None, None]


def ycbcr_to_rgb(x: torch.Tensor, convention: str = "matlab") -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clamped).

    Example:
        >>> rgb = torch.rand(3, 4, 4)
        >>> torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
        True
    """
    _check(x, convention)
    m, b = _matrix(convention, x)
    return torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(m), x - b[:, None, None])


def rgb_to_y(x: torch.Tensor, convention: str = "matlab") -> torch.Tensor:
    """The Y channel only, shape ``(..., 1, H, W)``."""
    return rgb_to_ycbcr(x, convention)[..., :1, :, :]
