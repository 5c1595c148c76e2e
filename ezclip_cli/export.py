"""Export an EZ-CLIP model as a self-contained bundle, verified before it is reported.

A bundle is a folder that needs no download to run:

    config.json                   format, ModelConfig (with the open_clip model config), num_frames,
                                  image_size, mean/std, logit_scale, labels, files, measured parity
    model.safetensors             an ezclip checkpoint (checkpoint.py layout): `learned.*` and, unless
                                  --no-backbone, the frozen `backbone.*`; `load_model(DIR)` reads it
    video_encoder.onnx            video (B, T, 3, S, S) normalised pixels -> embedding (B, D), L2-normalised
    labels.txt                    with --labels: one label a line ...
    text_embeddings.safetensors   ... and their class embeddings `text_embeddings` (K, D), normalised
    text_encoder.onnx             with --text-encoder: tokens (K, 77) int64 -> embedding (K, D), normalised
    bpe_simple_vocab_16e6.txt.gz  ... and CLIP's BPE vocabulary, so new label sets need neither torch
                                  nor open_clip (open_clip's tokenizer imports torch)

Reading and running bundles lives in onnx_runtime.py (numpy + onnxruntime, no torch) and
loading.py (PyTorch); this module only writes and verifies them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ezclip_cli.errors import ExportError, UsageError
from ezclip_cli.onnx_runtime import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CONFIG_FILE,
    LABELS_FILE,
    TEXT_EMBEDDINGS_FILE,
    TEXT_ONNX,
    VIDEO_ONNX,
    VOCAB_FILE,
    WEIGHTS_FILE,
    encode_prompts,
    is_bundle,
    onnx_session,
    require_onnx,
)
from ezclip_cli.preprocess import normalise
from ezclip_cli.tokenizer import ClipTokenizer

log = logging.getLogger(__name__)

FORMATS = ("onnx", "safetensors")
OPSET = 17
TEXT_CHECK_CLASSES = 8  # classes re-encoded through the ONNX text path at export (all of k400 takes minutes)


@dataclass
class ExportReport:
    """What `export_bundle` wrote and what it measured."""

    out: Path
    files: dict[str, int] = field(default_factory=dict)  # name -> bytes
    video_max_diff: float | None = None  # onnxruntime vs PyTorch, normalised video embeddings
    text_max_diff: float | None = None  # the same for the text encoder (and class embeddings)
    reload_identical: bool | None = None  # model.safetensors reloaded in PyTorch: bit-identical embeddings
    tolerance: float = 1e-4

    def summary_lines(self) -> list[str]:
        lines = [f"bundle {self.out}"]
        width = max(len(name) for name in self.files)
        lines += [f"  {name:<{width}}  {_human(size):>9}" for name, size in self.files.items()]
        checks = []
        if self.video_max_diff is not None:
            checks.append(f"video max abs diff {self.video_max_diff:.2e}")
        if self.text_max_diff is not None:
            checks.append(f"text max abs diff {self.text_max_diff:.2e}")
        if checks:
            lines.append(f"verified onnxruntime vs PyTorch: {', '.join(checks)} (tolerance {self.tolerance:g})")
        if self.reload_identical:
            lines.append("verified model.safetensors reloads with identical embeddings")
        return lines


# ---- export ------------------------------------------------------------------------------------
def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """'onnx,safetensors' -> ('onnx', 'safetensors'); an unknown name is a usage error."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(i.strip().lower() for i in items if i.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise UsageError(f"unknown export format '{','.join(unknown) or text}'; available: {', '.join(FORMATS)}")
    return names


def export_bundle(
    checkpoint: str | Path,
    out: str | Path,
    *,
    labels: str | None = None,
    formats: Sequence[str] = FORMATS,
    include_backbone: bool = True,
    text_encoder: bool = False,
    tolerance: float = 1e-4,
    overwrite: bool = False,
) -> ExportReport:
    """Write the bundle of `checkpoint` to `out`, verify it, and only then put it in place.

    The files are written to a temporary folder beside `out`; it replaces `out` only when
    onnxruntime matches PyTorch within `tolerance` (max abs difference of normalised
    embeddings) and model.safetensors reloads with identical embeddings.
    """
    formats = parse_formats(formats)
    if text_encoder and "onnx" not in formats:
        raise UsageError("--text-encoder needs the onnx format (--bundle-formats onnx,...)")
    if tolerance < 0:
        raise UsageError("--tolerance must be >= 0")
    if "onnx" in formats:
        require_onnx()
    out = Path(out)
    _check_out_dir(out, overwrite)

    from ezclip_cli.loading import load_model

    model = load_model(checkpoint=checkpoint, device="cpu")  # missing/corrupt files: one-line CheckpointError
    if not include_backbone:
        _check_nameable(model.config.pretrained)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        report = ExportReport(out=out, tolerance=tolerance)
        config = bundle_config(model, bundle_model_id(model, include_backbone))
        config["source_checkpoint"] = str(checkpoint)
        prompts = _write_labels(model, labels, tmp, config) if labels else None
        if "safetensors" in formats:
            from ezclip_cli.checkpoint import save_checkpoint

            save_checkpoint(tmp / WEIGHTS_FILE, model, include_backbone=include_backbone)
            config["files"]["weights"] = WEIGHTS_FILE
            config["backbone"]["weights"] = "embedded" if include_backbone else "reference"
        if "onnx" in formats:
            log.info("exporting the video encoder to ONNX (opset %d)", OPSET)
            write_video_encoder(model, tmp / VIDEO_ONNX)
            config["files"]["video_encoder"] = VIDEO_ONNX
            if text_encoder:
                log.info("exporting the text encoder to ONNX")
                config["tokenizer"] = _write_text_encoder(model, tmp)
                config["files"]["text_encoder"] = TEXT_ONNX
            set_onnx_metadata(tmp, config)
        verify_bundle(model, tmp, config, prompts, report)
        config["verification"] = {
            "tolerance": tolerance,
            "video_max_abs_diff": report.video_max_diff,
            "text_max_abs_diff": report.text_max_diff,
            "reload_identical": report.reload_identical,
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        report.files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
        _put_in_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def bundle_config(model: Any, model_id: str) -> dict[str, Any]:
    """config.json of the bundle (the ONNX metadata carries the same settings)."""
    from ezclip_cli import __version__

    backbone = model.backbone
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "ezclip_version": __version__,
        "model_id": model_id,  # = loading.model_fingerprint(load_model(bundle)): tagging's resume key
        "model": model.config.to_dict(),  # ModelConfig, open_clip model config included
        "backbone": {"name": model.config.backbone, "pretrained": model.config.pretrained, "weights": None},
        "num_frames": model.num_frames,
        "image_size": backbone.image_size,
        "mean": list(backbone.mean),
        "std": list(backbone.std),
        "embed_dim": int(model.config.backbone_config["embed_dim"]),
        "logit_scale": float(model.logit_scale),
        "context_length": int(model.config.backbone_config.get("text_cfg", {}).get("context_length", 77)),
        "labels": None,
        "tokenizer": None,
        "files": {},
    }


def bundle_model_id(model: Any, include_backbone: bool) -> str:
    """loading.model_fingerprint of the model `load_model(bundle)` gives back, so both runtimes share it.

    An embedded backbone reloads under the tag 'embedded' (checkpoint.py), whatever it was called before.
    """
    from ezclip_cli.loading import model_fingerprint

    if not include_backbone or model.config.pretrained == "embedded":
        return model_fingerprint(model)
    return model_fingerprint(model, reloaded_as="embedded")


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):  # said before the model loads, not after
        raise ExportError(f"cannot write --out {out}: the folder {parent} is read-only")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f"--out {out} exists and is not empty; use --overwrite or another folder")
        if not is_bundle(out):  # --overwrite replaces a bundle, never an arbitrary folder
            raise ExportError(f"refusing to overwrite {out}: it is not an ezclip bundle (no {CONFIG_FILE} of ours)")


def _check_nameable(pretrained: str | None) -> None:
    if pretrained in (None, "embedded"):
        raise ExportError(
            "--no-backbone needs a backbone open_clip can name (name and tag); this model's backbone has "
            "random or embedded weights, so they must ship in the bundle (drop --no-backbone)"
        )
    if os.sep in pretrained or Path(pretrained).suffix in (".bin", ".pt", ".pth", ".safetensors"):
        log.warning(
            "--no-backbone: the bundle refers to the local weights file %s; it loads only where that file is",
            pretrained,
        )


def _put_in_place(tmp: Path, out: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for path in tmp.iterdir():  # mkdtemp/mkstemp make private files; a bundle is meant to be shared
        os.chmod(path, 0o666 & ~umask)
    os.chmod(tmp, 0o777 & ~umask)
    if out.is_dir():
        shutil.rmtree(out) if any(out.iterdir()) else out.rmdir()
    os.replace(tmp, out)


def _write_labels(model: Any, spec: str, folder: Path, config: dict[str, Any]) -> list[list[str]]:
    """labels.txt and the normalised class embeddings (K, D), as `ezclip tag` builds them."""
    import torch
    from safetensors.torch import save_file

    from ezclip_cli.labels import build_prompts, labelset_fingerprint, load_labelset

    labelset = load_labelset(spec)
    prompts = build_prompts(labelset)
    log.info("encoding %d labels (%d prompts)", len(labelset), sum(map(len, prompts)))
    with torch.inference_mode():
        classifier = model.build_text_classifier(prompts).float().contiguous()  # (K, D)
    (folder / LABELS_FILE).write_text("".join(f"{label}\n" for label in labelset.labels), encoding="utf-8")
    save_file({"text_embeddings": classifier}, str(folder / TEXT_EMBEDDINGS_FILE))
    config["labels"] = {
        "name": labelset.name,
        "names": list(labelset.labels),
        "fingerprint": labelset_fingerprint(prompts),  # of the prompt texts (default templates, descriptions)
        "templates": None,
        "use_descriptions": True,
    }
    config["files"].update(labels=LABELS_FILE, text_embeddings=TEXT_EMBEDDINGS_FILE)
    return prompts


# ---- ONNX graphs -------------------------------------------------------------------------------
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


def _onnx_export(module: Any, example: Any, path: Path, input_name: str, output_name: str, axis: str) -> None:
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


def write_video_encoder(model: Any, path: Path) -> None:
    """video_encoder.onnx: video (B, T, 3, S, S) float -> embedding (B, D), dynamic B."""
    import torch

    class VideoEncoder(torch.nn.Module):
        def __init__(self, ezclip: Any):
            super().__init__()
            self.ezclip = ezclip

        def forward(self, video: torch.Tensor) -> torch.Tensor:
            return self.ezclip.encode_video(video)  # (B, T, 3, S, S) -> (B, D), normalised

    size = model.backbone.image_size
    example = torch.randn(2, model.num_frames, 3, size, size)  # B=2 so no size-1 broadcast is baked in
    _onnx_export(VideoEncoder(model), example, path, "video", "embedding", "B")
    model.eval()


def write_text_encoder(model: Any, path: Path) -> None:
    """text_encoder.onnx: tokens (K, L) int64 -> embedding (K, D), normalised, dynamic K.

    EZClip.encode_text cuts the batch to its longest prompt, a length a traced graph would
    freeze; open_clip's own encode_text runs all L positions, which gives the same numbers
    (CLIP pools the EOT token under a causal mask).
    """
    import torch
    import torch.nn.functional as F

    class TextEncoder(torch.nn.Module):
        def __init__(self, ezclip: Any):
            super().__init__()
            self.ezclip = ezclip

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return F.normalize(self.ezclip.clip.encode_text(tokens), dim=-1)  # (K, L) -> (K, D)

    example = model.tokenize(["a video of action", "{}"])  # (2, L)
    _onnx_export(TextEncoder(model), example, path, "tokens", "embedding", "K")
    model.eval()


def _write_text_encoder(model: Any, folder: Path) -> dict[str, Any]:
    """text_encoder.onnx and the BPE vocabulary it needs; refuses tokenizers ClipTokenizer cannot match."""
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    tokenizer = model.tokenizer
    clean = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "")
    if not isinstance(tokenizer, SimpleTokenizer) or clean != "_clean_lower" or tokenizer.reduction_fn is not None:
        raise ExportError(
            f"--text-encoder supports open_clip's CLIP BPE tokenizer only; {model.config.backbone} uses "
            f"{type(tokenizer).__name__}: export without --text-encoder and ship --labels instead"
        )
    write_text_encoder(model, folder / TEXT_ONNX)
    shutil.copyfile(default_bpe(), folder / VOCAB_FILE)
    return {"kind": "clip-bpe", "vocab": VOCAB_FILE, "context_length": int(tokenizer.context_length)}


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


# ---- verification ------------------------------------------------------------------------------
def verify_bundle(
    model: Any, folder: Path, config: dict[str, Any], prompts: list[list[str]] | None, report: ExportReport
) -> None:
    """onnxruntime vs PyTorch on random input and a rendered clip; the safetensors reload is bit-identical."""
    import numpy as np
    import torch

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
        report.video_max_diff = max(diffs.values())
        worst = max(diffs, key=diffs.__getitem__)
        _check(report.video_max_diff, report.tolerance, f"video embeddings ({worst})")
    if "text_encoder" in config["files"]:
        report.text_max_diff = _verify_text(model, folder, config, prompts, report.tolerance)
    if prompts is not None:
        from safetensors.numpy import load_file

        with torch.inference_mode():
            classifier = model.build_text_classifier(prompts).float().numpy()
        if not np.array_equal(load_file(str(folder / TEXT_EMBEDDINGS_FILE))["text_embeddings"], classifier):
            raise ExportError(
                f"verification failed: {TEXT_EMBEDDINGS_FILE} does not read back as written; bundle not written"
            )
    if "weights" in config["files"]:
        from ezclip_cli.loading import load_bundle_model

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
        report.reload_identical = True


def _verify_text(
    model: Any, folder: Path, config: dict[str, Any], prompts: list[list[str]] | None, tolerance: float
) -> float:
    """Our tokenizer gives open_clip's ids; the ONNX text encoder (and class averaging) match PyTorch."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    tokenizer = ClipTokenizer(folder / VOCAB_FILE, config["tokenizer"]["context_length"])
    texts = (
        [
            "a photo of action {}",
            "Look, the human is playing guitar",
            "Can you recognize the action of BMX?",
            "ApplyEyeMakeup &amp; café — 3D-printing_stuff 2x",
            "x",
            "word " * 90,  # html, unicode, digits, truncation
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


def moving_ball_clip(num_frames: int, size: int) -> Any:
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


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
