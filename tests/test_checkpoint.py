"""Checkpoints: save/load round trip, the reference importer, and refusing unsafe files."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from ezclip_cli.config import ModelConfig
from ezclip_cli.errors import CheckpointError
from ezclip_cli.model.checkpoint import load_checkpoint, save_checkpoint
from ezclip_cli.model.ezclip import build_model
from tests.helpers import OPENAI_STYLE, make_backbone, trained_like, write_reference_checkpoint

T = 8


def logits_of(model, video, texts):
    with torch.no_grad():
        classifier = model.eval().build_text_classifier([[t] for t in texts])
        return model(video, classifier)


VIDEO = torch.randn(2, T, 3, 32, 32, generator=torch.Generator().manual_seed(3))
TEXTS = ["a ball moving left", "a ball moving right", "a ball growing"]


def test_save_then_load_gives_identical_logits(tmp_path):
    model = build_model(make_backbone(0), ModelConfig(num_frames=T))
    trained_like(model)
    path = save_checkpoint(tmp_path / "m.ezclip", model, extra={"step": 12})
    loaded, extra = load_checkpoint(path)
    assert extra == {"step": 12}
    assert loaded.config.num_frames == T and loaded.config.use_prompts
    assert torch.equal(logits_of(model, VIDEO, TEXTS), logits_of(loaded, VIDEO, TEXTS))
    # Random backbones cannot be named, so their weights travel in the file.
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["backbone_weights"] == "embedded"
        names = list(f.keys())  # a safe_open handle, not a dict
    assert any(k.startswith("backbone.") for k in names)
    assert not any(".block." in k for k in names)  # open_clip's own key names


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    model = build_model(make_backbone(0), ModelConfig(num_frames=T))
    save_checkpoint(tmp_path / "m.ezclip", model)
    save_checkpoint(tmp_path / "m.ezclip", model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ezclip"]


def test_reference_checkpoint_imports_with_the_same_logits(tmp_path):
    config_path = tmp_path / "openai-style.json"
    config_path.write_text(json.dumps(OPENAI_STYLE))
    model = build_model(make_backbone(0, config_path), ModelConfig(num_frames=T))
    trained_like(model)
    # The reference stores fp16: compare against the same weights rounded to fp16.
    with torch.no_grad():
        for p in list(model.learned_parameters()) + list(model.clip.parameters()):
            p.copy_(p.half().float())
    write_reference_checkpoint(tmp_path / "ref.pt", model)
    imported, extra = load_checkpoint(tmp_path / "ref.pt")
    assert extra["imported_from"].endswith("ref.pt")
    assert imported.config.num_frames == T
    diff = (logits_of(model, VIDEO, TEXTS) - logits_of(imported, VIDEO, TEXTS)).abs().max().item()
    assert diff <= 1e-4
    # Saved as an ezclip checkpoint, the imported model is self-contained.
    path = save_checkpoint(tmp_path / "imported.ezclip", imported)
    again, _ = load_checkpoint(path)
    assert torch.equal(logits_of(imported, VIDEO, TEXTS), logits_of(again, VIDEO, TEXTS))


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {Exploit.marker}",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    Exploit.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": {"x": Exploit()}}, path)
    with pytest.raises(CheckpointError, match="run code"):
        load_checkpoint(path)
    assert not Exploit.marker.exists()
    # A raw (non-zip) pickle is refused the same way.
    raw = tmp_path / "evil2.pt"
    raw.write_bytes(pickle.dumps(Exploit(), protocol=2))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not Exploit.marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty or truncated"),
        (b"hello world, not a model at all", "unknown file format"),
        (b'\x0a\x00\x00\x00\x00\x00\x00\x00{"a": 1 garbage after the header', "corrupt"),
    ],
)
def test_bad_files_get_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.ezclip"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.ezclip")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not an ezclip checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")
    torch.save({"model_state_dict": {"w": torch.zeros(2)}}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an EZ-CLIP checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_truncated_checkpoint_is_refused(tmp_path):
    model = build_model(make_backbone(0), ModelConfig(num_frames=T))
    path = save_checkpoint(tmp_path / "m.ezclip", model)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_newer_format_version_is_refused(tmp_path):
    from safetensors.torch import save_file

    config = json.dumps(ModelConfig().to_dict())
    metadata = {"format": "ezclip", "format_version": "99", "config": config}
    save_file({"learned.x": torch.zeros(1)}, tmp_path / "future.ezclip", metadata=metadata)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(tmp_path / "future.ezclip")
