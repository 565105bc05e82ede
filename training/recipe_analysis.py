"""Why dcsc-y trails the authors' weights at q10 (issue 16): the measurements that need no training.

Writes one JSON record (``--json``) and a markdown report (stdout) with:

- ``init``: PyTorch's default against TensorFlow's Glorot-uniform for every convolution of
  the paper net (fan-in/out, bound, std), and what each does at R=40 on a batch of real q10
  patches: RMS of U_r and of U_r - U_(r-1) per iteration, zeros, the initial residual, the
  operator norm of S;
- ``loss_scale``: MAE of the JPEG input and gradient norms at init with Y in [16, 235]/255
  (ours and the authors') against Y stretched to [0, 1], and what clipping would change;
- ``sampler``: distinct JPEG encodings, crop positions and patches per image of
  ``data.PatchSampler`` against the paper's one million random patches;
- ``weights``: per-layer norms of dcsc-y and the authors' ICCV'19 weights, the spectral norm
  and radius of S as a convolution (FFT on a periodic grid, checked by power iteration with
  zero padding), and the per-iteration change of U on a Classic5 crop (contraction);
- ``init_drift``: how far each weight of dcsc-y moved from its (rebuilt) initial value;
- ``generalisation``: both models' Y PSNR at q10 on training images (the encodings dcsc-y
  saw) against validation images (unseen);
- ``r_sweep``: both models at R = 10, 20, 40, 60 on Classic5 q10 crops;
- ``history``: training loss and validation PSNR-B of training/dcsc-y per chunk.

Run from the repository root (about 5 minutes on one shared core)::

    OMP_NUM_THREADS=1 python training/recipe_analysis.py --json docs/results/issue16_analysis.json \\
        > docs/results/issue16_analysis.md
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dcsc_preproc import DCSC, list_images, load_model, read_image
from dcsc_preproc.data import ALIGN, PatchSampler, data_root, to_uint8_y
from dcsc_preproc.jpeg import jpeg_roundtrip
from dcsc_preproc.model import init_weights_

RUN = Path(__file__).resolve().parent / "dcsc-y"
AUTHORS = "../shared/peers/dcsc_official/iccv2019_original/dcsc_iccv2019_original.npz"
Y_LOW, Y_HIGH = 16 / 255, 235 / 255


def conv_layers(model: DCSC) -> dict[str, torch.nn.Conv2d]:
    return {"dilated.0 (d=1)": model.dilated[0], "dilated.1 (d=2)": model.dilated[1],
            "dilated.2 (d=4)": model.dilated[2], "G": model.G, "S": model.S, "recon": model.recon}


def init_table() -> list[dict]:
    """Fan-in/out, bound and std of each conv under both schemes (analytic), and the measured
    std of a fresh model under each."""
    rows = []
    fresh = {s: conv_layers(init_weights_(DCSC(), s)) for s in ("torch", "glorot")}
    for name, conv in conv_layers(DCSC()).items():
        k = conv.kernel_size[0] * conv.kernel_size[1]
        fan_in, fan_out = conv.in_channels * k, conv.out_channels * k
        torch_bound, glorot_bound = 1 / math.sqrt(fan_in), math.sqrt(6 / (fan_in + fan_out))
        rows.append({"layer": name, "in": conv.in_channels, "out": conv.out_channels,
                     "fan_in": fan_in, "fan_out": fan_out,
                     "torch_bound": torch_bound, "torch_std": torch_bound / math.sqrt(3),
                     "glorot_bound": glorot_bound, "glorot_std": glorot_bound / math.sqrt(3),
                     "glorot_over_torch": glorot_bound / torch_bound,
                     "measured_torch_std": fresh["torch"][name].weight.std().item(),
                     "measured_glorot_std": fresh["glorot"][name].weight.std().item(),
                     "torch_bias_bound": torch_bound if conv.bias is not None else None})
    return rows


def spectral(weight: torch.Tensor, grid: int = 32) -> dict:
    """Spectral norm and radius of a 3x3 same-size convolution (C -> C) on a periodic
    ``grid`` x ``grid`` image (block-circulant: one C x C matrix per 2-D frequency), and its
    norm with zero padding by 60 power iterations."""
    w = weight.detach().double()
    symbols = torch.fft.fft2(F.pad(w, (0, grid - 3, 0, grid - 3)))  # (O, I, n, n)
    # the kernel's centre is tap (1, 1): a phase per frequency, which changes no singular
    # value or eigenvalue modulus
    mats = symbols.permute(2, 3, 0, 1)
    norm = torch.linalg.matrix_norm(mats, ord=2).max().item()
    radius = torch.linalg.eigvals(mats).abs().max().item()
    x = torch.randn(1, w.shape[1], grid, grid, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for _ in range(60):
        x = F.conv_transpose2d(F.conv2d(x, w, padding=1), w, padding=1)
        estimate = x.norm().item()
        x = x / x.norm()
    return {"norm_periodic": norm, "radius_periodic": radius,
            "norm_zero_pad": math.sqrt(estimate)}


def code_dynamics(model: DCSC, x: torch.Tensor, iterations: int) -> dict:
    """Per iteration: RMS of U_r, RMS of U_r - U_(r-1), share of zeros; RMS of the residual."""
    with torch.no_grad():
        out, codes = model(x, iterations=iterations, return_codes=True)
    rms = [u.square().mean().sqrt().item() for u in codes]
    step = [0.0] + [(b - a).square().mean().sqrt().item() for a, b in zip(codes, codes[1:])]
    return {"rms_u": rms, "rms_change": step, "zeros": [(u == 0).float().mean().item() for u in codes],
            "rms_residual": (out - x).square().mean().sqrt().item()}


def stretch(x: torch.Tensor) -> torch.Tensor:
    """Y in [16, 235]/255 to [0, 1]."""
    return (x - Y_LOW) / (Y_HIGH - Y_LOW)


def gradient_norms(model: DCSC, inputs: torch.Tensor, targets: torch.Tensor,
                   iterations: int) -> dict:
    model.zero_grad()
    out = model(inputs, iterations=iterations)
    loss = (out - targets).abs().mean()
    loss.backward()
    per_layer = {name: math.sqrt(sum(p.grad.square().sum().item() for p in conv.parameters()))
                 for name, conv in conv_layers(model).items()}
    total = math.sqrt(sum(v * v for v in per_layer.values()))
    return {"loss": loss.item(), "total": total, "per_layer": per_layer}


def init_and_scale(sampler: PatchSampler, batch: int, patch: int, iterations: int,
                   seeds: int) -> tuple[dict, dict]:
    """Code dynamics and gradient norms at init on one batch of q10 patches of ``sampler``."""
    inputs, targets = sampler.sample(np.random.default_rng(0), batch, patch)
    target_rms = (targets - inputs).square().mean().sqrt().item()
    init = {"target_rms_residual": target_rms, "schemes": {}}
    scale = {"mae_jpeg": {"y16_235": (inputs - targets).abs().mean().item(),
                          "y0_1": (stretch(inputs) - stretch(targets)).abs().mean().item()},
             "grad": {}}
    for scheme in ("torch", "glorot"):
        runs = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = init_weights_(DCSC(), scheme)
            record = code_dynamics(model, inputs, iterations)
            record["S"] = spectral(model.S.weight)
            runs.append(record)
            if seed == 0:
                scale["grad"][scheme] = {
                    "y16_235": gradient_norms(model, inputs, targets, iterations),
                    "y0_1": gradient_norms(model, stretch(inputs), stretch(targets), iterations)}
        init["schemes"][scheme] = runs
    return init, scale


def sampler_stats(sampler: PatchSampler, files: list[Path], patch: int, draws: int) -> dict:
    """Distinct JPEG encodings, crop positions and (position, quality) pairs per image, counted
    from the sampler's own data and from ``draws`` patches drawn as the sampler draws them."""
    shapes = [c.shape[:2] for c in sampler.clean]
    positions = [((h - patch) // ALIGN + 1) * ((w - patch) // ALIGN + 1) for h, w in shapes]
    any_pixel = [(h - patch + 1) * (w - patch + 1) for h, w in shapes]
    encodings = [len({bytes(np.ascontiguousarray(j)) for j in per_image}) for per_image in sampler.jpeg]
    rng = np.random.default_rng(0)
    seen: dict[int, set] = {}
    encodings_seen: dict[int, set] = {}
    for _ in range(draws):  # the sampler's draw order: image, quality, top, left
        i = int(rng.integers(len(sampler.clean)))
        q = int(rng.integers(len(sampler.qualities)))
        h, w = shapes[i]
        top = int(rng.integers((h - patch) // ALIGN + 1)) * ALIGN
        left = int(rng.integers((w - patch) // ALIGN + 1)) * ALIGN
        rng.integers(4), rng.integers(2)  # rotation, flip
        seen.setdefault(i, set()).add((q, top, left))
        encodings_seen.setdefault(i, set()).add(q)
    return {"images": len(sampler.clean), "qualities": list(sampler.qualities), "patch": patch,
            "encodings_per_image": sorted(set(encodings)),
            "encodings_per_image_drawn_max": max(len(v) for v in encodings_seen.values()),
            "aligned_positions_per_image": {"min": min(positions), "max": max(positions)},
            "any_pixel_positions_per_image": {"min": min(any_pixel), "max": max(any_pixel)},
            "draws": draws, "distinct_crops_drawn_per_image": float(np.mean([len(v) for v in seen.values()])),
            "training_images": len(files), "paper_patches_per_image": 1_000_000 / len(files)}


def weight_stats(models: dict[str, DCSC], image: np.ndarray, iterations: int) -> dict:
    out = {}
    x = torch.from_numpy(image).float().div(255)[None, None]
    for name, model in models.items():
        layers = {}
        for layer, conv in conv_layers(model).items():
            layers[layer] = {"weight_norm": conv.weight.norm().item(),
                             "weight_std": conv.weight.std().item()}
            if conv.bias is not None:
                b = conv.bias.detach()
                layers[layer]["bias"] = {"mean": b.mean().item(), "min": b.min().item(),
                                         "max": b.max().item()}
        out[name] = {"layers": layers, "S": spectral(model.S.weight),
                     "dynamics": code_dynamics(model, x, iterations)}
    return out


def init_drift(trained: DCSC, authors: DCSC, seed: int = 0) -> dict:
    """How far dcsc-y's weights moved from their initial values, and the norms Glorot would
    have started from. dcsc-y's init is rebuilt exactly: ``train`` seeds torch with the run's
    seed (0) and builds the model before any other draw (a cosine near 1 confirms it)."""
    torch.manual_seed(seed)
    start = DCSC()
    torch.manual_seed(seed)
    glorot = init_weights_(DCSC(), "glorot")
    params = [dict(m.named_parameters()) for m in (start, trained, glorot, authors)]
    out = {}
    for name, a in params[0].items():
        b = params[1][name].detach()
        a = a.detach()
        out[name] = {"init_norm": a.norm().item(), "trained_norm": b.norm().item(),
                     "relative_change": ((b - a).norm() / a.norm()).item(),
                     "cosine_init_trained": F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item(),
                     "glorot_init_norm": params[2][name].norm().item(),
                     "authors_norm": params[3][name].norm().item() if name in params[3] else None}
    return out


def r_sweep(models: dict[str, DCSC], root: Path, rs: tuple[int, ...], crop: int) -> dict:
    """Y PSNR / PSNR-B at q10 of each model at several R on the central ``crop`` pixels of
    every Classic5 image (JPEG of the whole image, cut on the 16-pixel grid). One pass per
    image: S is shared, so the output at R is J + recon(U_R) of the same run."""
    from dcsc_preproc import psnr, psnrb

    scores: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for path in list_images(root / "classic5"):
        clean = to_uint8_y(read_image(path))
        jpeg = jpeg_roundtrip(clean, 10)
        h, w = clean.shape
        top, left = (h - crop) // 2 // ALIGN * ALIGN, (w - crop) // 2 // ALIGN * ALIGN
        ref = clean[top:top + crop, left:left + crop]
        inp = np.ascontiguousarray(jpeg[top:top + crop, left:left + crop])
        scores.setdefault("jpeg", {}).setdefault(0, []).append((psnr(inp, ref), psnrb(inp, ref)))
        x = torch.from_numpy(inp).float().div(255)[None, None]
        for name, model in models.items():
            with torch.no_grad():
                _, codes = model(x, iterations=max(rs), return_codes=True)
                for r in rs:
                    y = ((x + model.recon(codes[r])).clamp(0, 1) * 255).round().byte()[0, 0].numpy()
                    scores.setdefault(name, {}).setdefault(r, []).append((psnr(y, ref), psnrb(y, ref)))
    return {name: {str(r): np.mean(v, axis=0).round(4).tolist() for r, v in by_r.items()}
            for name, by_r in scores.items()}


def history(run: Path) -> list[dict]:
    """Per chunk: steps, batch, R, lr, mean training loss of its first and last 10% of log
    rows, validation PSNR-B at its first and last validation."""
    chunks = [json.loads(line) for line in (run / "chunks.jsonl").read_text().splitlines()]
    with (run / "log.csv").open() as f:
        log = list(csv.DictReader(f))
    with (run / "val.csv").open() as f:
        val = list(csv.DictReader(f))
    rows = []
    for c, nxt in zip(chunks, chunks[1:] + [None]):
        a, b = c["start_step"], nxt["start_step"] if nxt else 10**12
        part = [float(r["loss"]) for r in log if a < int(r["step"]) <= b]
        vals = [float(r["psnrb"]) for r in val if a < int(r["step"]) <= b]
        tenth = max(len(part) // 10, 1)
        s = c["settings"]
        rows.append({"from": a, "to": int(log[-1]["step"]) if nxt is None else b,
                     "batch": s["batch"], "patch": s["patch"],
                     "R": s["train_iterations"] or 40, "lr": s["lr"], "decay_to": s.get("decay_to"),
                     "machine": c["machine"], "loss_first": float(np.mean(part[:tenth])) if part else None,
                     "loss_last": float(np.mean(part[-tenth:])) if part else None,
                     "val_psnrb_first": vals[0] if vals else None,
                     "val_psnrb_last": vals[-1] if vals else None})
    return rows


def generalisation(models: dict[str, DCSC], root: Path, count: int, crop: int) -> dict:
    """Y PSNR at q10 of each model on the central ``crop`` pixels of the first ``count``
    training images (the very encodings dcsc-y trained on: one per image and quality, cut on
    the 16-pixel grid) and of the first ``count`` BSDS500-val images (never seen)."""
    from dcsc_preproc import psnr

    sets = {"train (seen encodings)": list_images(root / "bsds500" / "train")[:count],
            "val (unseen)": list_images(root / "bsds500" / "val")[:count]}
    out = {}
    for set_name, files in sets.items():
        scores: dict[str, list[float]] = {"jpeg": []}
        for path in files:
            clean = to_uint8_y(read_image(path))
            jpeg = jpeg_roundtrip(clean, 10)
            h, w = clean.shape
            top, left = (h - crop) // 2 // ALIGN * ALIGN, (w - crop) // 2 // ALIGN * ALIGN
            ref = clean[top:top + crop, left:left + crop]
            inp = jpeg[top:top + crop, left:left + crop]
            scores["jpeg"].append(psnr(inp, ref))
            x = torch.from_numpy(np.ascontiguousarray(inp)).float().div(255)[None, None]
            for name, model in models.items():
                with torch.no_grad():
                    y = (model(x).clamp(0, 1) * 255).round().byte()[0, 0].numpy()
                scores.setdefault(name, []).append(psnr(y, ref))
        out[set_name] = {k: float(np.mean(v)) for k, v in scores.items()}
    return out


def report(record: dict) -> str:
    lines = ["# Issue 16 analysis (no training)", ""]
    lines += ["## Initialisation of each convolution", "",
              "| layer | in -> out | fan-in | fan-out | PyTorch std | Glorot std | Glorot / PyTorch |",
              "|---|---|---|---|---|---|---|"]
    for r in record["init_table"]:
        lines.append(f"| {r['layer']} | {r['in']} -> {r['out']} | {r['fan_in']} | {r['fan_out']} | "
                     f"{r['torch_std']:.4f} | {r['glorot_std']:.4f} | {r['glorot_over_torch']:.2f} |")
    init = record["init"]
    lines += ["", f"At init, R={record['settings']['iterations']}, {record['settings']['batch']} q10 "
              f"patches of {record['settings']['patch']}x{record['settings']['patch']} "
              f"(target residual RMS {init['target_rms_residual']:.4f}):", "",
              "| init | seed | S norm (periodic / zero pad) | S radius | RMS U_0 | RMS U_10 | RMS U_40 "
              "| RMS(U_40 - U_39) | zeros U_40 | residual RMS |", "|---|---|---|---|---|---|---|---|---|---|"]
    for scheme, runs in init["schemes"].items():
        for seed, r in enumerate(runs):
            last = len(r["rms_u"]) - 1
            lines.append(f"| {scheme} | {seed} | {r['S']['norm_periodic']:.3f} / {r['S']['norm_zero_pad']:.3f} "
                         f"| {r['S']['radius_periodic']:.3f} | {r['rms_u'][0]:.4g} | {r['rms_u'][10]:.4g} "
                         f"| {r['rms_u'][last]:.4g} | {r['rms_change'][last]:.3g} | {r['zeros'][last]:.3f} "
                         f"| {r['rms_residual']:.4g} |")
    scale = record["loss_scale"]
    lines += ["", "## Loss scale", "",
              f"MAE of the q10 JPEG input: {scale['mae_jpeg']['y16_235']:.5f} with Y in [16, 235]/255, "
              f"{scale['mae_jpeg']['y0_1']:.5f} stretched to [0, 1].", "",
              "| init | Y range | loss at init | grad norm | dilated (d=1) | G | S | recon |",
              "|---|---|---|---|---|---|---|---|"]
    for scheme, by_range in scale["grad"].items():
        for rng_name, g in by_range.items():
            p = g["per_layer"]
            lines.append(f"| {scheme} | {rng_name} | {g['loss']:.4f} | {g['total']:.4g} | "
                         f"{p['dilated.0 (d=1)']:.3g} | {p['G']:.3g} | {p['S']:.3g} | {p['recon']:.3g} |")
    s = record["sampler"]
    lines += ["", "## Patch sampler", "",
              f"- the first {s['images']} of the {s['training_images']} training images, qualities "
              f"{s['qualities']}, {s['patch']}x{s['patch']} patches",
              f"- distinct JPEG encodings per image: {s['encodings_per_image']} (one per quality; "
              f"the most any image showed in {s['draws']:,} drawn patches: "
              f"{s['encodings_per_image_drawn_max']})",
              f"- crop positions per image on the 16-pixel grid: {s['aligned_positions_per_image']}; "
              f"at any pixel: {s['any_pixel_positions_per_image']}",
              f"- distinct (quality, position) crops per image in {s['draws']:,} draws: "
              f"{s['distinct_crops_drawn_per_image']:.0f}; the paper: "
              f"{s['paper_patches_per_image']:.0f} patches per image"]
    lines += ["", "## Trained weights", "",
              "| model | dilated d=1 norm | G norm | S norm (Frobenius) | recon norm | G bias mean [min, max] | "
              "S bias mean [min, max] | S spectral norm (periodic / zero pad) | S radius |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, w in record["weights"].items():
        lay = w["layers"]
        biases = [f"{b['mean']:.4f} [{b['min']:.3f}, {b['max']:.3f}]" if (b := lay[k].get("bias"))
                  else "none" for k in ("G", "S")]
        norms = [f"{lay[k]['weight_norm']:.3f}" for k in ("dilated.0 (d=1)", "G", "S", "recon")]
        lines.append(f"| {name} | " + " | ".join(norms + biases) + f" | {w['S']['norm_periodic']:.3f} / "
                     f"{w['S']['norm_zero_pad']:.3f} | {w['S']['radius_periodic']:.3f} |")
    lines += ["", "Code dynamics on the Classic5 crop (RMS of U_r - U_(r-1); RMS of U_r):", "",
              "| model | r=1 | r=5 | r=10 | r=20 | r=40 | r=60 | RMS U_1 | RMS U_40 | RMS U_60 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, w in record["weights"].items():
        d = w["dynamics"]
        lines.append(f"| {name} | " + " | ".join(f"{d['rms_change'][r]:.3g}" for r in (1, 5, 10, 20, 40, 60))
                     + f" | {d['rms_u'][1]:.4g} | {d['rms_u'][40]:.4g} | {d['rms_u'][60]:.4g} |")
    lines += ["", "## How far dcsc-y moved from its initial weights", "",
              "| parameter | init norm | trained norm | change / init | cosine(init, trained) | "
              "Glorot init norm | authors' norm |", "|---|---|---|---|---|---|---|"]
    for name, d in record["init_drift"].items():
        authors = "-" if d["authors_norm"] is None else f"{d['authors_norm']:.3f}"
        lines.append(f"| {name} | {d['init_norm']:.3f} | {d['trained_norm']:.3f} | "
                     f"{d['relative_change']:.3f} | {d['cosine_init_trained']:.3f} | "
                     f"{d['glorot_init_norm']:.3f} | {authors} |")
    names = list(next(iter(record["generalisation"].values())))
    lines += ["", f"## Seen against unseen images (q10, Y PSNR, central "
              f"{record['settings']['generalisation_crop']}-pixel crops)", "",
              "| images | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for set_name, v in record["generalisation"].items():
        lines.append(f"| {set_name} | " + " | ".join(f"{v[n]:.3f}" for n in names) + " |")
    sweep = record["r_sweep"]
    rs = list(sweep[names[1]])
    jpeg = sweep["jpeg"]["0"]
    lines += ["", f"## R at inference: Classic5 q10, central {record['settings']['crop']}-pixel crops "
              f"(PSNR / PSNR-B; JPEG {jpeg[0]:.3f} / {jpeg[1]:.3f})", "",
              "| model | " + " | ".join(f"R={r}" for r in rs) + " |", "|---" * (len(rs) + 1) + "|"]
    for name in names[1:]:
        lines.append(f"| {name} | " + " | ".join(f"{sweep[name][r][0]:.3f} / {sweep[name][r][1]:.3f}"
                                                for r in rs) + " |")
    lines += ["", "## Training history of training/dcsc-y", "",
              "| steps | batch | patch | R | lr | machine | loss (first / last tenth) | val PSNR-B (first / last) |",
              "|---|---|---|---|---|---|---|---|"]
    for h in record["history"]:
        lr = f"{h['lr']:g}" + (f" cos -> {h['decay_to']:g}" if h["decay_to"] else "")
        loss = (f"{h['loss_first']:.5f} / {h['loss_last']:.5f}" if h["loss_first"] is not None else "-")
        val = (f"{h['val_psnrb_first']:.3f} / {h['val_psnrb_last']:.3f}"
               if h["val_psnrb_first"] is not None else "-")
        lines.append(f"| {h['from']}-{h['to']} | {h['batch']} | {h['patch']} | {h['R']} | {lr} | "
                     f"{h['machine']} | {loss} | {val} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", required=True)
    parser.add_argument("--data", help="data root (default: $DCSC_DATA or ../shared/data)")
    parser.add_argument("--batch", type=int, default=8, help="q10 patches for the init measures")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--image", default="classic5/lena.bmp", help="under the data root")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--images", type=int, default=8, help="seen / unseen images compared")
    parser.add_argument("--sampler-images", type=int, default=50, help="images the sampler stats use")
    parser.add_argument("--generalisation-crop", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)
    root = data_root(args.data)
    files = list_images(root / "bsds500" / "train") + list_images(root / "bsds500" / "test")
    sampler = PatchSampler(files[:args.sampler_images])  # BSDS500 images are all 481x321
    iterations = 40
    init, scale = init_and_scale(PatchSampler(files[:50], (10,)), args.batch, args.patch,
                                 iterations, args.seeds)
    clean = to_uint8_y(read_image(root / args.image))
    h, w = clean.shape
    c = args.crop
    crop = jpeg_roundtrip(clean, 10)[(h - c) // 2:(h + c) // 2, (w - c) // 2:(w + c) // 2]
    models = {"dcsc-y": load_model("dcsc-y"), "authors ICCV'19": load_model(AUTHORS)}
    record = {"settings": {"batch": args.batch, "patch": args.patch, "iterations": iterations,
                           "seeds": args.seeds, "image": args.image, "crop": c,
                           "images": args.images, "generalisation_crop": args.generalisation_crop},
              "init_table": init_table(), "init": init, "loss_scale": scale,
              "sampler": sampler_stats(sampler, files, 80, 500 * args.sampler_images),
              "weights": weight_stats(models, np.ascontiguousarray(crop), 60),
              "init_drift": init_drift(models["dcsc-y"], models["authors ICCV'19"]),
              "generalisation": generalisation(models, root, args.images, args.generalisation_crop),
              "r_sweep": r_sweep(models, root, (10, 20, 40, 60), c),
              "history": history(RUN)}
    Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    print(report(record))


if __name__ == "__main__":
    main()
