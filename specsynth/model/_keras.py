"""Import Keras on the TensorFlow backend quietly, once.

``SPECSYNTH_CPU_DEVICES=N`` splits the CPU into N logical devices before TensorFlow starts, so
``--strategy mirrored`` can be exercised (and tested) on a machine without GPUs.
"""
import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _native_stderr_hidden():
    # TensorFlow's native libraries print start-up lines (oneDNN, CUDA stubs, "before
    # absl::InitializeLog") straight to fd 2 while they load, where TF_CPP_MIN_LOG_LEVEL cannot
    # reach them; they would break the CLI's one-line-on-stderr rule for user errors.
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _split_cpu():
    n = int(os.environ.get("SPECSYNTH_CPU_DEVICES", "0") or 0)
    if n > 1:
        import tensorflow as tf

        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)


with _native_stderr_hidden():
    import tensorflow  # noqa: E402,F401  (loaded here, with its start-up noise hidden)

_split_cpu()

import keras  # noqa: E402,F401  (re-exported: `from ._keras import keras`)
