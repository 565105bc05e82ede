"""The video pipeline: ``clean_video`` and ``python -m pipelines.video``.

Clips are made here with PyAV: 64x48 (65x49 for odd sizes), 10 frames, MPEG-4 Part 2 video
(what the old OpenCV pipeline wrote) with an AAC audio track.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from dcsc_preproc import DCSC, FrameFilter, save_model  # noqa: E402
from pipelines import media  # noqa: E402
from pipelines.media import Frame  # noqa: E402
from pipelines.video import _END, _batches, clean_video, main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FRAMES = 64, 48, 10
NTSC = Fraction(30000, 1001)
AUDIO_RATE = 16000


def small_model() -> DCSC:
    torch.manual_seed(0)
    return DCSC(in_channels=3, dilated_features=4, features=8, iterations=2)


def identity(frame: np.ndarray) -> np.ndarray:
    """The filter of tests about the stream path rather than de-blocking (fast on 2 cores)."""
    return frame


def pattern(t: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([(xx * 4 + t * 9) % 256, (yy * 5) % 256, (xx + yy) % 256],
                    axis=-1).astype(np.uint8)


def make_clip(path: Path, width: int = WIDTH, height: int = HEIGHT, rate: Fraction = NTSC,
              pts: list[int] | None = None, time_base: Fraction | None = None,
              audio: str | None = "aac", frames: int = FRAMES) -> Path:
    """Write an MPEG-4 Part 2 clip; ``pts`` in ``time_base`` makes it variable frame rate;
    ``audio`` is the codec of a mono 440 Hz tone as long as the video, or None."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if time_base is not None:
            video.codec_context.time_base = video.time_base = time_base
        sound = container.add_stream(audio, rate=AUDIO_RATE) if audio else None
        if sound is not None:
            sound.codec_context.layout = "mono"
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(t, width, height), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[t], time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            seconds = frames / rate if pts is None else (pts[-1] + pts[1]) * time_base
            tone = np.sin(2 * np.pi * 440 * np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE)
            for start in range(0, len(tone), 1024):
                chunk = (tone[start:start + 1024] * 0.3 * 32767).astype(np.int16)[None]
                frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
                frame.sample_rate, frame.pts = AUDIO_RATE, start
                frame.time_base = Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


def read(path: Path) -> dict:
    """What a player sees: codecs, size, rate, frame times and pixels, audio packets."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        info = {"codec": video.codec_context.name, "pix_fmt": video.codec_context.pix_fmt,
                "size": (video.codec_context.width, video.codec_context.height),
                "rate": video.average_rate, "tag": video.codec_tag}
        frames = list(container.decode(video))
        info["times"] = [frame.pts * frame.time_base for frame in frames]
        info["images"] = [frame.to_ndarray(format="bgr24") for frame in frames]
    with av.open(str(path)) as container:
        audio = container.streams.audio
        info["audio"] = audio[0].codec_context.name if audio else None
        info["audio_packets"] = ([bytes(p) for p in container.demux(audio[0]) if p.size]
                                 if audio else [])
    return info


class Dropping:
    """An input container that fails after ``packets`` video packets, like a stalled stream
    (PyAV raises ExitError when its read timeout fires); the rest passes to the real one."""

    def __init__(self, container, packets: int) -> None:
        self.container, self.packets = container, packets

    def __getattr__(self, name: str):
        return getattr(self.container, name)

    def demux(self, *streams):
        seen = 0
        for packet in self.container.demux(*streams):
            if packet.stream.type == "video":
                seen += 1
                if seen > self.packets:
                    raise av.error.ExitError(-1414092869, "Immediate exit requested")
            yield packet


def flaky_opener(clip: Path, drops: list[int]):
    """An ``av.open`` stand-in for a URL: connection k drops after ``drops[k]`` video packets
    (all later connections play the whole clip); records each call's timeout."""
    calls: list[float] = []

    def opener(url: str, timeout: float):
        calls.append(timeout)
        container = av.open(str(clip))
        k = len(calls) - 1
        return Dropping(container, drops[k]) if k < len(drops) else container

    opener.calls = calls
    return opener


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "input.mp4")


@pytest.fixture(scope="module")
def frame_filter() -> FrameFilter:
    return FrameFilter(small_model(), gate=None)  # always de-block: the tests compare pixels


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    return save_model(small_model(), tmp_path / "small.safetensors")


def test_h264_with_audio_copied_and_timestamps_kept(clip, tmp_path, frame_filter):
    output = tmp_path / "clean.mp4"
    assert clean_video(clip, output, frame_filter, progress=False) == FRAMES
    source, result = read(clip), read(output)
    assert (result["codec"], result["pix_fmt"], result["size"]) == ("h264", "yuv420p",
                                                                    (WIDTH, HEIGHT))
    assert result["rate"] == NTSC  # exact, not 29.97
    assert result["times"] == source["times"] and len(result["times"]) == FRAMES
    assert result["audio"] == "aac"
    assert result["audio_packets"] == source["audio_packets"]  # copied, not re-encoded
    # de-blocked, not copied: the output follows the filter, not the input
    out, before = result["images"][3].astype(int), source["images"][3].astype(int)
    after = frame_filter(source["images"][3]).astype(int)
    assert np.abs(out - after).mean() < np.abs(out - before).mean() / 2


def test_variable_frame_rate_kept(tmp_path):
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 700, 740]  # milliseconds, irregular
    clip = make_clip(tmp_path / "vfr.mkv", pts=pts, time_base=Fraction(1, 1000), audio=None,
                     rate=Fraction(25))
    output = tmp_path / "vfr.mp4"
    clean_video(clip, output, identity, progress=False)
    result = read(output)
    assert result["times"] == [Fraction(p, 1000) for p in pts]
    assert result["audio"] is None


def test_odd_size_padded_not_cropped(tmp_path):
    clip = make_clip(tmp_path / "odd.mp4", width=65, height=49, audio=None)
    output = tmp_path / "odd.mp4.mp4"
    clean_video(clip, output, identity, progress=False)
    result, source = read(output), read(clip)
    assert result["size"] == (66, 50)
    picture = result["images"][5][:49, :65].astype(int)
    assert np.abs(picture - source["images"][5].astype(int)).mean() < 5  # 4:2:0 again
    # the pad repeats the last column and row
    assert np.abs(result["images"][5][:49, 65].astype(int) - picture[:, 64]).mean() < 6
    pair = tmp_path / "odd_pair.mp4"
    clean_video(clip, pair, identity, side_by_side=True, max_frames=2, progress=False)
    assert read(pair)["size"] == (130, 50)


def test_audio_transcoded_to_aac_when_the_container_cannot_hold_it(tmp_path, caplog):
    clip = make_clip(tmp_path / "mulaw.avi", audio="pcm_mulaw")  # as old cameras write
    output = tmp_path / "mulaw.mp4"
    with caplog.at_level(logging.INFO, logger="pipelines.media"):
        clean_video(clip, output, identity, progress=False)
    assert "transcoding it to AAC" in caplog.text
    result = read(output)
    assert result["audio"] == "aac" and len(result["times"]) == FRAMES
    with av.open(str(output)) as container:  # the whole tone is there
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert abs(samples / AUDIO_RATE - float(FRAMES / NTSC)) < 0.1


def test_hevc(clip, tmp_path):
    output = tmp_path / "clean_hevc.mp4"
    clean_video(clip, output, identity, codec="hevc", crf=28, preset="ultrafast",
                progress=False)
    result = read(output)
    assert (result["codec"], result["tag"], len(result["times"])) == ("hevc", "hvc1", FRAMES)
    with pytest.raises(ValueError, match="unknown codec"):
        clean_video(clip, tmp_path / "x.mp4", identity, codec="vp9")


def test_dropped_stream_reconnects_and_appends(clip, tmp_path, caplog):
    opener = flaky_opener(clip, drops=[4, 0])  # drops after 4 frames, then fails once at once
    output = tmp_path / "live.mp4"
    with caplog.at_level(logging.WARNING, logger="pipelines.media"):
        written = clean_video("rtsp://camera.test/live", output, identity, reconnect=2,
                              backoff=0.0, timeout=3.0, opener=opener, progress=False)
    assert written == 4 + FRAMES and len(opener.calls) == 3 and set(opener.calls) == {3.0}
    assert caplog.text.count("reconnecting") == 2
    result = read(output)
    step = 1 / NTSC
    assert result["times"] == [i * step for i in range(4 + FRAMES)]  # continues, no gap
    assert result["audio"] == "aac"
    assert len(result["audio_packets"]) > len(read(clip)["audio_packets"])  # both connections


def test_http_url(clip, tmp_path):
    """A real URL through PyAV (MPEG-4 Part 2 over HTTP states its size only in the picture)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(clip.parent))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/{clip.name}"
        written = clean_video(url, tmp_path / "http.mp4", identity, timeout=5.0, progress=False)
        server.shutdown()
    result = read(tmp_path / "http.mp4")
    assert written == FRAMES and result["size"] == (WIDTH, HEIGHT)
    assert result["times"] == read(clip)["times"] and result["audio"] == "aac"


def test_stream_that_stays_down_gives_up_with_the_output_finalised(clip, tmp_path):
    opener = flaky_opener(clip, drops=[3, 0, 0, 0])
    output = tmp_path / "down.mp4"
    with pytest.raises(OSError, match="after 2 reconnection attempts"):
        clean_video("http://camera.test/live.ts", output, identity, reconnect=2,
                    backoff=0.0, opener=opener, progress=False)
    assert len(opener.calls) == 3 and len(read(output)["times"]) == 3  # playable


def test_local_file_is_not_reopened(tmp_path, clip):
    opener = flaky_opener(clip, drops=[3])
    with pytest.raises(OSError, match="reading"):
        clean_video(clip, tmp_path / "once.mp4", identity, reconnect=5,
                    backoff=0.0, opener=opener, progress=False)
    assert len(opener.calls) == 1


def test_batches_keep_order_and_do_not_wait_for_a_full_batch():
    frames = [Frame(np.zeros((8, 8, 3), np.uint8), t, Fraction(1, 10)) for t in range(7)]
    q: queue.Queue = queue.Queue()
    for item in [frames[0], "audio0", *frames[1:5], "audio1", *frames[5:], _END]:
        q.put(item)
    batches = list(_batches(q, 3))
    assert [b for batch in batches for b in batch] == [
        frames[0], "audio0", *frames[1:5], "audio1", *frames[5:]]
    assert [sum(isinstance(b, Frame) for b in batch) for batch in batches] == [3, 3, 1]
    q.put(frames[0])  # one frame queued: a batch of 4 is cut when the queue runs dry
    q.put(_END)
    assert list(_batches(q, 4)) == [[frames[0]]]


def test_batch_through_the_engine(clip, tmp_path):
    sizes: list[int] = []

    class Recording(FrameFilter):
        def filter_batch(self, frames):
            sizes.append(len(frames))
            return super().filter_batch(frames)

    assert clean_video(clip, tmp_path / "batched.mp4", Recording(small_model(), gate=None), batch=4,
                       progress=False) == FRAMES
    assert sum(sizes) == FRAMES and max(sizes) <= 4


def test_ctrl_c_finalises_the_output(clip, tmp_path):
    def interrupted_on_third(frame: np.ndarray, calls: list[int] = []) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return frame

    output = tmp_path / "partial.mp4"
    with pytest.raises(KeyboardInterrupt):
        clean_video(clip, output, interrupted_on_third, progress=False)
    assert len(read(output)["times"]) == 2  # the file was finalised


def test_detect_draws_boxes_and_writes_a_json_line_per_frame(tmp_path, detector):
    if not detector.exists():
        pytest.skip(f"detector weights not found: {detector}")
    from PIL import Image
    from pipelines.yolo import load_detector
    from dcsc_preproc.demo import sample_image

    bus = np.asarray(Image.open(sample_image()).convert("RGB").resize((120, 160)))
    clip = tmp_path / "bus.mp4"
    with av.open(str(clip), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 120, 160, "yuv420p"
        for t in range(4):
            frame = av.VideoFrame.from_ndarray(np.roll(bus, t, axis=1), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    model = load_detector(detector)
    plain, drawn, jsonl = tmp_path / "plain.mp4", tmp_path / "drawn.mp4", tmp_path / "d.jsonl"
    clean_video(clip, plain, identity, side_by_side=True, progress=False)
    clean_video(clip, drawn, identity, side_by_side=True, detector=model,
                detections=jsonl, progress=False)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    times = read(drawn)["times"]
    assert [r["frame"] for r in records] == [0, 1, 2, 3]
    assert [r["time"] for r in records] == [float(t) for t in times]
    for record in records:
        for found in (record, record["raw"]):
            assert len(found["boxes"]) == len(found["classes"]) == len(found["scores"])
            assert all(s >= 0.25 for s in found["scores"])
    assert any("bus" in r["names"] or "person" in r["names"] for r in records)
    changed = np.abs(read(drawn)["images"][0].astype(int) - read(plain)["images"][0]) > 40
    assert changed[:, :120].any() and changed[:, 120:].any()  # boxes on raw and cleaned


def test_unopenable_source(tmp_path, weights, capsys):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(OSError, match="missing.mp4"):
        clean_video(missing, tmp_path / "out.mp4", identity)
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", str(missing), "--output", str(tmp_path / "out.mp4"),
              "--model", str(weights)])
    assert exit_info.value.code == 2
    assert "cannot open video source" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_without_pyav_names_the_pip_command(clip, tmp_path, weights, monkeypatch, capsys):
    monkeypatch.setattr(media, "av", None)
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", str(clip), "--output", str(tmp_path / "out.mp4"),
              "--model", str(weights)])
    assert exit_info.value.code == 2 and "pip install" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_bad_gate_is_a_usage_error(clip, tmp_path, weights, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", str(clip), "--output", str(tmp_path / "out.mp4"),
              "--model", str(weights), "--gate", "200"])
    assert exit_info.value.code == 2 and "gate threshold" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_refuses_to_overwrite(clip, tmp_path, weights, capsys):
    output = tmp_path / "exists.mp4"
    output.write_bytes(b"keep me")
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", str(clip), "--output", str(output), "--model", str(weights)])
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"keep me"
    detections = tmp_path / "clean.jsonl"
    detections.write_text("keep me")
    with pytest.raises(SystemExit):
        main(["--source", str(clip), "--output", str(tmp_path / "clean.mp4"),
              "--model", str(weights), "--detect", "detector.pt"])
    assert detections.read_text() == "keep me" and not (tmp_path / "clean.mp4").exists()


def test_cli(clip, tmp_path, weights):
    output = tmp_path / "cli.mp4"
    output.write_bytes(b"replace me")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.video", "--source", str(clip), "--output", str(output),
         "--model", f"{weights}@1", "--side-by-side", "--max-frames", "4", "--tile", "32",
         "--batch", "2", "--crf", "23", "--gate", "none", "--overwrite"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "deblock" in result.stderr and "frame/s" in result.stderr  # the progress bar
    assert "gate None: 4 de-blocked, 0 passed unchanged" in result.stderr
    video = read(output)
    assert len(video["times"]) == 4 and video["size"] == (2 * WIDTH, HEIGHT)
    assert video["codec"] == "h264" and video["audio"] == "aac"


def test_camera_index_reads_through_opencv(tmp_path, monkeypatch):
    class FakeCamera:  # cv2.VideoCapture of a camera delivering 3 frames, then stopping
        def __init__(self, index: int) -> None:
            self.index, self.left, self.released = index, 3, False

        def isOpened(self) -> bool:
            return self.index == 0

        def get(self, prop: int) -> float:
            return {media.cv2.CAP_PROP_FPS: 30.0}[prop]

        def read(self):
            self.left -= 1
            return (self.left >= 0, pattern(self.left) if self.left >= 0 else None)

        def release(self) -> None:
            self.released = True

    monkeypatch.setattr(media.cv2, "VideoCapture", FakeCamera)
    with pytest.raises(OSError, match="camera index"):
        clean_video(1, tmp_path / "none.mp4", identity)
    assert clean_video(0, tmp_path / "camera.mp4", identity, progress=False) == 3
    result = read(tmp_path / "camera.mp4")
    assert result["size"] == (WIDTH, HEIGHT) and len(result["times"]) == 3
    assert result["times"] == sorted(set(result["times"]))  # capture times, increasing


def test_video_speed_benchmark_runs(tmp_path, weights):
    from eval.video_speed import main as video_speed

    out = tmp_path / "speed.json"
    video_speed(["--sizes", "64x48", "--frames", "3", "--rounds", "1", "--model", str(weights),
                 "--json", str(out)])
    row = json.loads(out.read_text())["rows"]["64x48"]
    assert row["frames"] == 3
    assert all(row[k] > 0 for k in ("decode_encode_fps", "deblocker_fps", "pipeline_fps"))
