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
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ezclip_cli.config import TrainConfig
from ezclip_cli.data.labels import load_labelset

if TYPE_CHECKING:
    from ezclip_cli.model.backbone import Backbone
    from ezclip_cli.model.ezclip import EZClip

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

    from ezclip_cli.model.backbone import load_backbone

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
    from ezclip_cli.cli.app import main

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


OPENAI_STYLE = {  # heads = width / 64, as in OpenAI's layout, so the importer can infer them
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}


def write_reference_checkpoint(path: Path, model: EZClip) -> None:
    """Write `model` in the reference EZ-CLIP layout (docs/model.md section 10), fp16 like the original."""
    import torch

    from ezclip_cli.model.checkpoint import backbone_state_dict

    state = {f"module.{k}": v.half() for k, v in backbone_state_dict(model).items()}
    state["module.visual.transformer.T_prompt_embeddings"] = model.prompts.detach().half()
    for name, p in model.learned_named_parameters():
        tower, layer, kind = name.split(".")[0], name.split(".")[1], name.split(".")[-2:]
        if kind[-1] == "prompt":
            continue
        prefix = "visual.transformer" if tower == "vision" else "transformer"
        fc = kind[0].replace("fc", "D_fc")
        state[f"module.{prefix}.resblocks.{layer}.Adapter.{fc}.{kind[1]}"] = p.detach().half()
    state["module.visual.temporal_embedding"] = torch.zeros(1, model.num_frames, 64).half()
    torch.save({"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {}}, path)


def train_count(i: int) -> int:
    """Training videos of class i: 1-4, so classes differ in frequency."""
    return 1 + (i * 7) % 4


def write_hmdb(root: Path) -> dict[int, set[Path]]:
    """51 classes; per class videos v0-v2 rotate as the test video of folds 1-3, the rest train.
    Returns fold -> the test videos the split files name."""
    tests: dict[int, set[Path]] = {1: set(), 2: set(), 3: set()}
    for i, name in enumerate(load_labelset("hmdb51").labels):
        videos = [f"{name}_v{j}.avi" for j in range(3 + train_count(i))]
        for video in videos:
            touch(root / "hmdb51" / name / video)
        for fold in (1, 2, 3):
            codes = ["2" if j == fold - 1 else ("0" if j < 3 else "1") for j in range(len(videos))]
            put(
                root / "testTrainMulti_7030_splits" / f"{name}_test_split{fold}.txt",
                "".join(f"{v} {c}\n" for v, c in zip(videos, codes)),
            )
            tests[fold].add(root / "hmdb51" / name / videos[fold - 1])
    return tests


def write_ucf(root: Path) -> dict[int, set[Path]]:
    """101 classes; group g (1-3) is the test group of fold g, groups 4+ train."""
    classes = load_labelset("ucf101").labels
    put(root / "ucfTrainTestlist/classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    tests: dict[int, set[Path]] = {1: set(), 2: set(), 3: set()}
    train, test = {1: [], 2: [], 3: []}, {1: [], 2: [], 3: []}
    for i, name in enumerate(classes):
        for g in range(1, 4 + train_count(i)):
            rel = f"{name}/v_{name}_g{g:02d}_c01.avi"
            touch(root / "UCF-101" / rel)
            for fold in (1, 2, 3):
                if g == fold:
                    test[fold].append(rel + "\n")
                    tests[fold].add(root / "UCF-101" / rel)
                elif g > 3:
                    train[fold].append(f"{rel} {i + 1}\n")
    for fold in (1, 2, 3):
        put(root / f"ucfTrainTestlist/trainlist0{fold}.txt", "".join(train[fold]))
        put(root / f"ucfTrainTestlist/testlist0{fold}.txt", "".join(test[fold]))
    return tests


def write_kinetics(root: Path, labelset: str, train_videos: bool = True) -> None:
    """train.csv with train_count(i) rows per class, validate.csv with one; flat video folders."""
    classes = load_labelset(labelset).labels
    train = [[c, f"tr{i}x{j}", 0, 10, "train"] for i, c in enumerate(classes) for j in range(train_count(i))]
    val = [[c, f"va{i}", 0, 10, "val"] for i, c in enumerate(classes)]
    write_csv(root / "annotations/train.csv", K_HEADER, train)
    write_csv(root / "annotations/validate.csv", K_HEADER, val)
    for split, rows in (("train", train if train_videos else train[:1]), ("val", val)):
        for _, yid, *_ in rows:
            touch(root / split / f"{yid}_000000_000010.mp4")


def write_ssv2(root: Path) -> None:
    classes = load_labelset("ssv2").labels
    put(root / "labels/labels.json", json.dumps({c: str(i) for i, c in enumerate(classes)}))

    def entry(video_id: str, name: str) -> dict:
        return {"id": video_id, "label": name, "template": name.replace("something", "[something]"), "placeholders": []}

    train = [entry(f"{i * 10 + j}", c) for i, c in enumerate(classes) for j in range(train_count(i))]
    val = [entry(f"{100000 + i}", c) for i, c in enumerate(classes)]
    put(root / "labels/something-something-v2-train.json", json.dumps(train))
    put(root / "labels/something-something-v2-validation.json", json.dumps(val))
    for e in train + val:
        touch(root / "20bn-something-something-v2" / f"{e['id']}.webm")


UCF_RENDERED_CLASSES = ("ApplyEyeMakeup", "Basketball", "YoYo")


UCF_DIRECTIONS = ("right", "left", "grow")


UCF_TRAIN_GROUPS = (3, 2, 1)  # training videos per class: the base half is classes 0 and 1


def tiny_eval_model(seed: int) -> EZClip:
    """The tiny model with its learned parts moved away from their identity init (seeded)."""
    import torch

    from ezclip_cli.config import ModelConfig
    from ezclip_cli.model.ezclip import build_model

    model = build_model(make_backbone(0), ModelConfig(num_frames=4), seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # away from the identity init, so EZ-CLIP and the frozen baseline differ
        for p in model.learned_parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.2)
    return model.eval()


BALL_CLASSES = (
    "a ball moving from left to right",
    "a ball moving from right to left",
    "a ball growing bigger",
    "a ball shrinking smaller",
)


BALL_DIRECTIONS = ("right", "left", "grow", "shrink")  # tests.media names, in BALL_CLASSES order


def tiny_train_config(tmp_path: Path, **changes) -> TrainConfig:
    settings = dict(
        model=str(TINY_CONFIG),
        pretrained="none",
        num_frames=8,
        batch_size=4,
        max_steps=6,
        lr=3e-3,
        warmup_steps=2,
        workers=0,
        device="cpu",
        templates=("{}",),
        log_every=1,
        seed=0,
        out=str(tmp_path / "run"),
    )
    settings.update(changes)
    return TrainConfig(**settings)


def start_paused(args: list[str], point: str, count: int, marker_dir: Path, **popen: Any) -> subprocess.Popen:
    """Start `args` and return once the child has reached `count` of `point` and waits there
    (progress.pause_point): a signal sent now lands at a known place, not at whatever a timer hit."""
    marker = marker_dir / f"paused-{point}-{count}-{time.time_ns()}"
    env = {**(popen.pop("env", None) or os.environ), "EZCLIP_PAUSE_AT": f"{point}:{count}:{marker}"}
    proc = subprocess.Popen(args, env=env, **popen)
    deadline = time.monotonic() + 300  # only a hang runs into this
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"{args[:4]}... exited ({proc.returncode}) before reaching {point} {count}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{args[:4]}... did not reach {point} {count} in 300 s")
        time.sleep(0.01)
    return proc
