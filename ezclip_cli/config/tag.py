"""TagConfig: how `ezclip tag` runs; it checks itself, so library callers get the CLI's messages."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ezclip_cli.errors import UsageError

# The choices of TagConfig's fields; the CLI's option types are made from these (cli/options.py).
OUTPUT_FORMATS = ("csv", "json", "jsonl", "parquet")
DECODERS = ("auto", "decord", "pyav", "torchcodec")
SEEKS = ("exact", "keyframe")
RUNTIMES = ("torch", "onnx")
SCORES = ("softmax", "cosine")


@dataclass(frozen=True)
class TagConfig:
    """How `ezclip tag` runs: label set, prompts, outputs, batching, sharding."""

    labels: str  # bundled name, file path or inline comma list
    templates: tuple[str, ...] = ()  # empty = the default EZ-CLIP templates
    use_descriptions: bool = True
    top_k: int = 5
    window: float | None = None  # seconds; None = one prediction per video
    stride: float | None = None  # seconds between window starts; None = window
    batch_size: int = 8
    workers: int | str = "auto"  # decoding processes; "auto" decides (tag/workers.py); 0 = in-process
    device: str = "auto"
    decoder: str = "auto"
    num_shards: int = 1
    shard_index: int = 0
    output_format: str = "csv"
    cache_dir: str | None = None
    runtime: str = "torch"  # or "onnx": an exported bundle run by onnxruntime
    score: str = "softmax"  # reported score: softmax over the label set, or raw cosine (scoring.py)
    threshold: float | None = None  # keep labels with probability >= threshold (multi-label, may abstain)
    min_score: float | None = None  # keep labels with cosine >= min_score
    segments: bool = False  # merge consecutive windows with the same top label (segments.py)
    scenes: str | None = None  # PySceneDetect list-scenes CSV (or a folder of them) instead of fixed windows
    raw_csv: bool = False  # CSV text fields as they are, no spreadsheet-formula neutralisation
    seek: str = "exact"  # frames at the segment centres, or "keyframe": the nearest keyframes (video/keyframe.py)

    def __post_init__(self) -> None:
        problem = tag_config_problem(self)
        if problem:
            raise UsageError(problem)


def tag_config_problem(config: TagConfig) -> str | None:
    """The first thing wrong with `config`, in the words of the flag a CLI user gave, or None."""
    from ezclip_cli.data.labels import template_problem

    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    choices = {
        "--format": (config.output_format, OUTPUT_FORMATS),
        "--decoder": (config.decoder, DECODERS),
        "--runtime": (config.runtime, RUNTIMES),
        "--score": (config.score, SCORES),
        "--seek": (config.seek, SEEKS),
    }
    for flag, (value, allowed) in choices.items():
        if value not in allowed:
            return f"{flag} must be one of {', '.join(allowed)} (got {value!r})"
    if not isinstance(config.labels, str):  # "" = no label set: embeddings only (`ezclip embed`)
        return f"--labels must be text: a bundled name (k400, ...), a .txt/.csv file or 'a,b,c' (got {config.labels!r})"
    for template in config.templates:
        found = template_problem(template)
        if found:
            return f"--{found}"
    at_least_one = {"--top-k": config.top_k, "--batch-size": config.batch_size, "--num-shards": config.num_shards}
    for flag, count in at_least_one.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            return f"{flag} must be a whole number of at least 1 (got {count!r})"
    if config.workers != "auto" and (
        not isinstance(config.workers, int) or isinstance(config.workers, bool) or config.workers < -1
    ):
        return f"--workers must be auto, 0 (in-process) or a number of processes (got {config.workers!r})"
    if not isinstance(config.shard_index, int) or not 0 <= config.shard_index < config.num_shards:
        return f"--shard-index must be between 0 and {config.num_shards - 1} (got {config.shard_index!r})"
    for flag, seconds in {"--window": config.window, "--stride": config.stride}.items():
        if seconds is not None and not (number(seconds) and seconds > 0):
            return f"{flag} must be a number of seconds above 0 (got {seconds!r})"
    if config.stride is not None and config.window is None:
        return "--stride needs --window"
    if config.scenes is not None and config.window is not None:
        return "--scenes replaces --window; give one of them"
    if config.threshold is not None and not (number(config.threshold) and 0 <= config.threshold <= 1):
        return f"--threshold is a probability between 0 and 1 (got {config.threshold!r})"
    if config.min_score is not None and not (number(config.min_score) and -1 <= config.min_score <= 1):
        return f"--min-score is a cosine between -1 and 1 (got {config.min_score!r})"
    return None
