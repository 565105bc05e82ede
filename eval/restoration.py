"""Restoration benchmark: PSNR, SSIM and PSNR-B of DCSC weights on Classic5, LIVE1, BSDS500 val.

Follows the DCSC authors' corrected (errata) protocol, so the numbers compare with their
tables: ground truth is the MATLAB ``rgb2ycbcr`` Y rounded to uint8 (gray images as they
are); the input is that Y saved as a grayscale JPEG by Pillow and decoded; the model output
is floored to uint8 as in the authors' test code; metrics on Y, 0-255, no border crop,
averaged over the images. RGB models get the colour image JPEG-compressed in colour (4:2:0)
and are scored on the Y of their output.

A weights argument may end in ``@R`` to run R LISTA iterations (``dcsc-y@10``); its rows are
named by :func:`~dcsc_preproc.zoo.model_name` (``dcsc-y@10``, a file by its stem plus ``@R``).

    python -m eval.restoration --weights dcsc-y dcsc-y@10 --sets classic5 live1 \\
        --qualities 10 20 --errata
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dcsc_preproc import Engine, jpeg_roundtrip, model_name, read_image
from dcsc_preproc.data import data_root, list_images, to_uint8_y
from dcsc_preproc.engine import PRECISIONS
from dcsc_preproc.jpeg import IDCTS
from dcsc_preproc.metrics import evaluate

#: Benchmark set -> (folder under the data root, name in the tables).
SETS = {
    "classic5": ("classic5", "Classic5"),
    "live1": ("live1", "LIVE1"),
    "bsds500-val": ("bsds500/val", "BSDS500 val"),
}
QUALITIES = (10, 20, 30, 40)
METRICS = ("psnr", "ssim", "ssim_gaussian", "psnrb", "detail")
#: Rows for the inputs themselves: gray JPEG of Y (all models but RGB ones), colour JPEG (RGB).
JPEG, JPEG_RGB = "jpeg", "jpeg-rgb"

#: DCSC Errata (2020-02-14), PSNR / SSIM / PSNR-B: the ICCV'19 model re-evaluated with the
#: ARCNN code, and the retrained 2020 model (see shared/peers/PROVENANCE.md).
ERRATA: dict[tuple[str, int], dict[str, tuple[float, float, float]]] = {
    ("classic5", 10): {"ICCV'19": (29.2488, 0.8200, 28.8714), "2020": (29.6184, 0.8270, 29.2994)},
    ("classic5", 20): {"ICCV'19": (31.4053, 0.8763, 30.9870), "2020": (31.8113, 0.8804, 31.3441)},
    ("classic5", 30): {"ICCV'19": (32.6071, 0.8999, 32.0826), "2020": (33.0639, 0.9030, 32.4918)},
    ("classic5", 40): {"2020": (33.8689, 0.9153, 33.2972)},
    ("live1", 10): {"ICCV'19": (29.1667, 0.8287, 28.7310), "2020": (29.3405, 0.8317, 29.0072)},
    ("live1", 20): {"ICCV'19": (31.4548, 0.8934, 30.8743), "2020": (31.6979, 0.8960, 31.1806)},
    ("live1", 30): {"ICCV'19": (32.7451, 0.9198, 32.0232), "2020": (33.0718, 0.9218, 32.4252)},
    ("live1", 40): {"2020": (34.0233, 0.9354, 33.3584)},
    ("bsds500-val", 10): {"ICCV'19": (28.8058, 0.8026, 28.3022),
                          "2020": (28.9499, 0.8050, 28.5500)},
    ("bsds500-val", 20): {"ICCV'19": (30.9336, 0.8739, 30.1760),
                          "2020": (31.1287, 0.8758, 30.4148)},
    ("bsds500-val", 30): {"ICCV'19": (32.1640, 0.9044, 31.2077),
                          "2020": (32.4226, 0.9057, 31.5230)},
    ("bsds500-val", 40): {"2020": (33.3044, 0.9216, 32.3101)},
}
#: Weights file stem -> the errata column those weights should reproduce.
ERRATA_STEMS = {"dcsc_iccv2019_original": "ICCV'19", "dcsc_updated_2020": "2020"}


def benchmark(weights: Sequence[str | Path], sets: Sequence[str] = tuple(SETS),
              qualities: Sequence[int] = QUALITIES, data: str | Path | None = None,
              limit: int | None = None, precision: str = "fp32",
              device: str | None = None, idct: str = "islow") -> list[dict]:
    """Mean metrics per (set, quality, method), one record each, JPEG input rows first.

    Each JPEG input is made once per image and quality and fed to every model. ``limit``
    keeps the first N images of each set (sorted by name); ``idct`` is the JPEG decoder's
    (``"ifast"`` reproduces the errata's TensorFlow decoding).
    """
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise ValueError(f"unknown sets {unknown}; expected some of {list(SETS)}")
    names = [model_name(w) for w in weights]
    if len(set(names)) != len(names) or {JPEG, JPEG_RGB} & set(names):
        raise ValueError(f"method names must be unique and not {JPEG!r}/{JPEG_RGB!r}: {names}")
    engines = {n: Engine(w, device=device, precision=precision) for n, w in zip(names, weights)}
    rgb = {n for n, e in engines.items() if e.model.config.in_channels == 3}
    methods = [JPEG, JPEG_RGB, *names] if rgb else [JPEG, *names]
    root = data_root(data)
    images = {s: [(img, to_uint8_y(img, "matlab")) for img in
                  map(read_image, list_images(root / SETS[s][0])[:limit])] for s in sets}

    records = []
    total = sum(map(len, images.values())) * len(qualities)
    with tqdm(total=total, desc="restoration", unit="img") as bar:
        for s in sets:
            for q in qualities:
                bar.set_postfix_str(f"{s} q{q}")
                scores: dict[str, list[dict]] = {m: [] for m in methods}
                for img, ref in images[s]:
                    y_in = jpeg_roundtrip(ref, q, idct)
                    rgb_in = y_in if img.ndim == 2 else jpeg_roundtrip(img, q, idct)
                    scores[JPEG].append(evaluate(y_in, ref))
                    if rgb:
                        scores[JPEG_RGB].append(evaluate(to_uint8_y(rgb_in, "matlab"), ref))
                    for n, engine in engines.items():
                        out = engine.restore_array(rgb_in if n in rgb else y_in, truncate=True)
                        scores[n].append(evaluate(to_uint8_y(out, "matlab"), ref))
                    bar.update()
                for m in methods:
                    record = {"set": s, "quality": q, "method": m, "idct": idct,
                              "input": "rgb" if m in rgb or m == JPEG_RGB else "y"}
                    record.update({k: float(np.mean([v[k] for v in scores[m]])) for k in METRICS})
                    record["images"] = len(scores[m])
                    records.append(record)
    return records


def _difference(record: dict) -> str:
    """``measured - errata`` for PSNR / SSIM / PSNR-B, for weights the errata covers."""
    column = ERRATA_STEMS.get(record["method"])
    ref = ERRATA.get((record["set"], record["quality"]), {}).get(column)
    if ref is None:
        return ""
    measured = (record["psnr"], record["ssim"], record["psnrb"])
    return " / ".join(f"{a - b:+.4f}" for a, b in zip(measured, ref))


_IDCT_TEXT = {
    "islow": "libjpeg's accurate ISLOW IDCT (Pillow); the authors decoded with the fast IFAST "
             "IDCT, which lowers their numbers by 0.004 dB at q10 to 0.08 dB at q30 "
             "(`--idct ifast` reproduces the errata exactly)",
    "ifast": "libjpeg-turbo's fast IFAST IDCT (simplejpeg), as the authors' TensorFlow "
             "`decode_jpeg(dct_method=\"INTEGER_FAST\")`",
}


def markdown(records: list[dict], errata: bool = False) -> str:
    """One table per set, rows (quality, method); ``errata`` adds the authors' rows and a
    difference column, then the metric conventions."""
    header = "| q | method | PSNR | SSIM | PSNR-B | SSIM (Gaussian) |"
    rule = "|---:|---|---:|---:|---:|---:|"
    detail = all("detail" in r for r in records)  # records written before it existed lack it
    if detail:
        header += " detail |"
        rule += "---:|"
    if errata:
        header += " Δ errata (PSNR / SSIM / PSNR-B) |"
        rule += "---|"
    lines = []
    for s in dict.fromkeys(r["set"] for r in records):
        rows = [r for r in records if r["set"] == s]
        lines += [f"### {SETS[s][1]} (images: {rows[0]['images']})", "", header, rule]
        for q in dict.fromkeys(r["quality"] for r in rows):
            for r in (r for r in rows if r["quality"] == q):
                cells = [str(q), f"`{r['method']}`", f"{r['psnr']:.4f}", f"{r['ssim']:.4f}",
                         f"{r['psnrb']:.4f}", f"{r['ssim_gaussian']:.4f}"]
                if detail:
                    cells.append(f"{r['detail']:.3f}")
                if errata:
                    cells.append(_difference(r))
                lines.append("| " + " | ".join(cells) + " |")
            if errata:
                for column, values in ERRATA.get((s, q), {}).items():
                    cells = [str(q), f"errata {column}", *(f"{v:.4f}" for v in values),
                             *[""] * (2 + detail)]
                    lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(
        "Metrics as in the DCSC errata (ARCNN evaluation code): Y channel of MATLAB `rgb2ycbcr` "
        "(16-235) rounded to uint8, gray images as they are; 0-255 scale, no border crop; "
        "PSNR = 20 log10(255 / RMSE); SSIM with a uniform 8x8 window and `valid` filtering "
        "(SSIM (Gaussian): 11x11 window, sigma 1.5, `valid`); PSNR-B with BEF of the restored "
        "image and real-valued block counts (W/8, H/8). Input: the Y saved as a grayscale JPEG "
        f"by Pillow at quality q and decoded with {_IDCT_TEXT[records[0].get('idct', 'islow')]}. "
        "Model output clipped to [0, 1] and truncated (floored) to uint8, as in the authors' "
        "test code. Means over the images."
        + (" Detail: mean absolute neighbour difference of the result over the original's "
           "(`metrics.gradient_ratio`; below 1 = smoother than the original)." if detail else ""))
    rgb = sorted({r["method"] for r in records if r["input"] == "rgb"} - {JPEG_RGB})
    if rgb:
        lines += ["", f"RGB models ({', '.join(f'`{m}`' for m in rgb)}) get the colour image "
                  "JPEG-compressed in colour by Pillow (4:2:0) and are scored on the MATLAB Y of "
                  f"their output against the Y of the original; `{JPEG_RGB}` is that colour "
                  "JPEG input scored the same way. Gray images are fed as gray JPEGs."]
    if errata:
        lines += ["", "Errata rows: the DCSC authors' Errata (2020-02-14), TensorFlow decoding. "
                  "Δ errata = this row minus the errata, for weights files "
                  + ", ".join(f"`{stem}` ({col})" for stem, col in ERRATA_STEMS.items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: run :func:`benchmark`, print :func:`markdown`, optionally write JSON."""
    p = argparse.ArgumentParser(prog="python -m eval.restoration",
                                description=__doc__.split("\n")[0])
    p.add_argument("--weights", nargs="+", required=True,
                   help="shipped model names, .safetensors or authors' .npz files, each "
                        "optionally with @R for R LISTA iterations")
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    p.add_argument("--qualities", nargs="+", type=int, default=list(QUALITIES))
    p.add_argument("--data", help="folder holding classic5/, live1/, bsds500/ "
                                  "(default: $DCSC_DATA, else ../shared/data)")
    p.add_argument("--json", type=Path, help="write the records to this JSON file")
    p.add_argument("--limit", type=int, help="first N images of each set (for quick checks)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--idct", choices=IDCTS, default="islow",
                   help="JPEG decoder's inverse DCT (ifast: as the authors' TensorFlow code)")
    p.add_argument("--errata", action="store_true",
                   help="add the DCSC errata values and the difference to them")
    args = p.parse_args(argv)
    records = benchmark(args.weights, args.sets, args.qualities, args.data, args.limit,
                        args.precision, args.device, args.idct)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    print(markdown(records, args.errata), end="")


if __name__ == "__main__":
    main()
