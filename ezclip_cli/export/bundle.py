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
    tokenizer.json                ... and CLIP's BPE tokenizer for Hugging Face `tokenizers` (tokenizer.py),
                                  so new label sets need neither torch nor open_clip (open_clip's
                                  tokenizer imports torch); format 1 shipped bpe_simple_vocab_16e6.txt.gz

This module runs the export: it checks the request and the --out folder, writes config.json, the
labels and the weights, has onnx_export.py write the ONNX graphs and bundle_verify.py check them,
and only then puts the bundle in place. Reading and running bundles lives in onnx_runtime.py
(numpy + onnxruntime, no torch) and loading.py (PyTorch).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.errors import ExportError, UsageError
from ezclip_cli.export.onnx import write_onnx_graphs
from ezclip_cli.export.runtime import require_onnx
from ezclip_cli.export.verify import verify_bundle
from ezclip_cli.model.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CONFIG_FILE,
    LABELS_FILE,
    TEXT_EMBEDDINGS_FILE,
    WEIGHTS_FILE,
    is_bundle,
)

if TYPE_CHECKING:
    from ezclip_cli.model.ezclip import EZClip

log = logging.getLogger(__name__)

FORMATS = ("onnx", "safetensors")


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
    templates: Sequence[str] = (),
    use_descriptions: bool = True,
    formats: Sequence[str] = FORMATS,
    include_backbone: bool = True,
    text_encoder: bool = False,
    tolerance: float = 1e-4,
    overwrite: bool = False,
) -> ExportReport:
    """Write the bundle of `checkpoint` to `out`, verify it, and only then put it in place.

    The files are written to a temporary folder beside `out`; it replaces `out` only when
    onnxruntime matches PyTorch within `tolerance` (max abs difference of normalised
    embeddings) and model.safetensors reloads with identical embeddings. `templates` and
    `use_descriptions` build the shipped text embeddings exactly as `ezclip tag` would with
    the same options (empty `templates`: the 16 defaults).
    """
    formats = parse_formats(formats)
    if text_encoder and "onnx" not in formats:
        raise UsageError("--text-encoder needs the onnx format (--bundle-formats onnx,...)")
    if tolerance < 0:
        raise UsageError("--tolerance must be >= 0")
    if "onnx" in formats:
        require_onnx(text=text_encoder)
    out = Path(out)
    _check_out_dir(out, overwrite)

    from ezclip_cli.model.load import load_model

    model = load_model(checkpoint=checkpoint, device="cpu")  # missing/corrupt files: one-line CheckpointError
    if not include_backbone:
        _check_nameable(model.config.pretrained)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        report = ExportReport(out=out, tolerance=tolerance)
        config = bundle_config(model, bundle_model_id(model, include_backbone))
        config["source_checkpoint"] = str(checkpoint)
        prompts = _write_labels(model, labels, tmp, config, tuple(templates), use_descriptions) if labels else None
        if "safetensors" in formats:
            from ezclip_cli.model.checkpoint import save_checkpoint

            save_checkpoint(tmp / WEIGHTS_FILE, model, include_backbone=include_backbone)
            config["files"]["weights"] = WEIGHTS_FILE
            config["backbone"]["weights"] = "embedded" if include_backbone else "reference"
        if "onnx" in formats:
            write_onnx_graphs(model, tmp, config, text_encoder)
        checks = verify_bundle(model, tmp, config, prompts, tolerance)
        report.video_max_diff, report.text_max_diff = checks.video_max_diff, checks.text_max_diff
        report.reload_identical = checks.reload_identical
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


def bundle_config(model: EZClip, model_id: str) -> dict[str, Any]:
    """config.json of the bundle (the ONNX metadata carries the same settings)."""
    from ezclip_cli.version import __version__

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


def bundle_model_id(model: EZClip, include_backbone: bool) -> str:
    """loading.model_fingerprint of the model `load_model(bundle)` gives back, so both runtimes share it.

    An embedded backbone reloads under the tag 'embedded' (checkpoint.py), whatever it was called before.
    """
    from ezclip_cli.model.load import model_fingerprint

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


def _write_labels(
    model: EZClip,
    spec: str,
    folder: Path,
    config: dict[str, Any],
    templates: tuple[str, ...] = (),
    use_descriptions: bool = True,
) -> list[list[str]]:
    """labels.txt and the normalised class embeddings (K, D), as `ezclip tag` builds them with the same options."""
    import torch
    from safetensors.torch import save_file

    from ezclip_cli.data.labels import build_prompts, labelset_fingerprint, load_labelset

    labelset = load_labelset(spec)
    prompts = build_prompts(labelset, templates or None, use_descriptions)
    log.info("encoding %d labels (%d prompts)", len(labelset), sum(map(len, prompts)))
    with torch.inference_mode():
        classifier = model.build_text_classifier(prompts).float().contiguous()  # (K, D)
    (folder / LABELS_FILE).write_text("".join(f"{label}\n" for label in labelset.labels), encoding="utf-8")
    save_file({"text_embeddings": classifier}, str(folder / TEXT_EMBEDDINGS_FILE))
    config["labels"] = {
        "name": labelset.name,
        "names": list(labelset.labels),
        "fingerprint": labelset_fingerprint(prompts),  # of the prompt texts (templates, descriptions)
        "templates": list(templates) or None,  # None: the 16 defaults
        "use_descriptions": use_descriptions,
    }
    config["files"].update(labels=LABELS_FILE, text_embeddings=TEXT_EMBEDDINGS_FILE)
    return prompts


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
