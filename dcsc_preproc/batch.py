"""De-block a whole image folder on Ray Data: embedded on one machine or on a Ray cluster.

    dcsc-preproc batch --source images/ --output clean/        # or: python -m pipelines.batch

The driver lists the images under ``source`` (recursing; JPEG, PNG, BMP, WebP), skips those
whose output exists (unless ``overwrite``) and hands the rest to Ray Data: read tasks load each
file as bytes (``read_binary_files``), and a pool of actors, each holding one
:class:`~dcsc_preproc.FrameFilter` (so one model load per actor), decodes, de-blocks and
writes each image as PNG (lossless: JPEG would put artifacts back) under the same relative
path in ``output``. The driver only collects one manifest row per image (``manifest.jsonl`` in
``output``: input, output, status ``ok``/``skipped``/``failed``, error, whether it was
de-blocked, its estimated JPEG quality and the estimate's source, seconds) and draws the
progress bar. A corrupt or unreadable file is a ``failed`` row; the run goes on. The quality
gate (:class:`~dcsc_preproc.QualityGate`, ``"auto"`` by default, judged from a JPEG's
quantisation tables) writes images estimated above its threshold as decoded, unchanged.

Images are decoded with OpenCV as stored (``IMREAD_UNCHANGED``): gray stays gray, BGRA keeps
its alpha, EXIF orientation is not applied (pixels stay where annotations put them), and the
result of a de-blocked image is exactly what ``FrameFilter(model, gate=None)`` returns for
``cv2.imread(path, cv2.IMREAD_UNCHANGED)``.

This module is part of the package (so ``dcsc-preproc batch`` works from any install) but
imports Ray only when a run starts: Ray is the optional extra ``distributed``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .model import DCSC
from .quality import QualityEstimate, QualityGate
from .zoo import DEFAULT_MODEL

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MANIFEST_NAME = "manifest.jsonl"
INSTALL_HINT = 'Ray is not installed; install the extra with: pip install -e ".[distributed]"'


def find_images(source: str | Path) -> list[Path]:
    """Image files under ``source`` (recursing), as paths relative to it, sorted.

    Example:
        >>> find_images(Path(__file__).parent / "weights")
        []
    """
    source = Path(source)
    return sorted(p.relative_to(source) for p in source.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def output_path(relative: Path) -> Path:
    """Where an input's PNG goes, relative to the output folder: same path, ``.png`` suffix.

    Example:
        >>> output_path(Path("a/b.jpg")).as_posix()
        'a/b.png'
    """
    return relative.with_suffix(".png")


def check_folders(source: str | Path, output: str | Path) -> None:
    """Refuse a missing ``source`` and folders that overlap: nothing under ``source`` is written.

    An ``output`` inside ``source`` would be written under it and found again as input on the
    next run; a ``source`` inside ``output`` could get PNGs written into it.
    """
    src, out = Path(source).resolve(), Path(output).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"no source folder at {source}")
    if out == src or out.is_relative_to(src) or src.is_relative_to(out):
        raise ValueError(f"--output {output} and --source {source} overlap; "
                         "the output folder must lie outside the source folder")


def default_workers(cpus: float, cpus_per_worker: float, gpus: float,
                    gpus_per_worker: float) -> int:
    """Actors for a cluster of ``cpus``/``gpus``: one per GPU share, else all CPUs but one.

    The CPU left free runs Ray's read tasks, which would otherwise wait behind the actors.

    Example:
        >>> default_workers(cpus=2, cpus_per_worker=1, gpus=0, gpus_per_worker=0)
        1
        >>> default_workers(cpus=16, cpus_per_worker=1, gpus=2, gpus_per_worker=0.5)
        4
    """
    if gpus_per_worker:
        if gpus < gpus_per_worker:
            raise ValueError(f"--gpus-per-worker {gpus_per_worker} but the Ray cluster has "
                             f"{gpus:g} GPUs")
        return int(gpus // gpus_per_worker)
    return max(1, int((cpus - 1) // cpus_per_worker))


class _Deblocker:
    """Ray Data actor: one FrameFilter, loaded once; de-blocks batches of file bytes to PNGs."""

    def __init__(self, model: str | Path | DCSC, source: str, output: str, device: str,
                 threads: int, gate: int | str | None) -> None:
        import torch

        from .frame_filter import FrameFilter

        torch.set_num_threads(threads)
        self.filter = FrameFilter(model, device=device, gate=None)
        self.gate = QualityGate(gate)
        self.source, self.output = Path(source), Path(output)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {key: [] for key in (
            "input", "status", "error", "deblocked", "quality", "quality_source", "seconds")}
        for data, path in zip(batch["bytes"], batch["path"]):
            start = time.perf_counter()
            relative = Path(path).relative_to(self.source)
            try:
                deblocked, estimate = self._write(data, self.output / output_path(relative))
                row = ("ok", "", deblocked, *((estimate.quality, estimate.source) if estimate
                                              else (None, None)))
            except (TypeError, ValueError, OSError) as err:
                row = ("failed", str(err), None, None, None)
            for key, value in zip(rows, (relative.as_posix(), *row,
                                         time.perf_counter() - start)):
                rows[key].append(value)
        return rows

    def _write(self, data: bytes, target: Path) -> tuple[bool, QualityEstimate | None]:
        """Decode, de-block unless the gate passes the image, write ``target`` as PNG.

        Returns whether it was de-blocked and the gate's estimate of its JPEG quality (from
        a JPEG's tables, else from the pixels; ``None`` when the gate is off or passed the
        image unseen: smaller than 8x8, or 16-bit). A passed image is written as decoded.
        """
        import cv2

        frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if frame is None:
            raise ValueError("cannot decode the file (corrupt or not an image)")
        self.gate.last = None  # so that an image passed unseen reports no estimate
        deblocked = self.gate.restore(frame, "bgr" if frame.ndim == 3 else "rgb", file=data)
        ok, png = cv2.imencode(".png", self.filter(frame) if deblocked else frame)
        if not ok:
            raise ValueError("PNG encoding failed")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")  # a killed run leaves no truncated PNG
        partial.write_bytes(png.tobytes())
        os.replace(partial, target)
        return deblocked, self.gate.last


def deblock_folder(source: str | Path, output: str | Path, model: str | Path | DCSC = DEFAULT_MODEL,
                   *, workers: int | None = None, cpus_per_worker: float = 1,
                   gpus_per_worker: float = 0, batch_size: int = 4,
                   gate: int | str | None = "auto", overwrite: bool = False,
                   manifest: str | Path | None = None, progress: bool = True) -> dict[str, int]:
    """De-block every image under ``source`` into ``output`` on Ray (see :func:`connect`).

    Uses the running Ray instance, or starts one embedded. ``gate`` is the quality gate's
    threshold (:class:`~dcsc_preproc.QualityGate`: ``"auto"``, a quality, ``None`` for always
    on): images estimated above it are written as decoded. Returns how many images ended
    ``ok`` (of them, ``passed`` by the gate), ``skipped`` (output already there) and
    ``failed``; ``manifest`` (default ``output/manifest.jsonl``) gets one JSON line per image,
    rewritten each run.
    """
    from tqdm import tqdm

    ray = _import_ray()
    check_folders(source, output)
    QualityGate(gate)  # a bad threshold fails here, not in every actor
    source, output = Path(source), Path(output)
    manifest = Path(manifest) if manifest else output / MANIFEST_NAME
    if manifest.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"the manifest {manifest} lies under --source {source}")
    if not ray.is_initialized():
        connect()
    cluster = ray.cluster_resources()
    workers = workers or default_workers(cluster.get("CPU", 0), cpus_per_worker,
                                         cluster.get("GPU", 0), gpus_per_worker)
    if workers * cpus_per_worker > cluster.get("CPU", 0):
        raise ValueError(f"{workers} workers x {cpus_per_worker} CPUs need more than the "
                         f"cluster's {cluster.get('CPU', 0):g} CPUs")

    todo, early = _plan(source, output, overwrite)
    counts = {"ok": 0, "passed": 0, "skipped": 0, "failed": 0}
    output.mkdir(parents=True, exist_ok=True)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with manifest.open("w") as log, tqdm(total=len(todo), desc="batch", unit="image",
                                         disable=not progress) as bar:
        def record(row: dict[str, Any]) -> None:
            counts[row["status"]] += 1
            counts["passed"] += row.get("deblocked") is False
            relative = Path(row["input"])
            log.write(json.dumps({"input": str(source / relative),
                                  "output": str(output / output_path(relative)),
                                  "status": row["status"], "error": row["error"] or None,
                                  "deblocked": row.get("deblocked"), "quality": row.get("quality"),
                                  "quality_source": row.get("quality_source"),
                                  "seconds": row["seconds"]}) + "\n")
            log.flush()

        for row in early:
            record(row)
        if todo:
            seen = set()
            dataset = _dataset(source, output, todo, model, gate, workers, cpus_per_worker,
                               gpus_per_worker, batch_size)
            for row in dataset.iter_rows():
                seen.add(row["input"])
                record(row)
                bar.update()
            for relative in todo:  # files Ray could not read at all (removed mid-run, ...)
                if relative.as_posix() not in seen:
                    record({"input": relative.as_posix(), "status": "failed",
                            "error": "not read", "seconds": None})
    return counts


def _plan(source: Path, output: Path, overwrite: bool) -> tuple[list[Path], list[dict[str, Any]]]:
    """Inputs to de-block, and manifest rows settled before any work (skipped, failed)."""
    todo, early, claimed = [], [], {}
    for relative in find_images(source):
        target = output_path(relative)
        row = {"input": relative.as_posix(), "seconds": None}
        if target in claimed:
            early.append(row | {"status": "failed",
                                "error": f"same output as {claimed[target].as_posix()}"})
        elif not os.access(source / relative, os.R_OK):
            early.append(row | {"status": "failed", "error": "unreadable file"})
        elif (output / target).exists() and not overwrite:
            early.append(row | {"status": "skipped", "error": "output exists"})
        else:
            todo.append(relative)
        claimed.setdefault(target, relative)
    return todo, early


def _dataset(source: Path, output: Path, todo: list[Path], model: str | Path | DCSC,
             gate: int | str | None, workers: int, cpus_per_worker: float,
             gpus_per_worker: float, batch_size: int) -> Any:
    """The Ray Data pipeline: bytes from read tasks, de-blocked by a pool of actors."""
    ray = _import_ray()

    ray.data.DataContext.get_current().enable_progress_bars = False  # ours is the one bar
    source, output = source.resolve(), output.resolve()
    files = ray.data.read_binary_files([str(source / p) for p in todo], include_paths=True,
                                       ignore_missing_paths=True)
    return files.map_batches(
        _Deblocker, batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker,
        fn_constructor_kwargs={"model": model, "source": str(source), "output": str(output),
                               "device": "cuda" if gpus_per_worker else "cpu",
                               "threads": max(1, int(cpus_per_worker)), "gate": gate})


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start Ray embedded on this machine, or join the cluster at ``address`` / ``RAY_ADDRESS``.

    ``num_cpus`` limits an embedded instance (default: all of this machine's CPUs). Does
    nothing when Ray is already initialised in this process.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return ray
