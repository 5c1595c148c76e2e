"""`ezclip convert --to fiftyone|labelstudio`: predictions in the layouts those tools import."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import REPO, run_cli
from tests.media import moving_ball_frames, write_broken, write_video

MODEL = REPO / "examples" / "model" / "tiny-motion.ezclip"
LABELS = "a ball moving right,a ball moving left,a ball growing,a ball shrinking"
TAG = ("-l", LABELS, "-c", str(MODEL), "--template", "{}", "-k", "2", "-j", "0", "-q")
FPS = 8


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    clips = root / "clips"
    clips.mkdir()
    for i, kind in enumerate(["right", "left", "grow"]):
        write_video(clips / f"{i}_{kind}.mp4", moving_ball_frames(24, 48, kind, seed=i), fps=FPS)  # 3 s
    write_broken(clips / "9_broken.mp4", "text")
    return root, clips, root / "whole.jsonl", root / "windows.jsonl"


def tag(outputs, capsys):
    root, clips, whole, windows = outputs
    for out, extra in ((whole, ()), (windows, ("--window", "1"))):
        if not out.exists():
            assert run_cli("tag", str(clips), *TAG, "-o", str(out), *extra, capsys=capsys).code == 1
    return root, whole, windows


def test_label_studio_tasks_and_config_match(outputs, tmp_path, capsys):
    _, whole, windows = tag(outputs, capsys)
    result = run_cli(
        "convert", str(whole), "--to", "labelstudio", "-o", str(tmp_path / "ls"), "-l", LABELS, capsys=capsys
    )
    assert result.code == 0, result.err
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    config = ET.fromstring((tmp_path / "ls" / "labeling_config.xml").read_text())
    choices = config.find("Choices")
    assert [c.get("value") for c in choices] == LABELS.split(",") and choices.get("toName") == "video"
    assert config.find("Video").get("frameRate") == "$fps" and config.find("Video").get("value") == "$video"
    predicted = [t for t in tasks if "predictions" in t]
    assert len(tasks) == 4 and len(predicted) == 3  # the broken clip is a task without a prediction
    for task in predicted:
        (result_,) = task["predictions"][0]["result"]
        assert result_["from_name"] == choices.get("name") and result_["type"] == "choices"
        assert result_["value"]["choices"][0] in LABELS.split(",") and task["data"]["fps"] == FPS
    timeline = run_cli("convert", str(windows), "--to", "labelstudio", "-o", str(tmp_path / "lw"), capsys=capsys)
    assert timeline.code == 0, timeline.err
    tasks = json.loads((tmp_path / "lw" / "tasks.json").read_text())
    name = ET.fromstring((tmp_path / "lw" / "labeling_config.xml").read_text()).find("TimelineLabels").get("name")
    ranges = [r["value"]["ranges"][0] for t in tasks if "predictions" in t for r in t["predictions"][0]["result"]]
    assert all(r["from_name"] == name for t in tasks if "predictions" in t for r in t["predictions"][0]["result"])
    # 1 s windows at 8 fps: frames 1-8, 9-16, 17-24 (1-based, as Label Studio counts them)
    assert sorted({(r["start"], r["end"]) for r in ranges}) == [(1, 8), (9, 16), (17, 24)]
    again = run_cli("convert", str(windows), "--to", "labelstudio", "-o", str(tmp_path / "lw"), capsys=capsys)
    assert again.code == 2 and "exists; use --overwrite" in again.err


def test_fiftyone_samples(outputs, tmp_path, capsys):
    _, whole, windows = tag(outputs, capsys)
    assert run_cli("convert", str(whole), "--to", "fiftyone", "-o", str(tmp_path / "fo"), capsys=capsys).code == 0
    samples = json.loads((tmp_path / "fo" / "samples.json").read_text())["samples"]
    metadata = json.loads((tmp_path / "fo" / "metadata.json").read_text())
    assert metadata["media_type"] == "video" and len(samples) == 4
    tagged = [s for s in samples if "ezclip" in s]
    assert len(tagged) == 3 and all(s["ezclip"]["_cls"] == "Classification" for s in tagged)
    assert all(0 <= s["ezclip"]["confidence"] <= 1 for s in tagged)
    assert [s for s in samples if "ezclip" not in s][0]["tags"] == ["failed"]
    assert run_cli("convert", str(windows), "--to", "fiftyone", "-o", str(tmp_path / "fw"), capsys=capsys).code == 0
    samples = json.loads((tmp_path / "fw" / "samples.json").read_text())["samples"]
    detections = [d for s in samples for d in s.get("ezclip_windows", {}).get("detections", [])]
    assert detections and all(d["_cls"] == "TemporalDetection" for d in detections)
    assert sorted({tuple(d["support"]) for d in detections}) == [(1, 8), (9, 16), (17, 24)]


def test_the_real_fiftyone_loads_the_export(outputs, tmp_path, capsys):
    fo = pytest.importorskip("fiftyone")
    _, whole, _ = tag(outputs, capsys)
    assert run_cli("convert", str(whole), "--to", "fiftyone", "-o", str(tmp_path / "fo"), capsys=capsys).code == 0
    dataset = fo.Dataset.from_dir(str(tmp_path / "fo"), dataset_type=fo.types.LegacyFiftyOneDataset)
    assert len(dataset) == 4 and dataset.media_type == "video"
    assert sum(sample.ezclip is not None for sample in dataset) == 3


def test_the_label_studio_sdk_validates_the_export(outputs, tmp_path, capsys):
    interface = pytest.importorskip("label_studio_sdk.label_interface")
    _, whole, windows = tag(outputs, capsys)
    for name, out in (("whole", whole), ("windows", windows)):
        assert run_cli("convert", str(out), "--to", "labelstudio", "-o", str(tmp_path / name), capsys=capsys).code == 0
        li = interface.LabelInterface((tmp_path / name / "labeling_config.xml").read_text())
        tasks = json.loads((tmp_path / name / "tasks.json").read_text())
        assert all(li.validate_task({k: v for k, v in t.items() if k != "predictions"}) for t in tasks)
        assert all(li.validate_prediction(p) for t in tasks for p in t.get("predictions", []))
