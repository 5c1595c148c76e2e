"""Where named models come from and how their bytes are fetched: URLs, Google Drive, the hub, local files.

Every fetch streams into a file while hashing it (sha256), with a byte progress bar on stderr
on a terminal; a short transfer is an error. Whether the network may be used at all is decided
before (models.py, with offline.py's probe); here there are no retry loops.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from ezclip_cli.errors import DownloadError, EzclipError, UsageError
from ezclip_cli.hub.offline import CONNECT_TIMEOUT, READ_TIMEOUT, hub_endpoint
from ezclip_cli.progress import Progress

log = logging.getLogger(__name__)

HF_DEFAULT_FILE = "model.ezclip"  # `hf-hub:ORG/REPO` without a file name
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    kind: str  # http, gdrive, hf, file
    location: str  # URL, Drive file id, ORG/REPO, or local path
    filename: str | None = None  # hf: the file inside the repo


def parse_source(url: str) -> Source:
    """What kind of place `url` is (see the module docstring for the forms)."""
    if url.startswith("gdrive:"):
        return Source("gdrive", url[len("gdrive:") :])
    if url.startswith("hf-hub:"):
        parts = url[len("hf-hub:") :].strip("/").split("/")
        if len(parts) < 2 or not all(parts):
            raise UsageError(f"bad source '{url}': use hf-hub:ORG/REPO or hf-hub:ORG/REPO/FILE")
        return Source("hf", "/".join(parts[:2]), "/".join(parts[2:]) or HF_DEFAULT_FILE)
    split = urlsplit(url)
    if split.scheme in ("http", "https"):
        if split.hostname in ("drive.google.com", "docs.google.com"):
            file_id = parse_qs(split.query).get("id", [None])[0] or _drive_path_id(split.path)
            if file_id:
                return Source("gdrive", file_id)
        return Source("http", url)
    if split.scheme == "file":
        return Source("file", unquote(split.path))
    if len(split.scheme) > 1:  # one letter is a Windows drive (C:\models\x.pt)
        raise UsageError(
            f"unsupported scheme '{split.scheme}:' in '{url}'; use https://, gdrive:ID, hf-hub:ORG/REPO or a local path"
        )
    return Source("file", url)


def _drive_path_id(path: str) -> str | None:
    match = re.search(r"/file/d/([^/]+)", path)
    return match.group(1) if match else None


def fetch_url(source: Source) -> str:
    """The URL a download of `source` contacts first (a Drive id: its uc?id= link, which gdown follows)."""
    if source.kind == "gdrive":
        return f"https://drive.google.com/uc?id={source.location}"
    if source.kind == "hf":
        return f"{hub_endpoint().rstrip('/')}/{source.location}/resolve/main/{source.filename}"
    return source.location


def fetch(source: Source, dest: Path, *, name: str, size: int | None, offline: bool) -> tuple[str, int]:
    """Write the download of model `name` to `dest`; returns (sha256, bytes). Failures raise DownloadError.

    `size` is the expected byte count when known; `offline` means: local caches only (the hub's).
    """
    url = fetch_url(source)
    log.info("downloading model %s from %s", name, url)
    try:
        if source.kind == "http":
            return _fetch_http(url, dest, name, size)
        if source.kind == "gdrive":
            return _fetch_gdrive(url, dest)
        if source.kind == "hf":
            return _copy(Path(_hf_download(source, offline)), dest, size)
        local = Path(source.location).expanduser()
        if not local.is_file():
            raise DownloadError(f"model {name}: source file not found: {local}")
        return _copy(local, dest, size)
    except EzclipError:
        raise
    except Exception as exc:  # urllib, gdown (requests) and the hub raise many types
        text = " ".join(str(exc).split())[:200]
        raise DownloadError(
            f"download of {name} from {url} failed ({type(exc).__name__}: {text}); nothing was cached"
        ) from exc


def _fetch_http(url: str, dest: Path, name: str, size: int | None) -> tuple[str, int]:
    from urllib.request import Request, urlopen

    from ezclip_cli.version import __version__

    request = Request(url, headers={"User-Agent": f"ezclip/{__version__}"})
    with urlopen(request, timeout=READ_TIMEOUT) as response:  # the host answered the probe; this bounds stalls
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else size
        guard = RateGuard.from_env(f"download of {name} from {url}")
        digest, got = _stream(response, dest, expected, name, guard)
    if expected is not None and got != expected:
        raise DownloadError(
            f"download of {name} from {url} is incomplete ({got} of {expected} bytes); nothing was cached, try again"
        )
    return digest, got


def _fetch_gdrive(url: str, dest: Path) -> tuple[str, int]:
    import gdown

    # gdown follows Drive's confirmation page for large files; one try, short connect timeout.
    result = gdown.download(
        url=url, output=str(dest), quiet=not _show_progress(), timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), retries=0
    )
    if result is None or not dest.is_file():
        raise DownloadError(
            f"Google Drive did not hand out {url} (quota, permissions or a removed file); nothing was cached"
        )
    return _digest(dest), dest.stat().st_size


def hub_cached(source: Source) -> bool:
    """Whether an hf-hub source is in the local Hugging Face cache (usable offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(source.location, source.filename or HF_DEFAULT_FILE), str)
    except ImportError:
        return False


def _hf_download(source: Source, offline: bool) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(source.location, source.filename or HF_DEFAULT_FILE, local_files_only=offline)


def _copy(path: Path, dest: Path, expected: int | None) -> tuple[str, int]:
    with open(path, "rb") as f:
        digest, size = _stream(f, dest, expected or path.stat().st_size, path.name)
    if expected is not None and size != expected:
        raise DownloadError(f"{path} has {size} bytes, the index says {expected}; nothing was cached")
    return digest, size


class RateGuard:
    """A minimum download rate over a sliding window: a trickle (1 byte every 20 s) ends with one line.

    Each read is bounded by READ_TIMEOUT already; this bounds the whole download, whatever its size:
    after `grace` seconds, fewer than `min_rate` bytes/s over the last `window` seconds abort it.
    EZCLIP_DOWNLOAD_MIN_RATE (bytes/s, 0 = off) and EZCLIP_DOWNLOAD_WINDOW (seconds) tune it.
    """

    def __init__(self, what: str, min_rate: float = 16_384.0, window: float = 60.0, grace: float | None = None):
        import time

        self.what, self.min_rate, self.window = what, min_rate, window
        self.grace = window if grace is None else grace
        self.clock = time.monotonic
        self.started = self.clock()
        self.marks: list[tuple[float, int]] = [(self.started, 0)]

    @classmethod
    def from_env(cls, what: str) -> RateGuard:
        import os

        def number(name: str, default: float) -> float:
            try:
                return max(0.0, float(os.environ.get(name, "") or default))
            except ValueError:
                raise UsageError(f"{name}={os.environ.get(name)!r} is not a number") from None

        return cls(what, number("EZCLIP_DOWNLOAD_MIN_RATE", 16_384.0), number("EZCLIP_DOWNLOAD_WINDOW", 60.0) or 60.0)

    def __call__(self, total: int) -> None:
        if not self.min_rate:
            return
        now = self.clock()
        self.marks.append((now, total))
        while len(self.marks) > 2 and now - self.marks[1][0] >= self.window:
            self.marks.pop(0)  # keep one mark at least `window` old
        since, then = self.marks[0]
        if now - self.started >= self.grace and now - since >= self.window:
            rate = (total - then) / (now - since)
            if rate < self.min_rate:
                raise DownloadError(
                    f"{self.what} is too slow ({rate:.0f} bytes/s over the last {now - since:.0f} s, under the "
                    f"minimum {self.min_rate:.0f}; EZCLIP_DOWNLOAD_MIN_RATE sets it); nothing was cached, try again"
                )


def _stream(
    reader: BinaryIO, dest: Path, total: int | None, label: str, guard: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Copy `reader` to `dest` hashing as it goes, with a byte progress bar on stderr; `guard(bytes so far)`."""
    digest = hashlib.sha256()
    size = 0
    read = getattr(reader, "read1", reader.read)  # what has arrived, not a full chunk: a trickle is seen
    with _progress(total, label) as advance, open(dest, "wb") as out:
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            advance(len(chunk))
            if guard is not None:
                guard(size)
    return digest.hexdigest(), size


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _show_progress() -> bool:
    return logging.getLogger("ezclip_cli").isEnabledFor(logging.INFO)


class _progress:
    """Bytes copied, through the one progress display (progress.Progress, in MB); nothing under --quiet."""

    def __init__(self, total: int | None, label: str):
        self.total, self.label = total or 0, label
        self.display: Progress | None = None
        self.done = 0

    def __enter__(self) -> Callable[[int], None]:
        if not _show_progress():
            return lambda n: None
        display = self.display = Progress(f"downloading {self.label}", "MB", failures=False, scale=1e6)
        display(0, self.total)

        def advance(n: int) -> None:
            self.done += n
            display(self.done, self.total)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.display is not None:
            self.display.close()
