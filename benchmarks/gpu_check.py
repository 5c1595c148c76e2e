"""The GPU path, measured side by side in one run: tagging, training, numerics, model overhead, ONNX.

    python benchmarks/gpu_check.py [--json results.json]        # CUDA: random ViT-B/16, T=8, 224x224
    python benchmarks/gpu_check.py --tiny [--json results.json] # CPU: tiny backbone, a few videos, seconds

Sections (each has its own time limit and reports its own failure; the others still run):
  env       GPU, driver, library versions
  overhead  EZ-CLIP video forward vs open_clip's encode_image frame average, same backbone (ratio)
  numerics  bf16 / fp16 autocast video embeddings vs fp32 (max abs difference, normalised)
  tag       per precision: full `ezclip tag` pipeline videos/s vs the model forward alone on the same
            frames (ratio) vs decoding alone with the same workers (the decode wall)
  train     per precision (bf16, fp16 + GradScaler), with and without activation checkpointing:
            step time and peak GPU memory at batch 16, the loss over 50 steps, the largest batch that fits
  onnx      the exported video encoder on onnxruntime's CUDA provider (if installed) vs PyTorch
  decode    the decode wall on long-GOP clips (a keyframe every 250 frames): clips/s of the CPU decoder
            workers with --seek exact and keyframe, and of --decoder torchcodec on the GPU (if installed)
Random weights throughout: no download. The whole run stays under 8 minutes (--budget).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

TINY_MODEL = str(REPO / "configs" / "backbones" / "tiny-vit.json")
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class Plan:
    """What one run measures; `--tiny` shrinks every size so CI runs it in seconds."""

    model: str = "ViT-B-16"
    device: str = "cuda"
    num_frames: int = 8
    videos: int = 1024  # pipeline inputs (hard links to `unique` rendered clips)
    unique: int = 64
    frame_size: tuple[int, int] = (240, 320)
    source_frames: int = 64
    tag_batch: int = 32
    workers: int = max(1, (os.cpu_count() or 2) - 1)
    precisions: tuple[str, ...] = ("bf16", "fp16")
    train_precisions: tuple[str, ...] = ("bf16", "fp16")
    train_batch: int = 16
    train_steps: int = 50
    train_lr: float = 1e-3
    max_batch_limit: int = 1024  # the search for the largest batch stops here
    overhead_videos: int = 16
    runs: int = 8
    threads: int = 0  # torch CPU threads; 0 = torch's default
    budget: float = 470.0  # seconds for the whole run
    limits: dict[str, float] = field(
        default_factory=lambda: {"overhead": 45, "numerics": 20, "tag": 170, "train": 130, "onnx": 120, "decode": 90}
    )
    gop: int = 250  # keyframe interval of the decode section's clips
    gop_clips: int = 16
    gop_frames: int = 500


def tiny_plan() -> Plan:
    return Plan(
        model=TINY_MODEL,
        device="cpu",
        videos=6,
        unique=3,
        frame_size=(48, 64),
        source_frames=16,
        tag_batch=2,
        workers=0,
        precisions=("fp32",),
        train_precisions=("fp32", "bf16"),
        train_batch=4,
        train_steps=20,
        train_lr=3e-3,
        max_batch_limit=0,
        threads=1,
        overhead_videos=2,
        runs=4,
        budget=1500.0,
        # Limits that only catch a hang: a loaded CI machine must not turn slowness into a failure.
        limits={"overhead": 300, "numerics": 300, "tag": 300, "train": 300, "onnx": 300, "decode": 300},
        gop=50,
        gop_clips=2,
        gop_frames=120,
    )


# ---- section running -----------------------------------------------------------------------------
class SectionTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise SectionTimeout in the main thread after `seconds` (no-op where SIGALRM does not exist)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise SectionTimeout(f"stopped at its {seconds:.0f} s limit")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_section(name: str, fn: Callable[[dict], None], seconds: float, results: dict) -> None:
    """Run one section; its rows land in results[name] even when it fails or times out part-way."""
    section: dict[str, Any] = {"status": "ok", "rows": {}}
    results[name] = section
    started = time.perf_counter()
    print(f"[{name}] running (limit {seconds:.0f} s)", file=sys.stderr, flush=True)
    try:
        with time_limit(seconds):
            fn(section["rows"])
    except SectionTimeout as exc:
        section.update(status="timeout", error=str(exc))
    except Exception as exc:  # one broken section must not stop the others
        section.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        traceback.print_exc(file=sys.stderr)
    section["seconds"] = round(time.perf_counter() - started, 1)
    _free_memory()


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---- sections --------------------------------------------------------------------------------------
def section_env(plan: Plan, rows: dict) -> None:
    import open_clip
    import torch

    rows["python"] = platform.python_version()
    rows["torch"] = torch.__version__
    rows["open_clip"] = open_clip.__version__
    for module in ("onnxruntime", "decord", "av", "torchcodec"):
        try:
            rows[module] = __import__(module).__version__
        except Exception:
            rows[module] = "not installed"
    rows["cpu_cores"] = os.cpu_count()
    rows["torch_threads"] = torch.get_num_threads()
    if plan.device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        rows["gpu"] = props.name
        rows["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        rows["cuda"] = torch.version.cuda
        rows["driver"] = _driver_version()
    else:
        rows["device"] = "cpu"


def _driver_version() -> str:
    import subprocess

    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def section_overhead(plan: Plan, rows: dict) -> None:
    from model_overhead import measure

    for dtype in ("fp32",) + tuple(p for p in plan.precisions if p != "fp32"):
        if dtype == "fp16" and not plan.device.startswith("cuda"):
            continue
        r = measure(plan.model, plan.overhead_videos, plan.num_frames, plan.runs, plan.device, dtype)
        rows[f"{dtype}_open_clip_ms"] = round(r["plain_s"] * 1000, 2)
        rows[f"{dtype}_ezclip_ms"] = round(r["ezclip_s"] * 1000, 2)
        rows[f"{dtype}_ratio"] = round(r["ratio"], 3)
        if r["cpu_ratio"] is not None:
            rows[f"{dtype}_ratio_cpu_time"] = round(r["cpu_ratio"], 3)
        rows["arithmetic_ratio"] = round(r["macs_ratio"], 3)
        del r


def _model(plan: Plan) -> Any:
    from ezclip_cli.model.load import load_model

    return load_model(None, plan.model, "none", plan.num_frames, device=plan.device)


def _video(plan: Plan, batch: int, size: int, seed: int = 0) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, plan.num_frames, 3, size, size, generator=g).to(plan.device)


def _autocast(device: str, precision: str) -> Any:
    import torch

    dtype = getattr(torch, DTYPES[precision])
    return torch.autocast(device.split(":")[0], dtype=dtype, enabled=precision != "fp32")


def section_numerics(plan: Plan, rows: dict) -> None:
    import torch

    model = _model(plan)
    video = _video(plan, 4, model.backbone.image_size, seed=1)
    with torch.inference_mode():
        reference = model.encode_video(video).float()
        for precision in ("bf16", "fp16"):
            if precision == "fp16" and not plan.device.startswith("cuda"):
                continue
            with _autocast(plan.device, precision):
                emb = model.encode_video(video).float()
            rows[f"{precision}_max_abs_diff"] = float((emb - reference).abs().max())
            rows[f"{precision}_min_cosine"] = float((emb * reference).sum(-1).min())


def render_videos(plan: Plan, folder: Path) -> list[Path]:
    """`plan.unique` rendered clips, hard-linked up to `plan.videos` inputs (decoding still reads each)."""
    from concurrent.futures import ProcessPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    unique = [folder / f"clip_{i:04d}.mp4" for i in range(plan.unique)]
    jobs = [(str(p), plan.source_frames, plan.frame_size, i) for i, p in enumerate(unique)]
    if plan.workers > 0:
        import multiprocessing as mp

        # spawn: by now this process has initialised CUDA, which a forked child must not inherit
        with ProcessPoolExecutor(max_workers=plan.workers, mp_context=mp.get_context("spawn")) as pool:
            list(pool.map(_render_one, jobs))
    else:
        for job in jobs:
            _render_one(job)
    paths = list(unique)
    for i in range(plan.unique, plan.videos):
        link = folder / f"clip_{i:04d}.mp4"
        os.link(unique[i % plan.unique], link)
        paths.append(link)
    return paths


def _render_one(job: tuple[str, int, tuple[int, int], int]) -> None:
    sys.path.insert(0, str(REPO))
    from tests.media import moving_ball_frames, write_video

    path, frames, size, i = job
    kind = ["right", "left", "grow", "shrink"][i % 4]
    write_video(Path(path), moving_ball_frames(frames, size, kind, seed=i), fps=16)


def steady_rate(times: list[float], skip: int) -> float:
    """Items per second after the first `skip` items (one-time set-up and the first batch excluded)."""
    if len(times) <= skip + 1:
        return float("nan")
    return (len(times) - 1 - skip) / (times[-1] - times[skip])


def section_tag(plan: Plan, rows: dict, folder: Path) -> None:
    import torch

    from ezclip_cli.config import TagConfig
    from ezclip_cli.data.labels import build_prompts, load_labelset
    from ezclip_cli.model.load import model_fingerprint
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.tag.plan import Task, video_fingerprint
    from ezclip_cli.tag.pool import DecodedClip, DecodePool
    from ezclip_cli.tag.predictors import TorchPredictor, build_classifier
    from ezclip_cli.tag.run import run_tagging
    from ezclip_cli.video.reader import DecodeSettings

    started = time.perf_counter()
    videos = render_videos(plan, folder / "videos")
    rows["render_s"] = round(time.perf_counter() - started, 1)
    rows["videos"] = len(videos)
    rows["workers"] = plan.workers
    rows["batch"] = plan.tag_batch

    # Decoding alone, same workers and window as the pipeline; keeps the frames for the model-alone run.
    model = _model(plan)
    settings = DecodeSettings(plan.num_frames, model.backbone.image_size)
    pool = DecodePool(plan.workers, window=max(2 * plan.workers, 1) + plan.tag_batch)
    clips, stamps = [], []
    try:
        tasks = [Task(v, video_fingerprint(v)) for v in videos]
        for item in pool.map(tasks, settings):
            stamps.append(time.perf_counter())
            if not isinstance(item, tuple) or not isinstance(item[1], DecodedClip):
                raise RuntimeError(f"a video did not decode: {item}")
            clips.append(item[1].pixels)
    finally:
        pool.close()
    rows["decode_alone_videos_per_s"] = round(steady_rate(stamps, plan.tag_batch), 2)

    labelset = load_labelset("hmdb51")
    classifier = build_classifier(model, build_prompts(labelset), str(folder / "cache"), model_fingerprint(model))
    for precision in plan.precisions:
        if precision != "fp32":
            torch.set_autocast_dtype("cuda", getattr(torch, DTYPES[precision]))  # what TorchPredictor's autocast uses
        predictor = TorchPredictor(model, classifier, labelset.labels, 5, plan.device)
        scorer = predictor.scorer
        assert scorer is not None  # a label set was given
        scorer(predictor.embed(clips[: plan.tag_batch]))  # warm-up, as the pipeline's first batch is
        sync(plan.device)
        start = time.perf_counter()
        for i in range(0, len(clips), plan.tag_batch):
            scorer(predictor.embed(clips[i : i + plan.tag_batch]))
        model_rate = len(clips) / (time.perf_counter() - start)

        clock = RowClock()
        config = TagConfig(
            labels="hmdb51",
            batch_size=plan.tag_batch,
            workers=plan.workers,
            device=plan.device,
            cache_dir=str(folder / "cache"),
            output_format="jsonl",
        )
        summary = run_tagging(
            [str(folder / "videos")],
            config,
            model=ModelSpec(backbone=plan.model, pretrained="none", num_frames=plan.num_frames),
            stdout=clock,
        )
        pipeline_rate = steady_rate(clock.times, plan.tag_batch - 1)
        rows[f"{precision}_pipeline_videos_per_s"] = round(pipeline_rate, 2)
        rows[f"{precision}_model_alone_videos_per_s"] = round(model_rate, 2)
        rows[f"{precision}_pipeline_over_model"] = round(pipeline_rate / model_rate, 3)
        rows[f"{precision}_pipeline_over_decode"] = round(pipeline_rate / rows["decode_alone_videos_per_s"], 3)
        rows[f"{precision}_failed"] = summary.failed
    torch.set_autocast_dtype("cuda", torch.float16)


class RowClock:
    """A stdout stand-in that notes when each result row is written (and keeps nothing else)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def write(self, text: str) -> int:
        self.times += [time.perf_counter()] * text.count("\n")
        return len(text)

    def flush(self) -> None:
        pass


def section_train(plan: Plan, rows: dict) -> None:
    import torch

    from ezclip_cli.config import ModelConfig
    from ezclip_cli.model.backbone import load_backbone, text_transformer
    from ezclip_cli.model.ezclip import build_model, ezclip_loss

    backbone = load_backbone(plan.model, None, device=plan.device, seed=0)
    cuda = plan.device.startswith("cuda")
    classes = [f"a video of action number {k}" for k in range(8)]

    def make(checkpointing: bool) -> Any:
        model = build_model(copy.deepcopy(backbone), ModelConfig(num_frames=plan.num_frames), seed=0).train()
        if checkpointing:
            model.clip.visual.set_grad_checkpointing(True)
            text_transformer(model.clip).grad_checkpointing = True
        return model

    def steps(model: Any, precision: str, batch: int, count: int) -> tuple[list[float], float]:
        """`count` optimizer steps on one fixed batch: (losses, mean seconds of the steps after the first 2)."""
        torch.manual_seed(0)  # dropout and drop-path draws: the same run every time
        optimizer = torch.optim.AdamW(model.learned_parameters(), lr=plan.train_lr, weight_decay=0.0)
        scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
        video = _video(plan, batch, backbone.image_size, seed=2)
        labels = torch.arange(batch, device=plan.device) % len(classes)
        tokens = model.tokenize(classes)
        losses, times = [], []
        for _ in range(count):
            sync(plan.device)
            start = time.perf_counter()
            with _autocast(plan.device, precision):
                frames = model.encode_frames(video)
                text = model.encode_text(tokens)[labels]
                loss = ezclip_loss(frames, text, labels, model.logit_scale)["loss"]
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))  # synchronises
            times.append(time.perf_counter() - start)
        timed = times[2:] or times
        return losses, sum(timed) / len(timed)

    for precision in plan.train_precisions:
        for checkpointing in (False, True):
            key = f"{precision}_{'ckpt' if checkpointing else 'no_ckpt'}"
            model = make(checkpointing)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            count = plan.train_steps if not checkpointing else min(plan.train_steps, 12)  # timing only
            losses, step_s = steps(model, precision, plan.train_batch, count)
            rows[f"{key}_step_ms_b{plan.train_batch}"] = round(step_s * 1000, 1)
            if cuda:
                rows[f"{key}_peak_gib_b{plan.train_batch}"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if not checkpointing:  # mean of the first and of the last 5 steps: one noisy step decides nothing
                first, last = losses[:5], losses[-5:]
                rows[f"{key}_loss_first5"] = round(sum(first) / len(first), 4)
                rows[f"{key}_loss_last5"] = round(sum(last) / len(last), 4)
                rows[f"{key}_loss_went_down"] = sum(last) / len(last) < sum(first) / len(first)
            if cuda and plan.max_batch_limit and precision == plan.train_precisions[0]:
                rows[f"{key}_largest_batch"] = largest_batch(lambda b, m=model, p=precision: steps(m, p, b, 1), plan)
            del model
            _free_memory()


def largest_batch(step: Callable[[int], Any], plan: Plan) -> int:
    """The largest batch (doubling from the train batch, then bisecting) whose step fits in GPU memory."""
    fits, fails = 0, None
    batch = plan.train_batch
    while batch <= plan.max_batch_limit:
        if not _fits(step, batch):
            fails = batch
            break
        fits, batch = batch, batch * 2
    if fails is None:
        return fits
    while fails - fits > max(1, fits // 8):  # within 12.5 %
        middle = (fits + fails) // 2
        fits, fails = (middle, fails) if _fits(step, middle) else (fits, middle)
    return fits


def _fits(step: Callable[[int], Any], batch: int) -> bool:
    import torch

    try:
        step(batch)
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        _free_memory()


def section_onnx(plan: Plan, rows: dict, folder: Path) -> None:
    import numpy as np
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        rows["skipped"] = "onnxruntime is not installed (pip install 'ezclip[onnx]')"
        return
    providers = ort.get_available_providers()
    rows["providers"] = ",".join(providers)
    cuda = plan.device.startswith("cuda")
    if cuda and "CUDAExecutionProvider" not in providers:
        rows["skipped"] = "onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
        return
    from ezclip_cli.export.onnx import write_video_encoder
    from ezclip_cli.export.runtime import require_onnx

    require_onnx()
    model = _model(Plan(**{**asdict(plan), "device": "cpu"}))  # exported on the CPU, in fp32
    path = folder / "video_encoder.onnx"
    started = time.perf_counter()
    write_video_encoder(model, path)
    rows["export_s"] = round(time.perf_counter() - started, 1)
    provider = "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
    session = ort.InferenceSession(str(path), providers=[provider])
    rows["provider"] = session.get_providers()[0]
    batch = plan.overhead_videos
    video = _video(Plan(**{**asdict(plan), "device": "cpu"}), batch, model.backbone.image_size, seed=3)
    feed = {session.get_inputs()[0].name: video.numpy()}
    model = model.to(plan.device)
    with torch.inference_mode():
        reference = model.encode_video(video.to(plan.device)).float().cpu().numpy()

        def torch_run(precision: str) -> Any:  # host -> device -> host, as onnxruntime's run does
            with _autocast(plan.device, precision):
                return model.encode_video(torch.from_numpy(feed[session.get_inputs()[0].name]).to(plan.device)).cpu()

        ort_times, torch_times = [], {p: [] for p in ("fp32",) + tuple(p for p in plan.precisions if p != "fp32")}
        out = session.run(None, feed)[0]  # warm-up
        for p in torch_times:
            torch_run(p)
        for _ in range(plan.runs):
            start = time.perf_counter()
            out = session.run(None, feed)[0]
            ort_times.append(time.perf_counter() - start)
            for p in torch_times:
                start = time.perf_counter()
                torch_run(p)
                torch_times[p].append(time.perf_counter() - start)
    rows["batch"] = batch
    rows["onnxruntime_videos_per_s"] = round(batch / min(ort_times), 2)
    for p, times in torch_times.items():
        rows[f"torch_{p}_videos_per_s"] = round(batch / min(times), 2)
    rows["onnxruntime_over_torch_fp32"] = round(min(torch_times["fp32"]) / min(ort_times), 3)
    rows["max_abs_diff_vs_torch_fp32"] = float(np.abs(out - reference).max())


# ---- report ------------------------------------------------------------------------------------------
def print_table(results: dict, plan: Plan, out: Any = None) -> None:
    """One block per section: its status, then `key  value` rows (to stdout unless `out` is given)."""
    out = out or sys.stdout
    print(f"gpu_check: {plan.model} (random weights), T={plan.num_frames}, device {plan.device}", file=out)
    for name, section in results.items():
        if not isinstance(section, dict) or "rows" not in section:
            continue
        status = section["status"] + (f": {section['error']}" if section.get("error") else "")
        print(f"\n== {name} ({section.get('seconds', 0)} s) {status}", file=out)
        width = max((len(k) for k in section["rows"]), default=0)
        for key, value in section["rows"].items():
            print(f"  {key:<{width}}  {value}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny backbone on the CPU, a few videos (CI)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument(
        "--sections",
        default="overhead,numerics,tag,train,onnx,decode",
        help="comma list of sections to run (env always runs)",
    )
    parser.add_argument("--videos", type=int, help="pipeline inputs (default 1024, tiny 6)")
    parser.add_argument("--workers", type=int, help="decoder processes (default cores - 1, tiny 0)")
    parser.add_argument("--budget", type=float, help="seconds for the whole run (default 470)")
    args = parser.parse_args(argv)
    plan = tiny_plan() if args.tiny else Plan()
    for name in ("videos", "workers", "budget"):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))
    if args.json is not None and args.json.exists():
        print(f"gpu_check: {args.json} exists; not overwriting it", file=sys.stderr)
        return 2
    import torch

    if plan.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; run with --tiny for the CPU check", file=sys.stderr)
        return 2
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print(f"gpu_check: unknown section '{unknown[0]}'; known: {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    if plan.threads:  # a tiny model gains nothing from threads, and on a busy machine they wait on each other
        torch.set_num_threads(plan.threads)
    try:
        results = run_all(plan, names)
    finally:
        torch.set_num_threads(threads)
    print_table(results, plan)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return 0 if all(s.get("status") == "ok" for s in results.values() if isinstance(s, dict) and "status" in s) else 1


SECTIONS = ("overhead", "numerics", "tag", "train", "onnx", "decode")


def section_decode(plan: Plan, rows: dict, folder: Path) -> None:
    """Clips/s of decoding alone (tag's DecodePool, the same workers) on long-GOP clips: exact, keyframe, GPU."""
    from ezclip_cli.tag.plan import Task, video_fingerprint
    from ezclip_cli.tag.pool import DecodePool
    from ezclip_cli.video import torchcodec
    from ezclip_cli.video.reader import DecodeSettings
    from tests.media import moving_ball_frames, write_video

    folder.mkdir(parents=True, exist_ok=True)
    clips = [
        write_video(
            folder / f"gop_{i}.mp4",
            moving_ball_frames(plan.gop_frames, plan.frame_size, ("right", "left")[i % 2], seed=i),
            fps=25,
            keyframe_interval=plan.gop,
        )
        for i in range(plan.gop_clips)
    ]
    tasks = [Task(c, video_fingerprint(c)) for c in clips]
    rows["clips"] = f"{len(clips)} x {plan.gop_frames} frames {plan.frame_size[1]}x{plan.frame_size[0]}, GOP {plan.gop}"
    rows["workers"] = plan.workers
    why_not = torchcodec.unavailable()
    runs = [("cpu_exact", "pyav", "exact"), ("cpu_keyframe", "pyav", "keyframe")]
    if why_not is None:
        runs.append(("gpu_torchcodec", "torchcodec", "exact"))
    else:
        rows["gpu_torchcodec"] = f"skipped: {why_not}"
    pool = DecodePool(plan.workers, window=max(2 * plan.workers, 1) + 8)
    try:
        for name, decoder, seek in runs:
            settings = DecodeSettings(plan.num_frames, 224, decoder, seek)
            list(pool.map(tasks[:1], settings))  # warm: workers started, libraries loaded
            started = time.perf_counter()
            out = list(pool.map(tasks, settings))
            seconds = time.perf_counter() - started
            failed = sum(1 for item in out if isinstance(item, tuple) and isinstance(item[1], str))
            rows[f"{name}_clips_per_s"] = round(len(tasks) / seconds, 2)
            rows[f"{name}_failed"] = failed
    finally:
        pool.close()
    rows["keyframe_over_exact"] = round(rows["cpu_keyframe_clips_per_s"] / rows["cpu_exact_clips_per_s"], 2)


def run_all(plan: Plan, names: list[str]) -> dict[str, Any]:
    """env, then the named sections in order, each within its limit and the run's budget."""
    deadline = time.perf_counter() + plan.budget
    results: dict[str, Any] = {"plan": asdict(plan)}
    run_section("env", lambda rows: section_env(plan, rows), 60, results)
    with tempfile.TemporaryDirectory(prefix="ezclip-gpu-check-") as tmp:
        sections = {
            "overhead": lambda rows: section_overhead(plan, rows),
            "numerics": lambda rows: section_numerics(plan, rows),
            "tag": lambda rows: section_tag(plan, rows, Path(tmp) / "tag"),
            "train": lambda rows: section_train(plan, rows),
            "onnx": lambda rows: section_onnx(plan, rows, Path(tmp)),
            "decode": lambda rows: section_decode(plan, rows, Path(tmp) / "decode"),
        }
        for name in names:
            left = deadline - time.perf_counter()
            if left < 5:
                results[name] = {"status": "skipped", "error": "the run's time budget is spent", "rows": {}}
                continue
            run_section(name, sections[name], min(plan.limits[name], left), results)
    return results


if __name__ == "__main__":
    sys.exit(main())
