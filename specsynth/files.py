"""Writing files and folders safely: atomic writes, writable-folder checks (no TensorFlow here).

Every file specsynth writes goes through :class:`atomic_output` (a temporary file beside the
target, renamed into place) and every folder through :class:`atomic_folder` (built beside the
target, renamed into place), so a kill at any moment leaves either the old content or the new.
"""
from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError, SpecsynthError, os_reason

# Read once at import (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _output_mode(path):
    """The permission bits a plain ``open(path, "w")`` would give: the replaced file's, or 0666 & ~umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def why_unreadable(path):
    """Why ``path`` cannot be read, in words, or None if it can: "no such file", or the OS's
    reason (a symlink loop, permission denied, a NUL byte in the name), which ``Path.exists``
    would report as missing and libsndfile as "System error"."""
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").close()
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return os_reason(exc)
    except ValueError:  # "embedded null byte"
        return "the name holds a NUL byte"
    return None


def refuse_existing(path, overwrite):
    """Raise OutputError if ``path`` exists and ``overwrite`` is false, or if the folder it goes
    in exists but cannot be entered (a symlink loop): before any work is done."""
    if not overwrite and Path(path).exists():
        raise OutputError("already exists (use --overwrite to replace it)", path=path)
    try:
        os.stat(Path(path).parent)
    except FileNotFoundError:
        pass  # made when the output is written
    except OSError as exc:
        raise OutputError(f"cannot write here ({os_reason(exc)})", path=path) from None


class atomic_output:
    """Context manager yielding a temporary path beside ``path``; renamed into place on success.

    >>> with atomic_output("out.json") as tmp:
    ...     Path(tmp).write_text("{}")
    """

    def __init__(self, path, *, overwrite=False):
        self.path = Path(path)
        self.overwrite = overwrite
        self.tmp = None

    def __enter__(self):
        folder = self.path.parent
        refuse_existing(self.path, self.overwrite)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=folder)
        except OSError as exc:
            raise OutputError(f"cannot write here ({_mkdir_reason(exc, folder)})", path=self.path) from None
        os.close(fd)
        self.tmp = tmp
        return tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                os.chmod(self.tmp, _output_mode(self.path))  # mkstemp makes 0600 files
                os.replace(self.tmp, self.path)
                return False
            except OSError as err:
                exc = OutputError(f"cannot write here ({os_reason(err)})", path=self.path)
        try:
            os.unlink(self.tmp)
        except OSError:
            pass
        failure = write_failure(self.path, exc)
        if failure is not None:
            raise failure from None
        return False


def _mkdir_reason(exc, folder):
    """mkdir says "File exists" of a folder that is a dangling link or a symlink loop; stat says why."""
    if isinstance(exc, FileExistsError):
        for parent in (folder, *folder.parents):
            try:
                os.stat(parent)
            except OSError as real:
                exc = real
            else:
                break
    return os_reason(exc)


def write_failure(path, exc):
    """The OutputError to raise for ``exc``, which stopped writing ``path``; None to let it through.

    Writers (libsndfile among them) often report a full disk only as "System error": a folder
    with next to no space left is reported as full, whatever the writer said.
    """
    if exc is None or isinstance(exc, (SpecsynthError, KeyboardInterrupt, SystemExit)):
        return exc if isinstance(exc, SpecsynthError) else None
    try:
        if shutil.disk_usage(Path(path).parent).free < 1 << 20:
            return OutputError(f"cannot write here ({os_reason(OSError(errno.ENOSPC, ''))})", path=path)
    except OSError:
        pass
    if isinstance(exc, OSError):
        return OutputError(f"cannot write here ({os_reason(exc)})", path=path)
    return None


def write_text(path, text, *, overwrite=True):
    """Write a text file atomically."""
    with atomic_output(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


class atomic_folder:
    """Context manager yielding an empty temporary folder beside ``path`` to build it in; on
    success it replaces ``path``, on failure it is removed and ``path`` is untouched.

    With ``keep_extra``, files in an existing ``path`` that the new folder does not hold (a model
    card, the user's notes) are moved into it rather than lost.
    """

    def __init__(self, path, *, overwrite=False, keep_extra=False):
        self.path = Path(path)
        self.overwrite = overwrite
        self.keep_extra = keep_extra
        self.tmp = None

    def __enter__(self):
        refuse_existing(self.path, self.overwrite)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        except OSError as exc:
            raise OutputError(f"cannot write here ({exc.strerror or exc})", path=self.path) from None
        os.chmod(self.tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700 folders
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            failure = write_failure(self.path, exc)
            if failure is not None:
                raise failure from None
            return False
        try:
            if self.path.exists():
                if self.keep_extra:
                    for extra in self.path.iterdir():
                        if not (self.tmp / extra.name).exists():
                            os.replace(extra, self.tmp / extra.name)
                old = self.path.with_name(f".{self.path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(self.path, old)
                os.replace(self.tmp, self.path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.tmp, self.path)
        except OSError as err:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise OutputError(f"cannot write here ({os_reason(err)})", path=self.path) from None
        return False


def shipped(name):
    """A file or folder shipped beside the package (``pretrained``, ``apps/specsynth_app.py``).

    The one lookup: in a source checkout (an editable install) it is the checkout's own copy; a
    wheel installs the same files under ``<prefix>/share/specsynth/`` (pyproject.toml's
    data-files), where it is found otherwise.
    """
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.exists():
        return checkout
    return Path(sys.prefix) / "share" / "specsynth" / name


@contextmanager
def output_folder(folder):
    """Context manager: :func:`check_writable_dir` for a command's output folder, yielding it; if
    the command then fails, the folders this made are removed again while they are empty, so an
    error (a bad model, a full disk) leaves no empty folder behind."""
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    check_writable_dir(folder)
    try:
        yield folder
    except BaseException:
        for path in made:
            try:
                path.rmdir()
            except OSError:
                break
        raise


def check_writable_dir(folder):
    """Create ``folder`` if needed and check it is writable; raises OutputError otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError("is a file, not a folder", path=folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"folder is not writable ({_mkdir_reason(exc, folder)})", path=folder) from None
    return folder


LOCK = ".specsynth.lock"  # in an output folder while a render writes there


class folder_lock:
    """Context manager holding an exclusive lock on ``folder``: ``folder/.specsynth.lock``, which
    names the holder (pid, host, start time) and is removed on release, so two renders never
    write one folder at once.

    Taken by another process: OutputError naming the holder, or with ``wait`` block until it is
    released. The lock is the kernel's (``flock``): it goes when the holder exits, however it dies,
    so a lock file left by a killed render never blocks.
    """

    def __init__(self, folder, *, wait=False):
        self.path = Path(folder) / LOCK
        self.wait = wait
        self.fd = None

    def __enter__(self):
        import json
        import socket
        import time

        told = False
        while True:
            fd = self._open()
            if not self._lock(fd, blocking=False):
                told = self._wait(fd, told)
            if self._current(fd):  # not a file its holder removed while we waited for it
                break
            os.close(fd)
        self.fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only unnamed
        return self

    def _open(self):
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~_UMASK)
        except OSError as exc:
            raise OutputError(f"cannot lock the folder ({os_reason(exc)})", path=self.path.parent) from None

    @staticmethod
    def _lock(fd, *, blocking):
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            return False

    def _wait(self, fd, told):
        holder = self._holder(fd)
        if not self.wait:
            os.close(fd)
            raise OutputError(f"another specsynth render is writing here ({holder}); let it finish, or use --wait",
                              path=self.path.parent)
        if not told:
            sys.stderr.write(f"specsynth: waiting for the render writing {self.path.parent} ({holder})\n")
        self._lock(fd, blocking=True)
        return True

    def _current(self, fd):
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except OSError:
            return False

    @staticmethod
    def _holder(fd):
        import json

        try:
            info = json.loads(os.pread(fd, 4096, 0).decode())
            return f"pid {info['pid']} on {info['host']}, since {info['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "holder unknown"

    def __exit__(self, exc_type, exc, tb):
        try:
            os.unlink(self.path)  # while still held: a waiter that opened it sees it is gone, and retries
        except OSError:
            pass
        os.close(self.fd)  # releases the lock
        return False
