"""Inference backends: what runs the network once the Engine has prepared a padded tensor.

A backend is a callable ``backend(x) -> y`` on a padded float32 ``(N, C, H, W)`` tensor on the
Engine's device (any memory format; H and W multiples of the model's ``multiple``) that
returns the restored tensor of the same shape and device, not clamped. Colour, padding, tiling
and uint8 conversion stay in :class:`~dcsc_preproc.Engine`, so a new runtime is one small
module here:

- ``"torch"``: PyTorch with autocast and channels_last (:mod:`.pytorch`);
- ``"openvino"``: the model converted with ``openvino.convert_model`` and compiled for the CPU,
  or an INT8 export folder (:mod:`.openvino`; ``pip install "dcsc-preproc[openvino]"``);
- ``"onnxruntime"``: the ONNX export in onnxruntime on the CPU (:mod:`.onnxruntime`);
- ``"auto"``: the fastest installed backend of :data:`AUTO_ORDER` that passes
  :func:`parity_error` on a probe image, so a missing or broken runtime falls back to torch.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable

import torch

from ..model import DCSC

Backend = Callable[[torch.Tensor], torch.Tensor]
BACKENDS = ("torch", "openvino", "onnxruntime", "auto")
#: ``"auto"`` candidates per device type, fastest first (dcsc-fast at 640x480 to 3840x2160 on
#: 2 CPU cores, docs/RESULTS.md section "Backends"); torch is always installed and last.
AUTO_ORDER = {"cpu": ("openvino", "torch"), "cuda": ("torch",)}
#: Largest |backend - torch fp32| a precision may differ by on [0, 1] values and still count
#: as the same model (fp32: float rounding; bf16/fp16: tests/test_fast_paths.py).
PARITY_BOUNDS = {"fp32": 1e-3, "bf16": 2 / 255, "fp16": 2 / 255}
_MODULES = {"openvino": "openvino", "onnxruntime": "onnxruntime"}
_log = logging.getLogger(__name__)


def is_installed(name: str) -> bool:
    """Whether the runtime behind backend ``name`` can be imported (torch always can)."""
    return name == "torch" or importlib.util.find_spec(_MODULES[name]) is not None


def make_backend(name: str, model: DCSC, iterations: int, device: torch.device,
                 precision: str, channels_last: bool, threads: int) -> Backend:
    """Build backend ``name`` (one of :data:`BACKENDS` but ``"auto"``) for ``model`` at R =
    ``iterations``; ``precision`` is already resolved (``fp32``, ``bf16`` or ``fp16``)."""
    if name not in BACKENDS or name == "auto":
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    if name != "torch" and device.type != "cpu":
        raise ValueError(f"the {name} backend runs on the CPU only, not on {device}")
    if not is_installed(name):
        extra = "openvino" if name == "openvino" else "onnx"
        raise ImportError(f"the {name} backend needs {_MODULES[name]}: "
                          f'pip install "dcsc-preproc[{extra}]"')
    if name == "torch":
        from .pytorch import TorchBackend
        return TorchBackend(model, iterations, device, precision, channels_last)
    if name == "openvino":
        from .openvino import OpenVINOBackend
        return OpenVINOBackend(model, iterations, precision, threads)
    from .onnxruntime import OnnxRuntimeBackend
    return OnnxRuntimeBackend(model, iterations, threads)


def probe(channels: int, size: int = 64) -> torch.Tensor:
    """A fixed ``(1, C, size, size)`` test image in [0, 1]: gradients, edges and noise.

    Example:
        >>> x = probe(3)
        >>> tuple(x.shape), bool(x.min() >= 0), bool(x.max() <= 1)
        ((1, 3, 64, 64), True, True)
    """
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size),
                            indexing="ij")
    base = torch.stack([xx, yy, (xx > 0.5).float() * 0.6 + 0.2][:channels])
    noise = torch.rand(channels, size, size, generator=g) * 0.2 - 0.1
    return (base[:channels] + noise).clamp(0, 1)[None]


def parity_error(backend: Backend, model: DCSC, iterations: int,
                 x: torch.Tensor | None = None) -> float:
    """Largest ``|backend(x) - model(x)|``: the backend against the torch model in fp32
    (``x``: the :func:`probe`)."""
    x = probe(model.config.in_channels) if x is None else x
    x = x.to(next(iter(model.parameters())).device)
    with torch.inference_mode():
        return float((backend(x) - model(x, iterations=iterations)).abs().max())


def auto_backend(model: DCSC, iterations: int, device: torch.device, precision: str,
                 channels_last: bool, threads: int) -> tuple[str, Backend]:
    """The first backend of :data:`AUTO_ORDER` that is installed, builds, and keeps the
    probe within :data:`PARITY_BOUNDS` of torch fp32; returns its name and the backend."""
    for name in AUTO_ORDER.get(device.type, ("torch",)):
        if not is_installed(name):
            continue
        try:
            backend = make_backend(name, model, iterations, device, precision, channels_last,
                                   threads)
            if name == "torch":
                return name, backend
            error = parity_error(backend, model, iterations)
        except Exception as err:  # a broken runtime must not stop the default path
            _log.warning("backend %s unusable (%s); trying the next one", name, err)
            continue
        if error <= PARITY_BOUNDS[precision]:
            return name, backend
        _log.warning("backend %s differs from torch fp32 by %.2g (bound %.2g); not used",
                     name, error, PARITY_BOUNDS[precision])
    raise RuntimeError("no usable backend")  # unreachable: torch is always a candidate
