"""Errors a user can cause. The CLI prints their one-line message and exits with code 2."""


class SpecsynthError(Exception):
    """Base class: a problem with the user's input, not a bug in specsynth."""

    exit_code = 2

    def __init__(self, message, *, path=None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


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
