"""ModelSpec: the model flags resolved once, at the edge, and carried as one immutable object."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from tests.helpers import REPO, TINY_CONFIG, run_cli
from tests.media import moving_ball_frames, write_video

MODEL = REPO / "examples" / "model" / "tiny-motion.ezclip"


def test_what_the_flags_mean(tmp_path):
    from ezclip_cli.errors import CheckpointError
    from ezclip_cli.model.spec import ModelSpec, resolve_model

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(MODEL, run / "best.ezclip")
    assert resolve_model(run).checkpoint == run / "best.ezclip"  # a training run's folder: its best checkpoint
    assert resolve_model(MODEL).kind == "checkpoint"
    plain = resolve_model("none", model=str(TINY_CONFIG), pretrained="none", num_frames=4)
    assert (plain.kind, plain.backbone, plain.num_frames) == ("plain", str(TINY_CONFIG), 4)
    assert resolve_model(model=str(TINY_CONFIG)).kind == "plain"  # --model without a checkpoint: plain CLIP
    with pytest.raises(CheckpointError, match="checkpoint not found: .*missing.ezclip"):
        resolve_model(tmp_path / "missing.ezclip")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.num_frames = 8  # type: ignore[misc]
    for spec in (plain, resolve_model(MODEL)):
        again = ModelSpec.from_dict(spec.to_dict())  # what an embedding store keeps, loaded back without lookups
        assert (again.kind, again.backbone, again.pretrained, again.num_frames) == (
            spec.kind,
            spec.backbone,
            spec.pretrained,
            spec.num_frames,
        )


def test_tag_resolves_the_model_once_and_loads_what_it_resolved(tmp_path, capsys, monkeypatch):
    from ezclip_cli.model import load, spec

    write_video(tmp_path / "a.mp4", moving_ball_frames(8, 32, "right"))
    resolved, loaded = [], []
    real_resolve, real_load = spec.resolve_model, load.load_spec

    def counting_resolve(*args, **kwargs):
        resolved.append(real_resolve(*args, **kwargs))
        return resolved[-1]

    def recording_load(given, **kwargs):
        loaded.append(given)
        return real_load(given, **kwargs)

    monkeypatch.setattr(spec, "resolve_model", counting_resolve)
    monkeypatch.setattr(load, "load_spec", recording_load)
    result = run_cli("tag", str(tmp_path), "-l", "a,b", "-c", str(MODEL), "-j", "0", "--template", "{}", capsys=capsys)
    assert result.code == 0, result.err
    assert len(resolved) == 1 and loaded == resolved  # one resolution; the model loaded is the one resolved
