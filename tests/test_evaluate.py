"""`ezclip eval`: protocols on fake dataset roots, metrics by hand, reports and plots, torchrun = one process.

Protocol tests write the official annotation files of full-size label sets with empty video
files (planning never decodes). Scoring tests use the tiny random backbone on a handful of
rendered 32-px clips; its predictions are meaningless, the bookkeeping is what is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ezclip_cli.config.eval import (
    K600_RENAMED_FROM_K400,
    PROTOCOLS,
    REPORT_FORMAT,
    REPORT_VERSION,
    TEST_SPLITS,
    EvalConfig,
)
from ezclip_cli.data.datasets import load_split
from ezclip_cli.data.labels import load_labelset
from ezclip_cli.data.splits import normalise_name, published_k600_subsets, read_name_list, splits_dir
from ezclip_cli.data.video_lists import VideoList
from ezclip_cli.errors import UsageError
from ezclip_cli.eval import run as ev
from ezclip_cli.eval.metrics import compute_metrics, harmonic_mean, mean_std
from ezclip_cli.eval.plans import EvalModel, k600_new_classes, plan_units
from ezclip_cli.eval.report import summarize, write_report
from ezclip_cli.eval.scoring import clip_frame_indices, plan_batches, read_views, score_videos, spatial_crops
from tests.helpers import (
    REPO,
    report_errors,
    run_main,
    tiny_eval_model,
    write_hmdb,
    write_kinetics,
    write_ssv2,
    write_ucf,
)
from tests.media import write_broken

# ---- fake roots in the official layouts (annotations + empty video files) ------------------------------


def class_counts(videos: VideoList) -> dict[str, int]:
    counts = {c: 0 for c in videos.classes}
    for _, label in videos.items:
        counts[videos.classes[label]] += 1
    return counts


# ---- protocols ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, writer, num_classes", [("hmdb51", write_hmdb, 51), ("ucf101", write_ucf, 101)])
def test_zero_shot_hmdb_ucf_score_the_three_official_test_splits(tmp_path, dataset, writer, num_classes):
    official = writer(tmp_path)
    units, notes = plan_units("zero-shot", dataset, tmp_path)
    assert [u.name for u in units] == ["fold1", "fold2", "fold3"] and [u.fold for u in units] == [1, 2, 3]
    for unit in units:
        assert len(unit.videos.classes) == num_classes and unit.split == "test"
        assert {path for path, _ in unit.videos.items} == official[unit.fold]  # membership from the split files
        assert all(path.parent.name == unit.videos.classes[label] for path, label in unit.videos.items)
    faithful, notes = plan_units("zero-shot", dataset, tmp_path, faithful=True)
    assert [u.name for u in faithful] == ["fold1"] and any("split 1 only" in n for n in notes)
    assert [u.name for u in plan_units("zero-shot", dataset, tmp_path, fold=2)[0]] == ["fold2"]


@pytest.mark.parametrize(
    "dataset, base_size, novel_size",
    [
        ("hmdb51", 26, 25),
        ("ucf101", 51, 50),
        ("k400", 200, 200),
        ("ssv2", 87, 87),
    ],
)
def test_base_to_novel_halves_are_the_published_lists(tmp_path, dataset, base_size, novel_size):
    writers = {
        "hmdb51": write_hmdb,
        "ucf101": write_ucf,
        "k400": lambda r: write_kinetics(r, "k400"),
        "ssv2": write_ssv2,
    }
    writers[dataset](tmp_path)
    units, notes = plan_units("base-to-novel", dataset, tmp_path)
    base, novel = units
    assert (base.part, novel.part) == ("base", "novel")
    assert (len(base.videos.classes), len(novel.videos.classes)) == (base_size, novel_size)
    assert not set(base.videos.classes) & set(novel.videos.classes)
    published = [
        {normalise_name(n) for n in read_name_list(splits_dir() / f"{dataset}_{part}.txt")}
        for part in ("base", "novel")
    ]  # tests/test_splits.py checks these files themselves
    assert [{normalise_name(c) for c in u.videos.classes} for u in units] == published
    test = load_split(dataset, tmp_path, TEST_SPLITS[dataset])
    # Every test video is in exactly one half, labelled within that half's own class list.
    by_path = {path: test.classes[label] for path, label in test.items}
    halves = [(path, unit.videos.classes[label]) for unit in units for path, label in unit.videos.items]
    assert sorted(halves) == sorted(by_path.items())
    assert any(f"{base_size} base, {novel_size} novel" in n for n in notes)


def test_k600_new_classes_are_220_and_the_three_subsets_are_fixed(tmp_path):
    k400 = set(load_labelset("k400").labels)
    k600 = load_labelset("k600").labels
    new = k600_new_classes()
    assert len(new) == 220 and not set(new) & k400 and set(new) <= set(k600)
    renamed = set(K600_RENAMED_FROM_K400.values())
    assert len(K600_RENAMED_FROM_K400) == 12 and set(K600_RENAMED_FROM_K400) <= k400 and not renamed & set(new)
    assert not renamed & k400 and renamed <= set(k600)  # the new spelling is K600's, not K400's
    assert len(k400 - set(k600)) == 32  # 12 renamed + 20 dropped (labelsets/README.md)
    faithful = k600_new_classes(faithful=True)
    assert len(faithful) == 232 and set(faithful) == set(new) | renamed  # the reference's string difference

    subsets = published_k600_subsets(k600)  # the published ones (tests/test_splits.py)
    assert [len(s) for s in subsets] == [160, 160, 160] and len({tuple(s) for s in subsets}) == 3
    assert all(set(s) <= set(new) and list(s) == [c for c in new if c in set(s)] for s in subsets)

    write_kinetics(tmp_path, "k600", train_videos=False)
    units, notes = plan_units("zero-shot", "k600", tmp_path)
    assert [u.name for u in units] == ["subset1", "subset2", "subset3"]
    val = load_split("k600", tmp_path, "val")
    for unit, subset in zip(units, subsets):
        assert unit.videos.classes == subset
        expected = {path for path, label in val.items if val.classes[label] in set(subset)}
        assert {path for path, _ in unit.videos.items} == expected and len(expected) == 160
    assert any("220" in n for n in notes)
    faithful_units, notes = plan_units("zero-shot", "k600", tmp_path, faithful=True)
    assert [(u.name, len(u.videos.classes)) for u in faithful_units] == [("new232", 232)]


def test_few_shot_and_closed_set_score_a_named_split(tmp_path):
    write_ucf(tmp_path)
    (unit,), _ = plan_units("closed-set", "ucf101", tmp_path, fold=2)
    assert (unit.name, unit.split, unit.fold, len(unit.videos.classes)) == ("test-fold2", "test", 2, 101)
    (unit,), _ = plan_units("few-shot", "ucf101", tmp_path, split="val")
    assert (unit.split, unit.fold) == ("val", 1)
    with pytest.raises(UsageError, match="zero-shot is defined for hmdb51, ucf101, k600"):
        plan_units("zero-shot", "ssv2", tmp_path)
    with pytest.raises(UsageError, match="unknown protocol"):
        EvalConfig(protocol="linear-probe", dataset="ucf101", root=str(tmp_path))
    with pytest.raises(UsageError, match="one K per checkpoint"):
        EvalConfig(protocol="few-shot", dataset="ucf101", root=".", checkpoints=("a",), shots=(2, 4))


# ---- metrics by hand --------------------------------------------------------------------------------------
def test_metrics_against_hand_computed_values():
    # 6 classes, 7 videos; top-1 right on videos 0, 3, 6; the label is in the top 5 of all but video 5.
    labels = [0, 0, 1, 2, 2, 3, 5]
    top = [
        [0, 1, 2, 3, 4],
        [1, 0, 2, 3, 4],
        [2, 1, 3, 4, 5],
        [2, 0, 1, 3, 4],
        [0, 2, 1, 3, 4],
        [0, 1, 2, 4, 5],
        [5, 0, 1, 2, 3],
    ]
    m = compute_metrics(labels, top, num_classes=6)
    assert m["top1"] == pytest.approx(3 / 7)
    assert m["top5"] == pytest.approx(6 / 7)
    assert m["per_class_videos"] == [2, 1, 2, 1, 0, 1]
    assert m["per_class_correct"] == [1, 0, 1, 0, 0, 1]
    assert m["per_class_accuracy"] == [0.5, 0.0, 0.5, 0.0, None, 1.0]  # class 4 has no video
    assert m["mean_class_accuracy"] == pytest.approx((0.5 + 0 + 0.5 + 0 + 1) / 5)
    confusion = np.zeros((6, 6), int)
    for label, predicted in zip(labels, top):
        confusion[label, predicted[0]] += 1
    assert m["confusion"] == confusion.tolist() and m["confusion"][0] == [1, 1, 0, 0, 0, 0]

    stat = mean_std([0.5, 0.7, 0.9])
    assert stat["mean"] == pytest.approx(0.7) and stat["std"] == pytest.approx((0.08 / 3) ** 0.5)
    assert mean_std([None, 0.4]) == {"mean": 0.4, "std": 0.0, "values": [0.4]}
    assert harmonic_mean(0.8, 0.4) == pytest.approx(2 * 0.8 * 0.4 / 1.2)
    assert harmonic_mean(0.0, 0.0) == 0.0 and harmonic_mean(None, 0.5) is None


def test_summary_means_splits_and_seeds_and_shows_the_gain_over_clip():
    def evaluation(model, unit, top1, part=None):
        metrics = {"top1": top1, "top5": 1.0, "mean_class_accuracy": top1}
        return {"model": model, "unit": unit, "part": part, "metrics": metrics}

    specs = [
        EvalModel("ezclip-1", "ezclip", "ezclip"),
        EvalModel("ezclip-2", "ezclip", "ezclip"),
        EvalModel("clip", "clip", "clip"),
    ]
    runs = [
        evaluation("ezclip-1", "base", 0.8, "base"),
        evaluation("ezclip-1", "novel", 0.4, "novel"),
        evaluation("ezclip-2", "base", 0.6, "base"),
        evaluation("ezclip-2", "novel", 0.6, "novel"),
        evaluation("clip", "base", 0.5, "base"),
        evaluation("clip", "novel", 0.5, "novel"),
    ]
    ours, clip = summarize("base-to-novel", specs, runs)
    assert ours["models"] == ["ezclip-1", "ezclip-2"] and clip["group"] == "clip"
    assert ours["metrics"]["base_top1"]["mean"] == pytest.approx(0.7)
    assert ours["metrics"]["novel_top1"]["mean"] == pytest.approx(0.5)
    assert ours["metrics"]["harmonic_mean"]["values"] == pytest.approx([0.533333, 0.6])
    assert ours["harmonic_mean_of_means"] == pytest.approx(2 * 0.7 * 0.5 / 1.2, abs=1e-6)
    assert ours["gain_over_clip"]["base_top1"] == pytest.approx(0.2)

    folds = [evaluation("ezclip-1", f"fold{i}", v) for i, v in enumerate((0.5, 0.7, 0.9), 1)]
    (row,) = summarize("zero-shot", specs[:1], folds)
    assert row["metrics"]["top1"]["mean"] == pytest.approx(0.7)
    assert row["metrics"]["top1"]["std"] == pytest.approx((0.08 / 3) ** 0.5, abs=1e-6)
    assert row["gain_over_clip"] is None


def test_batches_keep_the_short_last_one_and_split_whole_batches_over_ranks():
    batches, dropped = plan_batches(10, 4)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and dropped == []
    assert plan_batches(10, 4, rank=0, world_size=2)[0] == [[0, 1, 2, 3], [8, 9]]
    assert plan_batches(10, 4, rank=1, world_size=2)[0] == [[4, 5, 6, 7]]
    assert plan_batches(10, 4, drop_last=True) == ([[0, 1, 2, 3], [4, 5, 6, 7]], [8, 9])  # --faithful
    assert plan_batches(8, 4, drop_last=True) == ([[0, 1, 2, 3], [4, 5, 6, 7]], [])


def test_test_time_views():
    assert clip_frame_indices(16, 4, 0, 1) == [1, 5, 9, 13]  # one clip: segment centres
    assert clip_frame_indices(16, 4, 0, 2) == [1, 5, 9, 13]
    assert clip_frame_indices(16, 4, 1, 2) == [3, 7, 11, 15]  # (2c+1)/2N of each 4-frame segment
    assert clip_frame_indices(3, 4, 1, 2) == [0, 0, 1, 2]  # short videos repeat frames
    frames = torch.arange(40, dtype=torch.uint8).view(1, 1, 1, 40).expand(2, 3, 20, 40).contiguous()  # x ramp
    views = spatial_crops(frames, 16, 3)  # short side 20 -> 16, long 40 -> 32: crops at x = 0, 8, 16
    assert views.shape == (3, 2, 3, 16, 16) and views.dtype == torch.uint8
    assert views[0, 0, 0, 0, 0] < views[1, 0, 0, 0, 0] < views[2, 0, 0, 0, 0]
    assert int(views[0, 0, 0, 0, 0]) <= 1 and int(views[2, 0, 0, 0, -1]) >= 38  # the two ends are included
    portrait = spatial_crops(frames.transpose(-1, -2).contiguous(), 16, 3)
    assert portrait.shape == (3, 2, 3, 16, 16)
    assert spatial_crops(frames, 16, 1).shape == (1, 2, 3, 16, 16)


# ---- scoring with the tiny model ------------------------------------------------------------------------


def test_every_video_is_scored_including_a_short_last_batch(ucf_videos, tmp_path):
    model = tiny_eval_model(1)
    videos = load_split("ucf101", ucf_videos, "trainval")  # fold 1's train list: 12 rendered videos
    videos = VideoList("ucf101", "x", videos.classes, videos.items[:5])
    classifier = model.build_text_classifier([[c] for c in videos.classes])
    common = dict(batch_size=2, workers=0, device="cpu")
    results, dropped = score_videos(model, classifier, videos, **common)
    assert [r.index for r in results] == [0, 1, 2, 3, 4] and dropped == []  # batches of 2, 2, 1
    assert all(r.error is None and len(r.top) == 3 and r.scores[0] >= r.scores[-1] for r in results)
    halves = [score_videos(model, classifier, videos, rank=r, world_size=2, **common)[0] for r in (0, 1)]
    assert sorted(halves[0] + halves[1], key=lambda r: r.index) == results  # same batches, same numbers
    assert {r.index for r in halves[0]} == {0, 1, 4} and {r.index for r in halves[1]} == {2, 3}
    faithful, dropped = score_videos(model, classifier, videos, drop_last=True, **common)
    assert len(faithful) == 4 and dropped == [4]

    broken = write_broken(tmp_path / "broken.mp4", "truncated")
    with_broken = VideoList("ucf101", "x", videos.classes, videos.items[:2] + ((broken, 1),))
    results, _ = score_videos(model, classifier, with_broken, **common)
    assert [r.error is None for r in results] == [True, True, False] and "truncated" in results[2].error
    assert results[:2] == score_videos(model, classifier, videos, **common)[0][:2]

    many, _ = score_videos(model, classifier, videos, clips=2, crops=3, **common)  # 6 views per video
    assert [r.index for r in many] == [0, 1, 2, 3, 4] and all(0 < sum(r.scores) <= 1.0 + 1e-5 for r in many)
    views = read_views(videos.items[0][0], 4, 32, 2, 3, "auto")
    assert views.shape == (6, 4, 3, 32, 32) and views.dtype == torch.uint8


def test_failures_are_listed_counted_and_outside_the_denominator(ucf_videos, checkpoints, tmp_path):
    import shutil

    root = tmp_path / "ucf"
    shutil.copytree(ucf_videos, root)
    write_broken(root / "UCF-101/YoYo/v_YoYo_g01_c01.avi", "text")  # a fold-1 test video
    config = EvalConfig(
        protocol="closed-set",
        dataset="ucf101",
        root=str(root),
        checkpoints=(str(checkpoints[0]),),
        batch_size=2,
        workers=0,
        device="cpu",
        cache_dir=str(tmp_path / "cache"),
    )
    outcome = ev.run_evaluation(config)
    assert outcome.exit_code == 1
    report = outcome.report
    files = write_report(report, tmp_path / "out")
    assert files[0] == tmp_path / "out/report.json" and all(f.is_file() for f in files)
    assert report_errors(report) == []
    (e,) = report["evaluations"]
    assert (e["videos"], e["scored"], e["failed"]) == (3, 2, 1)
    assert e["failures"][0]["path"].endswith("v_YoYo_g01_c01.avi") and e["failures"][0]["error"]
    assert sum(c["videos"] for c in e["per_class"]) == 2 and e["per_class"][2]["accuracy"] is None
    assert e["metrics"]["top1"] == pytest.approx(sum(c["correct"] for c in e["per_class"]) / 2, abs=1e-6)
    assert report["counts"] == {"evaluated": 3, "scored": 2, "failed": 1, "dropped": 0, "unreadable_videos": 1}
    assert json.loads((tmp_path / "out/report.json").read_text())["failures"] == report["failures"]


def test_few_shot_and_base_to_novel_runs_group_checkpoints(ucf_videos, checkpoints, tmp_path):
    common = dict(
        dataset="ucf101",
        root=str(ucf_videos),
        checkpoints=tuple(map(str, checkpoints)),
        batch_size=4,
        workers=0,
        device="cpu",
        cache_dir=str(tmp_path / "cache"),
    )
    few = ev.run_evaluation(EvalConfig(protocol="few-shot", **common)).report
    assert report_errors(few) == []
    # K from the checkpoints
    assert [(r["group"], r["shots"]) for r in few["summary"]] == [("ezclip@2-shot", 2), ("ezclip@4-shot", 4)]
    assert [m["seed"] for m in few["models"]] == [1, 2]
    explicit = ev.run_evaluation(EvalConfig(protocol="few-shot", shots=(8, 16), baseline="clip", **common)).report
    assert report_errors(explicit) == []
    assert [r["group"] for r in explicit["summary"]] == ["ezclip@8-shot", "ezclip@16-shot", "clip"]
    assert explicit["summary"][0]["gain_over_clip"] is not None
    b2n = ev.run_evaluation(EvalConfig(protocol="base-to-novel", **common)).report
    assert report_errors(b2n) == [] and [s["num_classes"] for s in b2n["splits"]] == [2, 1]
    (row,) = b2n["summary"]
    assert row["models"] == ["ezclip-1", "ezclip-2"] and len(row["metrics"]["harmonic_mean"]["values"]) == 2
    base, novel = row["metrics"]["base_top1"]["mean"], row["metrics"]["novel_top1"]["mean"]
    assert row["harmonic_mean_of_means"] == pytest.approx(harmonic_mean(base, novel), abs=1e-6)
    with pytest.raises(UsageError, match="few-shot needs trained checkpoints"):
        ev.run_evaluation(EvalConfig(protocol="few-shot", dataset="ucf101", root=str(ucf_videos)))


# ---- reports and the command line ----------------------------------------------------------------------
def test_documented_schema_names_what_eval_writes_and_rejects_what_it_must():
    # docs/report_schema.json is the one schema; the tests check every report against it (tests/helpers.py).
    documented = json.loads((REPO / "docs/report_schema.json").read_text(encoding="utf-8"))
    properties = documented["properties"]
    assert properties["format"] == {"const": REPORT_FORMAT}
    assert properties["format_version"] == {"const": REPORT_VERSION}
    assert properties["protocol"]["enum"] == list(PROTOCOLS)
    partial = {"format": "ezclip-eval-report"}
    assert any("'protocol' is a required property" in e for e in report_errors(partial))  # missing keys are reported
    wrong_type = {"counts": {"evaluated": 1.5}}
    assert "$.counts.evaluated: 1.5 is not of type 'integer'" in report_errors(wrong_type)
    assert "$.protocol: 'one-shot' is not one of ['zero-shot', 'base-to-novel', 'few-shot', 'closed-set']" in (
        report_errors({"protocol": "one-shot"})
    )
    assert "$.evaluations[0].metrics.top1: nan is not of type 'number', 'null'" in report_errors(
        {"evaluations": [{"metrics": {"top1": float("nan")}}]}
    )
    assert "$.evaluations[0].metrics.top1: 1.5 is greater than the maximum of 1" in report_errors(
        {"evaluations": [{"metrics": {"top1": 1.5}}]}
    )


def assert_png_is_a_picture(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 200
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # not one colour: axes, text, cells


def test_ezclip_eval_cli_writes_a_valid_report_and_plots(ucf_videos, checkpoints, tmp_path, capsys):
    out = tmp_path / "report"
    code, err = run_main(
        "eval",
        "--checkpoint",
        str(checkpoints[0]),
        "--dataset",
        "ucf101",
        "--root",
        str(ucf_videos),
        "--protocol",
        "zero-shot",
        "--baseline",
        "clip",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        capsys=capsys,
    )
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report_errors(report) == []
    assert report["protocol"] == "zero-shot" and report["faithful"] is False
    assert [s["unit"] for s in report["splits"]] == ["fold1", "fold2", "fold3"]
    assert [m["kind"] for m in report["models"]] == ["ezclip", "clip"]
    assert report["models"][0]["fingerprint"] != report["models"][1]["fingerprint"]
    assert report["counts"] == {"evaluated": 18, "scored": 18, "failed": 0, "dropped": 0, "unreadable_videos": 0}
    ours = report["summary"][0]
    assert len(ours["metrics"]["top1"]["values"]) == 3
    assert set(ours["gain_over_clip"]) == {"top1", "top5", "mean_class_accuracy"}
    assert len(report["plots"]) == 6
    for name in report["plots"]:
        assert_png_is_a_picture(out / name)
    assert "zero-shot" in err and "top-1" in err and "gain vs clip" in err  # the rich table on stderr

    code, err = run_main("eval", "--dataset", "ucf101", capsys=capsys)
    assert code == 2 and "--root" in err
    faithful = tmp_path / "faithful"
    code, err = run_main(
        "eval",
        "--checkpoint",
        str(checkpoints[0]),
        "--dataset",
        "ucf101",
        "--root",
        str(ucf_videos),
        "--faithful",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--out",
        str(faithful),
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
        capsys=capsys,
    )
    assert code == 0, err
    report = json.loads((faithful / "report.json").read_text())
    assert report_errors(report) == []
    assert report["faithful"] and report["notes"][0].startswith("FAITHFUL MODE")
    assert [s["unit"] for s in report["splits"]] == ["fold1"]
    # the reference's UCF zero-shot loader (batch 20) dropped 3 FrontCrawl videos, none of them in this root
    assert report["counts"]["dropped"] == 0 and report["counts"]["scored"] == 3
    assert any(n.startswith("reference drops (fold1): 3783 videos") for n in report["notes"])


def test_torchrun_two_processes_write_the_report_of_one(ucf_videos, checkpoints, tmp_path, capsys):
    root = tmp_path / "ucf"
    import shutil

    shutil.copytree(ucf_videos, root)
    write_broken(root / "UCF-101/Basketball/v_Basketball_g02_c01.avi", "empty")  # fold 2: failures gather too
    args = [
        "eval",
        "--checkpoint",
        str(checkpoints[0]),
        "--dataset",
        "ucf101",
        "--root",
        str(root),
        "--batch-size",
        "1",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    code, err = run_main(*args, "--out", str(tmp_path / "one"), capsys=capsys)  # one process: this one
    assert code == 1, err[-3000:]  # one unreadable video
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    multi = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "ezclip_cli",
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert multi.returncode == 1, multi.stderr[-3000:]  # torchrun passes the ranks' exit code 1 on
    one = json.loads((tmp_path / "one/report.json").read_text())
    two = json.loads((tmp_path / "two/report.json").read_text())
    assert report_errors(one) == report_errors(two) == []
    assert (one["run"]["world_size"], two["run"]["world_size"]) == (1, 2)
    for key in ("splits", "models", "evaluations", "summary", "counts", "failures", "plots"):
        assert one[key] == two[key], key
    assert one["counts"]["failed"] == 1 and one["failures"][0]["path"].endswith("v_Basketball_g02_c01.avi")
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(["report.json", *one["plots"]])
