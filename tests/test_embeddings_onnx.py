"""`tag --runtime onnx --save-embeddings`: a store written by onnxruntime re-labels like the ONNX run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ezclip_cli.config import ModelConfig
from ezclip_cli.model.checkpoint import save_checkpoint
from ezclip_cli.model.ezclip import build_model
from tests.helpers import make_backbone, run_main, trained_like
from tests.media import moving_ball_frames, write_video

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

LABELS = "moving right,moving left,growing,shrinking"


def test_onnx_store_relabels_to_the_onnx_rows(tmp_path, capsys, monkeypatch):
    from ezclip_cli.export.bundle import export_bundle

    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    model = build_model(make_backbone(0), ModelConfig(num_frames=8))
    trained_like(model)
    checkpoint = save_checkpoint(tmp_path / "m.ezclip", model)
    bundle = tmp_path / "bundle"
    export_bundle(checkpoint, bundle, labels=LABELS, tolerance=1e-4)
    folder = tmp_path / "v"
    folder.mkdir()
    for i, direction in enumerate(["right", "left", "grow"]):
        write_video(folder / f"c{i}.mp4", moving_ball_frames(16, 48, direction, seed=i))
    store = tmp_path / "store"
    code, err = run_main(
        "tag",
        str(folder),
        "--labels",
        LABELS,
        "--model",
        str(bundle),
        "--runtime",
        "onnx",
        "--workers",
        "0",
        "-o",
        str(tmp_path / "onnx.jsonl"),
        "--save-embeddings",
        str(store),
        capsys=capsys,
    )
    assert code == 0, err
    # Cold text cache: the store names the bundle, which loads in PyTorch with the same fingerprint.
    code, err = run_main(
        "tag", "--from-embeddings", str(store), "--labels", LABELS, "-o", str(tmp_path / "re.jsonl"), capsys=capsys
    )
    assert code == 0, err
    tagged = [json.loads(line) for line in (tmp_path / "onnx.jsonl").read_text().splitlines()]
    relabelled = {r["path"]: r for r in (json.loads(line) for line in (tmp_path / "re.jsonl").read_text().splitlines())}
    assert len(tagged) == len(relabelled) == 3
    for row in tagged:
        other = relabelled[row["path"]]
        assert other["labels"] == row["labels"] and other["model_id"] == row["model_id"]
        assert np.allclose(other["scores"], row["scores"], atol=1e-5, rtol=0)
