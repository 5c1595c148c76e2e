"""--seek keyframe: at most T decoded frames a clip, the used times recorded; torchcodec falls back per file."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from tests.helpers import REPO, run_cli
from tests.media import moving_ball_frames, write_video

MODEL = REPO / "examples" / "model" / "tiny-motion.ezclip"
FPS = 25


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory):
    """4 s at 25 fps with a keyframe every 25 frames (0, 1, 2, 3 s): what ordinary H.264 looks like, shrunk."""
    root = tmp_path_factory.mktemp("gop")
    return write_video(root / "gop.mp4", moving_ball_frames(100, 48, "right"), fps=FPS, keyframe_interval=25)


def keyframes(path) -> list[float]:
    """The keyframe times of `path`, read from its packets (the encoder also puts some at scene cuts)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [
            float(p.pts * stream.time_base) for p in container.demux(stream) if p.is_keyframe and p.pts is not None
        ]
    return sorted(round(t, 3) for t in times)


def counted_reads(monkeypatch):
    from ezclip_cli.video import pyav

    calls = {"frames": 0}
    original = pyav.FrameCursor.advance

    def advance(self):
        calls["frames"] += 1
        return original(self)

    monkeypatch.setattr(pyav.FrameCursor, "advance", advance)
    return calls


def test_keyframe_seek_decodes_at_most_t_frames_and_records_the_keyframe_times(long_gop, monkeypatch):
    from ezclip_cli.video.reader import read_frames

    calls = counted_reads(monkeypatch)
    exact = read_frames(long_gop, 8, decoder="pyav")
    exact_frames, calls["frames"] = calls["frames"], 0
    fast = read_frames(long_gop, 8, decoder="pyav", seek="keyframe")
    assert calls["frames"] <= 8 + 2 < exact_frames  # one frame per distinct keyframe (plus probing)
    assert fast.decoder == "pyav-keyframe" and fast.frames.shape == exact.frames.shape
    keys = keyframes(long_gop)
    assert 3 <= len(keys) < 8 and set(fast.timestamps) <= set(keys)  # what the model saw, honestly
    assert fast.timestamps != exact.timestamps and list(fast.timestamps) == sorted(fast.timestamps)
    # each used time is the keyframe nearest the exact segment centre
    for used, centre in zip(fast.timestamps, exact.timestamps):
        assert abs(used - centre) <= min(abs(k - centre) for k in keys) + 1e-6


def test_a_window_without_a_keyframe_is_sampled_exactly(long_gop):
    from ezclip_cli.video.reader import read_frames

    keys = keyframes(long_gop)
    gap = max(zip(keys, keys[1:]), key=lambda pair: pair[1] - pair[0])  # the longest GOP
    window = {"start": gap[0] + 0.1, "end": gap[1] - 0.1}  # inside it: no keyframe to take
    fast = read_frames(long_gop, 4, decoder="pyav", seek="keyframe", **window)
    exact = read_frames(long_gop, 4, decoder="pyav", **window)
    assert fast.timestamps == exact.timestamps and np.array_equal(fast.frames, exact.frames)


def test_keyframe_rows_are_their_own_settings_and_never_resume_exact_ones(long_gop, tmp_path, capsys):
    args = ("tag", str(long_gop), "-l", "a,b", "-c", str(MODEL), "--template", "{}", "-j", "0", "-q")
    exact = run_cli(*args, "-f", "jsonl", capsys=capsys)
    fast = run_cli(*args, "-f", "jsonl", "--seek", "keyframe", capsys=capsys)
    assert exact.code == fast.code == 0, exact.err + fast.err
    e, f = json.loads(exact.out), json.loads(fast.out)
    assert e["settings_id"] != f["settings_id"] and set(f["timestamps"]) <= set(keyframes(long_gop))
    out = tmp_path / "tags.jsonl"
    assert run_cli(*args, "-o", str(out), capsys=capsys).code == 0
    mixed = run_cli(*args, "-o", str(out), "--seek", "keyframe", capsys=capsys)
    assert mixed.code == 2 and "settings" in mixed.err  # refused, one line; the file is unchanged
    assert len(out.read_text().splitlines()) == 1


def test_torchcodec_without_a_gpu_falls_back_per_file_and_says_why(long_gop, capsys):
    result = run_cli(
        "tag",
        str(long_gop),
        "-l",
        "a,b",
        "-c",
        str(MODEL),
        "-j",
        "0",
        "--decoder",
        "torchcodec",
        "-f",
        "jsonl",
        capsys=capsys,
    )
    assert result.code == 0, result.err
    assert "decoding on the CPU" in result.err  # torchcodec or CUDA missing here: the reason is logged
    assert json.loads(result.out)["status"] == "ok"


def test_torchcodec_selection_with_a_fake_gpu_decoder(long_gop, monkeypatch):
    """The GPU path without a GPU: a stand-in torchcodec returns frames; sizes, times and refusals are ours."""
    import torch

    from ezclip_cli.video import pyav, torchcodec

    asked = {}

    class FakeDecoder:
        cpu_fallback = ""

        def __init__(self, path, device, seek_mode):
            asked.update(device=device, seek_mode=seek_mode)

        def get_frames_played_at(self, seconds):
            frames = torch.full((len(seconds), 3, 48, 48), 128, dtype=torch.uint8)
            return types.SimpleNamespace(data=frames, pts_seconds=torch.tensor([round(s * FPS) / FPS for s in seconds]))

    module = types.ModuleType("torchcodec.decoders")
    module.VideoDecoder = FakeDecoder
    monkeypatch.setitem(sys.modules, "torchcodec", types.ModuleType("torchcodec"))
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", module)
    with pyav.open_video(long_gop) as (container, stream):
        info, origin = pyav.probe(pyav.FrameCursor(container, stream))
    images, times = torchcodec.read_with_torchcodec(
        long_gop, "h264", info, origin, (64, 64), [origin, origin + 1.0], device="cuda:0"
    )
    assert [image.shape for image in images] == [(64, 64, 3)] * 2 and times == [0.0, 1.0]
    assert asked == {"device": "cuda:0", "seek_mode": "approximate"}
    with pytest.raises(torchcodec.Fallback, match="NVDEC has no prores decoder"):
        torchcodec.read_with_torchcodec(long_gop, "prores", info, origin, (64, 64), [origin], device="cuda:0")
    FakeDecoder.cpu_fallback = "AV1 not supported by this GPU"
    with pytest.raises(torchcodec.Fallback, match="NVDEC cannot decode this h264 video"):
        torchcodec.read_with_torchcodec(long_gop, "h264", info, origin, (64, 64), [origin], device="cuda:0")
