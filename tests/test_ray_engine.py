"""`tag --engine ray` on a real local Ray (2 CPUs): the same rows as `tag`, error rows for bad videos, every
video once after the driver is killed, and the Ray Data stages composed by hand with Ray's own writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import TINY_CONFIG, run_cli, start_paused
from tests.media import moving_ball_frames, write_broken, write_video

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pq = pytest.importorskip("pyarrow.parquet")

TINY = ["--model", str(TINY_CONFIG), "--pretrained", "none"]
LABELS = "moving right,moving left,growing,shrinking"
COMMON = [*TINY, "-k", "3", "--labels", LABELS]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray for the module (starting one costs seconds); the CLI joins it instead of starting its own."""
    cache = tmp_path_factory.mktemp("ray-cache")
    saved = os.environ.get("EZCLIP_CACHE")
    os.environ["EZCLIP_CACHE"] = str(cache)  # before ray.init: the workers inherit it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    if saved is None:
        os.environ.pop("EZCLIP_CACHE", None)
    else:
        os.environ["EZCLIP_CACHE"] = saved


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-videos")
    for i, motion in enumerate(["right", "left", "grow", "shrink", "right", "left"]):
        write_video(folder / f"clip_{i}.mp4", moving_ball_frames(12, 40 + 8 * (i % 2), motion, seed=i))
    write_broken(folder / "broken.mp4", "text")
    return folder


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_same_rows(expected: list[dict], got: list[dict]) -> None:
    """Same videos, identical top-k, scores within 1e-5, every other field equal."""
    by_path = {r["path"]: r for r in got}
    assert sorted(by_path) == sorted(r["path"] for r in expected) and len(got) == len(expected)
    for row in expected:
        other = by_path[row["path"]]
        assert other["labels"] == row["labels"], row["path"]
        assert all(abs(a - b) <= 1e-5 for a, b in zip(other["scores"], row["scores"])), row["path"]
        for name in ("status", "error", "start", "duration", "num_frames", "timestamps", "video_id", "model_id"):
            assert other[name] == row[name], (name, row["path"])
        assert (other["labels_id"], other["settings_id"]) == (row["labels_id"], row["settings_id"])


def test_ray_gives_tags_rows_and_an_error_row_for_a_broken_video(cluster, videos, tmp_path, capsys):
    plain = run_cli("tag", str(videos), *COMMON, "--workers", "0", "-o", str(tmp_path / "plain.jsonl"), capsys=capsys)
    assert plain.code == 1, plain.err  # one video failed, the rest were written
    on_ray = ["tag", str(videos), *COMMON, "--engine", "ray", "--decode-workers", "1", "-b", "2"]
    result = run_cli(*on_ray, "-o", str(tmp_path / "ray.jsonl"), capsys=capsys)
    assert result.code == 1 and "on Ray: 6 ok, 1 failed" in result.err, result.err
    rows = jsonl(tmp_path / "ray.jsonl")
    assert_same_rows(jsonl(tmp_path / "plain.jsonl"), rows)
    broken = [r for r in rows if r["status"] == "error"]
    assert [Path(r["path"]).name for r in broken] == ["broken.mp4"] and broken[0]["error"]

    # Parquet from the Ray engine reads back equal to its JSONL; a rerun resumes (only the failure is retried).
    result = run_cli(*on_ray, "-o", str(tmp_path / "ray.parquet"), capsys=capsys)
    assert result.code == 1, result.err
    from ezclip_cli.tag.columnar import read_table_rows

    assert_same_rows(rows, read_table_rows(tmp_path / "ray.parquet"))
    again = run_cli(*on_ray, "-o", str(tmp_path / "ray.parquet"), capsys=capsys)
    assert "6 already done" in again.err and "on Ray: 1 ok" not in again.err, again.err
    assert len(pq.read_table(tmp_path / "ray.parquet")) == 7


def test_a_killed_driver_reruns_to_every_video_once(cluster, videos, tmp_path):
    out = tmp_path / "k.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "ezclip_cli", "tag", str(videos), *COMMON, "--engine", "ray"]
    args += ["--ray-address", cluster, "--decode-workers", "1", "-b", "1", "-o", str(out), "-q"]
    proc = start_paused(args, "rows", 3, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    proc.send_signal(signal.SIGKILL)  # the driver dies; the cluster lives on
    proc.wait()
    assert len(jsonl(out)) == 3
    with out.open("a") as f:
        f.write('{"path": "torn')  # a kill mid-row
    resumed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 1, resumed.stderr  # the broken video, tried again and failed again
    rows = jsonl(out)
    paths = [r["path"] for r in rows]
    assert sorted(paths) == sorted(str(p) for p in videos.iterdir()) and len(set(paths)) == len(paths)


def own_processes(needle: str) -> list[int]:
    """Pids of this test process's descendants (the local Ray it started) whose command line holds `needle`."""
    parents: dict[int, int] = {}
    lines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
    ours, me = [], os.getpid()
    for pid, line in lines.items():
        ancestor = parents.get(pid)
        while ancestor not in (None, 0, 1, me):
            ancestor = parents.get(ancestor)
        if ancestor == me and needle in line:
            ours.append(pid)
    return ours


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the actor's process in /proc")
def test_a_killed_model_actor_is_retried_by_ray_without_duplicate_rows(cluster, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(16):  # big enough that decoding them all takes a few seconds on one core
        write_video(folder / f"c{i:02d}.mp4", moving_ball_frames(48, (240, 320), "right", seed=i), fps=16)
    out = tmp_path / "a.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "ezclip_cli", "tag", str(folder), *COMMON, "--engine", "ray"]
    args += ["--ray-address", cluster, "--decode-workers", "1", "-b", "1", "-o", str(out), "-q"]
    driver = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    killed: list[bool] = []

    def kill_the_actor_mid_run() -> None:
        while driver.poll() is None:
            if out.exists() and out.read_text().count("\n") >= 1:  # rows are flowing; most are still to come
                actors = own_processes("TagClips")
                for pid in actors:
                    os.kill(pid, signal.SIGKILL)
                killed.append(bool(actors) and driver.poll() is None)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_actor_mid_run)
    killer.start()
    _, err = driver.communicate(timeout=300)
    killer.join()
    assert killed == [True], "the actor was not killed while the driver was running"
    assert driver.returncode == 0, err
    paths = [r["path"] for r in jsonl(out)]
    assert sorted(paths) == sorted(str(p) for p in folder.iterdir())  # every clip once, none lost or doubled


def test_the_stages_compose_with_ray_datas_own_writer(cluster, videos, tmp_path, capsys):
    import numpy as np
    import ray.data

    from ezclip_cli.config import TagConfig
    from ezclip_cli.engine.ray_data import TagClips, decode_clips

    plain = run_cli("tag", str(videos), *COMMON, "--workers", "0", "-f", "jsonl", capsys=capsys)
    expected = [json.loads(line) for line in plain.out.splitlines()]
    config = TagConfig(labels=LABELS, top_k=3, output_format="jsonl")
    model = {"model": str(TINY_CONFIG), "pretrained": "none", "embeddings": True}
    ds = ray.data.from_items([{"path": str(p)} for p in sorted(videos.iterdir())])
    ds = ds.map_batches(decode_clips, fn_kwargs={"num_frames": 8, "image_size": 32}, batch_size=4)
    ds = ds.map_batches(
        TagClips,
        fn_constructor_kwargs={"config": config, **model},
        batch_size=4,
        compute=ray.data.ActorPoolStrategy(size=1),
    )
    ds.write_parquet(str(tmp_path / "tags"))
    table = pq.read_table(tmp_path / "tags")
    assert str(table.schema.field("embedding").type) == "fixed_size_list<element: float>[64]"
    rows = table.drop_columns(["embedding"]).to_pylist()
    assert_same_rows(expected, [{k: v for k, v in r.items()} for r in rows])
    vectors = {r["path"]: r["embedding"] for r in table.to_pylist()}
    assert all(vectors[r["path"]] is None for r in expected if r["status"] == "error")
    norms = [np.linalg.norm(v) for v in vectors.values() if v is not None]
    assert len(norms) == 6 and np.allclose(norms, 1.0, atol=1e-4)


def test_without_ray_the_engine_says_how_to_install_it(videos, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    result = run_cli("tag", str(videos), *COMMON, "--engine", "ray", capsys=capsys)
    assert result.code == 2 and "pip install 'ezclip[ray]'" in result.err
    assert len(result.err.strip().splitlines()) == 1
