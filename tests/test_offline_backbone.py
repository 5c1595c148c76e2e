"""Plain CLIP on open_clip weights that are nowhere on the machine, offline: refused before torch loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from ezclip_cli.errors import BackboneError
from ezclip_cli.hub.offline import refuse_unreachable_weights_early, weights_caches_empty


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face hub cache and an empty home (so ~/.cache/clip holds nothing)."""
    from huggingface_hub import constants

    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub


def test_offline_tag_with_no_weights_anywhere_fails_before_any_tagging_work(empty_caches, tmp_path, cli, monkeypatch):
    import ezclip_cli.tag.run

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("tagging started: the refusal came too late")

    monkeypatch.setattr(ezclip_cli.tag.run, "run_tagging", never)
    (tmp_path / "clip.mp4").write_bytes(b"never decoded")
    result = cli("tag", str(tmp_path), "--labels", "a,b", "--model", "ViT-B-32", "--pretrained", "openai")
    errors = [line for line in result.err.splitlines() if line.startswith("ezclip: error")]
    assert result.code == 1 and len(errors) == 1, result.err
    assert "no weights for ViT-B-32 (openai)" in errors[0] and "HF_HUB_OFFLINE=1" in errors[0]
    assert "--pretrained FILE" in errors[0] and "ezclip models --download" in errors[0]


def test_the_early_check_decides_only_when_no_cache_can_hold_the_weights(empty_caches, tmp_path):
    assert weights_caches_empty()
    with pytest.raises(BackboneError, match="HF_HUB_OFFLINE=1"):
        refuse_unreachable_weights_early("ViT-B-32", "openai")
    # local or random weights, and local model configs, never need a download
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"x")
    for name, pretrained in [
        ("ViT-B-32", None),
        ("ViT-B-32", "none"),
        ("ViT-B-32", str(weights)),
        ("configs/tiny.json", "openai"),
        ("hf-hub:org/repo", "openai"),
    ]:
        refuse_unreachable_weights_early(name, pretrained)
    # something in a weights cache: only open_clip can tell whether it is these weights
    (empty_caches / "models--timm--vit_base_patch32_clip_224.openai").mkdir()
    assert not weights_caches_empty()
    refuse_unreachable_weights_early("ViT-B-32", "openai")
