"""Reading the small text files users hand us (label sets, lists, scene CSVs), bounded and checked.

Every such file is read the same way: at most `max_bytes` (a 100 MB "label file" is refused
before it is read, not after minutes of work and gigabytes of memory), as UTF-8 with an
optional BOM (spreadsheet exports), and a byte that is not UTF-8 is one line naming the file,
the line and the byte, never a UnicodeDecodeError. The error type is the caller's, so a bad
scene list fails one video (VideoError) while a bad label file fails the run (LabelsetError).
"""

from __future__ import annotations

import os
from pathlib import Path

from ezclip_cli.errors import EzclipError

# Far above any list, label set or scene file a person writes (Kinetics-700's labels: 13 KB).
DEFAULT_MAX_BYTES = 64 * 2**20


def human_bytes(size: float) -> str:
    """1536 -> '1.5 KiB': sizes in messages."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def read_bytes_bounded(
    path: str | os.PathLike[str],
    what: str,
    error: type[EzclipError],
    max_bytes: int = DEFAULT_MAX_BYTES,
    shown: str | None = None,
) -> bytes:
    """The bytes of `path`, refusing more than `max_bytes` (checked while reading: /dev/zero ends too)."""
    shown = shown or str(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except IsADirectoryError:
        raise error(f"{shown} is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {shown}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        try:
            size = f"{human_bytes(Path(path).stat().st_size)}, "
        except OSError:
            size = ""
        raise error(f"{shown}: {what} too large ({size}more than {human_bytes(max_bytes)}); is it the right file?")
    return data


def decode_utf8(data: bytes, shown: str, error: type[EzclipError]) -> str:
    """`data` as UTF-8 (a leading BOM dropped), or `error` naming the line and the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{shown}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None


def read_text_file(
    path: str | os.PathLike[str],
    what: str,
    error: type[EzclipError],
    max_bytes: int = DEFAULT_MAX_BYTES,
    shown: str | None = None,
) -> str:
    """The text of a user's file: bounded in size, UTF-8 checked, every failure one line of `error`.

    `what` names the file's role in messages ("label file", "scene list"); `shown` is how the
    path is printed (the spelling the user gave), by default `str(path)`.
    """
    shown = shown or str(path)
    return decode_utf8(read_bytes_bounded(path, what, error, max_bytes, shown), shown, error)
