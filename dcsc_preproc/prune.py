"""Smaller DCSC networks cut from a trained one: the start of a distillation.

A trained network does not use its channels equally. :func:`prune` keeps, in each dilated
branch, the maps that carry the most signal into ``G``, and the sparse codes that carry the
most into ``S`` and the last convolution, measured on JPEG images; the smaller copy is then
fine-tuned (``dcsc-preproc train --init``), usually with the original as ``--teacher``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F

from .model import DCSC


@torch.no_grad()
def channel_importance(model: DCSC, images: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """How much each dilated map and each sparse code carries, over ``images``.

    Each image is a float ``(1, C, H, W)`` tensor in [0, 1]. A dilated map scores its RMS
    times the norm of its weights in ``G``; a code scores its mean over all LISTA iterations
    times the norm of its weights in ``S`` and the last convolution. Returns the scores of
    the ``dilated_features * len(dilations)`` maps (branch by branch) and of the ``features``
    codes.
    """
    if not images:
        raise ValueError("channel_importance needs at least one image")
    s = model.config.unshuffle
    maps = torch.zeros(model.G.in_channels)
    codes = torch.zeros(model.S.in_channels)
    for x in images:
        j = F.pixel_unshuffle(x, s) if s > 1 else x
        maps += torch.cat([conv(j) for conv in model.dilated], 1).square().mean((0, 2, 3))
        codes += torch.stack([u.mean((0, 2, 3)) for u in model(x, return_codes=True)[1]]).mean(0)
    n = len(images)
    into_g = model.G.weight.square().sum((0, 2, 3)).sqrt()
    out_of_codes = (model.S.weight.square().sum((0, 2, 3))
                    + model.recon.weight.square().sum((0, 2, 3))).sqrt()
    return (maps / n).sqrt() * into_g, codes / n * out_of_codes


@torch.no_grad()
def prune(model: DCSC, images: Sequence[torch.Tensor], dilated_features: int, features: int,
          iterations: int | None = None) -> DCSC:
    """A copy of ``model`` with the ``dilated_features`` most important maps of each dilated
    branch and the ``features`` most important codes (:func:`channel_importance` on
    ``images``), running ``iterations`` LISTA steps (default: ``model``'s).

    Channels whose outgoing weights are zero score zero, so cutting them changes nothing:

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = DCSC(in_channels=3, unshuffle=2, dilated_features=4, features=8, iterations=2)
        >>> with torch.no_grad():
        ...     _ = model.recon.weight[:, 5:].zero_(), model.S.weight[:, 5:].zero_()
        >>> images = [torch.rand(1, 3, 16, 16)]
        >>> small = prune(model, images, dilated_features=4, features=5)
        >>> small.config.features, bool(torch.allclose(small(images[0]), model(images[0]), atol=1e-6))
        (5, True)
    """
    cfg = model.config
    if not (0 < dilated_features <= cfg.dilated_features and 0 < features <= cfg.features):
        raise ValueError(f"prune keeps 1 to {cfg.dilated_features} dilated maps and 1 to "
                         f"{cfg.features} codes, got {dilated_features} and {features}")
    map_scores, code_scores = channel_importance(model, images)
    keep_maps = [branch.topk(dilated_features).indices.sort().values
                 for branch in map_scores.split(cfg.dilated_features)]
    keep_codes = code_scores.topk(features).indices.sort().values
    small = DCSC.from_config(replace(cfg, dilated_features=dilated_features, features=features,
                                     iterations=cfg.iterations if iterations is None else iterations))
    for big, little, keep in zip(model.dilated, small.dilated, keep_maps):
        little.weight.copy_(big.weight[keep])
        little.bias.copy_(big.bias[keep])
    g_inputs = torch.cat([keep + i * cfg.dilated_features for i, keep in enumerate(keep_maps)])
    small.G.weight.copy_(model.G.weight[keep_codes][:, g_inputs])
    small.S.weight.copy_(model.S.weight[keep_codes][:, keep_codes])
    if cfg.bias:
        small.G.bias.copy_(model.G.bias[keep_codes])
        small.S.bias.copy_(model.S.bias[keep_codes])
    small.recon.weight.copy_(model.recon.weight[:, keep_codes])
    small.recon.bias.copy_(model.recon.bias)
    return small.eval()

