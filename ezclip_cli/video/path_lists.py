"""Lists of video paths (`--files-from FILE`, `-` for stdin): one bounded, validated reader for both.

Two separations are accepted, as `xargs` users expect: one path per line (blank lines skipped,
surrounding spaces dropped), or NUL-separated as `find -print0` and `xargs -0` write them, where
each path is kept byte for byte (spaces and line breaks included). A NUL cannot be part of a
path, so a list holding one is NUL-separated; nothing needs a flag. A list is at most
MAX_LIST_BYTES and a path at most MAX_PATH_BYTES (Linux's PATH_MAX); text that is not UTF-8 is
one line naming the source, the entry and the byte, never "embedded null byte" or a
UnicodeDecodeError from deep inside.
"""

from __future__ import annotations

import os
from typing import IO

from ezclip_cli.errors import UsageError

MAX_LIST_BYTES = 256 * 2**20  # ~2.5 million paths of 100 bytes
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux


def parse_path_list(data: bytes | str, shown: str) -> list[str]:
    """The paths in a list's content; `shown` names the list in messages ("--files-from x", "stdin")."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            place = data.count(b"\0" if b"\0" in data else b"\n", 0, exc.start) + 1
            raise UsageError(
                f"{shown}: path {place} is not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                "ezclip writes paths as UTF-8 text"
            ) from None
    else:
        text = data.removeprefix("\ufeff")
    if "\0" in text:
        entries = [entry for entry in text.split("\0") if entry and entry != "\n"]  # -print0; a final \n is no path
    else:
        entries = [line.strip() for line in text.splitlines() if line.strip()]
    for number, entry in enumerate(entries, start=1):
        if len(entry.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
            raise UsageError(
                f"{shown}: path {number} is longer than {MAX_PATH_BYTES} bytes (PATH_MAX); is it a list of paths?"
            )
    return entries


def _too_big(shown: str) -> UsageError:
    return UsageError(f"{shown}: more than {MAX_LIST_BYTES // 2**20} MiB of paths; split the list into shards")


def read_path_list_file(path: str | os.PathLike[str], shown: str | None = None) -> list[str]:
    """The paths listed in a file (`--files-from`): bounded, UTF-8, one per line or NUL-separated."""
    shown = shown or f"--files-from {path}"
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_LIST_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{shown}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_LIST_BYTES:
        raise _too_big(shown)
    return parse_path_list(data, shown)


def read_path_stream(stream: IO[str], shown: str = "stdin ('-')") -> list[str]:
    """The paths on a stream (`-`): its bytes where it has them (a real stdin), else its text."""
    raw = getattr(stream, "buffer", None)
    data: bytes | str = raw.read(MAX_LIST_BYTES + 1) if raw is not None else stream.read(MAX_LIST_BYTES + 1)
    if len(data) > MAX_LIST_BYTES:
        raise _too_big(shown)
    return parse_path_list(data, shown)
