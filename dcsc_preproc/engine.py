"""Run a DCSC model on any image tensor: colour handling, padding, tiling, device, precision.

Every entry point (transform, frame filter, pipelines, benchmarks) goes through
:class:`Engine`, so colour conversion, clamping, tiling and model loading live only here.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .backends import BACKENDS, auto_backend, make_backend
from .colour import rgb_to_ycbcr, ycbcr_to_rgb
from .model import DCSC
from .zoo import load_model

MIN_SIZE = 8
#: Frames up to this side (plus the receptive-field margin) run whole, 1080p included: tiles
#: only bound memory, and each one recomputes its overlap with its neighbours (512-pixel
#: tiles made dcsc-fast 1.35x slower on 1080p frames, docs/RESULTS.md section 3).
DEFAULT_TILE = 2048
#: Side of the central crop on which ``align_grid`` reads the JPEG grid's offset.
GRID_SAMPLE = 512
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_image_tensor(x: torch.Tensor) -> None:
    """Raise a clear error unless ``x`` is a float ``(N, C, H, W)`` image with C in {1, 3}."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"expected a float tensor in [0, 1], got dtype {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"expected shape (N, C, H, W), got {tuple(x.shape)}")
    check_image_shape(*x.shape[1:])
    check_finite(x)


def check_image_shape(channels: int, height: int, width: int) -> None:
    """Raise a clear error unless an image has 1 or 3 channels and sides of at least
    ``MIN_SIZE`` (what the tensor and the uint8 paths both need)."""
    if channels not in (1, 3):
        raise ValueError(f"expected 1 (gray/Y) or 3 (RGB) channels, got {channels}"
                         + (" (drop alpha first)" if channels == 4 else ""))
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"image {width}x{height} is smaller than the "
                         f"{MIN_SIZE}x{MIN_SIZE} minimum (one JPEG block)")


def check_finite(x: torch.Tensor) -> None:
    """Raise ``ValueError`` if a float image holds NaN or infinite values (the model would
    spread them over the receptive field and return NaN without an error). On the CPU NumPy
    checks: 0.11 against 1.47 ms for a 640x480 RGB image (scratch timing, AMD EPYC, 2 cores),
    on every float image the Engine, :class:`~dcsc_preproc.Deblock` and the gate get."""
    if not x.is_floating_point():
        return
    if x.device.type == "cpu" and x.dtype != torch.bfloat16:  # NumPy has no bfloat16
        finite = bool(np.isfinite(x.detach().numpy()).all())
    else:
        finite = bool(torch.isfinite(x).all())
    if not finite:
        raise ValueError(f"image tensor {tuple(x.shape)} holds NaN or infinite values")


def machine(device: torch.device | str = "cpu") -> str:
    """CPU model (or GPU name) and torch's thread count, for logs, model cards and benchmarks."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {torch.get_num_threads()} threads"


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision ``precision`` means on ``device``.

    ``"auto"`` is the fastest path that stays within 2/255 of fp32 (see
    tests/test_fast_paths.py): bf16 autocast on GPUs with native bf16 (fp16 on older ones),
    bf16 autocast on CPUs with AVX-512 BF16 (fp32 elsewhere: bf16 is emulated and slower).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if device.type == "cpu" and torch.cpu._is_avx512_bf16_supported():
        return "bf16"
    return "fp32"


class Engine:
    """De-block float images ``(N, C, H, W)`` in [0, 1] with a DCSC model.

    A Y model on RGB input restores Y in the model's YCbCr convention and keeps Cb/Cr; an RGB
    model on gray input sees the gray replicated and returns the channel mean. Frames larger
    than ``tile`` are processed in tiles whose overlap covers the receptive field, so the
    result equals whole-frame inference (up to float rounding) with bounded memory.

    ``backend`` runs the network (:mod:`dcsc_preproc.backends`): ``"torch"`` (the default),
    ``"openvino"`` or ``"onnxruntime"`` (CPU runtimes, optional installs), or ``"auto"``: the
    fastest installed one that matches torch fp32 on a probe image. ``engine.backend_name``
    says which one runs. An INT8 model is an OpenVINO export folder (``dcsc-preproc export
    --openvino DIR --int8``) passed as ``model``; it always runs on OpenVINO (the default
    backend for such a folder).

    Speed: ``precision`` (see :func:`resolve_precision`; for torch, bf16/fp16 use autocast,
    so the weights stay fp32 and the residual is added to the input in fp32; for OpenVINO it
    is the inference precision hint) and ``channels_last`` (torch: NHWC activations and
    weights, so oneDNN and cuDNN skip layout reorders). Measured roughly on an AVX-512 BF16
    CPU: bf16 about 2x fp32, channels_last another 1.1-1.4x. ``threads`` (default: torch's
    count when the Engine is built) is applied for each call, because Ultralytics lowers
    torch's global count to cores - 1 whenever it builds a predictor, which would otherwise
    halve the de-blocker's speed on 2 cores. ``torch.compile`` is a benchmark path
    (``eval.speed --paths compile_bf16_channels_last``), not a default: it needs a C++
    compiler, recompiles for each frame and tile shape, and its gain on CPU was within
    run-to-run noise (docs/RESULTS.md section 3).

    ``align_grid`` (default on): a JPEG cropped by a few pixels has its 8x8 grid shifted,
    while the models learned aligned grids; the batch is padded at the top and left so that
    the grid its first image shows (:func:`~dcsc_preproc.quality.grid_padding`) starts at
    (0, 0). Images without a visible grid are left as they are.

    :meth:`restore_array` is the uint8 path of frames and detectors: one conversion to float
    on the engine's device and one back (colour order, rounding and clamping on the device),
    with pinned host buffers and one transfer each way on CUDA; the grid read, the padding
    and the crop back are done on the bytes.

    Example:
        >>> from dcsc_preproc.model import DCSC
        >>> engine = Engine(DCSC(iterations=2), tile=32)
        >>> engine(torch.rand(1, 3, 40, 50)).shape
        torch.Size([1, 3, 40, 50])
    """

    def __init__(self, model: str | Path | DCSC, device: str | torch.device | None = None,
                 tile: int | None = DEFAULT_TILE, precision: str = "auto",
                 iterations: int | None = None, channels_last: bool = True,
                 threads: int | None = None, backend: str | None = None,
                 align_grid: bool = True) -> None:
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.threads = threads or torch.get_num_threads()
        self.align_grid = align_grid
        export = _openvino_export(model)
        backend = backend or ("openvino" if export is not None else "torch")
        if export is not None and backend not in ("openvino", "auto"):
            raise ValueError(f"{model} is an OpenVINO export folder: it runs with "
                             f"backend='openvino' (or 'auto'), not {backend!r}")
        self.device = torch.device(device or ("cpu" if export is not None or backend in (
            "openvino", "onnxruntime") or not torch.cuda.is_available() else "cuda"))
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = channels_last
        if export is not None:
            from .backends.openvino import load_export

            self.model, self.backend = load_export(export, self.device, self.precision,
                                                   self.threads)
            self.backend_name, self.iterations = "openvino", self.model.config.iterations
            if iterations not in (None, self.iterations):
                raise ValueError(f"{model} was exported with R={self.iterations}; "
                                 "export it again for another R")
        else:
            self.model = load_model(model, self.device)
            self.iterations = self.model.config.iterations if iterations is None else iterations
            args = (self.model, self.iterations, self.device, self.precision, channels_last,
                    self.threads)
            if backend == "auto":
                self.backend_name, self.backend = auto_backend(*args)
            else:
                self.backend_name, self.backend = backend, make_backend(backend, *args)
        step = 8 * self.model.multiple
        if tile is not None and tile < step:
            raise ValueError(f"tile must be at least {step}, got {tile}")
        self.tile = None if tile is None else tile // step * step
        self.margin = -(-self.model.radius(self.iterations) // step) * step

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Restore a batch; returns a clamped float tensor of the input's shape, device and
        dtype (in the layout the backend produced: channels_last for the torch default)."""
        check_image_tensor(x)
        with self._threads():
            out = self._restore(x.to(self.device, torch.float32))
            return out.clamp_(0, 1).to(x.device, x.dtype)

    def restore_array(self, image: np.ndarray, truncate: bool = False, bgr: bool = False,
                      align_grid: bool | None = None) -> np.ndarray:
        """De-block a uint8 ``(H, W)`` or ``(H, W, 3)`` array; returns a new array, same layout.

        ``bgr=True`` takes and returns OpenCV's BGR order (the flip is done on the device, on
        bytes). Rounds to nearest; ``truncate=True`` floors, as the DCSC authors' test code.
        ``align_grid`` overrides the engine's setting for this call (``None``: keep it), e.g.
        ``False`` for an image resized after decoding, which has no 8x8 grid left to read.
        """
        return self.restore_arrays([image], truncate, bgr, align_grid)[0]

    @torch.inference_mode()
    def restore_arrays(self, images: Sequence[np.ndarray], truncate: bool = False,
                       bgr: bool = False, align_grid: bool | None = None) -> list[np.ndarray]:
        """:meth:`restore_array` of frames of one shape, run as one batch (the JPEG grid is
        read on the first): the path of :class:`~dcsc_preproc.FrameFilter` and the video
        pipeline's batches."""
        if isinstance(images, (np.ndarray, torch.Tensor)):
            raise TypeError("restore_arrays takes a list of frames; restore_array takes one")
        if not images:
            return []
        for image in images:
            check_array(image)
        if len({image.shape for image in images}) > 1:
            raise ValueError("restore_arrays takes frames of one shape, got "
                             f"{sorted({image.shape for image in images})}")
        h, w = images[0].shape[:2]
        check_image_shape(images[0].shape[2] if images[0].ndim == 3 else 1, h, w)
        with self._threads():  # the conversions too: on a busy machine they starve otherwise
            align = self.align_grid if align_grid is None else align_grid
            top, left = self._array_grid(images[0], bgr) if align else (0, 0)
            m = self.model.multiple
            pads = top, -(h + top) % m, left, -(w + left) % m  # top, bottom, left, right
            if any(pads):  # on the bytes: cheaper than torch's pad
                images = [pad_array(image, *pads) for image in images]
            pieces = [array_to_tensor(image, self.device, bgr) for image in images]
            x = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
            out = self._restore(x, (0, 0))
            arrays = [tensor_to_array(out[i:i + 1], truncate, bgr) for i in range(len(pieces))]
            if any(pads):
                arrays = [np.ascontiguousarray(a[top:top + h, left:left + w]) for a in arrays]
            return arrays

    @contextmanager
    def _threads(self) -> Iterator[None]:
        """Run torch on ``self.threads`` inside the block, then restore the global count."""
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _restore(self, y: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Colour handling around :meth:`_run` on a float32 batch on the device (not clamped);
        ``grid``: the grid padding when the caller has read it already."""
        channels = self.model.config.in_channels
        if channels == 1 and y.shape[1] == 3:
            ycc = rgb_to_ycbcr(y, self.model.config.colour)
            ycc = torch.cat([self._run(ycc[:, :1], grid), ycc[:, 1:]], dim=1)
            return ycbcr_to_rgb(ycc, self.model.config.colour)
        if channels == 3 and y.shape[1] == 1:
            return self._run(y.expand(-1, 3, -1, -1), grid).mean(dim=1, keepdim=True)
        return self._run(y, grid)

    def _run(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Pad (top and left: to align a shifted JPEG grid, read here unless ``grid`` gives
        it; bottom and right: to the model's multiple), run whole or tiled, crop back."""
        h, w = x.shape[-2:]
        if grid is None:
            grid = self._grid_padding(x) if self.align_grid else (0, 0)
        top, left = grid
        m = self.model.multiple
        pad_h, pad_w = -(h + top) % m, -(w + left) % m
        if top or left or pad_h or pad_w:
            x = F.pad(x, (left, pad_w, top, pad_h), mode="replicate")
        if self.tile is None or max(x.shape[-2:]) <= self.tile + 2 * self.margin:
            out = self.backend(x)
        else:
            out = self._tiled(x)
        return out[..., top:top + h, left:left + w]

    @staticmethod
    def _grid_padding(x: torch.Tensor) -> tuple[int, int]:
        """Rows and columns to add at the top and left so that the 8x8 JPEG grid of the
        batch's first image (:func:`~dcsc_preproc.quality.grid_padding`) starts at (0, 0),
        read on its :func:`grid_window`: only that crop's luma crosses to the host."""
        from .quality import grid_padding  # quality imports this module

        rows, cols = grid_window(*x.shape[-2:])
        weights = x.new_tensor([0.299, 0.587, 0.114] if x.shape[1] == 3 else [1.0])
        y = (x[0, :, rows, cols] * weights[:, None, None]).sum(0).mul(255)
        return grid_padding(y.float().cpu().numpy())

    @staticmethod
    def _array_grid(image: np.ndarray, bgr: bool) -> tuple[int, int]:
        """:meth:`_grid_padding` of a uint8 frame, read on its bytes with NumPy: no torch op,
        and a third of the time at 640x480 (docs/RESULTS.md section 3)."""
        from .quality import grid_padding, luma

        rows, cols = grid_window(*image.shape[:2])
        crop = image[rows, cols]
        crop = crop[..., 0] if crop.ndim == 3 and crop.shape[2] == 1 else crop
        return grid_padding(luma(crop, "bgr" if bgr else "rgb"))

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        h, w = x.shape[-2:]
        t, m = self.tile, self.margin
        for top in range(0, h, t):
            for left in range(0, w, t):
                y0, x0 = max(top - m, 0), max(left - m, 0)
                y1, x1 = min(top + t + m, h), min(left + t + m, w)
                piece = self.backend(x[..., y0:y1, x0:x1])
                bottom, right = min(top + t, h), min(left + t, w)
                out[..., top:bottom, left:right] = piece[..., top - y0:bottom - y0,
                                                         left - x0:right - x0]
        return out


def grid_window(h: int, w: int, side: int = GRID_SAMPLE) -> tuple[slice, slice]:
    """The central crop of an ``h`` x ``w`` image on which its JPEG grid is read: at most
    ``side`` pixels a side, starting on a multiple of 8. The grid is one offset for the whole
    image, so the cost stays flat as frames grow (the whole 1080p frame cost about a tenth
    of the call).

    Example:
        >>> grid_window(1080, 1920)
        (slice(280, 792, None), slice(704, 1216, None))
    """
    top, left = max((h - side) // 16 * 8, 0), max((w - side) // 16 * 8, 0)
    return slice(top, top + side), slice(left, left + side)


def _openvino_export(model: str | Path | DCSC) -> Path | None:
    """``model`` as an OpenVINO export folder (``dcsc-preproc export --openvino``), or None."""
    if isinstance(model, DCSC) or not Path(model).is_dir():
        return None
    from .backends.openvino import is_export

    if not is_export(Path(model)):
        raise ValueError(f"{model} is a folder but not an OpenVINO export of dcsc-preproc "
                         "(dcsc-preproc export --openvino DIR)")
    return Path(model)


def check_array(image: np.ndarray) -> None:
    """Raise a clear error unless ``image`` is a uint8 ``(H, W)`` or ``(H, W, C)`` array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 numpy array, got {type(image).__name__} "
                        f"{getattr(image, 'dtype', '')}")
    if image.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (H, W, C), got shape {image.shape}")


def pad_array(image: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """A new ``image`` with its edge rows and columns repeated: torch's ``"replicate"`` pad
    of the float image, done on the bytes (OpenCV) before the conversion.

    Example:
        >>> pad_array(np.array([[1, 2]], np.uint8), 1, 0, 0, 2).tolist()
        [[1, 2, 2, 2], [1, 2, 2, 2]]
    """
    padded = cv2.copyMakeBorder(np.ascontiguousarray(image), top, bottom, left, right,
                                cv2.BORDER_REPLICATE)
    return padded.reshape(*padded.shape[:2], *image.shape[2:])


def array_to_tensor(image: np.ndarray, device: str | torch.device | None = None,
                    bgr: bool = False) -> torch.Tensor:
    """uint8 ``(H, W)`` or ``(H, W, C)`` array to a new float ``(1, C, H, W)`` tensor in [0, 1].

    The bytes go to ``device`` before the float conversion (a quarter of the transfer; on
    CUDA through a pinned buffer, without waiting), ``bgr=True`` reverses the channels there,
    and one conversion writes the float tensor in channels_last layout (the layout of the
    array, and the one the networks run in). On the CPU, NumPy and OpenCV do it (see
    :func:`_cpu_array_to_tensor`). Arrays with negative strides (flipped views) are copied
    first on other devices, as torch cannot view them.

    Example:
        >>> x = array_to_tensor(np.full((2, 3, 3), 255, np.uint8))
        >>> tuple(x.shape), x.max().item(), x.is_contiguous(memory_format=torch.channels_last)
        ((1, 3, 2, 3), 1.0, True)
    """
    check_array(image)
    device = torch.device(device or "cpu")
    if device.type == "cpu":
        return _cpu_array_to_tensor(image, bgr)
    if any(s < 0 for s in image.strides) or not image.flags.writeable:
        image = image.copy()
    t = torch.from_numpy(image)
    t = t[..., None] if t.dim() == 2 else t
    if device.type == "cuda":
        t = torch.empty(t.shape, dtype=torch.uint8, pin_memory=True).copy_(t)
    t = t.to(device, non_blocking=True)
    if bgr:
        t = t.flip(-1)
    return t.permute(2, 0, 1)[None] / 255  # one pass: true division makes float32


def tensor_to_array(x: torch.Tensor, truncate: bool = False, bgr: bool = False) -> np.ndarray:
    """Float ``(1, C, H, W)`` in [0, 1] to a new uint8 ``(H, W)`` or ``(H, W, C)`` array.

    Rounds to nearest; ``truncate=True`` floors instead, as the DCSC authors' test code did.
    Scaling (one new float tensor; ``x`` is left as it is), rounding and clamping in place,
    the uint8 conversion, the ``bgr`` channel reversal and any transposition run on ``x``'s
    device, so only the uint8 result crosses to the host (on CUDA through a pinned buffer,
    with one synchronisation; on the CPU in NumPy and OpenCV). A channels_last ``x`` needs
    no transposing copy at all.
    """
    if x.device.type == "cpu":
        return _cpu_tensor_to_array(x, truncate, bgr)
    scaled = x[0].permute(1, 2, 0).mul(255)
    scaled = scaled.floor_() if truncate else scaled.round_()
    a = scaled.clamp_(0, 255).to(torch.uint8)
    a = a.flip(-1) if bgr else a.contiguous()
    if a.device.type == "cuda":
        host = torch.empty(a.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(a, non_blocking=True)
        torch.cuda.current_stream(a.device).synchronize()
        a = host
    a = a.numpy()
    return a[..., 0] if a.shape[2] == 1 else a


# On the CPU the two conversions run in NumPy and OpenCV, not torch: after each parallel
# region torch's OpenMP threads spin for a while, and on a 2-core machine that spinning takes
# the second core from the backend that runs next (an OpenVINO INT8 640x480 call took 20%
# longer with torch conversions around it, docs/RESULTS.md section 3). Same values as torch.

def _cpu_array_to_tensor(image: np.ndarray, bgr: bool) -> torch.Tensor:
    """:func:`array_to_tensor` on the CPU: NumPy writes a new channels_last tensor (torch
    owns the memory, so the tensor can go anywhere a tensor goes: DataLoader workers too)."""
    image = image[..., None] if image.ndim == 2 else image
    if bgr and image.shape[2] == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2RGB)
    h, w, c = image.shape
    x = torch.empty((1, c, h, w), dtype=torch.float32, memory_format=torch.channels_last)
    # true division, as torch's: the same floats
    np.divide(image, np.float32(255), out=x[0].permute(1, 2, 0).numpy())
    return x


def _cpu_tensor_to_array(x: torch.Tensor, truncate: bool, bgr: bool) -> np.ndarray:
    """:func:`tensor_to_array` on the CPU. OpenCV's scaling rounds half to even and
    saturates, as torch's ``round_`` and ``clamp_``; ``x`` is left as it is."""
    a = np.ascontiguousarray(x[0].permute(1, 2, 0).float().numpy())
    if truncate:
        a = np.clip(np.floor(a * 255), 0, 255).astype(np.uint8)
    else:
        a = cv2.convertScaleAbs(np.maximum(a, 0), alpha=255.0)  # |.| after max(., 0): none
    a = a.reshape(x.shape[2], x.shape[3], x.shape[1])
    if bgr and a.shape[2] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
    return a[..., 0] if a.shape[2] == 1 else a
