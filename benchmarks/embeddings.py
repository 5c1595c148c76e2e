"""Stored embeddings against decoding: re-label, search, load time and memory, side by side.

    python benchmarks/embeddings.py [--sample 8] [--relabel-rows 10000] [--search-rows 100000] [--memory-rows 1000000]

Random-weight ViT-B-32 (512-d embeddings, like ViT-B/16), 8 frames, the 400 K400 labels, CPU.
  1. Full tag: `run_tagging` on a small rendered sample (320x240, 64 frames, H.264) with
     --save-embeddings; the per-video time of that sample (decode + encode, steady loop) is
     extrapolated to --relabel-rows videos, and the text cache of the K400 label set is now warm.
  2. Re-label: `run_relabel` (what `ezclip tag --from-embeddings STORE --labels k400` runs) on a
     store of --relabel-rows rows of that model: load the store, read the cached text embeddings,
     score, write JSONL. Timed in-process, and as a whole `ezclip` process (interpreter + imports).
  3. Search: load a store of --search-rows rows, then rank it against 50 query vectors
     (what `ezclip search` does after embedding the query); per-query time, and the time to
     embed one text query with the model.
  4. Memory: a fresh process (numpy only, no torch) loads a store of --memory-rows rows; its
     peak and resident memory, and the load time.
Stores 2-4 hold random unit vectors under the real model's fingerprint: re-labelling and search
cost does not depend on the values. One text template ("a video of a person {}.") keeps the
cold text-embedding step short; it is set-up, not measured (the cache is warm, as in the target).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEMPLATE = "a video of a person {}."
CHUNK = 65536


def render(folder: Path, count: int) -> list[Path]:
    from tests.media import moving_ball_frames, write_video

    folder.mkdir(parents=True, exist_ok=True)
    kinds = ["right", "left", "grow", "shrink"]
    return [
        write_video(folder / f"clip_{i:03d}.mp4", moving_ball_frames(64, (240, 320), kinds[i % 4], seed=i), fps=16)
        for i in range(count)
    ]


def synthetic_store(path: Path, rows: int, dim: int, model_id: str, logit_scale: float, spec: dict) -> float:
    """A store of `rows` random unit vectors with realistic metadata; returns the seconds it took to write."""
    import numpy as np

    from ezclip_cli.store.writer import StoreWriter

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    writer = StoreWriter(path, model_id, logit_scale, spec)
    for begin in range(0, rows, CHUNK):
        count = min(CHUNK, rows - begin)
        data = rng.standard_normal((count, dim), dtype=np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        meta = []
        for row in range(begin, begin + count):  # four 10 s windows per 40 s video
            start = 10.0 * (row % 4)
            meta.append(
                {
                    "path": f"/data/library/{row // 4:07d}.mp4",
                    "video_id": f"{row // 4:016x}",
                    "size": 10_000_000,
                    "mtime_ns": 1_700_000_000_000_000_000,
                    "start": start,
                    "end": start + 10.0,
                    "duration": 40.0,
                    "num_frames": 8,
                    "timestamps": [round(start + 0.625 + 1.25 * t, 3) for t in range(8)],
                }
            )
        writer.add(meta, data)
    writer.close()
    return time.perf_counter() - started


MEMORY_PROBE = """
import json, sys, time
sys.path.insert(0, {repo!r})
def status(field):  # VmRSS now, VmHWM peak (per process image: ru_maxrss would keep the parent's across exec)
    line = next(l for l in open('/proc/self/status') if l.startswith(field + ':'))
    return int(line.split()[1]) * 1024
def rss():
    return status('VmRSS')
from ezclip_cli.store.format import load_store
import numpy as np
before = rss()
started = time.perf_counter()
stored = load_store({store!r})
seconds = time.perf_counter() - started
query = stored.embeddings[123]
t0 = time.perf_counter()
for _ in range(5):
    sims = stored.embeddings @ query
    top = np.argpartition(-sims, 19)[:20]
per_query = (time.perf_counter() - t0) / 5
print(json.dumps({{"rows": len(stored), "load_s": seconds, "before": before, "after": rss(),
                  "peak": status('VmHWM'), "query_s": per_query,
                  "embedding_bytes": stored.embeddings.nbytes}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=8, help="videos actually tagged (the rest is extrapolated)")
    parser.add_argument("--relabel-rows", type=int, default=10_000)
    parser.add_argument("--search-rows", type=int, default=100_000)
    parser.add_argument("--memory-rows", type=int, default=1_000_000)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--workers", type=int, default=-1)
    args = parser.parse_args()

    import numpy as np
    import torch

    from ezclip_cli.config import TagConfig
    from ezclip_cli.model.spec import ModelSpec
    from ezclip_cli.store.embed import run_embedding  # noqa: F401  (import cost outside the timings)
    from ezclip_cli.store.format import load_store
    from ezclip_cli.store.relabel import run_relabel
    from ezclip_cli.store.search import top_rows
    from ezclip_cli.store.writer import store_opener
    from ezclip_cli.tag.run import run_tagging

    with tempfile.TemporaryDirectory(prefix="ezclip-bench-") as tmp:
        root = Path(tmp)
        cache = root / "cache"
        config = TagConfig(
            labels="k400",
            templates=(TEMPLATE,),
            workers=args.workers,
            device="cpu",
            cache_dir=str(cache),
            output_format="jsonl",
            top_k=5,
        )

        spec = ModelSpec(backbone=args.model, pretrained="none")
        # 1. full tag of a sample, with --save-embeddings (this also warms the K400 text cache)
        render(root / "videos", args.sample)
        with open(root / "tag.jsonl", "w") as sink:
            summary = run_tagging(
                [str(root / "videos")],
                config,
                model=spec,
                stdout=sink,
                open_store=store_opener(root / "sample-store", spec),
            )
        per_video = summary.loop_seconds / summary.ok
        per_video_whole = summary.seconds / summary.ok
        sample = load_store(root / "sample-store")
        model_id, scale, dim = sample.model_id, sample.logit_scale, sample.embeddings.shape[1]
        stored_spec = spec.to_dict()

        # 2. re-label N stored embeddings with the 400 K400 labels, text cache warm
        relabel_store = root / "relabel-store"
        synthetic_store(relabel_store, args.relabel_rows, dim, model_id, scale, stored_spec)
        timings = []
        for attempt in range(3):
            out = root / f"relabel-{attempt}.jsonl"
            started = time.perf_counter()
            result = run_relabel(relabel_store, config, output=out)
            timings.append(time.perf_counter() - started)
        assert result.ok == args.relabel_rows
        env = {**os.environ, "PYTHONPATH": str(REPO), "EZCLIP_CACHE": str(cache)}
        cli = [
            sys.executable,
            "-m",
            "ezclip_cli",
            "tag",
            "--from-embeddings",
            str(relabel_store),
            "--labels",
            "k400",
            "--template",
            TEMPLATE,
            "--cache-dir",
            str(cache),
            "-o",
            str(root / "relabel-cli.jsonl"),
            "-q",
        ]
        started = time.perf_counter()
        subprocess.run(cli, check=True, env=env)
        cli_seconds = time.perf_counter() - started

        # 3. search over M stored embeddings
        search_store = root / "search-store"
        synthetic_store(search_store, args.search_rows, dim, model_id, scale, spec)
        started = time.perf_counter()
        stored = load_store(search_store)
        load_seconds = time.perf_counter() - started
        rng = np.random.default_rng(1)
        queries = rng.standard_normal((50, dim)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        top_rows(stored.embeddings, queries[0], 20)  # first call: BLAS thread start-up
        per_query = []
        for query in queries:
            started = time.perf_counter()
            top_rows(stored.embeddings, query, 20)
            per_query.append(time.perf_counter() - started)
        from ezclip_cli.model.load import load_model

        model = load_model(None, args.model, "none", 8)
        with torch.inference_mode():
            model.build_text_classifier([["warm up"]])
            started = time.perf_counter()
            model.build_text_classifier([["a person surfing a big wave"]])
            text_seconds = time.perf_counter() - started
        del stored, model

        # 4. memory for many embeddings, in a fresh process without torch
        memory_store = root / "memory-store"
        write_seconds = synthetic_store(memory_store, args.memory_rows, dim, model_id, scale, spec)
        probe = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE.format(repo=str(REPO), store=str(memory_store))],
            check=True,
            capture_output=True,
            text=True,
        )
        memory = json.loads(probe.stdout)
        disk = sum(p.stat().st_size for p in memory_store.rglob("*") if p.is_file())

    mib = 1024 * 1024
    threads = torch.get_num_threads()
    print(f"model {args.model} (random weights), {dim}-d embeddings, K400 400 labels, {threads} torch threads")
    print("re-labelling vs tagging the same videos")
    print(
        f"  full tag, measured on {summary.ok} videos: {per_video:.3f} s/video in the loop "
        f"({per_video_whole:.3f} s/video with model loading)"
    )
    extrapolated = per_video * args.relabel_rows
    print(f"  full tag of {args.relabel_rows:,} videos, extrapolated from that sample: {extrapolated:,.0f} s")
    print(
        f"  re-label {args.relabel_rows:,} stored embeddings (in-process, best of 3): {min(timings):.3f} s "
        f"(runs: {', '.join(f'{t:.3f}' for t in timings)})"
    )
    print(f"  re-label as a whole `ezclip tag --from-embeddings` process (imports included): {cli_seconds:.2f} s")
    print(f"  ratio full tag / re-label: {per_video * args.relabel_rows / min(timings):,.0f}x")
    print(f"search over {args.search_rows:,} stored embeddings")
    print(f"  load: {load_seconds:.3f} s")
    print(
        f"  per query after load (k=20, 50 queries): median {1000 * float(np.median(per_query)):.1f} ms, "
        f"max {1000 * max(per_query):.1f} ms"
    )
    print(f"  embedding one text query with the model: {1000 * text_seconds:.0f} ms")
    print(f"memory for {memory['rows']:,} stored embeddings (fresh process, numpy only)")
    print(
        f"  embeddings array: {memory['embedding_bytes'] / mib:,.0f} MiB; resident after load: "
        f"+{(memory['after'] - memory['before']) / mib:,.0f} MiB; peak RSS {memory['peak'] / mib:,.0f} MiB"
    )
    print(f"  load: {memory['load_s']:.2f} s; one query over all of them: {1000 * memory['query_s']:.0f} ms")
    print(f"  on disk: {disk / mib:,.0f} MiB (written in {write_seconds:.1f} s)")


if __name__ == "__main__":
    main()
