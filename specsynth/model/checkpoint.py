"""Fitting with per-epoch checkpoints, and going back to the last one when the loss goes non-finite.

After every epoch the model is saved, then the training state (``state.json``), each replaced
atomically; the state is written second, so it never claims an epoch whose model is not on disk.
An epoch whose loss goes non-finite is never saved: :func:`fit_guarded` goes back to the last
saved epoch and tries again with another shuffle order.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from ..errors import TrainingError
from ..files import write_text

RESTARTS = 2  # times a stage goes back to its last saved epoch after its loss went non-finite


def write_state(path, state):
    """Write the training state as JSON, atomically."""
    write_text(path, json.dumps(state, indent=1))


def save_model(model, path):
    """Save a Keras model to ``path`` (a ``.keras`` file), atomically."""
    tmp = path.with_name(f".{path.stem}.part.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _checkpoint(keras, model, model_path, state, state_path, stage, elapsed):
    """A Keras callback: after each epoch save the model, then the state. A batch whose loss is
    not finite stops training, and that epoch is not saved (``diverged`` holds it)."""

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
            save_model(model, model_path)
            state[f"{stage}_epochs_done"] = epoch + 1
            state["elapsed_s"] = elapsed()
            state.setdefault("history", {}).setdefault(stage, []).append(
                {k: float(v) for k, v in (logs or {}).items()})
            write_state(state_path, state)

    return Checkpoint()


def fit_guarded(model, *, restore, path, stage, state, state_path, train_data, validation, epochs, elapsed=None,
                log=print, verbose=0, restarts=RESTARTS):
    """Fit ``model`` up to ``epochs``, saving it to ``path`` and ``state`` to ``state_path`` after every
    epoch; returns the model.

    ``state[f"{stage}_epochs_done"]`` is where fitting starts, and is kept up to date;
    ``state["history"][stage]`` gets each epoch's logs. ``train_data(attempt)`` gives the training
    dataset. When a batch's loss goes non-finite (a loss spike that Adam turned into NaN weights),
    the epoch is dropped and training goes back to the last saved epoch (``restore()`` gives the
    model as saved there) with ``train_data(attempt + 1)``, another shuffle order; after ``restarts``
    such restarts it is a :class:`~specsynth.errors.TrainingError`. ``elapsed()`` gives the seconds
    trained so far, for the state.
    """
    from ._keras import keras

    elapsed = elapsed or (lambda: 0.0)
    done = f"{stage}_epochs_done"
    for attempt in range(restarts + 1):
        cb = _checkpoint(keras, model, path, state, state_path, stage, elapsed)
        model.fit(train_data(attempt), validation_data=validation, epochs=epochs, shuffle=False,
                  initial_epoch=state[done], callbacks=[cb, _eta(keras, log)], verbose=verbose)
        if cb.diverged is None:
            return model
        if attempt == restarts:
            break
        log(f"{stage}: the loss went non-finite in epoch {cb.diverged + 1}; going back to epoch "
            f"{state[done]} and trying again with another shuffle order")
        model = restore()
    raise TrainingError(f"the {stage}'s loss went non-finite {restarts + 1} times in epoch {state[done] + 1} "
                        "(a lower --learning-rate may help)")


def _eta(keras, log):
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
