"""Parity of the inference backends: each one against torch fp32 on JPEG images.

For every backend of the default model (and every OpenVINO export folder given with
``--exports``, INT8 ones included), over the first ``--limit`` images of a folder
JPEG-compressed at ``--quality``: the largest, mean and 99.9th-percentile absolute difference
of the restored image from torch fp32 (float output in [0, 1], reported in grey levels,
x255), and the share of uint8 output values that differ. The bounds the tests assert
(tests/test_backends.py) and docs/RESULTS.md state come from this.

    python -m eval.parity --exports outputs/dcsc-fast_int8_openvino_model --limit 20 \\
        --json results/parity.json
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dcsc_preproc import (DEFAULT_MODEL, Engine, array_to_tensor, jpeg_roundtrip,
                          list_images, model_name, read_image)
from dcsc_preproc.backends import is_installed

SHARED = Path(os.environ.get("DCSC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IMAGES = SHARED / "data" / "coco_dev" / "images"
#: Name -> Engine keyword arguments of the backends compared with torch fp32.
CANDIDATES = {
    "torch (default: bf16 where native)": {},
    "openvino fp32": {"backend": "openvino", "precision": "fp32"},
    "openvino (default precision)": {"backend": "openvino"},
    "onnxruntime": {"backend": "onnxruntime"},
}
_RUNTIMES = {"openvino fp32": "openvino", "openvino (default precision)": "openvino",
             "onnxruntime": "onnxruntime"}


def parity(model: str, exports: Sequence[Path], images: Sequence[np.ndarray]) -> list[dict]:
    """One record per backend: ``max``, ``mean``, ``p999`` (grey levels) and ``uint8_diff``
    (share of differing output bytes) against torch fp32 over ``images`` (uint8 RGB)."""
    reference = Engine(model, device="cpu", precision="fp32", channels_last=False)
    engines = {name: Engine(model, device="cpu", **kwargs) for name, kwargs in CANDIDATES.items()
               if name not in _RUNTIMES or is_installed(_RUNTIMES[name])}
    engines.update({f"{model_name(folder)} (export)": Engine(folder) for folder in exports})
    records = []
    for name, engine in engines.items():
        errors, changed, total = [], 0, 0
        for image in images:
            x = array_to_tensor(image)
            ref = reference(x)
            errors.append(((engine(x) - ref).abs() * 255).flatten())
            a, b = engine.restore_array(image), reference.restore_array(image)
            changed, total = changed + int((a != b).sum()), total + a.size
        err = torch.cat(errors)
        records.append({"backend": name, "max": float(err.max()), "mean": float(err.mean()),
                        "p999": float(err.kthvalue(int(0.999 * err.numel())).values),
                        "uint8_diff": changed / total, "images": len(images)})
    return records


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eval.parity",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--exports", nargs="*", type=Path, default=[],
                        help="OpenVINO export folders (dcsc-preproc export --openvino)")
    parser.add_argument("--images", type=Path, default=IMAGES)
    parser.add_argument("--limit", type=int, default=20, help="first N images by name")
    parser.add_argument("--quality", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    images = []
    for path in list_images(args.images)[:args.limit]:
        image = read_image(path)
        images.append(jpeg_roundtrip(np.stack([image] * 3, -1) if image.ndim == 2 else image,
                                     args.quality))
    records = parity(args.model, args.exports, images)
    print(f"Against torch fp32, {model_name(args.model)}, {len(images)} images of "
          f"{args.images.name} at JPEG q{args.quality} (grey levels of 255):\n")
    print("| backend | max | mean | 99.9th pct | uint8 outputs differing |\n|---|---|---|---|---|")
    for r in records:
        print(f"| {r['backend']} | {r['max']:.2f} | {r['mean']:.3f} | {r['p999']:.2f} | "
              f"{100 * r['uint8_diff']:.2f}% |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
