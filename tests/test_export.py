"""`ezclip export`: ONNX parity, the bundle round trip, offline and torch-free loading, clean failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ezclip_cli.config import ModelConfig
from ezclip_cli.errors import EzclipError
from ezclip_cli.model.checkpoint import load_checkpoint, save_checkpoint
from ezclip_cli.model.ezclip import build_model
from tests.helpers import REPO, TINY_CONFIG, make_backbone, trained_like
from tests.media import moving_ball_frames, write_video

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

T = 8
LABELS = "moving right,moving left,growing,shrinking"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny EZ-CLIP checkpoint with trained-like weights and its bundle (labels + text encoder)."""
    from ezclip_cli.export.bundle import export_bundle

    root = tmp_path_factory.mktemp("export")
    model = build_model(make_backbone(0), ModelConfig(num_frames=T))
    trained_like(model)
    checkpoint = save_checkpoint(root / "m.ezclip", model)
    report = export_bundle(checkpoint, root / "bundle", labels=LABELS, text_encoder=True, tolerance=TOLERANCE)
    return {"checkpoint": checkpoint, "bundle": root / "bundle", "report": report, "root": root}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line]


# ---- parity -----------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_video_encoder_matches_pytorch(exported, batch):
    import onnxruntime as ort

    model, _ = load_checkpoint(exported["checkpoint"])
    model.eval()
    video = torch.randn(batch, T, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = model.encode_video(video).numpy()  # (B, D), normalised
    session = ort.InferenceSession(str(exported["bundle"] / "video_encoder.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"video": video.numpy()})[0]
    diff = float(np.abs(got - expected).max())
    print(f"parity B={batch}: max abs diff {diff:.3e}")
    assert got.shape == (batch, 64)
    assert diff <= TOLERANCE
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_onnx_text_encoder_uses_all_positions_and_matches_pytorch(exported):
    import onnxruntime as ort
    import torch.nn.functional as F

    model, _ = load_checkpoint(exported["checkpoint"])
    texts = ["x", "a photo of action moving right", "Look, the human is " + "very " * 30 + "busy"]
    tokens = model.tokenize(texts)  # (3, 77): lengths differ, so a graph frozen at one length would be wrong
    with torch.no_grad():
        expected = F.normalize(model.eval().encode_text(tokens), dim=-1).numpy()
    session = ort.InferenceSession(str(exported["bundle"] / "text_encoder.onnx"), providers=["CPUExecutionProvider"])
    for rows in ([0], [0, 1, 2]):
        got = session.run(None, {"tokens": tokens.numpy()[rows]})[0]
        assert float(np.abs(got - expected[rows]).max()) <= TOLERANCE


def test_bundled_tokenizer_gives_open_clips_ids(exported):
    from ezclip_cli.model.tokenizer import ClipTokenizer

    model, _ = load_checkpoint(exported["checkpoint"])
    ours = ClipTokenizer.from_file(exported["bundle"] / "tokenizer.json")
    texts = [
        "Playing a kind of action, ApplyEyeMakeup",
        "UsingATM's  café & naïve—résumé",
        "3D-printing_stuff 1999",
        "Tom &amp; Jerry",
        "don't!!! ...",
        "it's the dog's ball, they're sure, I'd've, we'll, I'm, you've",
        "IT'S LOUD, DON'T",
        "",
        "   ",
        "multiple     spaces\tand\nnewlines  ",
        "长城 🚴",
        "ΟΔΟΣ Σίσυφος",
        "word " * 100,
        "9" * 80,
    ]
    got, expected = ours(texts), model.tokenize(texts).numpy()
    np.testing.assert_array_equal(got, expected)
    assert got.shape == (len(texts), 77) and got.dtype == np.int64
    assert got[-2, -1] == got[-1, -1] == 49407  # truncated at 77 with <end> kept last, as open_clip does


# ---- the bundle -------------------------------------------------------------------------------
def test_bundle_layout_config_and_onnx_metadata(exported):
    import onnx
    from safetensors import safe_open
    from safetensors.numpy import load_file

    bundle = exported["bundle"]
    names = {p.name for p in bundle.iterdir()}
    assert names == {
        "config.json",
        "model.safetensors",
        "video_encoder.onnx",
        "text_encoder.onnx",
        "labels.txt",
        "text_embeddings.safetensors",
        "tokenizer.json",
    }
    assert not [p for p in bundle.parent.iterdir() if ".partial-" in p.name]  # no temporary folder left
    config = json.loads((bundle / "config.json").read_text())
    assert config["format"] == "ezclip-bundle" and config["format_version"] == 2
    assert config["files"]["tokenizer"] == "tokenizer.json" and config["tokenizer"]["context_length"] == 77
    assert config["num_frames"] == T and config["image_size"] == 32 and config["embed_dim"] == 64
    assert config["model"]["backbone_config"]["vision_cfg"]["width"] == 64  # open_clip model config travels
    assert config["backbone"]["weights"] == "embedded" and len(config["mean"]) == len(config["std"]) == 3
    assert config["labels"]["name"] == "inline" and config["labels"]["names"] == LABELS.split(",")
    assert config["verification"]["video_max_abs_diff"] <= TOLERANCE and config["verification"]["reload_identical"]
    assert (bundle / "labels.txt").read_text().splitlines() == LABELS.split(",")

    embeddings = load_file(str(bundle / "text_embeddings.safetensors"))["text_embeddings"]
    assert embeddings.shape == (4, 64)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    with safe_open(str(bundle / "model.safetensors"), framework="np") as f:
        keys = list(f.keys())
    assert any(k.startswith("learned.") for k in keys) and any(k.startswith("backbone.") for k in keys)

    graph = onnx.load(str(bundle / "video_encoder.onnx"))
    props = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(props["labels"]) == LABELS.split(",")
    assert int(props["num_frames"]) == T and int(props["image_size"]) == 32
    assert json.loads(props["mean"]) == config["mean"] and float(props["logit_scale"]) == config["logit_scale"]
    assert graph.opset_import[0].version >= 17
    (video,), (embedding,) = graph.graph.input, graph.graph.output
    dims = [d.dim_param or d.dim_value for d in video.type.tensor_type.shape.dim]
    assert (video.name, embedding.name) == ("video", "embedding")
    assert isinstance(dims[0], str) and dims[1:] == [T, 3, 32, 32]  # dynamic B


def test_round_trip_checkpoint_bundle_and_onnx_agree(exported, tmp_path):
    """Tag a rendered folder three ways: checkpoint, bundle in PyTorch, bundle in onnxruntime."""
    from ezclip_cli.api import tag_videos
    from ezclip_cli.export.runtime import load_bundle_predictor
    from ezclip_cli.tag.plan import Task
    from ezclip_cli.tag.pool import decode_task
    from ezclip_cli.video.reader import DecodeSettings

    folder = tmp_path / "videos"
    folder.mkdir()
    for i, direction in enumerate(["right", "left", "grow", "shrink", "right"]):
        write_video(folder / f"{i}_{direction}.mp4", moving_ball_frames(16, 48, direction, seed=i))
    options = {"workers": 0, "device": "cpu", "top_k": 4}
    by_checkpoint = tag_videos(
        [folder], LABELS, checkpoint=exported["checkpoint"], cache_dir=str(tmp_path / "c1"), **options
    )
    by_bundle = tag_videos([folder], LABELS, checkpoint=exported["bundle"], cache_dir=str(tmp_path / "c2"), **options)
    by_model_flag = tag_videos(
        [folder], LABELS, model=str(exported["bundle"]), cache_dir=str(tmp_path / "c3"), **options
    )

    by_runtime = tag_videos([folder], LABELS, model=str(exported["bundle"]), runtime="onnx", **options)
    predictor, settings, model_id = load_bundle_predictor(exported["bundle"], LABELS, top_k=4)
    assert settings == DecodeSettings(T, 32)  # the one preprocessing (decoder scaler + numpy)
    decoded = [decode_task(Task(Path(row.path), "id"), settings) for row in by_checkpoint]
    by_onnx = predictor.scorer(predictor.embed([d.pixels for d in decoded]))

    assert [r.status for r in by_checkpoint] == ["ok"] * 5
    top1 = [r.label for r in by_checkpoint]
    assert [r.label for r in by_bundle] == top1
    assert [r.label for r in by_model_flag] == top1
    assert [labels[0] for labels, _ in by_onnx] == top1
    assert [r.label for r in by_runtime] == top1  # `ezclip tag --model DIR --runtime onnx`
    for row, (labels, scores) in zip(by_checkpoint, by_onnx):
        assert tuple(labels) == row.labels
        assert max(abs(a - b) for a, b in zip(scores, row.scores)) <= 1e-5
    for row, other in zip(by_checkpoint, by_runtime):  # same pixels in (one preprocessing), same answer out
        assert other.labels == row.labels and max(abs(a - b) for a, b in zip(other.scores, row.scores)) <= 1e-5
    # One bundle, one id (all its files, ONNX included): results of either runtime resume each other.
    from ezclip_cli.model.bundle import bundle_fingerprint

    assert model_id == bundle_fingerprint(exported["bundle"]) == by_bundle[0].model_id == by_runtime[0].model_id
    assert by_model_flag[0].model_id == model_id


def test_new_label_set_through_the_onnx_text_encoder(exported):
    from ezclip_cli.data.labels import build_prompts, load_labelset
    from ezclip_cli.export.runtime import load_bundle_predictor

    spec = "juggling,ApplyEyeMakeup,riding a bike"
    predictor, _, _ = load_bundle_predictor(exported["bundle"], spec, top_k=2)
    model, _ = load_checkpoint(exported["checkpoint"])
    with torch.no_grad():
        expected = model.eval().build_text_classifier(build_prompts(load_labelset(spec))).numpy()
    assert predictor.scorer.labels == spec.split(",")
    assert float(np.abs(predictor.scorer.classifier - expected).max()) <= TOLERANCE


def test_format_1_bundle_with_the_bpe_vocabulary_still_encodes_new_labels(exported, tmp_path):
    """Bundles exported before tokenizer.json shipped open_clip's vocabulary file; it still works."""
    import shutil

    from open_clip.tokenizer import default_bpe

    from ezclip_cli.export.runtime import load_bundle_predictor

    old = tmp_path / "old"
    shutil.copytree(exported["bundle"], old)
    (old / "tokenizer.json").unlink()
    shutil.copyfile(default_bpe(), old / "bpe_simple_vocab_16e6.txt.gz")
    config = json.loads((old / "config.json").read_text())
    del config["files"]["tokenizer"]
    config["format_version"] = 1
    config["tokenizer"] = {"kind": "clip-bpe", "vocab": "bpe_simple_vocab_16e6.txt.gz", "context_length": 77}
    (old / "config.json").write_text(json.dumps(config))

    spec = "juggling,ApplyEyeMakeup,riding a bike"
    new, _, _ = load_bundle_predictor(exported["bundle"], spec, top_k=2)
    before, _, _ = load_bundle_predictor(old, spec, top_k=2)
    np.testing.assert_array_equal(before.scorer.classifier, new.scorer.classifier)


def test_damaged_tokenizer_is_one_clear_line(exported, tmp_path):
    import shutil

    from ezclip_cli.export.runtime import load_bundle_predictor

    bundle = tmp_path / "bundle"
    shutil.copytree(exported["bundle"], bundle)
    (bundle / "tokenizer.json").write_text("{not json")
    with pytest.raises(EzclipError, match=r"cannot read its text tokenizer .*re-export it with --text-encoder$"):
        load_bundle_predictor(bundle, "juggling,surfing", top_k=1)


def test_bundle_loads_offline_with_empty_caches_and_onnx_runs_without_torch(exported, tmp_path):
    # Fresh processes are the point: empty caches from the start, and no torch in the ONNX one.
    model, _ = load_checkpoint(exported["checkpoint"])
    video = torch.randn(2, T, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model.eval().encode_video(video).numpy()
    np.save(tmp_path / "video.npy", video.numpy())
    pixels = np.random.default_rng(0).integers(0, 256, (2, T, 3, 32, 32), dtype=np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    empty = tmp_path / "empty"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(empty / "hf"),
        "XDG_CACHE_HOME": str(empty / "xdg"),
        "HOME": str(empty / "home"),
        "TORCH_HOME": str(empty / "torch"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("EZCLIP_CACHE", None)  # every cache empty, the text cache too
    bundle = str(exported["bundle"])
    torch_code = (
        "import sys, numpy as np, torch\n"
        "from ezclip_cli.model.load import load_model\n"
        f"model = load_model({bundle!r})\n"
        f"video = torch.from_numpy(np.load({str(tmp_path / 'video.npy')!r}))\n"
        "with torch.no_grad():\n"
        f"    np.save({str(tmp_path / 'offline.npy')!r}, model.encode_video(video).numpy())\n"
    )
    result = subprocess.run([sys.executable, "-c", torch_code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert float(np.abs(np.load(tmp_path / "offline.npy") - expected).max()) == 0.0
    assert not any((empty / "hf").rglob("*.safetensors")) and not any((empty / "home").rglob("*.bin"))

    onnx_code = (
        "import sys, json, numpy as np\n"
        "from ezclip_cli.export.runtime import load_bundle_predictor\n"
        f"pixels = np.load({str(tmp_path / 'pixels.npy')!r})\n"
        f"shipped, settings, model_id = load_bundle_predictor({bundle!r}, None, 2)\n"
        f"fresh, _, _ = load_bundle_predictor({bundle!r}, 'juggling,surfing,reading a book', 2)\n"
        "rows = [p.scorer(p.embed(list(pixels))) for p in (shipped, fresh)]\n"
        "rows = rows[0] + rows[1]\n"
        "heavy = [m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules]\n"
        "print(json.dumps({'rows': rows, 'heavy': heavy, 'settings': vars(settings)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", onnx_code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["heavy"] == []  # numpy + onnxruntime only, new labels tokenised without torch too
    assert data["settings"] == {"num_frames": T, "image_size": 32, "decoder": "auto", "seek": "exact"}
    assert [len(labels) for labels, _ in data["rows"]] == [2, 2, 2, 2]
    assert {labels[0] for labels, _ in data["rows"][:2]} <= set(LABELS.split(","))


# ---- failures ---------------------------------------------------------------------------------
def test_failed_verification_exits_1_with_one_line_and_writes_nothing(exported, monkeypatch, cli, tmp_path):
    import onnx
    from onnx import numpy_helper

    import ezclip_cli.export.onnx as export_module

    original = export_module.write_video_encoder

    def corrupted(model, path):  # a wrong graph: noise on the largest weight of the exported encoder
        original(model, path)
        graph = onnx.load(str(path))
        tensor = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        weight = numpy_helper.to_array(tensor)
        noise = np.random.default_rng(0).standard_normal(weight.shape).astype(weight.dtype)  # not a constant:
        tensor.CopyFrom(numpy_helper.from_array(weight + noise, tensor.name))  # LayerNorm'd inputs cancel one
        onnx.save(graph, str(path))

    monkeypatch.setattr(export_module, "write_video_encoder", corrupted)
    out = tmp_path / "bad-bundle"
    result = cli("export", "-c", str(exported["checkpoint"]), "--out", str(out), "-q")
    assert result.code == 1 and result.out == ""
    (line,) = result.err.strip().splitlines()
    assert line.startswith("ezclip: error: verification failed: onnxruntime and PyTorch video embeddings")
    assert not out.exists() and not list(tmp_path.glob(".bad-bundle.partial-*"))


def test_clean_one_line_failures(exported, cli, tmp_path):
    checkpoint = str(exported["checkpoint"])
    result = cli("export", "-c", str(tmp_path / "nope.ezclip"), "--out", str(tmp_path / "b"))
    assert result.code == 1
    assert error_lines(result.err) == [f"ezclip: error: checkpoint not found: {tmp_path / 'nope.ezclip'}"]

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = cli("export", "-c", checkpoint, "--out", str(busy))
    assert result.code == 1 and len(error_lines(result.err)) == 1 and "--overwrite" in result.err
    result = cli("export", "-c", checkpoint, "--out", str(busy), "--overwrite")
    assert result.code == 1 and "not an ezclip bundle" in result.err and (busy / "notes.txt").exists()

    result = cli("export", "-c", checkpoint, "--out", str(tmp_path / "b"), "--format", "tflite")
    assert result.code == 2 and "available: onnx, safetensors" in result.err
    result = cli("export", "-c", checkpoint, "--out", str(tmp_path / "b"), "--no-backbone")
    assert result.code == 1 and "--no-backbone needs a backbone open_clip can name" in result.err


def test_overwrite_replaces_a_bundle(exported, cli, tmp_path):
    out = tmp_path / "bundle"
    args = ["export", "-c", str(exported["checkpoint"]), "--out", str(out), "--format", "safetensors"]
    result = cli(*args, "--labels", LABELS)
    assert result.code == 0 and result.out.strip() == str(out)
    assert cli(*args, "--overwrite").code == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]  # the old labels are gone


def test_missing_onnx_extra_is_one_clear_line(exported, monkeypatch, tmp_path):
    from ezclip_cli.export.bundle import ExportError, export_bundle
    from ezclip_cli.export.runtime import load_bundle_predictor

    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(ExportError, match=r"^ONNX export needs the onnx extra: pip install 'ezclip\[onnx\]'$"):
        export_bundle(exported["checkpoint"], tmp_path / "b")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(EzclipError, match=r"onnx extra: pip install 'ezclip\[onnx\]'"):
        load_bundle_predictor(exported["bundle"], None, 1)
    assert not (tmp_path / "b").exists()


def test_no_backbone_refers_to_a_named_backbone(tmp_path):
    """With --no-backbone only the learned weights ship; loading finds the backbone by name and weights."""
    from safetensors.torch import save_file

    from ezclip_cli.export.bundle import export_bundle
    from ezclip_cli.model.backbone import load_backbone
    from ezclip_cli.model.load import load_model, model_fingerprint

    weights = tmp_path / "tiny-weights.safetensors"
    save_file({k: v.contiguous() for k, v in make_backbone(0).clip.state_dict().items()}, str(weights))
    model = build_model(load_backbone(str(TINY_CONFIG), str(weights)), ModelConfig(num_frames=T))
    trained_like(model)
    checkpoint = save_checkpoint(tmp_path / "m.ezclip", model)  # a named backbone: referenced, not embedded
    export_bundle(checkpoint, tmp_path / "bundle", formats=("safetensors",), include_backbone=False)
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["backbone"] == {"name": str(TINY_CONFIG), "pretrained": str(weights), "weights": "reference"}
    from safetensors import safe_open

    with safe_open(str(tmp_path / "bundle" / "model.safetensors"), framework="np") as f:
        names = list(f.keys())  # a safe_open handle, not a dict
    assert not [k for k in names if k.startswith("backbone.")]
    video = torch.randn(1, T, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "bundle").encode_video(video), model.eval().encode_video(video))
    # Embedded after all, the backbone reloads as 'embedded': the bundle's model_id follows what loads.
    export_bundle(checkpoint, tmp_path / "full", formats=("safetensors",))
    full = json.loads((tmp_path / "full" / "config.json").read_text())
    assert full["backbone"]["weights"] == "embedded"
    assert full["model_id"] == model_fingerprint(load_model(tmp_path / "full")) != config["model_id"]
