"""Training: the VAE, then the LSTM prior on the VAE's latents, with atomic per-epoch checkpoints.

:class:`Trainer` runs the stages as public steps (:meth:`~Trainer.prepare`, :meth:`~Trainer.fit_vae`,
:meth:`~Trainer.fit_prior`, :meth:`~Trainer.calibrate`, :meth:`~Trainer.save`); :func:`train` runs
them in order. Work in progress lives in ``OUT.partial/`` beside the bundle: ``state.json``
(stage, epochs done, split, normalisation) and ``vae.keras`` / ``prior.keras`` (model + optimizer
state), each replaced atomically at the end of every epoch. ``resume=True`` continues from there;
a killed run never touches ``OUT`` itself, which is written only when training has finished. An
epoch whose loss goes non-finite is never saved (:func:`specsynth.model.checkpoint.fit_guarded`).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import ConfigError, OutputError, TrainingError
from ..pitch import CONTOUR_COLUMNS
from .checkpoint import RESTARTS, fit_guarded, write_state
from .settings import TrainSettings

__all__ = ["CALIBRATION_WALKS", "RESTARTS", "TrainSettings", "Trainer", "split_items", "train"]

CALIBRATION_WALKS = 1000  # the most prior walks the walk calibration runs (the recipe's 957 take 17 s on 2 cores)


def split_items(items, val_fraction, seed):
    """Deterministic split of item indices into (train, val)."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = int(round(len(items) * val_fraction)) if len(items) > 1 else 0
    n_val = min(n_val, len(items) - 1)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def distribution_strategy(name):
    """The ``tf.distribute`` strategy for ``TrainSettings.strategy``: ``"mirrored"`` over every GPU
    (else every logical CPU), or the default one for None."""
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


class Trainer:
    """One training run from a :class:`specsynth.data.Dataset` (or a dataset folder path) into the
    bundle folder ``out``; the steps run in order, each after the one before it.

    Settings and arguments the user can get wrong are checked here, before TensorFlow loads.
    ``calibration_walks`` bounds the sounds the walk calibration walks (every n-th training sound
    of the prior); ``restarts`` is how often a stage whose loss went non-finite goes back to its
    last saved epoch before training stops with a :class:`~specsynth.errors.TrainingError`.
    After a step its results are attributes: ``state`` (what ``state.json`` holds), ``vae``,
    ``prior``, ``walk`` (the calibration's ``walk_scale`` and ``walk_shift``, empty without it).
    """

    def __init__(self, dataset, out, *, settings=None, resume=False, overwrite=False, verbose=1, log=print,
                 calibration_walks=CALIBRATION_WALKS, restarts=RESTARTS):
        from ..data import Dataset

        self.started = time.time()
        self.settings = settings or TrainSettings()
        self.settings.check()
        self.out = Path(out)
        self.work = self.out.with_name(self.out.name + ".partial")
        self.state_path = self.work / "state.json"
        if self.out.exists() and not overwrite:
            raise OutputError("already exists (use --overwrite to replace it)", path=self.out)
        if resume and not self.state_path.exists():
            raise ConfigError(f"nothing to resume: {self.state_path} does not exist")
        self.data = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        self.config = self.data.config
        self.resume, self.overwrite, self.verbose, self.log = resume, overwrite, verbose, log
        self.calibration_walks, self.restarts = int(calibration_walks), int(restarts)
        self.state = json.loads(self.state_path.read_text()) if resume else None
        if resume:  # a resumed run continues with the settings it started with
            self.settings = TrainSettings(**self.state["settings"])
        self.frames = self.settings.frames(self.config)
        self.vae = self.prior = None
        self.walk = {}

    # -- steps ----------------------------------------------------------------------------------
    def prepare(self):
        """Start the work folder (split and normalisation in ``state.json``) or read it back on
        resume; seed, determinism and the distribution strategy. TensorFlow loads here."""
        from ._keras import keras

        settings, data = self.settings, self.data
        if self.resume:
            self.log(f"resuming: VAE epoch {self.state.get('vae_epochs_done', 0)}/{settings.epochs}, "
                     f"prior epoch {self.state.get('prior_epochs_done', 0)}/{settings.prior_epochs}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work.mkdir(parents=True)
            train_idx, val_idx = split_items(data.items, settings.val_fraction, settings.seed)
            mean, std = data.frame_stats(train_idx)  # read in chunks: the frames stay on disk
            n = self.config.n_features
            self.state = {
                "settings": asdict(settings), "train_items": train_idx, "val_items": val_idx,
                # One offset and one scale for every feature (the decoder's envelopes are smooth,
                # so the targets should not carry a per-bin offset it cannot draw).
                "frame_mean": np.full(n, float(mean)).tolist(),
                # Per-feature scales would blow up the bins that are nearly always at the floor in
                # training (a held-out sound with energy there lands hundreds of "stds" out); a
                # shared one keeps the loss in plain dB^2, like the metrics.
                "frame_std": np.full(n, max(float(std), 1e-2)).tolist(),
                "vae_epochs_done": 0, "prior_epochs_done": 0, "elapsed_s": 0.0,
            }
            write_state(self.state_path, self.state)
        self.elapsed_before = self.state.get("elapsed_s", 0.0)
        keras.utils.set_random_seed(settings.seed)
        try:
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        except Exception:  # determinism is best-effort; never fatal
            pass
        self.strategy = distribution_strategy(settings.strategy)
        if settings.strategy:
            self.log(f"strategy {settings.strategy}: {self.strategy.num_replicas_in_sync} replicas")
        self.frame_mean = np.asarray(self.state["frame_mean"], np.float32)
        self.frame_std = np.asarray(self.state["frame_std"], np.float32)
        self.train_idx, self.val_idx = self.state["train_items"], self.state["val_items"]
        return self

    def fit_vae(self):
        """Train the VAE up to ``settings.epochs`` (from its last saved epoch); returns it."""
        from ._keras import keras
        from .vae import VAE

        settings, path = self.settings, self.work / "vae.keras"

        def build():
            with self.strategy.scope():
                # the output layer works in dB: it is given the frames' (global) normalisation
                vae = VAE(self.config.to_dict(), z_dim=settings.z_dim, width=settings.width, kernel=settings.kernel,
                          beta=settings.beta, warmup_steps=settings.warmup_steps, seed=settings.seed,
                          db_offset=float(self.frame_mean[0]), db_scale=float(self.frame_std[0]),
                          env_bands=settings.env_bands, harmonics=settings.harmonics, warp=settings.warp,
                          input_warp=settings.input_warp)
                # Gradients of the pretrained recipe have a global norm of about 400-600 (p90 about
                # 1000, the largest of 600 early steps 1800); only a spike beyond that is scaled
                # down, before Adam turns it into a jump of the weights the run may not come back
                # from. The rate falls to 5% over the run (cosine), as the prior's: a constant one
                # leaves the last epochs' weights wherever Adam's noise puts them.
                rate = keras.optimizers.schedules.CosineDecay(settings.learning_rate, max(self._vae_steps(), 1),
                                                              alpha=0.05)
                vae.compile(optimizer=keras.optimizers.Adam(rate, global_clipnorm=settings.clip_norm))
            return vae

        self.vae = self._restore("vae", path, build)
        if self.state["vae_epochs_done"] < settings.epochs:
            self.log(f"VAE: {len(self.train_idx)} training items ({self._vae_steps() // settings.epochs} batches "
                     f"of {settings.batch_size} segments of {self.frames['segment']} frames), "
                     f"{len(self.val_idx)} held out")
            self.vae = self._fit(self.vae, "vae", path, build,
                                 lambda attempt: self._vae_inputs(self.train_idx, seed=settings.seed + attempt),
                                 self._vae_inputs(self.val_idx, shuffle=False) if self.val_idx else None,
                                 settings.epochs)
        return self.vae

    def fit_prior(self):
        """Train the prior on the VAE's latents up to ``settings.prior_epochs``; returns it."""
        from ._keras import keras
        from .dataset import tf_dataset
        from .prior import LatentPrior
        from ..spectral import active_span

        settings, data = self.settings, self.data
        # A subset of the sounds, seen more often, fits their paths more tightly (see the recipe).
        self.prior_idx = self.train_idx[:: settings.prior_every]
        # The prior learns how *sounding* latents move, with their contours: release tails and
        # silence would teach it that everything fades out, and a texture loop grown from it would too.
        self.latents = {i: self._encode(i)[active_span(data.item_frames(data.items[i]))]
                        for i in self.prior_idx + self.val_idx}
        train_lat = np.concatenate([self.latents[i] for i in self.prior_idx])
        self.latent_mean, self.latent_std = train_lat.mean(axis=0), np.maximum(train_lat.std(axis=0), 1e-3)
        p_train = self._prior_inputs(self.prior_idx)
        self.p_val = (tf_dataset(self._prior_inputs(self.val_idx), batch_size=settings.batch_size, shuffle=False)
                      if self.val_idx else None)
        path = self.work / "prior.keras"

        def build():
            with self.strategy.scope():
                prior = LatentPrior(settings.z_dim + CONTOUR_COLUMNS, units=settings.prior_units, mixtures=settings.prior_mixtures,
                                    sampled_inputs=settings.prior_sampled_inputs,
                                    sampled_passes=settings.prior_sampled_passes, seed=settings.seed, starts=True)
                # The learning rate falls to 5% over the run (cosine): walks depend on where the
                # last steps leave the weights, and a constant rate leaves them anywhere in Adam's noise.
                steps = settings.prior_epochs * sum(-(-len(part["z"]) // settings.batch_size) for part in p_train)
                rate = keras.optimizers.schedules.CosineDecay(settings.learning_rate, max(steps, 1), alpha=0.05)
                prior.compile(optimizer=keras.optimizers.Adam(rate))
            return prior

        self.prior = self._restore("prior", path, build)
        if self.state["prior_epochs_done"] < settings.prior_epochs:
            self.log(f"prior: {len(p_train[0]['z'])} onset windows of up to {self.frames['prior_segment']} frames"
                     + (f", {len(p_train[1]['z'])} of {self.frames['prior_anywhere']}" if len(p_train) > 1 else ""))
            self.prior = self._fit(self.prior, "prior", path, build, lambda attempt: tf_dataset(
                p_train, batch_size=settings.batch_size, seed=settings.seed + attempt), self.p_val,
                settings.prior_epochs)
        elif self.state["prior_epochs_done"] == 0:  # prior_epochs == 0: build it untrained so the bundle is whole
            self.prior({"z": p_train[0]["z"][:1], "pitch": p_train[0]["pitch"][:1]})
        return self.prior

    def calibrate(self):
        """What the trained walks still miss of their training sequences' moments
        (:func:`specsynth.model.prior.walk_calibration`), from at most ``calibration_walks`` of them;
        nothing for an untrained prior. Returns ``{"walk_scale", "walk_shift"}`` or ``{}``."""
        from .prior import NumpyPrior, walk_calibration

        self.walk = {}
        if self.settings.prior_epochs:
            t = time.time()
            every = -(-len(self.prior_idx) // self.calibration_walks)
            walked = self.prior_idx[::every]
            scale, shift = walk_calibration(NumpyPrior(self.prior), *self._sequences(walked), seed=self.settings.seed)
            self.walk = {"walk_scale": scale, "walk_shift": shift}
            self.log(f"walk calibration over {len(walked)} sounds ({time.time() - t:.0f} s): scale "
                     f"{scale.min():.2f}..{scale.max():.2f}, shift within {np.abs(shift).max():.2f} std")
        return self.walk

    def save(self):
        """Measure the held-out sounds, write the bundle and remove the work folder; returns the
        loaded :class:`specsynth.model.bundle.Model`."""
        from .bundle import load_bundle, save_bundle

        settings, data, train_idx, val_idx = self.settings, self.data, self.train_idx, self.val_idx
        metrics = {}
        if val_idx:
            metrics["val_vae"] = {k: float(x) for k, x in self.vae.evaluate(
                self._vae_inputs(val_idx, shuffle=False), verbose=0, return_dict=True).items()}
            if self.p_val is not None and settings.prior_epochs:
                metrics["val_prior_nll"] = float(self.prior.evaluate(self.p_val, verbose=0))
        elapsed_s = self._elapsed()
        hyper = {k: v for k, v in asdict(settings).items() if k not in ("strategy", "extra")}
        labels, counts = np.unique([data.items[i]["pitch"] for i in train_idx], return_counts=True)
        training = {
            "items": len(data.items), "train_items": len(train_idx), "val_items": len(val_idx),
            "pitch_counts": {str(k): int(n) for k, n in zip(labels, counts)},  # training sounds per label
            "val_names": [data.items[i]["name"] for i in val_idx][:5000],
            "data_summary": data.summary, "seconds": round(elapsed_s, 1), "seed": settings.seed,
            "peak_memory_mb": _peak_memory_mb(),
            "machine": _machine(), "history": self.state.get("history", {}),
        }
        norm = {"frame_mean": self.frame_mean, "frame_std": self.frame_std,
                "latent_mean": self.latent_mean.astype(np.float32), "latent_std": self.latent_std.astype(np.float32),
                **self.walk}
        save_bundle(self.out, config=self.config, hyper=hyper, training=training, vae=self.vae, prior=self.prior,
                    norm=norm, metrics=metrics, overwrite=self.overwrite)
        shutil.rmtree(self.work, ignore_errors=True)
        self.log(f"wrote {self.out} ({elapsed_s / 60:.1f} min)")
        return load_bundle(self.out)

    # -- pieces of the steps --------------------------------------------------------------------
    def _elapsed(self):
        return self.elapsed_before + time.time() - self.started

    def _vae_inputs(self, indices, *, shuffle=True, seed=0):
        """The segments of these items (frames with their contours) read from the dataset batch by
        batch; training segments get a random gain (``settings.gain_db``), so the model keeps
        the level it is given."""
        from .dataset import segment_dataset

        return segment_dataset(self.data, indices, seg_len=self.frames["segment"], batch_size=self.settings.batch_size,
                               offset=float(self.frame_mean[0]), scale=float(self.frame_std[0]), shuffle=shuffle,
                               seed=seed, gain_db=(-self.settings.gain_db, 0.0) if shuffle and self.settings.gain_db
                               else None)

    def _vae_steps(self):
        from .dataset import segment_starts

        owner, _, _ = segment_starts([self.data.items[i]["frames"] for i in self.train_idx], self.frames["segment"])
        segments = len(owner)
        return self.settings.epochs * -(-segments // self.settings.batch_size)

    def _encode(self, i):
        """Item ``i``'s latents ``[time, z + 2]``: encoder means, then its contour's columns."""
        item = self.data.items[i]
        x = ((self.data.item_frames(item) - self.frame_mean) / self.frame_std)[None]
        cols = np.asarray(self.data.item_contour(item), np.float32)
        mean = np.asarray(self.vae.encoder([x, cols[None]], training=False)[0])[0]
        return np.concatenate([mean, cols], axis=1)

    def _sequences(self, indices):
        """The sounds' normalised latent sequences (contours included) and their pitch labels."""
        return ([(self.latents[i] - self.latent_mean) / self.latent_std for i in indices],
                [self.data.items[i]["pitch"] for i in indices])

    def _prior_inputs(self, indices):
        """Each sound from its onset, after the start frame an unprimed walk also begins from, so
        walks begin as sounds do; and windows cut anywhere (no start frame), so the prior also
        learns to go on from any history, as a texture loop grown past a sound's length must."""
        from .prior import windows

        seqs, pitches = self._sequences(indices)
        frames = self.frames
        parts = [windows(seqs, pitches, frames["prior_segment"] + 1, starts=True,
                         onset_weight=self.settings.prior_onset_weight, onset_frames=frames["prior_onset"])]
        if frames["prior_anywhere"]:
            parts.append(windows(seqs, pitches, frames["prior_anywhere"] + 1, starts=False))
        return parts

    def _restore(self, stage, path, build):
        """The stage's model as of its last saved epoch, or built anew before the first."""
        from ._keras import keras

        if self.state[f"{stage}_epochs_done"] == 0:
            return build()
        with self.strategy.scope():
            return keras.saving.load_model(path, safe_mode=True)

    def _fit(self, model, stage, path, build, train_data, validation, epochs):
        try:
            return fit_guarded(model, restore=lambda: self._restore(stage, path, build), path=path, stage=stage,
                               state=self.state, state_path=self.state_path, train_data=train_data,
                               validation=validation, epochs=epochs, elapsed=self._elapsed, log=self.log,
                               verbose=self.verbose, restarts=self.restarts)
        except TrainingError as error:
            if self.state["vae_epochs_done"]:
                raise TrainingError(f"{error}; {self.work} keeps the last complete epoch for --resume",
                                    path=self.out) from None
            shutil.rmtree(self.work, ignore_errors=True)  # nothing was saved that a resumed run could start from
            raise TrainingError(str(error), path=self.out) from None


def train(dataset, out, *, settings=None, resume=False, overwrite=False, verbose=1, log=print):
    """Train a bundle from a :class:`specsynth.data.Dataset` (or a dataset folder path) into ``out``:
    the :class:`Trainer`'s steps in order. Returns the loaded :class:`specsynth.model.bundle.Model`.
    """
    trainer = Trainer(dataset, out, settings=settings, resume=resume, overwrite=overwrite, verbose=verbose, log=log)
    trainer.prepare()
    trainer.fit_vae()
    trainer.fit_prior()
    trainer.calibrate()
    return trainer.save()


def _peak_memory_mb():
    """This process's peak resident memory in MB (of the last run, when training was resumed)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


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
