"""Training settings and the model's architecture defaults (no TensorFlow here).

Durations are in seconds and become frames at the spectral config's frame rate
(:meth:`specsynth.spectral.SpectralConfig.frames_in`); at the default 62.5 frames/s every one is
a whole number of frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

# The VAE's architecture settings that are not sizes of its own layers: envelope bands and
# partials of the encoder's view (vae.HarmonicInput) and the decoder's output (vae.PartialsOutput),
# and the frequency warp of each one's envelope triangles. A bundle saves them in config.json;
# these are the values of bundles that do not.
ARCHITECTURE = {"env_bands": 80, "harmonics": 64, "warp": 64.0, "input_warp": 8.0}


@dataclass
class TrainSettings:
    """Hyperparameters; the defaults train the pretrained model on 2 CPU cores."""

    z_dim: int = 16
    width: int = 256
    kernel: int = 5
    env_bands: int = ARCHITECTURE["env_bands"]
    harmonics: int = ARCHITECTURE["harmonics"]
    warp: float = ARCHITECTURE["warp"]
    input_warp: float = ARCHITECTURE["input_warp"]
    beta: float = 0.05
    warmup_steps: int = 1500
    epochs: int = 20
    batch_size: int = 32
    segment_seconds: float = 1.024  # the VAE's training segments (64 frames at 62.5 frames/s)
    learning_rate: float = 1e-3
    gain_db: float = 24.0  # each training segment is turned down by a random 0..gain_db dB (level augmentation)
    clip_norm: float = 2000.0  # the VAE's gradients are scaled down to this global norm, if above it
    prior_units: int = 256
    prior_mixtures: int = 4
    prior_epochs: int = 12
    prior_segment_seconds: float = 4.096  # windows from each sound's onset (after the start frame)
    prior_anywhere_seconds: float = 2.048  # and windows cut anywhere in it (0: onset windows only)
    prior_onset_weight: float = 15.0  # extra loss weight on a sound's first frames (see prior.windows)
    prior_onset_seconds: float = 0.128  # the time constant over which that extra weight falls off
    prior_sampled_inputs: float = 0.75
    prior_sampled_passes: int = 4  # passes of scheduled sampling (see prior.LatentPrior)
    prior_every: int = 1  # the prior trains on every n-th training sound's latents
    val_fraction: float = 0.1
    seed: int = 0
    strategy: str | None = None
    extra: dict = field(default_factory=dict)

    def check(self):
        if self.z_dim < 1 or self.epochs < 1 or self.prior_epochs < 0 or self.batch_size < 1:
            raise ConfigError("z_dim, epochs and batch_size must be >= 1 and prior_epochs >= 0")
        if self.env_bands < 2 or self.harmonics < 1 or not (self.warp > 0 and self.input_warp > 0):
            raise ConfigError("env_bands must be >= 2, harmonics >= 1, warp and input_warp > 0")
        if not (self.segment_seconds > 0 and self.prior_segment_seconds > 0 and self.prior_onset_seconds > 0):
            raise ConfigError("segment_seconds, prior_segment_seconds and prior_onset_seconds must be > 0")
        if self.prior_anywhere_seconds < 0 or self.prior_onset_weight < 0:
            raise ConfigError("prior_anywhere_seconds and prior_onset_weight must be >= 0")
        if not 0 <= self.gain_db <= 60:
            raise ConfigError(f"gain_db must be in 0..60, got {self.gain_db}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not self.clip_norm > 0:
            raise ConfigError(f"clip_norm must be > 0, got {self.clip_norm}")
        if self.prior_every < 1:
            raise ConfigError(f"prior_every must be >= 1, got {self.prior_every}")
        if self.prior_sampled_passes < 1:
            raise ConfigError(f"prior_sampled_passes must be >= 1, got {self.prior_sampled_passes}")
        if not 0 <= self.prior_sampled_inputs <= 1:
            raise ConfigError(f"prior_sampled_inputs must be in [0, 1], got {self.prior_sampled_inputs}")
        if not 0 <= self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        if self.strategy not in (None, "mirrored"):
            raise ConfigError(f"strategy must be 'mirrored' or omitted, got {self.strategy!r}")

    def frames(self, config):
        """The durations in frames at the :class:`~specsynth.spectral.SpectralConfig`'s frame rate:
        ``{"segment", "prior_segment", "prior_anywhere", "prior_onset"}``; a segment shorter than
        one frame is a ConfigError."""
        got = {name: config.frames_in(getattr(self, f"{name}_seconds"))
               for name in ("segment", "prior_segment", "prior_anywhere", "prior_onset")}
        if min(got["segment"], got["prior_segment"], got["prior_onset"]) < 1:
            raise ConfigError(f"segment_seconds, prior_segment_seconds and prior_onset_seconds must be at least "
                              f"one frame ({1 / config.frame_rate:.4f} s)")
        return got
