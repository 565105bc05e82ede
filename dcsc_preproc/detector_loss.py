"""Detector-feature loss: train the de-blocker for the detector it serves.

A frozen Ultralytics detector sees the clean patch and the restored patch; the loss compares
the multi-scale feature maps that feed its Detect head (P3/P4/P5 for YOLOv8/YOLO11), each
channel divided by its spread on the clean batch so that no scale or channel dominates, and,
optionally, the head's class scores (output distillation). No labels are needed. Gradients
flow through the detector into the de-blocker; the detector never changes (eval mode, so
BatchNorm uses its running statistics, and ``requires_grad_(False)`` on every weight).
Idea after Ehrlich et al., "Analyzing and Mitigating JPEG Compression Defects in Deep
Learning" (2021), who trained the corrector against the downstream network's response.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .detector import load_detector

#: Stride of the coarsest Detect input (P5): patches must be multiples of it.
STRIDE = 32


def load_frozen_detector(path: str | Path) -> nn.Module:
    """The ``nn.Module`` of Ultralytics ``.pt`` weights at ``path``, in eval mode, with no
    gradients (an export folder has no differentiable PyTorch model)."""
    if Path(path).is_dir():
        raise ValueError(f"the detector loss needs PyTorch .pt weights, got the folder {path}")
    model = load_detector(path).model.float().eval()
    model.requires_grad_(False)
    return model


class DetectorFeatureLoss(nn.Module):
    """Normalised feature distance (and optional class-score distillation) under a detector.

    ``layers`` are indices into the detector's layer list (default: the Detect head's inputs).
    The feature term is the mean over layers of ``mean(((f(restored) - f(clean)) / s_c)**2)``
    with ``s_c`` the standard deviation of channel ``c`` of ``f(clean)`` over the batch and
    positions. The distillation term is the binary cross-entropy of the restored image's class
    scores against the clean image's, minus the clean scores' own entropy (zero when equal).
    Call it with RGB float batches in [0, 1] whose sides are multiples of :data:`STRIDE`; gray
    batches are repeated to three channels.

    Example (a tiny stand-in detector, layers named by index):
        >>> from torch import nn
        >>> class Toy(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.model = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 1)])
        ...     def forward(self, x):
        ...         for m in self.model: x = m(x)
        ...         return x
        >>> loss = DetectorFeatureLoss(Toy().eval().requires_grad_(False), layers=[0])
        >>> x = torch.rand(2, 3, 32, 32)
        >>> float(loss(x, x)["feature"])
        0.0
    """

    def __init__(self, detector: nn.Module, layers: list[int] | None = None,
                 distill: bool = False) -> None:
        super().__init__()
        self.detector = detector.eval().requires_grad_(False)
        head = detector.model[-1]
        self.layers = list(layers) if layers else list(getattr(head, "f", []))
        if not self.layers:
            raise ValueError("the detector has no Detect head inputs: give layers explicitly")
        if distill and not hasattr(head, "nc"):
            raise ValueError("distillation needs a detector with a Detect head (class scores)")
        self.distill = distill
        self._features: dict[int, torch.Tensor] = {}
        for i in self.layers:
            detector.model[i].register_forward_hook(self._keep(i))

    def _keep(self, index: int):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self._features[index] = output
        return hook

    def train(self, mode: bool = True) -> "DetectorFeatureLoss":
        """The detector stays in eval mode whatever the caller asks (frozen BatchNorm)."""
        super().train(mode)
        self.detector.eval()
        return self

    def _run(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if min(x.shape[-2:]) < STRIDE or x.shape[-1] % STRIDE or x.shape[-2] % STRIDE:
            raise ValueError(f"detector-loss patches must be multiples of {STRIDE} pixels, "
                             f"got {x.shape[-1]}x{x.shape[-2]}")
        self._features.clear()
        out = self.detector(x)
        features = [self._features[i].float() for i in self.layers]
        scores = None
        if self.distill:
            y = out[0] if isinstance(out, (tuple, list)) else out
            scores = y[:, 4:].float()  # (B, classes, anchors), after the sigmoid
        return features, scores

    def forward(self, restored: torch.Tensor, clean: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"feature": ..., "distill": ...}`` (distill only when enabled)."""
        with torch.no_grad():
            target, target_scores = self._run(clean)
        features, scores = self._run(restored)
        terms = []
        for f, t in zip(features, target):
            scale = t.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
            terms.append(((f - t) / scale).square().mean())
        losses = {"feature": torch.stack(terms).mean()}
        if self.distill:
            p = target_scores.clamp(1e-6, 1 - 1e-6)
            entropy = F.binary_cross_entropy(p, p)
            losses["distill"] = F.binary_cross_entropy(scores.clamp(1e-6, 1 - 1e-6), p) - entropy
        return losses
