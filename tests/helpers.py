"""What the tests share: paths, the tiny random backbone, the in-process CLI runner, small file
writers and the report-schema check. Fixtures live in conftest.py; plain functions live here so
test files import them from one place instead of from each other."""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ezclip_cli.backbone import Backbone
    from ezclip_cli.model import EZClip

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "backbones" / "tiny-vit.json"
REPORT_SCHEMA_PATH = REPO / "docs" / "report_schema.json"
# open_clip's OpenAI normalisation, which the tiny backbone uses as well.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# The header of Kinetics' annotation CSVs (train.csv, validate.csv).
K_HEADER = ["label", "youtube_id", "time_start", "time_end", "split"]


# ---- models ------------------------------------------------------------------------------------
def make_backbone(seed: int = 0, config: Path = TINY_CONFIG) -> Backbone:
    """A tiny frozen open_clip backbone with random weights drawn from `seed`."""
    import torch

    from ezclip_cli.backbone import load_backbone

    torch.manual_seed(seed)
    return load_backbone(str(config), None, seed=seed)


def trained_like(model: EZClip) -> None:
    """Give every learned parameter a non-trivial value, as training would."""
    import torch

    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for _, p in model.learned_named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)


# ---- the command line, in this process ---------------------------------------------------------
@dataclass(frozen=True)
class CliResult:
    """What `ezclip ARGS` did: its exit code and what it wrote to stdout and stderr."""

    code: int
    out: str
    err: str


def run_cli(*args: str, capsys: pytest.CaptureFixture[str], stdin: str | None = None) -> CliResult:
    """`ezclip ARGS` in this process, as a shell would see it (known errors -> one line and an exit code).

    `stdin` is what the command reads from standard input. The logging set-up the CLI makes
    (a handler on capsys's stderr) is undone afterwards, so runs do not leak into each other.
    """
    from ezclip_cli.cli import main

    package = logging.getLogger("ezclip_cli")
    saved = (package.handlers[:], package.level, package.propagate)
    argv, real_stdin = sys.argv, sys.stdin
    sys.argv = ["ezclip", *args]
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv, sys.stdin = argv, real_stdin
        package.handlers[:], package.level, package.propagate = saved
    captured = capsys.readouterr()
    return CliResult(int(code), captured.out, captured.err)


def run_main(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`ezclip ARGS` in this process: the exit code and stderr (see `run_cli` for stdout too)."""
    result = run_cli(*args, capsys=capsys)
    return result.code, result.err


# ---- files -------------------------------------------------------------------------------------
def put(path: Path, content: bytes | str) -> Path:
    """Write `content` to `path` (parents created; text as UTF-8, line endings untouched)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def touch(path: Path) -> Path:
    """An empty file at `path` (parents created)."""
    return put(path, b"")


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


# ---- eval reports ------------------------------------------------------------------------------
@functools.cache
def _report_validator() -> Any:
    import jsonschema

    schema = json.loads(REPORT_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)  # a broken schema would accept anything
    # A report is strict JSON: NaN and infinity are not numbers there (report.json is written with allow_nan=False).
    numbers = validator.TYPE_CHECKER.redefine(
        "number", lambda checker, v: validator.TYPE_CHECKER.is_type(v, "number") and math.isfinite(v)
    )
    return jsonschema.validators.extend(validator, type_checker=numbers)(schema)


def report_errors(report: Any) -> list[str]:
    """Where `report` breaks docs/report_schema.json (checked by jsonschema), one line each; [] if valid."""
    return [
        f"{e.json_path}: {e.message}"
        for e in sorted(_report_validator().iter_errors(report), key=lambda e: list(map(str, e.absolute_path)))
    ]
