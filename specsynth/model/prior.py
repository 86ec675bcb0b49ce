"""An LSTM prior over latent sequences: p(z_t | z_<t, pitch).

Its "latents" are the model's latent rows ``[z + 2]``: the encoder's means and the pitch contour's
two columns (f0, voicing), so a walk moves in pitch as its training sounds do (glides, vibrato,
voiced and unvoiced stretches); ``pitch`` is the sound's label (:func:`specsynth.pitch.label_of`).
Trained on the training set's rows (normalised per dimension), it predicts the next frame as a mixture of ``mixtures`` diagonal Gaussians (``mixtures=1`` is a single
Gaussian). Sampling runs the LSTM recurrence in NumPy from the trained weights, so it is fast and
needs no TensorFlow graph per step.

With ``starts`` (the default for new priors) it is trained on two kinds of window: each sound
from its onset, as long as a whole note, after a start frame from which the first latent is
predicted (every dimension at ``START``, where no normalised latent lies, so it cannot be taken
for one); and shorter windows cut anywhere in a sound, without it. Padding of short windows is
masked out of the loss. An unprimed walk starts from the start frame, so it begins as sounds
begin, and a prime is read after it; the windows cut anywhere teach it to go on from any history,
as a texture loop grown past a sound's length must. A prior without ``starts`` is trained on
windows cut anywhere only and sampled without a start frame.

A prior trained only on true histories (teacher forcing) has never seen its own samples as
input, and its free-running walks drift away from the data. With ``sampled_inputs`` > 0 it is
trained with parallel scheduled sampling (Duckworth et al., 2019): a first pass on the true
history draws a one-step sample at every frame, that fraction of the input frames is replaced by
those samples, and the loss is taken on a second pass over the mixed history. With
``sampled_passes`` > 1 this is repeated: each pass draws from the predictions of the pass before,
which read a history already partly sampled, so the history the loss sees holds samples drawn
after samples, as in a free-running walk, and the prior learns to recover from its own drift.

Scheduled sampling narrows that drift but does not close it (figures in the model card), so
:func:`walk_calibration` measures what is left at the end of training (walks as long as, and at
the pitch of, each training sequence, against the sequences themselves) as a per-dimension affine
map, which :class:`NumpyPrior` applies to what it returns (not to what it feeds back, so the walk's
own dynamics are those trained).
"""
from __future__ import annotations

import numpy as np

from ._keras import keras
from keras import layers, ops

from ..pitch import UNPITCHED
from .vae import PACKAGE, BroadcastTime

LOG_2PI = float(np.log(2 * np.pi))
CLIP = 3.5  # sampled normalised latents are kept within +-CLIP
LOGVAR_RANGE = (-9.0, 5.0)  # predicted log-variances are clipped to this in the loss and in sampling
START = -4.0  # the start frame before each sound (priors trained with ``starts``), beyond CLIP
WALK_SCALE_RANGE = (0.5, 2.0)  # a walk calibration's scales are kept within this


def prior_pitch_features(pitch):
    """``[..., 2]``: (midi / 127, unpitched flag) for label(s) 0..128."""
    p = np.asarray(pitch, dtype=np.float32)
    unpitched = (p >= UNPITCHED).astype(np.float32)
    return np.stack([np.where(unpitched > 0, 0.0, p / 127.0), unpitched], axis=-1).astype(np.float32)


def windows(sequences, pitches, length, *, starts, onset_weight=0.0, onset_frames=1.0):
    """Training windows ``{"z": [n, length, z], "pitch": [n, 2], "mask": [n, length - 1]}`` over
    normalised latent sequences ``[t, z]``: cut with half-overlap (the last one ending with the
    sequence), a short one padded by repeating its last frame. ``mask`` weighs each target in the
    loss: 0 on padding, 1 elsewhere. With ``starts``, each sequence is preceded by the start frame
    (``START``), and the ``t``-th frame after it weighs ``1 + onset_weight * exp(-t / onset_frames)``:
    a sound's first frames are a small share of all targets, and without more weight a walk's
    start is fitted worst, though everything after it follows from it. ``onset_frames`` is a
    count of frames (the trainer's ``TrainSettings.prior_onset_seconds`` at the frame rate)."""
    z, mask, labels = [], [], []
    onset = 1.0 + onset_weight * np.exp(-np.arange(length - 1) / onset_frames)
    for seq, pitch in zip(sequences, pitches):
        seq = np.asarray(seq, np.float32)
        if starts:
            seq = np.concatenate([np.full((1, seq.shape[1]), START, np.float32), seq])
        begins = list(range(0, max(len(seq) - length, 0) + 1, max(length // 2, 1)))
        if begins[-1] + length < len(seq):
            begins.append(len(seq) - length)
        for b in begins:
            window = seq[b : b + length]
            weight = (np.arange(1, length) < len(window)).astype(np.float32)
            mask.append(weight * onset if starts and b == 0 else weight)
            z.append(np.concatenate([window, np.repeat(window[-1:], length - len(window), axis=0)]))
            labels.append(pitch)
    return {"z": np.stack(z), "pitch": prior_pitch_features(labels), "mask": np.stack(mask).astype(np.float32)}


def build_prior_net(z_dim, *, units=256, mixtures=1):
    z = keras.Input((None, z_dim), name="z")
    pitch = keras.Input((2,), name="pitch")
    h = layers.Concatenate(name="with_pitch")([z, BroadcastTime(name="pitch_time")([z, pitch])])
    h = layers.LSTM(units, return_sequences=True, name="lstm")(h)
    logits = layers.Dense(mixtures, name="logits")(h)
    means = layers.Dense(mixtures * z_dim, name="means")(h)
    logvars = layers.Dense(mixtures * z_dim, name="logvars")(h)
    return keras.Model([z, pitch], [logits, means, logvars], name="prior_net")


@keras.saving.register_keras_serializable(package=PACKAGE)
class LatentPrior(keras.Model):
    """Next-frame mixture density over normalised latents. Inputs ``{"z": [B, T, z], "pitch": [B, 2]}``
    and optionally ``"mask": [B, T - 1]`` (1 where ``z[:, 1:]`` is a real frame, 0 for padding);
    the loss is the negative log-likelihood (nats per frame) of ``z[:, 1:]`` given ``z[:, :-1]``."""

    def __init__(self, z_dim, units=256, mixtures=1, sampled_inputs=0.0, sampled_passes=1, seed=0, starts=False,
                 net=None, **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.units, self.mixtures = int(z_dim), int(units), int(mixtures)
        self.sampled_inputs, self.sampled_passes = float(sampled_inputs), int(sampled_passes)
        self.seed, self.starts = int(seed), bool(starts)
        self.net = net or build_prior_net(self.z_dim, units=self.units, mixtures=self.mixtures)
        # only a prior trained with sampled inputs has a seed state
        self.seed_generator = keras.random.SeedGenerator(seed) if self.sampled_inputs > 0 else None

    def _predict(self, history, pitch, training):
        logits, means, logvars = self.net([history, pitch], training=training)
        return {"logits": logits, "means": means, "logvars": logvars}

    def call(self, inputs, training=False):
        z = inputs["z"]
        out = self._predict(z[:, :-1], inputs["pitch"], training)
        if not training or self.seed_generator is None:
            return out
        # parallel scheduled sampling: some of the history replaced by the model's own samples, each
        # pass drawing them from the predictions of the pass before
        for _ in range(self.sampled_passes):
            drawn = ops.stop_gradient(self._draw(out))  # [B, T - 1, z]: a sample of z[:, 1:]
            shape = ops.shape(drawn)
            replace = keras.random.uniform((shape[0], shape[1], 1), seed=self.seed_generator) < self.sampled_inputs
            history = ops.concatenate([z[:, :1], ops.where(replace, drawn, z[:, 1:])], axis=1)
            out = self._predict(history[:, :-1], inputs["pitch"], training)
        return out

    def _components(self, out):
        """The predicted mixture components: means and clipped log-variances, each ``[B, T, k, z]``."""
        shape = ops.shape(out["means"])
        split = (shape[0], shape[1], self.mixtures, self.z_dim)
        return ops.reshape(out["means"], split), ops.clip(ops.reshape(out["logvars"], split), *LOGVAR_RANGE)

    def _draw(self, out):
        """One sample per frame from the predicted mixtures, clipped like :meth:`NumpyPrior.sample`."""
        means, logvars = self._components(out)
        shape, k = ops.shape(means), self.mixtures
        pick = keras.random.categorical(ops.reshape(out["logits"], (-1, k)), 1, seed=self.seed_generator)
        pick = ops.reshape(ops.one_hot(ops.reshape(pick, (-1,)), k), (shape[0], shape[1], k, 1))
        noise = keras.random.normal(shape, seed=self.seed_generator)
        return ops.clip(ops.sum(pick * (means + ops.exp(0.5 * logvars) * noise), axis=2), -CLIP, CLIP)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        means, logvars = self._components(y_pred)
        t = ops.expand_dims(x["z"][:, 1:], 2)
        comp = -0.5 * ops.sum(LOG_2PI + logvars + ops.square(t - means) * ops.exp(-logvars), axis=-1)
        log_w = ops.log_softmax(y_pred["logits"], axis=-1)
        log_p = ops.logsumexp(log_w + comp, axis=-1)
        if "mask" not in x:
            return -ops.mean(log_p)
        mask = ops.cast(x["mask"], log_p.dtype)
        return -ops.sum(log_p * mask) / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "z_dim": self.z_dim, "units": self.units, "mixtures": self.mixtures,
                "sampled_inputs": self.sampled_inputs, "sampled_passes": self.sampled_passes, "seed": self.seed,
                "starts": self.starts,
                "net": keras.saving.serialize_keras_object(self.net)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["net"] = keras.saving.deserialize_keras_object(config["net"])
        return cls(**config)


class NumpyPrior:
    """The trained prior's weights, run step by step in NumPy for sampling."""

    def __init__(self, prior: LatentPrior, *, walk_scale=None, walk_shift=None):
        """``walk_scale`` and ``walk_shift`` ``[z]`` (normalised units): the map from
        :func:`walk_calibration` applied to every sampled frame; identity if not given."""
        net = prior.net
        lstm = net.get_layer("lstm")
        self.kernel, self.recurrent, self.bias = (np.asarray(w, np.float64) for w in lstm.get_weights())
        self.units, self.z_dim, self.mixtures, self.starts = prior.units, prior.z_dim, prior.mixtures, prior.starts
        self.heads = {name: [np.asarray(w, np.float64) for w in net.get_layer(name).get_weights()]
                      for name in ("logits", "means", "logvars")}
        self.walk_scale = np.ones(self.z_dim) if walk_scale is None else np.asarray(walk_scale, np.float64)
        self.walk_shift = np.zeros(self.z_dim) if walk_shift is None else np.asarray(walk_shift, np.float64)

    def _step(self, x, h, c):
        g = x @ self.kernel + h @ self.recurrent + self.bias
        u = self.units
        i, f, cc, o = (g[..., :u], g[..., u : 2 * u], g[..., 2 * u : 3 * u], g[..., 3 * u :])
        sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
        c = sig(f) * c + sig(i) * np.tanh(cc)
        h = sig(o) * np.tanh(c)
        return h, c

    def _head(self, name, h):
        w, b = self.heads[name]
        return h @ w + b

    def sample(self, n_frames, *, pitch_features, temperature=1.0, seed=0, prime=None):
        """Sample ``[n_frames, z]`` normalised latents, continuing ``prime`` ``[t, z]`` if given.

        ``temperature`` scales the standard deviations and sharpens/flattens the mixture weights
        (logits / temperature); 0 gives the most likely component's mean at every step. ``seed``
        is anything :func:`numpy.random.default_rng` takes. Each returned frame is the sampled
        one through the walk calibration; the LSTM reads the sampled one.
        """
        rng = np.random.default_rng(seed)
        h = np.zeros(self.units)
        c = np.zeros(self.units)
        pf = np.asarray(pitch_features, np.float64)
        x = np.full(self.z_dim, START if self.starts else 0.0)  # the start frame (the mean latent if none)
        out = np.zeros((n_frames, self.z_dim))
        if prime is not None and len(prime):
            history = list(prime[:-1])
            if self.starts:  # trained with a start frame before each sound: read the prime after it
                history.insert(0, x)
            for frame in history:
                h, c = self._step(np.concatenate([frame, pf]), h, c)
            x = np.asarray(prime[-1], np.float64)
        k, d = self.mixtures, self.z_dim
        for t in range(n_frames):
            h, c = self._step(np.concatenate([x, pf]), h, c)
            logits = self._head("logits", h)
            means = self._head("means", h).reshape(k, d)
            std = np.exp(0.5 * np.clip(self._head("logvars", h), *LOGVAR_RANGE)).reshape(k, d)
            if temperature <= 0:
                j = int(np.argmax(logits))
                x = means[j]
            else:
                w = np.exp((logits - logits.max()) / temperature)
                j = rng.choice(k, p=w / w.sum())
                x = means[j] + np.sqrt(temperature) * std[j] * rng.standard_normal(d)
            # Latents are normalised: the training set lies within about +-3. A sampled walk that
            # strays further decodes to noise, so it is held at the edge of the known space.
            x = np.clip(x, -CLIP, CLIP)
            out[t] = np.clip(x * self.walk_scale + self.walk_shift, -CLIP, CLIP)
        return out.astype(np.float32)


def walk_calibration(prior, sequences, pitches, *, seed=0):
    """Per-dimension ``(scale, shift)`` ``[z]`` that map the prior's unprimed walks onto the moments
    of ``sequences`` (normalised latent sequences ``[t, z]``, with their pitch labels): one walk
    as long as each sequence at its pitch, temperature 1, seeded ``(seed, i)``, all pooled; the
    scale is the ratio of standard deviations (kept within :data:`WALK_SCALE_RANGE`: a prior that
    needs more than that is broken, not miscalibrated), the shift moves the walks' mean onto the
    sequences'. ``prior`` is an uncalibrated :class:`NumpyPrior`."""
    walks = np.concatenate([prior.sample(len(seq), pitch_features=prior_pitch_features(pitch), seed=(seed, i))
                            for i, (seq, pitch) in enumerate(zip(sequences, pitches))]).astype(np.float64)
    data = np.concatenate(sequences).astype(np.float64)
    scale = np.clip(data.std(axis=0) / np.maximum(walks.std(axis=0), 1e-6), *WALK_SCALE_RANGE)
    shift = data.mean(axis=0) - scale * walks.mean(axis=0)
    return scale.astype(np.float32), shift.astype(np.float32)
