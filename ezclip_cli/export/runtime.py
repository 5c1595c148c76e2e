"""Read exported bundles and run them with onnxruntime and numpy alone (`ezclip tag --runtime onnx`).

The bundle layout is described in export.py, which writes it. Nothing here imports torch or
open_clip: a test runs `ezclip tag --runtime onnx` with torch made unimportable, and
loading.py reads the same bundle in PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ezclip_cli.errors import CheckpointError, ExportError, UsageError
from ezclip_cli.model.bundle import TEXT_EMBEDDINGS_FILE, TEXT_ONNX, VIDEO_ONNX, bundle_fingerprint, read_bundle_config
from ezclip_cli.model.scoring import ScoreOptions, Scorer
from ezclip_cli.model.tokenizer import ClipTokenizer
from ezclip_cli.video.preprocess import normalise
from ezclip_cli.video.reader import DecodeSettings

if TYPE_CHECKING:
    import numpy as np

ONNX_EXTRA = "pip install 'ezclip[onnx]'"


def require_onnx(runtime_only: bool = False, text: bool = False) -> None:
    """onnx, onnxruntime and tokenizers (`text`) are the optional `onnx` extra: say how to get them in one line."""
    try:
        import onnxruntime  # noqa: F401

        if not runtime_only:
            import onnx  # noqa: F401
        if text:
            import tokenizers  # noqa: F401
    except ImportError:
        what = "the ONNX runtime" if runtime_only else "ONNX export"
        raise ExportError(f"{what} needs the onnx extra: {ONNX_EXTRA}") from None


# ---- reading bundles ---------------------------------------------------------------------------


# config.json fields the loaders use, with the types they must have.


# ---- onnxruntime ---------------------------------------------------------------------------------
def onnx_session(path: Path) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for corrupt graphs
        raise CheckpointError(f"{path}: cannot load ONNX graph ({' '.join(str(exc).split())[:200]})") from exc


class OnnxPredictor:
    """An exported bundle as a predictors.VideoPredictor: onnxruntime and numpy, no torch."""

    def __init__(self, session: Any, scorer: Scorer, config: dict[str, Any]):
        self.session, self.scorer = session, scorer
        self.mean, self.std = config["mean"], config["std"]
        output = session.get_outputs()[0]
        width = output.shape[-1] if output.shape else None
        if isinstance(width, int) and width != scorer.dim:
            raise CheckpointError(
                f"{VIDEO_ONNX} gives embeddings of size {width}, the label embeddings have {scorer.dim}; "
                "the bundle's files do not belong together (re-export it)"
            )

    def embed(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        import numpy as np

        video = normalise(np.stack(pixels), self.mean, self.std)  # (B, T, 3, S, S) uint8 -> float32
        embedding = self.session.run(None, {"video": video})[0]  # (B, D)
        if embedding.ndim != 2 or embedding.shape[1] != self.scorer.dim:
            raise CheckpointError(
                f"{VIDEO_ONNX} gave embeddings of shape {tuple(embedding.shape)}, "
                f"expected (B, {self.scorer.dim}); the bundle's files do not belong together (re-export it)"
            )
        return embedding


def load_bundle_predictor(
    bundle: str | Path,
    labels: str | None,
    top_k: int,
    *,
    templates: Sequence[str] | None = None,
    use_descriptions: bool = True,
    score_options: ScoreOptions | None = None,
) -> tuple[OnnxPredictor, DecodeSettings, str]:
    """(predictor, decoding settings, bundle fingerprint) for `ezclip tag --runtime onnx`, without torch.

    `labels=None` uses the bundle's own label set; a label set whose prompts match the bundle's
    uses the shipped class embeddings; any other needs a bundle exported with --text-encoder.
    """
    import numpy as np

    from ezclip_cli.data.labels import build_prompts, labelset_fingerprint, load_labelset

    require_onnx(runtime_only=True)
    path = Path(bundle)
    config = read_bundle_config(path)
    if "video_encoder" not in config["files"]:
        raise CheckpointError(
            f"{path}: no {VIDEO_ONNX} (exported without the onnx format); re-export with --bundle-formats onnx"
        )
    shipped = config.get("labels")
    if labels is None:
        if not shipped:
            raise UsageError(f"{path} ships no label set; pass --labels")
        names, classifier = shipped["names"], _shipped_embeddings(path)
        _check_labels_file(path, names)
    else:
        labelset = load_labelset(labels)
        prompts = build_prompts(labelset, templates, use_descriptions)
        names = list(labelset.labels)
        if shipped and shipped["fingerprint"] == labelset_fingerprint(prompts):
            _check_labels_file(path, shipped["names"])
            classifier = _shipped_embeddings(path)
        elif "text_encoder" in config["files"]:
            classifier = encode_prompts(onnx_session(path / TEXT_ONNX), bundle_tokenizer(path, config), prompts)
        else:
            have = f"only for label set '{shipped['name']}'" if shipped else "no text embeddings"
            raise UsageError(
                f"{path} has {have} and no text encoder; re-export it with --labels {labels!r} or with --text-encoder"
            )
    if np.asarray(classifier).shape[0] != len(names):
        raise CheckpointError(
            f"{path}: {TEXT_EMBEDDINGS_FILE} holds {np.asarray(classifier).shape[0]} label embeddings but config.json "
            f"names {len(names)} labels; the two files disagree (edited after export?): re-export the bundle"
        )
    scorer = Scorer(classifier, float(config["logit_scale"]), names, top_k, score_options)
    predictor = OnnxPredictor(onnx_session(path / VIDEO_ONNX), scorer, config)
    settings = DecodeSettings(int(config["num_frames"]), int(config["image_size"]))
    return predictor, settings, bundle_fingerprint(path)  # resume keys on every file, ONNX graphs included


def _shipped_embeddings(path: Path) -> Any:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path / TEXT_EMBEDDINGS_FILE))["text_embeddings"]  # (K, D)
    except Exception as exc:  # missing or damaged file
        raise CheckpointError(f"{path}: cannot read {TEXT_EMBEDDINGS_FILE} ({type(exc).__name__})") from exc


def bundle_tokenizer(path: Path, config: dict[str, Any]) -> ClipTokenizer:
    """The text tokenizer of a bundle exported with --text-encoder (its tokenizer.json)."""
    require_onnx(runtime_only=True, text=True)
    name = config["files"].get("tokenizer")  # read_bundle_config checked that it names a file inside
    try:
        if name is not None:
            return ClipTokenizer.from_file(path / name)
        # Format 1 shipped CLIP's BPE vocabulary instead: the same tokenizer is built from it (0.3 s).
        spec = config.get("tokenizer") or {}
        vocab = spec["vocab"]
        if Path(vocab).name != vocab or vocab in ("", ".", ".."):
            raise ValueError(f"'tokenizer.vocab' must name a file inside the bundle, not {vocab!r}")
        return ClipTokenizer.from_vocab(path / vocab, int(spec["context_length"]))
    except Exception as exc:  # missing or damaged file (tokenizers raises plain Exception)
        raise CheckpointError(
            f"{path}: cannot read its text tokenizer ({type(exc).__name__}); re-export it with --text-encoder"
        ) from exc


def encode_prompts(session: Any, tokenizer: ClipTokenizer, prompts: list[list[str]], batch_size: int = 256) -> Any:
    """Class embeddings as EZClip.build_text_classifier makes them: prompts normalised, averaged, normalised (K, D)."""
    import numpy as np

    flat = [text for group in prompts for text in group]
    embeds = np.concatenate(
        [session.run(None, {"tokens": tokenizer(flat[i : i + batch_size])})[0] for i in range(0, len(flat), batch_size)]
    )  # (sum of prompts, D), normalised by the graph
    out, start = [], 0
    for group in prompts:
        out.append(embeds[start : start + len(group)].mean(axis=0))
        start += len(group)
    classes = np.stack(out)
    return (classes / np.linalg.norm(classes, axis=1, keepdims=True)).astype(np.float32)


def _check_labels_file(path: Path, names: list[str]) -> None:
    """labels.txt (for people and other tools) must list config.json's labels: an edit of one is refused."""
    from ezclip_cli.model.bundle import LABELS_FILE

    listed = path / LABELS_FILE
    if not listed.is_file():
        return
    try:
        lines = [line for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{listed}: unreadable ({type(exc).__name__})") from None
    if lines != list(names):
        raise CheckpointError(
            f"{path}: {LABELS_FILE} lists {len(lines)} labels but config.json {len(names)}; the two files "
            "disagree (edited after export?): re-export the bundle, or pass --labels"
        )
