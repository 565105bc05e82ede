"""The PyTorch backend: the DCSC module itself, in the Engine's precision and memory layout."""

from __future__ import annotations

import torch

from ..model import DCSC

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TorchBackend:
    """Run ``model`` with R = ``iterations``: bf16/fp16 by autocast (weights and the residual
    add stay fp32), ``channels_last`` as NHWC activations and weights (set on the model in
    place, so oneDNN and cuDNN skip layout reorders). The output keeps the input's layout.

    Example:
        >>> backend = TorchBackend(DCSC(iterations=2), 2, torch.device("cpu"), "fp32", True)
        >>> backend(torch.rand(1, 1, 16, 16)).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(self, model: DCSC, iterations: int, device: torch.device, precision: str,
                 channels_last: bool) -> None:
        self.model = model.to(device, memory_format=torch.channels_last if channels_last
                              else torch.contiguous_format)
        self.iterations = iterations
        self.device = device
        self.dtype = _AUTOCAST_DTYPES.get(precision)
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            return self.model(x, iterations=self.iterations).float()
