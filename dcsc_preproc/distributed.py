"""Multi-process training under ``torchrun``: the process group, ranks and per-rank randomness.

    torchrun --nproc_per_node=N -m dcsc_preproc train --out runs/x ...

torchrun starts N copies of the same command and tells each its ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` (plus the rendezvous address) in the environment. :func:`process_group` joins
them (NCCL on GPUs, one GPU per local rank; gloo on CPU); a plain ``python -m dcsc_preproc``
run is the one-process case of the same code, with no process group.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: its rank, the number of processes, its rank on the node."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs, validation and model cards."""
        return self.rank == 0


@contextmanager
def process_group(device: str | None = None) -> Iterator[tuple[Ranks, torch.device]]:
    """Join torchrun's processes (if started by torchrun); yields the ranks and the device.

    ``device`` defaults to CUDA when available; under torchrun a CUDA device becomes
    ``cuda:LOCAL_RANK``. The group is left again however the block ends; on a normal end,
    after all processes got there.
    """
    ranks = Ranks(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                  int(os.environ.get("LOCAL_RANK", 0)))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if ranks.world == 1:
        yield ranks, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            device_id=device if device.type == "cuda" else None)
    try:
        yield ranks, device
        dist.barrier()  # the others wait until rank 0 has written the run's last files
    finally:
        dist.destroy_process_group()


def patch_rng(seed: int, rank: int, step: int) -> np.random.Generator:
    """The generator of one rank's patches at one step: a function of (seed, rank, step) only.

    No generator state has to be saved, so a run resumes exactly with any number of
    processes: step s on rank r draws the same patches however the run was split into chunks
    and however many processes ran the earlier ones (one process is rank 0 alone).

    Example:
        >>> a, b = patch_rng(0, 0, 5).random(), patch_rng(0, 1, 5).random()
        >>> a == patch_rng(0, 0, 5).random() and a != b
        True
    """
    return np.random.default_rng((seed, rank, step))


def mean_over_ranks(values: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The mean of ``values`` over all processes (``values`` itself for one process)."""
    if ranks.world == 1:
        return values
    total = values.clone()
    dist.all_reduce(total)  # SUM: gloo has no AVG
    return total / ranks.world


def any_rank(flag: bool, ranks: Ranks, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any (all stop at the same step)."""
    if ranks.world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
