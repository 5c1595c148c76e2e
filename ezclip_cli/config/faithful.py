"""The reference code's choices, each behind its own switch; ``--faithful`` sets them all.

ezclip defaults to the standard protocol and our fixes; these switches reproduce what the
EZ-CLIP reference code (arXiv 2312.08010, github.com/Shahzadnit/EZ-CLIP) did, so its
published numbers can be compared like for like (README, "Reproducing the paper").

Training (TrainConfig keys):
    jitter_per_frame       colour jitter re-drawn for every frame (ours: once per clip)
    drop_path_positions    DropPath draws one mask per token position across the batch (ours: per video)
    raw_names              class names fed as written ("ApplyEyeMakeup"; ours: "apply eye makeup")
    train_sampling         "centre": segment centres in training (the reference's base-to-novel and
                           few-shot configs; ours: one random frame per segment)
    kshot_list             "published": the published K-shot list instead of our seeded draw
    flip                   True: horizontal flips on every dataset, SSv2 included (the reference's
                           "no flip for Something-Something" test never fires; ours: off for
                           direction-sensitive label sets)
    master_weights         resolved on the device (train.master_weights): "fp16" on GPU, where the
                           reference rounds the adapters to fp16 after every step (ours: fp32)
Evaluation (EvalConfig keys):
    ensemble               "probability": softmax per template, then averaged (ours: one averaged
                           text embedding per class)
    raw_names              as above
    splits                 "reference" for K600 zero-shot: the reference's own 11,462-video list
                           (ours: the root's --split)
    reference_drops        True: leave unscored exactly the videos the reference's drop_last loaders
                           left out of its own lists (data.reference; ours: every video scored)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ENSEMBLES = ("embedding", "probability")
SAMPLINGS = ("random", "centre")
MASTER_WEIGHTS = ("fp32", "fp16")  # what the trained parameters are stored in between optimizer steps
# K600 zero-shot videos: the root's --split, ViFi-CLIP's lists, or the reference's own list (faithful)
VIDEO_SPLITS = ("own", "published", "reference")


def faithful_train_values(config: Any) -> dict[str, Any]:
    """The switch values --faithful gives a TrainConfig (only the keys it left unset, None)."""
    recipe_kshot = config.kshot is not None
    values = {
        "jitter_per_frame": True,
        "drop_path_positions": True,
        "raw_names": True,
        # the reference's K400 zero-shot config trains on random frames; its few-shot and base-to-novel
        # configs on segment centres
        "train_sampling": "centre" if (config.base_novel or recipe_kshot) else "random",
        "kshot_list": "published" if recipe_kshot and config.dataset else None,
        "flip": True,  # utils/Augmentation.py line 21: 'some' in 'ssv2' is False, so SSv2 clips flip too
    }
    return {k: v for k, v in values.items() if getattr(config, k) is None}


def faithful_eval_values(config: Any) -> dict[str, Any]:
    """The switch values --faithful gives an EvalConfig (only the keys it left unset, None)."""
    values: dict[str, Any] = {"ensemble": "probability", "raw_names": True, "reference_drops": True}
    if config.dataset == "k600" and config.protocol == "zero-shot":
        values["splits"] = "reference"  # test.py scored its own test_600_exclusive.txt list
    return {k: v for k, v in values.items() if getattr(config, k) is None}


def dropped_by_reference(num_videos: int, batch: int) -> list[int]:
    """Indices a drop_last loader of `batch` leaves unscored: the last num_videos mod batch."""
    return list(range(num_videos - num_videos % batch, num_videos))


def check_choice(name: str, value: str | None, choices: Sequence[str]) -> list[str]:
    """[] or one problem line for a config key limited to `choices` (None = not set)."""
    return [] if value is None or value in choices else [f"{name} must be one of {', '.join(choices)}"]
