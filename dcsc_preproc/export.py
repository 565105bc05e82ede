"""ONNX export of a DCSC model and an onnxruntime (CPU) session to run it.

The graph is the bare network: float32 ``(N, C, H, W)`` in [0, 1] in, the restored image out
(not clamped), with C the model's ``in_channels`` and H, W multiples of its ``multiple``.
Colour conversion, padding and tiling stay in :class:`dcsc_preproc.Engine`; ONNX is for
deployments without PyTorch and for comparing runtimes (``eval/speed.py``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .model import DCSC
from .zoo import load_model

if TYPE_CHECKING:
    import onnxruntime

INPUT_NAME = "image"
OUTPUT_NAME = "restored"
#: The newest opset the TorchScript exporter writes. That exporter is deprecated since torch
#: 2.9, but its successor (``dynamo=True``) needs onnxscript, which is not a dependency.
OPSET = 20


class FixedIterations(nn.Module):
    """DCSC with ``iterations`` bound, so the traced graph has one tensor input and output."""

    def __init__(self, model: DCSC, iterations: int) -> None:
        super().__init__()
        self.model = model
        self.iterations = iterations

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, iterations=self.iterations)


def export_onnx(model: str | Path | DCSC, path: str | Path, overwrite: bool = False,
                iterations: int | None = None) -> Path:
    """Write ``model`` to ``path`` as ONNX with dynamic batch, height and width axes.

    The ``iterations`` LISTA steps (default: the model's R) are unrolled into the graph, as
    S is shared the same weights serve any R. ``model`` is a DCSC, a shipped name or a
    weights file (see :func:`dcsc_preproc.load_model`).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    model = load_model(model)
    r = model.config.iterations if iterations is None else iterations
    param = next(model.parameters())
    side = 8 * model.multiple
    example = torch.rand(1, model.config.in_channels, side, side, device=param.device)
    axes = {0: "batch", 2: "height", 3: "width"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, see OPSET
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(FixedIterations(model, r), (example,), str(path), dynamo=False,
                          opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
    return path


def onnx_session(path: str | Path, threads: int | None = None) -> onnxruntime.InferenceSession:
    """An ``onnxruntime.InferenceSession`` on the CPU execution provider (``threads``:
    intra-op threads, default onnxruntime's).

    Run it with ``session.run(None, {INPUT_NAME: x})[0]`` for a float32 NCHW array ``x``.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
