"""Description files: the reference's read as they are, names normalised, missing ones loud, training on them."""

from __future__ import annotations

import csv
import json
import logging

import pytest
import torch

from ezclip_cli.data.descriptions import class_texts, load_descriptions
from ezclip_cli.data.labels import load_labelset
from ezclip_cli.errors import LabelsetError
from tests.helpers import BALL_CLASSES, report_errors, run_main, tiny_train_config

REFERENCE_HEADER = ["SNo", "Class Name", "GPT3 discription"]  # sic, as in the EZ-CLIP repository


def write_reference_csv(
    path, names, describe=lambda name: f"\n\n{name.capitalize()} is an action performed by humans."
):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(REFERENCE_HEADER)
        writer.writerows([i + 1, name, describe(name)] for i, name in enumerate(names))
    return path


def test_reference_description_file_with_spaced_hmdb_names_describes_all_51_classes(tmp_path):
    hmdb = load_labelset("hmdb51").labels  # brush_hair, ..., with underscores
    spaced = [c.replace("_", " ") for c in hmdb]
    assert sum(" " in s for s in spaced) == 14  # the classes that used to fall back silently
    path = write_reference_csv(tmp_path / "HMDB_gpt_Class_discription_new.csv", list(reversed(spaced)))
    texts = class_texts(hmdb, descriptions=path)
    assert texts.described == 51 and set(texts.sources) == {"description"}
    assert texts.prompts[0] == ["Brush hair is an action performed by humans."]  # leading blank lines stripped
    assert texts.prompts[hmdb.index("kick_ball")] == ["Kick ball is an action performed by humans."]


def test_our_csv_and_the_reference_csv_give_the_same_descriptions(tmp_path):
    ours = tmp_path / "ours.csv"
    ours.write_text("label,description\nApplyEyeMakeup,eye make-up\nYoYo,a yo-yo\n", encoding="utf-8")
    theirs = write_reference_csv(
        tmp_path / "theirs.csv",
        ["ApplyEyeMakeup", "YoYo"],
        lambda n: {"ApplyEyeMakeup": "eye make-up", "YoYo": "a yo-yo"}[n],
    )
    assert load_descriptions(ours) == load_descriptions(theirs) == {"applyeyemakeup": "eye make-up", "yoyo": "a yo-yo"}
    labelset = load_labelset(str(theirs))  # `ezclip tag --labels FILE.csv` reads the reference file too
    assert labelset.labels == ("ApplyEyeMakeup", "YoYo") and labelset.descriptions == ("eye make-up", "a yo-yo")


def test_a_class_without_description_is_an_error_listing_it_or_a_loud_warning(tmp_path, caplog):
    path = write_reference_csv(tmp_path / "d.csv", ["brush hair", "cartwheel"])
    classes = ("brush_hair", "cartwheel", "kick_ball", "sword")
    with pytest.raises(
        LabelsetError,
        match=r"2 of 4 classes have no description in .*d.csv: 'kick_ball', 'sword'; "
        r".*--allow-missing-descriptions",
    ):
        class_texts(classes, descriptions=path)
    with caplog.at_level(logging.WARNING, logger="ezclip_cli"):
        texts = class_texts(classes, templates=("a video of {}",), descriptions=path, allow_missing=True)
    assert texts.sources == ("description", "description", "templates", "templates")
    assert texts.prompts[2:] == [["a video of kick ball"], ["a video of sword"]]
    assert "2 of 4 classes have NO description" in caplog.text and "'kick_ball', 'sword'" in caplog.text
    no_text = tmp_path / "names.csv"
    no_text.write_text("label\nrun\n", encoding="utf-8")
    with pytest.raises(LabelsetError, match="no descriptions"):
        class_texts(("run",), descriptions=no_text)
    twice = write_reference_csv(tmp_path / "twice.csv", ["kick ball", "kick_ball"])
    with pytest.raises(LabelsetError, match="name the same class"):
        class_texts(("kick_ball",), descriptions=twice)


def test_eval_report_says_which_text_each_class_used(ucf_videos, checkpoints, tmp_path, capsys):
    path = write_reference_csv(tmp_path / "ucf.csv", ["ApplyEyeMakeup", "Basketball"])
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
        "--labels",
        str(path),
        "--workers",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    code, err = run_main(*common, "--out", str(tmp_path / "refused"), capsys=capsys)
    assert code == 1 and "1 of 3 classes have no description" in err and "'YoYo'" in err
    assert not (tmp_path / "refused").exists()  # nothing scored, nothing written
    code, err = run_main(*common, "--allow-missing-descriptions", "--out", str(tmp_path / "out"), capsys=capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report_errors(report) == []
    (evaluation,) = report["evaluations"]
    assert [(c["class"], c["text"]) for c in evaluation["per_class"]] == [
        ("ApplyEyeMakeup", "description"),
        ("Basketball", "description"),
        ("YoYo", "templates"),
    ]
    assert any("descriptions from" in n and "2 of 3" in n for n in report["notes"])


def test_training_with_a_description_csv_makes_the_loss_see_the_descriptions(tmp_path, clip_files, monkeypatch):
    from ezclip_cli.train.run import train
    from ezclip_cli.train.setup import _TrainForward

    described = {c: f"a clip in which {c}, seen from the side" for c in BALL_CLASSES}
    path = write_reference_csv(tmp_path / "desc.csv", list(BALL_CLASSES), described.__getitem__)
    seen: list[torch.Tensor] = []
    original = _TrainForward.forward

    def spy(self, video, tokens):
        seen.append(tokens.detach().cpu())
        return original(self, video, tokens)

    monkeypatch.setattr(_TrainForward, "forward", spy)
    config = tiny_train_config(
        tmp_path,
        train_list=str(clip_files / "train.txt"),
        max_steps=2,
        labels=str(path),
        templates=("a video of {}", "{}"),
    )
    train(config)
    from ezclip_cli.model.backbone import load_backbone

    tokenizer = load_backbone(config.model, None, seed=0).tokenizer
    expected = {tuple(t.tolist()) for t in tokenizer([described[c] for c in BALL_CLASSES])}
    fed = {tuple(row.tolist()) for batch in seen for row in batch}
    assert fed and fed <= expected  # every text the loss saw is a description, never a template
    missing = write_reference_csv(tmp_path / "three.csv", list(BALL_CLASSES[:3]))
    with pytest.raises(LabelsetError, match=r"1 of 4 classes have no description.*'a ball shrinking smaller'"):
        train(
            tiny_train_config(
                tmp_path, train_list=str(clip_files / "train.txt"), labels=str(missing), out=str(tmp_path / "run2")
            ),
        )
