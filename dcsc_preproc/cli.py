"""``dcsc-preproc`` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .data import DEFAULT_DATA_DIRS
from .model import INITS, DCSCConfig
from .zoo import DEFAULT_MODEL, MODELS


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or resume a DCSC model (run it again to resume)")
    p.add_argument("--out", default="runs/dcsc-y", help="run folder (checkpoint, logs, weights)")
    p.add_argument("--data", help="folder holding bsds500/ (default: $DCSC_DATA or ../shared/data)")
    p.add_argument("--data-dirs", nargs="+", default=list(DEFAULT_DATA_DIRS), metavar="DIR",
                   help="training image folders under --data (or absolute), mixed by image "
                        "count, e.g. bsds500/train bsds500/test coco_train/images")
    p.add_argument("--init", help="weights to start from if the run has no checkpoint (fine-tune)")
    p.add_argument("--weight-init", choices=INITS, default="torch",
                   help="a fresh run's initial weights: PyTorch's default or TensorFlow's Glorot")
    m = p.add_argument_group("model (fixed for a run)")
    m.add_argument("--config", choices=sorted(MODELS),
                   help="a shipped model's configuration (replaces the flags below)")
    m.add_argument("--channels", choices=("y", "rgb"), default="y")
    m.add_argument("--dilated-features", type=int, default=32)
    m.add_argument("--features", type=int, default=64)
    m.add_argument("--iterations", type=int, default=40, help="R at inference")
    m.add_argument("--no-dilation", action="store_true", help="ablation: dilations 1, 1, 1")
    m.add_argument("--no-bias", action="store_true",
                   help="G and S without biases, as in the DCSC authors' network")
    m.add_argument("--unshuffle", type=int, default=1, help="run the network on NxN-unshuffled input")
    t = p.add_argument_group("training (may change between chunks)")
    t.add_argument("--qualities", type=int, nargs="+", default=[10, 20, 30])
    t.add_argument("--patch", type=int, default=80)
    t.add_argument("--downscale", type=float, default=1.0, metavar="MAX",
                   help="shrink each JPEG/clean pair by a factor drawn from 1 to MAX (bilinear, "
                        "as Ultralytics letterboxes): for de-blocking at the detector's size")
    t.add_argument("--camera", type=float, default=1.0, metavar="MAX",
                   help="instead, half the pairs as camera frames: enlarged by a factor drawn "
                        "from 1 to MAX (bicubic), JPEG there, shrunk back (bilinear)")
    t.add_argument("--batch", type=int, default=10)
    t.add_argument("--steps", type=int, default=100_000, help="stop at this total step")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--decay-to", type=float,
                   help="cosine-decay the learning rate over this chunk, down to this at --steps")
    t.add_argument("--loss", choices=("mae", "mse"), default="mae")
    t.add_argument("--detector-loss", metavar="PATH",
                   help="frozen Ultralytics detector (.pt path): add its feature distance "
                        "between restored and clean patches to the loss (patch >= 160, /32)")
    t.add_argument("--detector-loss-weight", type=float, default=1.0)
    t.add_argument("--detector-layers", type=int, nargs="+",
                   help="detector layer indices to compare (default: the Detect head's inputs)")
    t.add_argument("--distill-weight", type=float, default=0.0,
                   help="add the detector's class-score distillation with this weight")
    t.add_argument("--teacher", metavar="MODEL",
                   help="a trained de-blocker (name or weights) whose output is a second "
                        "pixel target: distil a larger network into this one")
    t.add_argument("--teacher-weight", type=float, default=1.0)
    t.add_argument("--train-iterations", type=int, help="unrolled R while training (default: --iterations)")
    t.add_argument("--train-images", type=int, help="use only the first N training images (smoke runs)")
    t.add_argument("--val-every", type=int, default=500)
    t.add_argument("--val-images", type=int, default=10)
    t.add_argument("--checkpoint-every", type=int, default=100)
    t.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this long")
    t.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    t.add_argument("--device")
    t.add_argument("--seed", type=int, default=0)


def _train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    model = MODELS[args.config] if args.config else DCSCConfig(
        in_channels=1 if args.channels == "y" else 3, dilated_features=args.dilated_features,
        features=args.features, iterations=args.iterations,
        dilations=(1, 1, 1) if args.no_dilation else (1, 2, 4), bias=not args.no_bias,
        unshuffle=args.unshuffle)
    cfg = TrainConfig(out=args.out, data=args.data, data_dirs=tuple(args.data_dirs),
                      init=args.init, weight_init=args.weight_init, detector_loss=args.detector_loss,
                      detector_loss_weight=args.detector_loss_weight,
                      detector_layers=tuple(args.detector_layers) if args.detector_layers else None,
                      distill_weight=args.distill_weight, teacher=args.teacher,
                      teacher_weight=args.teacher_weight, model=model, qualities=tuple(args.qualities),
                      patch=args.patch, downscale=args.downscale, camera=args.camera, batch=args.batch, steps=args.steps, lr=args.lr, decay_to=args.decay_to,
                      loss=args.loss, train_iterations=args.train_iterations,
                      train_images=args.train_images, val_every=args.val_every, val_images=args.val_images,
                      checkpoint_every=args.checkpoint_every, max_minutes=args.max_minutes,
                      precision=args.precision, device=args.device, seed=args.seed)
    print(f"weights: {train(cfg, command=shlex.join(['dcsc-preproc', *args.argv]))}")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="compress a photo, de-block it, write before/after images")
    p.add_argument("--image", help="photo to use (default: Ultralytics' bus.jpg)")
    p.add_argument("--quality", type=int, default=10)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("--device")
    p.add_argument("--detector", help="Ultralytics detector weights (a path): also detect on the "
                                      "JPEG and the de-blocked image, write detections.png")


def _demo(args: argparse.Namespace) -> None:
    from .demo import DETECTION_CONF, run_demo

    scores = run_demo(args.image, args.quality, args.model, args.out, args.device, args.detector)
    for name, s in scores.items():
        found = (f"  {s['detections']} detections above {DETECTION_CONF}"
                 if "detections" in s else "")
        print(f"{name:9s} Y PSNR {s['psnr']:.2f} dB  PSNR-B {s['psnrb']:.2f} dB{found}")
    print(f"wrote {args.out}/jpeg_q{args.quality}.jpg, restored.png, comparison.png"
          + (", detections.png" if args.detector else ""))


def _add_deblock(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deblock", help="de-block image files into a folder")
    p.add_argument("images", nargs="+", help="image files or folders (never written to)")
    p.add_argument("--out", required=True, help="output folder (PNG files, same names)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--device")
    p.add_argument("--gate", default="auto",
                   help="'auto' (default), a JPEG quality, or 'none': images estimated above it "
                        "are written unchanged (lossless PNG of the decoded pixels)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _deblock(args: argparse.Namespace) -> None:
    """De-block each readable image into ``--out``; unreadable files are named and skipped,
    and one that was named on the command line makes the run exit non-zero."""
    from PIL import Image
    from tqdm import tqdm

    from .quality import WIDE_MODES, QualityGate
    from .transforms import PIL_MODES, Deblock

    named = [Path(p) for p in args.images if not Path(p).is_dir()]
    files = named + [f for p in args.images if Path(p).is_dir()
                     for f in sorted(Path(p).iterdir()) if f.is_file()]
    out = Path(args.out)
    targets = [out / (f.stem + ".png") for f in files]
    inputs = {f.resolve() for f in files}
    if clash := [str(t) for t in targets if t.resolve() in inputs]:
        raise SystemExit(f"refusing to write {clash[0]} over an input; choose another --out")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise SystemExit(f"refusing to overwrite {existing[0]} (and {len(existing) - 1} more); "
                         "pass --overwrite")
    try:
        gate = QualityGate(args.gate)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    out.mkdir(parents=True, exist_ok=True)
    deblock = Deblock(args.model, device=args.device, gate=gate)
    failed = []
    for src, dst in tqdm(list(zip(files, targets)), desc="deblock", unit="image"):
        try:
            opened = Image.open(src)
            opened.load()
        except Exception as err:  # Pillow raises several types; Ultralytics patches Image.open
            failed.append(src)
            tqdm.write(f"skipping {src}: cannot read it as an image ({err})", file=sys.stderr)
            continue
        with opened:  # palette, CMYK, 1-bit images become RGB(A); the rest as they are
            image = opened if opened.mode in PIL_MODES + WIDE_MODES else opened.convert(
                "RGBA" if "transparency" in opened.info or opened.mode == "PA" else "RGB")
            deblock(image).save(dst)
    print(f"{gate.restored} de-blocked, {gate.passed} passed through unchanged (gate "
          f"{gate.threshold}), {len(failed)} unreadable; written to {out}", file=sys.stderr)
    if failed_named := [f for f in failed if f in named]:
        raise SystemExit(f"cannot read {failed_named[0]}"
                         + (f" (and {len(failed_named) - 1} more)" if len(failed_named) > 1 else ""))


def _add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="de-block an image folder (recursing) on Ray Data, "
                                     "embedded or on a Ray cluster")
    p.add_argument("--source", required=True, help="image folder (never written to)")
    p.add_argument("--output", required=True,
                   help="folder for the PNGs (same relative paths) and manifest.jsonl")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--workers", type=int, help="actors (default: one per GPU share, else all "
                                               "CPUs but one, left to Ray's readers)")
    p.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs (threads) per actor")
    p.add_argument("--gpus-per-worker", type=float, default=0,
                   help="GPUs per actor (e.g. 0.5: two actors per GPU); 0: CPU actors")
    p.add_argument("--batch-size", type=int, default=4, help="images per actor call")
    p.add_argument("--gate", default="auto",
                   help="'auto' (default), a JPEG quality, or 'none': images estimated above it "
                        "(from a JPEG's tables, else its pixels) are written as decoded")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else start "
                                     "Ray embedded on this machine)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")
    p.add_argument("--manifest", help="manifest file (default: OUTPUT/manifest.jsonl)")
    p.add_argument("--overwrite", action="store_true",
                   help="re-do images whose output exists (default: skip them, so runs resume)")


def _batch(args: argparse.Namespace) -> None:
    from .batch import connect, deblock_folder

    try:
        connect(args.address, args.num_cpus)
        counts = deblock_folder(args.source, args.output, args.model, workers=args.workers,
                                cpus_per_worker=args.cpus_per_worker,
                                gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size,
                                gate=args.gate, overwrite=args.overwrite, manifest=args.manifest)
    except (ImportError, FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from err
    print(f"{counts['ok']} ok ({counts['passed']} of them passed through by the gate), "
          f"{counts['skipped']} skipped, {counts['failed']} failed; manifest in "
          f"{args.manifest or Path(args.output) / 'manifest.jsonl'}")
    if counts["failed"]:
        raise SystemExit(f"{counts['failed']} images failed; see the manifest")


def _add_snapshot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("snapshot", help="write a run's latest checkpoint as .safetensors weights")
    p.add_argument("run", help="run folder (holds checkpoint.pt)")
    p.add_argument("out", help="weights file to write")
    p.add_argument("--overwrite", action="store_true")


def _snapshot(args: argparse.Namespace) -> None:
    from .train import snapshot

    print(f"weights: {snapshot(args.run, args.out, args.overwrite)}")


def _add_prune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="cut a smaller network from a trained one (its most used "
                                     "channels on JPEG patches of the training folders)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="shipped name or weights file")
    p.add_argument("--out", required=True, help="weights file to write (train it with --init)")
    p.add_argument("--dilated-features", type=int, required=True, help="maps kept per branch")
    p.add_argument("--features", type=int, required=True, help="sparse codes kept")
    p.add_argument("--iterations", type=int, help="LISTA iterations (default: the model's)")
    p.add_argument("--patches", type=int, default=64,
                   help="128-pixel JPEG patches (q10-30) of coco_train and BSDS500 train")
    p.add_argument("--data", help="data root (default: $DCSC_DATA or ../shared/data)")
    p.add_argument("--overwrite", action="store_true")


def _prune(args: argparse.Namespace) -> None:
    from .data import CALIBRATION_DIRS, calibration_patches, data_root, to_uint8_y
    from .engine import array_to_tensor
    from .prune import prune
    from .zoo import load_model, save_model

    model = load_model(args.model).eval()
    rgb = model.config.in_channels == 3
    try:
        patches = calibration_patches(data_root(args.data), args.patches)
        images = [array_to_tensor(p if rgb else to_uint8_y(p, model.config.colour))
                  for p in patches]
        small = prune(model, images, args.dilated_features, args.features, args.iterations)
        info = {"pruned_from": str(args.model), "patches": len(images),
                "folders": list(CALIBRATION_DIRS)}
        print(f"weights: {save_model(small, args.out, info=info, overwrite=args.overwrite)}")
    except FileExistsError as err:
        raise SystemExit(f"refusing to overwrite {args.out}; pass --overwrite") from err
    except ValueError as err:
        raise SystemExit(str(err)) from err


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a model as ONNX or as an OpenVINO folder "
                                      "(dynamic batch, height, width; optionally INT8)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="shipped name or weights file; @R unrolls R LISTA iterations")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--onnx", help="ONNX file to write")
    target.add_argument("--openvino", metavar="DIR",
                        help="OpenVINO export folder to write (run it with Engine(DIR))")
    p.add_argument("--int8", action="store_true",
                   help="--openvino only: NNCF INT8, calibrated on coco_train and BSDS500 train")
    p.add_argument("--data", help="calibration data root (default: $DCSC_DATA or ../shared/data)")
    p.add_argument("--overwrite", action="store_true")


def _export(args: argparse.Namespace) -> None:
    target = args.onnx or args.openvino
    if args.int8 and not args.openvino:
        raise SystemExit("--int8 needs --openvino DIR (INT8 models are OpenVINO folders)")
    try:
        if args.onnx:
            from .export import export_onnx

            print(f"onnx: {export_onnx(args.model, args.onnx, args.overwrite)}")
        else:
            from .backends.openvino import export_openvino

            path = export_openvino(args.model, args.openvino, args.int8, args.data,
                                   args.overwrite)
            print(f"openvino: {path}")
    except FileExistsError as err:
        raise SystemExit(f"refusing to overwrite {target}; pass --overwrite") from err


def _add_ship(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ship", help="install a run's weights and model card as a shipped model")
    p.add_argument("run", help="run folder")
    p.add_argument("name", help="shipped model name, e.g. dcsc-fast")
    p.add_argument("--overwrite", action="store_true", help="replace the shipped files")


def _ship(args: argparse.Namespace) -> None:
    from .train import model_card, snapshot
    from .zoo import WEIGHTS_DIR, load_model

    if args.name not in MODELS:
        raise SystemExit(f"unknown shipped model {args.name!r}; expected one of {sorted(MODELS)}")
    weights = snapshot(args.run, WEIGHTS_DIR / f"{args.name}.safetensors", args.overwrite)
    if load_model(weights).config != MODELS[args.name]:
        weights.unlink()
        raise SystemExit(f"{args.run} does not hold the {args.name} configuration")
    (WEIGHTS_DIR / f"{args.name}.md").write_text(model_card(args.run, args.name))
    print(f"shipped {weights} and its model card")


def _add_codes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codes", help="plot a model's sparse codes U_r and their share of zeros "
                                     "per LISTA iteration (the paper's Figures 3-4)")
    p.add_argument("image", help="image file: a JPEG is used as it is, any other file is "
                                 "JPEG-compressed at --quality")
    p.add_argument("--model", default=DEFAULT_MODEL, help="shipped name or weights file (.npz too)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--iterations", type=int, nargs="+", default=[1, 10, 20, 40],
                   help="the r whose U_r maps are shown (the model runs max of them)")
    p.add_argument("--quality", type=int,
                   help="JPEG quality (default: 10; a JPEG file is then not compressed again)")
    p.add_argument("--maps", type=int, default=4, help="feature maps shown (the most active)")
    p.add_argument("--crop", type=int, default=256,
                   help="central crop in pixels (0: whole image; all U_r are held in memory)")
    p.add_argument("--json", help="also write the share of zeros per iteration as JSON")
    p.add_argument("--device")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _codes(args: argparse.Namespace) -> None:
    import json

    from .codes import load_jpeg_input, plot_codes, sparse_codes

    outputs = [Path(p) for p in (args.out, args.json) if p]
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not args.overwrite:
        raise SystemExit(f"refusing to overwrite {existing[0]}; pass --overwrite")
    image, quality = load_jpeg_input(args.image, args.quality)
    codes = sparse_codes(args.model, image, args.iterations, args.maps, args.crop or None,
                         args.device)
    plot_codes(codes, args.out, overwrite=True)
    for r, z in enumerate(codes.zero_share):
        if r in codes.iterations:
            print(f"U_{r}: {100 * z:.1f}% zeros")
    if args.json:
        record = {"image": args.image, "jpeg_quality": quality, **codes.to_dict()}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dcsc-preproc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_deblock(sub)
    _add_batch(sub)
    _add_train(sub)
    _add_snapshot(sub)
    _add_ship(sub)
    _add_prune(sub)
    _add_export(sub)
    _add_codes(sub)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    {"demo": _demo, "deblock": _deblock, "batch": _batch, "train": _train,
     "snapshot": _snapshot, "ship": _ship, "prune": _prune, "export": _export,
     "codes": _codes}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
