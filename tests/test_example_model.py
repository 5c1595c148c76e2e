"""The small EZ-CLIP model shipped for the quickstart still loads and tags as the README says.

examples/model/tiny-motion.ezclip is made by examples/train_example_model.sh (`ezclip train`);
examples/quickstart.sh renders the held-out example clips and tags them with it. Here the same
clips are rendered and tagged in-process, and the score must be the one the README states.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import REPO, run_main

EXAMPLES = REPO / "examples"
MODEL = EXAMPLES / "model" / "tiny-motion.ezclip"


def example_module(name: str) -> ModuleType:
    """A script in examples/ imported as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(EXAMPLES))  # score_tags imports render_clips
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    return module


def readme_score() -> tuple[int, int]:
    """The 'N/M held-out clips' the README's set-up section promises for the quickstart."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"(\d+)/(\d+) held-out clips", section)
    assert found, "the README's set-up section must state the quickstart's score as 'N/M held-out clips'"
    return int(found[1]), int(found[2])


def test_shipped_model_is_small_and_made_by_ezclip_train():
    from ezclip_cli.model.checkpoint import read_checkpoint_header

    assert MODEL.is_file() and MODEL.stat().st_size < 5_000_000
    header = read_checkpoint_header(MODEL)
    assert header["backbone_weights"] == "embedded"  # random backbone: its weights must travel with it
    import json

    extra = json.loads(header["extra"])
    assert extra["step"] == 1000 and extra["train_config"]["seed"] == 2
    assert extra["train_config"]["model"] == "examples/model/tiny-motion-backbone.json"
    script = (EXAMPLES / "train_example_model.sh").read_text()
    assert "ezclip train" in script and "examples/model/tiny-motion.ezclip" in script
    assert "--max-steps 1000" in script and "--seed 2" in script


@pytest.fixture(scope="module")
def heldout_clips(tmp_path_factory) -> Path:
    render_clips = example_module("render_clips")
    out = tmp_path_factory.mktemp("example-clips")
    render_clips.render(out, "heldout", 16, seed=2)  # what `render_clips.py OUT --train 0` writes
    (out / "labels.txt").write_text("\n".join(render_clips.CLASSES.values()) + "\n", encoding="utf-8")
    return out


def test_shipped_model_tags_the_example_clips_as_the_readme_states(heldout_clips, tmp_path, capsys):
    hits_promised, total_promised = readme_score()
    tags = tmp_path / "tags.csv"
    code, err = run_main(
        "tag",
        str(heldout_clips / "heldout"),
        "--labels",
        str(heldout_clips / "labels.txt"),
        "--checkpoint",
        str(MODEL),
        "--template",
        "{}",
        "-k",
        "2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--cache-dir",
        str(tmp_path / "cache"),
        "-o",
        str(tags),
        capsys=capsys,
    )
    assert code == 0, err
    assert "EZ-CLIP checkpoint" in err  # not plain CLIP frame averaging
    hits, total = example_module("score_tags").score(tags)
    assert (hits, total) == (hits_promised, total_promised)


def test_quickstart_script_tags_with_the_shipped_model():
    script = (EXAMPLES / "quickstart.sh").read_text()
    assert "ezclip tag" in script and "model/tiny-motion.ezclip" in script and "ezclip train" not in script
    assert "render_clips.py" in script and "score_tags.py" in script


def test_compare_models_tells_a_reproduction_from_a_different_model(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    compare = example_module("compare_models").compare
    assert compare(MODEL, MODEL) == (0.0, [], [])
    tensors = load_file(str(MODEL))
    _, metadata = example_module("compare_models").read(MODEL)
    key = next(k for k in tensors if k.startswith("learned."))
    tensors[key] = tensors[key] + torch.full_like(tensors[key], 1e-3)
    changed = tmp_path / "changed.ezclip"
    save_file(tensors, str(changed), metadata=metadata)
    worst, missing, differs = compare(MODEL, changed)
    assert worst == pytest.approx(1e-3, rel=1e-2) and missing == [] and differs == []
