"""The public library API: names at the top, configs that check themselves, a model loaded once."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import REPO, TINY_CONFIG
from tests.media import moving_ball_frames, write_broken, write_video

MODEL = REPO / "examples" / "model" / "tiny-motion.ezclip"
LABELS = "run,jump,swim"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    write_video(root / "a.mp4", moving_ball_frames(16, 48, "right"))
    write_video(root / "b.mp4", moving_ball_frames(16, 48, "left"))
    write_broken(root / "c_broken.mp4", "random")
    return root


def test_public_names_import_from_the_top_without_torch():
    names = "load_tagger, Tagger, tag_videos, TagResult, TagConfig, load_store, load_model, UsageError, __version__"
    code = f"import sys; from ezclip_cli import {names}; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "False"  # TagConfig and the errors are light; the rest load on call
    import ezclip_cli

    assert set(ezclip_cli.__all__) <= set(dir(ezclip_cli))
    for name in ezclip_cli.__all__:
        assert getattr(ezclip_cli, name) is not None
    with pytest.raises(AttributeError):
        ezclip_cli.not_a_name  # noqa: B018


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top_k": 0}, "--top-k must be a whole number of at least 1 (got 0)"),
        ({"batch_size": 0}, "--batch-size must be a whole number of at least 1"),
        ({"stride": 2.0}, "--stride needs --window"),
        ({"window": -1.0}, "--window must be a number of seconds above 0"),
        ({"output_format": "xml"}, "--format must be one of csv, json, jsonl"),
        ({"threshold": 2.0}, "--threshold is a probability between 0 and 1"),
    ],
)
def test_tag_config_checks_itself_in_the_flags_words(options, message):
    from ezclip_cli import TagConfig, UsageError

    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TagConfig(labels="a,b", **options)


def test_tag_videos_names_an_unknown_option():
    from ezclip_cli import UsageError, tag_videos

    with pytest.raises(UsageError, match="unknown option 'topk'"):
        tag_videos(["x.mp4"], "a,b", checkpoint=MODEL, topk=3)


def test_a_tagger_loads_once_and_tags_like_tag_videos(clips, monkeypatch, tmp_path):
    from ezclip_cli import load_tagger, tag_videos
    from ezclip_cli.tag import predictors

    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    tagger = load_tagger(MODEL, device="cpu")
    built = []
    original = predictors.build_classifier
    monkeypatch.setattr(predictors, "build_classifier", lambda *a, **k: built.append(1) or original(*a, **k))
    first = tagger.tag([clips], LABELS, workers=0, top_k=2)
    second = tagger.tag([clips], LABELS, workers=0, top_k=3)
    assert len(built) == 1  # the label set is encoded once for this tagger
    assert [r.status for r in first] == ["ok", "ok", "error"]  # a bad video is a row, not an exception
    assert [r.labels[:2] for r in first] == [r.labels[:2] for r in second]
    once = tag_videos([clips], LABELS, checkpoint=MODEL, workers=0, top_k=2, device="cpu")
    assert [(r.labels, r.scores, r.model_id) for r in once] == [(r.labels, r.scores, r.model_id) for r in first]
    assert first[0].model_id == tagger.model_id and tagger.num_frames == first[0].num_frames


def test_tagger_embed_gives_one_vector_per_row_and_nan_for_failures(clips):
    from ezclip_cli import UsageError, load_tagger

    tagger = load_tagger(checkpoint="none", model=str(TINY_CONFIG), pretrained="none", device="cpu")
    rows, vectors = tagger.embed([clips], workers=0)
    assert [r.status for r in rows] == ["ok", "ok", "error"]
    assert vectors.shape[0] == 3 and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1, atol=1e-4)
    assert np.isnan(vectors[2]).all()
    windows, per_window = tagger.embed([clips / "a.mp4"], window=0.5, workers=0)
    assert len(windows) == per_window.shape[0] > 1 and all(w.start is not None for w in windows)
    tagger.set_labels(LABELS)  # encodes now; tagging afterwards reuses it
    with pytest.raises(UsageError, match="device is fixed"):
        tagger.tag([clips], LABELS, device="cpu")
