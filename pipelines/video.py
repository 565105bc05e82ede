"""Clean a video, camera or stream frame by frame and write the result as mp4.

    python -m pipelines.video --source input.mp4 --output clean.mp4 --side-by-side

Frames are read with ``cv2.VideoCapture``, de-blocked by :class:`dcsc_preproc.FrameFilter`
and written by ``cv2.VideoWriter`` (``mp4v``, the source's frame rate or 25 when unknown).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from tqdm import tqdm

from dcsc_preproc import FrameFilter
from dcsc_preproc.engine import DEFAULT_TILE

DEFAULT_FPS = 25.0


def clean_video(source: str | int | Path, output: str | Path,
                filter: Callable[[np.ndarray], np.ndarray], side_by_side: bool = False,
                max_frames: int | None = None) -> int:
    """Run ``filter`` on every frame of ``source`` and write ``output``; returns frames written.

    ``source`` is a file, a camera index or a URL. ``side_by_side`` writes input | output
    frames of double width. Capture and writer are released however the loop ends (end of
    stream, ``max_frames``, an error or Ctrl-C), so the file written so far stays playable.
    """
    capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    if not capture.isOpened():
        raise OSError(f"cannot open video source {str(source)!r}")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # 0 or -1 for cameras and streams
    total = count if count > 0 else None
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    writer: cv2.VideoWriter | None = None
    written = 0
    try:
        with tqdm(total=total, unit="frame", desc="cleaning") as progress:
            while max_frames is None or written < max_frames:
                ok, frame = capture.read()
                if not ok:
                    break
                cleaned = filter(frame)
                if side_by_side:
                    cleaned = np.hstack([frame, cleaned])
                if writer is None:
                    writer = _open_writer(output, fps, cleaned.shape[1], cleaned.shape[0])
                writer.write(cleaned)
                written += 1
                progress.update()
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return written


def _open_writer(output: str | Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(output), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot open video writer for {str(output)!r}")
    return writer


def _source(text: str) -> str | int:
    """A camera index stays an int for ``cv2.VideoCapture``; anything else is a file or URL."""
    return int(text) if text.isdigit() else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=_source,
                        help="video file, camera index or stream URL")
    parser.add_argument("--output", required=True, type=Path, help="mp4 file to write")
    parser.add_argument("--model", help="shipped model name or weights file, optionally with @R "
                                        "for R LISTA iterations (default: the library's model)")
    parser.add_argument("--side-by-side", action="store_true", help="write input | output")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE,
                        help="tile size; 0 disables tiling")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it")
    try:
        frame_filter = FrameFilter(args.model, tile=args.tile or None)
        written = clean_video(args.source, args.output, frame_filter, args.side_by_side,
                              args.max_frames)
    except (OSError, ValueError) as err:  # unreadable source or weights, unusable frames
        parser.error(str(err))
    except KeyboardInterrupt:
        print(f"stopped by Ctrl-C; {args.output} holds the frames written so far", file=sys.stderr)
        return 130
    print(f"wrote {written} frames to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
