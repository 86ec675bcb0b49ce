"""The app's costly steps, each cached by what it depends on (see apps/specsynth_app.py).

A sound is rendered (library notes) and encoded once per model; a rendered result is kept per
(sounds, position, settings); the pictures of inputs and corners once per sound.
"""
from __future__ import annotations

import gc

import streamlit as st

import specsynth
from specsynth import metrics, ops, pictures, spectral, ui
from specsynth.soundfont import render_gm

RENDER_CACHE = 64  # rendered results kept per section (a few MB each at most)
STRIP_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the interpolation strip's steps
PAD = pictures.PadLayout()


@st.cache_resource(show_spinner="Loading the model…")
def load_model(path):
    model = specsynth.load(path)
    # Streamlit runs a full garbage collection after every rerun, and with TensorFlow loaded that
    # walks ~440k long-lived objects (200+ ms, holding the GIL, so the new audio waits to be sent).
    # Freezing what exists now (libraries, the model) leaves each collection only the new objects.
    gc.freeze()
    return model


def keep_compiled_kernels():
    """Stop Streamlit from dropping TensorFlow's compiled kernels after every script run.

    Streamlit calls ``keras.backend.clear_session()`` at the end of each run (to free models a
    script built), which clears TensorFlow's kernel cache: the next decode then re-instantiates
    and re-optimizes the decoder graph, ~100 ms of every slider step. This app builds no Keras
    models per run (the one model lives in the resource cache for the server's life), so in the
    app's process that call does nothing.
    """
    from specsynth.model._keras import keras

    keras.backend.clear_session = _keep_session


def _keep_session(*args, **kwargs):
    return None


def model_identity(model):
    """A cache key that changes when the bundle on disk does (a retrained model at the same path)."""
    try:
        stamp = (model.path / "vae.keras").stat().st_mtime_ns
    except OSError:
        stamp = 0
    return f"{model.path.resolve()}@{stamp}"


@st.cache_data(show_spinner=False, max_entries=256)
def library_note(spec, sample_rate):
    """A soundfont note, peak-normalized like the training notes: float32 [n]."""
    return render_gm(ui.parse_library_id(spec), sample_rate)


@st.cache_data(show_spinner=False, max_entries=32)
def read_upload(file_id, name, sample_rate, _data):
    """Decode an upload once per file (keyed by the uploader's file id, not the bytes)."""
    return ui.upload_id(_data), ui.read_upload(_data, name, sample_rate=sample_rate)


@st.cache_data(show_spinner="Encoding…", max_entries=256)
def encode(_model, model_key, sound_id, _samples, pitch):
    """The sound's latents: computed once per (model, sound)."""
    return ops.encode_sound(_model, _samples, pitch=pitch, name=sound_id)


@st.cache_data(show_spinner=False, max_entries=256)
def sound_view(_model, model_key, sound_id, _samples):
    """Player bytes and spectrogram picture of an input sound."""
    frames = spectral.analyze(_samples, _model.config)
    return {"wav": ui.wav_bytes(_samples, _model.sample_rate),
            "png": pictures.spectrogram_png(frames, _model.config)}


def rendered_view(model, r, **extra):
    """What the page shows of an ops.Rendered: WAV bytes, spectrogram PNG, timings and metrics."""
    return {"wav": ui.wav_bytes(r.samples, r.sample_rate), "png": pictures.spectrogram_png(r.frames, model.config),
            "metrics": dict(r.metrics), "params": dict(r.params), "pitch": int(r.pitch), "seconds": r.seconds, **extra}


@st.cache_data(show_spinner=False, max_entries=64)
def reference_log_mel(sound_id, _samples, n, sample_rate):
    """An input sound's log-mel over its first ``n`` samples, once per (sound, length), so each slider
    step analyses only the new mix."""
    return metrics.log_mel(_samples[:n], sample_rate)


def distance(sound_id, samples, estimate, sample_rate):
    n = min(len(samples), len(estimate))
    ref = reference_log_mel(sound_id, samples, n, sample_rate)
    return metrics.log_mel_distance_from(ref, estimate[:n], sample_rate)


@st.cache_data(show_spinner=False, max_entries=RENDER_CACHE)
def render_interpolation(_model, model_key, _a, _b, a_id, b_id, alpha, mode, method, n_iter):
    r = ops.interpolate(_model, _a, _b, alpha, mode=mode, method=method, n_iter=n_iter)
    sr = _model.sample_rate
    distances = {"to A": distance(a_id, _a.samples, r.samples, sr), "to B": distance(b_id, _b.samples, r.samples, sr)}
    return rendered_view(_model, r, distances=distances)


@st.cache_data(show_spinner="Drawing the strip…", max_entries=16)
def interpolation_strip(_model, model_key, _a, _b, a_id, b_id, mode):
    """Spectrograms of the mix at each of STRIP_ALPHAS, once per pair and mix path (the decoder's
    frames: a picture needs no phase reconstruction)."""
    frames = [ops.mix_frames(_model, [_a, _b], [1 - a, a], mode=mode) for a in STRIP_ALPHAS]
    return pictures.strip_png(frames, _model.config, [f"alpha {a:g}" for a in STRIP_ALPHAS])


@st.cache_data(show_spinner=False, max_entries=256)
def corner_thumb(_model, model_key, sound_id, _samples):
    return pictures.spectrogram_rgb(spectral.analyze(_samples, _model.config), _model.config, height=PAD.thumb)


@st.cache_data(show_spinner=False, max_entries=RENDER_CACHE)
def render_xy(_model, model_key, _corners, corner_ids, x, y, pitch, mode, method, n_iter):
    r = ops.mix_xy(_model, _corners, x, y, pitch=pitch, mode=mode, method=method, n_iter=n_iter)
    return rendered_view(_model, r)


@st.cache_data(show_spinner=False, max_entries=RENDER_CACHE)
def render_loop(_model, model_key, _seed_sound, seed_id, seconds, temperature, seed, method, n_iter):
    r = ops.loop(_model, _seed_sound, seconds=seconds, temperature=temperature, seed=seed, method=method,
                 n_iter=n_iter)
    return rendered_view(_model, r)
