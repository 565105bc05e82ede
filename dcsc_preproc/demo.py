"""The main job on built-in defaults: compress a photo, de-block it, show before and after."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .engine import Engine
from .jpeg import encode_jpeg, decode_image, read_image
from .metrics import psnr, psnrb
from .data import to_uint8_y
from .detector import load_detector


def sample_image() -> Path:
    """Ultralytics' ``assets/bus.jpg``, a photo that ships with a dependency."""
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets" / "bus.jpg"


#: Confidence above which the demo counts a detection.
DETECTION_CONF = 0.25


def run_demo(image: str | Path | None, quality: int, model: str, out: str | Path,
             device: str | None = None, detector: str | Path | None = None) -> dict:
    """Write ``jpeg_qQ.jpg``, ``restored.png`` and ``comparison.png`` to ``out``; return metrics.

    With ``detector`` (Ultralytics weights, a path) the JPEG and the de-blocked image also go
    through the detector: ``detections.png`` shows both with boxes, side by side, and each
    image's metrics get ``detections``, its count above :data:`DETECTION_CONF` confidence.
    The outputs of earlier demo runs in ``out`` are replaced (they are this command's files).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clean = read_image(image or sample_image())
    data = encode_jpeg(clean, quality)
    jpeg = decode_image(data)
    restored = Engine(model, device=device).restore_array(jpeg)
    (out / f"jpeg_q{quality}.jpg").write_bytes(data)
    Image.fromarray(restored).save(out / "restored.png")
    ref = to_uint8_y(clean)
    scores = {name: {"psnr": psnr(to_uint8_y(img), ref), "psnrb": psnrb(to_uint8_y(img), ref)}
              for name, img in (("jpeg", jpeg), ("restored", restored))}
    _comparison(clean, jpeg, restored, scores, quality, out / "comparison.png")
    if detector is not None:
        counts = _detections(detector, jpeg, restored, quality, out / "detections.png", device)
        for name, count in counts.items():
            scores[name]["detections"] = count
    return scores


def _detections(detector: str | Path, jpeg: np.ndarray, restored: np.ndarray, quality: int,
                path: Path, device: str | None) -> dict[str, int]:
    """Detect on the JPEG and the de-blocked image, draw both side by side; return counts."""
    yolo = load_detector(detector)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"jpeg": (f"JPEG q{quality}", jpeg), "restored": ("de-blocked", restored)}
    counts = {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.6))
    for ax, (name, (title, img)) in zip(axes, panels.items()):
        rgb = np.dstack([img] * 3) if img.ndim == 2 else img
        result = yolo.predict(np.ascontiguousarray(rgb[..., ::-1]), conf=DETECTION_CONF,
                              device=device, verbose=False)[0]
        counts[name] = len(result.boxes)
        ax.imshow(result.plot()[..., ::-1])
        ax.set_title(f"{title}: {counts[name]} detections above {DETECTION_CONF} confidence",
                     fontsize=11)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return counts


def _comparison(clean: np.ndarray, jpeg: np.ndarray, restored: np.ndarray, scores: dict,
                quality: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = clean.shape[:2]
    size = min(h, w, 256)
    top, left = (h - size) // 2, (w - size) // 2
    crop = (slice(top, top + size), slice(left, left + size))
    panels = [("original", clean), (f"JPEG q{quality}", jpeg), ("de-blocked", restored)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img[crop], cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        key = {"JPEG": "jpeg", "de-blocked": "restored"}.get(title.split()[0])
        if key:
            title += f"\nY PSNR {scores[key]['psnr']:.2f} dB, PSNR-B {scores[key]['psnrb']:.2f} dB"
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
