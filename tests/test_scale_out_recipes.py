"""The README's "Tagging a million videos" recipes run as written: a SLURM array and one torchrun per node."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, TINY_CONFIG, run_main
from tests.media import moving_ball_frames, write_broken, write_video

EXAMPLES = REPO / "examples"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the recipes are bash scripts")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale-out")
    (root / "videos").mkdir()
    paths = [
        write_video(root / "videos" / f"{i:03d}.mp4", moving_ball_frames(8, 32, d, seed=i))
        for i, d in enumerate(("right", "left", "grow", "shrink", "right", "left"))
    ]
    paths.append(write_broken(root / "videos" / "bad.mp4", "truncated"))
    manifest = root / "manifest.txt"
    manifest.write_text("".join(f"{p}\n" for p in paths))
    return manifest


def recipe_env(manifest: Path, out: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "MANIFEST": str(manifest),
        "LABELS": "a,b,c",
        "OUT": str(out),
        "EZCLIP_TAG_ARGS": f"--model {TINY_CONFIG} --pretrained none --num-frames 4 -k 2",
        "EZCLIP_CACHE": str(out / "cache"),
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def run_together(script: Path, envs: list[dict[str, str]]) -> list[subprocess.CompletedProcess]:
    """`bash script` once per environment, all at the same time (as array tasks and nodes run), each
    awaited to its end: exit codes and output, in the order of `envs`."""
    procs = [
        subprocess.Popen(
            ["bash", str(script)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for env in envs
    ]
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
        return [subprocess.CompletedProcess(p.args, p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]
    finally:
        for p in procs:  # one that timed out (or a failed wait) must not outlive the test, nor its children
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def merged(parts: list[Path], out: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    """`ezclip merge PARTS -o OUT` (in this process: only the recipe scripts need real processes)."""
    code, err = run_main("merge", *map(str, parts), "-o", str(out), capsys=capsys)
    assert code == 0, err
    return [json.loads(line) for line in out.read_text().splitlines()]


def check_every_video_once(rows: list[dict], manifest: Path) -> None:
    assert [r["path"] for r in rows] == sorted(manifest.read_text().split())
    assert [r["status"] for r in rows].count("error") == 1 and rows[-1]["path"].endswith("bad.mp4")


def test_slurm_array_script_then_merge(manifest, tmp_path, capsys):
    out = tmp_path / "tags"
    tasks = ("1", "2")  # sbatch --array=1-2: ids from 1, shards 0 and 1 of 2
    envs = [
        recipe_env(
            manifest,
            out,
            EZCLIP=f"{sys.executable} -m ezclip_cli",
            SLURM_ARRAY_TASK_ID=task,
            SLURM_ARRAY_TASK_COUNT="2",
            SLURM_ARRAY_TASK_MIN="1",
            SLURM_CPUS_PER_TASK="1",
        )
        for task in tasks
    ]
    for task, result in zip(tasks, run_together(EXAMPLES / "tag_slurm_array.sh", envs)):
        assert result.returncode == 0, result.stderr  # an unreadable video does not fail the task
        assert f"shard {int(task) - 1} of 2 (from SLURM_ARRAY_TASK_ID" in result.stderr
    parts = sorted(out.glob("part-*.jsonl"))
    assert [p.name for p in parts] == ["part-1.jsonl", "part-2.jsonl"]
    sizes = [len(p.read_text().splitlines()) for p in parts]
    assert sum(sizes) == 7 and min(sizes) > 0
    check_every_video_once(merged(parts, tmp_path / "all.jsonl", capsys), manifest)


@pytest.mark.slow
def test_torchrun_per_node_script_then_merge(manifest, tmp_path, capsys):
    out = tmp_path / "tags"
    nodes = ("0", "1")  # two "nodes", one torchrun each, run here side by side (--standalone: they never talk)
    envs = [
        recipe_env(
            manifest,
            out,
            NODE_RANK=node,
            NUM_NODES="2",
            GPUS="1",
            TORCHRUN=f"{sys.executable} -m torch.distributed.run",
        )
        for node in nodes
    ]
    for result in run_together(EXAMPLES / "tag_torchrun_node.sh", envs):
        assert result.returncode == 0, result.stderr[-3000:]
    parts = sorted(out.glob("node-*.jsonl"))
    assert [p.name for p in parts] == ["node-0.jsonl", "node-1.jsonl"]
    check_every_video_once(merged(parts, tmp_path / "all.jsonl", capsys), manifest)
