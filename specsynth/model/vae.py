"""A pitch-conditioned VAE over spectrogram frames.

Frames ``[time, F]`` (normalised dB) are encoded, with a few frames of context on either side
(1-D convolutions over time), into a latent sequence ``[time, z]`` at the STFT frame rate
(``sample_rate / hop``, 62.5 Hz by default). The decoder sees the latents and the pitch features of
:mod:`specsynth.pitch` (a harmonic comb over the feature axis plus an 'unpitched' flag): its
output is a source-filter frame (:class:`HarmonicOutput`): a smooth envelope plus the pitch's
comb carved to a smooth harmonicity, so partials come from the pitch label and the timbre from
the latents, and a timbre can be decoded at any pitch.
"""
from __future__ import annotations

import numpy as np

from ._keras import keras
from keras import layers, ops

from ..pitch import PITCH_EXTRA

PACKAGE = "specsynth"


@keras.saving.register_keras_serializable(package=PACKAGE)
class TakeLast(layers.Layer):
    """The last ``n`` features: ``[..., C]`` -> ``[..., n]``."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = n

    def call(self, x):
        return x[..., -self.n :]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.n,)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BroadcastTime(layers.Layer):
    """``[B, T, C]``, ``[B, P]`` -> ``[B, T, P]``: a per-sound vector repeated over time."""

    def call(self, inputs):
        seq, vec = inputs
        return ops.broadcast_to(ops.expand_dims(vec, 1), (ops.shape(seq)[0], ops.shape(seq)[1], ops.shape(vec)[-1]))

    def compute_output_shape(self, input_shapes):
        seq, vec = input_shapes
        return (seq[0], seq[1], vec[-1])


def smooth_basis(features, bands, warp):
    """``[bands, features]`` overlapping triangles, evenly spaced on the warped axis
    ``log(1 + k / warp)`` (mel-like for STFT bins; ``warp`` large makes it linear)."""
    k = np.arange(features, dtype=np.float64)
    u = np.log1p(k / warp)
    centres = np.linspace(u[0], u[-1], bands)
    width = centres[1] - centres[0]
    return np.maximum(0.0, 1.0 - np.abs(u[None, :] - centres[:, None]) / width).astype("float32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class HarmonicOutput(layers.Layer):
    """A source-filter frame: ``out = envelope(h) + harmonicity(h) * scale * comb``.

    The envelope is a smooth curve (``env_bands`` triangles on a warped frequency axis) and the
    harmonicity is smooth too (``harm_bands`` triangles, squashed to 0..1), so neither can place
    partials at particular bins: partials come only from the pitch's comb (its dB shape, from
    :mod:`specsynth.pitch`). A timbre therefore renders at any pitch, seen in training or not.
    """

    def __init__(self, features, env_bands=80, harm_bands=8, warp=8.0, **kwargs):
        super().__init__(**kwargs)
        self.features, self.env_bands, self.harm_bands, self.warp = features, env_bands, harm_bands, warp
        self.env = layers.Dense(env_bands, name="envelope")
        self.harm = layers.Dense(harm_bands, name="harmonicity")
        self._env_basis = smooth_basis(features, env_bands, warp)
        self._harm_basis = smooth_basis(features, harm_bands, warp)

    def build(self, input_shapes):
        h_shape, _ = input_shapes
        self.env.build(h_shape)
        self.harm.build(h_shape)
        self.scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(1.0), name="comb_scale")

    def call(self, inputs):
        h, pitch_seq = inputs
        comb = pitch_seq[..., : self.features]
        envelope = ops.matmul(self.env(h), self._env_basis)
        harmonicity = ops.matmul(ops.sigmoid(self.harm(h)), self._harm_basis)
        return envelope + harmonicity * self.scale * comb

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0][:-1]) + (self.features,)

    def get_config(self):
        return {**super().get_config(), "features": self.features, "env_bands": self.env_bands,
                "harm_bands": self.harm_bands, "warp": self.warp}


def build_encoder(features, *, z_dim=16, width=256, kernel=5):
    frames = keras.Input((None, features), name="frames")
    pitch = keras.Input((features + PITCH_EXTRA,), name="pitch")
    p = layers.Dense(64, activation="gelu", name="pitch_embed")(TakeLast(PITCH_EXTRA, name="pitch_smooth")(pitch))
    h = layers.Conv1D(width, kernel, padding="same", activation="gelu", name="conv1")(frames)
    h = layers.Concatenate(name="with_pitch")([h, BroadcastTime(name="pitch_time")([h, p])])
    h = layers.Conv1D(width, kernel, padding="same", activation="gelu", name="conv2")(h)
    mean = layers.Conv1D(z_dim, 1, name="z_mean")(h)
    logvar = layers.Conv1D(z_dim, 1, name="z_logvar")(h)
    return keras.Model([frames, pitch], [mean, logvar], name="encoder")


def build_decoder(features, *, z_dim=16, width=256, kernel=5, warp=8.0):
    z = keras.Input((None, z_dim), name="z")
    pitch = keras.Input((features + PITCH_EXTRA,), name="pitch")
    pitch_seq = BroadcastTime(name="pitch_time")([z, pitch])
    p = layers.Dense(64, activation="gelu", name="pitch_embed")(TakeLast(PITCH_EXTRA, name="pitch_smooth")(pitch))
    h = layers.Concatenate(name="with_pitch")([z, BroadcastTime(name="pitch_embed_time")([z, p])])
    h = layers.Conv1D(width, kernel, padding="same", activation="gelu", name="conv1")(h)
    h = layers.Conv1D(2 * width, kernel, padding="same", activation="gelu", name="conv2")(h)
    out = HarmonicOutput(features, warp=warp, name="frames")([h, pitch_seq])
    return keras.Model([z, pitch], out, name="decoder")


@keras.saving.register_keras_serializable(package=PACKAGE)
class VAE(keras.Model):
    """Encoder + decoder trained on normalised frames with a Gaussian likelihood and β-KL.

    Inputs are dicts ``{"frames": [B, T, F], "pitch": [B, F + 4]}`` (:func:`specsynth.pitch.pitch_features`). The loss per frame is
    ``0.5 * sum_f (x - x_hat)^2 + beta_t * KL(q(z|x) || N(0, I))`` with ``beta_t`` rising linearly
    from 0 to ``beta`` over ``warmup_steps`` optimizer steps (KL warm-up).
    """

    def __init__(self, features, z_dim=16, width=256, kernel=5, beta=1.0, warmup_steps=2000, seed=0, warp=8.0,
                 encoder=None, decoder=None, **kwargs):
        super().__init__(**kwargs)
        self.features, self.z_dim, self.width, self.kernel = features, z_dim, width, kernel
        self.beta, self.warmup_steps, self.seed, self.warp = float(beta), int(warmup_steps), int(seed), float(warp)
        self.encoder = encoder or build_encoder(features, z_dim=z_dim, width=width, kernel=kernel)
        self.decoder = decoder or build_decoder(features, z_dim=z_dim, width=width, kernel=kernel, warp=warp)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._total_tracker = keras.metrics.Mean(name="loss")
        self._recon_tracker = keras.metrics.Mean(name="recon")
        self._kl_tracker = keras.metrics.Mean(name="kl")

    def call(self, inputs, training=False):
        mean, logvar = self.encoder([inputs["frames"], inputs["pitch"]], training=training)
        if training:
            eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
            z = mean + ops.exp(0.5 * logvar) * eps
        else:
            z = mean
        recon = self.decoder([z, inputs["pitch"]], training=training)
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
            "features": self.features, "z_dim": self.z_dim, "width": self.width, "kernel": self.kernel,
            "beta": self.beta, "warmup_steps": self.warmup_steps, "seed": self.seed, "warp": self.warp,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
