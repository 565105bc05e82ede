"""Video input and output for :mod:`pipelines.video`, on PyAV (FFmpeg's libraries).

Sources: files and RTSP/HTTP/... URLs through PyAV, with a read timeout and, for URLs,
reconnection with exponential back-off after a drop; camera indices through OpenCV. Every
source yields :class:`Frame` items (BGR pixels with their timestamp) and, when there is an
audio stream, audio packets (copied) or decoded audio frames (to transcode), all on one output
timeline that starts at 0 and continues across reconnections.

Output: :class:`Writer`, H.264 (``libx264``) or H.265 (``libx265``) in yuv420p with a CRF,
the source's time base and exact (rational) frame rate, every frame's own timestamp (so
variable frame rate survives), and the source's audio copied when the output container can
hold its codec, else transcoded to AAC. yuv420p needs even sizes: odd frames are padded by
repeating their last column or row, never cropped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

try:
    import av
except ImportError:  # the optional "video" extra
    av = None

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'dcsc-preproc[video]' (or: pip install av)"
ENCODERS = {"h264": "libx264", "hevc": "libx265"}
DEFAULT_CRF = 18  # visually lossless for x264 (FFmpeg's H.264 guide); x265 at 18 is finer still
#: x264/x265 speed preset: on 2 shared cores, 1080p decoded and encoded 2.9x as fast with
#: veryfast as with x264's own default, medium (docs/RESULTS.md section 6)
DEFAULT_PRESET = "veryfast"
DEFAULT_RATE = Fraction(25)
MAX_BACKOFF = 30.0  # seconds between reconnection attempts, at most


def require_av() -> None:
    """Raise an ImportError naming the pip command when PyAV is not installed."""
    if av is None:
        raise ImportError(f"the video pipeline needs PyAV: {INSTALL_HINT}")


@dataclass(frozen=True)
class Frame:
    """One video frame on the output timeline: BGR uint8 pixels, ``pts`` in ``time_base``."""

    image: np.ndarray
    pts: int
    time_base: Fraction

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class SourceInfo:
    """What the writer needs to know before the first frame (the frame size comes with it:
    some containers state it only in the first picture, MPEG-4 Part 2 over HTTP for one)."""

    rate: Fraction           # frames per second as the container states it (exact rational)
    time_base: Fraction      # of the video timestamps the source yields
    frames: int | None       # frame count when the container knows it
    audio: object | None     # the PyAV audio stream to copy or transcode, if any


Opener = Callable[..., "av.container.InputContainer"]


def open_source(source: str | int | Path, timeout: float = 10.0, reconnect: int = 0,
                backoff: float = 1.0, opener: Opener | None = None) -> "AVSource | CameraSource":
    """A camera index opens through OpenCV; anything else (file or URL) through PyAV."""
    if isinstance(source, int):
        return CameraSource(source)
    require_av()
    return AVSource(str(source), timeout, reconnect, backoff, opener or av.open)


def _start_seconds(container) -> Fraction:
    """The container's first timestamp in seconds (0 when unknown)."""
    start = container.start_time  # in AV_TIME_BASE (microsecond) units
    return Fraction(start, 1_000_000) if start is not None else Fraction(0)


class AVSource:
    """A file or stream URL read with PyAV; a URL is reopened after a drop.

    A read error or a timeout (``timeout`` seconds without data) on a URL closes the input,
    waits ``backoff`` seconds (doubling each attempt, at most :data:`MAX_BACKOFF`) and opens it
    again, up to ``reconnect`` attempts in a row (the count starts afresh once frames flow).
    The new connection's timestamps are shifted to continue where the last frame ended. A
    local file is never reopened: it would be read again from its start. The end of the
    stream ends the items. ``opener`` is ``av.open`` or a stand-in with its signature.
    """

    def __init__(self, source: str, timeout: float, reconnect: int, backoff: float,
                 opener: Opener) -> None:
        if reconnect < 0:
            raise ValueError(f"reconnect must be 0 or more, got {reconnect}")
        self.source, self.timeout, self.backoff, self.opener = source, timeout, backoff, opener
        self.reconnect = reconnect if "://" in source else 0
        try:
            self._container = self._open()
        except (av.FFmpegError, OSError) as err:
            raise OSError(f"cannot open video source {source!r}: {err}") from err
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{source!r} has no video stream")
        video = self._container.streams.video[0]
        audio = self._container.streams.audio
        self.info = SourceInfo(
            rate=video.average_rate or video.guessed_rate or DEFAULT_RATE,
            time_base=video.time_base, frames=video.frames or None,
            audio=audio[0] if audio else None)

    def _open(self):
        return self.opener(self.source, timeout=self.timeout)

    def close(self) -> None:
        """Close the input (for a run that ends before :meth:`items` is used)."""
        self._container.close()

    def items(self, decode_audio: bool = False) -> Iterator[Frame | object]:
        """Frames, and audio packets (or decoded audio frames if ``decode_audio``), in
        demuxing order; the input is closed when the iteration ends, however it ends."""
        container, shift = self._container, -_start_seconds(self._container)
        self._end = Fraction(0)  # end of the last frame yielded, in seconds
        self._audio_last: Fraction | None = None  # time of the last audio yielded
        failures = 0
        try:
            while True:
                try:
                    if container is None:
                        container = self._open()
                        shift = self._end - _start_seconds(container)
                    for item in self._decode(container, shift, decode_audio):
                        failures = 0
                        yield item
                    return
                except (av.FFmpegError, OSError) as err:
                    if container is not None:
                        container.close()
                        container = None
                    if failures == self.reconnect:
                        raise OSError(f"reading {self.source!r} failed: {err}"
                                      + (f" (after {failures} reconnection attempts)"
                                         if failures else "")) from err
                    failures += 1
                    delay = min(self.backoff * 2 ** (failures - 1), MAX_BACKOFF)
                    log.warning("%s dropped (%s); reconnecting in %.1f s (attempt %d of %d)",
                                self.source, err, delay, failures, self.reconnect)
                    time.sleep(delay)
        finally:
            if container is not None:
                container.close()

    def _decode(self, container, shift: Fraction, decode_audio: bool) -> Iterator[Frame | object]:
        """One connection's items; on a drop, the frames still in the decoder come first."""
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = container.streams.audio[0] if self.info.audio and container.streams.audio else None
        self._step = round(1 / (self.info.rate * video.time_base)) or 1  # one frame, for no pts
        self._last = None
        try:
            for packet in container.demux(*[s for s in (video, audio) if s is not None]):
                if packet.stream is video:
                    yield from self._frames(_decode_packet(packet), shift, video.time_base)
                elif packet.size == 0:  # the empty packet at the end only flushes a decoder
                    continue
                else:
                    yield from self._audio(packet, shift, decode_audio)
        except (av.FFmpegError, OSError):
            yield from self._frames(video.codec_context.decode(None), shift, video.time_base)
            raise

    def _audio(self, packet, shift: Fraction, decode_audio: bool) -> Iterator[object]:
        """An audio packet (or its decoded frames) on the output timeline. After a
        reconnection, audio that would start before the audio already yielded is dropped:
        the video continues seamlessly and the sound stays in sync with it."""
        offset = round(shift / packet.time_base)
        items = _decode_packet(packet) if decode_audio else [packet]
        for item in items:
            item.time_base = packet.time_base
            if item.pts is not None:
                item.pts += offset
            if not decode_audio and item.dts is not None:
                item.dts += offset
            stamp = item.pts if decode_audio or item.dts is None else item.dts
            if stamp is not None:
                if self._audio_last is not None and stamp * item.time_base <= self._audio_last:
                    continue
                self._audio_last = stamp * item.time_base
            yield item

    def _frames(self, frames: list, shift: Fraction, time_base: Fraction) -> Iterator[Frame]:
        """Decoded video frames on the output timeline (``time_base``: the stream's),
        timestamps strictly increasing."""
        for frame in frames:
            if frame.pts is None:
                pts = (self._last or 0) + self._step
            else:
                pts = frame.pts + round(shift / time_base)
            if self._last is not None and pts <= self._last:  # repeated or missing timestamps
                pts = self._last + 1
            self._last = pts
            self._end = max(self._end, (pts + (frame.duration or self._step)) * time_base)
            yield Frame(frame.to_ndarray(format="bgr24"), pts, time_base)


def _decode_packet(packet) -> list:
    """A packet's frames; a corrupt packet is skipped with a warning, as ffmpeg does."""
    try:
        return packet.decode()
    except av.InvalidDataError as err:
        log.warning("skipped an undecodable packet at pts %s: %s", packet.pts, err)
        return []


class CameraSource:
    """A camera index read with OpenCV; timestamps are capture times in milliseconds."""

    def __init__(self, index: int) -> None:
        self.capture = cv2.VideoCapture(index)
        if not self.capture.isOpened():
            raise OSError(f"cannot open video source {index!r} (camera index)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        rate = Fraction(fps).limit_denominator(1001) if math.isfinite(fps) and fps > 0 else None
        self.info = SourceInfo(rate=rate or DEFAULT_RATE, time_base=Fraction(1, 1000),
                               frames=None, audio=None)

    def close(self) -> None:
        """Release the camera (for a run that ends before :meth:`items` is used)."""
        self.capture.release()

    def items(self, decode_audio: bool = False) -> Iterator[Frame]:
        """Frames until the camera stops delivering; the camera is released at the end."""
        start, last = time.monotonic(), -1
        try:
            while (read := self.capture.read())[0]:
                last = max(round((time.monotonic() - start) * 1000), last + 1)
                yield Frame(read[1], last, self.info.time_base)
        finally:
            self.capture.release()


class Writer:
    """Encode frames as H.264 or H.265 yuv420p and mux them with the source's audio.

    The video size is the first frame's (odd sizes padded to even); audio that comes before
    the first frame is held until then, since the header needs the video size.
    The container follows the file name (``.mp4``, ``.mkv``, ``.mov``, ...); mp4 and mov are
    written with the index in front (``+faststart``), so browsers start playing at once, and
    H.265 gets the ``hvc1`` tag Apple players need. :attr:`copies_audio` says whether the
    audio is copied (the source yields packets) or transcoded to AAC (it yields frames).
    :meth:`close` flushes the encoders and finalises the file.
    """

    def __init__(self, path: str | Path, info: SourceInfo, codec: str = "h264",
                 crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET) -> None:
        require_av()
        if codec not in ENCODERS:
            raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(ENCODERS)}")
        path = Path(path)
        mp4 = path.suffix.lower() in (".mp4", ".m4v", ".mov")
        self.container = av.open(str(path), "w",
                                 container_options={"movflags": "+faststart"} if mp4 else {})
        try:
            options = {"crf": str(crf), "preset": preset}
            if codec == "hevc":
                options["x265-params"] = "log-level=error"
            self.video = self.container.add_stream(ENCODERS[codec], rate=info.rate,
                                                   options=options)
            self.video.pix_fmt = "yuv420p"
            self.video.codec_context.time_base = info.time_base
            self.video.time_base = info.time_base
            if codec == "hevc" and mp4:
                self.video.codec_tag = "hvc1"
            self.audio = None
            self.copies_audio = False
            if info.audio is not None:
                self.copies_audio = info.audio.codec_context.name in self.container.supported_codecs
                if self.copies_audio:
                    self.audio = self.container.add_stream_from_template(info.audio)
                else:
                    log.info("audio: %s does not fit %s; transcoding it to AAC",
                             info.audio.codec_context.name, path.suffix or "the container")
                    self.audio = self.container.add_stream("aac", rate=info.audio.rate)
                    layout = info.audio.codec_context.layout
                    if layout.name.endswith(" channels"):  # no channel order (PCM in AVI)
                        layout = {1: "mono", 2: "stereo"}.get(layout.nb_channels, layout)
                    self.audio.codec_context.layout = layout
        except BaseException:
            self.container.close()
            raise
        self.frames = 0
        self._held: list = []  # audio before the first frame

    def write(self, item: Frame | object) -> None:
        """Write a :class:`Frame`, a copied audio packet or a decoded audio frame."""
        if not isinstance(item, Frame):
            if self.frames:
                self._write_audio(item)
            else:
                self._held.append(item)
            return
        image = pad_even(item.image)
        if self.frames == 0:
            self.video.height, self.video.width = image.shape[:2]
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = item.pts, item.time_base
        self.container.mux(self.video.encode(frame))
        self.frames += 1
        for held in self._held:
            self._write_audio(held)
        self._held.clear()

    def _write_audio(self, item) -> None:
        if isinstance(item, av.Packet):
            item.stream = self.audio
            self.container.mux(item)
        else:
            self.container.mux(self.audio.encode(item))

    def close(self) -> None:
        """Flush the encoders and finalise the file (playable however the run ended)."""
        try:
            if self.frames:
                self.container.mux(self.video.encode(None))
                if self.audio is not None and not self.copies_audio:
                    self.container.mux(self.audio.encode(None))
        finally:
            self.container.close()


def pad_even(image: np.ndarray) -> np.ndarray:
    """Pad an odd width or height by repeating the last column or row (yuv420p needs even).

    Example:
        >>> pad_even(np.zeros((5, 6, 3), np.uint8)).shape
        (6, 6, 3)
    """
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
