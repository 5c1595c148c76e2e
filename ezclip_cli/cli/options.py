"""What the `ezclip` commands share: choice enums, option definitions, logging, progress displays, `fail`.

Imported by every command module (cli_tag, cli_embed, cli_train, cli_eval, cli_models) and by cli.py, which closes the
progress displays when a command ends; it imports nothing heavy, so `--help` stays instant.
"""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from ezclip_cli.model.spec import ModelSpec

log = logging.getLogger("ezclip_cli")


class OutputFormat(str, Enum):
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"


class Decoder(str, Enum):
    auto = "auto"
    decord = "decord"
    pyav = "pyav"
    torchcodec = "torchcodec"


class Seek(str, Enum):
    exact = "exact"
    keyframe = "keyframe"


SeekOpt = typer.Option(
    Seek.exact,
    "--seek",
    help="exact: the frame at each segment's centre (as eval); keyframe: the nearest keyframe instead, "
    "decoding at most T frames a clip (several times faster on long-GOP video; rows say which times were used).",
)


def workers_value(value: str) -> int | str:
    """`--workers`: auto, or a whole number of decoding processes (0 = in-process)."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit():
        return int(text)
    raise typer.BadParameter(f"{value!r} is not auto or a whole number (0 = decode in this process)")


# The decoding options tag and embed share (one definition, one help text).
BatchSizeOpt = typer.Option(8, "--batch-size", "-b", min=1, help="Videos per model forward.")
WorkersOpt = typer.Option(
    "auto",
    "--workers",
    "-j",
    metavar="N",
    help="Decoding processes: auto (none for a few videos, else the cores but one, at most 8), "
    "0 = in-process, or N (at most the core count).",
    callback=workers_value,
)
TagDecoderOpt = typer.Option(
    Decoder.auto,
    "--decoder",
    help="auto = PyAV (the same pixels for every runtime); decord if asked, PyAV its fallback.",
)


class Runtime(str, Enum):
    torch = "torch"
    onnx = "onnx"


class ScoreKind(str, Enum):
    softmax = "softmax"
    cosine = "cosine"


class EvalProtocol(str, Enum):
    zero_shot = "zero-shot"
    base_to_novel = "base-to-novel"
    few_shot = "few-shot"
    closed_set = "closed-set"


# ---- shared options -------------------------------------------------------------------------
CheckpointOpt = typer.Option(
    None,
    "--checkpoint",
    "-c",
    help="A model name from `ezclip models` (downloaded once), an ezclip checkpoint (.ezclip) or a reference "
    "EZ-CLIP .pt (auto-detected); 'none' = plain CLIP. Default (no --model either): ezclip-b16-k400.",
)
ModelOpt = typer.Option(
    None,
    "--model",
    "-m",
    help="open_clip model name (default ViT-B-16-quickgelu), a model-config JSON path, or a local model directory. "
    "Without --checkpoint the model is plain CLIP frame averaging (no trained EZ-CLIP parts).",
)
PretrainedOpt = typer.Option(
    None,
    "--pretrained",
    help="open_clip weights tag (default openai, from open_clip's cache), a local weights file, "
    "or 'none' for random weights.",
)


class ListFormat(str, Enum):
    """How `info` and `models` print: a table for people, JSON for scripts."""

    table = "table"
    json = "json"


NumFramesOpt = typer.Option(8, "--num-frames", min=1, help="Frames sampled per video (T).")
DeviceOpt = typer.Option("auto", "--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="Only errors on stderr; no progress bar or progress lines.")
ProgressIntervalOpt = typer.Option(
    None,
    "--progress-interval",
    min=0.0,
    envvar="EZCLIP_PROGRESS_INTERVAL",
    show_envvar=True,
    help="When stderr is not a terminal (job logs, CI, 2>log): seconds between progress lines (default 30).",
)


def setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ezclip: %(message)s"))
    root = logging.getLogger("ezclip_cli")
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else logging.INFO)
    root.propagate = False


def make_progress(what: str, unit: str, quiet: bool, interval: float | None, failures: bool = True) -> Any:
    """The progress display for one command (None with --quiet): a bar on a terminal, else timed lines.

    `main()` closes it (bar stopped, last line written) when the command ends, however it ends.
    """
    from ezclip_cli.progress import Progress, set_interval

    set_interval(interval)  # also for the displays the library opens itself (prompt encoding)
    if quiet:
        return None

    progress = Progress(what, unit, interval=interval, failures=failures)
    _open_displays.append(progress)
    return progress


_open_displays: list[Any] = []  # progress displays of the running command, closed by main()


def close_displays() -> None:
    """Stop every progress display the command opened (before an error line is printed)."""
    while _open_displays:
        _open_displays.pop().close()


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"ezclip: error: {message}", err=True)
    raise typer.Exit(code)


def format_from_suffix(output: Path | None) -> str:
    """The output format a file name implies (csv, json, jsonl, parquet); csv for stdout or another suffix."""
    if output is not None and output.suffix.lower().lstrip(".") in {"csv", "json", "jsonl", "parquet"}:
        return output.suffix.lower().lstrip(".")
    return "csv"


def given_model(
    checkpoint: Path | None, model: str | None, pretrained: str | None, num_frames: int | None
) -> ModelSpec | None:
    """The ModelSpec of the model flags, or None when none was given (a store's own model, or the default)."""
    if checkpoint is None and model is None and pretrained is None:
        return None
    from ezclip_cli.model.spec import resolve_model

    return resolve_model(checkpoint, model, pretrained, num_frames or 8)


def command_values(ctx: typer.Context, **overrides: Any) -> dict[str, Any]:
    """The command's parameters (`ctx.params`) as plain values (enums by value, paths as text), `overrides` winning.

    Commands build their configs from this rather than restating every flag: a config field and the option
    that sets it share a name.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {**{name: plain(value) for name, value in ctx.params.items()}, **overrides}


def config_from(ctx: typer.Context, config_type: Any, **overrides: Any) -> Any:
    """`config_type` (a dataclass) from the command's parameters of the same names, `overrides` winning."""
    from dataclasses import fields

    values = command_values(ctx, **overrides)
    return config_type(**{f.name: values[f.name] for f in fields(config_type) if f.name in values})
