"""A contour-conditioned VAE over spectrogram frames.

Frames ``[time, F]`` (normalised dB) are encoded, with a few frames of context on either side
(1-D convolutions over time), into a latent sequence ``[time, z]`` at the STFT frame rate. Both
halves are conditioned on the sound's pitch contour ``[time, 2]`` (f0 in fractional MIDI and
voicing per frame, :func:`specsynth.pitch.track`): the encoder reads each frame in partial
numbers of its own f0 (:class:`ContourView`) beside the raw frame, and the decoder draws partials
along the contour, a free residual spectrum for what is not one harmonic series, and noise
(:class:`SpectrumOutput`). The latents carry the timbre; the contour carries the pitch, so a
timbre can be decoded along any contour (transposed, flattened, blended).
"""
from __future__ import annotations

import numpy as np

from ._keras import keras
from keras import layers, ops

from ..pitch import CONTOUR_COLUMNS
from .settings import ARCHITECTURE

PACKAGE = "specsynth"
# The encoder's log-variances are bounded above softly, near the identity below it: a posterior
# wider than the N(0, 1) prior is never of use, and unbounded, exp(logvar) can run away after a
# loss spike, with a KL the run does not recover from.
LOGVAR_MAX = 2.0


@keras.saving.register_keras_serializable(package=PACKAGE)
class BroadcastTime(layers.Layer):
    """``[B, T, C]``, ``[B, P]`` -> ``[B, T, P]``: a per-sound vector repeated over time."""

    def call(self, inputs):
        seq, vec = inputs
        return ops.broadcast_to(ops.expand_dims(vec, 1), (ops.shape(seq)[0], ops.shape(seq)[1], ops.shape(vec)[-1]))

    def compute_output_shape(self, input_shapes):
        seq, vec = input_shapes
        return (seq[0], seq[1], vec[-1])


def _warped_axis(features, bands, warp):
    """Each feature's position ``log(1 + k / warp)`` and ``bands`` evenly spaced centres on it."""
    u = np.log1p(np.arange(features, dtype=np.float64) / warp)
    return u, np.linspace(u[0], u[-1], bands)


def smooth_basis(features, bands, warp):
    """``[bands, features]`` overlapping triangles, evenly spaced on the warped axis
    ``log(1 + k / warp)`` (mel-like for STFT bins; ``warp`` large makes it linear)."""
    u, centres = _warped_axis(features, bands, warp)
    width = centres[1] - centres[0]
    return np.maximum(0.0, 1.0 - np.abs(u[None, :] - centres[:, None]) / width).astype("float32")


def band_average(features, bands, warp):
    """``[features, bands]``: the mean under each :func:`smooth_basis` triangle; a triangle too
    narrow to cover any feature (the lowest ones) takes the feature nearest its centre."""
    basis = smooth_basis(features, bands, warp).astype(np.float64)
    u, centres = _warped_axis(features, bands, warp)
    empty = basis.sum(axis=1) == 0
    basis[empty, np.abs(u[None, :] - centres[empty, None]).argmin(axis=1)] = 1.0
    return (basis / basis.sum(axis=1, keepdims=True)).T.astype("float32")


def _hz(midi):
    """MIDI note number(s) -> frequency in Hz, in keras.ops."""
    return 440.0 * ops.power(2.0, (midi - 69.0) / 12.0)


def _hann_power(d):
    """Power response of the Hann window ``d`` bins from a sinusoid (1 at ``d = 0``), in keras.ops;
    the 0/0 points (``d = 0``, ``|d| = 1``) are taken by their limits with gradients kept finite."""
    at_one = ops.abs(ops.abs(d) - 1.0) < 1e-3
    d = ops.where(at_one, 0.5, d)
    at_zero = ops.abs(d) < 1e-4
    safe = ops.where(at_zero, 1.0, d)
    sinc = ops.where(at_zero, 1.0, ops.sin(np.pi * safe) / (np.pi * safe))
    return ops.where(at_one, 0.25, ops.square(sinc / (1.0 - ops.square(d))))


@keras.saving.register_keras_serializable(package=PACKAGE)
class ContourFeatures(layers.Layer):
    """``[B, T, 2]`` contour columns (f0 in MIDI, voicing 0..1) -> ``[B, T, 4]`` features that
    condition the encoder and decoder: the position on the keyboard, the voicing, and two slow
    periodic features of the f0, all continuous in MIDI number."""

    def call(self, contour):
        midi, voicing = contour[..., 0:1], contour[..., 1:2]
        turn = 2.0 * np.pi * midi / 96.0
        return ops.concatenate([(midi - 60.0) / 24.0, voicing, ops.sin(turn), ops.cos(turn)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)


# The decoder's output is bounded: each part's level (partials, noise, residual) stays below
# PART_CEILING_DB (dB over a full-scale sine's peak bin), softly, and a frame's total power
# below that of a full-scale sine FRAME_CEILING_DB down, softly (a knee of order KNEE). Noise
# at that power peaks near +6 dBFS; real sounds, whose frames lie well below it, pass unchanged.
PART_CEILING_DB = 6.0
FRAME_CEILING_DB = -6.0
KNEE = 4.0
SINE_FRAME_POWER = 1.5  # a full-scale sine's frame power in units of its peak bin (Hann: 1 + 2 * 0.25)


def soft_ceiling(db, ceiling):
    """``db`` below ``ceiling``, softly: near the identity well under it, never above it."""
    return ceiling - ops.softplus(ceiling - db)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectrumOutput(layers.Layer):
    """A frame drawn as partials along the pitch contour, a free residual spectrum and noise.

    Per frame the decoder gives: a stretch ``B`` (partial ``n`` at ``n f0 sqrt(1 + B n^2)``, as in
    a piano string) of the partials of the contour's f0 (taken as given, so a drawn pitch follows
    the contour to the cent); an amplitude for each of the first ``harmonics`` partials and for
    the half-partials between them (a sub-octave, as in an organ's 16' stop), on top of a smooth
    partial envelope over frequency; a smooth noise envelope; and a residual level for every
    bin, which draws what is not one harmonic series of the contour: the inharmonic partials of
    bells and chimes, chords, the fine structure of cymbals, breath and crackle. Each bin's power
    is the Hann window's response to its two nearest partials plus noise and residual, bounded
    (:data:`PART_CEILING_DB`, :data:`FRAME_CEILING_DB`); the frame is that power in dB, floored
    like the data. The voicing reaches the decoder through its conditioning features, which let
    it silence the partials of unvoiced frames.

    The envelopes' triangles lie on ``log(1 + bin / warp)`` (see :func:`smooth_basis`).
    """

    def __init__(self, spectral, db_offset=-60.0, db_scale=20.0, env_bands=ARCHITECTURE["env_bands"],
                 harmonics=ARCHITECTURE["harmonics"], warp=ARCHITECTURE["warp"], **kwargs):
        super().__init__(**kwargs)
        self.spectral, self.db_offset, self.db_scale = dict(spectral), float(db_offset), float(db_scale)
        self.env_bands, self.harmonics, self.warp = int(env_bands), int(harmonics), float(warp)
        from ..spectral import SpectralConfig, mel_basis

        cfg = SpectralConfig.from_dict(self.spectral)
        self.features, self.floor = cfg.n_features, cfg.db_floor
        self._bin_width = cfg.sample_rate / cfg.n_fft
        self._freqs = (np.arange(cfg.n_bins) * self._bin_width).astype("float32")
        self._mel = mel_basis(cfg).T.copy() if cfg.representation == "mel" else None
        self._basis = smooth_basis(cfg.n_bins, env_bands, warp)
        self._frame_ceiling = SINE_FRAME_POWER * 10.0 ** (FRAME_CEILING_DB / 10.0)
        slots = np.arange(1, 2 * harmonics + 1)
        self._slot_offset = np.where(slots % 2 == 1, -30.0, 0.0).astype("float32")  # half-partials start quiet
        self.noise = layers.Dense(env_bands, name="noise")
        self.envelope = layers.Dense(env_bands, name="partial_envelope")
        self.slots = layers.Dense(2 * harmonics, name="partials")
        self.stretch = layers.Dense(1, name="stretch")
        self.residual = layers.Dense(cfg.n_bins, name="residual", bias_initializer=keras.initializers.Constant(-3.0))

    def build(self, input_shapes):
        h_shape, _ = input_shapes
        for dense in (self.noise, self.envelope, self.slots, self.stretch, self.residual):
            dense.build(h_shape)

    def call(self, inputs):
        h, contour = inputs
        f0 = ops.expand_dims(_hz(contour[..., 0]), -1)  # [B, T, 1]
        stretch = 1e-3 * ops.sigmoid(self.stretch(h) - 4.0)
        ratio = self._freqs / f0  # bin frequency in units of f0: [B, T, K]
        # the partial number n with n f0 sqrt(1 + B n^2) at this bin, in half-partial steps
        position = 2.0 * ops.sqrt(2.0 * ops.square(ratio) / (1.0 + ops.sqrt(1.0 + 4.0 * stretch * ops.square(ratio))))
        envelope = 10.0 * ops.matmul(self.envelope(h), self._basis) - 30.0
        amps = 10.0 * self.slots(h) + self._slot_offset  # [B, T, 2 * harmonics] in dB over the envelope
        n_slots = 2 * self.harmonics
        shape = ops.shape(amps)
        beyond = ops.concatenate([ops.zeros((shape[0], shape[1], 1)), ops.full((shape[0], shape[1], 1), -60.0)], -1)
        table = ops.concatenate([ops.full((shape[0], shape[1], 1), -200.0), amps, beyond], -1)
        power = 0.0
        for slot in (ops.floor(position), ops.floor(position) + 1.0):
            half = 0.5 * slot
            centre = half * f0 * ops.sqrt(1.0 + stretch * ops.square(half))
            index = ops.cast(slot, "int32")
            index = ops.where(index > n_slots, n_slots + 1 + index % 2, index)  # beyond: partial / half-partial
            index = ops.maximum(index, 0)  # a NaN position (diverged weights) must not index out of the table
            level = soft_ceiling(envelope + ops.take_along_axis(table, index, axis=-1), PART_CEILING_DB)
            power = power + ops.power(10.0, level / 10.0) * _hann_power((self._freqs - centre) / self._bin_width)
        noise = soft_ceiling(10.0 * ops.matmul(self.noise(h), self._basis) - 60.0, PART_CEILING_DB)
        residual = soft_ceiling(20.0 * self.residual(h) - 40.0, PART_CEILING_DB)
        power = power + ops.power(10.0, noise / 10.0) + ops.power(10.0, residual / 10.0)
        total = ops.sum(power, axis=-1, keepdims=True) / self._frame_ceiling
        power = power * ops.power(1.0 + ops.power(total, KNEE), -1.0 / KNEE) + 1e-10
        if self._mel is not None:
            power = ops.matmul(power, self._mel)
        db = ops.maximum(10.0 * ops.log10(power), self.floor)
        return (db - self.db_offset) / self.db_scale

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0][:-1]) + (self.features,)

    def get_config(self):
        return {**super().get_config(), "spectral": self.spectral, "db_offset": self.db_offset,
                "db_scale": self.db_scale, "env_bands": self.env_bands, "harmonics": self.harmonics,
                "warp": self.warp}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ContourView(layers.Layer):
    """The encoder's view of a frame in partial numbers of its own f0.

    ``[B, T, F]`` normalised frames and ``[B, T, 2]`` contour columns -> ``[B, T, 2 * harmonics +
    env_bands]``: the level at each partial and half-partial of the frame's f0 (the loudest
    feature within an eighth of f0 of it, at least half a feature and at most 2 away), then a
    smooth envelope (the mean level under each of ``env_bands`` triangles on a log-frequency
    axis). Partials above Nyquist read as the floor. In partial numbers every pitch looks alike,
    as the decoder (:class:`SpectrumOutput`) draws it, so the encoder carries over to pitches no
    training sound had; the voicing and the raw frame reach the encoder beside this view.
    """

    REACH = 2  # features either side of a partial's position that may hold its peak

    def __init__(self, spectral, db_offset=-60.0, db_scale=20.0, env_bands=ARCHITECTURE["env_bands"],
                 harmonics=ARCHITECTURE["harmonics"], warp=ARCHITECTURE["input_warp"], **kwargs):
        super().__init__(**kwargs)
        self.spectral, self.db_offset, self.db_scale = dict(spectral), float(db_offset), float(db_scale)
        self.env_bands, self.harmonics, self.warp = int(env_bands), int(harmonics), float(warp)
        from ..spectral import SpectralConfig, mel_basis

        cfg = SpectralConfig.from_dict(self.spectral)
        self.features = cfg.n_features
        self.floor = (cfg.db_floor - self.db_offset) / self.db_scale
        self.nyquist = cfg.sample_rate / 2
        freqs = np.arange(cfg.n_bins) * cfg.sample_rate / cfg.n_fft
        if cfg.representation == "mel":
            basis = mel_basis(cfg)
            freqs = basis @ freqs / np.maximum(basis.sum(axis=1), 1e-12)  # each band's centre of mass
            warp = 1e6  # mel bands are already spaced like hearing: average them evenly
        # fractional feature index of every whole Hz up to Nyquist
        self._index_of_hz = np.interp(np.arange(int(self.nyquist) + 2), freqs, np.arange(self.features)).astype("float32")
        self._average = band_average(self.features, env_bands, warp)  # [F, bands]
        self._half_slots = (np.arange(1, 2 * harmonics + 1) / 2.0).astype("float32")

    def _index(self, hz):
        hz = ops.clip(hz, 0.0, self.nyquist + 1.0)
        return ops.take(self._index_of_hz, ops.cast(ops.round(hz), "int32"))

    def call(self, inputs):
        frames, contour = inputs  # [B, T, F], [B, T, 2]
        f0 = _hz(contour[..., 0:1])  # [B, T, 1]
        hz = f0 * self._half_slots  # [B, T, S]
        position = self._index(hz)
        reach = ops.clip(self._index(hz + 0.125 * f0) - position, 0.5, float(self.REACH))
        best = ops.full(ops.shape(hz), -1e4)
        for offset in range(-self.REACH, self.REACH + 1):
            index = ops.round(position) + float(offset)
            near = ops.abs(index - position) <= reach
            index = ops.cast(ops.clip(index, 0.0, self.features - 1.0), "int32")
            best = ops.maximum(best, ops.where(near, ops.take_along_axis(frames, index, axis=-1), -1e4))
        partials = ops.where(hz < self.nyquist, best, self.floor)
        envelope = ops.matmul(frames, self._average)
        return ops.concatenate([partials, envelope], axis=-1)

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0][:-1]) + (2 * self.harmonics + self.env_bands,)

    def get_config(self):
        return {**super().get_config(), "spectral": self.spectral, "db_offset": self.db_offset,
                "db_scale": self.db_scale, "env_bands": self.env_bands, "harmonics": self.harmonics,
                "warp": self.warp}


def build_encoder(spectral, *, z_dim=16, width=256, kernel=5, db_offset=-60.0, db_scale=20.0,
                  env_bands=ARCHITECTURE["env_bands"], harmonics=ARCHITECTURE["harmonics"],
                  input_warp=ARCHITECTURE["input_warp"]):
    from ..spectral import SpectralConfig

    frames = keras.Input((None, SpectralConfig.from_dict(spectral).n_features), name="frames")
    contour = keras.Input((None, CONTOUR_COLUMNS), name="contour")
    c = layers.Dense(64, activation="gelu", name="contour_embed")(ContourFeatures(name="contour_features")(contour))
    view = ContourView(spectral, db_offset=db_offset, db_scale=db_scale, env_bands=env_bands, harmonics=harmonics,
                       warp=input_warp, name="contour_view")([frames, contour])
    raw = layers.Dense(width, name="frame_embed")(frames)  # what the partial view misses: inharmonic detail
    h = layers.Concatenate(name="with_contour")([view, raw, c])
    h = layers.Conv1D(width, kernel, padding="same", activation="gelu", name="conv1")(h)
    h = layers.Conv1D(width, kernel, padding="same", activation="gelu", name="conv2")(h)
    mean = layers.Conv1D(z_dim, 1, name="z_mean")(h)
    logvar = layers.Conv1D(z_dim, 1, name="z_logvar")(h)
    return keras.Model([frames, contour], [mean, logvar], name="encoder")


def build_decoder(spectral, *, z_dim=16, width=256, kernel=5, db_offset=-60.0, db_scale=20.0,
                  env_bands=ARCHITECTURE["env_bands"], harmonics=ARCHITECTURE["harmonics"],
                  warp=ARCHITECTURE["warp"]):
    z = keras.Input((None, z_dim), name="z")
    contour = keras.Input((None, CONTOUR_COLUMNS), name="contour")
    c = layers.Dense(64, activation="gelu", name="contour_embed")(ContourFeatures(name="contour_features")(contour))
    h = layers.Concatenate(name="with_contour")([z, c])
    h = layers.Conv1D(width, kernel, padding="same", activation="gelu", name="conv1")(h)
    h = layers.Conv1D(2 * width, kernel, padding="same", activation="gelu", name="conv2")(h)
    out = SpectrumOutput(spectral, db_offset=db_offset, db_scale=db_scale, env_bands=env_bands, harmonics=harmonics,
                         warp=warp, name="frames")([h, contour])
    return keras.Model([z, contour], out, name="decoder")


@keras.saving.register_keras_serializable(package=PACKAGE)
class VAE(keras.Model):
    """Encoder + decoder trained on normalised frames with a Gaussian likelihood and β-KL.

    Inputs are dicts ``{"frames": [B, T, F], "contour": [B, T, 2]}`` (f0 in MIDI, voicing);
    ``spectral`` is the :class:`specsynth.spectral.SpectralConfig` as a dict and ``db_offset``,
    ``db_scale`` the frames' normalisation (the output layer works in dB). The loss per frame is
    ``0.5 * sum_f (x - x_hat)^2 + beta_t * KL(q(z|x) || N(0, I))`` with ``beta_t`` rising linearly
    from 0 to ``beta`` over ``warmup_steps`` optimizer steps (KL warm-up). The encoder's
    log-variances are bounded above by :data:`LOGVAR_MAX` (softly) before the loss and the draw.
    ``env_bands``, ``harmonics``, ``warp`` and ``input_warp`` shape the decoder's output
    (:class:`SpectrumOutput`) and the encoder's view (:class:`ContourView`, whose warp is
    ``input_warp``); :data:`specsynth.model.settings.ARCHITECTURE` has their defaults.
    """

    def __init__(self, spectral, z_dim=16, width=256, kernel=5, beta=1.0, warmup_steps=2000, seed=0,
                 db_offset=-60.0, db_scale=20.0, encoder=None, decoder=None, env_bands=ARCHITECTURE["env_bands"],
                 harmonics=ARCHITECTURE["harmonics"], warp=ARCHITECTURE["warp"],
                 input_warp=ARCHITECTURE["input_warp"], **kwargs):
        super().__init__(**kwargs)
        from ..spectral import SpectralConfig

        self.spectral, self.db_offset, self.db_scale = dict(spectral), float(db_offset), float(db_scale)
        self.features = SpectralConfig.from_dict(self.spectral).n_features
        self.z_dim, self.width, self.kernel = z_dim, width, kernel
        self.beta, self.warmup_steps, self.seed = float(beta), int(warmup_steps), int(seed)
        sizes = dict(z_dim=z_dim, width=width, kernel=kernel, db_offset=db_offset, db_scale=db_scale,
                     env_bands=env_bands, harmonics=harmonics)
        self.encoder = encoder or build_encoder(self.spectral, input_warp=input_warp, **sizes)
        self.decoder = decoder or build_decoder(self.spectral, warp=warp, **sizes)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._total_tracker = keras.metrics.Mean(name="loss")
        self._recon_tracker = keras.metrics.Mean(name="recon")
        self._kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def architecture(self):
        """``{"env_bands", "harmonics", "warp", "input_warp"}`` as the decoder's output layer and the
        encoder's view hold them."""
        out, view = self.decoder.get_layer("frames"), self.encoder.get_layer("contour_view")
        return {"env_bands": out.env_bands, "harmonics": out.harmonics, "warp": out.warp, "input_warp": view.warp}

    def call(self, inputs, training=False):
        mean, logvar = self.encoder([inputs["frames"], inputs["contour"]], training=training)
        logvar = LOGVAR_MAX - ops.softplus(LOGVAR_MAX - logvar)
        if training:
            eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
            z = mean + ops.exp(0.5 * logvar) * eps
        else:
            z = mean
        recon = self.decoder([z, inputs["contour"]], training=training)
        return {"frames": recon, "mean": mean, "logvar": logvar}

    def kl_weight(self):
        if self.warmup_steps <= 0 or self.optimizer is None:
            return ops.convert_to_tensor(self.beta)
        step = ops.cast(self.optimizer.iterations, "float32")
        return self.beta * ops.minimum(1.0, step / float(self.warmup_steps))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        recon = 0.5 * ops.mean(ops.sum(ops.square(x["frames"] - y_pred["frames"]), axis=-1))
        mean, logvar = y_pred["mean"], y_pred["logvar"]
        kl = 0.5 * ops.mean(ops.sum(ops.exp(logvar) + ops.square(mean) - 1.0 - logvar, axis=-1))
        self._tracked = (recon, kl)
        return recon + self.kl_weight() * kl

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        recon, kl = self._tracked
        self._recon_tracker.update_state(recon)
        self._kl_tracker.update_state(kl)
        return {"loss": self._loss_tracker_value(x, y_pred), "recon": self._recon_tracker.result(),
                "kl": self._kl_tracker.result()}

    def _loss_tracker_value(self, x, y_pred):
        recon, kl = self._tracked
        self._total_tracker.update_state(recon + self.kl_weight() * kl)
        return self._total_tracker.result()

    @property
    def metrics(self):
        return [self._total_tracker, self._recon_tracker, self._kl_tracker]

    def get_config(self):
        return {
            **super().get_config(),
            "spectral": self.spectral, "z_dim": self.z_dim, "width": self.width, "kernel": self.kernel,
            "beta": self.beta, "warmup_steps": self.warmup_steps, "seed": self.seed,
            "db_offset": self.db_offset, "db_scale": self.db_scale, **self.architecture,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
