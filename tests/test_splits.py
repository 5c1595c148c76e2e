"""The published split data: the shipped files, the name normalisation, and the protocols that use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ezclip_cli.config import TrainConfig
from ezclip_cli.data.datasets import load_split
from ezclip_cli.data.labels import load_labelset
from ezclip_cli.data.splits import (
    list_kshot_lists,
    load_kshot_list,
    match_names,
    normalise_name,
    published_halves,
    published_k600_subsets,
    published_kshot_name,
    read_name_list,
    splits_dir,
)
from ezclip_cli.errors import DatasetError, UsageError
from ezclip_cli.eval.plans import k600_new_classes, plan_units
from ezclip_cli.train.data import load_video_lists
from tests.helpers import write_hmdb, write_kinetics, write_ssv2, write_ucf

HALVES = {"hmdb51": (26, 25), "ucf101": (51, 50), "k400": (200, 200), "ssv2": (87, 87)}
WRITERS = {"hmdb51": write_hmdb, "ucf101": write_ucf, "k400": lambda r: write_kinetics(r, "k400"), "ssv2": write_ssv2}


def shipped(name: str) -> list[str]:
    return read_name_list(splits_dir() / name)


# ---- the shipped files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", sorted(HALVES))
def test_shipped_halves_have_the_published_counts_and_cover_the_dataset(dataset):
    base, novel = shipped(f"{dataset}_base.txt"), shipped(f"{dataset}_novel.txt")
    assert (len(base), len(novel)) == HALVES[dataset]
    assert len(set(base)) == len(base) and len(set(novel)) == len(novel) and not set(base) & set(novel)
    classes = load_labelset(dataset).labels
    # every published name is exactly one of our classes, and together the halves are all of them
    assert sorted(match_names(base + novel, classes, dataset)) == sorted(classes)


def test_shipped_k600_subsets_are_three_distinct_160_class_subsets_of_the_220_new_classes():
    subsets = [shipped(f"k600_zero_shot_{i}.txt") for i in (1, 2, 3)]
    assert [len(s) for s in subsets] == [160, 160, 160] and all(len(set(s)) == 160 for s in subsets)
    assert len({frozenset(s) for s in subsets}) == 3
    new = set(k600_new_classes())
    k600 = load_labelset("k600").labels
    for subset in subsets:
        assert set(match_names(subset, k600, "k600")) <= new  # no K400 class, renamed or not
    assert [tuple(s) for s in published_k600_subsets(k600)] == [
        tuple(c for c in k600 if c in set(match_names(s, k600, "k600"))) for s in subsets
    ]


def test_name_normalisation_ignores_case_underscores_spaces_and_ssv2_brackets():
    assert normalise_name("Brush_Hair") == normalise_name("brush hair") == "brush hair"
    assert normalise_name("  kick   ball ") == normalise_name("kick_ball")
    assert normalise_name("Pushing [something] from left to right") == normalise_name(
        "pushing something from left to right"
    )
    assert normalise_name("ApplyEyeMakeup") == "applyeyemakeup"  # CamelCase is one word; UCF lists keep it
    assert normalise_name("passing American football (not in game)") == normalise_name(
        "passing american football (not in game)"
    )
    assert match_names(["brush hair", "Kick Ball"], ("brush_hair", "kick", "kick_ball"), "x") == [
        "brush_hair",
        "kick_ball",
    ]
    with pytest.raises(DatasetError, match=r"2 class name\(s\) not in the dataset's classes: 'fly', 'swim'"):
        match_names(["fly", "kick", "swim"], ("kick",), "x")
    with pytest.raises(DatasetError, match="same after normalising"):
        match_names(["kick"], ("kick ball", "kick_ball"), "x")


# ---- the protocols on fake dataset roots ------------------------------------------------------------------
@pytest.mark.parametrize("dataset", sorted(HALVES))
def test_base_to_novel_eval_and_train_use_the_published_halves(tmp_path, dataset):
    WRITERS[dataset](tmp_path)
    expected = [{normalise_name(n) for n in shipped(f"{dataset}_{part}.txt")} for part in ("base", "novel")]
    base, novel = plan_units("base-to-novel", dataset, tmp_path)[0]
    assert [{normalise_name(c) for c in u.videos.classes} for u in (base, novel)] == expected
    assert (len(base.videos.classes), len(novel.videos.classes)) == HALVES[dataset]
    config = TrainConfig(dataset=dataset, root=str(tmp_path), base_novel="base", val_split=None)
    train, _ = load_video_lists(config)
    assert {normalise_name(c) for c in train.classes} == expected[0]


def test_k600_zero_shot_scores_the_three_published_subsets(tmp_path):
    write_kinetics(tmp_path, "k600", train_videos=False)
    units, notes = plan_units("zero-shot", "k600", tmp_path)
    assert [u.name for u in units] == ["subset1", "subset2", "subset3"]
    for number, unit in enumerate(units, start=1):
        assert {normalise_name(c) for c in unit.videos.classes} == {
            normalise_name(n) for n in shipped(f"k600_zero_shot_{number}.txt")
        }
        assert len(unit.videos) == 160  # one validation video per class in this root
    assert any("published subsets" in n for n in notes)


def test_frequency_halves_remain_the_fallback_for_custom_data(tmp_path):
    lines = []
    for i, name in enumerate(("a", "b", "c", "d")):
        for j in range(4 - i):  # a most frequent, d least
            (tmp_path / f"{name}{j}.mp4").write_bytes(b"")
            lines.append(f"{name}{j}.mp4\t{name}")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    train, _ = load_video_lists(TrainConfig(train_list=str(tmp_path / "train.txt"), base_novel="base"))
    assert train.classes == ("a", "b")
    assert published_halves("k600", load_labelset("k600").labels) is None  # none published for K600


def test_a_root_with_a_class_outside_both_halves_is_refused():
    classes = (*load_labelset("hmdb51").labels, "juggle")
    with pytest.raises(DatasetError, match="1 hmdb51 class.*neither published half: 'juggle'"):
        published_halves("hmdb51", classes)


# ---- K-shot lists ------------------------------------------------------------------------------------------
def test_bundled_kshot_lists_have_k_videos_of_every_class():
    names = list_kshot_lists()
    assert len(names) == 24
    for name in names:
        rows, source = load_kshot_list(name)
        dataset, rest = name.split("_", 1)
        k = 16 if rest.startswith("base") else int(rest.removesuffix("shot"))
        ours = load_labelset(dataset).labels
        classes = match_names(shipped(f"{dataset}_base.txt"), ours, name) if rest.startswith("base") else list(ours)
        listed = match_names([c for _, c in rows], ours, name)
        assert sorted(set(listed)) == sorted(classes), name  # every class (of the base half), no other
        assert all(listed.count(c) == k for c in set(listed)), name
        assert len({stem for stem, _ in rows}) == len(rows) and source == f"bundled:{name}"


def test_hmdb_and_ucf_kshot_lists_name_each_video_with_its_own_class():
    """Their file names carry the class: the HMDB kick/kick ball and sword/sword exercise swap is undone."""
    for name in list_kshot_lists():
        if name.startswith("ucf101"):
            # case-insensitive: UCF101 names the files of HandstandPushups "v_HandStandPushups_..."
            assert all(stem.lower().startswith(f"v_{c}_g".lower()) for stem, c in load_kshot_list(name)[0]), name
        if name.startswith("hmdb51"):
            for stem, c in load_kshot_list(name)[0]:
                meta_free = stem.rsplit("_", 6)[0]  # HMDB names end in 6 meta tags: _f_cm_np1_fr_med_0
                assert meta_free.endswith("_" + c.replace(" ", "_")) or meta_free == c.replace(" ", "_"), (name, stem)


def test_published_kshot_names_follow_dataset_k_and_seed():
    assert published_kshot_name("hmdb51", 8, False, 1) == "hmdb51_8shot"
    assert [published_kshot_name("k400", 16, True, s) for s in (1, 2, 3)] == [
        "k400_base_16shot_s1",
        "k400_base_16shot_s2",
        "k400_base_16shot_s3",
    ]
    with pytest.raises(UsageError, match="no published K-shot list 'k400_4shot'"):
        published_kshot_name("k400", 4, False, 1)
    with pytest.raises(UsageError, match="16 shots"):
        published_kshot_name("ucf101", 8, True, 1)


def test_training_on_a_kshot_list_takes_its_videos_from_the_whole_train_list(tmp_path, caplog):
    write_hmdb(tmp_path)
    trainval = load_split("hmdb51", tmp_path, "trainval")
    val = load_split("hmdb51", tmp_path, "val")
    held = val.items[0]  # a video of our validation hold-out: the list may still name it
    chosen = [item for item in trainval.items if item[1] in (0, 1) and item != held][:3] + [held]
    lines = [f"{path.stem}\t{trainval.classes[label].replace('_', ' ')}" for path, label in chosen]
    lines.append("not_in_this_root_v9\tbrush hair")
    listed = tmp_path / "list.txt"
    listed.write_text("\n".join(lines) + "\n")
    config = TrainConfig(dataset="hmdb51", root=str(tmp_path), kshot_list=str(listed))
    train, validation = load_video_lists(config)
    assert sorted(train.items) == sorted(chosen) and train.classes == trainval.classes
    assert held not in validation.items and len(validation) == len(val) - 1
    assert "1 of 5 listed videos are not in" in caplog.text

    with pytest.raises(UsageError, match="needs --dataset and --kshot"):
        load_video_lists(TrainConfig(dataset="hmdb51", root=str(tmp_path), kshot_list="published"))
    with pytest.raises(UsageError, match="neither a file nor a bundled list"):
        load_video_lists(TrainConfig(dataset="hmdb51", root=str(tmp_path), kshot_list=str(tmp_path / "nope.txt")))
    bad = tmp_path / "bad.txt"
    bad.write_text("no tab here\n")
    with pytest.raises(DatasetError, match=r"bad.txt:1: want '<video><TAB><class>'"):
        load_kshot_list(str(bad))


def test_published_kshot_list_is_found_by_dataset_and_k(tmp_path):
    """The 'published' list resolves to the bundled file; on this fake root none of its videos exist."""
    write_ucf(tmp_path)
    config = TrainConfig(dataset="ucf101", root=str(tmp_path), kshot=2, kshot_list="published")
    with pytest.raises(DatasetError, match=r"bundled:ucf101_2shot: none of its 202 videos"):
        load_video_lists(config)


def test_the_wheel_ships_the_split_files():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"labelsets" = "ezclip_cli/labelsets"' in text or "ezclip_cli/labelsets" in text
    assert (splits_dir() / "README.md").is_file() and (splits_dir() / "kshot").is_dir()
