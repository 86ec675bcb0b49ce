"""Errors a user can cause. The CLI prints their one-line message and exits with code 2."""

import errno


def one_line(text):
    """``text`` with line breaks shown as ``\\n``, so a file name cannot split a one-line error."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


class SpecsynthError(Exception):
    """Base class: a problem with the user's input, not a bug in specsynth."""

    exit_code = 2

    def __init__(self, message, *, path=None):
        self.path = None if path is None else str(path)
        super().__init__(one_line(f"{self.path}: {message}" if self.path else message))


class AudioError(SpecsynthError):
    """An audio file that cannot be read, or whose content is unusable."""


class ConfigError(SpecsynthError):
    """A parameter or configuration value outside what is allowed."""


class BundleError(SpecsynthError):
    """A model bundle that is missing, incomplete or fails validation."""


class ManifestError(SpecsynthError):
    """A render manifest that is malformed or refers to things that do not exist."""


class OutputError(SpecsynthError):
    """An output that cannot be written, or would overwrite something without --overwrite."""


class TrainingError(SpecsynthError):
    """A training run that cannot go on (its loss kept going non-finite)."""


_REASONS = {
    errno.ENOSPC: "no space left on the device: the disk is full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop?)",
    errno.EROFS: "read-only file system",
}


def os_reason(exc):
    """The reason an OSError gives, in words (the disk being full says so)."""
    return _REASONS.get(getattr(exc, "errno", None)) or (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)


def from_os_error(exc, path=None):
    """The one-line :class:`SpecsynthError` for an OSError: the file it concerns and why.

    The one place an OSError (a full disk, a folder one cannot enter, a name too long) becomes a
    user's error rather than a traceback.
    """
    path = path or getattr(exc, "filename", None)
    cls = OutputError if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else SpecsynthError
    return cls(os_reason(exc), path=path)
