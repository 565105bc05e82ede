"""Controlled training comparisons for dcsc-y (issue 16): the paper's recipe, one change each.

Every variant trains a fresh paper network (Y, 32/64 maps, dilations 1/2/4) for the same
number of steps from the same seed; variants with the same batch draw the same patches. Each
runs in its own process (several small runs share a GPU well) and writes
``OUT/NAME/{log.csv,val.csv,result.json}``; the parent then writes ``OUT/summary.md`` (the
validation curve of every variant side by side) and ``OUT/curves.png``.

``paper`` is the paper's recipe as stated: R=40 unrolled from step 0, batch 10, 80x80 patches,
Adam at a fixed 1e-4, MAE on Y in [16, 235]/255, PyTorch's default init, no clipping. The
other variants change one thing (``ours`` changes all of dcsc-y's differences at once):

- ``curriculum``: R=10 for the first quarter of the steps, then 40 (dcsc-y's CPU start);
- ``restarts``: three cosine decays to 1e-6, each restarting at the full rate (dcsc-y's GPU
  chunks);
- ``batch32``: batch 32 at the same rate; ``batch32-lr``: batch 32 at 1.5e-4 (dcsc-y's);
- ``glorot``: TensorFlow's default init (Glorot-uniform kernels, zero biases);
- ``no-bias``: G and S without biases, as in the authors' network (dcsc-y has them);
- ``authors``: both (the authors' network with TensorFlow's default init), the paper's recipe;
- ``stretch``: input and target Y stretched from [16, 235]/255 to [0, 1];
- ``clip``: gradient norm clipped to 1 (it is about 6 at init, training/recipe_analysis.py);
- ``patch-jpeg``: each patch cut at any pixel from the clean image and JPEG-compressed on its
  own (a new encoding per patch) instead of cut on the 16-pixel grid of one encoding per image
  and quality;
- ``ours``: curriculum (first 5% at R=10), batch 32, 1.5e-4, three restarts.

Validation: PSNR / PSNR-B (Y, MATLAB convention) of the first ``--val-images`` BSDS500-val
images at ``--val-qualities``, at R=40 (``--iterations``; ``--val-iterations 10 40`` for
several), every ``--val-every`` steps and at the end. Example (CPU, tiny, weak evidence)::

    OMP_NUM_THREADS=1 python training/ablate.py --out runs/ablate-cpu --steps 300 --iterations 10 \\
        --patch 48 --val-every 100 --val-images 3 --threads 1 paper glorot
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dcsc_preproc import (DCSC, array_to_tensor, jpeg_roundtrip, list_images, psnr, psnrb,
                          read_image, to_uint8_y)
from dcsc_preproc.data import PatchSampler, data_root
from dcsc_preproc.model import init_weights_

Y_LOW, Y_HIGH = 16 / 255, 235 / 255


@dataclass(frozen=True)
class Recipe:
    """One training recipe; the defaults are the paper's."""

    batch: int = 10
    lr: float = 1e-4
    curriculum: tuple[float, int] | None = None  # (share of the steps, R) trained first
    restarts: int = 0  # cosine decays to 1e-6 over equal parts of the run (0: fixed rate)
    init: str = "torch"
    bias: bool = True  # G and S with biases (dcsc-y); the authors' G and S have none
    stretch: bool = False
    clip: float | None = None
    patch_jpeg: bool = False


VARIANTS = {
    "paper": Recipe(),
    "curriculum": Recipe(curriculum=(0.25, 10)),
    "restarts": Recipe(restarts=3),
    "batch32": Recipe(batch=32),
    "batch32-lr": Recipe(batch=32, lr=1.5e-4),
    "glorot": Recipe(init="glorot"),
    "no-bias": Recipe(bias=False),
    "authors": Recipe(init="glorot", bias=False),
    "stretch": Recipe(stretch=True),
    "clip": Recipe(clip=1.0),
    "patch-jpeg": Recipe(patch_jpeg=True),
    "ours": Recipe(batch=32, lr=1.5e-4, curriculum=(0.05, 10), restarts=3),
}


def learning_rate(recipe: Recipe, step: int, steps: int, floor: float = 1e-6) -> float:
    """Fixed, or ``restarts`` cosine decays from ``recipe.lr`` to ``floor``.

    Example:
        >>> [round(learning_rate(Recipe(restarts=2), s, 100), 7) for s in (0, 49, 50)]
        [0.0001, 1.1e-06, 0.0001]
    """
    if not recipe.restarts:
        return recipe.lr
    part = steps / recipe.restarts
    progress = (step % part) / max(part - 1, 1)
    return floor + (recipe.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train_iterations(recipe: Recipe, step: int, steps: int, iterations: int) -> int:
    """R unrolled at ``step``: the curriculum's R for its share of the steps, then ``iterations``."""
    if recipe.curriculum and step < recipe.curriculum[0] * steps:
        return min(recipe.curriculum[1], iterations)
    return iterations


def stretch(x: torch.Tensor) -> torch.Tensor:
    return (x - Y_LOW) / (Y_HIGH - Y_LOW)


def unstretch(x: torch.Tensor) -> torch.Tensor:
    return x * (Y_HIGH - Y_LOW) + Y_LOW


def sample_patch_jpeg(sampler: PatchSampler, rng: np.random.Generator, batch: int,
                      patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean patches cut at any pixel, each JPEG-compressed on its own at a random quality."""
    inputs, targets = [], []
    for _ in range(batch):
        clean = sampler.clean[rng.integers(len(sampler.clean))]
        q = sampler.qualities[rng.integers(len(sampler.qualities))]
        h, w = clean.shape[:2]
        top, left = rng.integers(h - patch + 1), rng.integers(w - patch + 1)
        b = np.rot90(clean[top:top + patch, left:left + patch], rng.integers(4))
        b = np.ascontiguousarray(b[:, ::-1] if rng.integers(2) else b)
        inputs.append(torch.from_numpy(jpeg_roundtrip(b, q)).float().div(255)[None])
        targets.append(torch.from_numpy(b.copy()).float().div(255)[None])
    return torch.stack(inputs), torch.stack(targets)


class Validation:
    """Y PSNR / PSNR-B of a model on the first BSDS500-val images at some qualities."""

    def __init__(self, root: Path, count: int, qualities: tuple[int, ...]) -> None:
        self.items = []
        for path in list_images(root / "bsds500" / "val")[:count]:
            clean = to_uint8_y(read_image(path))
            self.items += [(q, clean, jpeg_roundtrip(clean, q)) for q in qualities]

    @torch.no_grad()
    def __call__(self, model: DCSC, recipe: Recipe, device: torch.device,
                 iterations: int) -> dict[int, tuple[float, float]]:
        model.eval()
        scores: dict[int, list[tuple[float, float]]] = {}
        for q, clean, jpeg in self.items:
            x = array_to_tensor(jpeg, device)
            y = (unstretch(model(stretch(x), iterations)) if recipe.stretch
                 else model(x, iterations))
            out = (y.clamp(0, 1) * 255).round().byte()[0, 0].cpu().numpy()
            scores.setdefault(q, []).append((psnr(out, clean), psnrb(out, clean)))
        model.train()
        return {q: tuple(np.mean(v, axis=0).round(4).tolist()) for q, v in scores.items()}


def run_variant(name: str, args: argparse.Namespace) -> dict:
    """Train one variant; returns (and writes) its result."""
    recipe = VARIANTS[name]
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    root = data_root(args.data)
    files = list_images(root / "bsds500" / "train") + list_images(root / "bsds500" / "test")
    sampler = PatchSampler(files[:args.train_images])
    validation = Validation(root, args.val_images, tuple(args.val_qualities))
    layout = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    torch.backends.cudnn.benchmark = True  # fixed patch size: let cuDNN pick its kernels
    model = init_weights_(DCSC(iterations=args.iterations, bias=recipe.bias), recipe.init).to(device, memory_format=layout)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    amp = device.type == "cuda"
    start = time.monotonic()
    log_rows, val_rows = [], []
    losses, norms = [], []
    step = 0

    def validate() -> None:
        for r_val in args.val_iterations or [args.iterations]:
            for q, (p, pb) in validation(model, recipe, device, r_val).items():
                val_rows.append({"step": step, "patches": step * recipe.batch, "quality": q,
                                 "R": r_val, "psnr": p, "psnrb": pb,
                                 "wall_s": round(time.monotonic() - start, 1)})
                print(f"{name} step {step} q{q} R={r_val}: PSNR {p:.3f} PSNR-B {pb:.3f}", flush=True)

    def log_losses() -> None:
        log_rows.append({"step": step, "loss": torch.stack(losses).mean().item(),
                         "grad_norm": torch.stack(norms).mean().item(), "R": r,
                         "lr": optimiser.param_groups[0]["lr"],
                         "wall_s": round(time.monotonic() - start, 1)})
        losses.clear()
        norms.clear()

    while step < args.steps and time.monotonic() - start < args.seconds:
        r = train_iterations(recipe, step, args.steps, args.iterations)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(recipe, step, args.steps)
        sample = sample_patch_jpeg if recipe.patch_jpeg else PatchSampler.sample
        inputs, targets = sample(sampler, rng, recipe.batch, args.patch)
        inputs, targets = inputs.to(device).contiguous(memory_format=layout), targets.to(device)
        if recipe.stretch:
            inputs, targets = stretch(inputs), stretch(targets)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            output = model(inputs, iterations=r)
        loss = (output.float() - targets).abs().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip or math.inf)
        optimiser.step()
        step += 1
        losses.append(loss.detach())
        norms.append(norm.detach())
        if step % args.log_every == 0:
            log_losses()
        if step % args.val_every == 0 and step < args.steps:
            validate()
    if losses:
        log_losses()
    validate()
    for file, rows in (("log.csv", log_rows), ("val.csv", val_rows)):
        if rows:
            with (out / file).open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    result = {"variant": name, "recipe": asdict(recipe), "steps": step, "planned_steps": args.steps,
              "complete": step >= args.steps, "wall_s": round(time.monotonic() - start, 1),
              "device": str(device), "iterations": args.iterations, "patch": args.patch,
              "final": [r for r in val_rows if r["step"] == step]}
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def summary(out: Path, names: list[str]) -> str:
    """Markdown: validation PSNR-B per variant at every validated step, and the final row."""
    curves = {}
    for name in names:
        with (out / name / "val.csv").open() as f:
            curves[name] = list(csv.DictReader(f))
    results = {n: json.loads((out / n / "result.json").read_text()) for n in names}
    keys = sorted({(int(r["quality"]), int(r["R"])) for rows in curves.values() for r in rows})
    lines = []
    for key in keys:
        rows_of = {n: [r for r in curves[n] if (int(r["quality"]), int(r["R"])) == key] for n in names}
        steps = sorted({int(r["step"]) for rows in rows_of.values() for r in rows})
        lines += [f"Validation PSNR-B at q{key[0]}, R={key[1]} (PSNR in the last row):", "",
                  "| step | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for s in steps:
            cells = [next((f"{float(r['psnrb']):.3f}" for r in rows_of[n] if int(r["step"]) == s), "")
                     for n in names]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        finals = [f"{float(rows_of[n][-1]['psnr']):.3f}" if rows_of[n] else "" for n in names]
        lines += ["| PSNR (last) | " + " | ".join(finals) + " |", ""]
    lines += ["| variant | steps done | patches | wall s | complete |", "|---|---|---|---|---|"]
    for n, r in results.items():
        lines.append(f"| {n} | {r['steps']} | {r['steps'] * r['recipe']['batch']:,} | {r['wall_s']} | "
                     f"{r['complete']} |")
    return "\n".join(lines) + "\n"


def plot(out: Path, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for name in names:
        with (out / name / "val.csv").open() as f:
            rows = list(csv.DictReader(f))
        top = max(int(r["R"]) for r in rows)  # the first quality at the largest R
        rows = [r for r in rows if r["quality"] == rows[0]["quality"] and int(r["R"]) == top]
        ax.plot([int(r["step"]) for r in rows], [float(r["psnrb"]) for r in rows], marker=".", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(f"validation PSNR-B (dB), q{rows[0]['quality']}, R={top}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", help="data root (default: $DCSC_DATA or ../shared/data)")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=math.inf,
                        help="stop a variant after this long (it is then marked incomplete)")
    parser.add_argument("--iterations", type=int, default=40, help="R (training and validation)")
    parser.add_argument("--patch", type=int, default=80)
    parser.add_argument("--train-images", type=int)
    parser.add_argument("--val-every", type=int, default=1000)
    parser.add_argument("--val-images", type=int, default=10)
    parser.add_argument("--val-qualities", type=int, nargs="+", default=[10])
    parser.add_argument("--val-iterations", type=int, nargs="+",
                        help="R at validation (default: --iterations); e.g. 10 40 shows whether "
                             "a variant uses its iterations")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--threads", type=int, help="torch threads per variant")
    parser.add_argument("--device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequential", action="store_true", help="one variant after another")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    if args.worker or len(args.variants) == 1:
        for name in args.variants:
            run_variant(name, args)
    else:
        out.mkdir(parents=True, exist_ok=True)
        argv = [a for a in sys.argv[1:] if a not in args.variants and a != "--sequential"]
        procs = []
        for name in args.variants:
            cmd = [sys.executable, __file__, name, "--worker", *argv]
            log = (out / f"{name}.log").open("w")
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            if args.sequential:
                procs[-1].wait()
        failed = [n for n, p in zip(args.variants, procs) if p.wait() != 0]
        if failed:
            raise SystemExit(f"variants failed: {failed}; see {out}/NAME.log")
    if len(args.variants) > 1:
        (out / "summary.md").write_text(summary(out, args.variants))
        plot(out, args.variants)
        print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
