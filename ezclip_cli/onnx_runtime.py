"""Read exported bundles and run them with onnxruntime and numpy alone (`ezclip tag --runtime onnx`).

The bundle layout is described in export.py, which writes it. Nothing here imports torch or
open_clip: a test runs `ezclip tag --runtime onnx` with torch made unimportable, and
loading.py reads the same bundle in PyTorch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ezclip_cli.errors import CheckpointError, ExportError, UsageError
from ezclip_cli.preprocess import normalise
from ezclip_cli.tokenizer import ClipTokenizer

BUNDLE_FORMAT = "ezclip-bundle"
BUNDLE_VERSION = 1
ONNX_EXTRA = "pip install 'ezclip[onnx]'"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VIDEO_ONNX = "video_encoder.onnx"
TEXT_ONNX = "text_encoder.onnx"
LABELS_FILE = "labels.txt"
TEXT_EMBEDDINGS_FILE = "text_embeddings.safetensors"
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"


def require_onnx(runtime_only: bool = False) -> None:
    """onnx and onnxruntime are the optional `onnx` extra: say how to get them in one line."""
    try:
        import onnxruntime  # noqa: F401

        if not runtime_only:
            import onnx  # noqa: F401
    except ImportError:
        what = "the ONNX runtime" if runtime_only else "ONNX export"
        raise ExportError(f"{what} needs the onnx extra: {ONNX_EXTRA}") from None


# ---- reading bundles ---------------------------------------------------------------------------
def is_bundle(path: str | Path) -> bool:
    """A folder with an ezclip config.json (cheap; no torch)."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_bundle_config(path: str | Path) -> dict[str, Any]:
    """config.json of a bundle, checked for format and version."""
    path = Path(path)
    if path.is_file():
        raise CheckpointError(f"{path} is a file, not an exported bundle folder (make one with `ezclip export`)")
    if not path.is_dir():
        raise CheckpointError(f"bundle not found: {path}")
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except OSError:
        raise CheckpointError(f"{path}: not an ezclip bundle (no {CONFIG_FILE})") from None
    except ValueError:
        raise CheckpointError(f"{path}/{CONFIG_FILE}: corrupt (not JSON)") from None
    if not isinstance(config, dict) or config.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"{path}: {CONFIG_FILE} is not an ezclip bundle config")
    if int(config.get("format_version", 0)) > BUNDLE_VERSION:
        raise CheckpointError(
            f"{path}: bundle format {config['format_version']} is newer than this ezclip understands "
            f"({BUNDLE_VERSION}); upgrade ezclip"
        )
    return config


# ---- onnxruntime ---------------------------------------------------------------------------------
def onnx_session(path: Path) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for corrupt graphs
        raise CheckpointError(f"{path}: cannot load ONNX graph ({' '.join(str(exc).split())[:200]})") from exc


class OnnxPredictor:
    """Batches of decoded clips -> top-k labels and scores with onnxruntime: tagging.Predictor's contract."""

    def __init__(self, session: Any, classifier: Any, labels: Sequence[str], top_k: int, config: dict[str, Any]):
        import numpy as np

        self.session, self.labels = session, list(labels)
        self.classifier = np.ascontiguousarray(classifier, dtype=np.float32)  # (K, D), normalised
        self.top_k = min(top_k, len(self.labels))
        self.mean, self.std = config["mean"], config["std"]
        self.logit_scale = np.float32(config["logit_scale"])

    def __call__(self, pixels: list[Any]) -> list[tuple[list[str], list[float]]]:
        return self.predict(pixels)[1]

    def predict(self, pixels: list[Any]) -> tuple[Any, list[tuple[list[str], list[float]]]]:
        """(normalised embeddings (B, D) float32, ranked labels and scores): tagging.Predictor.predict."""
        import numpy as np

        video = normalise(np.stack(pixels), self.mean, self.std)  # (B, T, 3, S, S) uint8 -> float32
        embedding = self.session.run(None, {"video": video})[0]  # (B, D)
        return embedding, self._rank(embedding)

    def _rank(self, embedding: Any) -> list[tuple[list[str], list[float]]]:
        import numpy as np

        logits = self.logit_scale * embedding @ self.classifier.T  # (B, K)
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1, kind="stable")[:, : self.top_k]
        return [
            ([self.labels[i] for i in row], [round(float(p[i]), 6) for i in row]) for row, p in zip(order, probs)
        ]


def load_bundle_predictor(
    bundle: str | Path,
    labels: str | None,
    top_k: int,
    *,
    templates: Sequence[str] | None = None,
    use_descriptions: bool = True,
) -> tuple[OnnxPredictor, dict[str, int], str]:
    """(predictor, {num_frames, image_size}, model_id) for `ezclip tag --runtime onnx`, without torch.

    `labels=None` uses the bundle's own label set; a label set whose prompts match the bundle's
    uses the shipped class embeddings; any other needs a bundle exported with --text-encoder.
    """
    import numpy as np

    from ezclip_cli.labels import build_prompts, labelset_fingerprint, load_labelset

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
    else:
        labelset = load_labelset(labels)
        prompts = build_prompts(labelset, templates, use_descriptions)
        names = list(labelset.labels)
        if shipped and shipped["fingerprint"] == labelset_fingerprint(prompts):
            classifier = _shipped_embeddings(path)
        elif "text_encoder" in config["files"]:
            tokenizer = ClipTokenizer(path / config["tokenizer"]["vocab"], config["tokenizer"]["context_length"])
            classifier = encode_prompts(onnx_session(path / TEXT_ONNX), tokenizer, prompts)
        else:
            have = f"only for label set '{shipped['name']}'" if shipped else "no text embeddings"
            raise UsageError(
                f"{path} has {have} and no text encoder; re-export it with --labels {labels!r} or with --text-encoder"
            )
    if np.asarray(classifier).shape[0] != len(names):
        raise CheckpointError(f"{path}: {TEXT_EMBEDDINGS_FILE} does not match its {len(names)} labels")
    predictor = OnnxPredictor(onnx_session(path / VIDEO_ONNX), classifier, names, top_k, config)
    settings = {"num_frames": int(config["num_frames"]), "image_size": int(config["image_size"]), "torch_free": True}
    return predictor, settings, str(config["model_id"])


def _shipped_embeddings(path: Path) -> Any:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path / TEXT_EMBEDDINGS_FILE))["text_embeddings"]  # (K, D)
    except Exception as exc:  # missing or damaged file
        raise CheckpointError(f"{path}: cannot read {TEXT_EMBEDDINGS_FILE} ({type(exc).__name__})") from exc


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
