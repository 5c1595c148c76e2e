"""Named EZ-CLIP models: the model index, downloading once, verifying, converting once, the cache.

The index is a JSON file shipped in the package (`model_index.json`); `EZCLIP_MODEL_INDEX=FILE`
replaces it (mirrors, private models, tests):

    {"default": "NAME", "models": {"NAME": {"url": "...", "sha256": "<hex or null>", ...}}}

`url` may be `https://`/`http://`, a Google Drive link or `gdrive:ID` (fetched with gdown),
`hf-hub:ORG/REPO[/FILE]` (huggingface_hub), `file://` or a local path (relative to the index).
A model is downloaded into `$EZCLIP_CACHE/models` (default `~/.cache/ezclip/models`) under a
temporary name, checked (sha256 when the index has one, else the digest recorded at the first
download; then its structure: tensors only, recognised by the reference importer) and, when it
is a reference EZ-CLIP `.pt`, converted to `NAME.ezclip` once. Nothing unverified is ever cached.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ezclip_cli.errors import DownloadError, EzclipError, UsageError
from ezclip_cli.files import atomic_write, ezclip_cache
from ezclip_cli.hub.offline import CONNECT_TIMEOUT, offline_reason, unreachable
from ezclip_cli.hub.sources import Source, fetch, fetch_url, hub_cached, parse_source

# (name, url, downloaded file, work folder, sha256 of the download) -> the converted NAME.ezclip in the folder
Converter = Callable[[str, str, Path, Path, str], Path]

log = logging.getLogger(__name__)

INDEX_ENV = "EZCLIP_MODEL_INDEX"
BUILTIN_INDEX = Path(__file__).with_name("model_index.json")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelEntry:
    """One named model of the index; fields beyond `url` and `sha256` are descriptive."""

    name: str
    url: str
    sha256: str | None = None
    backbone: str | None = None
    architecture: str | None = None  # open_clip model name of the backbone (for `ezclip info` without a download)
    num_frames: int | None = None
    trained_on: str | None = None
    description: str | None = None
    published: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    license: str | None = None
    size: int | None = None  # bytes of the download, when known

    def published_text(self) -> str:
        """'zero-shot top-1 %: hmdb51 52.9, ucf101 79.1' (empty when the index has none)."""
        results = self.published.get("results") or {}
        if not results:
            return ""
        scores = ", ".join(f"{k} {v}" for k, v in results.items())
        return f"{self.published.get('protocol', '')} {self.published.get('metric', '')}: {scores}".strip()


@dataclass(frozen=True)
class ModelIndex:
    """The models by name, the default one, and the file they were read from."""

    default: str | None
    models: dict[str, ModelEntry]
    origin: Path

    def entry(self, name: str) -> ModelEntry:
        if name not in self.models:
            known = ", ".join(self.models) or "none"
            raise UsageError(f"unknown model '{name}'; the index ({self.origin}) has: {known}")
        return self.models[name]


def load_index() -> ModelIndex:
    """The index named by EZCLIP_MODEL_INDEX, else the built-in one; a malformed file is one clear error."""
    given = os.environ.get(INDEX_ENV)
    if given and re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+://", given) and not given.startswith("file://"):
        raise UsageError(
            f"{INDEX_ENV}={given}: the model index is read from a local file; download it first "
            "(e.g. curl -o index.json URL) and point EZCLIP_MODEL_INDEX at that file"
        )
    path = Path(given.removeprefix("file://")).expanduser() if given else BUILTIN_INDEX
    where = f"{INDEX_ENV}={path}" if given else str(path)
    try:
        from ezclip_cli.data.text_files import read_bytes_bounded

        data = json.loads(read_bytes_bounded(path, "model index", UsageError, 8 * 2**20, where).decode("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"model index not found: {where}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"model index {where} is not readable JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"model index {where} is not UTF-8 (byte {exc.start})") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise UsageError(f'model index {where}: needs {{"models": {{NAME: {{"url": ...}}}}}}')
    entries = {}
    known = set(ModelEntry.__dataclass_fields__) - {"name"}
    for name, spec in models.items():
        if not _NAME.match(name):
            raise UsageError(
                f"model index {where}: model name {name!r} is not a plain name "
                "(letters, digits, '.', '_', '-'; no path parts): it names a file in the cache"
            )
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str) or not spec["url"]:
            raise UsageError(f"model index {where}: model '{name}' needs a \"url\"")
        digest = spec.get("sha256")
        if digest is not None and not (isinstance(digest, str) and _HEX64.match(digest.lower())):
            raise UsageError(f"model index {where}: model '{name}' has a sha256 that is not 64 hex digits")
        values = {k: v for k, v in spec.items() if k in known}
        values["sha256"] = digest.lower() if digest else None
        values["url"] = _absolute_source(spec["url"], path.parent)
        entries[name] = ModelEntry(name=name, **values)
    default = data.get("default")
    if default is not None and default not in entries:
        raise UsageError(f"model index {where}: default '{default}' is not one of its models")
    return ModelIndex(default, entries, path)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _absolute_source(url: str, base: Path) -> str:
    """Local paths in an index are relative to the index file."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+:", url) and not re.match(r"^[a-zA-Z]:[\\/]", url):
        return url
    path = Path(url).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


# ---- the cache --------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where named models live: files.ezclip_cache()/models (~/.cache/ezclip/models by default)."""
    return ezclip_cache() / "models"


def _record_path(name: str) -> Path:
    return cache_dir() / f"{name}.json"


def read_record(name: str) -> dict[str, Any]:
    """What the first download of `name` recorded (source, digests, size); {} when none."""
    try:
        return json.loads(_record_path(name).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def cached_model(entry: ModelEntry) -> Path | None:
    """The converted file of `entry` when it is in the cache, complete, and from the index's source."""
    record = read_record(entry.name)
    path = cache_dir() / str(record.get("file", ""))
    if not record or not path.is_file() or record.get("url") != entry.url:
        return None
    if entry.sha256 and record.get("source_sha256") != entry.sha256:
        return None  # the index now names other content: fetch it again
    if record.get("size") != path.stat().st_size:
        log.warning("cached %s has the wrong size (damaged?); it will be downloaded again", path)
        return None
    return path


def ensure_model(name: str, index: ModelIndex | None = None, *, convert: Converter, force: bool = False) -> Path:
    """The local checkpoint file of the named model, downloading and converting it the first time.

    `convert(name, url, raw, work, digest)` turns a verified download into `NAME.ezclip` in `work`; the model
    layer supplies it (model.checkpoint.convert_download), so this folder knows nothing of checkpoint formats.
    """
    index = index or load_index()
    entry = index.entry(name)
    if not force:
        hit = cached_model(entry)
        if hit is not None:
            return hit
    return download_model(entry, convert)


STALE_AFTER = 600.0  # seconds without a write: a download that was killed, not one in progress


def remove_stale_downloads(root: Path, name: str, stale_after: float = STALE_AFTER) -> list[Path]:
    """Remove the work folders (`.NAME-XXXX/`) of earlier downloads of `name` that were killed.

    A folder counts as stale when nothing in it was written for `stale_after` seconds; a download in
    progress writes all the time, so another process's is left alone. Returns what was removed.
    """
    import shutil

    removed = []
    now = time.time()
    for folder in root.glob(f".{name}-*"):
        if not folder.is_dir() or folder.is_symlink():
            continue
        try:
            newest = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
        except OSError:
            continue
        if now - newest >= stale_after:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            log.info("removed %s, left by an interrupted download", folder)
    return removed


def download_model(entry: ModelEntry, convert: Converter) -> Path:
    """Fetch `entry` into a private temporary folder, verify and convert it, then move it into the cache."""
    source = parse_source(entry.url)
    offline = _check_allowed(entry, source)
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_downloads(root, entry.name)
        work = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=root))
    except OSError as exc:
        raise DownloadError(f"cannot write the model cache {root}: {exc.strerror or exc}") from exc
    try:
        raw = work / f"{entry.name}.download"
        started = time.perf_counter()
        digest, size = fetch(source, raw, name=entry.name, size=entry.size, offline=offline)
        expected = entry.sha256 or _recorded_digest(entry)
        if expected and digest != expected:
            raise DownloadError(
                f"download of {entry.name} from {fetch_url(source)} does not match its sha256 "
                f"(expected {expected[:16]}..., got {digest[:16]}...); nothing was cached"
            )
        final = _convert(entry, source, raw, work, digest, convert)
        target = root / final.name
        atomic_write(target, lambda tmp: os.replace(final, tmp))  # a rename within the cache, then fsync'd
        record = {
            "name": entry.name,
            "url": entry.url,
            "source_sha256": digest,
            "source_size": size,
            "file": target.name,
            "size": target.stat().st_size,
            "downloaded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        text = json.dumps(record, indent=2)
        atomic_write(_record_path(entry.name), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        log.info(
            "model %s: %s verified and cached as %s (%.1f s)",
            entry.name,
            _human(size),
            target,
            time.perf_counter() - started,
        )
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _recorded_digest(entry: ModelEntry) -> str | None:
    """Without a sha256 in the index, the digest of the first download is the one later downloads must match."""
    record = read_record(entry.name)
    return record.get("source_sha256") if record.get("url") == entry.url else None


def _check_allowed(entry: ModelEntry, source: Source) -> bool:
    """Fail at once (no retries) when the download cannot happen: offline switch or unreachable host.

    Returns True when the network is off but the source is in a local cache (the hub's) and usable.
    """
    if source.kind == "file":
        return False
    url = fetch_url(source)
    reason = offline_reason()
    if reason is None:
        reason = unreachable(url, CONNECT_TIMEOUT)
    if reason is None:
        return False
    if source.kind == "hf" and hub_cached(source):
        return True
    raise DownloadError(offline_message(entry.name, url, reason))


def offline_message(name: str, url: str, reason: str) -> str:
    """The one line for 'not cached and cannot be downloaded', with the two ways out."""
    here = f"unset {reason.split('=')[0]} to download it here, or " if reason.endswith("=1") else ""
    return (
        f"model {name} is not in the cache ({cache_dir()}) and cannot be downloaded from {url} ({reason}); "
        f"{here}copy {name}.ezclip and {name}.json from the models folder of a machine that has it "
        f"(`ezclip models --download {name}` there) into {cache_dir()}, or pass --checkpoint PATH to a copy of the file"
    )


# ---- verifying and converting ---------------------------------------------------------------------------
def _convert(entry: ModelEntry, source: Source, raw: Path, work: Path, digest: str, convert: Converter) -> Path:
    """`convert` checks the download is an EZ-CLIP checkpoint and gives back `NAME.ezclip` in `work`."""
    try:
        return convert(entry.name, entry.url, raw, work, digest)
    except EzclipError as exc:
        reason = str(exc).replace(f"{raw.with_suffix('.pt')}: ", "").replace(f"{raw}: ", "")
        raise DownloadError(
            f"download of {entry.name} from {fetch_url(source)} is not a usable EZ-CLIP checkpoint ({reason}); "
            "nothing was cached"
        ) from exc


# ---- listing ------------------------------------------------------------------------------------------------
def describe_models(index: ModelIndex | None = None) -> list[dict[str, Any]]:
    """One row per model for `ezclip models`: what it is, where it comes from, cached or not, size."""
    index = index or load_index()
    rows = []
    for name, entry in index.models.items():
        path = cached_model(entry)
        rows.append(
            {
                "name": name,
                "default": name == index.default,
                "backbone": entry.backbone,
                "num_frames": entry.num_frames,
                "trained_on": entry.trained_on,
                "published": entry.published,
                "url": entry.url,
                "sha256": entry.sha256,
                "cached": path is not None,
                "path": str(path) if path else None,
                "size": path.stat().st_size if path else entry.size,
                "source": entry.source,
                "license": entry.license,
            }
        )
    return rows


def human_size(size: int | None) -> str:
    """'612 MB' style; '?' when unknown."""
    return _human(size) if size is not None else "?"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "kB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
