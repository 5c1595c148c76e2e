"""Decoded clips -> video embeddings -> ranked labels: the one protocol both runtimes implement.

`VideoPredictor` is what tagging needs from a model: `embed` a batch of uint8 clips into
normalised (B, D) float32 embeddings, and a `scorer` (scoring.Scorer) that ranks the label set,
or None when only embeddings are wanted (`ezclip embed`). `TorchPredictor` runs the PyTorch
model; onnx_runtime.OnnxPredictor runs an exported bundle without torch.

The label set's text embeddings are cached on disk by model and prompt text (`build_classifier`),
so a second run with the same labels encodes no text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ezclip_cli.files import atomic_write, ezclip_cache
from ezclip_cli.model.scoring import ScoreOptions, Scorer

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ezclip_cli.model.ezclip import EZClip
    from ezclip_cli.model.spec import ModelSpec

log = logging.getLogger(__name__)


class VideoPredictor(Protocol):
    """A model as tagging sees it (PyTorch or ONNX)."""

    @property
    def scorer(self) -> Scorer | None:
        """Ranks the label set; None when there is none (embeddings only)."""
        ...

    def embed(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """Normalised video embeddings (B, D) float32 of decoded clips (uint8 (T, 3, S, S) each)."""
        ...


class TorchPredictor:
    """The PyTorch model as a VideoPredictor: normalise, encode the video (autocast on CUDA), rank."""

    def __init__(
        self,
        model: EZClip,
        classifier: torch.Tensor | None,
        labels: Sequence[str],
        top_k: int,
        device: str,
        score_options: ScoreOptions | None = None,
    ):
        import torch

        self.model, self.device = model, device
        mean = torch.tensor(model.backbone.mean).view(1, 1, 3, 1, 1)
        std = torch.tensor(model.backbone.std).view(1, 1, 3, 1, 1)
        self.mean, self.std = mean.to(device), std.to(device)
        self.autocast = device.startswith("cuda")
        self.scorer: Scorer | None = None
        if classifier is not None:
            self.scorer = Scorer(classifier, float(model.logit_scale), labels, top_k, score_options)

    def embed(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        import numpy as np
        import torch

        video = torch.from_numpy(np.stack(pixels)).to(self.device)  # (B, T, 3, S, S) uint8
        video = (video.float() / 255 - self.mean) / self.std
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.autocast):
            return self.model.encode_video(video).float().cpu().numpy()


# ---- the label set's text embeddings, cached ---------------------------------------------------------
def text_cache_path(prompts: list[list[str]], cache_dir: str | None, model_id: str) -> Path:
    """Where the text embeddings of `prompts` under model `model_id` are cached."""
    from ezclip_cli.data.labels import labelset_fingerprint

    folder = Path(cache_dir) if cache_dir else ezclip_cache() / "text"
    return folder / f"{model_id}-{labelset_fingerprint(prompts)[:16]}.safetensors"


def read_cached_classifier(
    prompts: list[list[str]], cache_dir: str | None, model_id: str, device: str | torch.device = "cpu"
) -> torch.Tensor | None:
    """The cached text embeddings of a label set, or None (no model needed: re-labelling stored embeddings)."""
    return _read_cache(text_cache_path(prompts, cache_dir, model_id), device)


def _read_cache(path: Path, device: str | torch.device) -> torch.Tensor | None:
    if path.is_file():
        try:
            from safetensors.torch import load_file

            return load_file(str(path))["classifier"].to(device)
        except Exception:  # a damaged cache entry is rebuilt
            log.debug("text cache %s unreadable; rebuilding", path)
    return None


def build_classifier(model: EZClip, prompts: list[list[str]], cache_dir: str | None, model_id: str) -> torch.Tensor:
    """Text embeddings (K, D) float32 of the label set, cached on disk by model and prompt text."""
    import torch

    path = text_cache_path(prompts, cache_dir, model_id)
    cached = _read_cache(path, next(model.parameters()).device)
    if cached is not None:
        return cached
    total = sum(map(len, prompts))
    # The first run of a label set encodes its prompts (k400: 6,400 of them, minutes of a CPU): say so, and how
    # far it is, on a terminal and in logs; later runs read the cache.
    log.info("encoding %d labels (%s prompts), once for this model and label set", len(prompts), f"{total:,}")
    display = None
    if log.isEnabledFor(logging.INFO) and total > 256:  # more than one batch: worth a display
        from ezclip_cli.progress import Progress

        display = Progress("encoding prompts", "prompts", failures=False)
        display(0, total)  # rates and the ETA count from here
    try:
        with torch.inference_mode():
            classifier = model.build_text_classifier(
                prompts, progress=(lambda done, all_: display(done, all_)) if display is not None else None
            ).float()
    finally:
        if display is not None:
            display.close()
    try:
        from safetensors.torch import save_file

        tensors = {"classifier": classifier.cpu().contiguous()}
        atomic_write(path, lambda tmp: save_file(tensors, tmp))
    except OSError as exc:
        log.debug("text cache not written: %s", exc)
    return classifier


@dataclass
class LoadedModel:
    """A PyTorch model loaded once and used for many runs, with the label-set classifiers built for it."""

    ezclip: EZClip
    model_id: str
    device: str
    classifiers: dict[tuple[str, ...], Any] = field(default_factory=dict)  # prompts -> classifier

    @classmethod
    def load(cls, spec: ModelSpec, device: str = "auto", local_rank: int | None = None) -> LoadedModel:
        """Load `spec` on `device` (auto: cuda, mps, cpu; under torchrun this rank's GPU)."""
        from ezclip_cli.model.load import load_spec, model_identity, pick_device

        chosen = pick_device(device)
        if local_rank is not None and chosen.startswith("cuda"):
            chosen = f"cuda:{local_rank}"  # torchrun: one GPU per process
        ezclip = load_spec(spec, device=chosen)
        # A bundle is known by all its files (both runtimes alike): a swapped ONNX graph is another model.
        return cls(ezclip, model_identity(ezclip, spec.source), chosen)

    def classifier(self, prompts: list[list[str]], cache_dir: str | None) -> Any:
        """The label set's text classifier, encoded once per model and prompt set (and cached on disk)."""
        key = tuple("\x1f".join(group) for group in prompts)
        if key not in self.classifiers:
            self.classifiers[key] = build_classifier(self.ezclip, prompts, cache_dir, self.model_id)
        return self.classifiers[key]
