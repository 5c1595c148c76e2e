"""Help conventions applied to the built click command: readable metavars and the Environment epilogs.

They work on the click command that typer builds (see `build_command` in cli.py), so options any module
adds get them too. No typer import is needed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Metavars are words a reader understands (VIDEO, FILE, N, SECONDS) where typer would print Python
# types (<list[str]>, <int range>). They are set on the built command, by parameter name and then by
# type, so options that any module adds get them too; an explicit `metavar=` always wins.
METAVARS_BY_NAME = {
    "inputs": "VIDEO",
    "parts": "FILE",
    "labels": "LABELS",
    "checkpoint": "PATH",
    "model": "NAME",
    "pretrained": "TAG",
    "output": "FILE",
    "out": "DIR",
    "cache_dir": "DIR",
    "root": "DIR",
    "resume": "PATH",
    "config": "FILE",
    "train_list": "FILE",
    "val_list": "FILE",
    "descriptions": "FILE",
    "files_from": "FILE",
    "save_embeddings": "STORE",
    "from_embeddings": "STORE",
    "store": "STORE",
    "window": "SECONDS",
    "stride": "SECONDS",
    "progress_interval": "SECONDS",
    "device": "DEVICE",
    "template": "TEMPLATE",
    "dataset": "NAME",
    "split": "SPLIT",
    "train_split": "SPLIT",
    "val_split": "SPLIT",
    "shard_index": "I",
    "kshot": "K",
    "shots": "K",
    "base_novel": "base",
    "baseline": "clip",
    "formats": "FORMATS",
    "lr": "LR",
}
METAVARS_BY_TYPE = {int: "N", float: "NUMBER", Path: "PATH"}


def readable_metavar(param: Any) -> str | None:
    """The metavar a parameter should show, or None to keep typer's (flags, and choices listed as a|b|c)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "is_flag", False):
        return None
    annotation = descriptor.annotation
    inner = getattr(annotation, "__args__", (annotation,))[0] if descriptor.is_list else annotation
    if inner is bool:
        return None
    if descriptor.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in descriptor.choices or ()) + "]"
    if param.name in METAVARS_BY_NAME:
        return METAVARS_BY_NAME[param.name]
    if param.param_type_name == "argument":  # positional: its name says what it is (VIDEOS, not PATH)
        return param.name.upper()
    return METAVARS_BY_TYPE.get(inner, param.name.upper())


# Option groups of --help, in the order they are shown, and which parameters (by name, the same in every
# command) belong to each. Options not named here are listed last, under "Other".
PANELS: dict[str, tuple[str, ...]] = {
    "Input": (
        "files_from",
        "from_embeddings",
        "like",
        "dataset",
        "root",
        "split",
        "fold",
        "train_list",
        "val_list",
        "train_split",
        "val_split",
        "kshot",
        "kshot_list",
        "base_novel",
        "config",
        "resume",
    ),
    "Labels": ("labels", "template", "no_descriptions", "descriptions", "queries"),
    "Model": ("checkpoint", "model", "pretrained", "num_frames", "runtime", "device", "no_prompts", "init"),
    "Protocol": ("protocol", "shots", "clips", "crops", "baseline", "ensemble"),
    "Training": (
        "use_prompts",
        "epochs",
        "max_steps",
        "grad_accum",
        "lr",
        "weight_decay",
        "warmup_epochs",
        "warmup_steps",
        "motion_weight",
        "drop_path",
        "attn_dropout",
        "prompt_dropout",
        "flip",
        "train_sampling",
        "clip_grad",
        "grad_checkpointing",
        "seed",
    ),
    "Output": (
        "output",
        "out",
        "fmt",
        "top_k",
        "per_video",
        "score",
        "threshold",
        "min_score",
        "overwrite",
        "raw_csv",
        "save_embeddings",
        "store",
        "report",
        "as_json",
        "log_every",
        "eval_every",
        "save_every_steps",
    ),
    "Windows and segments": ("window", "stride", "segments", "scenes"),
    "Speed": ("batch_size", "workers", "decoder", "seek", "cache_dir", "precision"),
    "Scale-out": (
        "num_shards",
        "shard_index",
        "engine",
        "ray_address",
        "decode_workers",
        "model_workers",
        "gpus_per_worker",
    ),
    "Reference choices (--faithful)": (
        "faithful",
        "jitter_per_frame",
        "drop_path_positions",
        "raw_names",
        "allow_missing_descriptions",
        "drop_last_batch",
        "reference_drops",
        "splits",
        "master_weights",
    ),
    "Display": ("quiet", "progress_interval", "help"),
}
PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}
MIN_GROUPED = 12  # commands with fewer options keep one plain list


def format_grouped_options(command: Any, ctx: Any, formatter: Any) -> None:
    """click's format_options, with the options of a long command shown in PANELS' groups."""
    arguments: list[tuple[str, str]] = []
    groups: dict[str, list[tuple[str, str]]] = {}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)  # typer's arguments have one too
        if record is None:
            continue
        if param.param_type_name == "argument":
            arguments.append(record)
        else:
            groups.setdefault(PANEL_OF.get(param.name, "Other"), []).append(record)
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    for title in [*PANELS, "Other"]:
        if groups.get(title):
            with formatter.section(title):
                formatter.write_dl(groups[title])


def apply_help_conventions(command: Any) -> Any:
    """Readable metavars for every parameter of `command` and its subcommands; long option lists in groups."""
    for sub in getattr(command, "commands", {}).values():
        apply_help_conventions(sub)
    if sum(p.param_type_name == "option" for p in command.params) >= MIN_GROUPED:
        command.format_options = lambda ctx, formatter, command=command: format_grouped_options(command, ctx, formatter)
    for param in command.params:
        if param.metavar is not None:
            continue
        metavar = readable_metavar(param)
        if metavar is None:
            continue
        param.metavar = metavar
        if param.param_type_name == "argument":
            # typer appends an argument's type (<list[str]>) after its name, and writes required ones
            # as {name}; the usage line reads `FILE...` / `[VIDEO]...` as in click and argparse.
            param.display_type_rich = lambda ctx: None
            usage = metavar if param.required else f"[{metavar}]"
            usage += "..." if param.nargs != 1 else ""
            param._usage_display_name = lambda usage=usage: usage
    return command


# Every environment variable ezclip reads, and the commands it changes: listed under "Environment"
# at the end of those commands' --help (the variables other modules read are named here too).
MODEL_COMMANDS = ("tag", "eval", "export", "models")
ENVIRONMENT = (
    (
        "EZCLIP_CACHE",
        "text-embedding and model cache folder (default ~/.cache/ezclip)",
        ("tag", "eval", "export", "models"),
    ),
    ("EZCLIP_MODEL_INDEX", "model index file or URL for model names (default: the built-in index)", MODEL_COMMANDS),
    ("EZCLIP_OFFLINE", "1: download nothing; a model that is not cached fails at once", MODEL_COMMANDS),
    (
        "HF_HUB_OFFLINE",
        "1: open_clip weights from the local Hugging Face cache only, no retries",
        ("tag", "train", "eval", "export", "models"),
    ),
    (
        "EZCLIP_PROGRESS_INTERVAL",
        "seconds between progress lines off a terminal (default 30)",
        ("tag", "train", "eval"),
    ),
    ("SLURM_ARRAY_TASK_ID, _COUNT", "in a SLURM job array: the defaults of --shard-index and --num-shards", ("tag",)),
    ("EZCLIP_DEBUG", "1: show the traceback of an error instead of one line", ("*",)),
)


def environment_help(name: str) -> str:
    """The "Environment" epilog of command `name` (every variable for ''; '' when none affects it)."""
    rows = [(var, text) for var, text, commands in ENVIRONMENT if name == "" or name in commands or "*" in commands]
    if not rows:
        return ""
    # \b keeps click from re-wrapping the table into one paragraph; the text goes on its own line so
    # the table fits 80 columns.
    return "\b\nEnvironment:\n" + "\n".join(f"  {var}\n      {text}" for var, text in rows)


def add_environment_help(command: Any) -> Any:
    """Append the Environment table to the help of every subcommand (and of the top-level command)."""
    for name, sub in getattr(command, "commands", {}).items():
        epilog = environment_help(name)
        if epilog and "Environment:" not in (sub.epilog or ""):
            sub.epilog = f"{sub.epilog}\n\n{epilog}" if sub.epilog else epilog
    if not command.epilog:
        command.epilog = environment_help("")  # all of them
    return command
