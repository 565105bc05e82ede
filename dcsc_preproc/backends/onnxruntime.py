"""The ONNX Runtime backend: the ``dcsc-preproc export`` graph in onnxruntime on the CPU."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..export import INPUT_NAME, export_onnx, onnx_session
from ..model import DCSC


class OnnxRuntimeBackend:
    """``model`` at R = ``iterations`` exported to ONNX and run by onnxruntime in fp32,
    whatever the Engine's ``precision`` (its CPU provider has no bf16 convolutions)."""

    def __init__(self, model: DCSC, iterations: int, threads: int) -> None:
        with tempfile.TemporaryDirectory() as tmp:  # the session keeps the graph in memory
            path = export_onnx(model, Path(tmp) / "model.onnx", iterations=iterations)
            self.session = onnx_session(path, threads)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {INPUT_NAME: x.detach().contiguous().numpy()})[0]
        return torch.from_numpy(out)
