"""Loading and saving DCSC weights: shipped names, our safetensors, the authors' TF ``.npz``.

Nothing here unpickles: safetensors stores the config as JSON metadata, ``.npz`` files are
read with ``allow_pickle=False``.

Any source may end in ``@R`` (``"dcsc-y@10"``, ``"model.safetensors@6"``) to run R LISTA
iterations instead of the trained count: S is shared across iterations, so any R works at
inference.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
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
    # dcsc-fast's network fine-tuned for the detector it serves (detector-feature loss, COCO
    # train2017 + BSDS500): the same cost per frame
    "dcsc-det": DCSCConfig(in_channels=3, unshuffle=4, dilated_features=24, features=48,
                           iterations=6),
    # a lighter network for 640x480 on 2 CPU cores (16/32 maps, R=4: 0.41x dcsc-det's FLOPs),
    # trained as dcsc-det was (pixels, then the detector's features): cheaper, recovers less
    "dcsc-lite": DCSCConfig(in_channels=3, unshuffle=4, dilated_features=16, features=32,
                            iterations=4),
}
#: What ``model=None`` means in the transform, frame filter and pipelines: the model that
#: wins back the most detection mAP per millisecond (docs/RESULTS.md sections 0 and 7).
DEFAULT_MODEL = "dcsc-det"
_CONFIG_KEY = "dcsc_config"


def available_models() -> list[str]:
    """Names accepted by :func:`load_model` whose weights are installed."""
    return [name for name in MODELS if (WEIGHTS_DIR / f"{name}.safetensors").is_file()]


def split_iterations(source: str | Path) -> tuple[str, int | None]:
    """Split a source into its weights part and the R of an ``@R`` suffix (``None``: none).

    A name that is an existing file is taken whole, so paths containing ``@`` still work.

    Example:
        >>> split_iterations("dcsc-y@10"), split_iterations("dcsc-y")
        (('dcsc-y', 10), ('dcsc-y', None))
        >>> split_iterations("dcsc-y@0")
        Traceback (most recent call last):
        ...
        ValueError: iterations suffix of 'dcsc-y@0' must be a positive integer, got '0'
    """
    text = str(source)
    if "@" not in text or Path(text).is_file():
        return text, None
    base, _, suffix = text.rpartition("@")
    if not re.fullmatch(r"[1-9][0-9]*", suffix):
        raise ValueError(f"iterations suffix of {text!r} must be a positive integer, "
                         f"got {suffix!r}")
    return base, int(suffix)


def model_name(source: str | Path) -> str:
    """The name benchmarks give a source: a shipped name as given, anything else (a weights
    file, a baseline name) by its file stem, with any ``@R`` suffix kept, so the same model
    gets the same name in every table and JSON record.

    Example:
        >>> model_name("dcsc-y@10"), model_name("peers/dcsc_iccv2019_original.npz@10")
        ('dcsc-y@10', 'dcsc_iccv2019_original@10')
    """
    base, iterations = split_iterations(source)
    name = base if base in MODELS else Path(base).stem
    return name if iterations is None else f"{name}@{iterations}"


def resolve_source(source: str | Path) -> tuple[Path, int | None]:
    """The weights file of a shipped name or path and the R of its ``@R`` suffix (``None``:
    none); raises if there is no such file."""
    base, iterations = split_iterations(source)
    if base in MODELS:
        path = WEIGHTS_DIR / f"{base}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"shipped model {base!r} is not installed ({path})")
        return path, iterations
    if not Path(base).is_file():
        raise ValueError(f"unknown weights {base!r}: not a file, and not one of {sorted(MODELS)}")
    return Path(base), iterations


def load_model(source: str | Path | DCSC, device: str | torch.device | None = None) -> DCSC:
    """Return a DCSC in eval mode from a shipped name, a ``.safetensors`` or an authors' ``.npz``.

    A source ending in ``@R`` gets ``config.iterations == R`` (the Engine runs R iterations).

    Example:
        >>> load_model("no-such-model")
        Traceback (most recent call last):
        ...
        ValueError: unknown weights 'no-such-model': not a file, and not one of ...
    """
    if isinstance(source, DCSC):
        return source.to(device).eval()
    path, iterations = resolve_source(source)
    if path.suffix == ".safetensors":
        model = _load_safetensors(path)
    elif path.suffix == ".npz":
        model = load_authors_npz(path)
    else:
        raise ValueError(f"unsupported weights file {path}: expected .safetensors or .npz")
    if iterations is not None:
        model.config = replace(model.config, iterations=iterations)
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
