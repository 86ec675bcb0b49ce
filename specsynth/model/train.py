"""Training: the VAE, then the LSTM prior on the VAE's latents, with atomic per-epoch checkpoints.

Work in progress lives in ``OUT.partial/`` beside the bundle: ``state.json`` (stage, epochs done,
split, normalisation) and ``vae.keras`` / ``prior.keras`` (model + optimizer state), each replaced
atomically at the end of every epoch. ``resume=True`` continues from there; a killed run never
touches ``OUT`` itself, which is written only when training has finished. An epoch whose loss goes
non-finite is never saved: training goes back to the last saved epoch and tries again with
another shuffle order (:func:`_fit_guarded`).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, OutputError, TrainingError
from ..pitch import pitch_features


CALIBRATION_WALKS = 1000  # the most prior walks the walk calibration runs


@dataclass
class TrainSettings:
    """Hyperparameters; the defaults train the pretrained model on 2 CPU cores."""

    z_dim: int = 16
    width: int = 256
    kernel: int = 5
    beta: float = 0.05
    warmup_steps: int = 1500
    epochs: int = 20
    batch_size: int = 32
    segment_frames: int = 64
    learning_rate: float = 1e-3
    clip_norm: float = 2000.0  # the VAE's gradients are scaled down to this global norm, if above it
    prior_units: int = 256
    prior_mixtures: int = 4
    prior_epochs: int = 12
    prior_segment_frames: int = 256  # windows from each sound's onset (after the start frame)
    prior_anywhere_frames: int = 128  # and windows cut anywhere in it (0: onset windows only)
    prior_onset_weight: float = 15.0  # extra loss weight on a sound's first frames (see prior.windows)
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
        if self.prior_segment_frames < 1 or self.prior_anywhere_frames < 0 or self.prior_onset_weight < 0:
            raise ConfigError("prior_segment_frames must be >= 1, prior_anywhere_frames and prior_onset_weight >= 0")
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


def _atomic_json(path, data):
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _atomic_save(model, path):
    tmp = path.with_name(f".{path.stem}.part.keras")
    model.save(tmp)
    os.replace(tmp, path)


def split_items(items, val_fraction, seed):
    """Deterministic split of item indices into (train, val)."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = int(round(len(items) * val_fraction)) if len(items) > 1 else 0
    n_val = min(n_val, len(items) - 1)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def _checkpoint(keras, model, model_path, state, state_path, stage, elapsed):
    """A Keras callback: after each epoch save the model, then the state, both atomically.

    The state is written second, so it never claims an epoch whose model is not on disk. A batch
    whose loss is not finite stops training, and that epoch is not saved (``diverged`` holds it)."""

    class Checkpoint(keras.callbacks.Callback):
        diverged = None

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not np.isfinite(float(loss)):
                self.diverged = self.epoch
                self.model.stop_training = True

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            if self.diverged is not None:
                return
            _atomic_save(model, model_path)
            state[f"{stage}_epochs_done"] = epoch + 1
            state["elapsed_s"] = elapsed()
            state.setdefault("history", {}).setdefault(stage, []).append(
                {k: float(v) for k, v in (logs or {}).items()})
            _atomic_json(state_path, state)

    return Checkpoint()


RESTARTS = 2  # times a stage goes back to its last saved epoch after its loss went non-finite


def _fit_guarded(keras, model, *, restore, path, stage, state, state_path, train_data, validation, epochs,
                 elapsed, log, verbose):
    """Fit ``model`` up to ``epochs``, saving every epoch (see :func:`_checkpoint`); returns the model.

    ``train_data(attempt)`` gives the training dataset. When a batch's loss goes non-finite (a
    loss spike that Adam turned into NaN weights), the epoch is dropped and training goes back to
    the last saved epoch (``restore()`` gives the model as saved there) with ``train_data(attempt
    + 1)``, another shuffle order; after :data:`RESTARTS` such restarts it is a :class:`TrainingError`."""
    done = f"{stage}_epochs_done"
    for attempt in range(RESTARTS + 1):
        cb = _checkpoint(keras, model, path, state, state_path, stage, elapsed)
        model.fit(train_data(attempt), validation_data=validation, epochs=epochs, shuffle=False,
                  initial_epoch=state[done], callbacks=[cb, _Eta(keras, log)], verbose=verbose)
        if cb.diverged is None:
            return model
        if attempt == RESTARTS:
            break
        log(f"{stage}: the loss went non-finite in epoch {cb.diverged + 1}; going back to epoch "
            f"{state[done]} and trying again with another shuffle order")
        model = restore()
    raise TrainingError(f"the {stage}'s loss went non-finite {RESTARTS + 1} times in epoch {state[done] + 1} "
                        "(a lower --learning-rate may help)")


def _strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def train(dataset, out, *, settings=None, resume=False, overwrite=False, verbose=1, log=print):
    """Train a bundle from a :class:`specsynth.data.Dataset` (or a dataset folder path) into ``out``.

    Returns the loaded :class:`specsynth.model.bundle.Model`.
    """
    from ..data import Dataset
    from .dataset import segment_rows, tf_dataset
    from ..spectral import active_span

    settings = settings or TrainSettings()
    settings.check()
    out = Path(out)
    work = out.with_name(out.name + ".partial")
    state_path = work / "state.json"
    if out.exists() and not overwrite:
        raise OutputError("already exists (use --overwrite to replace it)", path=out)
    if work.exists() and not resume:
        shutil.rmtree(work)
    if resume and not state_path.exists():
        raise ConfigError(f"nothing to resume: {state_path} does not exist")
    data = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    config = data.config
    # TensorFlow loads only now, so the user errors above are reported without waiting for it
    from ._keras import keras
    from .bundle import load_bundle, save_bundle
    from .prior import LatentPrior, NumpyPrior, walk_calibration, windows
    from .vae import VAE

    started = time.time()

    if resume:
        state = json.loads(state_path.read_text())
        saved = TrainSettings(**{k: v for k, v in state["settings"].items()})
        settings = saved  # a resumed run continues with the settings it started with
        log(f"resuming: VAE epoch {state.get('vae_epochs_done', 0)}/{settings.epochs}, "
            f"prior epoch {state.get('prior_epochs_done', 0)}/{settings.prior_epochs}")
    else:
        work.mkdir(parents=True)
        train_idx, val_idx = split_items(data.items, settings.val_fraction, settings.seed)
        train_frames = np.concatenate([data.item_frames(data.items[i]) for i in train_idx])
        state = {
            "settings": asdict(settings), "train_items": train_idx, "val_items": val_idx,
            # One offset and one scale for every feature (the decoder's envelopes are smooth, so
            # the targets should not carry a per-bin offset it cannot draw).
            "frame_mean": np.full(config.n_features, float(train_frames.mean())).tolist(),
            # Per-feature scales would blow up the bins that are nearly always at the floor in
            # training (a held-out sound with energy there lands hundreds of "stds" out); a
            # shared one keeps the loss in plain dB^2, like the metrics.
            "frame_std": np.full(config.n_features, max(float(train_frames.std()), 1e-2)).tolist(),
            "vae_epochs_done": 0, "prior_epochs_done": 0, "elapsed_s": 0.0,
        }
        _atomic_json(state_path, state)
    elapsed_before = state.get("elapsed_s", 0.0)

    def elapsed():
        return elapsed_before + time.time() - started

    keras.utils.set_random_seed(settings.seed)
    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except Exception:  # determinism is best-effort; never fatal
        pass
    strategy = _strategy(settings.strategy)
    frame_mean = np.asarray(state["frame_mean"], np.float32)
    frame_std = np.asarray(state["frame_std"], np.float32)

    def vae_inputs(indices, **options):
        """The segments of these items as a dataset: rows into one table of their frames."""
        table = np.concatenate([data.item_frames(data.items[i]) for i in indices])
        rows, owner = segment_rows([data.items[i]["frames"] for i in indices], settings.segment_frames)
        labels = np.asarray([data.items[i]["pitch"] for i in indices])[owner]
        return tf_dataset({"frames": rows, "pitch": pitch_features(labels)}, batch_size=settings.batch_size,
                          rows=(table, frame_mean, frame_std), **options)

    def vae_steps():
        rows, _ = segment_rows([data.items[i]["frames"] for i in train_idx], settings.segment_frames)
        return settings.epochs * -(-len(rows) // settings.batch_size)

    train_idx, val_idx = state["train_items"], state["val_items"]

    def restore(stage, path, build):
        """The stage's model as of its last saved epoch, or built anew before the first."""
        if state[f"{stage}_epochs_done"] == 0:
            return build()
        with strategy.scope():
            return keras.saving.load_model(path, safe_mode=True)

    def fit(model, stage, path, build, train_data, validation, epochs):
        try:
            return _fit_guarded(keras, model, restore=lambda: restore(stage, path, build), path=path, stage=stage,
                                state=state, state_path=state_path, train_data=train_data, validation=validation,
                                epochs=epochs, elapsed=elapsed, log=log, verbose=verbose)
        except TrainingError as error:
            if state["vae_epochs_done"]:
                raise TrainingError(f"{error}; {work} keeps the last complete epoch for --resume", path=out) from None
            shutil.rmtree(work, ignore_errors=True)  # nothing was saved that a resumed run could start from
            raise TrainingError(str(error), path=out) from None

    # ---- stage 1: VAE ----------------------------------------------------------------------
    vae_path = work / "vae.keras"

    def build_vae():
        with strategy.scope():
            # the output layer works in dB: it is given the frames' (global) normalisation
            vae = VAE(config.to_dict(), z_dim=settings.z_dim, width=settings.width, kernel=settings.kernel,
                      beta=settings.beta, warmup_steps=settings.warmup_steps, seed=settings.seed,
                      db_offset=float(frame_mean[0]), db_scale=float(frame_std[0]))
            # Gradients of the pretrained recipe have a global norm of about 400-600 (p90 about 1000,
            # the largest of 600 early steps 1800); only a spike beyond that is scaled down, before
            # Adam turns it into a jump of the weights the run may not come back from.
            # The rate falls to 5% over the run (cosine), as the prior's: a constant one left the
            # last epochs' weights wherever Adam's noise put them.
            rate = keras.optimizers.schedules.CosineDecay(settings.learning_rate, max(vae_steps(), 1), alpha=0.05)
            vae.compile(optimizer=keras.optimizers.Adam(rate, global_clipnorm=settings.clip_norm))
        return vae

    vae = restore("vae", vae_path, build_vae)
    if state["vae_epochs_done"] < settings.epochs:
        log(f"VAE: {len(train_idx)} training items ({vae_steps() // settings.epochs} batches of "
            f"{settings.batch_size} segments of {settings.segment_frames} frames), {len(val_idx)} held out")
        vae = fit(vae, "vae", vae_path, build_vae, lambda attempt: vae_inputs(train_idx, seed=settings.seed + attempt),
                  vae_inputs(val_idx, shuffle=False) if val_idx else None, settings.epochs)

    # ---- stage 2: prior on encoder means ---------------------------------------------------
    def encode_item(i):
        item = data.items[i]
        x = ((data.item_frames(item) - frame_mean) / frame_std)[None]
        pf = pitch_features(item["pitch"])[None]
        return np.asarray(vae.encoder([x, pf], training=False)[0])[0]

    # A subset of the sounds, seen more often, fits their paths more tightly (see the recipe).
    prior_idx = train_idx[:: settings.prior_every]
    # The prior learns how *sounding* latents move: release tails and silence would teach it that
    # everything fades out, and a texture loop grown from it would too.
    latents = {i: encode_item(i)[active_span(data.item_frames(data.items[i]))] for i in prior_idx + val_idx}
    train_lat = np.concatenate([latents[i] for i in prior_idx])
    latent_mean, latent_std = train_lat.mean(axis=0), np.maximum(train_lat.std(axis=0), 1e-3)

    def sequences(indices):
        """The sounds' normalised latent sequences and their pitch labels."""
        return [(latents[i] - latent_mean) / latent_std for i in indices], [data.items[i]["pitch"] for i in indices]

    def prior_inputs(indices):
        # Each sound from its onset, after the start frame an unprimed walk also begins from, so
        # walks begin as sounds do; and windows cut anywhere (no start frame), so the prior also
        # learns to go on from any history, as a texture loop grown past a sound's length must.
        seqs, pitches = sequences(indices)
        parts = [windows(seqs, pitches, settings.prior_segment_frames + 1, starts=True,
                         onset_weight=settings.prior_onset_weight)]
        if settings.prior_anywhere_frames:
            parts.append(windows(seqs, pitches, settings.prior_anywhere_frames + 1, starts=False))
        return parts

    p_train = prior_inputs(prior_idx)
    p_val = tf_dataset(prior_inputs(val_idx), batch_size=settings.batch_size, shuffle=False) if val_idx else None
    prior_path = work / "prior.keras"

    def build_prior():
        with strategy.scope():
            prior = LatentPrior(settings.z_dim, units=settings.prior_units, mixtures=settings.prior_mixtures,
                                sampled_inputs=settings.prior_sampled_inputs,
                                sampled_passes=settings.prior_sampled_passes, seed=settings.seed, starts=True)
            # The learning rate falls to 5% over the run (cosine): walks depend on where the last
            # steps leave the weights, and a constant rate leaves them anywhere in Adam's noise.
            steps = settings.prior_epochs * sum(-(-len(part["z"]) // settings.batch_size) for part in p_train)
            rate = keras.optimizers.schedules.CosineDecay(settings.learning_rate, max(steps, 1), alpha=0.05)
            prior.compile(optimizer=keras.optimizers.Adam(rate))
        return prior

    prior = restore("prior", prior_path, build_prior)
    if state["prior_epochs_done"] < settings.prior_epochs:
        log(f"prior: {len(p_train[0]['z'])} onset windows of up to {settings.prior_segment_frames} frames"
            + (f", {len(p_train[1]['z'])} of {settings.prior_anywhere_frames}" if len(p_train) > 1 else ""))
        prior = fit(prior, "prior", prior_path, build_prior,
                    lambda attempt: tf_dataset(p_train, batch_size=settings.batch_size, seed=settings.seed + attempt),
                    p_val, settings.prior_epochs)
    elif state["prior_epochs_done"] == 0:  # prior_epochs == 0: build it untrained so the bundle is whole
        prior({"z": p_train[0]["z"][:1], "pitch": p_train[0]["pitch"][:1]})
    walk = {}
    if settings.prior_epochs:
        # what the trained walks still miss of their training sequences' moments (prior.walk_calibration),
        # from at most CALIBRATION_WALKS of them (the recipe's 957 take 17 s on 2 cores)
        t = time.time()
        every = -(-len(prior_idx) // CALIBRATION_WALKS)
        scale, shift = walk_calibration(NumpyPrior(prior), *sequences(prior_idx[::every]), seed=settings.seed)
        walk = {"walk_scale": scale, "walk_shift": shift}
        log(f"walk calibration ({time.time() - t:.0f} s): scale {scale.min():.2f}..{scale.max():.2f}, "
            f"shift within {np.abs(shift).max():.2f} std")

    # ---- held-out metrics and the bundle ---------------------------------------------------
    metrics = {}
    if val_idx:
        metrics["val_vae"] = {k: float(x) for k, x in vae.evaluate(vae_inputs(val_idx, shuffle=False), verbose=0,
                                                                    return_dict=True).items()}
        if p_val is not None and settings.prior_epochs:
            metrics["val_prior_nll"] = float(prior.evaluate(p_val, verbose=0))
    elapsed_s = elapsed()
    hyper = {k: v for k, v in asdict(settings).items() if k not in ("strategy", "extra")}
    labels, counts = np.unique([data.items[i]["pitch"] for i in train_idx], return_counts=True)
    training = {
        "items": len(data.items), "train_items": len(train_idx), "val_items": len(val_idx),
        "pitch_counts": {str(k): int(n) for k, n in zip(labels, counts)},  # training sounds per label
        "val_names": [data.items[i]["name"] for i in val_idx][:5000],
        "data_summary": data.summary, "seconds": round(elapsed_s, 1), "seed": settings.seed,
        "machine": _machine(), "history": state.get("history", {}),
    }
    norm = {"frame_mean": frame_mean, "frame_std": frame_std, "latent_mean": latent_mean.astype(np.float32),
            "latent_std": latent_std.astype(np.float32), **walk}
    save_bundle(out, config=config, hyper=hyper, training=training, vae=vae, prior=prior, norm=norm,
                metrics=metrics, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {out} ({elapsed_s / 60:.1f} min)")
    return load_bundle(out)


def _machine():
    import platform

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def _Eta(keras, log):
    class Eta(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0 = time.time()
            self.first = None

        def on_epoch_end(self, epoch, logs=None):
            if self.first is None:
                self.first = epoch
            done = epoch - self.first + 1
            left = self.params["epochs"] - epoch - 1
            eta = (time.time() - self.t0) / done * left
            log(f"  epoch {epoch + 1}/{self.params['epochs']} done, ETA {eta / 60:.1f} min for this stage")

    return Eta()
