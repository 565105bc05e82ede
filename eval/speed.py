"""Speed benchmark: ms per frame of each de-blocking path next to the detector it feeds.

For each profile x path x frame size, in one run on one machine:
median ms per frame over ``--repeats`` timed calls after ``--warmup`` untimed ones, megapixels
per second, GFLOP/s from the model's analytic FLOPs (:func:`flops_per_pixel`) and its fraction
of the machine's practical peak. That peak is a dense 64->64 3x3 fp32 convolution on a
``1x64xHxW`` input at the largest size, best of NCHW and channels_last, measured in the same
run; reduced-precision paths can exceed 100% of it. Next to each row: the detector's own time
(Ultralytics ``predict``, imgsz 640, on the same BGR uint8 frame, median, after one extra call
that builds the predictor) and the ratio de-blocker / detector.

Everything runs on torch's default thread count (one per physical core). Building an
Ultralytics predictor on CPU lowers it process-wide to ``cpu_count - 1`` (1 on a 2-core
machine); the benchmark sets it back so de-blocker and detector share the same threads.

The frame is Ultralytics' bundled ``bus.jpg`` resized to each size. Torch paths time
``Engine.restore_array`` on the RGB uint8 frame (what users get: colour conversion, padding,
tiling, clamping); ``compile_*`` paths put the model through ``torch.compile`` (measured to
see whether it helps; the warm-up calls must cover the compilation). ``onnx`` times the
exported graph in onnxruntime (CPU) on the model's float input (RGB, or Y for a Y model),
whole frame, no tiling. A profile is a shipped name or a weights
file, optionally with ``@R`` to run R LISTA iterations (``dcsc-y@10``; S is shared, so R can
change at inference), named by :func:`~dcsc_preproc.zoo.model_name` as in the other benchmarks.
A shipped name whose weights are not installed is timed as a random-init model of its
configuration (timing does not depend on weights) and the output says so.

The paper profiles cost about 3 MFLOP per pixel (seconds per 640x480 frame on a CPU); time them
at 1920x1080 in a run of their own with ``--repeats 1 --warmup 0``:

    python -m eval.speed --json results/speed.json
    python -m eval.speed --profiles dcsc-fast@3 dcsc-y@10 --json results/speed_r.json
    python -m eval.speed --profiles dcsc-y dcsc-rgb --sizes 1920x1080 --repeats 1 --warmup 0 \\
        --json results/speed_paper_1080p.json
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported: it checks at import
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from ultralytics.utils import ASSETS  # noqa: E402

from dcsc_preproc import (DCSC, MODELS, DCSCConfig, Engine, array_to_tensor,  # noqa: E402
                          available_models, load_model, model_name, rgb_to_y)
from dcsc_preproc.engine import DEFAULT_TILE, machine, resolve_precision  # noqa: E402
from dcsc_preproc.export import INPUT_NAME, export_onnx, onnx_session  # noqa: E402
from dcsc_preproc.zoo import split_iterations  # noqa: E402
from pipelines.yolo import load_detector  # noqa: E402

SHARED = Path(os.environ.get("DCSC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DETECTOR = SHARED / "models" / "yolov8n_ovint8_dequant.pt"
#: Path name -> Engine keyword arguments (``onnx``: onnxruntime instead of the Engine).
PATHS: dict[str, dict | None] = {
    "auto": {},
    "fp32": {"precision": "fp32", "channels_last": False},
    "channels_last": {"precision": "fp32", "channels_last": True},
    "bf16": {"precision": "bf16", "channels_last": False},
    "bf16_channels_last": {"precision": "bf16", "channels_last": True},
    "fp16": {"precision": "fp16", "channels_last": False},
    "fp16_channels_last": {"precision": "fp16", "channels_last": True},
    "compile_bf16_channels_last": {"precision": "bf16", "channels_last": True},
    "onnx": None,
}
#: ``--paths`` default per device type (fp16 only on GPUs: CPUs emulate it slowly).
DEFAULT_PATHS = {
    "cpu": ["fp32", "channels_last", "bf16", "bf16_channels_last", "onnx"],
    "cuda": ["fp32", "channels_last", "bf16_channels_last", "fp16_channels_last", "onnx"],
}


def flops_per_pixel(config: DCSCConfig) -> float:
    """Convolution FLOPs (2 x multiply-accumulates) per input pixel.

    Counts the dilated convolutions, G, ``config.iterations`` applications of S and the
    reconstruction, at ``H/unshuffle x W/unshuffle`` positions; biases, ReLUs and shuffles are
    left out.
    """
    r = config.iterations
    c = config.in_channels * config.unshuffle**2
    dilated = len(config.dilations) * config.dilated_features
    macs = 9 * (dilated * c + dilated * config.features + r * config.features**2
                + config.features * c)
    return 2 * macs / config.unshuffle**2


def median_ms(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median wall time of ``fn`` in ms over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def peak_gflops(device: torch.device, width: int, height: int, repeats: int,
                warmup: int) -> float:
    """The practical fp32 peak: best GFLOP/s of a dense 64->64 3x3 conv on 1x64xHxW."""
    conv = nn.Conv2d(64, 64, 3, padding=1).to(device)
    x = torch.rand(1, 64, height, width, device=device)
    flops = 2 * 9 * 64 * 64 * height * width
    best = 0.0
    with torch.inference_mode():
        for layout in (torch.contiguous_format, torch.channels_last):
            conv.to(memory_format=layout)
            xl = x.contiguous(memory_format=layout)
            best = max(best, flops / median_ms(lambda: conv(xl), repeats, warmup) / 1e6)
    return best


def load_profile(profile: str) -> tuple[str, DCSC, bool]:
    """Name, model and whether it is a random-init stand-in (shipped weights missing).

    The stand-in of ``NAME@R`` is a random-init model of ``MODELS[NAME]`` with R iterations.
    """
    base, iterations = split_iterations(profile)
    if base in MODELS and base not in available_models():
        config = MODELS[base]
        if iterations is not None:
            config = replace(config, iterations=iterations)
        return model_name(profile), DCSC.from_config(config).eval(), True
    return model_name(profile), load_model(profile), False


def bench_frame(width: int, height: int) -> np.ndarray:
    """Ultralytics' bus.jpg resized to ``width x height``: a BGR uint8 frame."""
    return cv2.resize(cv2.imread(str(ASSETS / "bus.jpg")), (width, height),
                      interpolation=cv2.INTER_AREA)


def onnx_timer(model: DCSC, rgb: np.ndarray, folder: Path) -> Callable[[], object]:
    """A call running the exported model (R of its config) in onnxruntime on its float input."""
    h, w = rgb.shape[:2]
    if h % model.multiple or w % model.multiple:
        raise ValueError(f"onnx path: {w}x{h} is not a multiple of {model.multiple}")
    path = export_onnx(model, folder / "model.onnx", overwrite=True)
    session = onnx_session(path)
    x = array_to_tensor(rgb)
    if model.config.in_channels == 1:
        x = rgb_to_y(x, model.config.colour)
    feed = {INPUT_NAME: x.contiguous().numpy()}
    return lambda: session.run(None, feed)


def benchmark(profiles: Sequence[str], paths: Sequence[str], sizes: Sequence[tuple[int, int]],
              repeats: int, warmup: int, detector: Path, device: torch.device,
              tiles: Sequence[int] = (DEFAULT_TILE,)) -> tuple[list[dict], dict]:
    """Time everything; returns the records and facts about the run (for the table header).

    ``tiles``: the Engine's tile sizes to time (0: no tiling); the ONNX path runs whole frames.
    """
    frames = {size: bench_frame(*size) for size in sizes}
    threads = torch.get_num_threads()
    yolo = load_detector(detector)
    yolo.predict(frames[sizes[0]], imgsz=640, device=str(device), verbose=False)
    torch.set_num_threads(threads)  # building the predictor set it to cpu_count - 1
    detector_ms = {size: median_ms(
        lambda: yolo.predict(frame, imgsz=640, device=str(device), verbose=False),
        repeats, warmup) for size, frame in frames.items()}
    largest = max(sizes, key=lambda s: s[0] * s[1])
    peak = peak_gflops(device, *largest, repeats, warmup)
    records, random_init = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for profile in profiles:
            name, model, random = load_profile(profile)
            if random:
                random_init.append(name)
            for path, tile in itertools.product(paths, tiles):
                if PATHS[path] is None and tile != tiles[0]:
                    continue
                for (w, h), frame in frames.items():
                    rgb = np.ascontiguousarray(frame[..., ::-1])
                    if PATHS[path] is None:
                        fn, where = onnx_timer(model, rgb, Path(tmp)), "cpu"
                    else:
                        engine = Engine(model, device=device, tile=tile or None, **PATHS[path])
                        if path.startswith("compile_"):
                            engine.model = torch.compile(engine.model)
                        fn, where = (lambda: engine.restore_array(rgb)), device.type
                    ms = median_ms(fn, repeats, warmup)
                    gflops = flops_per_pixel(model.config) * w * h / ms / 1e6
                    records.append({
                        "profile": name, "iterations": model.config.iterations, "path": path,
                        "tile": None if PATHS[path] is None else tile, "device": where,
                        "width": w, "height": h, "ms": ms,
                        "mp_per_s": w * h / ms / 1e3, "detector_ms": detector_ms[(w, h)],
                        "peak_fraction": gflops / peak})
                    print(f"{name} {path} tile {_tile_text(records[-1]['tile'])} {w}x{h}: "
                          f"{ms:.1f} ms", file=sys.stderr)
    auto = resolve_precision("auto", device)
    facts = {"peak_gflops": peak, "peak_size": largest, "random_init": random_init,
             "auto": f"{auto}, channels_last", "detector": detector.name}
    return records, facts


def markdown(records: list[dict], facts: dict, device: torch.device) -> str:
    """The header (machine, date, peak, caveats) and one table row per record."""
    w, h = facts["peak_size"]
    lines = [
        f"Speed, {datetime.date.today().isoformat()}: {machine(device)}; torch "
        f"{torch.__version__}; device {device}.",
        f"Practical peak (dense 64->64 3x3 conv, fp32, {w}x{h}): {facts['peak_gflops']:.1f} "
        f"GFLOP/s. Engine default (precision='auto') here: {facts['auto']}.",
        f"Detector: {facts['detector']} (Ultralytics predict, imgsz 640).",
    ]
    if facts["random_init"]:
        lines.append(f"Random-init stand-ins (weights not installed): "
                     f"{', '.join(facts['random_init'])}.")
    lines += ["", "| profile | R | path | tile | device | size | ms/frame | MP/s | % peak "
                  "| detector ms | de-blocker/detector |", "|" + "---|" * 11]
    for r in records:
        lines.append(
            f"| {r['profile']} | {r['iterations']} | {r['path']} | {_tile_text(r.get('tile'))} | "
            f"{r['device']} | "
            f"{r['width']}x{r['height']} | {r['ms']:.1f} | {r['mp_per_s']:.2f} | "
            f"{100 * r['peak_fraction']:.0f}% | {r['detector_ms']:.1f} | "
            f"{r['ms'] / r['detector_ms']:.1f}x |")
    return "\n".join(lines)


def _tile_text(tile: int | None) -> str:
    """Table cell for a record's tile: '-' (not an Engine path), 'none' (whole frame) or N."""
    return "-" if tile is None else str(tile or "none")


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)`` (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.speed",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", nargs="+", default=list(MODELS),
                        help="shipped model names or weights files, each optionally with @R "
                             "for R LISTA iterations")
    parser.add_argument("--paths", nargs="+", choices=list(PATHS),
                        help=f"default per device: {DEFAULT_PATHS}")
    parser.add_argument("--sizes", nargs="+", type=parse_size,
                        default=[(640, 480), (1920, 1080)], help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tiles", nargs="+", type=int, default=[DEFAULT_TILE],
                        help="Engine tile sizes to time (0: whole frames)")
    parser.add_argument("--detector", type=Path, default=DETECTOR, help="Ultralytics weights path")
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    device = torch.device(args.device)

    records, facts = benchmark(args.profiles, args.paths or DEFAULT_PATHS[device.type],
                               args.sizes, args.repeats, args.warmup, args.detector, device,
                               args.tiles)
    print(markdown(records, facts, device))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
