"""The torchvision v2 transform :class:`Deblock`: JPEG artifact removal inside a data pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as F

from .engine import DEFAULT_TILE, Engine
from .model import DCSC
from .zoo import DEFAULT_MODEL

PIL_MODES = ("L", "RGB")


class Deblock(Transform):
    """Remove JPEG artifacts from images and videos; boxes, masks and labels pass through.

    Acts on PIL images (mode ``"L"`` or ``"RGB"``), ``tv_tensors.Image``, ``tv_tensors.Video``
    and pure tensors ``(..., C, H, W)`` with C in {1, 3} (gray or RGB), uint8 or float in
    [0, 1]. Each comes back as the same type, shape and dtype (uint8 is rounded). ``model`` is
    anything :func:`~dcsc_preproc.zoo.load_model` accepts; ``None`` means
    :data:`~dcsc_preproc.zoo.DEFAULT_MODEL`. The :class:`~dcsc_preproc.engine.Engine` is built
    on the first call in each process and left out of the pickled state, so the transform works
    in ``DataLoader`` workers. Outputs carry no autograd history.

    Example:
        >>> from torchvision.transforms import v2
        >>> from dcsc_preproc.model import DCSC
        >>> pipeline = v2.Compose([Deblock(DCSC(in_channels=3, iterations=2)),
        ...                        v2.ToDtype(torch.float32, scale=True)])
        >>> image = tv_tensors.Image(torch.randint(0, 256, (3, 24, 32), dtype=torch.uint8))
        >>> out = pipeline(image)
        >>> type(out).__name__, out.dtype, tuple(out.shape)
        ('Image', torch.float32, (3, 24, 32))
    """

    _transformed_types = (F.is_pure_tensor, tv_tensors.Image, tv_tensors.Video, PIL.Image.Image)

    def __init__(self, model: str | Path | DCSC | None = None,
                 device: str | torch.device | None = None, tile: int | None = DEFAULT_TILE,
                 iterations: int | None = None) -> None:
        super().__init__()
        self.model = DEFAULT_MODEL if model is None else model
        self.device = device
        self.tile = tile
        self.iterations = iterations
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The engine of this process, built on first use."""
        if self._engine is None:
            self._engine = Engine(self.model, self.device, self.tile, iterations=self.iterations)
        return self._engine

    def __getstate__(self) -> dict[str, Any]:
        # Each process builds its own engine (device, threads): never ship one through pickle.
        return {**self.__dict__, "_engine": None}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, PIL.Image.Image):
            if inpt.mode not in PIL_MODES:
                raise ValueError(f"Deblock takes PIL images in mode {PIL_MODES}, got mode "
                                 f"{inpt.mode!r}; convert it first, e.g. image.convert('RGB')")
            return F.to_pil_image(self._restore(F.pil_to_tensor(inpt)))
        out = self._restore(inpt.as_subclass(torch.Tensor))
        return out if F.is_pure_tensor(inpt) else tv_tensors.wrap(out, like=inpt)

    def _restore(self, x: torch.Tensor) -> torch.Tensor:
        """De-block a uint8 or float tensor ``(..., C, H, W)``; same shape and dtype out."""
        if x.dtype != torch.uint8 and not x.is_floating_point():
            raise TypeError(f"Deblock takes uint8 or float images, got dtype {x.dtype}")
        if x.dim() < 3:
            raise ValueError(f"Deblock takes images shaped (..., C, H, W), got {tuple(x.shape)}")
        batch = x.reshape(-1, *x.shape[-3:])
        if x.dtype == torch.uint8:  # bytes cross to the engine's device, not floats
            restored = self.engine(batch.to(self.engine.device).float().div(255))
            out = restored.mul(255).round().to(torch.uint8).to(x.device)
        else:
            # The engine runs in inference mode; a clone is an ordinary tensor that later
            # autograd-tracked code (e.g. a training step) may use.
            out = self.engine(batch).clone()
        return out.reshape(x.shape)
