"""The exported bundle on disk: its file names, config.json, and its fingerprint.

Shared by the writer (export/bundle.py), the torch-free runtime (export/runtime.py) and model
loading; imports nothing heavy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ezclip_cli.errors import CheckpointError

BUNDLE_FORMAT = "ezclip-bundle"
BUNDLE_VERSION = 2  # 2: the text tokenizer is tokenizer.json (1 shipped CLIP's BPE vocabulary; still read)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VIDEO_ONNX = "video_encoder.onnx"
TEXT_ONNX = "text_encoder.onnx"
LABELS_FILE = "labels.txt"
TEXT_EMBEDDINGS_FILE = "text_embeddings.safetensors"
TOKENIZER_FILE = "tokenizer.json"

_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "model_id": (str,),
    "num_frames": (int,),
    "image_size": (int,),
    "mean": (list,),
    "std": (list,),
    "logit_scale": (int, float),
    "files": (dict,),
}


def is_bundle(path: str | Path) -> bool:
    """A folder with an ezclip config.json (cheap; no torch)."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def bundle_fingerprint(path: str | Path) -> str:
    """Id of everything in a bundle that computes a result: every file (ONNX graphs, weights,
    config, label embeddings, tokenizer), by name and content. Tagging's resume key for bundles."""
    import hashlib

    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _check_bundle_fields(path: Path, config: dict[str, Any]) -> None:
    """One line naming the first bad field, instead of a KeyError or TypeError deep inside."""
    for key, types in _CONFIG_TYPES.items():
        value = config.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            raise CheckpointError(f"{path}/{CONFIG_FILE}: field '{key}' is missing or not a {types[0].__name__}")
    if not 1 <= config["num_frames"] <= 1024 or not 1 <= config["image_size"] <= 4096:
        raise CheckpointError(f"{path}/{CONFIG_FILE}: num_frames or image_size out of range")
    for key in ("mean", "std"):
        values = config[key]
        if len(values) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise CheckpointError(f"{path}/{CONFIG_FILE}: field '{key}' must be three numbers")
    if not all(isinstance(v, str) and "/" not in v and v not in ("", ".", "..") for v in config["files"].values()):
        raise CheckpointError(f"{path}/{CONFIG_FILE}: field 'files' must name files inside the bundle")
    if config.get("labels") is not None and not (
        isinstance(config["labels"], dict) and isinstance(config["labels"].get("names"), list)
    ):
        raise CheckpointError(f"{path}/{CONFIG_FILE}: field 'labels' must hold a 'names' list")


def read_bundle_config(path: str | Path) -> dict[str, Any]:
    """config.json of a bundle, checked for format, version and the types of the fields loaders use."""
    path = Path(path)
    if path.is_file():
        raise CheckpointError(f"{path} is a file, not an exported bundle folder (make one with `ezclip export`)")
    if not path.is_dir():
        raise CheckpointError(f"bundle not found: {path}")
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except OSError:
        raise CheckpointError(f"{path}: not an ezclip bundle (no {CONFIG_FILE})") from None
    except ValueError:
        raise CheckpointError(f"{path}/{CONFIG_FILE}: corrupt (not JSON)") from None
    if not isinstance(config, dict) or config.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"{path}: {CONFIG_FILE} is not an ezclip bundle config")
    version = config.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}/{CONFIG_FILE}: field 'format_version' is not a whole number")
    if version > BUNDLE_VERSION:
        raise CheckpointError(
            f"{path}: bundle format {version} is newer than this ezclip understands ({BUNDLE_VERSION}); upgrade ezclip"
        )
    _check_bundle_fields(path, config)
    return config
