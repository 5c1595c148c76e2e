"""Known errors: the CLI prints their message on one line and exits with their code.

Library code raises these (never exits); anything else is a bug and keeps its traceback
under ``EZCLIP_DEBUG=1``.
"""

from __future__ import annotations


class EzclipError(Exception):
    """A known, user-facing error. ``exit_code`` 1 = failed input/known error, 2 = usage."""

    exit_code = 1


class UsageError(EzclipError):
    """Bad flags or option values."""

    exit_code = 2


class BackboneError(EzclipError):
    """The CLIP backbone cannot be built or its weights cannot be found."""


class CheckpointError(EzclipError):
    """A checkpoint file is missing, corrupt, unsafe, or of the wrong kind."""


class VideoError(EzclipError):
    """One video cannot be read; per-item, never stops a batch."""


class LabelsetError(EzclipError):
    """A label set cannot be loaded (unknown name, bad file)."""


class DatasetError(EzclipError):
    """A dataset root or annotation file is missing or malformed."""


class DownloadError(EzclipError):
    """A named model or backbone weights cannot be fetched (offline, unreachable, corrupt download)."""


class ExportError(EzclipError):
    """A bundle cannot be written, failed its own verification, or lacks the onnx extra."""
