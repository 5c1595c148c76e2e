"""The ONNX graphs of a bundle: the video encoder, the text encoder with its tokenizer, their metadata.

export.py decides what goes into a bundle and calls these; bundle_verify.py checks the graphs
against PyTorch before the bundle is put in place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.errors import ExportError
from ezclip_cli.model.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, TEXT_ONNX, TOKENIZER_FILE, VIDEO_ONNX

if TYPE_CHECKING:
    import torch

    from ezclip_cli.model.ezclip import EZClip

log = logging.getLogger(__name__)

OPSET = 17


def write_onnx_graphs(model: EZClip, folder: Path, config: dict[str, Any], text_encoder: bool) -> None:
    """video_encoder.onnx (and with `text_encoder` the text encoder and its tokenizer) into `folder`;
    records them in `config` and stamps each graph with the bundle's settings."""
    log.info("exporting the video encoder to ONNX (opset %d)", OPSET)
    write_video_encoder(model, folder / VIDEO_ONNX)
    config["files"]["video_encoder"] = VIDEO_ONNX
    if text_encoder:
        log.info("exporting the text encoder to ONNX")
        config["tokenizer"] = write_text_files(model, folder)
        config["files"].update(text_encoder=TEXT_ONNX, tokenizer=TOKENIZER_FILE)
    set_onnx_metadata(folder, config)


@contextlib.contextmanager
def _exporting() -> Iterator[None]:
    """MultiheadAttention's fused fast path has no ONNX form; tracer warnings are expected (T, S fixed)."""
    import torch

    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def _onnx_export(
    module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str, axis: str
) -> None:
    import torch

    # torch.onnx.export restores the wrapper's train flag onto the whole tree afterwards; a fresh
    # nn.Module is in train mode, which would leave dropout and drop-path on in the eager model.
    module.eval()
    with _exporting():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: axis}, output_name: {0: axis}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter: the proven path for CLIP
        )


def write_video_encoder(model: EZClip, path: Path) -> None:
    """video_encoder.onnx: video (B, T, 3, S, S) float -> embedding (B, D), dynamic B."""
    import torch

    class VideoEncoder(torch.nn.Module):
        def __init__(self, ezclip: EZClip):
            super().__init__()
            self.ezclip = ezclip

        def forward(self, video: torch.Tensor) -> torch.Tensor:
            return self.ezclip.encode_video(video)  # (B, T, 3, S, S) -> (B, D), normalised

    size = model.backbone.image_size
    example = torch.randn(2, model.num_frames, 3, size, size)  # B=2 so no size-1 broadcast is baked in
    _onnx_export(VideoEncoder(model), example, path, "video", "embedding", "B")
    model.eval()


def write_text_encoder(model: EZClip, path: Path) -> None:
    """text_encoder.onnx: tokens (K, L) int64 -> embedding (K, D), normalised, dynamic K.

    EZClip.encode_text cuts the batch to its longest prompt, a length a traced graph would
    freeze; open_clip's own encode_text runs all L positions, which gives the same numbers
    (CLIP pools the EOT token under a causal mask).
    """
    import torch
    import torch.nn.functional as F

    class TextEncoder(torch.nn.Module):
        def __init__(self, ezclip: EZClip):
            super().__init__()
            self.ezclip = ezclip

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return F.normalize(self.ezclip.clip.encode_text(tokens), dim=-1)  # (K, L) -> (K, D)

    example = model.tokenize(["a video of action", "{}"])  # (2, L)
    _onnx_export(TextEncoder(model), example, path, "tokens", "embedding", "K")
    model.eval()


def write_text_files(model: EZClip, folder: Path) -> dict[str, Any]:
    """text_encoder.onnx and its tokenizer.json (CLIP's BPE, built from open_clip's vocabulary);
    refuses a model whose open_clip tokenizer is not that one. Returns config.json's 'tokenizer'."""
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    from ezclip_cli.model.tokenizer import ClipTokenizer

    tokenizer = model.tokenizer
    clean = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "")
    if not isinstance(tokenizer, SimpleTokenizer) or clean != "_clean_lower" or tokenizer.reduction_fn is not None:
        raise ExportError(
            f"--text-encoder supports open_clip's CLIP BPE tokenizer only; {model.config.backbone} uses "
            f"{type(tokenizer).__name__}: export without --text-encoder and ship --labels instead"
        )
    write_text_encoder(model, folder / TEXT_ONNX)
    context_length = int(tokenizer.context_length)
    ClipTokenizer.from_vocab(default_bpe(), context_length).save(folder / TOKENIZER_FILE)
    return {
        "kind": "clip-bpe",
        "context_length": context_length,
        # tokenizer.json cannot hold these steps; ClipTokenizer runs them before it (tokenizer.py).
        "clean": "open_clip 'lower': ftfy.fix_text, html.unescape twice, whitespace runs to one space, str.lower",
    }


def set_onnx_metadata(folder: Path, config: dict[str, Any]) -> None:
    """Labels and preprocessing settings in each graph's metadata_props, so a .onnx file stands alone."""
    import onnx

    props = {
        "format": BUNDLE_FORMAT,
        "format_version": str(BUNDLE_VERSION),
        "model_id": config["model_id"],
        "backbone": str(config["backbone"]["name"]),
        "pretrained": str(config["backbone"]["pretrained"]),
        "num_frames": str(config["num_frames"]),
        "image_size": str(config["image_size"]),
        "mean": json.dumps(config["mean"]),
        "std": json.dumps(config["std"]),
        "logit_scale": repr(config["logit_scale"]),
        "embed_dim": str(config["embed_dim"]),
        "labels": json.dumps(config["labels"]["names"] if config["labels"] else [], ensure_ascii=False),
        "labelset": config["labels"]["name"] if config["labels"] else "",
        "input": "video: float32 (B, T, 3, S, S), pixels/255 normalised with mean/std",
    }
    for name in (VIDEO_ONNX, TEXT_ONNX):
        path = folder / name
        if not path.is_file():
            continue
        graph = onnx.load(str(path), load_external_data=False)
        extra = {"input": "tokens: int64 (K, context_length), CLIP BPE"} if name == TEXT_ONNX else {}
        onnx.helper.set_model_props(graph, {**props, **extra})
        onnx.save(graph, str(path))
        onnx.checker.check_model(str(path))
