"""Every faithful switch: what --faithful sets, and that each switch changes what it should and only that."""

from __future__ import annotations

import json
import random

import pytest
import torch

from ezclip_cli.config import ModelConfig, TrainConfig
from ezclip_cli.config.eval import EvalConfig
from ezclip_cli.data.labels import LabelSet, build_prompts
from ezclip_cli.data.video_lists import VideoList
from ezclip_cli.errors import CheckpointError, UsageError
from ezclip_cli.eval.scoring import class_probabilities, plan_batches, template_classifier
from ezclip_cli.model.ezclip import build_model, drop_path
from ezclip_cli.train import dataset as video_dataset
from ezclip_cli.video import transforms
from tests.helpers import OPENAI_STYLE, make_backbone, trained_like, write_reference_checkpoint

SWITCHES = ("jitter_per_frame", "drop_path_positions", "raw_names", "train_sampling", "kshot_list")


# ---- --faithful sets them all ----------------------------------------------------------------------------
def test_faithful_training_sets_every_switch_that_was_not_set():
    ours = TrainConfig(dataset="hmdb51", kshot=8)
    assert all(getattr(ours, k) is None for k in SWITCHES)
    few = TrainConfig(dataset="hmdb51", kshot=8, faithful=True)
    assert (few.jitter_per_frame, few.drop_path_positions, few.raw_names) == (True, True, True)
    assert (few.train_sampling, few.kshot_list) == ("centre", "published")  # the few-shot recipe's
    b2n = TrainConfig(dataset="ucf101", base_novel="base", faithful=True)  # full base set, as the reference
    assert (b2n.train_sampling, b2n.kshot_list) == ("centre", None)
    zero = TrainConfig(dataset="k400", faithful=True)  # the K400 config sampled random frames
    assert (zero.train_sampling, zero.kshot_list) == ("random", None)
    mine = TrainConfig(dataset="hmdb51", kshot=8, faithful=True, raw_names=False, train_sampling="random")
    assert (mine.raw_names, mine.train_sampling, mine.jitter_per_frame) == (False, "random", True)  # set ones win
    assert TrainConfig.from_dict({"faithful": True, "jitter_per_frame": "none"}).jitter_per_frame is True
    with pytest.raises(UsageError, match="train_sampling must be one of random, centre"):
        TrainConfig(train_sampling="middle")


def test_faithful_evaluation_sets_its_switches():
    common = {"protocol": "zero-shot", "dataset": "ucf101", "root": "."}
    assert (EvalConfig(**common).ensemble, EvalConfig(**common).raw_names, EvalConfig(**common).drop_last_batch) == (
        None,
        None,
        None,
    )
    faithful = EvalConfig(faithful=True, **common)
    assert (faithful.ensemble, faithful.raw_names, faithful.reference_drops) == ("probability", True, True)
    assert faithful.drop_last_batch is None  # the reference's own dropped videos, not the last n mod 80 of ours
    assert EvalConfig(faithful=True, ensemble="embedding", **common).ensemble == "embedding"
    with pytest.raises(UsageError, match="ensemble must be one of embedding, probability"):
        EvalConfig(ensemble="vote", **common)


# ---- 1. colour jitter per frame ----------------------------------------------------------------------------
def test_per_frame_jitter_changes_only_the_jitter_of_frames_after_the_first():
    for seed in range(40):
        clip = transforms.sample_clip_augmentation(random.Random(seed), 64, 80, 32, flip=True)
        frames = transforms.sample_clip_augmentation(random.Random(seed), 64, 80, 32, flip=True, jitter_frames=4)
        assert clip == frames._replace(frame_jitter=())  # crop, flip, grayscale, frame 1's jitter: unchanged
        if clip.jitter:
            assert len(frames.frame_jitter) == 4 and frames.frame_jitter[0] == clip.jitter
            assert len(set(frames.frame_jitter)) == 4  # every frame its own factors
        else:
            assert frames.frame_jitter == ()  # the p=0.8 draw stays one per clip, as the reference
    seed = next(s for s in range(40) if transforms.sample_clip_augmentation(random.Random(s), 64, 80, 32, True).jitter)
    still = torch.randint(0, 256, (1, 3, 64, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    still = still.repeat(4, 1, 1, 1)  # four identical frames
    per_clip = transforms.apply_clip_augmentation(
        still, transforms.sample_clip_augmentation(random.Random(seed), 64, 80, 32, True), 32
    )
    per_frame = transforms.apply_clip_augmentation(
        still, transforms.sample_clip_augmentation(random.Random(seed), 64, 80, 32, True, jitter_frames=4), 32
    )
    assert all(torch.equal(per_clip[0], f) for f in per_clip)  # one jitter for the clip
    assert torch.allclose(per_frame[0], per_clip[0])  # frame 1 is jittered the same way
    assert not any(torch.allclose(per_frame[0], f) for f in per_frame[1:])


# ---- 2. DropPath over token positions ----------------------------------------------------------------------
def test_drop_path_over_positions_shares_one_draw_per_position_across_the_batch():
    torch.manual_seed(0)
    x = torch.ones(16, 50, 4)  # (B*T, N, D)
    ours = drop_path(x, 0.5, True, group=4)
    rows = ours.flatten(1)
    assert all(len(set(r.tolist())) == 1 for r in rows)  # a sample is kept or dropped whole
    assert torch.equal(ours[0::4], ours[1::4])  # the 4 frames of a video together
    positions = drop_path(x, 0.5, True, group=4, positions=True)
    assert torch.equal(positions, positions[:1].expand_as(positions))  # the same for every sample
    kept = positions[0, :, 0]
    assert 0 < int((kept == 0).sum()) < 50 and set(kept.tolist()) <= {0.0, 2.0}  # per position, rescaled
    assert torch.equal(drop_path(x, 0.5, False, positions=True), x)  # inference untouched


def test_drop_path_positions_reaches_every_block_and_leaves_inference_alone():
    default = build_model(make_backbone(0), ModelConfig(num_frames=4), seed=1)
    faithful = build_model(make_backbone(0), ModelConfig(num_frames=4, drop_path_positions=True), seed=1)

    def blocks(m):
        return [*m.clip.visual.transformer.resblocks, *m.clip.transformer.resblocks]

    assert not any(b.drop_positions for b in blocks(default)) and all(b.drop_positions for b in blocks(faithful))
    video = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(default.eval().encode_frames(video), faithful.eval().encode_frames(video))
        torch.manual_seed(5)
        a = default.train().encode_frames(video)
        torch.manual_seed(5)
        b = faithful.train().encode_frames(video)
    assert not torch.allclose(a, b)


# ---- 3. raw UCF names --------------------------------------------------------------------------------------
def test_raw_names_feed_class_names_as_written():
    labels = LabelSet("x", ("ApplyEyeMakeup", "brush_hair", "playing guitar"), (None, None, "a description"), "x")
    ours = build_prompts(labels, ("a video of {}",))
    raw = build_prompts(labels, ("a video of {}",), raw_names=True)
    assert ours[0] == ["a video of apply eye makeup"] and raw[0] == ["a video of ApplyEyeMakeup"]
    assert ours[1:] == raw[1:] == [["a video of brush hair"], ["a description"]]  # only CamelCase changes


# ---- 4. template ensemble by probability averaging --------------------------------------------------------
def test_probability_ensemble_averages_each_templates_softmax(tmp_path):
    logits = torch.tensor([[1.0, 2.0, 0.0, 3.0, 0.0, 0.0]])  # 2 templates x 3 classes
    expected = (logits[:, :3].softmax(-1) + logits[:, 3:].softmax(-1)) / 2
    assert torch.allclose(class_probabilities(logits, 2), expected)
    assert torch.equal(class_probabilities(logits, 1), logits.softmax(-1))
    model = build_model(make_backbone(0), ModelConfig(num_frames=4), seed=1).eval()
    trained_like(model)
    prompts = [["a photo of run", "run, a video", "Human action of run"], ["a description of jumping"]]
    stacked = template_classifier(model, prompts, str(tmp_path), "m")  # (3 templates * 2 classes, D)
    assert stacked.shape[0] == 6
    with torch.no_grad():
        per_template = model.build_text_classifier([[prompts[0][1]], prompts[1]])
        assert torch.allclose(stacked[2:4], per_template, atol=1e-6)  # template 2 of every class
        assert torch.allclose(stacked[1], stacked[3]) and torch.allclose(stacked[3], stacked[5])  # description repeated
        video = torch.randn(3, 4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        averaged = model(video, model.build_text_classifier(prompts)).softmax(-1)
        ensembled = class_probabilities(model(video, stacked), 3)
    assert ensembled.shape == averaged.shape and not torch.allclose(ensembled, averaged, atol=1e-4)


# ---- 5. --drop-last-batch N: what a drop_last loader of N leaves of our list -----------------------------
def test_drop_last_batch_80_drops_the_same_videos_whatever_the_batch_size():
    for batch_size in (1, 8, 80, 200):
        batches, dropped = plan_batches(170, batch_size, drop_last_batch=80)
        assert dropped == list(range(160, 170))  # 170 mod 80 = 10 videos unscored, as the reference
        assert sorted(i for b in batches for i in b) == list(range(160))
        assert all(len(b) <= batch_size for b in batches)
    assert plan_batches(170, 8)[1] == [] and plan_batches(160, 8, drop_last_batch=80)[1] == []
    assert plan_batches(50, 8, drop_last_batch=80)[1] == list(range(50))  # fewer than 80: the reference scored none


# ---- 6. segment-centre training sampling -------------------------------------------------------------------
def test_centre_sampling_trains_on_segment_centres_and_changes_nothing_else(tmp_path, monkeypatch):
    from ezclip_cli.video.reader import sample_indices

    seen: list = []

    def fake_read(path, num_frames, short_side, decoder, rng):
        seen.append(sample_indices(64, num_frames, rng))
        return torch.full((num_frames, 40, 48, 3), 128, dtype=torch.uint8).numpy()

    monkeypatch.setattr(video_dataset, "_read_clip", fake_read)
    (tmp_path / "a.mp4").write_bytes(b"")
    videos = VideoList("x", "train", ("a",), ((tmp_path / "a.mp4", 0),))
    common = {"num_frames": 8, "image_size": 32, "mean": (0.5,) * 3, "std": (0.5,) * 3, "train": True}
    centre = video_dataset.VideoDataset(videos, centre_frames=True, **common)
    randomly = video_dataset.VideoDataset(videos, **common)
    for epoch in range(3):
        for dataset in (centre, randomly):
            dataset.set_epoch(epoch)
            dataset[0]
    centres = sample_indices(64, 8, None)
    assert seen[0::2] == [centres] * 3 and any(s != centres for s in seen[1::2])
    for epoch in range(3):  # the augmentation draws are the same
        centre.set_epoch(epoch)
        randomly.set_epoch(epoch)
        assert torch.equal(centre[0]["video"], randomly[0]["video"])  # constant frames: only the augmentation shows


# ---- 7. published K-shot lists: test_splits.py; the imported checkpoint's temporal_embedding ----------------
def test_an_imported_checkpoint_with_a_non_zero_temporal_embedding_is_refused(tmp_path):
    from ezclip_cli.model.checkpoint import load_checkpoint

    config_path = tmp_path / "openai-style.json"
    config_path.write_text(json.dumps(OPENAI_STYLE))
    model = build_model(make_backbone(0, config_path), ModelConfig(num_frames=8))
    trained_like(model)
    write_reference_checkpoint(tmp_path / "ok.pt", model)
    load_checkpoint(tmp_path / "ok.pt")  # the release layout: all zero
    saved = torch.load(tmp_path / "ok.pt", weights_only=True)
    saved["model_state_dict"]["module.visual.temporal_embedding"][0, 3, 5] = 0.25
    torch.save(saved, tmp_path / "used.pt")
    with pytest.raises(CheckpointError, match=r"visual.temporal_embedding is not zero \(max \|value\| 0.25\)"):
        load_checkpoint(tmp_path / "used.pt")


# ---- the command line ------------------------------------------------------------------------------------
def test_train_faithful_flag_and_single_switch_flags_reach_the_saved_config(tmp_path, clip_files, capsys):
    from ezclip_cli.config import load_yaml
    from tests.helpers import TINY_CONFIG, run_main

    common = [
        "train",
        "--train-list",
        str(clip_files / "train.txt"),
        "--model",
        str(TINY_CONFIG),
        "--pretrained",
        "none",
        "--max-steps",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--val-split",
        "none",
        "-q",
    ]
    code, err = run_main(*common, "--faithful", "--natural-names", "--out", str(tmp_path / "f"), capsys=capsys)
    assert code == 0, err
    saved = load_yaml(tmp_path / "f" / "config.yaml")
    assert saved["faithful"] is True and (saved["jitter_per_frame"], saved["drop_path_positions"]) == (True, True)
    assert saved["raw_names"] is False and saved["train_sampling"] == "random"  # a flag given wins; no recipe: random
    code, err = run_main(
        *common, "--jitter-per-frame", "--train-sampling", "centre", "--out", str(tmp_path / "o"), capsys=capsys
    )
    assert code == 0, err
    saved = load_yaml(tmp_path / "o" / "config.yaml")
    assert (saved["faithful"], saved["jitter_per_frame"], saved["train_sampling"]) == (False, True, "centre")
    assert saved["drop_path_positions"] is None and saved["raw_names"] is None  # the others stay ours


def test_eval_switches_one_by_one_from_the_command_line(ucf_videos, checkpoints, tmp_path, capsys):
    from tests.helpers import report_errors, run_main

    common = [
        "eval",
        "--checkpoint",
        str(checkpoints[0]),
        "--dataset",
        "ucf101",
        "--root",
        str(ucf_videos),
        "--fold",
        "1",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    code, err = run_main(
        *common,
        "--ensemble",
        "probability",
        "--raw-names",
        "--batch-size",
        "2",
        "--out",
        str(tmp_path / "p"),
        capsys=capsys,
    )
    assert code == 0, err
    report = json.loads((tmp_path / "p/report.json").read_text())
    assert report_errors(report) == [] and report["counts"]["scored"] == 3 and report["faithful"] is False
    assert (report["config"]["ensemble"], report["config"]["raw_names"], report["config"]["drop_last_batch"]) == (
        "probability",
        True,
        None,
    )
    assert any("per-template softmax" in n for n in report["notes"])
    code, err = run_main(*common, "--drop-last-batch", "2", "--out", str(tmp_path / "d"), capsys=capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "d/report.json").read_text())
    assert report_errors(report) == []
    assert (report["counts"]["scored"], report["counts"]["dropped"]) == (2, 1)  # 3 mod 2 = 1 left out
    code, err = run_main(*common, "--ensemble", "vote", "--out", str(tmp_path / "v"), capsys=capsys)
    assert code == 2 and "ensemble must be one of embedding, probability" in err
