"""What exact resume needs, without pickle: RNG states, optimizer moments, GradScaler and counters."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ezclip_cli.errors import CheckpointError
from ezclip_cli.files import atomic_write
from ezclip_cli.train.devices import Distributed

STATE_FORMAT = "ezclip-train-state"


def capture_rng(device: str) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def restore_rng(state: dict[str, Any], device: str) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.startswith("cuda") and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], torch.device(device))


def save_train_state(
    path: Path,
    *,
    optimizer: Any,
    scaler: Any,
    param_names: list[str],
    rng: list[dict[str, Any]],
    counters: dict[str, Any],
) -> None:
    """Optimizer moments, GradScaler, per-rank RNG states and loop counters: tensors + JSON metadata, atomic."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for index, slots in optimizer.state_dict()["state"].items():
        for key, value in slots.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
    rng_json = []
    for rank, state in enumerate(rng):
        tensors[f"rng.{rank}.torch"] = state["torch"].cpu().contiguous()
        if "cuda" in state:
            tensors[f"rng.{rank}.cuda"] = state["cuda"].cpu().contiguous()
        version, internal, gauss = state["python"]
        kind, keys, pos, has_gauss, cached = state["numpy"]
        tensors[f"rng.{rank}.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
        rng_json.append(
            {"python": [version, list(internal), gauss], "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
        )
    metadata = {
        "format": STATE_FORMAT,
        "counters": json.dumps(counters),
        "param_names": json.dumps(param_names),
        "scaler": json.dumps(scaler.state_dict()),
        "rng": json.dumps(rng_json),
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_train_state(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safetensors handle)
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: corrupt training state ({exc})") from exc
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an ezclip training state")
    optim: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, slot = key.split(".", 2)
            optim.setdefault(int(index), {})[slot] = value
    rng = []
    for rank, entry in enumerate(json.loads(meta["rng"])):
        version, internal, gauss = entry["python"]
        kind, pos, has_gauss, cached = entry["numpy"]
        state = {
            "python": (version, tuple(internal), gauss),
            "numpy": (kind, tensors[f"rng.{rank}.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached),
            "torch": tensors[f"rng.{rank}.torch"],
        }
        if f"rng.{rank}.cuda" in tensors:
            state["cuda"] = tensors[f"rng.{rank}.cuda"]
        rng.append(state)
    return {
        "optimizer": optim,
        "scaler": json.loads(meta["scaler"]),
        "param_names": json.loads(meta["param_names"]),
        "counters": json.loads(meta["counters"]),
        "rng": rng,
    }


def gather_rng(device: str, ddp: Distributed) -> list[dict[str, Any]]:
    mine = capture_rng(device)
    if not ddp.enabled:
        return [mine]
    everyone: list[Any] = [None] * ddp.world_size
    dist.all_gather_object(everyone, mine)  # in memory between our own ranks; files stay pickle-free
    return everyone


def read_learned(checkpoint: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="pt", device="cpu") as f:
        return {k[len("learned.") :]: f.get_tensor(k) for k in f.keys() if k.startswith("learned.")}  # noqa: SIM118
