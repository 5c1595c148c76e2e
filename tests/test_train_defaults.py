"""Training defaults that hold on a user's own data: no flips for direction labels, sparse validation.

Unit tests of `ezclip_cli.train.defaults`, then two short in-process `ezclip train` runs on a
tiny random-weight backbone and rendered clips that check the defaults reach the run and its log.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ezclip_cli.data.labels import load_labelset
from ezclip_cli.train.defaults import (
    MIRROR_REVERSED_WORDS,
    VALIDATION_SHARE,
    auto_eval_every,
    choose_flip,
    eval_every_message,
    mirror_reversed_words,
)
from tests.helpers import TINY_CONFIG, run_main
from tests.media import moving_ball_frames, write_video


# ---- the word list --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "label, words",
    [
        ("sliding left to right", ("left", "right")),
        ("Sliding right to left", ("right", "left")),
        ("TurnLeft", ("left",)),
        ("turn_right", ("right",)),
        ("rotating clockwise", ("clockwise",)),
        ("rotating counter-clockwise", ("clockwise",)),
        ("rotating counterclockwise", ("counterclockwise",)),
        ("rotating anti-clockwise", ("clockwise",)),
        ("Rotating Anticlockwise", ("anticlockwise",)),
        ("drifting leftwards", ("leftwards",)),
        ("a rightward pan", ("rightward",)),
        ("waving with the left-hand", ("left",)),
        ("moving left2right", ("left", "right")),
    ],
)
def test_labels_naming_a_mirrored_direction_are_found(label, words):
    assert mirror_reversed_words([label]) == {label: words}


@pytest.mark.parametrize(
    "label",
    [
        "bright lights",
        "copyright notice",
        "playing guitar",
        "moving up",
        "moving down",
        "moving towards the camera",
        "moving away from the camera",
        "spinning",
        "upright row",
        "leftover food",
        "ClockworkToy",
    ],
)
def test_labels_without_a_mirrored_direction_are_not_found(label):
    assert mirror_reversed_words([label]) == {}


def test_word_list_holds_both_sides_of_each_direction():
    pairs = [
        ("left", "right"),
        ("leftward", "rightward"),
        ("leftwards", "rightwards"),
        ("leftmost", "rightmost"),
        ("lefthand", "righthand"),
        ("lefthanded", "righthanded"),
        ("clockwise", "counterclockwise"),
        ("clockwise", "anticlockwise"),
    ]
    for a, b in pairs:
        assert a in MIRROR_REVERSED_WORDS and b in MIRROR_REVERSED_WORDS
    assert not {"up", "down", "towards", "away", "forward", "backward"} & MIRROR_REVERSED_WORDS


def test_bundled_label_sets_ssv2_is_direction_sensitive_and_the_others_are_not():
    ssv2 = mirror_reversed_words(load_labelset("ssv2").labels)
    assert "Pushing something from left to right" in ssv2 and "Pulling something from right to left" in ssv2
    for name in ("k400", "k600", "ucf101", "hmdb51"):  # flips stay on for these benchmarks
        assert mirror_reversed_words(load_labelset(name).labels) == {}, name


# ---- choosing flips -------------------------------------------------------------------------------
DIRECTION_LABELS = ["sliding left to right", "sliding right to left", "spinning clockwise", "jumping"]


def test_flips_are_off_by_default_for_direction_labels_with_a_reason():
    choice = choose_flip(None, None, DIRECTION_LABELS)
    assert choice.flip is False and choice.warning is None
    assert choice.message.startswith("horizontal flips off: 3 of 4 labels name a direction that a mirror reverses")
    assert "'sliding left to right': left, right" in choice.message and "and 2 more" in choice.message
    assert "--flip" in choice.message


def test_flips_are_off_by_default_for_ssv2_by_name():
    choice = choose_flip(None, "ssv2", ["Holding something", "Opening something"])
    assert choice.flip is False and "ssv2 labels are direction-sensitive" in choice.message


def test_flips_stay_on_by_default_for_other_labels():
    choice = choose_flip(None, "ucf101", ["ApplyEyeMakeup", "Surfing"])
    assert choice == choice.__class__(True)


def test_an_explicit_choice_wins_and_flip_on_direction_labels_warns():
    on = choose_flip(True, None, DIRECTION_LABELS)
    assert on.flip is True and on.message is None and "contradict their labels" in on.warning
    assert choose_flip(False, None, DIRECTION_LABELS).flip is False
    assert choose_flip(False, None, ["jumping"]).flip is False
    assert choose_flip(True, None, ["jumping"]) == choose_flip(None, None, ["jumping"])


# ---- validation frequency -------------------------------------------------------------------------
def share(every: int, train: int, val: int) -> float:
    return val / (every * train + val)


def test_auto_eval_every_is_the_fewest_epochs_under_the_share():
    for train in (1, 7, 32, 96, 120, 1000):
        for val in (1, 10, 60, 200, 5000):
            every = auto_eval_every(train, val)
            assert share(every, train, val) <= VALIDATION_SHARE + 1e-12
            assert every == 1 or share(every - 1, train, val) > VALIDATION_SHARE


def test_auto_eval_every_on_the_issue_example_and_on_large_benchmarks():
    # 120 clips at batch 32: 3 steps (96 clips) per epoch; a 60-clip validation every 3 epochs.
    assert auto_eval_every(96, 60) == 3
    assert auto_eval_every(240_000, 20_000) == 1  # K400-sized: every epoch, as the reference
    assert auto_eval_every(168_913, 24_777) == 1  # SSv2-sized
    assert auto_eval_every(400, 100) == 1  # exactly a fifth
    assert auto_eval_every(100, 0) == 1
    with pytest.raises(ValueError):
        auto_eval_every(10, 10, share=1.0)


def test_eval_every_message_states_the_rule():
    text = eval_every_message(3, 3, 96, 60, chosen=True)
    assert text.startswith("validation every 3 epochs (9 steps) and after the last step: 60 validation clips")
    assert "17% of the clips decoded (at most 20%; --eval-every N to choose)" in text
    assert (
        eval_every_message(1, 5, 160, 8, chosen=False)
        == "validation every epoch (5 steps) and after the last step (--eval-every)"
    )


# ---- through `ezclip train` -----------------------------------------------------------------------
CLASSES = {
    "right": "a ball sliding left to right",
    "left": "a ball sliding right to left",
    "grow": "a ball growing bigger",
    "shrink": "a ball shrinking smaller",
}


@pytest.fixture(scope="module")
def direction_clips(tmp_path_factory) -> Path:
    """Two training clips and one validation clip per class, labels naming directions, as list files."""
    folder = tmp_path_factory.mktemp("direction-clips")
    for split, per_class in (("train", 2), ("val", 1)):
        lines = []
        for c, (direction, label) in enumerate(CLASSES.items()):
            for i in range(per_class):
                name = f"{split}/{direction}_{i}.mp4"
                (folder / split).mkdir(exist_ok=True)
                write_video(folder / name, moving_ball_frames(8, 32, direction, radius=0.25, seed=10 * c + i))
                lines.append(f"{name}\t{label}")
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def train_args(clips: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--train-list",
        str(clips / "train.txt"),
        "--val-list",
        str(clips / "val.txt"),
        "--model",
        str(TINY_CONFIG),
        "--pretrained",
        "none",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--num-frames",
        "4",
        "--template",
        "{}",
        "--out",
        str(out),
        *extra,
    ]


def validated_steps(run: Path) -> list[int]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row["step"] for row in rows if "val_top1" in row]


@pytest.mark.usefixtures("one_torch_thread")
def test_train_on_direction_labels_turns_flips_off_and_validates_sparsely(direction_clips, tmp_path, capsys):
    run = tmp_path / "run"
    # 8 training clips at batch 4: 2 steps (8 clips) per epoch; 4 validation clips -> every 2 epochs
    # (4 / (2 * 8 + 4) = 20%), i.e. at step 4, then after the last step (5, inside epoch 3).
    code, err = run_main(*train_args(direction_clips, run, "--max-steps", "5"), capsys=capsys)
    assert code == 0, err
    log = (run / "train.log").read_text()
    assert "horizontal flips off: 2 of 4 labels name a direction that a mirror reverses" in log
    assert "validation every 2 epochs (4 steps) and after the last step" in log
    assert validated_steps(run) == [4, 5]


def test_build_datasets_gives_the_training_set_no_flips_for_direction_labels(direction_clips, tmp_path):
    from ezclip_cli.config import TrainConfig
    from ezclip_cli.train.data import build_datasets
    from tests.helpers import make_backbone

    backbone = make_backbone(0)
    config = TrainConfig(train_list=str(direction_clips / "train.txt"), out=str(tmp_path / "x"))
    train, _, classes = build_datasets(config, backbone)
    assert train.flip is False and set(classes) == set(CLASSES.values())
    train, _, _ = build_datasets(config.replace(flip=True), backbone)
    assert train.flip is True


@pytest.mark.usefixtures("one_torch_thread")
def test_train_with_flip_and_eval_every_given_keeps_them(direction_clips, tmp_path, capsys):
    run = tmp_path / "run"
    # The automatic choice would be every 2 epochs (see above): validated steps [3] instead of [2, 3].
    code, err = run_main(
        *train_args(direction_clips, run, "--max-steps", "3", "--flip", "--eval-every", "1"), capsys=capsys
    )
    assert code == 0, err
    log = (run / "train.log").read_text()
    assert "horizontal flips off" not in log and "--flip on a direction-sensitive label set" in log
    assert "validation every epoch (2 steps) and after the last step (--eval-every)" in log
    assert validated_steps(run) == [2, 3]
