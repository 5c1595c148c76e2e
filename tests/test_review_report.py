"""`ezclip report` / `tag --report`: one self-contained page, opened in a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.helpers import REPO, run_cli
from tests.media import moving_ball_frames, write_broken, write_video

MODEL = REPO / "examples" / "model" / "tiny-motion.ezclip"
LABELS = "a ball moving right,a ball moving left,a ball growing,a ball shrinking"
TAG = ("-l", LABELS, "-c", str(MODEL), "--template", "{}", "-k", "2", "-j", "0", "-q")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    clips = root / "clips"
    clips.mkdir()
    for i, kind in enumerate(["right", "left", "grow", "shrink", "right", "left"]):
        write_video(clips / f"{i}_{kind}.mp4", moving_ball_frames(24, 48, kind, seed=i))
    write_broken(clips / "9_broken.mp4", "text")
    return root


def tag_output(run, capsys, name, *extra):
    out = run / name
    if not out.exists():
        result = run_cli("tag", str(run / "clips"), *TAG, "-o", str(out), *extra, capsys=capsys)
        assert result.code == 1, result.err  # the broken clip failed, the rest was written
    return out


def test_tag_report_writes_a_self_contained_page(run, tmp_path, capsys):
    page = tmp_path / "page.html"
    out = tmp_path / "tags.jsonl"
    result = run_cli("tag", str(run / "clips"), *TAG, "-o", str(out), "--report", str(page), capsys=capsys)
    assert result.code == 1 and page.is_file(), result.err
    text = page.read_text()
    assert '<meta name="generator" content="ezclip report' in text
    assert not re.search(r"""(src|href)=["']https?://""", text) and "<link" not in text  # nothing fetched
    data = json.loads(re.search(r'<script type="application/json" id="ezclip-data">(.*?)</script>', text, re.S)[1])
    assert data["summary"]["videos"] == 7 and data["summary"]["failed"] == 1
    cards = {card["path"].split("/")[-1]: card for card in data["videos"]}
    assert len(cards["0_right.mp4"]["thumbs"]) == 8 and cards["0_right.mp4"]["thumbs"][0][1].startswith(
        "data:image/jpeg"
    )
    assert cards["9_broken.mp4"]["failed"] and cards["9_broken.mp4"]["error"]
    foreign = tmp_path / "notes.html"
    foreign.write_text("<html>mine</html>")
    refused = run_cli("report", str(out), "-o", str(foreign), capsys=capsys)
    assert refused.code == 2 and "not an ezclip report" in refused.err and foreign.read_text() == "<html>mine</html>"
    no_output = run_cli("tag", str(run / "clips"), *TAG, "--report", str(tmp_path / "x.html"), capsys=capsys)
    assert no_output.code == 2 and "--report reads the run's rows from -o FILE" in no_output.err


def test_windows_report_has_timelines_and_caps_cards_with_a_stated_sample(run, tmp_path, capsys):
    out = tag_output(run, capsys, "windows.jsonl", "--window", "1")
    page = tmp_path / "w.html"
    result = run_cli("report", str(out), "-o", str(page), "--max-videos", "3", "--thumbnails", "2", capsys=capsys)
    assert result.code == 0, result.err
    data = json.loads(re.search(r'id="ezclip-data">(.*?)</script>', page.read_text(), re.S)[1])
    assert (
        data["summary"]["kind"] == "windows"
        and data["summary"]["shown"] == 3
        and "sample of 3" in data["summary"]["sample"]
    )
    assert all("spans" in card for card in data["videos"] if not card["failed"])


chromium = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_in_headless_chromium_filters_and_draws(run, tmp_path, capsys):
    sync_api = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    out = tag_output(run, capsys, "tags.jsonl")
    page_file = tmp_path / "r.html"
    assert run_cli("report", str(out), "-o", str(page_file), "-q", capsys=capsys).code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    label = next(r["labels"][0] for r in rows if r["status"] == "ok")
    expected = sum(1 for r in rows if r["status"] == "ok" and label in r["labels"])
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(page_file.as_uri())
            assert page.locator("#count").inner_text() == "7 of 7 videos"
            page.select_option("#f-label", label)
            assert page.locator("#count").inner_text() == f"{expected} of 7 videos"
            assert page.locator("#cards article").count() == expected
            page.check("#f-errors")
            assert page.locator("#count").inner_text() == "0 of 7 videos"
            page.click("#f-reset")
            page.check("#f-errors")
            assert page.locator("#count").inner_text() == "1 of 7 videos"  # the broken clip
            page.click("#f-reset")
            page.click("#tab-labels")
            assert page.locator("#labels-view section.gallery").count() >= 1
            shot = tmp_path / "shot.png"
            page.screenshot(path=str(shot), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    image = Image.open(shot).convert("RGB")
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 50  # drawn: bars, thumbnails, text; not blank
    assert requests and all(url.startswith(("file:", "data:")) for url in requests), requests  # nothing left the file
