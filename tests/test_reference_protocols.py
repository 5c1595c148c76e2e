"""The reference code's protocol as data and switches: its dropped videos, the published K600 video
lists, SSv2 flips, fp16 master weights and the K600 commands of README "Reproducing the paper"."""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ezclip_cli.config import TrainConfig
from ezclip_cli.config.eval import EvalConfig
from ezclip_cli.data.published_videos import (
    read_published_k600_list,
    read_video_list,
    reference_k600_list_path,
)
from ezclip_cli.data.reference import reference_loader, reference_loaders
from ezclip_cli.data.video_lists import VideoList
from ezclip_cli.errors import UsageError
from ezclip_cli.eval.plans import EvalUnit, k600_new_classes, plan_units
from ezclip_cli.eval.reference_drops import reference_skips
from ezclip_cli.eval.scoring import plan_batches
from ezclip_cli.train.master_weights import fp16_rounded_parameters, resolve_master_weights, round_to_fp16_
from tests.helpers import touch

ROOT = Path(__file__).resolve().parent.parent

# sha256 of the decompressed lists (the gzip container may change, the lines may not)
LIST_SHA256 = {
    "k600_zero_shot_1_videos.txt.gz": "aace32a82c873926bc6e30604980776dc604027c68fc1d456c4c3e663a0a2db2",
    "k600_zero_shot_2_videos.txt.gz": "c65497db383cff397ae8117ff31109ec5ce5c49311dd3e823454f4979e26d975",
    "k600_zero_shot_3_videos.txt.gz": "008731f43e3b31bd0eac2b56ec42b01cf3876343128dc6c6eb04f48ea458f1a4",
    "reference_k600_exclusive_videos.txt.gz": "2b1af4368e6c3f3cf24776eeb139473a8c166845211aa8a937e36ea4444c97c6",
}
# ViFi-CLIP's ZS_split{1,2,3}_K600_eval.txt (no final newline, so `wc -l` says one less) and the
# reference's test_600_exclusive.txt
LIST_VIDEOS = {1: 14084, 2: 13978, 3: 14136}
REFERENCE_VIDEOS = 11462

# (protocol, dataset, part): (reference config's batch, videos its drop_last left unscored)
REFERENCE_DROPS = {
    ("zero-shot", "hmdb51", "-"): (1, 0),
    ("zero-shot", "ucf101", "-"): (20, 3),
    ("zero-shot", "k600", "-"): (2, 0),
    ("base-to-novel", "hmdb51", "base"): (20, 0),
    ("base-to-novel", "hmdb51", "novel"): (20, 10),
    ("base-to-novel", "ucf101", "base"): (60, 48),
    ("base-to-novel", "ucf101", "novel"): (60, 15),
    ("base-to-novel", "k400", "base"): (50, 44),
    ("base-to-novel", "k400", "novel"): (50, 33),
    ("base-to-novel", "ssv2", "base"): (50, 12),
    ("base-to-novel", "ssv2", "novel"): (50, 15),
}
# The reference repository's files (Shahzadnit/EZ-CLIP at 2f4d6228b83c96f2c889ff568beda070358f0874)
REFERENCE_COMMIT = "2f4d6228b83c96f2c889ff568beda070358f0874"
REFERENCE_CONFIGS = {
    "configs/hmdb51/hmdb_zero_shot_testing.yaml",
    "configs/ucf101/UCF_zero_shot_testing.yaml",
    "configs/K-600/K-600_zero_shot_testing.yaml",
    "configs/base_to_nove/hmdb_base_to_novel.yaml",
    "configs/base_to_nove/ucf_base_to_novel.yaml",
    "configs/base_to_nove/k_400_base_to_novel.yaml",
    "configs/base_to_nove/ss_base_to_novel.yaml",
}
REFERENCE_DESCRIPTIONS = {
    "HMDB_gpt_Class_discription_new.csv",
    "K_600_gpt_Class_discription_new.csv",
    "Kinetic_400_gpt_Class_discription_new.csv",
    "Something_gpt_Class_discription_new.csv",
    "UCF_101_gpt_Class_discription_new.csv",
    "kinetics_600_labels_exclusive_discription_new.csv",
}


# ---- the published video lists ------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LIST_SHA256))
def test_shipped_video_lists_are_the_published_ones(name):
    path = ROOT / "labelsets/splits" / name
    assert hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() == LIST_SHA256[name]


def test_published_k600_lists_hold_their_subsets_videos_and_the_reference_list_its_232_classes():
    from ezclip_cli.data.labels import load_labelset
    from ezclip_cli.data.splits import match_names, published_k600_subsets

    subsets = published_k600_subsets(load_labelset("k600").labels)
    for number, count in LIST_VIDEOS.items():
        rows = read_published_k600_list(number)
        assert len(rows) == count and len({stem for _, stem, _ in rows}) == count
        assert {folder for folder, _, _ in rows} == {"train", "val", "test"}
        names = sorted({name for _, _, name in rows})
        assert set(match_names(names, subsets[number - 1], "list")) == set(subsets[number - 1])
    reference = read_video_list(reference_k600_list_path())
    assert len(reference) == REFERENCE_VIDEOS and {folder for folder, _, _ in reference} == {None}
    names = sorted({name for _, _, name in reference})
    assert sorted(match_names(names, k600_new_classes(True), "list")) == sorted(k600_new_classes(True))


def _k600_root(tmp_path: Path) -> tuple[Path, list[str]]:
    """A K600 root holding the first 3, 1, 1 videos of published lists 1-3 (in their folders) and the reference's
    first 4 that ViFi-CLIP does not list (in train or val, inside class folders)."""
    for number, count in ((1, 3), (2, 1), (3, 1)):
        for folder, stem, _ in read_published_k600_list(number)[:count]:
            touch(tmp_path / str(folder) / f"{stem}.mp4")
    published = {stem for n in LIST_VIDEOS for _, stem, _ in read_published_k600_list(n)}
    reference = [row for row in read_video_list(reference_k600_list_path()) if row[1] not in published][:4]
    for i, (_, stem, _) in enumerate(reference):
        touch(tmp_path / ("val" if i % 2 else "train") / "some class" / f"{stem}.mp4")
    return tmp_path, [name for _, _, name in reference]


def test_splits_published_and_reference_score_the_listed_videos_found_in_the_root(tmp_path):
    root, reference_names = _k600_root(tmp_path)
    units, notes = plan_units("zero-shot", "k600", root, splits="published")
    on_disk = [(root / str(f) / f"{stem}.mp4").exists() for f, stem, _ in read_published_k600_list(1)]
    assert [u.name for u in units] == ["subset1", "subset2", "subset3"] and len(units[0].videos) == sum(on_disk) >= 3
    assert units[0].videos.missing == LIST_VIDEOS[1] - sum(on_disk) and "ZS_split1-3_K600_eval.txt" in notes[-1]
    (unit,), notes = plan_units("zero-shot", "k600", root, splits="reference")
    assert unit.name == "new232" and len(unit.videos.classes) == 232 and len(unit.videos) == 4
    assert [unit.videos.classes[label] for _, label in unit.videos.items] == reference_names  # list order
    assert [p.stem for p, _ in unit.videos.items] == [
        stem
        for _, stem, _ in read_video_list(reference_k600_list_path())
        if (root / "train" / "some class" / f"{stem}.mp4").exists()
        or (root / "val" / "some class" / f"{stem}.mp4").exists()
    ]
    assert unit.videos.missing == REFERENCE_VIDEOS - 4 and "test_600_exclusive.txt" in notes[-1]


def test_faithful_k600_takes_the_reference_list_and_refuses_vifis():
    common = {"protocol": "zero-shot", "dataset": "k600", "root": "."}
    assert EvalConfig(**common).splits is None
    assert EvalConfig(faithful=True, **common).splits == "reference"
    assert EvalConfig(faithful=True, splits="own", **common).splits == "own"
    with pytest.raises(UsageError, match="--faithful scores the reference's 232 classes"):
        EvalConfig(faithful=True, splits="published", **common)
    with pytest.raises(UsageError, match="--splits reference is for k600 zero-shot"):
        EvalConfig(protocol="zero-shot", dataset="ucf101", root=".", splits="reference")
    assert EvalConfig(faithful=True, protocol="zero-shot", dataset="ucf101", root=".").splits is None


# ---- the reference's dropped videos ---------------------------------------------------------------------
def test_reference_drop_table_matches_each_config_batch_and_list_length():
    loaders = reference_loaders()
    assert {key: (loader.batch, len(loader.dropped)) for key, loader in loaders.items()} == REFERENCE_DROPS
    for loader in loaders.values():
        assert loader.config in REFERENCE_CONFIGS
        assert len(loader.dropped) == loader.list_videos % loader.batch
        script = "test.py" if loader.protocol == "zero-shot" else "train_base_to_novel.py"
        assert loader.loader.startswith(script + ":")


def test_faithful_drops_exactly_the_reference_videos_in_the_unit_not_the_last_ones():
    loader = reference_loader("base-to-novel", "hmdb51", "novel")
    assert loader is not None and len(loader.dropped) == 10
    dropped_stems = [stem for stem, _ in loader.dropped]
    # our list: two of the reference's dropped videos at its start, others after; the last ones not dropped
    stems = [dropped_stems[0], "kept_a", dropped_stems[5], "kept_b", "kept_c", "kept_d"]
    items = tuple((Path(f"/d/{s}.avi"), 0) for s in stems)
    unit = EvalUnit("novel", VideoList("hmdb51", "test", ("catch",), items), "test", 1, "novel")
    skips, note = reference_skips("base-to-novel", "hmdb51", unit)
    assert skips == [0, 2] and "batch 20" in note and "configs/base_to_nove/hmdb_base_to_novel.yaml" in note
    batches, dropped = plan_batches(len(items), 4, skip=skips)
    assert dropped == [0, 2] and [i for b in batches for i in b] == [1, 3, 4, 5]
    other_fold = EvalUnit("fold2", unit.videos, "test", 2)
    assert reference_skips("zero-shot", "hmdb51", other_fold)[0] == []  # the reference's lists are split 1
    assert reference_skips("few-shot", "hmdb51", unit)[0] == []  # no reference list: every video scored


# ---- SSv2 flips under --faithful ------------------------------------------------------------------------
def test_faithful_training_flips_ssv2_and_says_so_in_the_run_log(caplog):
    from ezclip_cli.train.data import build_datasets

    classes = ("Pushing something from left to right", "Pushing something from right to left")
    videos = VideoList("ssv2", "train", classes, ((Path("/v/a.webm"), 0), (Path("/v/b.webm"), 1)))
    backbone = SimpleNamespace(image_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    ours = build_datasets(TrainConfig(dataset="ssv2"), backbone, (videos, None))[0]
    with caplog.at_level(logging.INFO, logger="ezclip_cli"):
        faithful = build_datasets(TrainConfig(dataset="ssv2", faithful=True), backbone, (videos, None))[0]
    assert (ours.flip, faithful.flip) == (False, True)
    assert any("faithful: horizontal flips on" in r.message and "Augmentation.py" in r.message for r in caplog.records)
    assert TrainConfig(dataset="ssv2", faithful=True, flip=False).flip is False  # a flag given wins


# ---- fp16 master weights -------------------------------------------------------------------------------
class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.adapter = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.prompt = nn.Parameter(torch.zeros(2, 4))
        self.attn = nn.MultiheadAttention(4, 1)
        self.proj = nn.Parameter(torch.zeros(4, 4))
        self.frozen = nn.Linear(4, 4).requires_grad_(False)


def test_fp16_master_weights_round_the_reference_converted_parameters_only():
    block = _Block()
    rounded = {id(p) for p in fp16_rounded_parameters(block)}
    expected = [block.adapter.weight, block.adapter.bias, block.attn.in_proj_weight, block.attn.in_proj_bias]
    expected += [block.attn.out_proj.weight, block.attn.out_proj.bias, block.proj]
    assert rounded == {id(p) for p in expected}  # not the LayerNorm, the prompt or frozen layers


@pytest.mark.parametrize("master", ["fp16", "fp32"])
def test_a_step_below_the_fp16_spacing_is_lost_with_fp16_master_weights_and_kept_without(master):
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.01)
    round_to_fp16_([layer.weight]) if master == "fp16" else None
    start = layer.weight.item()
    # near 0.01 the fp16 spacing is 7.6e-6: a step under half of it (3.8e-6) rounds back to where it was
    optimizer = torch.optim.SGD(layer.parameters(), lr=3e-6)
    for _ in range(3):
        layer.weight.grad = torch.ones_like(layer.weight)
        optimizer.step()
        if master == "fp16":
            round_to_fp16_(fp16_rounded_parameters(layer))
    if master == "fp16":
        assert layer.weight.item() == start  # each 3e-6 step rounds back: all three are lost
    else:
        assert layer.weight.item() == pytest.approx(start - 9e-6, rel=1e-6)


def test_master_weights_follow_the_flag_then_faithful_on_cuda():
    assert resolve_master_weights(None, False, "cuda:0") == "fp32"
    assert resolve_master_weights(None, True, "cuda:0") == "fp16"
    assert resolve_master_weights(None, True, "cpu") == "fp32"  # the reference kept fp32 on CPU
    assert resolve_master_weights("fp32", True, "cuda") == "fp32"
    assert resolve_master_weights("fp16", False, "cpu") == "fp16"
    with pytest.raises(UsageError, match="master_weights must be one of fp32, fp16"):
        TrainConfig(master_weights="bf16")


def test_training_with_fp16_master_weights_stores_fp16_adapters(tmp_path, clip_files):
    from safetensors.torch import load_file

    from ezclip_cli.train.run import train
    from tests.helpers import tiny_train_config

    learned = {}
    for master in ("fp16", "fp32"):
        config = tiny_train_config(
            tmp_path / master,
            train_list=str(clip_files / "train.txt"),
            max_steps=2,
            val_split="none",
            master_weights=master,
        )
        train(config)
        saved = load_file(str(tmp_path / master / "run" / "last.ezclip"))
        learned[master] = {k: v for k, v in saved.items() if ".adapter." in k}
    assert learned["fp16"] and all(torch.equal(v, v.half().float()) for v in learned["fp16"].values())
    assert not all(torch.equal(v, v.half().float()) for v in learned["fp32"].values())


# ---- README "Reproducing the paper" --------------------------------------------------------------------
def _reproducing_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Reproducing the paper", 1)[1].split("\n## ", 1)[0]


def test_every_published_number_has_one_command_whose_description_file_the_download_loop_fetches():
    section = _reproducing_section()
    loop = re.search(r"BASE=(\S+)\n\s+for f in ([^;]+); do curl -fLO \"\$BASE/\$\{f\}([^\"]*)\"", section)
    assert loop is not None and REFERENCE_COMMIT in loop.group(1)
    fetched = {f + loop.group(3) for f in loop.group(2).split()}
    fetched |= set(re.findall(r'curl -fLO "\$BASE/([^"$]+)"', section))
    assert fetched <= REFERENCE_DESCRIPTIONS  # files that exist in the reference repository
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`ezclip eval" in line]
    numbers = [row.split(" | ")[1].strip() for row in rows]
    assert {"52.9", "79.1", "70.1", "66.3", "85.4", "14.8"} <= set(numbers)
    k600 = [row for row in rows if "--dataset k600" in row]
    assert len(k600) >= 2  # one command per reference K600 setup
    for row in rows:
        command = shlex.split(re.findall(r"`(ezclip eval [^`]+)`", row)[0])
        assert command[command.index("--labels") + 1] in fetched, row
    assert any("kinetics_600_labels_exclusive_discription_new.csv" in row and "--faithful" in row for row in k600)
