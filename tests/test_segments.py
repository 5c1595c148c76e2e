"""Multi-label scoring and abstention on crafted scores; segments from windows; PySceneDetect scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import TINY_CONFIG, run_main
from tests.media import moving_ball_frames, write_video

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none"]
LABELS = "moving right,moving left,growing,shrinking"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))


# ---- scoring -------------------------------------------------------------------------------------
def crafted_scorer(**options):
    """Three labels on the axes of R^3 and a logit scale of 10: every score can be worked out by hand."""
    import torch

    from ezclip_cli.model.scoring import ScoreOptions, Scorer

    return Scorer(torch.eye(3), 10.0, ["a", "b", "c"], top_k=3, options=ScoreOptions(**options))


def crafted_embeddings():
    import torch

    video = torch.tensor([[1.0, 0.9, 0.0], [0.0, 0.0, 1.0], [-1.0, -1.0, -1.0]])
    return torch.nn.functional.normalize(video, dim=-1)


def expected_scores() -> tuple[np.ndarray, np.ndarray]:
    video = crafted_embeddings().numpy()
    cosine = video @ np.eye(3)
    logits = 10 * cosine
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return cosine, probs


def test_default_score_is_softmax_top_k():
    cosine, probs = expected_scores()
    rows = crafted_scorer()(crafted_embeddings())
    assert rows[0][0] == ["a", "b", "c"]
    assert rows[0][1] == pytest.approx(sorted(probs[0], reverse=True), abs=1e-6)
    assert all(sum(scores) == pytest.approx(1, abs=1e-5) for _, scores in rows)  # relative to the label set


def test_threshold_keeps_every_label_above_it_or_none():
    cosine, probs = expected_scores()
    assert probs[0, 0] > 0.6 and 0.3 < probs[0, 1] < 0.4 and probs[1, 2] > 0.99
    rows = crafted_scorer(threshold=0.3)(crafted_embeddings())
    assert rows[0][0] == ["a", "b"]  # two labels pass: multi-label
    assert rows[1][0] == ["c"]
    assert sorted(rows[2][0]) == ["a", "b", "c"]  # a tie at 1/3 each: all three reach 0.3
    rows = crafted_scorer(threshold=0.34)(crafted_embeddings())
    assert rows[2] == ([], []) and rows[0][0] == ["a"]  # abstains where nothing is probable enough


def test_min_score_thresholds_the_cosine_and_cosine_can_be_reported():
    cosine, _ = expected_scores()
    rows = crafted_scorer(min_score=0.7)(crafted_embeddings())
    assert [labels for labels, _ in rows] == [["a"], ["c"], []]  # b's cosine 0.669 < 0.7; row 3 all negative
    rows = crafted_scorer(score="cosine")(crafted_embeddings())
    assert rows[0][1] == pytest.approx(sorted(cosine[0], reverse=True), abs=1e-6)
    assert rows[2][1] == pytest.approx([cosine[2, 0]] * 3, abs=1e-6)
    both = crafted_scorer(score="cosine", threshold=0.3, min_score=0.7)(crafted_embeddings())
    assert both[0] == (["a"], [pytest.approx(cosine[0, 0], abs=1e-6)])


def test_score_options_change_the_label_set_id_only_when_set():
    from ezclip_cli.model.scoring import ScoreOptions, scoring_id

    assert scoring_id("abc", ScoreOptions()) == "abc"  # outputs written before stay resumable
    options = (ScoreOptions("cosine"), ScoreOptions(threshold=0.5), ScoreOptions(min_score=0.2))
    ids = {scoring_id("abc", o) for o in options}
    assert len(ids) == 3 and "abc" not in ids


# ---- segments ------------------------------------------------------------------------------------
def window(start: float, end: float, label: str | None, score: float = 0.5, path: str = "v.mp4"):
    from ezclip_cli.tag.results import TagResult

    return TagResult.from_record(
        {
            "path": path,
            "status": "ok",
            "error": None,
            "start": start,
            "end": end,
            "duration": 10.0,
            "labels": [label, "other"] if label else [],
            "scores": [score, 0.1] if label else [],
            "num_frames": 8,
            "timestamps": [start],
            "video_id": "id-" + path,
        }
    )


def test_consecutive_windows_with_the_same_top_label_merge():
    from ezclip_cli.tag.segments import merge_segments

    rows = [
        window(4, 6, "b", 0.6),
        window(0, 2, "a", 0.9),
        window(2, 4, "a", 0.7),
        window(6, 8, None),
        window(8, 10, "a", 0.5),
    ]  # out of order on purpose
    segments = merge_segments(rows)
    assert [(s.start, s.end, s.labels, s.scores, s.windows) for s in segments] == [
        (0, 4, ("a",), (0.8,), 2),
        (4, 6, ("b",), (0.6,), 1),
        (6, 8, (), (), 1),
        (8, 10, ("a",), (0.5,), 1),
    ]
    assert segments[0].num_frames == 16 and segments[0].timestamps == (0, 2)
    assert segments[0].to_record()["windows"] == 2  # the record ends with how many windows it merges


def test_overlapping_windows_give_segments_that_do_not_overlap():
    from ezclip_cli.tag.segments import merge_segments

    rows = [window(0, 2, "a"), window(1, 3, "a"), window(2, 4, "b"), window(3, 5, "b")]
    assert [(s.start, s.end, s.labels) for s in merge_segments(rows)] == [(0, 2, ("a",)), (2, 5, ("b",))]


def test_segment_writer_merges_per_video_and_passes_errors_through():
    from ezclip_cli.tag.results import ResultList, TagResult
    from ezclip_cli.tag.segments import SegmentWriter

    class Collect(ResultList):
        closed = False

        def close(self):
            self.closed = True

    inner = Collect()
    writer = SegmentWriter(inner)
    for row in [
        window(0, 2, "a", path="1.mp4"),
        window(2, 4, "a", path="1.mp4"),
        TagResult.failed("bad.mp4", "id-bad", "not a video"),
        window(0, 2, "a", path="2.mp4"),
        window(2, 4, "b", path="2.mp4"),
    ]:
        writer.write(row)
    writer.close()
    assert [(r.path, r.start, r.end) for r in inner.results] == [
        ("1.mp4", 0, 4),
        ("bad.mp4", None, None),
        ("2.mp4", 0, 2),
        ("2.mp4", 2, 4),
    ]
    assert inner.closed


# ---- scenes ----------------------------------------------------------------------------------------
SCENES_CSV = (
    "Timecode List:,00:00:02.500\n"
    "Scene Number,Start Frame,Start Timecode,Start Time (seconds),End Frame,End Timecode,End Time (seconds),"
    "Length (frames),Length (timecode),Length (seconds)\n"
    "1,1,00:00:00.000,0.000,20,00:00:02.500,2.500,20,00:00:02.500,2.500\n"
    "2,21,00:00:02.500,2.500,48,00:00:06.000,6.000,28,00:00:03.500,3.500\n"
)


def test_read_scenes_with_and_without_the_cut_list_line(tmp_path):
    from ezclip_cli.errors import VideoError
    from ezclip_cli.tag.segments import read_scenes

    (tmp_path / "a.csv").write_text(SCENES_CSV)
    assert read_scenes(tmp_path / "a.csv") == [(0.0, 2.5), (2.5, 6.0)]
    (tmp_path / "b.csv").write_text(SCENES_CSV.split("\n", 1)[1])  # list-scenes --skip-cuts
    assert read_scenes(tmp_path / "b.csv") == [(0.0, 2.5), (2.5, 6.0)]
    timecodes_only = "Scene Number,Start Timecode,End Timecode\n1,00:00:00.000,00:01:02.500\n"
    (tmp_path / "c.csv").write_text(timecodes_only)
    assert read_scenes(tmp_path / "c.csv") == [(0.0, 62.5)]
    (tmp_path / "d.csv").write_text("path,label\nx.mp4,run\n")
    with pytest.raises(VideoError, match="not a PySceneDetect scene list"):
        read_scenes(tmp_path / "d.csv")


def test_tag_scenes_and_segments_end_to_end(tmp_path, capsys):
    clip = write_video(tmp_path / "long.mp4", moving_ball_frames(48, 40, "right"), fps=8)  # 6 s
    scenes = tmp_path / "long-Scenes.csv"
    scenes.write_text(SCENES_CSV)
    out = tmp_path / "scenes.jsonl"
    code, err = run_main(
        "tag",
        str(clip),
        "--labels",
        LABELS,
        *TINY,
        "--workers",
        "0",
        "--scenes",
        str(scenes),
        "-o",
        str(out),
        capsys=capsys,
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["start"], r["end"]) for r in rows] == [(0.0, 2.5), (2.5, 6.0)]
    assert all(r["start"] <= t < r["end"] for r in rows for t in r["timestamps"])
    # A folder of VIDEO-Scenes.csv files; a video without one gets an error row, the batch goes on.
    (tmp_path / "other").mkdir()
    other = write_video(tmp_path / "other" / "none.mp4", moving_ball_frames(8, 32, "left"))
    out2 = tmp_path / "folder.jsonl"
    code, err = run_main(
        "tag",
        str(clip),
        str(other),
        "--labels",
        LABELS,
        *TINY,
        "--workers",
        "0",
        "--scenes",
        str(tmp_path),
        "-o",
        str(out2),
        capsys=capsys,
    )
    rows = [json.loads(line) for line in out2.read_text().splitlines()]
    assert code == 1 and [r["status"] for r in rows] == ["ok", "ok", "error"] and "no scene list" in rows[2]["error"]
    # Segments: windows merged where the top label agrees; they tile the video without gaps.
    out3 = tmp_path / "segments.jsonl"
    code, err = run_main(
        "tag",
        str(clip),
        "--labels",
        LABELS,
        *TINY,
        "--workers",
        "0",
        "--window",
        "1",
        "--segments",
        "-o",
        str(out3),
        capsys=capsys,
    )
    assert code == 0, err
    segments = [json.loads(line) for line in out3.read_text().splitlines()]
    assert segments[0]["start"] == 0.0 and segments[-1]["end"] == 6.0
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:]))
    assert all(a["labels"] != b["labels"] for a, b in zip(segments, segments[1:]))
    assert sum(s["windows"] for s in segments) == 6
    code, err = run_main(
        "tag", str(clip), "--labels", LABELS, *TINY, "--window", "1", "--segments", "-o", str(out3), capsys=capsys
    )
    assert code == 2 and "--overwrite" in err  # a segments file is written whole, never resumed into
    code, err = run_main("tag", str(clip), "--labels", LABELS, *TINY, "--segments", capsys=capsys)
    assert code == 2 and "--window" in err
