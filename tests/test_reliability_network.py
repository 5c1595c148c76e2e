"""Every wait has a deadline, every leftover is cleaned, every bad index entry gets its own line (issue 21)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import REPO, run_cli

MODEL = REPO / "examples" / "model" / "tiny-motion.ezclip"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EZCLIP_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "cache"


def index(tmp_path, monkeypatch, models: dict) -> None:
    path = tmp_path / "index.json"
    path.write_text(json.dumps({"models": models}))
    monkeypatch.setenv("EZCLIP_MODEL_INDEX", str(path))


class Trickle:
    """A server that promises 100,000 bytes and sends one byte every 0.2 s: it never ends on its own."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    for _ in range(100_000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/model.pt"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_case4_a_trickling_download_ends_with_one_line_and_nothing_cached(tmp_path, cache, monkeypatch, capsys):
    server = Trickle()
    index(tmp_path, monkeypatch, {"slow": {"url": server.url}})
    monkeypatch.setenv("EZCLIP_DOWNLOAD_MIN_RATE", "100")  # bytes/s
    monkeypatch.setenv("EZCLIP_DOWNLOAD_WINDOW", "1")  # seconds
    started = time.monotonic()
    result = run_cli("models", "--download", "slow", capsys=capsys)
    assert time.monotonic() - started < 30  # ends by itself (a hang would run until the test's timeout)
    assert result.code == 1 and "too slow" in result.err and "nothing was cached" in result.err, result.err
    assert not list((cache / "models").glob("slow*")) and not list((cache / "models").glob(".slow-*"))
    server.httpd.shutdown()


def test_case7_a_killed_downloads_temporary_folder_is_removed_by_the_next_run(tmp_path, cache, monkeypatch, capsys):
    index(tmp_path, monkeypatch, {"tiny": {"url": str(MODEL)}})
    stale = cache / "models" / ".tiny-k1ll3d"
    stale.mkdir(parents=True)
    (stale / "tiny.download").write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale / "tiny.download", (old, old))
    os.utime(stale, (old, old))
    fresh = cache / "models" / ".tiny-inprogress"  # another process's download, still being written
    fresh.mkdir()
    (fresh / "tiny.download").write_bytes(b"now")
    result = run_cli("models", "--download", "tiny", capsys=capsys)
    assert result.code == 0, result.err
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a/b", ".hidden"])
def test_case22_index_names_with_path_parts_are_refused(tmp_path, cache, monkeypatch, capsys, name):
    index(tmp_path, monkeypatch, {name: {"url": str(MODEL)}})
    result = run_cli("models", capsys=capsys)
    assert result.code == 2 and "is not a plain name" in result.err, result.err


def test_case23_urls_the_index_cannot_read_are_named(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("EZCLIP_MODEL_INDEX", "http://example.com/index.json")
    result = run_cli("models", capsys=capsys)
    assert result.code == 2 and "read from a local file" in result.err, result.err
    index(tmp_path, monkeypatch, {"ftp": {"url": "ftp://example.com/model.pt"}})
    result = run_cli("models", "--download", "ftp", capsys=capsys)
    assert result.code == 2 and "unsupported scheme 'ftp:'" in result.err, result.err


def test_case27_offline_messages_and_plain_clip_fails_before_torch(tmp_path, cache, monkeypatch, capsys):
    index(tmp_path, monkeypatch, {"remote": {"url": "https://example.com/model.pt"}})
    monkeypatch.setenv("EZCLIP_OFFLINE", "1")
    result = run_cli("models", "--download", "remote", capsys=capsys)
    assert result.code == 1 and "unset EZCLIP_OFFLINE to download it here" in result.err, result.err
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"not read")
    code = (
        "import sys\nfrom ezclip_cli.cli.app import main\n"
        f"sys.argv = ['ezclip', 'tag', {str(clip)!r}, '-l', 'a,b', '--checkpoint', 'none']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    print(exc.code, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "OPEN_CLIP_CACHE": str(tmp_path / "oc")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert done.stdout.split() == ["1", "False"], done.stdout + done.stderr  # refused before torch was imported


def test_case25_26_bundle_files_that_disagree_and_model_paths_that_do_not_exist(tmp_path, cache, capsys):
    bundle = tmp_path / "bundle"
    exported = run_cli("export", "-c", str(MODEL), "-o", str(bundle), "-l", "run,jump", "-q", capsys=capsys)
    assert exported.code == 0, exported.err
    with open(bundle / "labels.txt", "a") as f:
        f.write("swim\n")
    clip = tmp_path / "a.mp4"
    from tests.media import moving_ball_frames, write_video

    write_video(clip, moving_ball_frames(8, 32, "left"))
    result = run_cli("tag", str(clip), "-l", "run,jump", "--model", str(bundle), "--runtime", "onnx", capsys=capsys)
    assert result.code == 1 and "labels.txt lists 3 labels but config.json 2" in result.err, result.err
    missing = run_cli("tag", str(clip), "-l", "a,b", "--model", "./no/such/config", capsys=capsys)
    assert missing.code == 1 and "no such file or directory" in missing.err and len(missing.err) < 200
    near = run_cli("tag", str(clip), "-l", "a,b", "--model", "ViT-B16", "--pretrained", "none", capsys=capsys)
    assert "did you mean ViT-B-16?" in near.err and len(near.err) < 300


def test_case18_a_model_index_that_is_not_utf8_is_one_line(tmp_path, cache, monkeypatch, capsys):
    path = tmp_path / "index.json"
    path.write_bytes(b'{"models": {"caf\xe9": {"url": "x.pt"}}}')
    monkeypatch.setenv("EZCLIP_MODEL_INDEX", str(path))
    result = run_cli("models", capsys=capsys)
    assert result.code == 2 and "not UTF-8" in result.err and "UnicodeDecodeError" not in result.err, result.err
