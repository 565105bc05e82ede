"""The OpenVINO backend: the network converted with ``openvino.convert_model`` for the CPU.

The graph takes and returns float32 NHWC (a channels_last tensor's memory as it is, so no
transposing copy either way) with dynamic batch, height and width, compiled once per model,
and again for one shape alone when inputs of that shape recur (:class:`OpenVINOBackend`).
``precision`` sets OpenVINO's inference precision hint (``bf16`` is its own default on CPUs
with AVX-512 BF16 or AMX).

INT8 is post-training quantisation with NNCF (:func:`quantize`), calibrated on JPEG patches
of training images (COCO train and BSDS500 train, never the evaluation sets), with the
residual add ``J + H`` kept in float: the network's output is the JPEG input plus a small
correction, and an 8-bit output grid would cost more than the correction gains. Quantised
models are written as export folders (:func:`export_openvino`, ``dcsc-preproc export
--openvino DIR --int8``) and run by passing the folder to :class:`~dcsc_preproc.Engine`.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..export import FixedIterations
from ..model import DCSC
from ..zoo import load_model, save_model

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_INSTALL = 'pip install "dcsc-preproc[openvino]"'  # openvino and nncf
#: Files of an export folder: the IR, the torch weights it came from (configuration, parity
#: reference) and what was done to it.
XML, WEIGHTS, INFO = "model.xml", "model.safetensors", "dcsc_export.json"


def _require(name: str):
    """Import ``openvino`` or ``nncf``, or raise an ImportError naming the pip command."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"OpenVINO export and INT8 need {name}: {_INSTALL}") from err


@functools.cache
def _core_of_process() -> tuple[object, int]:
    """The Core made by :func:`core` and the id of the process that made it."""
    return _require("openvino").Core(), os.getpid()


def core():
    """The process's one ``openvino.Core``, shared by every backend and never destroyed.

    Each Core's CPU plugin maps an alternate signal stack for the thread that first compiles
    on it (AMX needs a larger one) and unmaps it when the Core goes, restoring the stack it
    found. Cores destroyed out of creation order leave that thread's signal stack pointing at
    unmapped, or by then reused, memory, and the next signal handled there (SIGCHLD, when a
    subprocess or a DataLoader worker exits) kills the process with SIGSEGV or corrupts its
    heap: the test-suite crashes of docs/RESULTS.md section 3. One Core for the whole process
    never does that, and it is what OpenVINO recommends anyway.

    In a process ``fork()``-ed from one that already made it, converting or compiling a model
    hangs (OpenVINO's threads were not copied); models compiled before the fork still run.
    That case raises a RuntimeError instead, which ``backend="auto"`` answers by falling back
    to torch.
    """
    shared, owner = _core_of_process()
    if owner != os.getpid():
        raise RuntimeError(
            f"OpenVINO was set up in process {owner}, which fork()ed this one, and converting "
            "or compiling a model here would hang: start workers with the 'spawn' method "
            "(multiprocessing.get_context('spawn'), DataLoader(multiprocessing_context="
            "'spawn')), or build the Engine before forking")
    return shared


def convert(model: DCSC, iterations: int):
    """``model`` at R = ``iterations`` as an ``openvino.Model`` on NCHW float32 input with
    dynamic batch, height and width."""
    ov = _require("openvino")
    core()  # in a fork()ed child this raises; convert_model would hang like compiling
    channels = model.config.in_channels
    side = 8 * model.multiple
    example = torch.rand(1, channels, side, side)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # convert_model traces with torch.jit
        return ov.convert_model(FixedIterations(model.float().cpu(), iterations),
                                example_input=example, input=[-1, channels, -1, -1])


def residual_add(ov_model) -> str:
    """Name of the node computing the output ``J + H`` (kept in float by :func:`quantize`)."""
    node = ov_model.output(0).get_node().input_value(0).get_node()
    if node.get_type_name() != "Add":
        raise ValueError(f"expected the output to be an Add, got {node.get_type_name()}")
    return node.get_friendly_name()


def _nhwc(ov_model):
    """The model with NHWC float32 input and output layouts (transposes inside the graph)."""
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(ov_model)
    ppp.input().tensor().set_layout("NHWC")
    ppp.input().model().set_layout("NCHW")
    ppp.output().tensor().set_layout("NHWC")
    ppp.output().model().set_layout("NCHW")
    return ppp.build()


#: How many shapes a backend keeps compiled for that shape alone (the most recently used),
#: and how many shapes seen once it remembers.
STATIC_SHAPES = 4


def _keep_last(entries: dict) -> None:
    """Drop the oldest of ``entries`` (insertion-ordered) beyond :data:`STATIC_SHAPES`."""
    while len(entries) > STATIC_SHAPES:
        del entries[next(iter(entries))]


class OpenVINOBackend:
    """A compiled OpenVINO model behind the backend interface (CPU only).

    ``model`` is a DCSC (converted here at R = ``iterations``) or an ``openvino.Model``
    (an export folder's IR). The result is written straight into a new torch tensor.

    Inputs run on the dynamic-shape model until their shape comes again within the last
    :data:`STATIC_SHAPES` shapes seen (a video's frames, a batch's, the tiles of a 4K frame):
    then on the model compiled for that shape alone, 7-18% faster on 2 CPU cores
    (docs/RESULTS.md section 3) for one compile of about 0.07 s, which images of ever-changing
    sizes never pay. The last :data:`STATIC_SHAPES` compiled shapes are kept.
    """

    def __init__(self, model, iterations: int, precision: str, threads: int) -> None:
        ov = _require("openvino")
        ov_model = convert(model, iterations) if isinstance(model, DCSC) else model
        self._config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        if precision in _HINTS:
            self._config["INFERENCE_PRECISION_HINT"] = _HINTS[precision]
        self._model = _nhwc(ov_model)
        self.request = self._compile(self._model)
        self._static: dict[tuple[int, ...], object] = {}  # shape: request, oldest use first
        self._seen: dict[tuple[int, ...], None] = {}  # shapes seen once, oldest first
        self._tensor = ov.Tensor

    def _compile(self, ov_model):
        """An infer request of ``ov_model`` compiled for the CPU with this backend's settings."""
        return core().compile_model(ov_model, "CPU", self._config).create_infer_request()

    def _request_for(self, shape: tuple[int, ...]):
        """The infer request for an NHWC input of ``shape``: one compiled for that shape if
        it was seen recently, else the dynamic one."""
        if shape in self._static:
            self._static[shape] = self._static.pop(shape)  # now the most recently used
        elif shape in self._seen:
            del self._seen[shape]
            static = self._model.clone()
            static.reshape(list(shape))
            self._static[shape] = self._compile(static)
            _keep_last(self._static)
        else:
            self._seen[shape] = None
            _keep_last(self._seen)
            return self.request
        return self._static[shape]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.detach().permute(0, 2, 3, 1).contiguous().numpy()
        out = torch.empty(nhwc.shape, dtype=torch.float32)
        request = self._request_for(nhwc.shape)
        request.set_output_tensor(self._tensor(out.numpy(), shared_memory=True))
        request.infer({0: nhwc}, share_inputs=True)
        return out.permute(0, 3, 1, 2)


def quantize(model: DCSC, iterations: int, patches: list[np.ndarray]):
    """Post-training INT8 quantisation (NNCF) of ``model`` at R = ``iterations``, calibrated
    on RGB uint8 ``patches``; the residual add stays float. Returns an ``openvino.Model``.

    Settings chosen by measurement (dcsc-fast, 128 calibration patches, 4 q10 coco_dev
    images, error against torch fp32 in grey levels; docs/RESULTS.md): asymmetric activations
    (``MIXED``: the input and the ReLU codes are not centred on 0) with min-max ranges, max 24
    / mean 0.82 / 99.9th percentile 4.5, against 49 / 0.67 / 7.3 for NNCF's defaults, whose
    clipped ranges fail on the brightest and darkest regions.
    """
    from ..engine import array_to_tensor

    nncf = _require("nncf")
    if model.config.in_channels != 3:
        raise ValueError("INT8 export is for RGB models (calibration patches are RGB)")
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    ov_model = convert(model, iterations)
    data = [array_to_tensor(p).contiguous().numpy() for p in patches]
    ranges = AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    return nncf.quantize(ov_model, nncf.Dataset(data), preset=nncf.QuantizationPreset.MIXED,
                         subset_size=len(data), advanced_parameters=ranges,
                         ignored_scope=nncf.IgnoredScope(names=[residual_add(ov_model)]))


def export_openvino(model: str | Path | DCSC, folder: str | Path, int8: bool = False,
                    data: str | Path | None = None, overwrite: bool = False,
                    iterations: int | None = None, calibration: int = 256) -> Path:
    """Write ``model`` (R: ``iterations``, default the model's) as an OpenVINO export folder:
    ``model.xml``/``.bin`` (dynamic N, H, W; INT8 if ``int8``, calibrated on ``calibration``
    patches of the training images under ``data``, default
    :func:`~dcsc_preproc.data.data_root`), the weights as ``model.safetensors`` and
    ``dcsc_export.json``. Run it with ``Engine(folder)``."""
    from ..data import CALIBRATION_DIRS, calibration_patches, data_root

    ov = _require("openvino")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True")
    model = load_model(model)
    r = model.config.iterations if iterations is None else iterations
    if int8:
        patches = calibration_patches(data_root(data), calibration)
        ov_model = quantize(model, r, patches)
        info = {"int8": True, "calibration": {"folders": list(CALIBRATION_DIRS),
                                              "patches": len(patches)}}
    else:
        ov_model, info = convert(model, r), {"int8": False}
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, folder / XML)
    model.config = replace(model.config, iterations=r)
    save_model(model, folder / WEIGHTS, overwrite=True)
    (folder / INFO).write_text(json.dumps({**info, "iterations": r}, indent=2) + "\n")
    return folder


def is_export(folder: Path) -> bool:
    """Whether ``folder`` holds an export written by :func:`export_openvino`."""
    return all((folder / name).is_file() for name in (XML, WEIGHTS, INFO))


def load_export(folder: Path, device: torch.device, precision: str, threads: int
                ) -> tuple[DCSC, OpenVINOBackend]:
    """The torch model and an OpenVINO backend of an export folder (CPU only).

    An INT8 model's float parts (the residual add among them) run in fp32 whatever
    ``precision`` says: that is what keeps them float.
    """
    if device.type != "cpu":
        raise ValueError(f"an OpenVINO export runs on the CPU, not on {device}")
    model = load_model(folder / WEIGHTS)
    int8 = json.loads((folder / INFO).read_text())["int8"]
    ov_model = core().read_model(folder / XML)
    return model, OpenVINOBackend(ov_model, model.config.iterations,
                                  "fp32" if int8 else precision, threads)
