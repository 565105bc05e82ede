"""``dcsc-preproc`` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .model import DCSCConfig


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or resume a DCSC model (run it again to resume)")
    p.add_argument("--out", default="runs/dcsc-y", help="run folder (checkpoint, logs, weights)")
    p.add_argument("--data", help="folder holding bsds500/ (default: $DCSC_DATA or ../shared/data)")
    m = p.add_argument_group("model (fixed for a run)")
    m.add_argument("--channels", choices=("y", "rgb"), default="y")
    m.add_argument("--dilated-features", type=int, default=32)
    m.add_argument("--features", type=int, default=64)
    m.add_argument("--iterations", type=int, default=40, help="R at inference")
    m.add_argument("--no-dilation", action="store_true", help="ablation: dilations 1, 1, 1")
    m.add_argument("--unshuffle", type=int, default=1, help="run the network on NxN-unshuffled input")
    t = p.add_argument_group("training (may change between chunks)")
    t.add_argument("--qualities", type=int, nargs="+", default=[10, 20, 30])
    t.add_argument("--patch", type=int, default=80)
    t.add_argument("--batch", type=int, default=10)
    t.add_argument("--steps", type=int, default=100_000, help="stop at this total step")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--loss", choices=("mae", "mse"), default="mae")
    t.add_argument("--train-iterations", type=int, help="unrolled R while training (default: --iterations)")
    t.add_argument("--val-every", type=int, default=500)
    t.add_argument("--val-images", type=int, default=10)
    t.add_argument("--checkpoint-every", type=int, default=100)
    t.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this long")
    t.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    t.add_argument("--device")
    t.add_argument("--seed", type=int, default=0)


def _train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    model = DCSCConfig(in_channels=1 if args.channels == "y" else 3,
                       dilated_features=args.dilated_features, features=args.features,
                       iterations=args.iterations,
                       dilations=(1, 1, 1) if args.no_dilation else (1, 2, 4),
                       unshuffle=args.unshuffle)
    cfg = TrainConfig(out=args.out, data=args.data, model=model, qualities=tuple(args.qualities),
                      patch=args.patch, batch=args.batch, steps=args.steps, lr=args.lr,
                      loss=args.loss, train_iterations=args.train_iterations,
                      val_every=args.val_every, val_images=args.val_images,
                      checkpoint_every=args.checkpoint_every, max_minutes=args.max_minutes,
                      precision=args.precision, device=args.device, seed=args.seed)
    print(f"weights: {train(cfg)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dcsc-preproc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    args = parser.parse_args(argv)
    {"train": _train}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
