"""What every config shares: built from a dict that may hold only known keys, read from YAML."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from ezclip_cli.errors import UsageError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")


def from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
    """Build a dataclass from a dict, refusing unknown keys with the list of known ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"unknown {cls.__name__} key(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**data)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping; a bad file is a usage error with its path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    try:
        data = yaml.safe_load(text) if path.suffix != ".json" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: not valid YAML: {first}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of option: value")
    return data


def dump_yaml(data: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
