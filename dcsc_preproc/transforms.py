"""The torchvision v2 transform :class:`Deblock`: JPEG artifact removal inside a data pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as F

from .engine import DEFAULT_TILE, Engine, check_finite
from .model import DCSC
from .quality import WIDE_MODES, QualityGate
from .zoo import DEFAULT_MODEL

#: PIL modes Deblock restores (the alpha of ``LA``/``RGBA`` is kept as it is).
PIL_MODES = ("L", "LA", "RGB", "RGBA")


class Deblock(Transform):
    """Remove JPEG artifacts from images and videos; boxes, masks and labels pass through.

    Acts on PIL images (mode ``"L"``, ``"LA"``, ``"RGB"`` or ``"RGBA"``), ``tv_tensors.Image``,
    ``tv_tensors.Video`` and pure tensors ``(..., C, H, W)`` with C in {1, 2, 3, 4} (gray,
    gray + alpha, RGB, RGBA; alpha is kept), uint8 or float in [0, 1]. Each comes back as the
    same type, shape and dtype (uint8 is rounded). ``model`` is anything
    :func:`~dcsc_preproc.zoo.load_model` accepts; ``None`` means
    :data:`~dcsc_preproc.zoo.DEFAULT_MODEL`. The :class:`~dcsc_preproc.engine.Engine` is built
    on the first call in each process and left out of the pickled state, so the transform works
    in ``DataLoader`` workers. Outputs carry no autograd history.

    ``gate`` (:class:`~dcsc_preproc.quality.QualityGate`, or what it takes: ``"auto"``, a
    quality, ``None`` for always on) decides image by image: an image estimated above the
    threshold, smaller than 8x8 or 16-bit comes back as the very same object (in a batch, its
    values are copied exactly). PIL images opened from a JPEG file are judged by their
    quantisation tables, everything else by its pixels. Float tensors holding NaN or infinity
    raise ``ValueError``. ``backend`` goes to the Engine (``"openvino"`` for CPU deployment:
    ``pip install "dcsc-preproc[openvino]"``; ``None``: torch, or OpenVINO for an export folder).

    Example:
        >>> from torchvision.transforms import v2
        >>> from dcsc_preproc.model import DCSC
        >>> pipeline = v2.Compose([Deblock(DCSC(in_channels=3, iterations=2), gate=None),
        ...                        v2.ToDtype(torch.float32, scale=True)])
        >>> image = tv_tensors.Image(torch.randint(0, 256, (3, 24, 32), dtype=torch.uint8))
        >>> out = pipeline(image)
        >>> type(out).__name__, out.dtype, tuple(out.shape)
        ('Image', torch.float32, (3, 24, 32))
    """

    _transformed_types = (F.is_pure_tensor, tv_tensors.Image, tv_tensors.Video, PIL.Image.Image)

    def __init__(self, model: str | Path | DCSC | None = None,
                 device: str | torch.device | None = None, tile: int | None = DEFAULT_TILE,
                 iterations: int | None = None,
                 gate: QualityGate | int | str | None = "auto",
                 backend: str | None = None) -> None:
        super().__init__()
        self.model = DEFAULT_MODEL if model is None else model
        self.device = device
        self.tile = tile
        self.iterations = iterations
        self.backend = backend
        self.gate = QualityGate.of(gate)
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The engine of this process, built on first use."""
        if self._engine is None:
            self._engine = Engine(self.model, self.device, self.tile, iterations=self.iterations,
                                  backend=self.backend)
        return self._engine

    def __getstate__(self) -> dict[str, Any]:
        # Each process builds its own engine (device, threads): never ship one through pickle.
        return {**self.__dict__, "_engine": None}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, PIL.Image.Image):
            return self._restore_pil(inpt)
        x = inpt.as_subclass(torch.Tensor)
        _check_tensor(x)
        out = self._restore(x)
        if out is x:
            return inpt
        return out if F.is_pure_tensor(inpt) else tv_tensors.wrap(out, like=inpt)

    def _restore_pil(self, image: PIL.Image.Image) -> PIL.Image.Image:
        if image.mode not in PIL_MODES and image.mode not in WIDE_MODES:
            raise ValueError(f"Deblock takes PIL images in mode {PIL_MODES}, got mode "
                             f"{image.mode!r}; convert it first, e.g. image.convert('RGB')")
        if not self.gate.restore(image):
            return image
        x = F.pil_to_tensor(image)
        return F.to_pil_image(self._run(x), mode=image.mode)

    def _restore(self, x: torch.Tensor) -> torch.Tensor:
        """De-block the images of ``(..., C, H, W)`` the gate lets through; ``x`` itself if
        none, else a new tensor of the same shape and dtype."""
        batch = x.reshape(-1, *x.shape[-3:])
        chosen = [i for i in range(len(batch)) if self.gate.restore(batch[i])]
        if not chosen:
            return x
        if len(chosen) == len(batch):
            return self._run(batch).reshape(x.shape)
        out = batch.clone()
        out[chosen] = self._run(batch[chosen])
        return out.reshape(x.shape)

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        """De-block a uint8 or float ``(..., C, H, W)``, alpha (C = 2 or 4) kept; same dtype."""
        alpha = batch[..., -1:, :, :] if batch.shape[-3] in (2, 4) else None
        colour = batch if alpha is None else batch[..., :-1, :, :]
        flat = colour.reshape(-1, *colour.shape[-3:])
        if batch.dtype == torch.uint8 and batch.device.type == "cpu":
            # bytes in host memory take the engine's frame path (no torch op around the model)
            restored = self.engine.restore_arrays([image.permute(1, 2, 0).numpy()
                                                   for image in flat])
            out = torch.from_numpy(np.stack(restored)).reshape(
                len(flat), *flat.shape[-2:], -1).permute(0, 3, 1, 2)
        elif batch.dtype == torch.uint8:  # bytes cross to the engine's device, not floats
            restored = self.engine(flat.to(self.engine.device).float().div(255))
            out = restored.mul(255).round().to(torch.uint8).to(batch.device)
        else:
            # The engine runs in inference mode; a clone is an ordinary tensor that later
            # autograd-tracked code (e.g. a training step) may use.
            out = self.engine(flat).clone()
        out = out.reshape(colour.shape)
        return out if alpha is None else torch.cat([out, alpha], dim=-3)


def _check_tensor(x: torch.Tensor) -> None:
    """Raise ``TypeError``/``ValueError`` for a tensor Deblock cannot take (16-bit passes)."""
    if x.dtype not in (torch.uint8, torch.uint16) and not x.is_floating_point():
        raise TypeError(f"Deblock takes uint8 or float images, got dtype {x.dtype}")
    if x.dim() < 3 or x.shape[-3] not in (1, 2, 3, 4):
        raise ValueError(f"Deblock takes images shaped (..., C, H, W) with C in 1-4, got "
                         f"{tuple(x.shape)}")
    if x.numel():
        check_finite(x)
