"""Model bundles: one folder holding everything a trained model needs, validated on load.

::

    BUNDLE/
      config.json    format version, SpectralConfig, model hyperparameters (the architecture's
                     among them, see settings.ARCHITECTURE), training summary
      vae.keras      the VAE (encoder + decoder)
      prior.keras    the LSTM latent prior
      norm.npz       frame mean/std [F]; latent mean/std and the prior's walk scale/shift
                     [z + 2] (the latents and the contour's two columns)
      metrics.json   held-out figures measured at the end of training
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import audio, phase, spectral
from ..errors import BundleError, ConfigError, os_reason
from ..files import atomic_folder, shipped, why_unreadable
from ..limits import check_temperature
from ..pitch import CONTOUR_COLUMNS, HOLD_PITCH, UNPITCHED, Contour, check_pitch, label_of, track_frames, transpose
from .settings import ARCHITECTURE

FORMAT_VERSION = 3  # 3: conditioned on a pitch contour per frame; residual and bounded output
FILES = ("config.json", "vae.keras", "prior.keras", "norm.npz", "metrics.json")
PRETRAINED_ENV = "SPECSYNTH_PRETRAINED"  # overrides where "pretrained" points
# A render's peak never passes +6 dBFS. The output layer bounds every frame's power, but the
# phase a reconstruction finds can line partials up into pulses whose peak no magnitude bound
# holds (a flat harmonic spectrum in phase peaks some 20 dB over its RMS): such a render is
# turned down as a whole to this ceiling, never clipped.
PEAK_CEILING = 2.0
# Classes a bundle's .keras files may hold: Keras's own (minus Lambda) and ours.
OURS = {"specsynth>VAE", "specsynth>LatentPrior", "specsynth>BroadcastTime", "specsynth>SpectrumOutput",
        "specsynth>ContourView", "specsynth>ContourFeatures"}
FORBIDDEN = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
NORM_KEYS = ("frame_mean", "frame_std", "latent_mean", "latent_std")
WALK_KEYS = ("walk_scale", "walk_shift")  # optional in norm.npz


def architecture(hyper):
    """The architecture settings of a bundle's config.json ``"model"`` dict, each one it lacks
    taken from :data:`specsynth.model.settings.ARCHITECTURE`."""
    return {k: type(default)(hyper.get(k, default)) for k, default in ARCHITECTURE.items()}


def resolve(path):
    """``"pretrained"`` (or None) -> the pretrained bundle; anything else is a folder path.

    The pretrained bundle is ``$SPECSYNTH_PRETRAINED`` if set, else the one shipped with the
    package (:func:`specsynth.files.shipped`).
    """
    if path is None or str(path) == "pretrained":
        return Path(os.environ.get(PRETRAINED_ENV) or shipped("pretrained"))
    return Path(path)


def _class_names(node, found):
    if isinstance(node, dict):
        if "class_name" in node:
            found.add((node.get("class_name"), node.get("module"), node.get("registered_name")))
        for value in node.values():
            _class_names(value, found)
    elif isinstance(node, list):
        for value in node:
            _class_names(value, found)
    return found


def check_keras_file(path):
    """Refuse a .keras archive that is not one, or that holds a Lambda layer or an unknown class."""
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise BundleError(f"not a valid .keras archive ({exc})", path=path) from None
    for class_name, module, registered in _class_names(config, set()):
        if class_name in FORBIDDEN:
            raise BundleError(f"holds a {class_name} layer, which could run arbitrary code; refused", path=path)
        if registered and registered in OURS:
            continue
        if module and (module == "keras" or str(module).startswith("keras.")) and not (
            registered and "Custom>" in str(registered)
        ):
            continue
        if module is None and registered is None:
            continue  # plain nested configs (initializers given by name, dtype policies)
        raise BundleError(f"holds an unknown class {class_name!r} ({registered or module}); refused", path=path)


def _read_json(path, name):
    """``path/name`` as a JSON object; BundleError (never an OSError or a decode error) otherwise."""
    try:
        data = json.loads((path / name).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise BundleError(f"{name} cannot be read ({os_reason(exc)})", path=path) from None
    except UnicodeDecodeError:
        raise BundleError(f"{name} is not UTF-8 text", path=path) from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{name} is not valid JSON ({exc.msg})", path=path) from None
    if not isinstance(data, dict):
        raise BundleError(f"{name} must hold a JSON object, not a {type(data).__name__}", path=path)
    return data


def _read_norm(path):
    """norm.npz's arrays as float32 (the walk calibration only if present); BundleError otherwise."""
    try:
        with np.load(path / "norm.npz", allow_pickle=False) as data:
            missing = [k for k in NORM_KEYS if k not in data]
            if missing:
                raise BundleError(f"norm.npz is invalid (missing {', '.join(missing)})", path=path)
            # the prior's walk calibration (prior.walk_calibration); bundles before it have none
            return {k: np.asarray(data[k], np.float32) for k in (*NORM_KEYS, *WALK_KEYS) if k in data}
    except (zipfile.BadZipFile, ValueError, TypeError, EOFError, KeyError) as exc:
        raise BundleError(f"norm.npz is invalid ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                          path=path) from None
    except OSError as exc:
        raise BundleError(f"norm.npz cannot be read ({os_reason(exc)})", path=path) from None


def check_bundle(path="pretrained"):
    """Check a bundle's files and their types without TensorFlow; raises BundleError with the
    reason, else returns what it read: ``{"path", "meta", "metrics", "config", "hyper",
    "architecture", "norm"}``.

    The one check of a bundle's files: :func:`load_bundle` starts with it, and the render planner
    runs it on each bundle a manifest names, so a malformed bundle fails only its own jobs.
    """
    path = resolve(path)
    problem = why_unreadable(path)
    if problem is not None:  # missing, a symlink loop, a folder one may not enter
        raise BundleError("no such model bundle" if problem == "no such file" else f"cannot be read ({problem})",
                          path=path)
    if not path.is_dir():
        raise BundleError("a model bundle is a folder", path=path)
    missing = [f for f in FILES if not (path / f).exists()]
    if missing:
        raise BundleError(f"incomplete bundle: missing {', '.join(missing)}", path=path)
    meta = _read_json(path, "config.json")
    metrics = _read_json(path, "metrics.json")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"unknown bundle format version {version!r} (this specsynth reads {FORMAT_VERSION})",
                          path=path)
    try:
        if not isinstance(meta.get("spectral"), dict) or not isinstance(meta.get("model"), dict):
            raise ConfigError("'spectral' and 'model' must be objects")
        config = spectral.SpectralConfig.from_dict(meta["spectral"])
        arch = architecture(meta["model"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise BundleError(f"config.json is invalid ({exc})", path=path) from None
    for name in ("vae.keras", "prior.keras"):
        check_keras_file(path / name)
    return {"path": path, "meta": meta, "metrics": metrics, "config": config, "hyper": meta["model"],
            "architecture": arch, "norm": _read_norm(path)}


class Model:
    """A loaded bundle. Arrays: samples ``[n]``, frames ``[time, F]`` (dB), latents ``[time, z + 2]``.

    Latents are the encoder's means in the VAE's own units with the sound's pitch contour as two
    more columns, f0 (fractional MIDI) and voicing (0..1), one row per frame at
    ``config.frame_rate``: a latent file decodes as the sound it came from, with no pitch given,
    and every edit of latents (mixing, interpolation, a prior walk) moves the contour with them.
    """

    def __init__(self, path, config, meta, vae, prior, norm, metrics):
        self.path = Path(path)
        self.config = config
        self.meta = meta
        self.vae = vae
        self.prior = prior
        self.norm = norm
        self.metrics = metrics
        from .prior import NumpyPrior

        self._numpy_prior = NumpyPrior(prior, walk_scale=norm.get("walk_scale"), walk_shift=norm.get("walk_shift"))
        self._encoder_fn = _graph_function(vae.encoder, (None, None, config.n_features))
        self._decoder_fn = _graph_function(vae.decoder, (None, None, vae.z_dim))

    # -- properties -------------------------------------------------------------------------
    @property
    def sample_rate(self):
        return self.config.sample_rate

    @property
    def z_dim(self):
        """The encoder's latent size (without the contour's columns)."""
        return self.vae.z_dim

    @property
    def latent_width(self):
        """Columns of a latent array: ``z_dim`` plus the contour's two."""
        return self.vae.z_dim + CONTOUR_COLUMNS

    @property
    def frame_rate(self):
        return self.config.frame_rate

    @property
    def architecture(self):
        """``{"env_bands", "harmonics", "warp", "input_warp"}`` from config.json (see :func:`architecture`)."""
        return architecture(self.meta["model"])

    # -- pitch ------------------------------------------------------------------------------
    def pitch_label(self, pitch, samples=None):
        """An int label from ``pitch`` (MIDI 0..127, 128 unpitched, or "auto": the label of the
        samples' tracked contour, :func:`specsynth.pitch.label_of`)."""
        if isinstance(pitch, str) and pitch == "auto":
            if samples is None:
                raise ConfigError("pitch 'auto' needs audio to estimate it from")
            return label_of(self.track(samples))
        if pitch is None:
            return UNPITCHED
        return check_pitch(pitch)

    def track(self, samples):
        """The samples' pitch contour, one row per analysis frame (:func:`specsynth.pitch.track_frames`)."""
        return track_frames(samples, self.config)

    @property
    def walk_pitch(self):
        """The label of a walk given neither a seed nor a pitch (an unseeded loop): unpitched if
        most of the training sounds were, else their median pitch. A bundle that does not count
        its training labels walks unpitched."""
        counts = self.meta.get("training", {}).get("pitch_counts")
        if not counts:
            return UNPITCHED
        pitched = sorted((int(k), int(n)) for k, n in counts.items() if int(k) != UNPITCHED)
        total = sum(n for _, n in pitched)
        if total <= int(counts.get(str(UNPITCHED), 0)):
            return UNPITCHED
        cumulative = np.cumsum([n for _, n in pitched])
        return pitched[int(np.searchsorted(cumulative, total / 2))][0]

    # -- latents and contours ----------------------------------------------------------------
    def split(self, latents):
        """``[..., z + 2]`` latents -> (``[..., z]`` timbre, ``[..., 2]`` contour columns)."""
        latents = np.asarray(latents, np.float32)
        if latents.shape[-1] != self.latent_width:
            raise ConfigError(f"latents must have {self.latent_width} columns ({self.z_dim} latents, then f0 and "
                              f"voicing), got {latents.shape[-1]}")
        return latents[..., : self.z_dim], latents[..., self.z_dim :]

    def with_pitch(self, latents, pitch):
        """Latents with their contour moved to ``pitch``: None keeps it; a MIDI note (int or
        float 0..127) transposes it so its voiced median lands there (vibrato and glides kept);
        ``UNPITCHED`` (128) sets the voicing to 0."""
        if pitch is None or (isinstance(pitch, str) and pitch == "auto"):
            return np.asarray(latents, np.float32)
        z, cols = self.split(latents)
        single = cols.ndim == 2
        cols = cols[None] if single else cols.copy()
        moved = []
        for c in cols:
            contour = Contour.from_columns(c)
            if not isinstance(pitch, float) and check_pitch(pitch) == UNPITCHED:
                contour = Contour(f0=contour.f0, voicing=np.zeros_like(contour.voicing))
            else:
                contour = transpose(contour, float(pitch))
            moved.append(contour.columns())
        moved = np.stack(moved)
        return np.concatenate([z, moved[0] if single else moved], axis=-1).astype(np.float32)

    # -- encode / decode --------------------------------------------------------------------
    def encode_frames(self, frames, *, contour):
        """dB frames ``[time, F]`` and their :class:`~specsynth.pitch.Contour` (or its ``[time, 2]``
        columns) -> latents ``[time, z + 2]`` (encoder means, then the contour's columns)."""
        frames = np.asarray(frames, np.float32)
        cols = contour.columns() if isinstance(contour, Contour) else Contour.from_columns(contour).columns()
        if len(cols) != len(frames):
            raise ConfigError(f"a contour of {len(cols)} frames does not fit {len(frames)} frames")
        x = (frames - self.norm["frame_mean"]) / self.norm["frame_std"]
        mean, _ = self._encoder_fn(x[None], cols[None])
        return np.concatenate([np.asarray(mean)[0], cols], axis=1).astype(np.float32)

    def sounding_latents(self, frames, *, contour):
        """Latents of the sounding part of dB frames ``[time, F]`` (:func:`~specsynth.spectral.active_span`),
        the part of a sound the prior is trained and judged on."""
        return self.encode_frames(frames, contour=contour)[spectral.active_span(frames)]

    def encode(self, samples, *, pitch="auto"):
        """Mono samples at the model's rate -> latents ``[time, z + 2]``, the contour tracked from
        them; ``pitch`` other than "auto" moves it as :meth:`with_pitch` does (a known note
        corrects a tracker's octave, 128 marks the sound unpitched)."""
        samples = np.asarray(samples, np.float32)
        latents = self.encode_frames(spectral.analyze(samples, self.config), contour=self.track(samples))
        return self.with_pitch(latents, pitch)

    def decode(self, latents, *, pitch=None):
        """Latents ``[time, z + 2]`` (or ``[batch, time, z + 2]``) -> dB frames of the same leading
        shape, along their contour, moved to ``pitch`` if given (:meth:`with_pitch`)."""
        z, cols = self.split(self.with_pitch(latents, pitch))
        single = z.ndim == 2
        z, cols = (z[None], cols[None]) if single else (z, cols)
        out = np.asarray(self._decoder_fn(z, np.ascontiguousarray(cols)))
        frames = np.maximum(out * self.norm["frame_std"] + self.norm["frame_mean"], self.config.db_floor)
        return frames[0] if single else frames

    def frames_to_audio(self, frames, *, method=phase.DEFAULT_METHOD, n_iter=None, circular=False, length=None):
        """Decoded dB frames -> samples (:func:`specsynth.phase.frames_to_audio`), turned down as a
        whole if their peak passes :data:`PEAK_CEILING` (+6 dBFS)."""
        y = phase.frames_to_audio(frames, config=self.config, method=method, n_iter=n_iter, circular=circular,
                                  length=length)
        return audio.fit_full_scale(y, ceiling=PEAK_CEILING)

    def synthesize(self, latents, *, pitch=None, method=phase.DEFAULT_METHOD, n_iter=None, circular=False,
                   length=None):
        """Latents -> samples: decode, dB frames -> magnitudes, phase reconstruction."""
        return self.frames_to_audio(self.decode(latents, pitch=pitch), method=method, n_iter=n_iter,
                                    circular=circular, length=length)

    def resynthesize(self, samples, *, pitch="auto", method=phase.DEFAULT_METHOD, n_iter=None):
        """Samples -> encode -> decode -> phase -> samples of the same length (the model's round
        trip), at the input's RMS level (:func:`specsynth.audio.match_rms`; the decoder's own
        level is near it, not on it) within :data:`PEAK_CEILING`."""
        samples = np.asarray(samples, np.float32)
        y = self.synthesize(self.encode(samples, pitch=pitch), method=method, n_iter=n_iter, length=len(samples))
        return audio.fit_full_scale(audio.match_rms(y, samples), ceiling=PEAK_CEILING)

    # -- prior ------------------------------------------------------------------------------
    def sample_prior(self, n_frames, *, pitch=None, temperature=1.0, seed=0, prime=None):
        """Latents ``[n_frames, z + 2]`` (contour included) sampled from the LSTM prior,
        continuing ``prime`` ``[t, z + 2]`` if given; the walk is conditioned on ``pitch``'s label
        (a walk's contour moves as its training sounds' did) and is not transposed."""
        from .prior import prior_pitch_features

        if not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
            raise ConfigError(f"n_frames must be a positive int, got {n_frames!r}")
        temperature = check_temperature(temperature)
        mean, std = self.norm["latent_mean"], self.norm["latent_std"]
        primed = None if prime is None else (np.concatenate(self.split(prime), axis=-1) - mean) / std
        z = self._numpy_prior.sample(int(n_frames), pitch_features=prior_pitch_features(self.pitch_label(pitch)),
                                     temperature=float(temperature), seed=seed, prime=primed)
        z = z * std + mean
        z[:, self.z_dim :] = Contour.from_columns(z[:, self.z_dim :]).columns()
        return z


def _graph_function(network, first_shape):
    """``network([a, contour])`` as one TensorFlow graph, traced once for any batch and length: an
    eager call dispatches every op from Python, which costs more than the maths at these sizes."""
    import tensorflow as tf

    return tf.function(lambda a, contour: network([a, contour], training=False), reduce_retracing=True,
                       input_signature=[tf.TensorSpec(first_shape, tf.float32),
                                        tf.TensorSpec((None, None, CONTOUR_COLUMNS), tf.float32)])


def load_bundle(path="pretrained"):
    """Load and validate a bundle folder; raises BundleError with the reason if it is unusable."""
    bundle = check_bundle(path)
    path, meta, metrics, config, hyper, norm = (bundle[k] for k in ("path", "meta", "metrics", "config", "hyper",
                                                                     "norm"))
    arch = bundle["architecture"]
    from ._keras import keras
    from . import prior as _prior, vae as _vae  # noqa: F401  (registers our classes)

    models = {}
    for name in ("vae", "prior"):
        # Keras warns (on stderr) about weights it cannot place, e.g. in a bundle saved by an older
        # specsynth; the one-line BundleError is the report, and a model left partly at random
        # initial weights is refused rather than used.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                models[name] = keras.saving.load_model(path / f"{name}.keras", safe_mode=True, compile=False)
            except Exception as exc:  # Keras reports many kinds of failure; the reason is what matters
                reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
                raise BundleError(f"{name}.keras cannot be loaded ({reason[:300]})", path=path) from None
        skipped = [str(w.message) for w in caught if "freshly-initialized" in str(w.message)]
        if skipped:
            raise BundleError(f"{name}.keras: some weights do not fit the model ({skipped[0].splitlines()[0][:200]})",
                              path=path)
    vae, prior = models["vae"], models["prior"]
    for name, model, cls in (("vae", vae, _vae.VAE), ("prior", prior, _prior.LatentPrior)):
        if not isinstance(model, cls):
            raise BundleError(f"{name}.keras holds a {type(model).__name__}, not a specsynth {cls.__name__}", path=path)
    problems = []
    if vae.features != config.n_features:
        problems.append(f"vae.keras has {vae.features} features but config.json's spectral config has {config.n_features}")
    width = vae.z_dim + CONTOUR_COLUMNS  # the prior walks the latents and the contour together
    if hyper.get("z_dim") != vae.z_dim or prior.z_dim != width:
        problems.append(f"latent sizes disagree: config.json {hyper.get('z_dim')}, vae {vae.z_dim}, prior {prior.z_dim} "
                        f"(the vae's + {CONTOUR_COLUMNS})")
    if any(norm[k].shape != (config.n_features,) for k in ("frame_mean", "frame_std")) or any(
        norm[k].shape != (width,) for k in ("latent_mean", "latent_std")
    ):
        problems.append("norm.npz shapes do not match the model")
    if any(k in norm and (norm[k].shape != (width,) or not np.all(np.isfinite(norm[k]))) for k in WALK_KEYS):
        problems.append(f"norm.npz's {' and '.join(WALK_KEYS)} must be {width} finite numbers each")
    if arch != vae.architecture:
        problems.append(f"the architecture in config.json {arch} is not vae.keras's {vae.architecture}")
    if problems:
        raise BundleError("config does not match the weights: " + "; ".join(problems), path=path)
    return Model(path, config, meta, vae, prior, norm, metrics)


def _inference_copy(model, example):
    """The same model without its optimizer (whose state would triple the bundle's size)."""
    clone = type(model).from_config(model.get_config())
    clone(example)
    clone.set_weights(model.get_weights())
    return clone


def save_bundle(out, *, config, hyper, training, vae, prior, norm, metrics, overwrite=False):
    """Write a bundle atomically: into a temporary folder beside ``out``, then rename into place."""
    out = Path(out)
    # files of the user's in the folder (a model card, notes) are kept, not replaced
    with atomic_folder(out, overwrite=overwrite, keep_extra=True) as tmp:
        meta = {"format_version": FORMAT_VERSION, "spectral": config.to_dict(), "model": hyper,
                "latent_frame_rate_hz": config.frame_rate, "training": training}
        (tmp / "config.json").write_text(json.dumps(meta, indent=1))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
        np.savez(tmp / "norm.npz", **norm)
        _inference_copy(vae, {"frames": np.zeros((1, 8, vae.features), np.float32),
                              "contour": np.full((1, 8, CONTOUR_COLUMNS), HOLD_PITCH, np.float32)}).save(tmp / "vae.keras")
        _inference_copy(prior, {"z": np.zeros((1, 9, prior.z_dim), np.float32),
                                "pitch": np.zeros((1, 2), np.float32)}).save(tmp / "prior.keras")
    return out
