"""Shared fixtures: where ../shared is (``$DCSC_SHARED`` overrides), small images, detectors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "False")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared() -> Path:
    """The project's read-only ``shared/`` folder (data, peers' weights, detectors)."""
    path = Path(os.environ.get("DCSC_SHARED", REPO.parent / "shared"))
    if not (path / "data").is_dir():
        pytest.fail(f"shared data not found at {path}; set DCSC_SHARED")
    return path


@pytest.fixture(scope="session")
def authors_npz(shared: Path) -> Path:
    return shared / "peers" / "dcsc_official" / "iccv2019_original" / "dcsc_iccv2019_original.npz"


@pytest.fixture(scope="session")
def detector(shared: Path) -> Path:
    return shared / "models" / "yolov8n_ovint8_dequant.pt"


@pytest.fixture
def rgb_image() -> np.ndarray:
    """A 70x90 RGB uint8 image with edges and texture (not a multiple of 8)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:70, 0:90]
    base = np.stack([(xx * 3) % 256, (yy * 4) % 256, ((xx + yy) * 2) % 256], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
