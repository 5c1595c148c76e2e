"""EZ-CLIP's video forward against open_clip's own frame averaging on the same backbone.

    python benchmarks/model_overhead.py [--model ViT-B-32] [--videos 2] [--num-frames 8] [--runs 8]
                                        [--device cpu] [--dtype fp32] [--threads N] [--textbook] [--profile]

Both sides use one random-weight backbone (the same weights): open_clip's `encode_image` on
the B*T frames, averaged per video and normalised, against EZ-CLIP's `encode_video` (prompts
and adapters at init). Runs alternate (plain, ezclip, plain, ...) in one process, so both see
the same machine load; the minimum of N runs of each is compared, in wall-clock time and (on
the CPU) in this process's CPU time, which other processes on a shared machine disturb far
less (exact with --threads 1; with more threads it also counts threads waiting on each other,
which is why a busy machine is best measured with --threads 1). Also prints the arithmetic
estimate: multiply-accumulates of the vision tower with one extra key/value token per frame, the
prompt attention across T seeds and the two adapter matmuls per layer, over plain CLIP's. `--textbook`
also times EZ-CLIP's vision blocks in the textbook form (append the prompt token, attend over
N+1 tokens, slice it off: the implementation before this benchmark existed), interleaved too.
`--per-block` breaks one middle layer down (where the time goes): the plain open_clip block, the
EZ-CLIP block, open_clip's attention (with LN1) against ours over N+1 keys (without LN1), and
the adapter and the prompt-token computation alone, on the same input. `--profile`
adds a torch.profiler table of one EZ-CLIP forward (where the time goes, by operator).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def vision_macs(config: dict, num_frames: int, ezclip: bool, adapter_ratio: float = 0.25) -> float:
    """Multiply-accumulates of one video through the vision tower (patch embedding + blocks)."""
    vision = config["vision_cfg"]
    width, layers, patch = vision["width"], vision["layers"], vision["patch_size"]
    size = vision["image_size"] if isinstance(vision["image_size"], int) else vision["image_size"][0]
    patches = (size // patch) ** 2
    tokens = patches + 1
    mlp = int(width * vision.get("mlp_ratio", 4.0))

    def block(n_q: int, n_kv: int) -> float:  # qkv in-projection, scores + weighted sum, out-projection, MLP
        return (
            n_q * width * width
            + 2 * n_kv * width * width
            + 2 * n_q * n_kv * width
            + n_q * width * width
            + 2 * n_q * width * mlp
        )

    per_frame = patches * 3 * patch * patch * width
    if not ezclip:
        return num_frames * (per_frame + layers * block(tokens, tokens))
    hidden = int(adapter_ratio * width)
    # The prompt token joins the spatial attention as a key/value; its own query and output are never used.
    per_layer = num_frames * block(tokens, tokens + 1)
    per_layer += block(num_frames, num_frames) - num_frames * 2 * width * mlp  # prompt attention, no MLP
    per_layer += num_frames * tokens * 2 * width * hidden  # adapter: two matmuls
    return num_frames * per_frame + layers * per_layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--textbook", action="store_true", help="also time the textbook (concatenate + slice) form")
    parser.add_argument("--per-block", action="store_true", help="also time one layer's parts, interleaved")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of one EZ-CLIP forward")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = measure(args.model, args.videos, args.num_frames, args.runs, args.device, args.dtype, args.textbook)
    print(
        f"backbone {args.model} (random weights), {args.videos} videos x {args.num_frames} frames, "
        f"{args.device} {args.dtype}, torch threads {result['threads']}, min of {args.runs} interleaved runs"
    )
    print(f"open_clip encode_image + frame mean: {result['plain_s'] * 1000:9.2f} ms")
    print(f"EZ-CLIP encode_video:                {result['ezclip_s'] * 1000:9.2f} ms")
    print(f"ratio EZ-CLIP / open_clip:           {result['ratio']:9.3f}  (goal <= 1.08)")
    if result["cpu_ratio"] is not None:
        print(
            f"  in CPU time: open_clip {result['plain_cpu_s'] * 1000:.2f} ms, "
            f"EZ-CLIP {result['ezclip_cpu_s'] * 1000:.2f} ms, ratio {result['cpu_ratio']:.3f}"
        )
    if args.textbook:
        cpu = result["cpu_ratio"] is not None
        print(
            f"textbook form (concat + slice):      {result['textbook_s'] * 1000:9.2f} ms, ratio "
            f"{result['textbook_s'] / result['plain_s']:.3f}"
            + (f", in CPU time {result['textbook_cpu_s'] / result['plain_cpu_s']:.3f}" if cpu else "")
        )
    print(f"arithmetic estimate (MACs ratio):    {result['macs_ratio']:9.3f}")
    print(f"max |difference| of the embeddings:  {result['max_abs_diff']:9.2e}  (the prompts change them)")
    if args.per_block:
        parts = per_block(result["plain"], result["model"], result["video"], args.runs * 4)
        base = parts["open_clip block"]
        print(f"one layer (min of {args.runs * 4}, CPU time where available), share of the open_clip block:")
        for name, seconds in parts.items():
            print(f"  {name:<28} {seconds * 1000:8.2f} ms  {seconds / base:6.3f}")
    if args.profile:
        print(profile(result["model"], result["video"]))


def build_pair(model_name: str, num_frames: int, device: str, dtype: str):
    """(plain open_clip model, EZ-CLIP model) over the same random weights, in eval mode."""
    import torch

    from ezclip_cli.config import ModelConfig
    from ezclip_cli.model.backbone import load_backbone
    from ezclip_cli.model.ezclip import build_model

    backbone = load_backbone(model_name, None, device=device, seed=0)
    plain = copy.deepcopy(backbone.clip).eval()
    model = build_model(backbone, ModelConfig(num_frames=num_frames)).eval()
    torch_dtype = getattr(torch, DTYPES[dtype])
    return plain.to(torch_dtype), model.to(torch_dtype), backbone


def measure(
    model_name: str,
    videos: int,
    num_frames: int,
    runs: int,
    device: str = "cpu",
    dtype: str = "fp32",
    textbook: bool = False,
) -> dict:
    """Interleaved timings of both forwards; returns min times, their ratio and the MAC estimate."""
    import torch
    import torch.nn.functional as F

    plain, model, backbone = build_pair(model_name, num_frames, device, dtype)
    size = backbone.image_size
    g = torch.Generator().manual_seed(0)
    video = torch.randn(videos, num_frames, 3, size, size, generator=g).to(device, getattr(torch, DTYPES[dtype]))

    def plain_forward() -> torch.Tensor:
        frames = plain.encode_image(video.flatten(0, 1)).view(videos, num_frames, -1)
        return F.normalize(frames.float().mean(dim=1), dim=-1)

    def ezclip_forward() -> torch.Tensor:
        return model.encode_video(video).float()

    def textbook_forward() -> torch.Tensor:
        from ezclip_cli.model.ezclip import VisionBlock
        from tests.test_model_forward import textbook_forward as forward

        own, VisionBlock.forward = VisionBlock.forward, forward
        try:
            return model.encode_video(video).float()
        finally:
            VisionBlock.forward = own

    cuda = device.startswith("cuda")

    def timed(fn) -> tuple[float, float]:  # (wall, CPU) seconds
        if cuda:
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, time.process_time() - cpu_start

    forwards = {"plain": plain_forward, "ezclip": ezclip_forward}
    if textbook:
        forwards["textbook"] = textbook_forward
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in forwards}
    with torch.inference_mode():
        diff = (plain_forward() - ezclip_forward()).abs().max().item()  # also the warm-up of both
        if textbook:
            textbook_forward()
        for _ in range(runs):
            for name, forward in forwards.items():
                times[name].append(timed(forward))
    plain_s, ezclip_s = (min(t[0] for t in times[k]) for k in ("plain", "ezclip"))
    plain_cpu, ezclip_cpu = (min(t[1] for t in times[k]) for k in ("plain", "ezclip"))
    config = backbone.model_config
    macs_ratio = vision_macs(config, num_frames, True) / vision_macs(config, num_frames, False)
    return {
        "plain_s": plain_s,
        "ezclip_s": ezclip_s,
        "ratio": ezclip_s / plain_s,
        "macs_ratio": macs_ratio,
        "plain_cpu_s": plain_cpu,
        "ezclip_cpu_s": ezclip_cpu,
        "cpu_ratio": None if cuda or plain_cpu <= 0 else ezclip_cpu / plain_cpu,
        "textbook_s": min(t[0] for t in times["textbook"]) if textbook else None,
        "textbook_cpu_s": min(t[1] for t in times["textbook"]) if textbook else None,
        "max_abs_diff": diff,
        "threads": torch.get_num_threads(),
        "model": model,
        "plain": plain,
        "video": video,
    }


def per_block(plain, model, video, runs: int) -> dict[str, float]:
    """Min times of one middle layer and of its EZ-CLIP parts, on that layer's real input shape."""
    import torch

    layer = len(model.clip.visual.transformer.resblocks) // 2
    ours, theirs = model.clip.visual.transformer.resblocks[layer], plain.visual.transformer.resblocks[layer]
    B, T = video.shape[:2]
    grid = model.clip.visual.grid_size
    tokens = 1 + grid[0] * grid[1]
    x = torch.randn(B * T, tokens, ours.block.ln_1.normalized_shape[0], dtype=video.dtype, device=video.device)
    from ezclip_cli.model.ezclip import prompted_attention

    keys = torch.cat([ours.block.ln_1(x), x[:, :1]], dim=1)  # LN1(x) and one extra token
    parts = {
        "open_clip block": lambda: theirs(x),
        "EZ-CLIP block": lambda: ours(x),
        "open_clip attention": lambda: theirs.attention(theirs.ln_1(x)),
        "  its attention (N+1 keys)": lambda: prompted_attention(ours.block.attn, keys, x.shape[1]),
        "  its adapter": lambda: ours.adapter(x),
        "  its prompt tokens": lambda: ours._prompt_tokens(x) if ours.prompt is not None else None,
    }
    clock = time.perf_counter if video.is_cuda else time.process_time
    best = dict.fromkeys(parts, float("inf"))
    with torch.inference_mode():
        for _ in range(runs):
            for name, fn in parts.items():
                if video.is_cuda:
                    torch.cuda.synchronize()
                start = clock()
                fn()
                if video.is_cuda:
                    torch.cuda.synchronize()
                best[name] = min(best[name], clock() - start)
    return best


def profile(model, video) -> str:
    """Operator table of one EZ-CLIP forward, sorted by self CPU time."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if video.is_cuda else [])
    with torch.inference_mode(), torch_profile(activities=activities) as prof:
        model.encode_video(video)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)


if __name__ == "__main__":
    main()
