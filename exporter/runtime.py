"""Quiet, lazy access to TensorFlow and Keras.

TensorFlow costs seconds to import and prints C++ log lines and Python warnings on the way; every
module that needs it calls `keras_module()` or `tf_module()` here, so the noise is silenced in one
place and commands that never touch a model (`--help`, `inspect` of a config file) never pay for it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings

# Set before TensorFlow is first imported: C++ logs above ERROR and oneDNN banners stay silent.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow turns oneDNN on by itself only on CPUs with AVX-512; without it, the stock CPU kernels
# refuse NCHW convolutions ("Conv2D op currently only supports the NHWC tensor format"), so every
# channels_first model (Theano-era files above all) would fail to run on an ordinary AVX2 machine.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _silence_python_loggers() -> None:
    warnings.filterwarnings("ignore", module=r"keras(\.|$)")
    warnings.filterwarnings("ignore", module=r"tf_keras(\.|$)")
    warnings.filterwarnings("ignore", module=r"tensorflow(\.|$)")
    warnings.filterwarnings("ignore", message=r".*HDF5 file via `model.save\(\)`.*")
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _quiet_stderr_fd():
    """Silence file descriptor 2 while TensorFlow starts: its C++ start-up banners (oneDNN,
    CUDA probing) are written by absl before TF_CPP_MIN_LOG_LEVEL takes effect."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tf_module():
    """Import and return `tensorflow`, quietly."""
    _silence_python_loggers()
    if "tensorflow" not in sys.modules:
        with quiet_stdout(), _quiet_stderr_fd():
            import tensorflow as tf

            # Probing devices now, still silenced, keeps the CUDA probe's "failed call to
            # cuInit" line of CPU-only machines out of later output.
            tf.config.list_physical_devices()
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    with contextlib.suppress(Exception):
        tf.autograph.set_verbosity(0)
    return tf


def keras_module():
    """Import and return Keras 3 (`keras`), quietly."""
    tf_module()
    import keras

    import exporter.legacy.activations  # noqa: F401 - registers Keras 2's hard_sigmoid

    return keras


def tf_keras_module():
    """Import and return tf-keras (Keras 2), the loader of last resort for Keras 2 artifacts."""
    tf_module()
    with quiet_stdout():
        import tf_keras

    return tf_keras


@contextlib.contextmanager
def quiet_stdout():
    """Keep library chatter (variable lists, progress bars) off stdout, which carries results."""
    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        yield
    finally:
        sys.stdout = saved
