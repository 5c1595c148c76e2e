"""Backbone loading: config files, refusing non-ViT towers, offline errors."""

from __future__ import annotations

import json

import pytest

from ezclip_cli.errors import BackboneError
from ezclip_cli.model.backbone import load_backbone


def test_config_json_builds_the_tiny_backbone(tiny_config_path):
    backbone = load_backbone(str(tiny_config_path), "none")
    assert backbone.image_size == 32
    assert backbone.pretrained is None
    assert all(not p.requires_grad for p in backbone.clip.parameters())
    tokens = backbone.tokenizer(["a video of surfing"])
    assert tokens.shape == (1, 77)  # the real CLIP tokenizer works offline


@pytest.mark.parametrize(
    "name, word", [("RN50", "ResNet"), ("convnext_base", "timm"), ("coca_ViT-B-32", "attention|Hugging Face|CoCa")]
)
def test_non_vit_towers_are_refused(name, word):
    with pytest.raises(BackboneError, match=word) as info:
        load_backbone(name, None, meta=True)
    assert "ViT" in str(info.value) or "class-token" in str(info.value) or "text transformer" in str(info.value)


def test_unknown_model_lists_what_exists():
    with pytest.raises(BackboneError, match="unknown model 'ViT-Z-99'; .*open_clip.list_models"):
        load_backbone("ViT-Z-99", None, meta=True)


def test_bad_config_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"embed_dim": 4}))
    with pytest.raises(BackboneError, match="not an open_clip model config"):
        load_backbone(str(bad), None)
    with pytest.raises(BackboneError, match="not found"):
        load_backbone(str(tmp_path / "missing.json"), None)


def test_missing_weights_file():
    with pytest.raises(BackboneError, match="weights file not found"):
        load_backbone("ViT-B-32", "/nonexistent/weights.bin", meta=True)


def test_local_weights_file_loads(tmp_path, tiny_config_path):
    import torch

    source = load_backbone(str(tiny_config_path), None)
    weights = tmp_path / "tiny.pt"
    torch.save(source.clip.state_dict(), weights)
    again = load_backbone(str(tiny_config_path), str(weights))
    for (name, a), (_, b) in zip(source.clip.state_dict().items(), again.clip.state_dict().items()):
        assert torch.equal(a, b), name


def test_offline_without_cache_is_one_line_naming_the_flag(tmp_path, monkeypatch, cli):
    # Offline with an empty hub cache. huggingface_hub reads HF_HUB_OFFLINE and HF_HOME at import,
    # so this process points its settings at an empty folder as a fresh process would.
    import huggingface_hub.constants

    (tmp_path / "clip.mp4").write_bytes(b"not decoded: the model fails first")  # an empty folder fails before
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = cli("tag", str(tmp_path), "--labels", "a,b", "--model", "ViT-B-32", "--pretrained", "openai")
    assert result.code == 1, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("ezclip: error")]
    assert len(lines) == 1 and "--pretrained" in lines[0] and "cache" in lines[0]
    assert "Traceback" not in result.err
