"""specsynth: spectrogram latent-space sound design.

The public API. Importing this module does not import TensorFlow; :func:`load` does, when a
model is actually loaded.
"""
from .errors import AudioError, BundleError, ConfigError, ManifestError, OutputError, SpecsynthError, TrainingError
from .spectral import SpectralConfig

__version__ = "0.1.0"

__all__ = [
    "AudioError", "BundleError", "ConfigError", "ManifestError", "OutputError", "SpecsynthError",
    "TrainingError", "SpectralConfig", "load", "__version__",
]


def load(path="pretrained"):
    """Load a model bundle: a folder path, or ``"pretrained"`` for the bundle in ``pretrained/``.

    Returns a :class:`specsynth.model.bundle.Model` with ``encode``, ``decode``, ``reconstruct``
    and ``sample_prior``.
    """
    from .model.bundle import load_bundle

    return load_bundle(path)
