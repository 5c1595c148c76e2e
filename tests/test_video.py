"""ezclip_cli.video and its decoders (decode_pyav, decode_decord): finding videos, sampling indices, reading frames.

Every clip is rendered by tests/media.py into a temporary folder. Frames returned by
`read_frames` are checked against an independent full decode with PyAV, so a seeking or
sampling bug shows up as a wrong picture, not just a wrong shape.
"""

from __future__ import annotations

import io
import os
import random
import re
import struct
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ezclip_cli.errors import VideoError
from ezclip_cli.video import decord as decode_decord
from ezclip_cli.video import pyav as decode_pyav
from ezclip_cli.video.pyav import VideoInfo
from ezclip_cli.video.reader import (
    VIDEO_EXTENSIONS,
    Clip,
    is_video_path,
    list_videos,
    probe_video,
    read_frames,
    sample_indices,
)
from tests.helpers import touch
from tests.media import BROKEN_KINDS, moving_ball_frames, write_broken, write_video

HAS_DECORD = decode_decord.decord_importable()
needs_decord = pytest.mark.skipif(not HAS_DECORD, reason="decord is not installed")
DECODERS = ["pyav", pytest.param("decord", marks=needs_decord)]
FPS = 8
SIZE = (32, 40)  # (H, W): not square, so a transposed frame cannot pass for a right one
FORMATS = [  # (extension, codec): the containers and codecs ezclip meets most
    ("mp4", "libx264"),
    ("mov", "libx264"),
    ("webm", "libvpx-vp9"),
    ("mkv", "ffv1"),
    ("mkv", "libx264"),
    ("avi", "mpeg4"),
]


def reference_frames(path: Path) -> list[np.ndarray]:
    """Every frame, decoded start to end by PyAV with no seeking: the ground truth."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def ball_centre_x(image: np.ndarray) -> float:
    """Mean column of the red ball's pixels in an RGB image (H, W, 3)."""
    red = (image[..., 0] > 150) & (image[..., 1] < 100) & (image[..., 2] < 100)
    assert red.any(), "no ball in the frame"
    return float(np.nonzero(red)[1].mean())


def expected_times(num_source: int, num_frames: int, first: int = 0) -> list[float]:
    return [(first + i) / FPS for i in sample_indices(num_source, num_frames)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A 16-frame rightward ball in every format, plus the special cases, written once."""
    folder = tmp_path_factory.mktemp("clips")
    frames = moving_ball_frames(16, SIZE)
    paths = {
        f"{ext}-{codec}": write_video(folder / f"ball_{codec}.{ext}", frames, FPS, codec) for ext, codec in FORMATS
    }
    paths["odd"] = write_video(folder / "odd.mp4", moving_ball_frames(6, (33, 47)), FPS)
    paths["one"] = write_video(folder / "one.mp4", moving_ball_frames(1, SIZE), FPS)
    paths["long"] = write_video(folder / "long.mp4", moving_ball_frames(40, SIZE), FPS)
    paths["gop"] = write_video(folder / "gop.mp4", moving_ball_frames(120, SIZE), 25, keyframe_interval=10)
    paths["gop-mkv"] = write_video(folder / "gop.mkv", moving_ball_frames(120, SIZE), 25, keyframe_interval=10)
    # FLV indexes its last packet as a keyframe: a seek there decodes nothing.
    paths["gop-flv"] = write_video(folder / "gop.flv", moving_ball_frames(120, SIZE), 25, keyframe_interval=50)
    return paths


# ---- sample_indices --------------------------------------------------------------------


def test_sample_indices_test_mode_is_the_segment_centre_formula():
    for num_source in range(8, 200, 7):
        for num_frames in (1, 2, 3, 8, 16):
            if num_source < num_frames:
                continue
            ratio = Fraction(num_source, num_frames)  # exact, as in docs/model.md section 8
            expected = [int(i * ratio + (ratio - 1) / 2) for i in range(num_frames)]
            assert sample_indices(num_source, num_frames) == expected
    assert sample_indices(80, 8) == [4, 14, 24, 34, 44, 54, 64, 74]
    assert sample_indices(16, 8) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert sample_indices(8, 8) == list(range(8))


def test_sample_indices_repeat_frames_when_the_video_is_short():
    assert sample_indices(1, 8) == [0] * 8
    assert sample_indices(3, 8) == [0, 0, 0, 1, 1, 1, 2, 2]
    for num_source in range(1, 8):
        picked = sample_indices(num_source, 8)
        assert picked == sorted(picked) and set(picked) == set(range(num_source))


def test_sample_indices_train_mode_draws_inside_each_segment():
    for num_source in (1, 3, 8, 9, 50, 301):
        for seed in range(20):
            picked = sample_indices(num_source, 8, random.Random(seed))
            assert picked == sorted(picked)
            for i, index in enumerate(picked):
                first, stop = i * num_source // 8, (i + 1) * num_source // 8
                assert first <= index < max(stop, first + 1)
    # test-mode centres lie in the same segments
    for num_source in range(8, 100):
        for i, index in enumerate(sample_indices(num_source, 8)):
            assert i * num_source // 8 <= index < (i + 1) * num_source // 8


def test_sample_indices_train_mode_is_random_but_seeded():
    draws = {tuple(sample_indices(100, 8, random.Random(seed))) for seed in range(10)}
    assert len(draws) > 5
    assert sample_indices(100, 8, random.Random(3)) == sample_indices(100, 8, random.Random(3))
    assert sample_indices(3, 8, random.Random(0)) == sample_indices(3, 8)


def test_sample_indices_rejects_empty_inputs():
    with pytest.raises(ValueError):
        sample_indices(0, 8)
    with pytest.raises(ValueError):
        sample_indices(10, 0)


# ---- list_videos ------------------------------------------------------------------------


def test_extensions_are_lower_case_and_matched_case_insensitively():
    assert all(ext == ext.lower() and ext.startswith(".") for ext in VIDEO_EXTENSIONS)
    assert {".mp4", ".webm", ".mkv", ".avi", ".mov", ".gif", ".ts"} <= VIDEO_EXTENSIONS
    assert is_video_path("a/B.MP4") and is_video_path(Path("x.WebM")) and is_video_path("c.Mkv")
    assert not is_video_path("notes.txt") and not is_video_path("mp4")


def test_list_videos_walks_sorted_skips_hidden_and_survives_symlink_loops(tmp_path):
    root = tmp_path / "videos"
    for name in [
        "b.mp4",
        "a.MOV",
        "sub/c.webm",
        "sub/deeper/d.MKV",
        "a_dir/e.avi",
        "notes.txt",
        "sub/readme.md",
        ".hidden.mp4",
        ".cache/f.mp4",
        "sub/.git/g.mp4",
    ]:
        touch(root / name)
    outside = tmp_path / "outside"
    touch(outside / "z.mp4")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)  # a cycle
    (root / "sub" / "self").symlink_to(root / "sub", target_is_directory=True)

    found = list_videos([root])

    relative = [path.relative_to(root).as_posix() for path in found]
    assert relative == ["a.MOV", "a_dir/e.avi", "b.mp4", "linked/z.mp4", "sub/c.webm", "sub/deeper/d.MKV"]
    assert list_videos([str(root)]) == found  # str and Path inputs alike


def test_list_videos_keeps_named_files_reads_stdin_and_drops_duplicates(tmp_path):
    first = touch(tmp_path / "one.mp4")
    second = touch(tmp_path / "folder" / "two.mkv")
    named = touch(tmp_path / "clip.data")  # named explicitly: kept, fails later if bad
    stdin = io.StringIO(f"\n{second}\n  \n{first}\n{named}\n")

    found = list_videos([first, "-", tmp_path / "folder", str(first)], stdin=stdin)

    assert found == [first, second, named]


def test_list_videos_reports_a_missing_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match="no such file or directory: .*nope.mp4"):
        list_videos([missing])


# ---- read_frames: formats and content ---------------------------------------------------


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("fmt", [f"{ext}-{codec}" for ext, codec in FORMATS])
def test_read_frames_returns_the_sampled_frames(clips, fmt, decoder):
    path = clips[fmt]
    clip = read_frames(path, 8, decoder=decoder)

    assert isinstance(clip, Clip) and clip.decoder == decoder
    assert clip.frames.shape == (8, *SIZE, 3) and clip.frames.dtype == np.uint8
    assert clip.timestamps == pytest.approx(expected_times(16, 8))
    assert clip.duration == pytest.approx(16 / FPS)
    reference = reference_frames(path)
    for image, time in zip(clip.frames, clip.timestamps):
        truth = reference[round(time * FPS)].astype(int)
        assert np.abs(image.astype(int) - truth).max() <= 2
    centres = [ball_centre_x(image) for image in clip.frames]
    assert all(a < b for a, b in zip(centres, centres[1:]))  # the ball moves right


@pytest.mark.parametrize("fmt", [f"{ext}-{codec}" for ext, codec in FORMATS])
def test_probe_video_reads_the_header(clips, fmt):
    info = probe_video(clips[fmt])
    assert info == VideoInfo(
        duration=pytest.approx(2.0), fps=pytest.approx(FPS), num_frames=16, width=SIZE[1], height=SIZE[0], rotation=0
    )


@needs_decord
@pytest.mark.parametrize("fmt", ["mp4-libx264", "webm-libvpx-vp9", "mkv-libx264", "gop", "long"])
def test_decord_and_pyav_agree(clips, fmt):
    for rng_seed in (None, 5):
        clips_by_decoder = [
            read_frames(
                clips[fmt],
                8,
                decoder=decoder,
                start=0.3,
                end=4.0,
                rng=None if rng_seed is None else random.Random(rng_seed),
            )
            for decoder in ("pyav", "decord")
        ]
        pyav_clip, decord_clip = clips_by_decoder
        assert pyav_clip.timestamps == decord_clip.timestamps
        difference = np.abs(pyav_clip.frames.astype(int) - decord_clip.frames.astype(int))
        assert difference.mean() < 0.5 and difference.max() <= 8


@pytest.mark.parametrize("decoder", DECODERS)
def test_seeking_lands_on_the_right_frames(clips, decoder):
    """120 frames, a keyframe every 10: windows and random draws against a full decode."""
    for key in ("gop", "gop-mkv", "gop-flv"):
        if key == "gop-flv" and decoder == "decord":
            continue  # decord miscounts FLV; "auto" reads it with PyAV
        reference = reference_frames(clips[key])
        requests = [
            {},
            {"start": 1.0, "end": 3.0},
            {"start": 4.5},
            {"rng": random.Random(1)},
            {"start": 0.3, "end": 4.1, "rng": random.Random(2)},
        ]
        for request in requests:
            clip = read_frames(clips[key], 8, decoder=decoder, **request)
            for image, time in zip(clip.frames, clip.timestamps):
                assert np.array_equal(image, reference[round(time * 25)]), (key, request, time)


def test_only_frames_near_the_samples_are_decoded(clips, monkeypatch):
    decoded = []
    advance = decode_pyav.FrameCursor.advance

    def counting_advance(self):
        decoded.append(1)
        return advance(self)

    monkeypatch.setattr(decode_pyav.FrameCursor, "advance", counting_advance)
    read_frames(clips["gop"], 4, decoder="pyav")  # 120 frames, keyframe every 10
    assert len(decoded) <= 4 * 10 + 2


@pytest.mark.parametrize("decoder", DECODERS)
def test_odd_frame_size(clips, decoder):
    with av.open(str(clips["odd"])) as container:  # the odd size really is in the file
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (47, 33)
    clip = read_frames(clips["odd"], 4, decoder=decoder)
    assert clip.frames.shape == (4, 33, 47, 3)
    reference = reference_frames(clips["odd"])
    for image, time in zip(clip.frames, clip.timestamps):
        assert np.abs(image.astype(int) - reference[round(time * FPS)]).max() <= 2


@pytest.mark.parametrize("decoder", DECODERS)
def test_one_frame_video_gives_that_frame_every_time(clips, decoder):
    clip = read_frames(clips["one"], 8, decoder=decoder)
    assert clip.frames.shape == (8, *SIZE, 3)
    assert clip.timestamps == (0.0,) * 8
    assert all(np.array_equal(image, clip.frames[0]) for image in clip.frames)
    assert probe_video(clips["one"]).num_frames == 1


# ---- rotation ---------------------------------------------------------------------------


def marked_frames(num_frames: int = 3) -> np.ndarray:
    """Black (32, 40) frames with a white square in the top-left corner."""
    frames = np.zeros((num_frames, *SIZE, 3), np.uint8)
    frames[:, :8, :8] = 255
    return frames


@pytest.mark.parametrize("rotation, corner", [(90, "top-right"), (180, "bottom-right"), (270, "bottom-left")])
def test_rotation_metadata_turns_frames_upright(tmp_path, rotation, corner):
    path = write_video(tmp_path / "rotated.mp4", marked_frames(), FPS, rotation=rotation)

    info = probe_video(path)
    clip = read_frames(path, 3)  # auto: decord would not rotate reliably, so PyAV reads it

    height, width = SIZE if rotation == 180 else SIZE[::-1]
    assert (info.rotation, info.width, info.height) == (rotation, width, height)
    assert clip.frames.shape == (3, height, width, 3) and clip.decoder == "pyav"
    ys, xs = np.nonzero(clip.frames[0].mean(axis=-1) > 128)
    assert corner == ("top" if ys.mean() < height / 2 else "bottom") + "-" + (
        "left" if xs.mean() < width / 2 else "right"
    )


def test_rotation_convention_matches_phone_videos(tmp_path):
    """A portrait phone video stores the mp4 track matrix [0 1; -1 0]: 90 degrees clockwise."""
    path = write_video(tmp_path / "portrait.mp4", marked_frames(), FPS, rotation=90)
    data = path.read_bytes()
    matrix_at = data.index(b"tkhd") + 4 + 40  # version 0 track header: the matrix follows
    a, b, _, c, d = struct.unpack(">5i", data[matrix_at : matrix_at + 20])
    assert (a, b, c, d) == (0, 1 << 16, -(1 << 16), 0)
    assert probe_video(path).rotation == 90


def test_forced_decord_refuses_a_rotated_video(tmp_path):
    if not HAS_DECORD:
        pytest.skip("decord is not installed")
    path = write_video(tmp_path / "rotated.mp4", marked_frames(), FPS, rotation=90)
    with pytest.raises(VideoError, match="rotated"):
        read_frames(path, 3, decoder="decord")


# ---- size and windows -------------------------------------------------------------------


@pytest.mark.parametrize("decoder", DECODERS)
def test_1080p_is_downscaled_to_the_short_side(tmp_path, decoder):
    path = write_video(tmp_path / "hd.mp4", moving_ball_frames(3, (1080, 1920)), FPS)
    clip = read_frames(path, 3, short_side=256, decoder=decoder)
    assert clip.frames.shape == (3, 256, 455, 3)
    assert ball_centre_x(clip.frames[0]) < ball_centre_x(clip.frames[2])
    full = reference_frames(path)[0]
    # The ball's centre moves with the scale: 270 px from the left edge at 1080p.
    assert ball_centre_x(clip.frames[0]) == pytest.approx(ball_centre_x(full) * 455 / 1920, abs=2)


def test_small_videos_are_never_upscaled(clips):
    assert read_frames(clips["mp4-libx264"], 2, short_side=256).frames.shape == (2, *SIZE, 3)
    assert read_frames(clips["mp4-libx264"], 2, short_side=None).frames.shape == (2, *SIZE, 3)
    assert read_frames(clips["mp4-libx264"], 2, short_side=16).frames.shape == (2, 16, 20, 3)


@pytest.mark.parametrize("decoder", DECODERS)
def test_windows_sample_inside_the_window(clips, decoder):
    path = clips["long"]  # 40 frames at 8 fps: 5 s
    clip = read_frames(path, 8, start=1.0, end=3.0, decoder=decoder)
    assert clip.timestamps == pytest.approx(expected_times(16, 8, first=8))
    assert all(1.0 <= time < 3.0 for time in clip.timestamps)
    assert clip.duration == pytest.approx(5.0)

    tail = read_frames(path, 4, start=4.0, decoder=decoder)
    assert all(4.0 <= time < 5.0 for time in tail.timestamps)
    head = read_frames(path, 4, end=0.5, decoder=decoder)
    assert head.timestamps == pytest.approx([0.0, 0.125, 0.25, 0.375])

    sliver = read_frames(path, 4, start=2.01, end=2.1, decoder=decoder)  # no frame starts inside
    assert sliver.timestamps == (2.0,) * 4

    for seed in range(3):
        drawn = read_frames(path, 8, start=1.0, end=3.0, decoder=decoder, rng=random.Random(seed))
        assert all(1.0 <= time < 3.0 for time in drawn.timestamps)
        for i, time in enumerate(drawn.timestamps):  # one frame from each quarter second
            assert 1.0 + i * 0.25 <= time < 1.0 + (i + 1) * 0.25


def test_bad_windows(clips):
    with pytest.raises(VideoError, match="after the end"):
        read_frames(clips["long"], 4, start=9.0)
    with pytest.raises(ValueError):
        read_frames(clips["long"], 4, start=2.0, end=1.0)
    with pytest.raises(ValueError):
        read_frames(clips["long"], 0)


# ---- broken inputs and decoder choice ---------------------------------------------------

EXPECTED_REASONS = {
    "empty": "empty file (0 bytes)",
    "random": "not a video",
    "text": "not a video",
    "truncated": "truncated",
    "audio": "no video stream (audio only)",
}


@pytest.mark.parametrize("decoder", ["auto", "pyav", pytest.param("decord", marks=needs_decord)])
@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_broken_files_raise_video_error_quietly(tmp_path, capfd, kind, decoder):
    path = write_broken(tmp_path / f"{kind}.mp4", kind)
    capfd.readouterr()

    with pytest.raises(VideoError) as caught:
        read_frames(path, 8, decoder=decoder)

    reason = str(caught.value)
    assert reason and "\n" not in reason
    if decoder != "decord" or kind != "truncated":  # forced decord words it its own way
        assert EXPECTED_REASONS[kind] in reason
    assert capfd.readouterr() == ("", "")  # no FFmpeg noise on stdout or stderr


@pytest.mark.parametrize("kind", ["empty", "random", "text", "audio"])
def test_probe_rejects_broken_files(tmp_path, kind):
    path = write_broken(tmp_path / f"{kind}.m4a", kind)
    with pytest.raises(VideoError, match=re.escape(EXPECTED_REASONS[kind])):
        probe_video(path)


def test_truncated_mp4_without_its_header_and_other_non_videos(tmp_path, capfd):
    path = write_video(tmp_path / "cut.mp4", moving_ball_frames(16, SIZE), FPS)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # header was at the end
    for bad in (path, tmp_path / "missing.mp4", tmp_path):
        with pytest.raises(VideoError):
            read_frames(bad, 4)
    assert capfd.readouterr() == ("", "")


@needs_decord
def test_decord_is_noisy_on_its_own(tmp_path, capfd):
    """Guards the test above: without the fd 2 redirect decord does print (FFmpeg's log)."""
    import decord

    path = write_broken(tmp_path / "empty.mp4", "text")
    with pytest.raises(RuntimeError):  # decord's DECORDError
        decord.VideoReader(str(path))
    assert capfd.readouterr().err


@needs_decord
def test_auto_falls_back_to_pyav_when_decord_fails(clips, monkeypatch):
    def broken_decord(*args, **kwargs):
        raise RuntimeError("decord blew up")

    monkeypatch.setattr(decode_decord, "_read_with_decord", broken_decord)
    clip = read_frames(clips["mp4-libx264"], 4)
    assert clip.decoder == "pyav" and clip.frames.shape == (4, *SIZE, 3)
    with pytest.raises(VideoError, match="decord"):
        read_frames(clips["mp4-libx264"], 4, decoder="decord")


def test_auto_uses_decord_only_where_its_seeking_is_exact(clips):
    expected = "decord" if HAS_DECORD else "pyav"
    assert read_frames(clips["mp4-libx264"], 4).decoder == expected
    assert read_frames(clips["webm-libvpx-vp9"], 4).decoder == expected
    assert read_frames(clips["avi-mpeg4"], 4).decoder == "pyav"


def test_a_missing_forced_decoder_is_named(clips, monkeypatch):
    monkeypatch.setattr(decode_decord, "decord_importable", lambda: False)
    with pytest.raises(VideoError, match="'decord' package"):
        read_frames(clips["mp4-libx264"], 4, decoder="decord")
    with pytest.raises(VideoError, match="'decord' package"):
        probe_video(clips["mp4-libx264"], decoder="decord")
    assert read_frames(clips["mp4-libx264"], 4).decoder == "pyav"
    with pytest.raises(ValueError, match="unknown decoder 'ffmpeg'; available: auto, decord, pyav"):
        read_frames(clips["mp4-libx264"], 4, decoder="ffmpeg")


def test_ffmpeg_logging_is_turned_off(monkeypatch):
    monkeypatch.setattr(decode_pyav, "import_av", decode_pyav.import_av.__wrapped__)
    av.logging.set_level(av.logging.VERBOSE)
    try:
        decode_pyav.import_av()
        assert av.logging.get_level() is None
    finally:
        av.logging.set_level(None)


def test_importing_the_module_loads_no_decoder():
    repo = str(Path(__file__).resolve().parents[1])
    code = "import sys, ezclip_cli.video; print(sorted(m for m in ('torch', 'decord', 'av') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, env={**os.environ, "PYTHONPATH": repo}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
