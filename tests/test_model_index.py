"""Named models: the index, download once (from a server on 127.0.0.1), verify, convert once, cache, offline."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from ezclip_cli.config import ModelConfig
from ezclip_cli.errors import BackboneError, DownloadError, UsageError
from ezclip_cli.model.ezclip import build_model
from tests.helpers import OPENAI_STYLE, make_backbone, run_main, trained_like, write_reference_checkpoint
from tests.media import moving_ball_frames, write_video

NAME = "tiny-ezclip"
RELEASED = [
    "ezclip-b16-k400",
    "ezclip-b16-b2n-k400",
    "ezclip-b16-b2n-hmdb51",
    "ezclip-b16-b2n-ucf101",
    "ezclip-b16-b2n-ssv2",
]


@pytest.fixture(scope="module")
def reference_bytes(tmp_path_factory) -> bytes:
    """A tiny reference-layout checkpoint: mixed fp16/fp32, prompts, Adapter.D_fc* keys, zero temporal embedding."""
    folder = tmp_path_factory.mktemp("reference")
    config = folder / "openai-style.json"
    config.write_text(json.dumps(OPENAI_STYLE))
    model = build_model(make_backbone(0, config), ModelConfig(num_frames=8))
    trained_like(model)
    write_reference_checkpoint(folder / "ref.pt", model)
    state = torch.load(folder / "ref.pt", weights_only=True)["model_state_dict"]
    for key in [k for k in state if "ln_" in k or "embedding" in k]:  # LayerNorms and embeddings fp32, as released
        state[key] = state[key].float()
    torch.save({"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {}}, folder / "ref.pt")
    return (folder / "ref.pt").read_bytes()


class Server:
    """Serves byte strings on 127.0.0.1; `lie_length` announces more bytes than it sends (a cut transfer)."""

    def __init__(self, files: dict[str, bytes], lie_length: bool = False):
        self.files, self.requests = files, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's method name
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) * (2 if lie_length else 1)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private cache and index; downloads allowed (conftest switches the hub off for everything else)."""
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EZCLIP_MODEL_INDEX", str(tmp_path / "index.json"))
    monkeypatch.delenv("EZCLIP_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path


def write_index(path: Path, url: str, sha256: str | None = None, **more: object) -> None:
    entry = {
        "url": url,
        "sha256": sha256,
        "backbone": "tiny ViT",
        "num_frames": 8,
        "trained_on": "moving balls",
        "published": {"protocol": "zero-shot", "metric": "top-1 %", "results": {"balls": 99.0}},
        **more,
    }
    path.write_text(json.dumps({"default": NAME, "models": {NAME: entry}}))


def cache_files(root: Path) -> list[str]:
    folder = root / "cache" / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def served(env, reference_bytes):
    server = Server({"/tiny.pt": reference_bytes})
    write_index(env / "index.json", f"{server.url}/tiny.pt")
    yield server
    server.stop()


def test_models_lists_the_index_and_tag_by_name_downloads_converts_and_tags(served, env, reference_bytes, capsys):
    from ezclip_cli.hub.index import describe_models
    from ezclip_cli.model.checkpoint import detect_kind

    code, _ = run_main("models", capsys=capsys)
    assert code == 0

    (row,) = describe_models()
    assert row["name"] == NAME and row["default"] and not row["cached"] and row["num_frames"] == 8

    video = write_video(env / "ball.mp4", moving_ball_frames(8, 32, "right"))
    out = env / "tags.jsonl"
    code, err = run_main(
        "tag",
        str(video),
        "--labels",
        "a ball,a cat",
        "--checkpoint",
        NAME,
        "-o",
        str(out),
        "--workers",
        "0",
        "-q",
        capsys=capsys,
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    assert served.requests == ["/tiny.pt"]
    assert cache_files(env) == [f"{NAME}.ezclip", f"{NAME}.json"]  # converted once; no temporary files left
    cached = env / "cache" / "models" / f"{NAME}.ezclip"
    assert detect_kind(cached) == "ezclip"
    record = json.loads((env / "cache" / "models" / f"{NAME}.json").read_text())
    assert record["source_sha256"] == hashlib.sha256(reference_bytes).hexdigest()
    assert describe_models()[0]["cached"]

    # Server gone: the cache answers, with the same model id (so -o resumes instead of refusing).
    served.stop()
    code, err = run_main(
        "tag",
        str(video),
        "--labels",
        "a ball,a cat",
        "--checkpoint",
        NAME,
        "-o",
        str(env / "again.jsonl"),
        "--workers",
        "0",
        "-q",
        capsys=capsys,
    )
    assert code == 0, err
    again = json.loads((env / "again.jsonl").read_text())
    assert again["model_id"] == rows[0]["model_id"] and again["labels"] == rows[0]["labels"]
    assert served.requests == ["/tiny.pt"]


def test_named_model_is_identified_by_its_download_digest(served, reference_bytes):
    from ezclip_cli.model.load import load_model, model_fingerprint

    first, second = load_model(NAME), load_model(NAME)
    assert first.content_id == hashlib.sha256(reference_bytes).hexdigest()
    assert model_fingerprint(first) == model_fingerprint(second)


def test_default_resolves_to_the_index_default(served, capsys):
    from ezclip_cli.model.load import describe_model
    from ezclip_cli.model.spec import resolve_model

    assert describe_model(None, None, None, 8)["resolves_to"].startswith(f"{NAME} (the default), not cached")
    spec = resolve_model(None)
    assert spec.checkpoint is not None and spec.checkpoint.name == f"{NAME}.ezclip" and spec.name == NAME
    assert resolve_model("none").checkpoint is None  # plain CLIP, explicitly
    assert resolve_model(None, model="ViT-B-16").kind == "plain"
    assert "cached at" in describe_model(None, None, None, 8)["resolves_to"]
    code, err = run_main("info", capsys=capsys)
    assert code == 0, err


def test_truncated_download_is_refused_and_nothing_is_cached(env, reference_bytes, capsys):
    server = Server({"/tiny.pt": reference_bytes}, lie_length=True)
    try:
        write_index(env / "index.json", f"{server.url}/tiny.pt")
        code, err = run_main("models", "--download", NAME, capsys=capsys)
    finally:
        server.stop()
    assert code == 1
    (line,) = [x for x in err.splitlines() if x.startswith("ezclip: error")]
    assert "incomplete" in line and "nothing was cached" in line
    assert cache_files(env) == []


def test_cut_file_without_digest_fails_the_structure_check(env, reference_bytes):
    from ezclip_cli.model.spec import fetch_model as ensure_model

    server = Server({"/tiny.pt": reference_bytes[: len(reference_bytes) // 2]})  # honest length, half a file
    try:
        write_index(env / "index.json", f"{server.url}/tiny.pt")
        with pytest.raises(DownloadError, match="not a usable EZ-CLIP checkpoint"):
            ensure_model(NAME)
    finally:
        server.stop()
    assert cache_files(env) == []


def test_wrong_digest_is_refused_and_nothing_is_cached(env, reference_bytes, capsys):
    server = Server({"/tiny.pt": reference_bytes})
    try:
        write_index(env / "index.json", f"{server.url}/tiny.pt", sha256="0" * 64)
        code, err = run_main("tag", str(env), "--labels", "a,b", "--checkpoint", NAME, capsys=capsys)
    finally:
        server.stop()
    assert code == 1
    (line,) = [x for x in err.splitlines() if x.startswith("ezclip: error")]
    assert "does not match its sha256" in line and "nothing was cached" in line
    assert cache_files(env) == []


def test_right_digest_is_accepted_and_later_downloads_must_match_the_first(env, reference_bytes):
    from ezclip_cli.model.spec import fetch_model as ensure_model

    server = Server({"/tiny.pt": reference_bytes})
    try:
        write_index(env / "index.json", f"{server.url}/tiny.pt", sha256=hashlib.sha256(reference_bytes).hexdigest())
        assert ensure_model(NAME).is_file()
        # No digest in the index: the first download's digest is recorded and a changed file is refused.
        write_index(env / "index.json", f"{server.url}/tiny.pt")
        server.files["/tiny.pt"] = reference_bytes + b"tampered"
        with pytest.raises(DownloadError, match="does not match its sha256"):
            ensure_model(NAME, force=True)
    finally:
        server.stop()
    assert (env / "cache" / "models" / f"{NAME}.ezclip").is_file()  # the verified copy is kept


def test_server_down_and_nothing_cached_fails_at_once_with_one_line(env, monkeypatch, capsys):
    import urllib.request

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/tiny.pt"
    write_index(env / "index.json", url)
    connects = []
    real = socket.create_connection

    def counting(address, timeout=None, *args, **kwargs):
        connects.append((address, timeout))
        return real(address, timeout, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counting)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("no download may start"))
    code, err = run_main("tag", str(env), "--labels", "a,b", capsys=capsys)  # the default model, by name
    assert code == 1
    (line,) = [x for x in err.strip().splitlines() if x.startswith("ezclip: error")]
    assert NAME in line and url in line and "connection refused" in line
    assert f"ezclip models --download {NAME}" in line and "--checkpoint PATH" in line
    from ezclip_cli.hub.offline import CONNECT_TIMEOUT

    assert connects == [(("127.0.0.1", int(url.split(":")[2].split("/")[0])), CONNECT_TIMEOUT)]  # one try, no retries
    assert CONNECT_TIMEOUT <= 3
    assert cache_files(env) == []


@pytest.mark.parametrize("switch", ["EZCLIP_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_switches_refuse_to_download(served, env, monkeypatch, switch):
    from ezclip_cli.model.spec import fetch_model as ensure_model

    monkeypatch.setenv(switch, "1")
    with pytest.raises(DownloadError, match=f"{switch}=1"):
        ensure_model(NAME)
    assert served.requests == [] and cache_files(env) == []


def test_local_sources_need_no_network(env, reference_bytes, monkeypatch):
    from ezclip_cli.model.spec import fetch_model as ensure_model

    (env / "mirror").mkdir()
    (env / "mirror" / "tiny.pt").write_bytes(reference_bytes)
    monkeypatch.setenv("EZCLIP_OFFLINE", "1")
    write_index(env / "index.json", "mirror/tiny.pt")  # relative to the index file
    assert ensure_model(NAME).name == f"{NAME}.ezclip"
    write_index(env / "index.json", (env / "mirror" / "tiny.pt").as_uri())
    assert ensure_model(NAME, force=True).is_file()


def test_google_drive_goes_through_gdown_up_to_the_url(env, reference_bytes, monkeypatch):
    """Drive is never contacted in tests: the probe and gdown are replaced; we check what they are asked for."""
    import gdown

    from ezclip_cli.hub import index as models
    from ezclip_cli.model.spec import fetch_model

    file_id = "19QNGgaZjPyq0yz7XJGFccS7MV09KMY_K"
    probed, calls = [], []
    monkeypatch.setattr(models, "unreachable", lambda url, timeout: probed.append(url))

    def fake_download(url, output, quiet, timeout, retries):
        calls.append({"url": url, "timeout": timeout, "retries": retries})
        Path(output).write_bytes(reference_bytes)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    for url in (f"gdrive:{file_id}", f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"):
        write_index(env / "index.json", url)
        assert fetch_model(NAME, force=True).is_file()
    expected = f"https://drive.google.com/uc?id={file_id}"
    assert probed == [expected, expected]
    assert [c["url"] for c in calls] == [expected, expected]
    assert calls[0]["retries"] == 0 and calls[0]["timeout"][0] <= 3


def test_hf_hub_sources(env, reference_bytes, monkeypatch):
    import huggingface_hub

    from ezclip_cli.hub import index as models
    from ezclip_cli.model.spec import fetch_model

    assert models.parse_source("hf-hub:org/repo") == models.Source("hf", "org/repo", "model.ezclip")
    assert models.parse_source("hf-hub:org/repo/sub/ref.pt") == models.Source("hf", "org/repo", "sub/ref.pt")
    with pytest.raises(UsageError):
        models.parse_source("hf-hub:org")
    (env / "hub.pt").write_bytes(reference_bytes)
    asked = []
    monkeypatch.setattr(models, "unreachable", lambda url, timeout: None)
    monkeypatch.setattr(
        huggingface_hub,
        "hf_hub_download",
        lambda repo, filename, local_files_only: asked.append((repo, filename)) or str(env / "hub.pt"),
    )
    write_index(env / "index.json", "hf-hub:org/repo/ref.pt")
    assert fetch_model(NAME).is_file()
    assert asked == [("org/repo", "ref.pt")]


def test_builtin_index_lists_the_five_released_models(monkeypatch, tmp_path):
    monkeypatch.delenv("EZCLIP_MODEL_INDEX", raising=False)
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path))
    from ezclip_cli.hub.index import describe_models, fetch_url, load_index, parse_source

    index = load_index()
    assert index.default == "ezclip-b16-k400"
    assert list(index.models) == RELEASED
    for entry in index.models.values():
        assert fetch_url(parse_source(entry.url)).startswith("https://drive.google.com/uc?id=")
        assert entry.num_frames == 8 and entry.architecture == "ViT-B-16-quickgelu" and entry.published["results"]
    assert [row["cached"] for row in describe_models()] == [False] * 5


def test_models_command_prints_the_table(monkeypatch, tmp_path, capsys):
    from typer.testing import CliRunner

    from ezclip_cli.cli.app import app

    monkeypatch.delenv("EZCLIP_MODEL_INDEX", raising=False)
    monkeypatch.setenv("EZCLIP_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["NAME", "BACKBONE"] and len(lines) == 6
    assert lines[1].startswith("ezclip-b16-k400 *") and "52.9" in lines[1] and "Kinetics-400" in lines[1]
    assert all(any(line.startswith(name) for line in lines) for name in RELEASED)


def test_bad_index_and_unknown_names_are_one_line_errors(env, capsys):
    (env / "index.json").write_text("{not json")
    code, err = run_main("models", capsys=capsys)
    assert code == 2 and "EZCLIP_MODEL_INDEX" in err and err.count("\n") == 1
    write_index(env / "index.json", "http://127.0.0.1:9/x.pt")
    code, err = run_main("models", "--download", "nope", capsys=capsys)
    assert code == 2 and "unknown model 'nope'" in err
    code, err = run_main("tag", str(env), "--labels", "a,b", "--checkpoint", "nope", capsys=capsys)
    assert code == 1 and "checkpoint not found" in err and NAME in err


def test_train_init_starts_from_the_named_model(served):
    from ezclip_cli.model.load import load_model, start_from

    backbone, learned = start_from(NAME, 8, True, "cpu")
    released = load_model(NAME)
    assert set(learned) == set(released.learned_state_dict())
    assert all(torch.equal(v, released.learned_state_dict()[k]) for k, v in learned.items())
    fresh = build_model(backbone, ModelConfig(num_frames=8))
    fresh.load_learned_state_dict(learned)
    video = torch.randn(1, 8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(fresh.eval().encode_video(video), released.encode_video(video), atol=1e-6)
    with pytest.raises(UsageError, match="--num-frames 8"):
        start_from(NAME, 16, True, "cpu")


def test_backbone_weights_offline_fail_at_once_with_the_remedies(tmp_path, monkeypatch):
    import open_clip

    from ezclip_cli.hub import offline
    from ezclip_cli.model.backbone import load_backbone

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("EZCLIP_OFFLINE", "1")
    attempts = []
    real = open_clip.create_model

    def spy(*args, **kwargs):
        from huggingface_hub import constants

        attempts.append(constants.HF_HUB_OFFLINE)
        return real(*args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model", spy)
    monkeypatch.setattr(offline, "unreachable", lambda url, timeout=3: pytest.fail("offline: no probe either"))
    with pytest.raises(BackboneError) as caught:
        load_backbone("ViT-B-32", "openai", cache_dir=str(tmp_path / "hf"))
    message = str(caught.value)
    assert "\n" not in message and "EZCLIP_OFFLINE=1" in message and "HF_HUB_OFFLINE=1" in message
    assert "ezclip models --download" in message and "--pretrained" in message
    assert attempts == [True]  # only the cache was asked; no online attempt


def test_probe_asks_the_proxy_when_one_is_configured(monkeypatch):
    from ezclip_cli.hub.offline import unreachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "")
    assert f"127.0.0.1:{port}" in unreachable("https://models.invalid/x.pt")
    monkeypatch.setenv("NO_PROXY", "models.invalid")
    assert "not resolved" in unreachable("https://models.invalid/x.pt")


def test_listing_models_imports_no_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ezclip_cli.cli.app import app\n"
        "for args in (['models', '--help'], ['models']):\n"
        "    try:\n"
        "        app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'torch' not in sys.modules\n"
    )
    env = {**__import__("os").environ, "EZCLIP_CACHE": str(tmp_path)}
    env.pop("EZCLIP_MODEL_INDEX", None)
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "ezclip-b16-k400" in result.stdout


def test_eval_and_export_take_names_and_eval_defaults_to_the_index_default(served, env, monkeypatch, capsys):
    from ezclip_cli.eval import report
    from ezclip_cli.eval import run as evaluate

    seen = []

    def fake_run(config, progress):
        seen.append(config.checkpoints)
        return evaluate.EvalOutcome({}, 0)

    monkeypatch.setattr(evaluate, "run_evaluation", fake_run)  # only which models eval is given is checked here
    monkeypatch.setattr(report, "write_report", lambda report, out: [out / "report.json"])
    monkeypatch.setattr(report, "report_console", lambda report: None)
    for extra in ([], ["--checkpoint", NAME], ["--checkpoint", "none"]):
        code, err = run_main("eval", "--dataset", "ucf101", "--root", str(env), *extra, capsys=capsys)
        assert code == 0, err
    cached = str(env / "cache" / "models" / f"{NAME}.ezclip")
    assert seen == [(cached,), (cached,), ()]  # the default, by name, and plain CLIP explicitly
    code, err = run_main(
        "export", "-c", NAME, "--out", str(env / "bundle"), "--format", "safetensors", "-q", capsys=capsys
    )
    assert code == 0, err
    assert (env / "bundle" / "model.safetensors").is_file()


def test_train_init_from_a_name_keeps_the_released_parts(served, env, capsys):
    from ezclip_cli.model.checkpoint import load_checkpoint
    from ezclip_cli.model.load import load_model

    lines = []
    for i, direction in enumerate(["left", "right", "left", "right"]):
        write_video(env / f"clip{i}.mp4", moving_ball_frames(8, 32, direction, seed=i))
        lines.append(f"clip{i}.mp4\t{direction}")
    (env / "train.txt").write_text("\n".join(lines) + "\n")
    code, err = run_main(
        "train",
        "--train-list",
        str(env / "train.txt"),
        "--init",
        NAME,
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--lr",
        "1e-9",
        "--weight-decay",
        "0",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--out",
        str(env / "run"),
        "-q",
        capsys=capsys,
    )
    assert code == 0, err
    trained, extra = load_checkpoint(env / "run" / "last.ezclip")
    released = load_model(NAME).learned_state_dict()
    assert extra["train_config"]["init"] == NAME
    for name, value in trained.learned_state_dict().items():  # one step at lr 1e-9 from the released values
        assert torch.allclose(value, released[name], atol=1e-6), name
