"""The DCSC network (Fu et al., ICCV 2019) and the fast variant built from the same parts.

DCSC restores a JPEG-compressed image ``J`` as ``J + H``: dilated 3x3 convolutions give
multi-scale features ``X``; a convolutional LISTA with one shared dictionary ``S`` runs
``U = ReLU(G*X + S*U)`` for ``iterations`` steps; a last 3x3 convolution maps the sparse
codes ``U`` to the residual ``H``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DCSCConfig:
    """Everything needed to rebuild a DCSC network (stored with saved weights).

    ``unshuffle`` > 1 runs the whole network on ``pixel_unshuffle``d input (``unshuffle``
    x ``unshuffle`` pixels per position), which divides the cost per pixel by
    ``unshuffle**2``; 8 keeps each JPEG block in one position. ``colour`` names the YCbCr
    convention a Y model was trained on (``"matlab"``: Y in 16-235, or ``"bt601"``:
    full-range JPEG Y); it is ignored for RGB models.
    """

    in_channels: int = 1
    dilated_features: int = 32
    features: int = 64
    iterations: int = 40
    dilations: tuple[int, ...] = (1, 2, 4)
    bias: bool = True
    unshuffle: int = 1
    colour: str = "matlab"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DCSCConfig":
        d = dict(d)
        if "dilations" in d:
            d["dilations"] = tuple(d["dilations"])
        return cls(**d)


class DCSC(nn.Module):
    """Deep convolutional sparse coding network for JPEG artifact reduction.

    Input and output are float images ``(N, C, H, W)`` in [0, 1] (the output is not
    clamped). With ``unshuffle`` > 1, ``H`` and ``W`` must be multiples of it.

    Example:
        >>> model = DCSC()
        >>> sum(p.numel() for p in model.parameters())
        93825
        >>> model(torch.rand(1, 1, 16, 16), iterations=2).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(self, in_channels: int = 1, dilated_features: int = 32, features: int = 64,
                 iterations: int = 40, dilations: tuple[int, ...] = (1, 2, 4), bias: bool = True,
                 unshuffle: int = 1, colour: str = "matlab") -> None:
        super().__init__()
        self.config = DCSCConfig(in_channels, dilated_features, features, iterations,
                                 tuple(dilations), bias, unshuffle, colour)
        c = in_channels * unshuffle**2
        self.dilated = nn.ModuleList(
            nn.Conv2d(c, dilated_features, 3, padding=d, dilation=d) for d in dilations)
        self.G = nn.Conv2d(dilated_features * len(dilations), features, 3, padding=1, bias=bias)
        self.S = nn.Conv2d(features, features, 3, padding=1, bias=bias)
        self.recon = nn.Conv2d(features, c, 3, padding=1)

    @classmethod
    def from_config(cls, config: DCSCConfig) -> "DCSC":
        return cls(**config.to_dict())

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return self.config.unshuffle

    @property
    def receptive_radius(self) -> int:
        """How far (in input pixels) an output pixel sees at the default iteration count."""
        return self.radius(self.config.iterations)

    def radius(self, iterations: int) -> int:
        """Receptive radius in input pixels for a given number of iterations."""
        return (max(self.config.dilations) + 2 + iterations) * self.config.unshuffle

    def forward(self, x: torch.Tensor, iterations: int | None = None,
                return_codes: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Restore ``x``; ``iterations`` overrides R (S is shared, so any R works).

        With ``return_codes=True`` also returns the sparse codes ``[U_0, ..., U_R]``.
        """
        r = self.config.iterations if iterations is None else iterations
        if r < 0:
            raise ValueError(f"iterations must be >= 0, got {r}")
        s = self.config.unshuffle
        j = F.pixel_unshuffle(x, s) if s > 1 else x
        features = torch.cat([conv(j) for conv in self.dilated], dim=1)
        g = self.G(features)
        u = F.relu(g)
        codes = [u] if return_codes else []
        for _ in range(r):
            u = F.relu(g + self.S(u))
            if return_codes:
                codes.append(u)
        h = self.recon(u)
        if s > 1:
            h = F.pixel_shuffle(h, s)
        out = x + h
        return (out, codes) if return_codes else out


#: Weight initialisations :func:`init_weights_` knows.
INITS = ("torch", "glorot")


def init_weights_(model: DCSC, scheme: str = "torch") -> DCSC:
    """Re-initialise every convolution of ``model`` in place; returns it.

    ``"torch"`` is PyTorch's ``Conv2d`` default (what ``DCSC()`` already has): kernels
    Kaiming-uniform with ``a=sqrt(5)``, i.e. U(+-1/sqrt(fan_in)), biases U(+-1/sqrt(fan_in)).
    ``"glorot"`` is TensorFlow's ``conv2d`` default, which the authors' TF1 code would get
    unless it named another: kernels Glorot-uniform, U(+-sqrt(6/(fan_in + fan_out))), biases
    zero. For the paper net Glorot gives S and G about 1.7x and 1.9x the spread of PyTorch's
    (docs/RESULTS.md, issue 16).

    Example:
        >>> model = init_weights_(DCSC(iterations=2), "glorot")
        >>> bool(model.recon.bias.eq(0).all()), bool(model.S.weight.abs().max() <= (6 / 1152) ** 0.5)
        (True, True)
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; expected one of {INITS}")
    for conv in model.modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if scheme == "torch":
            conv.reset_parameters()
        else:
            nn.init.xavier_uniform_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
    return model

