"""Training loop: random patches (BSDS500 by default), JPEG at random qualities, MAE (or MSE),
optionally plus a detector-feature loss (:mod:`.detector_loss`), Adam.

A run lives in one folder: ``checkpoint.pt`` (model, optimiser, torch RNG state, step: exact
resume, as patches come from :func:`~.distributed.patch_rng`), ``log.csv`` (training loss),
``val.csv`` (validation PSNR / PSNR-B) and, at the end, ``model.safetensors``. Running the
same command again resumes; training knobs (patch, batch, unrolled iterations, learning rate,
steps) may change between chunks, the model may not.

``torchrun --nproc_per_node=N -m dcsc_preproc train ...`` trains the same run with N
processes (:mod:`.distributed`): DistributedDataParallel averages the gradients of N batches of
``batch`` patches, each rank draws its own patches, rank 0 alone writes the run folder, and a
checkpoint resumes with any number of processes.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .data import DEFAULT_DATA_DIRS, PatchSampler, data_root, list_images, to_uint8_y
from .distributed import Ranks, any_rank, mean_over_ranks, patch_rng, process_group
from .engine import Engine, machine
from .jpeg import jpeg_roundtrip, read_image
from .metrics import psnr, psnrb
from .model import DCSC, DCSCConfig, init_weights_
from .zoo import load_model, save_model


@dataclass
class TrainConfig:
    """Everything a training run needs. Defaults are the paper's settings."""

    out: str = "runs/dcsc-y"
    data: str | None = None
    #: training image folders, relative to ``data`` (or absolute); mixed by image count
    data_dirs: tuple[str, ...] = DEFAULT_DATA_DIRS
    #: weights to start from when the run has no checkpoint yet (fine-tuning)
    init: str | None = None
    #: a fresh run's initial weights: PyTorch's default or "glorot" (TensorFlow's, as the
    #: DCSC authors'; docs/RESULTS.md, issue 16)
    weight_init: str = "torch"
    model: DCSCConfig = field(default_factory=DCSCConfig)
    qualities: tuple[int, ...] = (10, 20, 30)
    patch: int = 80
    #: largest factor a JPEG patch is shrunk by before the network sees it (1: never); for a
    #: de-blocker that runs at the detector's input size
    downscale: float = 1.0
    #: largest enlargement of camera-size pairs (JPEG at the enlarged size, then shrunk back;
    #: 1: none); for a de-blocker behind the letterbox of camera frames
    camera: float = 1.0
    batch: int = 10
    steps: int = 100_000
    lr: float = 1e-4
    decay_to: float | None = None
    loss: str = "mae"
    #: frozen Ultralytics detector whose features the restored patch must match (None: off)
    detector_loss: str | None = None
    detector_loss_weight: float = 1.0
    detector_layers: tuple[int, ...] | None = None
    #: weight of the detector's class-score distillation term (0: off)
    distill_weight: float = 0.0
    #: a trained de-blocker (any :func:`load_model` source) whose output on the same JPEG
    #: patch is a second pixel target: a smaller network learns what a larger one does
    teacher: str | None = None
    teacher_weight: float = 1.0
    train_iterations: int | None = None
    train_images: int | None = None
    val_every: int = 500
    val_images: int = 10
    val_qualities: tuple[int, ...] = (10,)
    checkpoint_every: int = 100
    log_every: int = 10
    max_minutes: float | None = None
    precision: str = "auto"
    device: str | None = None
    seed: int = 0


def _precision(name: str, device: torch.device) -> torch.dtype | None:
    if name == "auto":
        if device.type == "cuda" or torch.cpu._is_avx512_bf16_supported():
            return torch.bfloat16
        return None
    return {"fp32": None, "bf16": torch.bfloat16}[name]


def _pixel_loss(diff: torch.Tensor, loss: str) -> torch.Tensor:
    return diff.abs().mean() if loss == "mae" else diff.square().mean()


def learning_rate(cfg: TrainConfig, first_step: int, step: int) -> float:
    """``cfg.lr``, or with ``cfg.decay_to`` a cosine from ``cfg.lr`` at this chunk's first
    step down to ``cfg.decay_to`` at ``cfg.steps`` (a short final chunk settles the weights).

    Example:
        >>> cfg = TrainConfig(lr=1e-4, decay_to=1e-6, steps=300)
        >>> [round(learning_rate(cfg, 100, s), 8) for s in (100, 200, 300)]
        [0.0001, 5.05e-05, 1e-06]
    """
    if cfg.decay_to is None:
        return cfg.lr
    progress = min((step - first_step) / max(cfg.steps - first_step, 1), 1.0)
    return cfg.decay_to + (cfg.lr - cfg.decay_to) * 0.5 * (1 + math.cos(math.pi * progress))


class Validator:
    """PSNR / PSNR-B (Y, MATLAB convention) of a model on the first BSDS500-val images."""

    def __init__(self, root: Path, count: int, qualities: tuple[int, ...], channels: int,
                 colour: str) -> None:
        self.items = []
        for path in list_images(root / "bsds500" / "val")[:count]:
            rgb = read_image(path)
            clean = to_uint8_y(rgb, colour) if channels == 1 else rgb
            for q in qualities:
                self.items.append((q, clean, jpeg_roundtrip(clean, q)))

    def __call__(self, model: DCSC, device: torch.device, channels_last: bool) -> list[dict]:
        """``channels_last``: the training layout, kept (the Engine sets it on the model)."""
        engine = Engine(model, device=device, tile=None, channels_last=channels_last)
        results: dict[int, list[tuple[float, ...]]] = {}
        for q, clean, jpeg in self.items:
            ref, inp, res = (to_uint8_y(a) for a in (clean, jpeg, engine.restore_array(jpeg)))
            results.setdefault(q, []).append(
                (psnr(res, ref), psnrb(res, ref), psnr(inp, ref), psnrb(inp, ref)))
        model.train()
        return [dict(quality=q, **dict(zip(("psnr", "psnrb", "jpeg_psnr", "jpeg_psnrb"),
                                           np.mean(v, axis=0).round(4).tolist())))
                for q, v in results.items()]


def _drop_rows_after(path: Path, step: int) -> None:
    """Forget log rows written after the checkpoint we resume from (they will be redone)."""
    if path.exists():
        rows = _read_csv(path)
        kept = [r for r in rows if int(r["step"]) <= step]
        if len(kept) < len(rows):
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(kept)


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def train(cfg: TrainConfig, command: str | None = None) -> Path:
    """Train (or resume) the run in ``cfg.out``; returns the path of the final weights.

    ``command`` (the command line) is recorded with each chunk in ``chunks.jsonl``. Under
    torchrun each process calls this; ``cfg.batch`` is per process.
    """
    with process_group(cfg.device) as (ranks, device):
        return _train(cfg, command, ranks, device)


def _train(cfg: TrainConfig, command: str | None, ranks: Ranks, device: torch.device) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    amp = _precision(cfg.precision, device)
    if cfg.loss not in ("mae", "mse"):
        raise ValueError(f"loss must be 'mae' or 'mse', got {cfg.loss!r}")
    detector_loss = None
    if cfg.detector_loss:
        from .detector_loss import STRIDE, DetectorFeatureLoss, load_frozen_detector

        if cfg.patch % STRIDE or cfg.patch < 5 * STRIDE:
            raise ValueError(f"--detector-loss needs patches of at least {5 * STRIDE} pixels "
                             f"and a multiple of {STRIDE} (stride-32 context), got {cfg.patch}")
        detector_loss = DetectorFeatureLoss(load_frozen_detector(cfg.detector_loss),
                                            cfg.detector_layers, distill=cfg.distill_weight > 0)
        detector_loss.to(device)
    elif cfg.distill_weight:
        raise ValueError("distillation needs --detector-loss")
    teacher = None
    if cfg.teacher:
        teacher = load_model(cfg.teacher).to(device).eval().requires_grad_(False)
        if teacher.config.in_channels != cfg.model.in_channels:
            raise ValueError(f"--teacher {cfg.teacher} restores {teacher.config.in_channels}-channel "
                             f"images, the model {cfg.model.in_channels}-channel ones")
    torch.manual_seed(cfg.seed)
    layout = torch.contiguous_format
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch size: let cuDNN pick its kernels
        layout = torch.channels_last  # what cuDNN's bf16 kernels want
    model = DCSC.from_config(cfg.model)
    if cfg.weight_init != "torch":  # "torch" keeps the default draws: the same weights per seed
        init_weights_(model, cfg.weight_init)
    model = model.to(device, memory_format=layout)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, wall, seen = 0, 0.0, 0
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if DCSCConfig.from_dict(ckpt["model_config"]) != cfg.model:
            raise ValueError(f"{ckpt_path} holds a different model "
                             f"({ckpt['model_config']}); use another --out")
        model.load_state_dict(ckpt["model"])
        optimiser.load_state_dict(ckpt["optimiser"])
        torch.set_rng_state(ckpt["torch_rng"])
        step, wall, seen = ckpt["step"], ckpt["wall"], ckpt["seen"]
        for log_file in (out / "log.csv", out / "val.csv"):
            if ranks.main:
                _drop_rows_after(log_file, step)
    elif cfg.init:
        start_from = load_model(cfg.init)
        if start_from.config != cfg.model:
            raise ValueError(f"--init {cfg.init} holds another model ({start_from.config})")
        model.load_state_dict(start_from.state_dict())
    first_step = step
    net = model if ranks.world == 1 else DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None)

    def save_checkpoint() -> None:
        """Rank 0's state: every rank holds the same weights and optimiser after each step."""
        if not ranks.main:
            return
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                    "torch_rng": torch.get_rng_state(), "step": step, "wall": wall,
                    "seen": seen, "model_config": cfg.model.to_dict()}, tmp)
        tmp.replace(ckpt_path)

    root = data_root(cfg.data)
    folders = {folder: list_images(root / folder) for folder in cfg.data_dirs}
    files = [f for found in folders.values() for f in found][:cfg.train_images]
    channels = "y" if cfg.model.in_channels == 1 else "rgb"
    sampler = PatchSampler(files, cfg.qualities, channels, cfg.model.colour, cfg.downscale,
                           cfg.camera)
    validator = Validator(root, cfg.val_images, cfg.val_qualities, cfg.model.in_channels,
                          cfg.model.colour) if ranks.main else None
    iterations = cfg.train_iterations
    settings = {k: v for k, v in asdict(cfg).items() if k != "model"}
    settings["data_counts"] = {folder: len(found) for folder, found in folders.items()}
    # batch and lr are per process; gradients are averaged, so lr applies to the total batch
    settings["processes"] = ranks.world
    settings["total_batch"] = cfg.batch * ranks.world
    if ranks.main:
        (out / "config.json").write_text(json.dumps(
            {"model": cfg.model.to_dict(), "last_chunk": settings}, indent=2))
        with (out / "chunks.jsonl").open("a") as f:
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            f.write(json.dumps({"start_step": step, "command": command, "settings": settings,
                                "machine": machine(device), "started": started}) + "\n")

    def log(step: int, losses: list[dict[str, torch.Tensor]]) -> float:
        """Mean losses since the last log, over steps and processes; rank 0 writes them."""
        names = list(losses[0])
        means = mean_over_ranks(torch.stack([torch.stack([t[k] for t in losses]).mean()
                                             for k in names]), ranks)
        terms = dict(zip(names, means.tolist()))
        loss = terms.pop("loss")
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} before step {step}; "
                                     "resume from the last checkpoint with a lower --lr")
        if not ranks.main:
            return loss
        _append_csv(out / "log.csv", {
            "step": step, "loss": round(loss, 6), **{k: round(v, 6) for k, v in terms.items()},
            "lr": float(f"{optimiser.param_groups[0]['lr']:.4g}"),
            "train_iterations": iterations or cfg.model.iterations, "patch": cfg.patch,
            "batch": cfg.batch, "patches_seen": seen,
            "wall_s": round(wall + time.monotonic() - start, 1)})
        return loss

    model.train()
    start = time.monotonic()
    deadline = None if cfg.max_minutes is None else start + 60 * cfg.max_minutes
    losses: list[dict[str, torch.Tensor]] = []  # kept on the device: no sync per step
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {out.name}", unit="step",
               disable=not ranks.main)
    while step < cfg.steps and not (  # all processes stop at the same step
            deadline is not None and any_rank(time.monotonic() >= deadline, ranks, device)):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(cfg, first_step, step)
        inputs, targets = sampler.sample(patch_rng(cfg.seed, ranks.rank, step), cfg.batch,
                                         cfg.patch)
        inputs = inputs.to(device, non_blocking=True).contiguous(memory_format=layout)
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            output = net(inputs, iterations=iterations)
            extra = {} if detector_loss is None else detector_loss(output, targets)
            if teacher is not None:
                with torch.no_grad():
                    taught = teacher(inputs).float()
                extra["teacher"] = _pixel_loss(output.float() - taught, cfg.loss)
        pixel = _pixel_loss(output.float() - targets, cfg.loss)
        loss = pixel
        if "teacher" in extra:
            loss = loss + cfg.teacher_weight * extra["teacher"]
        if "feature" in extra:
            loss = loss + cfg.detector_loss_weight * extra["feature"]
            if "distill" in extra:
                loss = loss + cfg.distill_weight * extra["distill"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        seen += cfg.batch * ranks.world
        losses.append({"loss": loss.detach(), **({"pixel": pixel.detach()} if extra else {}),
                       **{k: v.detach() for k, v in extra.items()}})
        bar.update()
        if step % cfg.log_every == 0:
            bar.set_postfix(loss=f"{log(step, losses):.5f}")
            losses.clear()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            wall += time.monotonic() - start
            start = time.monotonic()
            save_checkpoint()
        if ranks.main and (step % cfg.val_every == 0 or step == cfg.steps):
            for row in validator(model, device, layout == torch.channels_last):
                _append_csv(out / "val.csv", {"step": step, **row,
                                              "wall_s": round(wall + time.monotonic() - start, 1)})
                bar.write(f"step {step} val q{row['quality']}: PSNR {row['psnr']:.3f} "
                          f"PSNR-B {row['psnrb']:.3f} (JPEG {row['jpeg_psnr']:.3f})")
    bar.close()
    if losses:
        log(step, losses)
    wall += time.monotonic() - start
    save_checkpoint()
    weights = out / "model.safetensors"
    if ranks.main:
        snapshot(out, weights, overwrite=True)
    return weights


def snapshot(run: str | Path, path: str | Path, overwrite: bool = False) -> Path:
    """Write the run's latest checkpoint as safetensors weights, with its training info.

    Works while the run is going on (checkpoints are replaced atomically).
    """
    run = Path(run)
    ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = DCSC.from_config(DCSCConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    settings = json.loads((run / "config.json").read_text())["last_chunk"]
    info = {"step": ckpt["step"], "patches_seen": ckpt["seen"], "wall_s": round(ckpt["wall"], 1),
            "device": settings["device"] or "auto", "train": settings}
    return save_model(model, path, info=info, overwrite=overwrite)


def _data_text(settings: dict, channels: int) -> str:
    """The model card's data paragraph: folders and image counts, patches, JPEG, losses."""
    dirs = settings.get("data_dirs") or DEFAULT_DATA_DIRS
    counts = settings.get("data_counts") or {}
    mix = " + ".join(f"`{d}`" + (f" ({counts[d]} images)" if d in counts else "") for d in dirs)
    text = (f"{mix}, random {settings['patch']}-pixel patches whose corner is on the 16-pixel "
            "JPEG grid, flips and rotations; JPEG by Pillow at a quality drawn per patch from "
            f"{settings['qualities']} " + ("(grayscale JPEG of the MATLAB Y channel)."
                                            if channels == 1 else "(colour JPEG, 4:2:0)."))
    if settings.get("downscale", 1) > 1:
        text += (f" After JPEG half the pairs were shrunk (bilinear) by a factor drawn from 1 "
                 f"to {settings['downscale']}, the crop cut that much larger.")
    if settings.get("camera", 1) > 1:
        text += (f" Half the pairs were camera-size: the clean patch enlarged (bicubic) by a "
                 f"factor drawn from 1 to {settings['camera']}, JPEG-compressed there and both "
                 "shrunk back (bilinear).")
    if settings.get("init"):
        text += f" Started from `{settings['init']}`."
    if settings.get("detector_loss"):
        layers = settings.get("detector_layers") or "the Detect head's inputs"
        text += (f" Loss: {settings['loss']} on pixels + {settings['detector_loss_weight']} x "
                 f"detector-feature loss (frozen `{settings['detector_loss']}`, layers {layers}, "
                 "per-channel normalised)")
        if settings.get("distill_weight"):
            text += f" + {settings['distill_weight']} x class-score distillation"
        text += "."
    if settings.get("teacher"):
        text += (f" Plus {settings['teacher_weight']} x the {settings['loss']} to the output of "
                 f"the teacher `{settings['teacher']}` on the same JPEG patch.")
    return text


def _batch_text(settings: dict) -> str:
    """Patches per step: per process and in total when a chunk ran on several processes."""
    processes = settings.get("processes", 1)
    batch = settings["batch"]
    return str(batch) if processes == 1 else f"{batch} x {processes} = {batch * processes}"


def _lr_text(settings: dict) -> str:
    decay = settings.get("decay_to")
    return str(settings["lr"]) if decay is None else f"{settings['lr']} cosine to {decay}"


def _read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def model_card(run: str | Path, name: str) -> str:
    """A markdown model card from a run folder: config, data, chunks, steps, time, metrics,
    and the run's hand-written ``NOTES.md`` if it has one."""
    run = Path(run)
    ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    chunks = [json.loads(line) for line in (run / "chunks.jsonl").read_text().splitlines()]
    val = _read_csv(run / "val.csv")
    config = ckpt["model_config"]
    params = sum(v.numel() for v in ckpt["model"].values())
    lines = [f"# {name}", "", f"Trained by this repository's `dcsc-preproc train` "
             f"({params:,} parameters).", "", "## Configuration", "", "```json",
             json.dumps(config, indent=2), "```", "",
             "## Data", "", _data_text(chunks[-1]["settings"], config["in_channels"]), "",
             "## Training", "",
             f"- steps: {ckpt['step']:,}; patches seen: {ckpt['seen']:,}; "
             f"wall time: {ckpt['wall'] / 3600:.2f} h", "",
             "| from step | patch | batch | lr | unrolled R | loss | machine | started | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in chunks:
        s = c["settings"]
        lines.append(f"| {c['start_step']} | {s['patch']} | {_batch_text(s)} | {_lr_text(s)} | "
                     f"{s['train_iterations'] or config['iterations']} | {s['loss']} | "
                     f"{c['machine']} | {c['started']} | `{c['command']}` |")
    if any(c["settings"].get("processes", 1) > 1 for c in chunks):
        lines += ["", "Batch `B x N = T`: B patches on each of N processes (torchrun, "
                  "DistributedDataParallel), T per step in total. The learning rate is the "
                  "same on every process and applies to the total batch (gradients are "
                  "averaged over processes, not summed)."]
    last = {}
    for row in val:
        last[row["quality"]] = row
    lines += ["", "## Validation (first BSDS500-val images, Y channel, MATLAB convention)", "",
              "| step | quality | JPEG PSNR | PSNR | JPEG PSNR-B | PSNR-B |", "|---|---|---|---|---|---|"]
    for row in last.values():
        lines.append(f"| {row['step']} | {row['quality']} | {row['jpeg_psnr']} | {row['psnr']} | "
                     f"{row['jpeg_psnrb']} | {row['psnrb']} |")
    notes = run / "NOTES.md"  # what the run taught us, written by hand
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    lines += ["", "Full benchmark and detection numbers: docs/RESULTS.md.", ""]
    return "\n".join(lines)
