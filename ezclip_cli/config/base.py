"""What every config shares: built from a dict that may hold only known keys, read from YAML."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from ezclip_cli.data.text_files import read_text_file
from ezclip_cli.errors import UsageError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")

# A config is option: value, where a value is at most a list (of lists); these bounds leave room.
CONFIG_MAX_BYTES = 4 * 2**20
CONFIG_MAX_DEPTH = 16
CONFIG_MAX_VALUES = 100_000


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
    text = read_text_file(path, "config", UsageError, CONFIG_MAX_BYTES)
    try:
        data = yaml.safe_load(text) if path.suffix != ".json" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: not valid YAML: {first}") from exc
    except RecursionError:  # both parsers recurse once per nesting level
        raise UsageError(f"{path}: nested too deeply to read; a config is a mapping of option: value") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of option: value")
    _check_shape(path, data)
    return data


def _check_shape(path: Path, data: dict[str, Any]) -> None:
    """Refuse a config nested deeper than CONFIG_MAX_DEPTH or holding more than CONFIG_MAX_VALUES values.

    What parsed can still break whatever walks it later (a copy, a dump, a comparison recurse
    per level), and YAML aliases can make a small file a huge tree; walked here without recursion,
    counting every value visited, so neither can run away.
    """
    pending: list[tuple[Any, int]] = [(data, 1)]
    seen = 0
    while pending:
        value, depth = pending.pop()
        seen += 1
        if depth > CONFIG_MAX_DEPTH:
            raise UsageError(
                f"{path}: nested more than {CONFIG_MAX_DEPTH} levels deep; a config is a mapping of option: value"
            )
        if seen > CONFIG_MAX_VALUES:
            raise UsageError(f"{path}: more than {CONFIG_MAX_VALUES:,} values (YAML aliases?); not a config")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        pending.extend((child, depth + 1) for child in children)


def dump_yaml(data: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
