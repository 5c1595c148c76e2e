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
from collections.abc import Iterator
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

    One attempt, no retries; where a proxy is configured for the scheme (HTTPS_PROXY, ...) the proxy is
    asked instead, as the download would go through it. Name resolution runs in a daemon thread so a
    dead DNS server cannot stretch the wait past `timeout` (getaddrinfo itself has no timeout).
    """
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    if not parts.hostname:
        return f"no host in {url}"
    proxy = getproxies().get(parts.scheme)
    if proxy and not proxy_bypass(parts.hostname):  # downloads go through the proxy (urllib, requests, httpx)
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    host = parts.hostname or ""
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


def no_weights_error(label: str, pretrained: str, endpoint: str, reason: str) -> Exception:
    from ezclip_cli.errors import BackboneError

    return BackboneError(
        f"no weights for {label} ({pretrained}) in the open_clip cache and they cannot be downloaded from "
        f"{endpoint} ({reason}); fetch them once where there is network (then set HF_HUB_OFFLINE=1 or "
        f"EZCLIP_OFFLINE=1 offline), pass local weights with --pretrained FILE, or use a released EZ-CLIP model "
        f"(`ezclip models --download NAME`, then --checkpoint NAME)"
    )


def weights_caches_empty() -> bool:
    """True when no open_clip weights can be on this machine: the Hugging Face hub cache holds no model and
    open_clip's own download folder (~/.cache/clip) no file. Needs neither torch nor open_clip."""
    try:
        from huggingface_hub import constants

        hub = constants.HF_HUB_CACHE
    except ImportError:
        hub = os.path.join(os.path.expanduser(os.environ.get("HF_HOME", "~/.cache/huggingface")), "hub")
    for folder, kept in ((hub, lambda name: name.startswith("models--")), (os.path.expanduser("~/.cache/clip"), None)):
        with contextlib.suppress(OSError):
            if any(kept is None or kept(name) for name in os.listdir(folder)):
                return False
    return True


def refuse_unreachable_weights_early(model_name: str, pretrained: str | None) -> None:
    """The offline check of `create_open_clip`, made before torch and open_clip are imported (seconds on a small
    machine), for the one case it can decide without them: a weights tag, nothing in any weights cache, and no
    download possible. Everything else is left to `create_open_clip`."""
    if not pretrained or pretrained.lower() == "none" or os.path.exists(pretrained):
        return  # random or local weights: no download
    if os.path.exists(model_name) or "/" in model_name or model_name.endswith(".json"):
        return  # a local config or folder, or an hf-hub: name: open_clip decides what it needs
    if not weights_caches_empty():
        return  # the weights may be cached: only open_clip can tell
    endpoint = hub_endpoint()
    reason = offline_reason() or unreachable(endpoint)
    if reason is not None:
        raise no_weights_error(model_name, pretrained, endpoint, reason)
