"""`ezclip tag --runtime onnx` with PyTorch absent: numpy pre-processing, same top-1 as the torch path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ezclip_cli.model.bundle import bundle_fingerprint
from ezclip_cli.video.preprocess import eval_pixels
from tests.helpers import REPO
from tests.media import moving_ball_frames, write_broken, write_video

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

LABELS = "moving right,moving left,growing,shrinking"

# Installed before anything else in every process of the run (spawned decode workers too):
# `import torch` (and what needs it) fails as it would where PyTorch is not installed.
NO_TORCH = """
import sys

class _NoTorch:
    blocked = ("torch", "torchvision", "open_clip", "decord")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"No module named {name!r} (blocked: this test runs without PyTorch)")
        return None

sys.meta_path.insert(0, _NoTorch())
"""


@pytest.mark.parametrize(
    "shape, size",
    [
        ((4, 32, 32, 3), 32),
        ((3, 33, 47, 3), 32),
        ((2, 300, 200, 3), 224),
        ((2, 256, 455, 3), 224),
        ((2, 500, 700, 3), 224),
    ],
)
def test_numpy_resize_and_crop_match_torchvision(shape, size):
    import torch
    import torchvision.transforms.functional as F

    from ezclip_cli.video.transforms import eval_resize_crop

    frames = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    ours = eval_pixels(frames, size).astype(int)  # (T, 3, S, S)
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    tagged_before = eval_resize_crop(video, size).mul_(255).round_().to(torch.uint8).numpy()  # uint8 fixed-point path
    short = int(size * 256 / 224)
    float_path = F.center_crop(F.resize(video.float(), short, antialias=True), [size, size]).round().clamp(0, 255)
    assert ours.shape == (shape[0], 3, size, size)
    assert np.abs(ours - tagged_before).max() <= 1  # torchvision's uint8 kernel rounds in fixed point
    assert np.abs(ours - float_path.numpy()).max() <= 1
    assert (ours != float_path.numpy()).mean() < 1e-2  # the same filter: only float rounding at .5 ties differs


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict[str, Path]:
    from ezclip_cli.config import ModelConfig
    from ezclip_cli.export.bundle import export_bundle
    from ezclip_cli.model.checkpoint import save_checkpoint
    from ezclip_cli.model.ezclip import build_model
    from tests.helpers import make_backbone, trained_like

    root = tmp_path_factory.mktemp("onnx-runtime")
    model = build_model(make_backbone(0), ModelConfig(num_frames=8))
    trained_like(model)
    checkpoint = save_checkpoint(root / "m.ezclip", model)
    export_bundle(checkpoint, root / "bundle", labels=LABELS, tolerance=1e-4)
    videos = root / "videos"
    videos.mkdir()
    for i, direction in enumerate(["right", "left", "grow", "shrink", "right", "left"]):
        write_video(videos / f"{i}_{direction}.mp4", moving_ball_frames(16, (40, 56), direction, seed=i))
    write_broken(videos / "broken.mp4", "truncated")
    return {"checkpoint": checkpoint, "bundle": root / "bundle", "videos": videos, "root": root}


def test_tag_runtime_onnx_runs_with_torch_blocked_and_agrees_with_torch(bundle, tmp_path):
    from ezclip_cli.api import tag_videos

    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)]), "EZCLIP_CACHE": str(tmp_path / "c")}
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode != 0 and "blocked" in check.stderr  # the blocker works

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ezclip_cli",
            "tag",
            str(bundle["videos"]),
            "--model",
            str(bundle["bundle"]),
            "--runtime",
            "onnx",
            "--labels",
            LABELS,
            "-k",
            "4",
            "-f",
            "jsonl",
            "--workers",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr  # the broken file, and only it
    assert "Traceback" not in result.stderr and "blocked" not in result.stderr
    onnx_rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(onnx_rows) == 7
    assert [Path(r["path"]).name for r in onnx_rows if r["status"] != "ok"] == ["broken.mp4"]

    torch_rows = tag_videos(
        [bundle["videos"]],
        LABELS,
        checkpoint=bundle["checkpoint"],
        workers=0,
        device="cpu",
        top_k=4,
        decoder="pyav",
        cache_dir=str(tmp_path / "c2"),
    )
    by_path = {r.path: r.to_record() for r in torch_rows}
    ok = [r for r in onnx_rows if r["status"] == "ok"]
    assert len(ok) == 6
    for row in ok:
        expected = by_path[row["path"]]
        assert row["labels"][0] == expected["labels"][0], row["path"]
        assert max(abs(a - b) for a, b in zip(row["scores"], expected["scores"])) <= 1e-3
        assert row["timestamps"] == expected["timestamps"]
        # a bundle is known by all its files (ONNX graphs included), whichever runtime runs it
        assert row["model_id"] == bundle_fingerprint(bundle["bundle"])


def test_onnx_runtime_scores_with_the_same_options_as_torch(bundle, tmp_path):
    """One scorer for both runtimes: --score cosine and --threshold work on a bundle as on the checkpoint."""
    from ezclip_cli.api import tag_videos

    common = {"workers": 0, "top_k": 4, "decoder": "pyav", "cache_dir": str(tmp_path / "c")}
    onnx = {"model": str(bundle["bundle"]), "runtime": "onnx"}
    torch_model = {"checkpoint": bundle["checkpoint"], "device": "cpu"}
    cosine = {
        name: [r for r in tag_videos([bundle["videos"]], LABELS, score="cosine", **common, **flags) if r.ok]
        for name, flags in (("onnx", onnx), ("torch", torch_model))
    }
    assert len(cosine["onnx"]) == len(cosine["torch"]) == 6
    for a, b in zip(cosine["onnx"], cosine["torch"]):
        assert a.labels == b.labels and max(abs(x - y) for x, y in zip(a.scores, b.scores)) <= 1e-3
        assert all(-1 <= s <= 1 for s in a.scores) and abs(sum(a.scores) - 1) > 1e-3  # cosines, not probabilities
    abstained = tag_videos([bundle["videos"]], LABELS, threshold=1.0, **common, **onnx)
    assert [r.labels for r in abstained if r.ok] == [()] * 6  # no label is certain: every clip abstains
