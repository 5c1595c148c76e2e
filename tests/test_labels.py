"""Label sets: bundled files, every load format and error, prompt text, fingerprints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ezclip_cli.data.labels import (
    DEFAULT_TEMPLATES,
    LabelSet,
    build_prompts,
    label_to_text,
    labelset_dir,
    labelset_fingerprint,
    list_labelsets,
    load_labelset,
)
from ezclip_cli.errors import LabelsetError
from tests.helpers import put

BUNDLED_COUNTS = {"hmdb51": 51, "k400": 400, "k600": 600, "ssv2": 174, "ucf101": 101}


def error_of(spec) -> str:
    with pytest.raises(LabelsetError) as info:
        load_labelset(spec)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- bundled label sets ----------------------------------------------------------------------


def test_list_labelsets_names_every_bundled_file():
    assert list_labelsets() == sorted(BUNDLED_COUNTS)
    assert (labelset_dir() / "README.md").is_file()


@pytest.mark.parametrize("name,count", sorted(BUNDLED_COUNTS.items()))
def test_bundled_file_count_uniqueness_and_cleanliness(name, count):
    lines = (labelset_dir() / f"{name}.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # ends with one newline, no trailing blank lines
    labels = lines[:-1]
    assert len(labels) == count
    assert len(set(labels)) == count
    for label in labels:
        assert label and label == label.strip() and not label.startswith("#")
        assert "  " not in label and "\r" not in label and "\t" not in label
    loaded = load_labelset(name)
    assert loaded.labels == tuple(labels)
    assert len(loaded) == count
    assert loaded.descriptions == (None,) * count
    assert (loaded.name, loaded.source) == (name, f"bundled:{name}")


def test_k400_equals_torchvision_list():
    meta = pytest.importorskip("torchvision.models._meta")
    assert load_labelset("k400").labels == tuple(meta._KINETICS400_CATEGORIES)


def test_k600_is_official_alphabetical_list():
    k600 = load_labelset("k600").labels
    assert list(k600) == sorted(k600)
    assert (k600[0], k600[-1]) == ("abseiling", "zumba")
    for name in (
        "dyeing hair",
        "tying necktie",
        "passing American football (in game)",
        "passing american football (not in game)",
        "opening bottle (not wine)",
    ):
        assert name in k600
    k400 = load_labelset("k400").labels
    missing = [name for name in k400 if name not in k600]
    # K600 renamed or dropped 32 K400 classes (e.g. "dying hair" -> "dyeing hair")
    assert len(missing) == 32
    assert "dying hair" in missing and "tying tie" in missing


def test_ucf101_is_classind_order():
    ucf = load_labelset("ucf101").labels
    assert ucf[:3] == ("ApplyEyeMakeup", "ApplyLipstick", "Archery")
    assert ucf[46:48] == ("JumpingJack", "JumpRope")  # classInd 47, 48
    assert ucf[-3:] == ("WallPushups", "WritingOnBoard", "YoYo")
    assert list(ucf) == sorted(ucf, key=str.lower)
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", label) for label in ucf)


def test_hmdb51_folder_names_alphabetical():
    hmdb = load_labelset("hmdb51").labels
    assert list(hmdb) == sorted(hmdb)
    assert (hmdb[0], hmdb[-1]) == ("brush_hair", "wave")
    assert {"kick", "kick_ball", "sword", "sword_exercise", "flic_flac", "pullup"} <= set(hmdb)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", label) for label in hmdb)


def test_ssv2_labels_json_form_and_order():
    ssv2 = load_labelset("ssv2").labels
    assert ssv2[0] == "Approaching something with your camera"
    assert ssv2[-1] == "Wiping something off of something"
    assert "Something falling like a rock" in ssv2
    assert "Putting number of something onto something" in ssv2
    assert not any("[" in label or "]" in label for label in ssv2)
    assert list(ssv2) == sorted(ssv2)  # labels.json indexes the sorted templates


# -- label_to_text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label,text",
    [
        ("ApplyEyeMakeup", "apply eye makeup"),
        ("YoYo", "yo yo"),
        ("PlayingDaf", "playing daf"),
        ("TaiChi", "tai chi"),
        ("Archery", "archery"),
        ("JumpRope", "jump rope"),
        ("UsingATMCard", "using ATM card"),
        ("3DPrinting", "3D printing"),
        ("brush_hair", "brush hair"),
        ("Brush_Hair", "brush hair"),
        ("playing_NBA_game", "playing NBA game"),
        ("rock-climbing", "rock climbing"),
        ("abseiling", "abseiling"),
        ("playing guitar", "playing guitar"),
        ("passing American football (in game)", "passing American football (in game)"),
        ("folding a t-shirt", "folding a t-shirt"),
        ("Approaching something with your camera", "Approaching something with your camera"),
        ("  playing   guitar ", "playing guitar"),
        ("NASA", "NASA"),
        ("iPhone", "iPhone"),
    ],
)
def test_label_to_text(label, text):
    assert label_to_text(label) == text


def test_label_to_text_every_bundled_label_is_clean():
    for name in list_labelsets():
        for label in load_labelset(name).labels:
            text = label_to_text(label)
            assert text and text == " ".join(text.split()) and "_" not in text
    ssv2 = load_labelset("ssv2").labels
    assert [label_to_text(label) for label in ssv2] == list(ssv2)
    k400 = load_labelset("k400").labels
    assert [label_to_text(label) for label in k400] == list(k400)


# -- load_labelset: formats ------------------------------------------------------------------


def test_txt_comments_blank_lines_and_whitespace(tmp_path):
    path = put(tmp_path / "mine.txt", "# my labels\n\n  surfing \r\n\t# indented comment\nskate boarding\n\n")
    labelset = load_labelset(str(path))
    assert labelset.labels == ("surfing", "skate boarding")
    assert labelset.descriptions == (None, None)
    assert (labelset.name, labelset.source) == ("mine", str(path))


def test_txt_with_bom_and_other_suffix_and_pathlike(tmp_path):
    path = put(tmp_path / "classes.list", "\ufeffrun\nwalk\n".encode("utf-8"))
    assert load_labelset(path).labels == ("run", "walk")
    assert load_labelset(str(path)).name == "classes"


def test_relative_path_resolves_before_inline(tmp_path, monkeypatch):
    put(tmp_path / "a,b.txt", "x\ny\n")
    monkeypatch.chdir(tmp_path)
    assert load_labelset("a,b.txt").labels == ("x", "y")


def test_csv_with_description_column(tmp_path):
    path = put(
        tmp_path / "labels.csv",
        'id,Label,Description\n1,run,a person running fast\n2,walk,"a person walking, slowly"\n3,jump,\n',
    )
    labelset = load_labelset(str(path))
    assert labelset.labels == ("run", "walk", "jump")
    assert labelset.descriptions == ("a person running fast", "a person walking, slowly", None)
    assert labelset.name == "labels"


def test_csv_with_prompt_column_and_extra_columns(tmp_path):
    path = put(tmp_path / "p.csv", "prompt,label,extra\r\na video of running, run ,x\r\n,walk,y\r\n")
    labelset = load_labelset(str(path))
    assert labelset.labels == ("run", "walk")
    assert labelset.descriptions == ("a video of running", None)


def test_csv_label_only(tmp_path):
    path = put(tmp_path / "l.csv", "label\nrun\nwalk\n")
    labelset = load_labelset(str(path))
    assert labelset.labels == ("run", "walk")
    assert labelset.descriptions == (None, None)


def test_inline_lists():
    labelset = load_labelset("surfing, skateboarding ,playing guitar")
    assert labelset.labels == ("surfing", "skateboarding", "playing guitar")
    assert (labelset.name, labelset.source) == ("inline", "inline")
    assert labelset.descriptions == (None, None, None)
    assert load_labelset("surfing,").labels == ("surfing",)
    assert load_labelset("a,,b,").labels == ("a", "b")


def test_bundled_name_forms():
    assert load_labelset("bundled:ucf101").labels == load_labelset("ucf101").labels
    assert load_labelset(" UCF101 ").name == "ucf101"


# -- load_labelset: errors -------------------------------------------------------------------


def test_unknown_bundled_name_lists_what_exists():
    assert error_of("bundled:x") == "unknown label set 'x'; available: hmdb51, k400, k600, ssv2, ucf101"


def test_single_word_neither_name_nor_file():
    message = error_of("surfing")
    assert message.startswith("no such label file or bundled label set 'surfing'; ")
    assert "hmdb51, k400, k600, ssv2, ucf101" in message


def test_missing_file(tmp_path):
    assert error_of(str(tmp_path / "nope.txt")) == f"label file not found: '{tmp_path / 'nope.txt'}'"
    assert error_of("nope.csv") == "label file not found: 'nope.csv'"
    assert "not found" in error_of(tmp_path / "nope.txt")


def test_directory_is_not_a_label_file(tmp_path):
    assert "is a directory" in error_of(str(tmp_path))


def test_empty_spec_and_empty_inline():
    assert "empty label set spec" in error_of("  ")
    assert error_of(" , ,") == "inline label list ', ,' has no labels"


def test_duplicate_inline_label():
    assert error_of("run,walk, run") == "inline label list: duplicate label 'run' (first at item 1)"


def test_duplicate_txt_label_names_file_and_line(tmp_path):
    path = put(tmp_path / "labels.txt", "# header\nrun\nwalk\n\nrun\n")
    assert error_of(str(path)) == f"{path}:5: duplicate label 'run' (first at line 2)"


def test_duplicates_are_case_sensitive_after_strip(tmp_path):
    path = put(tmp_path / "labels.txt", "Run\nrun\n  run  \n")
    assert error_of(str(path)).startswith(f"{path}:3: duplicate label 'run'")


def test_duplicate_csv_label_names_file_and_line(tmp_path, monkeypatch):
    put(tmp_path / "labels.csv", 'label,description\nrun,"multi\nline"\nwalk,x\nrun,y\n')
    monkeypatch.chdir(tmp_path)
    assert error_of("labels.csv") == "labels.csv:5: duplicate label 'run' (first at line 2)"


def test_csv_blank_line_is_an_error(tmp_path):
    path = put(tmp_path / "b.csv", "label\nrun\n\nwalk\n")
    assert error_of(str(path)).startswith(f"{path}:3: blank line")
    path = put(tmp_path / "c.csv", "label,description\nrun,x\n , \n")
    assert error_of(str(path)).startswith(f"{path}:3: blank line")


def test_csv_empty_label_cell(tmp_path):
    path = put(tmp_path / "e.csv", "label,description\nrun,x\n,a description\n")
    assert error_of(str(path)) == f"{path}:3: empty label"


def test_csv_missing_label_column(tmp_path):
    path = put(tmp_path / "m.csv", "name,description\nrun,x\n")
    message = error_of(str(path))
    assert message.startswith(f"{path}:1: no 'label' column")
    assert "'name'" in message


def test_csv_both_description_and_prompt(tmp_path):
    path = put(tmp_path / "d.csv", "label,description,prompt\nrun,x,y\n")
    assert "both 'description' and 'prompt'" in error_of(str(path))


def test_csv_empty_file_and_header_only(tmp_path):
    assert "empty file" in error_of(str(put(tmp_path / "empty.csv", "")))
    assert error_of(str(put(tmp_path / "h.csv", "label\n"))).endswith("no labels (only a header row)")


def test_txt_with_no_labels(tmp_path):
    path = put(tmp_path / "c.txt", "# only a comment\n\n   \n")
    assert error_of(str(path)) == f"{path}: no labels (only blank lines or '#' comments)"
    assert "no labels" in error_of(str(put(tmp_path / "empty.txt", "")))


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_undecodable_bytes_name_the_line(tmp_path, suffix):
    head = b"label\n" if suffix == ".csv" else b""
    path = put(tmp_path / f"bad{suffix}", head + b"run\nwalk\ncaf\xe9\n")
    line = 4 if suffix == ".csv" else 3
    assert error_of(str(path)).startswith(f"{path}:{line}: not valid UTF-8 (byte 0xe9)")


# -- prompts and fingerprints ----------------------------------------------------------------


def test_default_templates_are_the_reference_sixteen():
    assert len(DEFAULT_TEMPLATES) == 16 == len(set(DEFAULT_TEMPLATES))
    assert all(t.count("{}") == 1 for t in DEFAULT_TEMPLATES)
    assert DEFAULT_TEMPLATES[0] == "a photo of action {}"
    assert "Can you recognize the action of {}?" in DEFAULT_TEMPLATES
    assert DEFAULT_TEMPLATES[-1] == "The woman is {}"


def test_build_prompts_default_templates():
    prompts = build_prompts(load_labelset("ApplyEyeMakeup,brush_hair"))
    assert len(prompts) == 2 and all(len(p) == 16 for p in prompts)
    assert prompts[0][0] == "a photo of action apply eye makeup"
    assert prompts[1][3] == "brush hair, an action"
    assert prompts[1][7] == "brush hair"


def test_build_prompts_with_and_without_descriptions(tmp_path):
    path = put(tmp_path / "d.csv", "label,description\nrun,a person running\nwalk,\n")
    labelset = load_labelset(str(path))
    prompts = build_prompts(labelset)
    assert prompts[0] == ["a person running"]
    assert prompts[1] == [t.replace("{}", "walk") for t in DEFAULT_TEMPLATES]
    plain = build_prompts(labelset, use_descriptions=False)
    assert plain[0] == [t.replace("{}", "run") for t in DEFAULT_TEMPLATES]


def test_build_prompts_custom_templates():
    labelset = load_labelset("TaiChi,surfing")
    prompts = build_prompts(labelset, ["a video of {}.", "{} {literal}"])
    assert prompts == [["a video of tai chi.", "tai chi {literal}"], ["a video of surfing.", "surfing {literal}"]]


@pytest.mark.parametrize("templates", [["no placeholder"], ["{} and {}"], ["ok {}", "bad"]])
def test_build_prompts_rejects_bad_templates(templates):
    with pytest.raises(LabelsetError, match=r"^template must contain '\{\}' once, where the label goes: "):
        build_prompts(load_labelset("run,"), templates)


def test_build_prompts_rejects_empty_template_list():
    with pytest.raises(LabelsetError, match="no prompt templates"):
        build_prompts(load_labelset("run,"), [])


def test_fingerprint_stable_and_sensitive():
    prompts = build_prompts(load_labelset("ucf101"))
    first = labelset_fingerprint(prompts)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert labelset_fingerprint(build_prompts(load_labelset("ucf101"))) == first
    # pinned: a change here invalidates every text-embedding cache and resume key
    assert labelset_fingerprint([["a", "b"], ["c"]]) == (
        "6540752a513beaee1b99822663e773f2d4ab8708577aaec1f322c20b8a2e03ee"
    )
    variants = [
        [["a", "b"], ["c"]],
        [["a"], ["b", "c"]],  # same texts, other grouping
        [["c"], ["a", "b"]],  # other order
        [["a", "b"], ["C"]],  # one character
        [["a", "b"], ["c "]],
        [["ab"], ["c"]],
    ]
    assert len({labelset_fingerprint(v) for v in variants}) == len(variants)
    described = build_prompts(load_labelset("ucf101"), use_descriptions=False)
    custom = build_prompts(load_labelset("ucf101"), ["{}"])
    assert labelset_fingerprint(described) == first
    assert labelset_fingerprint(custom) != first


def test_labelset_checks_lengths_and_freezes():
    labelset = LabelSet("x", ["a", "b"], [None, "d"], "inline")
    assert labelset.labels == ("a", "b") and len(labelset) == 2
    with pytest.raises(ValueError):
        LabelSet("x", ("a",), (), "inline")
    with pytest.raises(AttributeError):
        labelset.name = "y"  # type: ignore[misc]


def test_labels_module_stays_light():
    # `--help` must be instant and the library must not depend on the CLI (the house style: library first, instant help)
    import ast

    import ezclip_cli.data.labels as labels

    tree = ast.parse(Path(labels.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"torch", "typer", "open_clip", "numpy"}
