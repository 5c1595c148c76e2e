"""Safe file writing: where an output may go, one writer at a time, atomic replacement.

Every file ezclip replaces goes through `atomic_write` (fsync'd temp file, rename, fsync'd
folder), so a kill or power cut leaves the old or the new file, never a torn one; `OutputLock`
keeps two runs from writing one output; `resolve_target` refuses what is not a regular file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from ezclip_cli.errors import EzclipError, UsageError


def ezclip_cache() -> Path:
    """ezclip's cache folder: $EZCLIP_CACHE, else $XDG_CACHE_HOME/ezclip, else ~/.cache/ezclip."""
    base = os.environ.get("EZCLIP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ezclip"
    )
    return Path(base)


# ---- where an output may go -----------------------------------------------------------------------
def resolve_target(path: Path) -> Path:
    """The regular file `-o path` writes: symlinks are followed to their target (written through).

    Directories, devices, FIFOs and sockets are refused (exit 2), as is a folder or file we cannot
    write (exit 1): all before any model is loaded.
    """
    real = Path(os.path.realpath(path))
    try:
        # stat the path as given, following its links: /dev/stdout on a pipe resolves to
        # /proc/PID/fd/pipe:[N], a name that exists nowhere, yet the link itself leads to a FIFO.
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise EzclipError(f"cannot use -o {path}: {exc.strerror}") from exc
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"-o {path} is a directory; name a file inside it")
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(info.st_mode)
                else "a device"
                if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                else "a socket"
                if stat.S_ISSOCK(info.st_mode)
                else "not a regular file"
            )
            raise UsageError(f"-o {path} is {kind}, not a regular file; use '-o -' for stdout or name a file")
        if not os.access(real, os.W_OK):
            raise EzclipError(f"cannot write -o {path}: the file is read-only")
    parent = real.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write -o {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EzclipError(f"cannot write -o {path}: the folder {parent} is read-only")
    return real


def try_lock(fd: int) -> bool:
    """Take an exclusive lock on open file `fd` without waiting; False when another process holds it.

    POSIX: `flock`, released when the file is closed or the process dies (kill -9 included). Windows:
    `msvcrt.locking` on the first byte, which the OS releases likewise; the same semantics, so `-o`
    and `--save-embeddings` refuse a second writer on both.
    """
    if os.name == "nt":
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class OutputLock:
    """An exclusive lock (try_lock) on `.NAME.lock` beside the output: a second writer fails at once.

    The lock file is removed on release; a writer that opened it just before that checks the
    inode it locked is still the one on disk, and retries otherwise.
    """

    def __init__(self, output: Path):
        self.output = Path(output)
        self.path = self.output.with_name(f".{self.output.name}.lock")
        self.fd: int | None = None

    def acquire(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not try_lock(fd):
                try:
                    holder = os.read(fd, 32).decode(errors="replace").strip()
                except OSError:  # Windows: the holder's locked byte cannot be read
                    holder = ""
                os.close(fd)
                who = f" (pid {holder})" if holder.isdigit() else ""
                raise EzclipError(
                    f"another ezclip{who} is writing {self.output}; wait for it to finish or use another -o"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self.fd = fd
                return self
            os.close(fd)  # the holder removed it as we opened it: lock the new one
        raise EzclipError(f"could not lock {self.path}; is another ezclip starting on {self.output}?")

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still holding it: nobody can lock a file about to vanish unseen
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---- writing ---------------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call `write(tmp_path)`, then move the file onto `path`: readers see the old or the new one.

    The data is on disk (fsync of the file and its folder) before and after the rename, so a
    power cut leaves the old or the new file, never an empty one. A symlink is written through
    to its target; an existing file keeps its permissions, a new one gets the usual ones
    (mkstemp alone would make it owner-only).
    """
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
