"""Loading and saving DCSC weights: shipped names, our safetensors, the authors' TF ``.npz``.

Nothing here unpickles: safetensors stores the config as JSON metadata, ``.npz`` files are
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, safe_open, save_file

from .model import DCSC, DCSCConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Shipped models: name -> configuration. Files live in ``dcsc_preproc/weights/NAME.safetensors``
#: with a model card ``NAME.md`` beside them.
MODELS = {
    "dcsc-y": DCSCConfig(),  # the paper's network on the Y channel (MATLAB YCbCr)
    "dcsc-rgb": DCSCConfig(in_channels=3),  # the paper's network on RGB (its section 3.4)
    # fast variant for video and detection: LISTA on 4x4-unshuffled RGB
    "dcsc-fast": DCSCConfig(in_channels=3, unshuffle=4, dilated_features=24, features=48,
                            iterations=6),
}
#: What ``model=None`` means in the transform, frame filter and pipelines: the model that
#: wins back the most detection mAP per millisecond (see docs/RESULTS.md).
DEFAULT_MODEL = "dcsc-fast"
_CONFIG_KEY = "dcsc_config"


def available_models() -> list[str]:
    """Names accepted by :func:`load_model` whose weights are installed."""
    return [name for name in MODELS if (WEIGHTS_DIR / f"{name}.safetensors").is_file()]


def load_model(source: str | Path | DCSC, device: str | torch.device | None = None) -> DCSC:
    """Return a DCSC in eval mode from a shipped name, a ``.safetensors`` or an authors' ``.npz``.

    Example:
        >>> load_model("no-such-model")
        Traceback (most recent call last):
        ...
        ValueError: unknown weights 'no-such-model': not a file, and not one of ...
    """
    if isinstance(source, DCSC):
        model = source
    else:
        path = Path(source)
        if str(source) in MODELS:
            path = WEIGHTS_DIR / f"{source}.safetensors"
            if not path.is_file():
                raise FileNotFoundError(f"shipped model {source!r} is not installed ({path})")
        elif not path.is_file():
            raise ValueError(f"unknown weights {str(source)!r}: not a file, and not one of "
                             f"{sorted(MODELS)}")
        if path.suffix == ".safetensors":
            model = _load_safetensors(path)
        elif path.suffix == ".npz":
            model = load_authors_npz(path)
        else:
            raise ValueError(f"unsupported weights file {path}: expected .safetensors or .npz")
    return model.to(device).eval()


def _load_safetensors(path: Path) -> DCSC:
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if _CONFIG_KEY not in metadata:
        raise ValueError(f"{path} has no {_CONFIG_KEY!r} metadata: not saved by dcsc_preproc")
    model = DCSC.from_config(DCSCConfig.from_dict(json.loads(metadata[_CONFIG_KEY])))
    model.load_state_dict(load_file(str(path)))
    return model


def read_metadata(path: str | Path) -> dict:
    """The JSON metadata stored with a ``.safetensors`` file (config, training info)."""
    with safe_open(str(path), framework="pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}


def save_model(model: DCSC, path: str | Path, info: dict | None = None,
               overwrite: bool = False) -> Path:
    """Write weights and config (plus optional ``info``) to ``path`` as safetensors."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {_CONFIG_KEY: json.dumps(model.config.to_dict())}
    if info:
        metadata["info"] = json.dumps(info)
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)
    return path


def load_authors_npz(path: str | Path) -> DCSC:
    """Import the DCSC authors' TensorFlow variables (ICCV'19 or 2020 model) from ``.npz``.

    Their G and S convolutions have no bias; kernels are HWIO and become OIHW.
    """
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in npz.items()}
    try:
        dilated = arrays["X/X1/kernel"].shape[-1]
        features = arrays["G_X/G_X/kernel"].shape[-1]
        model = DCSC(in_channels=1, dilated_features=dilated, features=features, bias=False)
        state = {"recon.weight": arrays["recons/residual/kernel"],
                 "recon.bias": arrays["recons/residual/bias"],
                 "G.weight": arrays["G_X/G_X/kernel"],
                 "S.weight": arrays["optimization/S_U/kernel"]}
        for i, d in enumerate((1, 2, 4)):
            state[f"dilated.{i}.weight"] = arrays[f"X/X{d}/kernel"]
            state[f"dilated.{i}.bias"] = arrays[f"X/X{d}/bias"]
    except KeyError as err:
        raise ValueError(f"{path} is not a DCSC TensorFlow variable dump: missing {err}") from err
    state = {k: v.permute(3, 2, 0, 1) if v.dim() == 4 else v for k, v in state.items()}
    model.load_state_dict(state)
    return model
