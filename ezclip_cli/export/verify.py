"""A bundle checked before it is put in place: onnxruntime against PyTorch, and a bit-identical reload.

The ONNX graphs run on random input and on a rendered clip (a moving ball) and must match the
PyTorch model within a tolerance (max abs difference of normalised embeddings); the bundled
tokenizer must give open_clip's ids; model.safetensors must reload into identical embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.errors import ExportError
from ezclip_cli.export.runtime import bundle_tokenizer, encode_prompts, onnx_session
from ezclip_cli.model.bundle import TEXT_EMBEDDINGS_FILE, TEXT_ONNX, VIDEO_ONNX, WEIGHTS_FILE
from ezclip_cli.video.preprocess import normalise

if TYPE_CHECKING:
    import numpy as np

    from ezclip_cli.model.ezclip import EZClip

TEXT_CHECK_CLASSES = 8  # classes re-encoded through the ONNX text path at export (all of k400 takes minutes)


@dataclass
class Verification:
    """What `verify_bundle` measured; None where the bundle has no such part."""

    video_max_diff: float | None = None  # onnxruntime vs PyTorch, normalised video embeddings
    text_max_diff: float | None = None  # the same for the text encoder (and class embeddings)
    reload_identical: bool | None = None  # model.safetensors reloaded in PyTorch: bit-identical embeddings


def verify_bundle(
    model: EZClip, folder: Path, config: dict[str, Any], prompts: list[list[str]] | None, tolerance: float
) -> Verification:
    """onnxruntime vs PyTorch on random input and a rendered clip; the safetensors reload is bit-identical.

    Raises ExportError (one line, ending "bundle not written") on the first check that fails.
    """
    import numpy as np
    import torch

    result = Verification()
    T, S = model.num_frames, model.backbone.image_size
    rng = np.random.default_rng(0)
    inputs = {  # (B, T, 3, S, S), B = 2 and 1: the dynamic batch is exercised too
        "random input": rng.standard_normal((2, T, 3, S, S)).astype(np.float32),
        "rendered clip": normalise(moving_ball_clip(T, S)[None], config["mean"], config["std"]),
    }
    with torch.inference_mode():
        expected = {k: model.encode_video(torch.from_numpy(v)).float().numpy() for k, v in inputs.items()}
    if "video_encoder" in config["files"]:
        session = onnx_session(folder / VIDEO_ONNX)
        diffs = {k: float(np.abs(session.run(None, {"video": v})[0] - expected[k]).max()) for k, v in inputs.items()}
        result.video_max_diff = max(diffs.values())
        worst = max(diffs, key=diffs.__getitem__)
        _check(result.video_max_diff, tolerance, f"video embeddings ({worst})")
    if "text_encoder" in config["files"]:
        result.text_max_diff = _verify_text(model, folder, config, prompts, tolerance)
    if prompts is not None:
        from safetensors.numpy import load_file

        with torch.inference_mode():
            classifier = model.build_text_classifier(prompts).float().numpy()
        if not np.array_equal(load_file(str(folder / TEXT_EMBEDDINGS_FILE))["text_embeddings"], classifier):
            raise ExportError(
                f"verification failed: {TEXT_EMBEDDINGS_FILE} does not read back as written; bundle not written"
            )
    if "weights" in config["files"]:
        from ezclip_cli.model.load import load_bundle_model

        reloaded = load_bundle_model(folder, config=config)
        with torch.inference_mode():
            same = all(
                torch.equal(reloaded.encode_video(torch.from_numpy(v)).float(), torch.from_numpy(expected[k]))
                for k, v in inputs.items()
            )
        if not same:
            raise ExportError(
                f"verification failed: {WEIGHTS_FILE} reloaded in PyTorch gives other embeddings; bundle not written"
            )
        result.reload_identical = True
    return result


def _verify_text(
    model: EZClip, folder: Path, config: dict[str, Any], prompts: list[list[str]] | None, tolerance: float
) -> float:
    """Our tokenizer gives open_clip's ids; the ONNX text encoder (and class averaging) match PyTorch."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    tokenizer = bundle_tokenizer(folder, config)  # the file the runtime reads, read as the runtime does
    texts = (
        [
            "a photo of action {}",
            "Look, the human is playing guitar",
            "Can you recognize the action of BMX?",
            "ApplyEyeMakeup &amp; café — 3D-printing_stuff 2x",
            "x",
            "",
            "it's  the player's turn, don't they're",
            "ΟΔΟΣ",
            "word " * 90,  # html, unicode, digits, apostrophes, spaces, a final sigma, empty, truncation
        ]
        + [t for group in (prompts or [])[:TEXT_CHECK_CLASSES] for t in group]
    )
    ours, theirs = tokenizer(texts), model.tokenize(texts).cpu().numpy()
    if not np.array_equal(ours, theirs):
        bad = next(t for t, a, b in zip(texts, ours, theirs) if not np.array_equal(a, b))
        raise ExportError(
            f"verification failed: the bundled tokenizer disagrees with open_clip's on {bad[:60]!r}; bundle not written"
        )
    session = onnx_session(folder / TEXT_ONNX)
    with torch.inference_mode():
        expected = F.normalize(model.encode_text(torch.from_numpy(theirs)).float(), dim=-1).numpy()
    diff = float(np.abs(session.run(None, {"tokens": ours})[0] - expected).max())
    _check(diff, tolerance, "text embeddings")
    if prompts:
        from safetensors.numpy import load_file

        shipped = load_file(str(folder / TEXT_EMBEDDINGS_FILE))["text_embeddings"][:TEXT_CHECK_CLASSES]
        rebuilt = encode_prompts(session, tokenizer, prompts[:TEXT_CHECK_CLASSES])
        class_diff = float(np.abs(rebuilt - shipped).max())
        _check(class_diff, tolerance, "class embeddings")
        diff = max(diff, class_diff)
    return diff


def _check(diff: float, tolerance: float, what: str) -> None:
    if not diff <= tolerance:  # NaN fails too
        raise ExportError(
            f"verification failed: onnxruntime and PyTorch {what} differ by {diff:.2e} (tolerance {tolerance:g}); "
            "bundle not written"
        )


def moving_ball_clip(num_frames: int, size: int) -> np.ndarray:
    """A ball crossing a dim noisy background: uint8 (T, 3, S, S), content the ViT cannot ignore."""
    import numpy as np

    background = np.random.default_rng(1).integers(0, 96, (size, size, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    radius = 0.25 * size
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        centre = radius + (size - 2 * radius) * t / max(num_frames - 1, 1)
        frames[t] = background
        frames[t][(xs - centre) ** 2 + (ys - size / 2) ** 2 <= radius**2] = (255, 0, 0)
    return frames.transpose(0, 3, 1, 2)
