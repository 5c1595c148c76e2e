"""The reference's protocol details (issue 22): its dropped videos, its flips, its fp16 weights, the published lists."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO

SPLITS = REPO / "labelsets" / "splits"


def test_the_reference_drops_exactly_the_published_counts_per_protocol_and_dataset():
    from ezclip_cli.data.reference import reference_loaders

    loaders = reference_loaders()  # also checks: dropped == list_videos mod batch, the last lines of the list
    counts = {key: len(loader.dropped) for key, loader in loaders.items()}
    # issue 22's table: reference vs ezclip's old batch-80 rule (HMDB base 0 vs 60, ...)
    assert counts[("base-to-novel", "hmdb51", "base")] == 0
    assert counts[("base-to-novel", "hmdb51", "novel")] == 10
    assert counts[("base-to-novel", "ucf101", "base")] == 48
    assert counts[("base-to-novel", "k400", "base")] == 44
    assert counts[("base-to-novel", "k400", "novel")] == 33
    assert counts[("base-to-novel", "ssv2", "base")] == 12
    assert counts[("zero-shot", "hmdb51", "-")] == 0  # test.py's HMDB config: batch 1
    for loader in loaders.values():  # every row cites the config its batch comes from
        assert loader.config.startswith("configs/") and loader.config.endswith(".yaml") and loader.batch >= 1


def test_faithful_eval_leaves_out_the_references_videos_by_name_not_our_last_ones(tmp_path):
    from ezclip_cli.data.reference import reference_loader
    from ezclip_cli.data.video_lists import VideoList
    from ezclip_cli.eval.plans import EvalUnit
    from ezclip_cli.eval.reference_drops import reference_skips
    from ezclip_cli.eval.scoring import plan_batches

    loader = reference_loader("base-to-novel", "ucf101", "base")
    dropped = [stem for stem, _ in loader.dropped]
    ours = [tmp_path / f"{stem}.avi" for stem in ["v_a", dropped[0], "v_b", dropped[1], "v_c"]]
    unit = EvalUnit("base", VideoList("ucf101", "val", ("x",), tuple((p, 0) for p in ours)), "val", part="base")
    skips, note = reference_skips("base-to-novel", "ucf101", unit)
    assert skips == [1, 3] and "batch 60" in note and "ucf_base_to_novel.yaml" in note
    batches, left_out = plan_batches(len(ours), 2, skip=skips)
    assert sorted(i for b in batches for i in b) == [0, 2, 4] and left_out == [1, 3]


def test_faithful_training_flips_ssv2_as_the_reference_does():
    from ezclip_cli.config import TrainConfig

    assert TrainConfig(dataset="ssv2", faithful=True).flip is True  # Augmentation.py: 'some' in 'ssv2' is False
    assert TrainConfig(dataset="ssv2").flip is None  # ours: decided by the labels (off for SSv2's directions)
    assert TrainConfig(dataset="ssv2", faithful=True, flip=False).flip is False  # a flag given wins


def test_fp16_master_weights_lose_a_step_below_the_fp16_spacing():
    from ezclip_cli.config import TrainConfig
    from ezclip_cli.train.devices import resolve_master_weights, round_to_fp16_

    start = float(torch.tensor(0.01).half())  # a weight the reference holds in fp16

    def step(rounding: bool) -> float:
        param = torch.nn.Parameter(torch.tensor([start]))
        optimizer = torch.optim.SGD([param], lr=3e-6)  # under half the fp16 spacing near 0.01 (7.6e-6)
        param.grad = torch.ones(1)
        optimizer.step()
        if rounding:
            round_to_fp16_([param])
        return float(param)

    assert step(rounding=False) == pytest.approx(start - 3e-6, abs=1e-9)  # fp32 keeps the small update
    assert step(rounding=True) == start  # fp16, as the reference: it is lost
    assert resolve_master_weights(None, faithful=True, device="cuda") == "fp16"
    assert resolve_master_weights(None, faithful=True, device="cpu") == "fp32"  # the reference's fp16 needs CUDA
    assert resolve_master_weights("fp16", faithful=False, device="cpu") == "fp16"
    with pytest.raises(Exception, match="master_weights must be one of fp32, fp16"):
        TrainConfig(master_weights="bf16")


# Published K600 zero-shot video lists: ViFi-CLIP datasets_splits/k600_splits/ZS_split{1,2,3}_K600_eval.txt,
# shipped gzipped as folder/stem<TAB>class lines (labelsets/splits/README.md names the commit).
PUBLISHED = {
    1: ("9e2022626bee0886ca31758edd52509bb03a6a6206b9f2b861af7021b30a51e1", 14084),
    2: ("0a271a0c39d29ae233914dfd16c74c43688b2ae8454247c15939e57872e6454f", 13978),
    3: ("a4d78af5b8e73083dc5802d8a4c3cab641acef1f7bf5049e8fe6989da97b5362", 14136),
}


@pytest.mark.parametrize("number", [1, 2, 3])
def test_the_published_k600_video_lists_are_the_shipped_bytes(number):
    from ezclip_cli.data.labels import load_labelset
    from ezclip_cli.data.published_videos import published_k600_list_path, read_published_k600_list
    from ezclip_cli.data.splits import published_k600_subsets

    digest, lines = PUBLISHED[number]
    assert hashlib.sha256(Path(published_k600_list_path(number)).read_bytes()).hexdigest() == digest
    rows = read_published_k600_list(number)
    assert len(rows) == lines and len({(f, s) for f, s, _ in rows}) == lines  # every video once
    subset = published_k600_subsets(load_labelset("k600").labels)[number - 1]
    assert len({name for _, _, name in rows}) == len(subset) == 160


def test_reproducing_the_paper_names_only_files_the_reference_has():
    import re

    listed = {
        line.strip()
        for line in (REPO / "tests" / "data" / "ezclip_reference_files.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    text = (REPO / "README.md").read_text()
    section = text.split("## Reproducing the paper", 1)[1].split("\n## ", 1)[0]
    loop = re.search(r"for f in ([^;]+); do curl -fLO \"\$BASE/\$\{f\}(\w+\.csv)\"", section)
    fetched = {f"GPT_discription/{name}{loop[2]}" for name in loop[1].split()}
    fetched |= {f"GPT_discription/{name}" for name in re.findall(r'curl -fLO "\$BASE/(\w+\.csv)"', section)}
    assert fetched <= listed, fetched - listed
    used = {f"GPT_discription/{name}" for name in re.findall(r"--labels (\w+_discription_new\.csv)", section)}
    assert used <= fetched, used - fetched  # every description file a command uses is fetched above
    assert "configs/K-600/K-600_zero_shot_testing.yaml" in listed and "K-600_zero_shot_testing.yaml" in section
    assert "lists/kinetics_600_labels_exclusive.csv" in listed and "kinetics_600_labels_exclusive.csv" in section


def test_fp16_rounding_touches_the_adapters_not_the_prompts():
    from ezclip_cli.config import ModelConfig
    from ezclip_cli.model.ezclip import build_model
    from ezclip_cli.train.devices import fp16_master_params
    from tests.helpers import make_backbone

    model = build_model(make_backbone(0), ModelConfig(num_frames=4))
    rounded = {id(p) for p in fp16_master_params(model)}
    learned = dict(model.learned_named_parameters())
    adapters = [n for n in learned if "adapter" in n.lower()]
    prompts = [n for n in learned if "prompt" in n.lower()]
    assert adapters and prompts
    assert all(id(learned[n]) in rounded for n in adapters)  # as the reference's convert_weights
    assert not any(id(learned[n]) in rounded for n in prompts)  # plain parameters: fp32 there too
    assert all(p.requires_grad for p in fp16_master_params(model))  # never the frozen backbone
