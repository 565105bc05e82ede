"""dcsc-preproc: JPEG artifact reduction (DCSC) in front of object detectors."""

from .baselines import get_deblocker
from .batch import deblock_folder
from .data import data_root, list_images, to_uint8_y
from .detector import load_detector
from .colour import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from .engine import Engine, array_to_tensor, tensor_to_array
from .frame_filter import FrameFilter
from .jpeg import encode_jpeg, jpeg_roundtrip, read_image
from .metrics import evaluate, psnr, psnrb, ssim
from .model import DCSC, DCSCConfig
from .quality import QualityEstimate, QualityGate, estimate_quality
from .transforms import Deblock
from .zoo import (DEFAULT_MODEL, MODELS, available_models, load_authors_npz, load_model,
                  model_name, save_model)

__all__ = [
    "DCSC", "DCSCConfig", "DEFAULT_MODEL", "Deblock", "Engine", "FrameFilter", "MODELS",
    "QualityEstimate", "QualityGate", "estimate_quality",
    "array_to_tensor", "available_models", "deblock_folder",
    "data_root", "encode_jpeg", "evaluate", "list_images", "load_detector", "get_deblocker", "jpeg_roundtrip", "load_authors_npz", "load_model", "model_name", "psnr",
    "psnrb", "read_image", "rgb_to_y", "rgb_to_ycbcr", "save_model", "ssim", "tensor_to_array", "to_uint8_y",
    "ycbcr_to_rgb",
]
