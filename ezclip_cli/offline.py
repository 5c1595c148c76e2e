"""Network guard for every download ezclip starts: offline switches and a short reachability probe.

A machine without network must get its one-line error within seconds, not after a minute of
retries: before any download we ask the host once, with a short connect timeout (DNS included),
and give up at the first failure. `EZCLIP_OFFLINE=1` or `HF_HUB_OFFLINE=1` forbid downloads
outright; then only caches are used.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Iterator
from urllib.parse import urlsplit

OFFLINE_ENV = "EZCLIP_OFFLINE"
CONNECT_TIMEOUT = 3.0  # seconds for DNS + TCP connect, once; keeps "no network" well under 5 s
READ_TIMEOUT = 60.0  # seconds without a byte before a started download is abandoned
_TRUE = {"1", "true", "yes", "on"}


def offline_reason() -> str | None:
    """Which switch forbids downloads ('EZCLIP_OFFLINE=1', 'HF_HUB_OFFLINE=1'), or None when online is allowed."""
    for name in (OFFLINE_ENV, "HF_HUB_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"{name}=1"
    return None


def unreachable(url: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when `url`'s host accepts a TCP connection within `timeout`, else a short reason.

    One attempt, no retries. Name resolution runs in a daemon thread so a dead DNS server cannot
    stretch the wait past `timeout` (getaddrinfo itself has no timeout).
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return f"no host in {url}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(_short(exc))

    thread = threading.Thread(target=attempt, name="ezclip-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"{host}:{port} did not answer within {timeout:g} s"
    return outcome[0] if outcome[0] is None else f"cannot reach {host}:{port} ({outcome[0]})"


def _short(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "host name not resolved"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return exc.strerror or type(exc).__name__


@contextlib.contextmanager
def hub_cache_only() -> Iterator[None]:
    """huggingface_hub answers from its cache only inside this block (its offline flag, set for the moment)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # no hub: nothing to switch
        yield
        return
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def hub_endpoint() -> str:
    """The Hugging Face endpoint downloads go to (HF_ENDPOINT or huggingface.co)."""
    try:
        from huggingface_hub import constants

        return constants.ENDPOINT
    except ImportError:
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")
