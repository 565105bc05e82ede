"""Speed benchmark: ms per frame of each de-blocking path next to the detector it feeds.

For each profile x path x frame size, in one run on one machine:
median ms per frame over ``--repeats`` timed calls after ``--warmup`` untimed ones, megapixels
per second, GFLOP/s from the model's analytic FLOPs (:func:`flops_per_pixel`) and its fraction
of the machine's practical peak. That peak is a dense 64->64 3x3 fp32 convolution on a
``1x64xHxW`` input at the largest size, best of NCHW and channels_last, measured in the same
run; reduced-precision and INT8 paths can exceed 100% of it. Next to each row: the detector's
own time (Ultralytics ``predict``, imgsz 640, on the same BGR uint8 frame, after one extra
call that builds the predictor), timed in alternation with the de-blocker's calls, and the
median of the per-call ratios de-blocker / detector, which holds when the machine's load
changes during a run; ``model share`` is the part of each de-blocking call spent in the
network itself (CPU), the rest being the Engine's conversions. ``--detector`` is
a ``.pt`` file or an Ultralytics export folder; on the CPU the default is the official INT8
OpenVINO export of YOLOv8n, what users deploy there.

Everything runs on torch's default thread count (one per physical core). Building an
Ultralytics predictor on CPU lowers it process-wide to ``cpu_count - 1`` (1 on a 2-core
machine); the benchmark sets it back so de-blocker and detector share the same threads.

The frame is Ultralytics' bundled ``bus.jpg`` resized to each size. Every path times
``Engine.restore_array`` on the BGR uint8 frame with ``bgr=True``, as the YOLO pipeline calls
it (colour order, padding, tiling, rounding): torch paths by precision and layout
(``compile_*`` puts the torch model through ``torch.compile``; the warm-up calls must cover
the compilation), ``openvino``/``openvino_fp32``/``onnxruntime``/``auto`` by Engine backend,
``openvino_int8`` through an INT8 export folder made in the run (NNCF calibration on the
training images under ``--data``: a minute or two per profile). ``--at detector`` also times
each path as ``add_deblocking(..., at="detector")`` runs it: the frame shrunk to what the
detector sees at imgsz 640 (bilinear, as ``LetterBox``; the shrink is part of the time) and
de-blocked there, so its cost stops growing with the source (MP/s counts source pixels,
% peak the pixels de-blocked). Records name the ``backend`` that ran, the ``detector`` and
where the frame was de-blocked (``at``, and ``scale`` for ``--scale``: a multiple of the
detector's input, as ``add_deblocking``'s). A profile is a shipped name or a weights file,
optionally with ``@R`` to run R LISTA iterations (``dcsc-y@10``; S is shared, so R can
change at inference), named by :func:`~dcsc_preproc.zoo.model_name` as in the other
benchmarks. A shipped name whose weights are not installed is timed as a random-init model of
its configuration (timing does not depend on weights) and the output says so.

The default run (the default model, its default and OpenVINO paths, 640x480 and 1920x1080,
de-blocked at the source size and at the detector's) takes a few minutes on 2 cores. Every
backend at the camera sizes, one run (docs/RESULTS.md):

    python -m eval.speed --paths torch openvino openvino_int8 onnxruntime \
        --sizes 640x480 1280x720 1920x1080 3840x2160 --json results/speed_backends.json \
        --plot results/speed_backends.png

The paper profiles cost about 3 MFLOP per pixel (seconds per 640x480 frame on a CPU); time them
in a run of their own with ``--repeats 1 --warmup 0``:

    python -m eval.speed --profiles dcsc-y dcsc-rgb --paths bf16_channels_last \
        --sizes 1920x1080 --repeats 1 --warmup 0 --json results/speed_paper_1080p.json
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported: it checks at import
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from ultralytics.utils import ASSETS, LOGGER  # noqa: E402

from matplotlib.figure import Figure  # noqa: E402

from dcsc_preproc import (DCSC, DEFAULT_MODEL, MODELS, DCSCConfig, Engine,  # noqa: E402
                          available_models, jpeg_roundtrip, load_model, model_name)
from dcsc_preproc.backends import is_installed  # noqa: E402
from dcsc_preproc.engine import DEFAULT_TILE, machine, resolve_precision  # noqa: E402
from dcsc_preproc.zoo import split_iterations  # noqa: E402
from eval.common import parse_size  # noqa: E402
from pipelines.yolo import (PLACES, deblock_array, deblock_imgsz, letterbox_size,  # noqa: E402
                            load_detector)

SHARED = Path(os.environ.get("DCSC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
#: ``--detector`` default per device: on the CPU the INT8 OpenVINO export users deploy there.
DETECTORS = {"cpu": SHARED / "models" / "yolov8n_int8_openvino_model",
             "cuda": SHARED / "models" / "yolov8n_ovint8_dequant.pt"}
#: Path name -> Engine keyword arguments (``openvino_int8``: an INT8 export folder is made).
PATHS: dict[str, dict] = {
    "torch": {},
    "fp32": {"precision": "fp32", "channels_last": False},
    "channels_last": {"precision": "fp32", "channels_last": True},
    "bf16": {"precision": "bf16", "channels_last": False},
    "bf16_channels_last": {"precision": "bf16", "channels_last": True},
    "fp16": {"precision": "fp16", "channels_last": False},
    "fp16_channels_last": {"precision": "fp16", "channels_last": True},
    "compile_bf16_channels_last": {"precision": "bf16", "channels_last": True},
    "openvino": {"backend": "openvino"},
    "openvino_fp32": {"backend": "openvino", "precision": "fp32"},
    "openvino_int8": {},
    "onnxruntime": {"backend": "onnxruntime"},
    "auto": {"backend": "auto"},
}
#: The runtime each non-torch path needs (paths whose runtime is missing are skipped).
_RUNTIMES = {"openvino": "openvino", "openvino_fp32": "openvino", "openvino_int8": "openvino",
             "onnxruntime": "onnxruntime"}
#: ``--paths`` default per device type: the Engine's default and, on the CPU, OpenVINO.
DEFAULT_PATHS = {"cpu": ["torch", "openvino"], "cuda": ["torch", "fp32", "fp16_channels_last"]}
#: The detector's input size (Ultralytics' default, and what every detector row uses).
IMGSZ = 640


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


class BackendTimer:
    """Wraps an Engine's backend and adds up the wall time spent inside it, so a row can say
    what share of ``restore_array`` the model itself takes (the rest: conversions, padding,
    copies). CPU only: on CUDA the backend returns before the GPU has finished."""

    def __init__(self, engine: Engine) -> None:
        self.backend, self.seconds = engine.backend, 0.0
        engine.backend = self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.backend(x)
        self.seconds += time.perf_counter() - start
        return out


def deblock_call(engine: Engine, frame: np.ndarray, imgsz: int | None
                 ) -> Callable[[], np.ndarray]:
    """One de-blocking of ``frame`` as the YOLO pipeline does it, shrunk to ``imgsz`` first
    (``None``: at the source size; :func:`~pipelines.yolo.deblock_array`)."""
    return lambda: deblock_array(engine, frame, imgsz)


def time_engine(engine: Engine, deblock: Callable[[], object], detect: Callable[[], object],
                repeats: int, warmup: int) -> tuple[float, float, float, float | None]:
    """Median ms of ``deblock`` (a :func:`deblock_call` of ``engine``),
    median ms of ``detect`` (the detector on the same frame) timed in alternation with it, the
    median of the per-repeat ratios de-blocker / detector, and the median share of each
    de-blocking call spent in the backend (``None`` on CUDA).

    Alternating the two calls makes the ratio hold on a machine whose load changes during
    the run (the milliseconds alone do not).
    """
    timer = BackendTimer(engine) if engine.device.type == "cpu" else None
    for _ in range(warmup):
        deblock()
    times, detector, shares = [], [], []
    for _ in range(repeats):
        detector.append(median_ms(detect, 1, 0) / 1000)
        start = time.perf_counter()
        if timer:
            timer.seconds = 0.0
        deblock()
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        shares.append(timer.seconds / times[-1] if timer else None)
    if timer:
        engine.backend = timer.backend
    ratio = statistics.median(t / d for t, d in zip(times, detector))
    return (1000 * statistics.median(times), 1000 * statistics.median(detector), ratio,
            statistics.median(shares) if timer else None)


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


@contextmanager
def to_stderr() -> Iterator[None]:
    """Send prints and Ultralytics' log lines (its handler holds the original stdout) to
    stderr, so stdout is only the table."""
    handlers = [h for h in LOGGER.handlers if getattr(h, "stream", None) is sys.stdout]
    for handler in handlers:
        handler.setStream(sys.stderr)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        for handler in handlers:
            handler.setStream(sys.stdout)


def bench_frame(width: int, height: int, jpeg: int | None = None) -> np.ndarray:
    """Ultralytics' bus.jpg resized to ``width x height``: a BGR uint8 frame; with ``jpeg``,
    compressed at that quality at its own size, as a camera's encoder would (the frame a
    de-blocker is for: its grid read finds the 8x8 grid there)."""
    frame = cv2.resize(cv2.imread(str(ASSETS / "bus.jpg")), (width, height),
                       interpolation=cv2.INTER_AREA)
    if jpeg is None:
        return frame
    return np.ascontiguousarray(jpeg_roundtrip(frame[..., ::-1], jpeg)[..., ::-1])


def path_engine(path: str, model: DCSC, device: torch.device, tile: int,
                folder: Path) -> Engine:
    """The Engine a benchmark path times (``openvino_int8``: an INT8 export into ``folder``)."""
    if path == "openvino_int8":
        from dcsc_preproc.backends.openvino import export_openvino

        return Engine(export_openvino(model, folder / "int8", int8=True, data=SHARED / "data",
                                      overwrite=True), tile=tile or None)
    engine = Engine(model, device=device, tile=tile or None, **PATHS[path])
    if path.startswith("compile_"):
        engine.backend.model = torch.compile(engine.backend.model)
    return engine


def benchmark(profiles: Sequence[str], paths: Sequence[str], sizes: Sequence[tuple[int, int]],
              repeats: int, warmup: int, detector: Path, device: torch.device,
              tiles: Sequence[int] = (DEFAULT_TILE,), at: Sequence[str] = ("source",),
              jpeg: int | None = None, scales: Sequence[float] = (1.0,)
              ) -> tuple[list[dict], dict]:
    """Time everything; returns the records and facts about the run (for the table header).

    ``tiles``: the Engine's tile sizes to time (0: no tiling); ``at``: where to de-block
    (:data:`~pipelines.yolo.PLACES`), ``at="detector"`` once per ``scales`` entry (a multiple
    of the detector's input, as ``add_deblocking``'s ``scale``); ``jpeg``: the frames' JPEG
    quality (see :func:`bench_frame`). Paths whose runtime is not installed are left out and listed in the
    facts.
    """
    frames = {size: bench_frame(*size, jpeg) for size in sizes}
    threads = torch.get_num_threads()
    with to_stderr():  # Ultralytics prints what it loads: keep the table clean
        yolo = load_detector(detector)
        yolo.predict(frames[sizes[0]], imgsz=IMGSZ, device=str(device), verbose=False)
    torch.set_num_threads(threads)  # building the predictor set it to cpu_count - 1
    largest = max(sizes, key=lambda s: s[0] * s[1])
    places = [(p, None) for p in at if p == "source"]
    places += [("detector", s) for s in scales if "detector" in at]
    peak = peak_gflops(device, *largest, repeats, warmup)
    missing = [p for p in paths if p in _RUNTIMES and not is_installed(_RUNTIMES[p])]
    records, random_init = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for profile in profiles:
            name, model, random = load_profile(profile)
            if random:
                random_init.append(name)
            for path, tile in itertools.product([p for p in paths if p not in missing], tiles):
                with to_stderr():  # NNCF's progress, Ultralytics' lines
                    engine = path_engine(path, model, device, tile, Path(tmp))
                for ((w, h), frame), (place, scale) in itertools.product(frames.items(),
                                                                         places):
                    def detect():
                        return yolo.predict(frame, imgsz=IMGSZ, device=str(device),
                                            verbose=False)
                    size = None if place == "source" else deblock_imgsz(IMGSZ, scale)
                    ms, detector_ms, ratio, share = time_engine(
                        engine, deblock_call(engine, frame, size), detect, repeats, warmup)
                    dw, dh = (w, h) if size is None else letterbox_size((h, w), size)
                    gflops = flops_per_pixel(model.config) * dw * dh / ms / 1e6
                    records.append({
                        "profile": name, "iterations": model.config.iterations, "path": path,
                        "backend": engine.backend_name, "tile": tile, "at": place,
                        "scale": scale,
                        "device": device.type,
                        "width": w, "height": h, "jpeg": jpeg,
                        "ms": ms, "mp_per_s": w * h / ms / 1e3,
                        "detector": detector.name, "detector_ms": detector_ms,
                        "ratio": ratio,
                        "model_share": share, "peak_fraction": gflops / peak})
                    print(f"{name} {path} tile {_tile_text(tile)} at {_at_text(place, scale)} "
                          f"{w}x{h}: {ms:.1f} ms", file=sys.stderr)
    auto = resolve_precision("auto", device)
    facts = {"peak_gflops": peak, "peak_size": largest, "random_init": random_init,
             "auto": f"{auto}, channels_last", "detector": detector.name, "missing": missing,
             "jpeg": jpeg}
    return records, facts


def markdown(records: list[dict], facts: dict, device: torch.device) -> str:
    """The header (machine, date, peak, caveats) and one table row per record."""
    w, h = facts["peak_size"]
    lines = [
        f"Speed, {datetime.date.today().isoformat()}: {machine(device)}; torch "
        f"{torch.__version__}; device {device}.",
        f"Practical peak (dense 64->64 3x3 conv, fp32, {w}x{h}): {facts['peak_gflops']:.1f} "
        f"GFLOP/s. Engine default (precision='auto') here: {facts['auto']}.",
        f"Detector: {facts['detector']} (Ultralytics predict, imgsz {IMGSZ}).",
        "Frames: bus.jpg resized" + (f", then JPEG q{facts['jpeg']}." if facts.get("jpeg")
                                     else " (not JPEG-compressed)."),
    ]
    if facts["missing"]:
        lines.append(f"Not timed (runtime not installed): {', '.join(facts['missing'])}.")
    if facts["random_init"]:
        lines.append(f"Random-init stand-ins (weights not installed): "
                     f"{', '.join(facts['random_init'])}.")
    lines += ["", "| profile | R | path | backend | tile | at | device | size | ms/frame | MP/s "
                  "| model share | % peak | detector ms | de-blocker/detector |",
              "|" + "---|" * 14]
    for r in records:
        lines.append(
            f"| {r['profile']} | {r['iterations']} | {r['path']} | {r['backend']} | "
            f"{_tile_text(r['tile'])} | {_at_text(r.get('at', 'source'), r.get('scale'))} | "
            f"{r['device']} | "
            f"{r['width']}x{r['height']} | {r['ms']:.1f} | {r['mp_per_s']:.2f} | "
            f"{_percent(r['model_share'])} | "
            f"{100 * r['peak_fraction']:.0f}% | {r['detector_ms']:.1f} | "
            f"{r['ratio']:.2f}x |")
    return "\n".join(lines)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def _at_text(at: str, scale: float | None) -> str:
    """Table cell for where a record de-blocked: 'source', 'detector' or 'detector x1.5'."""
    return at if scale in (None, 1) else f"{at} x{scale:g}"


def _tile_text(tile: int) -> str:
    """Table cell for a record's tile: 'none' (whole frame) or N."""
    return str(tile or "none")


def plot(records: list[dict], path: str | Path) -> None:
    """ms per frame against source megapixels: one line per profile, path and place (colour:
    the path; marker: the profile; dotted: at the detector's size, dash-dotted: at a multiple
    of it), and the detector (median of its times beside each row), on log-log axes."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()

    def key(r: dict) -> tuple[str, str, str]:
        return r["profile"], r["path"], _at_text(r.get("at", "source"), r.get("scale"))

    routes = list(dict.fromkeys(r["path"] for r in records))
    profiles = list(dict.fromkeys(r["profile"] for r in records))
    for line_key in dict.fromkeys(key(r) for r in records):
        line = sorted((r for r in records if key(r) == line_key),
                      key=lambda r: r["width"] * r["height"])
        profile, route, place = line_key
        ax.plot([r["width"] * r["height"] / 1e6 for r in line], [r["ms"] for r in line],
                color=f"C{routes.index(route) % 10}",
                marker="osD^v<>ph*"[profiles.index(profile) % 10],
                linestyle={"source": "-", "detector": ":"}.get(place, "-."),
                label=f"{profile} {route}" + ("" if place == "source" else
                                              f" at {place.replace('detector', 'detector size')}"))
    by_size: dict[tuple[int, int], list[float]] = {}
    for r in records:  # the detector is timed beside every row: its median per size
        by_size.setdefault((r["width"], r["height"]), []).append(r["detector_ms"])
    sizes = sorted(((size, statistics.median(ms)) for size, ms in by_size.items()),
                   key=lambda item: item[0][0] * item[0][1])
    ax.plot([w * h / 1e6 for (w, h), _ in sizes], [ms for _, ms in sizes], color="black",
            linestyle="--", marker="s", label=f"detector ({records[0]['detector']})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([w * h / 1e6 for (w, h), _ in sizes], [f"{w}x{h}" for (w, h), _ in sizes])
    ax.tick_params(axis="x", which="minor", labelbottom=False)
    ax.set_xlabel("source frame")
    ax.set_ylabel("ms per frame")
    ax.set_title(f"De-blocking cost against frame size ({records[0]['device']})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside: lines stay seen
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.speed",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", nargs="+", default=[DEFAULT_MODEL],
                        help="shipped model names or weights files, each optionally with @R "
                             f"for R LISTA iterations (default: {DEFAULT_MODEL}; shipped: "
                             f"{', '.join(MODELS)})")
    parser.add_argument("--paths", nargs="+", choices=list(PATHS),
                        help=f"default per device: {DEFAULT_PATHS}")
    parser.add_argument("--sizes", nargs="+", type=parse_size,
                        default=[(640, 480), (1920, 1080)], help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tiles", nargs="+", type=int, default=[DEFAULT_TILE],
                        help="Engine tile sizes to time (0: whole frames)")
    parser.add_argument("--at", nargs="+", choices=PLACES, default=list(PLACES),
                        help="de-block the frame as given (source) and/or shrunk to the "
                             f"detector's input at imgsz {IMGSZ} first (detector)")
    parser.add_argument("--scale", nargs="+", type=float, default=[1.0], metavar="S",
                        help="with --at detector: de-block at S times the detector's input "
                             "(add_deblocking's scale)")
    parser.add_argument("--detector", type=Path,
                        help="Ultralytics .pt file or export folder (default per device: "
                             f"{ {k: v.name for k, v in DETECTORS.items()} })")
    parser.add_argument("--plot", type=Path, help="write ms per frame against frame size here")
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--jpeg", type=int, metavar="Q",
                        help="JPEG-compress each frame at quality Q (1-100) after resizing, as "
                             "a camera would (default: not compressed)")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    if args.jpeg is not None and not 1 <= args.jpeg <= 100:
        parser.error(f"--jpeg must be a quality from 1 to 100, got {args.jpeg}")
    device = torch.device(args.device)

    records, facts = benchmark(args.profiles, args.paths or DEFAULT_PATHS[device.type],
                               args.sizes, args.repeats, args.warmup,
                               args.detector or DETECTORS[device.type], device, args.tiles,
                               args.at, args.jpeg, args.scale)
    print(markdown(records, facts, device))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    if args.plot and records:
        plot(records, args.plot)
    if argv is None and len(sys.argv) == 1:
        print("\nThis was the default run. Every backend at 640x480 to 3840x2160, INT8 and "
              "the other models: the commands in eval/speed.py's docstring and "
              "docs/RESULTS.md section 3.", file=sys.stderr)


if __name__ == "__main__":
    main()
