"""Clean a video file, camera or stream and write H.264 (or H.265) that plays in browsers.

    python -m pipelines.video --source input.avi --output clean.mp4 --side-by-side
    python -m pipelines.video --source rtsp://camera/stream --output clean.mp4 --reconnect 5 \\
        --detect ../shared/models/yolov8n_ovint8_dequant.pt

Decoding and encoding go through PyAV (``pip install 'dcsc-preproc[video]'``): libx264 yuv420p
at ``--crf`` (18, visually lossless, by default), the source's exact frame rate and every
frame's timestamp (variable frame rate kept), the audio copied (or transcoded to AAC when the
output container cannot hold it). A reader thread decodes and a writer thread encodes around
the de-blocker (:class:`dcsc_preproc.FrameFilter`, whose quality gate, ``--gate``, lets
frames that are already clean pass), with bounded queues between them; the
progress bar shows frames per second and the de-blocker's share of the time. ``--detect``
runs a YOLO detector on the cleaned frames (and the raw ones with ``--side-by-side``), draws
its boxes and writes one JSON line of detections per frame. Ctrl-C or the end of the stream
finalises the output, which stays playable.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import sys
import threading
import time
from contextlib import closing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from dcsc_preproc import FrameFilter, QualityGate
from dcsc_preproc.engine import DEFAULT_TILE
from dcsc_preproc.quality import STREAM_EVERY
from pipelines.media import (DEFAULT_CRF, DEFAULT_PRESET, ENCODERS, Frame, Opener, Writer,
                             open_source, require_av)

QUEUE_SIZE = 8  # frames between reader, model and writer: bounds memory, absorbs jitter
_END = object()


class _Failed:
    """An exception raised in the reader thread, handed to the main thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def clean_video(source: str | int | Path, output: str | Path,
                filter: FrameFilter | Callable[[np.ndarray], np.ndarray],
                side_by_side: bool = False, max_frames: int | None = None, *,
                batch: int = 1, codec: str = "h264", crf: int = DEFAULT_CRF,
                preset: str = DEFAULT_PRESET, detector=None,
                detections: str | Path | None = None, conf: float = 0.25, reconnect: int = 0,
                timeout: float = 10.0, backoff: float = 1.0, opener: Opener | None = None,
                progress: bool = True) -> int:
    """Run ``filter`` on every frame of ``source`` and write ``output``; returns frames written.

    ``source`` is a file, a URL (``rtsp://``, ``http://``, ...) or a camera index; a URL that
    drops is reopened up to ``reconnect`` times in a row (see :class:`pipelines.media.AVSource`;
    ``opener`` replaces ``av.open``) and the output goes on. ``filter`` is a
    :class:`~dcsc_preproc.FrameFilter` (``batch`` frames at a time go through its engine
    together) or any function of one BGR frame. ``side_by_side`` writes input | output frames
    of double width. ``detector`` is an Ultralytics ``YOLO``: its boxes (confidence at least
    ``conf``) are drawn on the cleaned frames (and the raw ones with ``side_by_side``), and
    ``detections``, if given, gets one JSON line per frame. The output is finalised however
    the run ends (end of stream, ``max_frames``, an error or Ctrl-C).
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    reader = open_source(source, timeout, reconnect, backoff, opener)
    info = reader.info
    try:
        writer = Writer(output, info, codec, crf, preset)
    except BaseException:
        reader.close()
        raise
    to_model: queue.Queue = queue.Queue(QUEUE_SIZE)
    to_writer: queue.Queue = queue.Queue(QUEUE_SIZE)
    stop = threading.Event()
    write_errors: list[BaseException] = []

    def read() -> None:
        count = 0
        try:
            with closing(reader.items(decode_audio=not writer.copies_audio)) as items:
                for item in items:
                    if isinstance(item, Frame):
                        if count == max_frames:
                            break
                        count += 1
                    if not _put(to_model, item, lambda: not stop.is_set()):
                        return
            _put(to_model, _END, lambda: not stop.is_set())
        except BaseException as err:  # handed to the main thread, which re-raises it
            _put(to_model, _Failed(err), lambda: not stop.is_set())

    def write() -> None:
        try:
            while (item := to_writer.get()) is not _END:
                writer.write(item)
        except BaseException as err:
            write_errors.append(err)

    reading = threading.Thread(target=read, name="video-reader", daemon=True)
    writing = threading.Thread(target=write, name="video-writer", daemon=True)
    reading.start()
    writing.start()
    total = info.frames if max_frames is None else min(info.frames or max_frames, max_frames)
    sink = open(detections, "w") if detections is not None else None
    try:
        with tqdm(total=total, unit="frame", desc="cleaning", disable=not progress) as bar:
            _run_model(to_model, to_writer, writing, filter, batch, side_by_side, detector,
                       conf, sink, bar)
    finally:
        stop.set()
        if writing.is_alive():
            _put(to_writer, _END, writing.is_alive)
        writing.join()
        reading.join()
        writer.close()
        if sink is not None:
            sink.close()
    if write_errors:
        raise write_errors[0]
    return writer.frames


def _run_model(to_model: queue.Queue, to_writer: queue.Queue, writing: threading.Thread,
               filter, batch: int, side_by_side: bool, detector, conf: float,
               sink: IO[str] | None, bar: tqdm) -> None:
    """The main thread's part: de-block (and detect on) batches of frames, in order."""
    start, deblocking, index = time.perf_counter(), 0.0, 0
    for items in _batches(to_model, batch):
        frames = [item for item in items if isinstance(item, Frame)]
        images = [frame.image for frame in frames]
        began = time.perf_counter()
        cleaned = (filter.filter_batch(images) if isinstance(filter, FrameFilter)
                   else [filter(image) for image in images])
        deblocking += time.perf_counter() - began
        if detector is not None and frames:
            found = detector.predict(cleaned, conf=conf, verbose=False)
            raw = detector.predict(images, conf=conf, verbose=False) if side_by_side else None
            cleaned = [r.plot() for r in found]
            images = [r.plot() for r in raw] if raw is not None else images
            if sink is not None:
                for i, frame in enumerate(frames):
                    record = {"frame": index + i, "time": frame.time, **_boxes(found[i])}
                    if raw is not None:
                        record["raw"] = _boxes(raw[i])
                    sink.write(json.dumps(record) + "\n")
                sink.flush()
        out = iter(np.hstack([a, b]) if side_by_side else b for a, b in zip(images, cleaned))
        for item in items:
            if isinstance(item, Frame):
                item = Frame(next(out), item.pts, item.time_base)
            if not _put(to_writer, item, writing.is_alive):
                return  # the writer failed; clean_video raises its error
        index += len(frames)
        bar.update(len(frames))
        bar.set_postfix_str(f"deblock {deblocking / (time.perf_counter() - start):.0%} of time",
                            refresh=False)


def _batches(to_model: queue.Queue, size: int) -> Iterator[list]:
    """Items from the reader in order, cut after ``size`` frames or when the queue runs dry
    (so a live stream is never held back to fill a batch); re-raises the reader's error."""
    items: list = []
    frames = 0
    while True:
        try:
            item = to_model.get(block=frames == 0)
        except queue.Empty:
            yield items
            items, frames = [], 0
            continue
        if item is _END or isinstance(item, _Failed):
            if items:
                yield items
            if isinstance(item, _Failed):
                raise item.error
            return
        items.append(item)
        frames += isinstance(item, Frame)
        if frames == size:
            yield items
            items, frames = [], 0


def _put(q: queue.Queue, item, alive: Callable[[], bool]) -> bool:
    """Put into a bounded queue, giving up (False) once the other side is gone."""
    while alive():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _boxes(result) -> dict:
    """One Ultralytics result as JSON: xyxy pixel boxes, class ids and names, scores."""
    boxes = result.boxes
    classes = boxes.cls.int().tolist()
    return {"boxes": [[round(v, 1) for v in box] for box in boxes.xyxy.tolist()],
            "classes": classes, "names": [result.names[c] for c in classes],
            "scores": [round(s, 4) for s in boxes.conf.tolist()]}


def _source(text: str) -> str | int:
    """A camera index stays an int (opened with OpenCV); anything else is a file or URL."""
    return int(text) if text.isdigit() else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=_source,
                        help="video file, stream URL (rtsp://, http://, ...) or camera index")
    parser.add_argument("--output", required=True, type=Path,
                        help="video file to write (.mp4 plays in browsers; .mkv, .mov work too)")
    parser.add_argument("--model", help="shipped model name or weights file, optionally with @R "
                                        "for R LISTA iterations (default: the library's model)")
    parser.add_argument("--side-by-side", action="store_true", help="write input | output")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE,
                        help="tile size; 0 disables tiling")
    parser.add_argument("--batch", type=int, default=1,
                        help="frames per de-blocker call (helps on a GPU)")
    parser.add_argument("--device", help="torch device for the de-blocker, e.g. cpu or cuda:0")
    parser.add_argument("--gate", default="auto",
                        help="quality gate: 'auto' (default), a JPEG quality above which frames "
                             "pass unchanged, or 'none' (always de-block); estimated every "
                             f"{STREAM_EVERY} frames and at scene changes")
    e = parser.add_argument_group("encoding")
    e.add_argument("--codec", choices=sorted(ENCODERS), default="h264",
                   help="h264 plays everywhere; hevc is smaller but not played by every browser")
    e.add_argument("--crf", type=int, default=DEFAULT_CRF,
                   help="constant rate factor: lower is better and larger (default: %(default)s, "
                        "visually lossless)")
    e.add_argument("--preset", default=DEFAULT_PRESET,
                   help="x264/x265 speed preset (default: %(default)s; slower ones compress "
                        "better)")
    s = parser.add_argument_group("streams")
    s.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for data before the stream counts as dropped")
    s.add_argument("--reconnect", type=int, default=5,
                   help="reopen a dropped URL up to N times in a row, waiting 1, 2, 4, ... s")
    d = parser.add_argument_group("detection")
    d.add_argument("--detect", type=Path, metavar="DETECTOR",
                   help="Ultralytics detector weights: draw its boxes, write detections")
    d.add_argument("--detections", type=Path,
                   help="JSON-lines file of detections (default: the output with .jsonl)")
    d.add_argument("--conf", type=float, default=0.25, help="detection confidence threshold")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    detections = (args.detections or args.output.with_suffix(".jsonl")) if args.detect else None
    for path in (args.output, detections):
        if path is not None and path.exists() and not args.overwrite:
            parser.error(f"{path} exists; pass --overwrite to replace it")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        require_av()
        gate = QualityGate(args.gate, every=STREAM_EVERY)
        frame_filter = FrameFilter(args.model, device=args.device, tile=args.tile or None,
                                   gate=gate)
        detector = None
        if args.detect:
            from pipelines.yolo import load_detector

            detector = load_detector(args.detect)
        with logging_redirect_tqdm():
            written = clean_video(args.source, args.output, frame_filter, args.side_by_side,
                                  args.max_frames, batch=args.batch, codec=args.codec,
                                  crf=args.crf, preset=args.preset, detector=detector,
                                  detections=detections, conf=args.conf,
                                  reconnect=args.reconnect, timeout=args.timeout)
    except ImportError as err:  # PyAV missing: the message names the pip command
        parser.error(str(err))
    except (OSError, ValueError) as err:  # unreadable source or weights, unusable frames
        parser.error(str(err))
    except KeyboardInterrupt:
        print(f"stopped by Ctrl-C; {args.output} holds the frames written so far", file=sys.stderr)
        return 130
    print(f"wrote {written} frames to {args.output}"
          + (f", detections to {detections}" if detections else "")
          + f"; gate {gate.threshold}: {gate.restored} de-blocked, "
          f"{gate.passed} passed unchanged", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
