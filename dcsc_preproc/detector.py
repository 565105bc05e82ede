"""Load an Ultralytics detector from a path, offline.

The one place that turns a detector path into a ``YOLO`` model, for the detector-feature loss,
the demo and the pipelines: Ultralytics is kept offline (``YOLO_OFFLINE=1``,
``YOLO_AUTOINSTALL=0`` unless already set, before it is imported) and the weights must exist,
because a bare name like ``yolov8n.pt`` would make Ultralytics download it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ultralytics import YOLO


def load_detector(path: str | Path) -> "YOLO":
    """Ultralytics weights (``.pt`` file or exported model folder) at an existing ``path``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"detector weights not found: {path} (give an existing path: a "
                                "bare name like 'yolov8n.pt' would make Ultralytics download it)")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    from ultralytics import YOLO

    return YOLO(str(path))
